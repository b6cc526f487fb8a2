// Repetition testing (Profiler::repeat, summarize_repetitions,
// compare_repetitions): the loop against a fake clock, the statistics against
// synthetic distributions whose truth the test knows, the comparison against
// known shifts, and the exports.
#define BOOST_TEST_MODULE repeat
#include <boost/test/unit_test.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

import stichotrope;

using namespace stichotrope;
using namespace std::chrono_literals;

namespace {

// A fake clock: time moves only when a run says so.
std::uint64_t fake_now = 0;
std::uint64_t fake_clock() { return fake_now; }

void busy_for(std::chrono::nanoseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

std::vector<std::uint64_t> draw(std::mt19937_64& rng, std::size_t n, auto&& dist) {
  std::vector<std::uint64_t> v(n);
  for (auto& x : v) x = static_cast<std::uint64_t>(std::llround(std::max(1.0, dist(rng))));
  return v;
}

RepetitionResults named(std::vector<std::uint64_t> samples) {
  auto r = summarize_repetitions(std::move(samples));
  r.name = "f";
  return r;
}

} // namespace

BOOST_AUTO_TEST_CASE(every_run_is_a_hit_and_the_statistics_come_back) {
  Profiler p{"repeat"};
  int calls = 0;
  auto r = p.repeat(2, "spin",
                    [&] {
                      ++calls;
                      auto inner = p.block(3, "inside");
                      busy_for(20us);
                    },
                    {.iterations = 40, .warmup = 3});
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(calls == 43); // 3 warm-up runs, not measured
  BOOST_TEST(r->runs == 40u);
  BOOST_TEST(r->samples_ns.size() == 40u);
  BOOST_TEST(r->stopped_by == "iterations");
  BOOST_TEST(r->min_ns >= 20'000u);
  BOOST_TEST(r->min_ns <= r->median_ns);
  BOOST_TEST(r->median_ns <= r->max_ns);
  BOOST_TEST(r->median_ci_low_ns <= r->median_ns);
  BOOST_TEST(r->median_ns <= r->median_ci_high_ns);
  BOOST_TEST(r->mean_ci_low_ns <= r->mean_ns);
  BOOST_TEST(r->mean_ns <= r->mean_ci_high_ns);
  const auto results = p.get_results();
  const auto* spin = results.find_block(2, "spin");
  BOOST_TEST_REQUIRE(spin != nullptr);
  BOOST_TEST(spin->hit_count == 40u); // every measured run is a hit, the warm-up is not
  const auto* inside = results.find_block(3, "inside");
  BOOST_TEST_REQUIRE(inside != nullptr);
  BOOST_TEST(inside->callers.size() == 2u); // under "spin" (measured runs) and top level (warm-up)
  BOOST_TEST_REQUIRE(results.repetitions.size() == 1u);
  BOOST_TEST((results.repetitions[0] == *r));
  p.clear();
  BOOST_TEST(p.get_results().repetitions.empty());
}

BOOST_AUTO_TEST_CASE(a_batch_times_its_calls_together_and_is_shown_per_call) {
  Profiler p{"repeat_batch"};
  fake_now = 1'000'000;
  // Calls cost 10 and 11 ns in turn: a run of 2 calls takes 21 ns, 10.5 ns a
  // call; each call reports 100 bytes.
  std::uint64_t calls = 0;
  auto r = p.repeat(0, "pair",
                    [&]() -> std::uint64_t {
                      fake_now += calls++ % 2 == 0 ? 10 : 11;
                      return 100;
                    },
                    {.iterations = 5, .warmup = 2, .batch = 2, .clock = &fake_clock});
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(calls == 14u); // (2 warm-up runs + 5 runs) of 2 calls
  BOOST_TEST(r->runs == 5u);
  BOOST_TEST(r->batch == 2u);
  BOOST_TEST(r->samples_ns == std::vector<std::uint64_t>(5, 21), boost::test_tools::per_element()); // runs
  BOOST_TEST(r->per_call(r->min_ns) == 10.5);
  BOOST_TEST(r->bytes_fastest == 200u);
  BOOST_TEST(r->best_bytes_per_second == 200.0 * 1e9 / 21.0);
  const auto results = p.get_results();
  BOOST_TEST(results.find_block(0, "pair")->hit_count == 5u);    // a hit is a run
  BOOST_TEST(results.find_block(0, "pair")->bytes == 5u * 200u); // the bytes of every call
  const auto table = to_table(results);
  BOOST_TEST(table.find("pair (track 0): 5 runs of 2 calls (figures per call), stopped by iterations\n"
                        "  min 10.50 ns   median 10.50 ns") != std::string::npos,
             table);
  const auto csv = to_repetitions_csv(results);
  BOOST_TEST(csv.substr(csv.size() - 4) == ",2\r\n");
  const auto back = read_results_json(to_json(results), "memory");
  BOOST_TEST_REQUIRE(back.has_value());
  BOOST_TEST((back->repetitions[0] == results.repetitions[0]));
  std::string zero = to_json(results);
  zero.replace(zero.find("\"batch\": 2"), 11, "\"batch\": 0");
  BOOST_TEST(!read_results_json(zero, "zero").has_value());
  // Compared call for call: the same calls one a run are indistinguishable
  // from them two a run, and 1 ns more a call is a 9.5 % shift of 1 ns.
  fake_now = 0;
  calls = 0;
  const auto single =
      p.repeat(0, "single", [&] { fake_now += calls++ % 2 == 0 ? 10 : 11; }, {.iterations = 40, .clock = &fake_clock});
  const auto paired = p.repeat(0, "paired", [&] { fake_now += 10 + calls++ % 2 * 1; },
                               {.iterations = 20, .batch = 2, .clock = &fake_clock});
  const auto slower = p.repeat(0, "slower", [&] { fake_now += 11 + calls++ % 2 * 1; },
                               {.iterations = 20, .batch = 2, .clock = &fake_clock});
  BOOST_TEST_REQUIRE((single && paired && slower));
  const auto same = compare_repetitions(*single, *paired);
  BOOST_TEST((same.result == RepetitionComparison::verdict::indistinguishable));
  BOOST_TEST(same.base_median_ns == 11.0); // runs of 10 and 11 ns: their median 10.5, in whole ns
  BOOST_TEST(same.current_median_ns == 10.5);
  const auto shifted = compare_repetitions(*paired, *slower);
  BOOST_TEST((shifted.result == RepetitionComparison::verdict::slower));
  BOOST_TEST(shifted.shift_ns == 1.0);
  BOOST_TEST(std::abs(shifted.relative - 1.0 / 10.5) < 1e-12);
  BOOST_TEST(to_text(shifted).find("shift +1.000 ns") != std::string::npos, to_text(shifted));
  BOOST_TEST(to_text(shifted).find("medians 10.50 -> 11.50 ns") != std::string::npos, to_text(shifted));
  // On the profiler's clock: runs of 5 calls of at least 2 us.
  auto real = p.repeat(0, "spin", [] { busy_for(2us); }, {.iterations = 20, .batch = 5});
  BOOST_TEST_REQUIRE(real.has_value());
  BOOST_TEST(real->min_ns >= 10'000u);
  BOOST_TEST(real->per_call(real->min_ns) >= 2'000.0);
  auto none = p.repeat(0, "f", [] {}, {.iterations = 3, .batch = 0});
  BOOST_TEST((!none.has_value() && none.error().code == errc::invalid_argument));
}

BOOST_AUTO_TEST_CASE(min_run_time_chooses_the_batch) {
  Profiler p{"repeat_chosen"};
  fake_now = 0;
  // 3 ns a call: runs of 1, 2, ..., 32 calls are under 100 ns; 64 calls
  // take 192 ns. Those choosing runs (three of each batch) are neither
  // samples nor hits.
  std::uint64_t calls = 0;
  auto r = p.repeat(0, "three", [&] { fake_now += 3, ++calls; },
                    {.iterations = 5, .min_run_time = std::chrono::nanoseconds(100), .clock = &fake_clock});
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(r->batch == 64u);
  BOOST_TEST(calls == 3u * 127u + 5u * 64u);
  BOOST_TEST(r->samples_ns == std::vector<std::uint64_t>(5, 192), boost::test_tools::per_element());
  BOOST_TEST(r->per_call(r->median_ns) == 3.0);
  BOOST_TEST(p.get_results().find_block(0, "three")->hit_count == 5u);
  // From a batch of 3: 3, 6, ..., 48 calls (144 ns).
  auto from3 =
      p.repeat(0, "from 3", [&] { fake_now += 3; },
               {.iterations = 2, .batch = 3, .min_run_time = std::chrono::nanoseconds(100), .clock = &fake_clock});
  BOOST_TEST_REQUIRE(from3.has_value());
  BOOST_TEST(from3->batch == 48u);
  // A function of no measurable time stops the doubling at 2^20 calls a run.
  auto still = p.repeat(0, "still", [] {},
                        {.iterations = 1, .min_run_time = std::chrono::nanoseconds(100), .clock = &fake_clock});
  BOOST_TEST_REQUIRE(still.has_value());
  BOOST_TEST(still->batch == (std::uint64_t{1} << 20));
  // One slow run (an interrupt) among a batch's three does not choose it:
  // the first run of each batch b (from call 3 (b - 1) on) takes 1,000 ns
  // more.
  std::uint64_t call = 0;
  auto noisy = p.repeat(0, "noisy",
                        [&] {
                          fake_now += 3;
                          if (call % 3 == 0 && std::has_single_bit(call / 3 + 1)) fake_now += 1000;
                          ++call;
                        },
                        {.iterations = 1, .min_run_time = std::chrono::nanoseconds(100), .clock = &fake_clock});
  BOOST_TEST_REQUIRE(noisy.has_value());
  BOOST_TEST(noisy->batch == 64u);
  // On the profiler's clock, a call of a few ns gets a batch.
  volatile std::uint64_t sink = 0;
  auto real = p.repeat(0, "add", [&] { sink = sink + 1; }, {.iterations = 50, .min_run_time = 10us});
  BOOST_TEST_REQUIRE(real.has_value());
  BOOST_TEST_MESSAGE("measured: batch " << real->batch << ", " << real->per_call(real->min_ns) << " ns a call");
  BOOST_TEST(real->batch >= 16u);
  BOOST_TEST(real->per_call(real->min_ns) < 1'000.0);
  // The measured runs run the code that chose the batch: about as long (a
  // choosing loop of its own once chose runs of 2.2 us for 10).
  BOOST_TEST(real->median_ns >= 5'000u);
  auto negative = p.repeat(0, "f", [] {}, {.iterations = 3, .min_run_time = std::chrono::nanoseconds(-1)});
  BOOST_TEST((!negative.has_value() && negative.error().code == errc::invalid_argument));
}

BOOST_AUTO_TEST_CASE(options_that_cannot_work_are_errors) {
  Profiler p{"repeat_errors"};
  auto f = [] {};
  auto none = p.repeat(0, "f", f, {});
  BOOST_TEST_REQUIRE(!none.has_value());
  BOOST_TEST((none.error().code == errc::invalid_argument));
  BOOST_TEST(none.error().message.find("no way to stop") != std::string::npos);
  auto both = p.repeat(0, "f", f, {.iterations = 3, .until_no_improvement = 1ms});
  BOOST_TEST((!both.has_value() && both.error().code == errc::invalid_argument));
  auto track = p.repeat(300, "f", f, {.iterations = 3});
  BOOST_TEST((!track.has_value() && track.error().code == errc::invalid_track));
  auto name = p.repeat(0, "", f, {.iterations = 3});
  BOOST_TEST((!name.has_value() && name.error().code == errc::empty_name));
  BOOST_TEST(p.get_results().repetitions.empty());
}

BOOST_AUTO_TEST_CASE(an_exception_propagates_and_the_runs_before_it_are_kept) {
  Profiler p{"repeat_throw"};
  int calls = 0;
  BOOST_CHECK_THROW(p.repeat(0, "thrower",
                             [&] {
                               if (++calls == 5) throw std::runtime_error("fifth");
                             },
                             {.iterations = 10}),
                    std::runtime_error);
  const auto r = p.get_results();
  BOOST_TEST_REQUIRE(r.repetitions.size() == 1u);
  BOOST_TEST(r.repetitions[0].runs == 4u);
  BOOST_TEST(r.repetitions[0].stopped_by == "exception");
  BOOST_TEST(r.find_block(0, "thrower")->hit_count == 5u); // the run that threw closed its block too
}

BOOST_AUTO_TEST_CASE(until_no_improvement_stops_when_the_fastest_run_is_old_enough) {
  Profiler p{"repeat_converge"};
  fake_now = 1'000'000;
  // Runs of 1,000, 990, ..., 910 ns (each faster), then 950 ns for ever: the
  // best (910) is run 9; 10 more runs of 950 make it 9,500 ns old.
  std::uint64_t run = 0;
  auto r = p.repeat(0, "converging", [&] { fake_now += run < 10 ? 1000 - 10 * run++ : 950; },
                    {.until_no_improvement = std::chrono::nanoseconds(9'000), .clock = &fake_clock});
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(r->stopped_by == "no improvement");
  BOOST_TEST(r->min_ns == 910u);
  BOOST_TEST(r->runs == 20u); // 10 improving, then 950 ns each until 9,000 ns have passed: 10 runs
  // A time limit stops it first when it is shorter.
  run = 0;
  auto limited = p.repeat(0, "limited", [&] { fake_now += 1000; },
                          {.until_no_improvement = std::chrono::nanoseconds(1'000'000),
                           .time_limit = std::chrono::nanoseconds(5'000),
                           .clock = &fake_clock});
  BOOST_TEST_REQUIRE(limited.has_value());
  BOOST_TEST(limited->stopped_by == "time limit");
  BOOST_TEST(limited->runs == 5u);
}

BOOST_AUTO_TEST_CASE(statistics_of_known_samples_are_exact) {
  const auto r = summarize_repetitions({5, 1, 4, 2, 3, 100}, {10, 10, 10, 10, 20, 10});
  BOOST_TEST(r.runs == 6u);
  BOOST_TEST(r.min_ns == 1u);
  BOOST_TEST(r.max_ns == 100u);
  BOOST_TEST(r.median_ns == 4u); // (3 + 4) / 2 = 3.5, rounded
  BOOST_TEST(r.mean_ns == 115.0 / 6);
  double sq = 0;
  for (double v : {5.0, 1.0, 4.0, 2.0, 3.0, 100.0}) sq += (v - 115.0 / 6) * (v - 115.0 / 6);
  BOOST_TEST(std::abs(r.stddev_ns - std::sqrt(sq / 5)) < 1e-9);
  BOOST_TEST(r.p90_ns == 100u);
  // 6 runs: min to max holds the median with probability 1 - 2 / 64.
  BOOST_TEST(r.median_ci_low_ns == 1u);
  BOOST_TEST(r.median_ci_high_ns == 100u);
  BOOST_TEST(std::abs(r.median_ci_level - (1 - 2.0 / 64)) < 1e-12);
  BOOST_REQUIRE(r.outliers.size() == 1u); // 100: MAD 1.5, modified z = 0.6745 * 96.5 / 1.5 = 43
  BOOST_TEST(r.outliers[0].first == 5u);
  BOOST_TEST(r.mean_without_outliers_ns == 3.0);
  BOOST_TEST(r.min_without_outliers_ns == 1u); // the outlier was the slowest run
  BOOST_TEST(r.bytes_fastest == 10u);          // of the 1 ns run
  BOOST_TEST(r.best_bytes_per_second == 10e9);
  BOOST_TEST(r.bytes_total == 70u);
}

BOOST_AUTO_TEST_CASE(the_95_percent_intervals_cover_the_truth_95_times_in_100) {
  // 1,000 simulated experiments each. The median's interval on heavily
  // skewed data (lognormal, sigma 0.5: timing data's long right tail), 30
  // runs; the mean's on a moderately skewed one (gamma, shape 16), 100 runs.
  std::mt19937_64 rng(20261206);
  constexpr double true_median = 1e6; // lognormal(ln 1e6, 0.5)
  std::lognormal_distribution<double> lognormal(std::log(true_median), 0.5);
  std::gamma_distribution<double> gamma(16.0, 62'500.0); // mean 1e6
  constexpr double true_mean = 16.0 * 62'500.0;
  int median_covered = 0, mean_covered = 0;
  for (int e = 0; e < 1000; ++e) {
    const auto m = summarize_repetitions(draw(rng, 30, lognormal));
    median_covered += m.median_ci_low_ns <= true_median && true_median <= m.median_ci_high_ns;
    const auto g = summarize_repetitions(draw(rng, 100, gamma));
    mean_covered += g.mean_ci_low_ns <= true_mean && true_mean <= g.mean_ci_high_ns;
  }
  BOOST_TEST_MESSAGE("measured: median interval covered " << median_covered << " / 1000, mean interval " << mean_covered
                                                          << " / 1000");
  BOOST_TEST(median_covered >= 930);
  BOOST_TEST(median_covered <= 970);
  BOOST_TEST(mean_covered >= 930);
  BOOST_TEST(mean_covered <= 970);
}

BOOST_AUTO_TEST_CASE(injected_outliers_are_all_flagged_and_do_not_move_the_median) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> stable(100'000.0, 500.0);
  auto clean = draw(rng, 200, stable);
  auto dirty = clean;
  for (std::size_t i = 49; i < dirty.size(); i += 50) dirty[i] += 1'000'000; // every 50th run 1 ms slower
  const auto c = summarize_repetitions(clean), d = summarize_repetitions(dirty);
  std::vector<std::uint64_t> flagged;
  for (const auto& [run, ns] : d.outliers) flagged.push_back(run);
  BOOST_TEST(flagged == (std::vector<std::uint64_t>{49, 99, 149, 199}), boost::test_tools::per_element());
  BOOST_TEST(c.outliers.size() <= 1u); // a normal sample has almost none beyond 3.5
  const double moved = std::abs(static_cast<double>(d.median_ns) - static_cast<double>(c.median_ns));
  BOOST_TEST_MESSAGE("measured: median " << c.median_ns << " ns clean, " << d.median_ns << " ns with outliers");
  BOOST_TEST(moved <= 50.0); // a tenth of the spread: two order statistics at most
  BOOST_TEST(std::abs(d.mean_without_outliers_ns - c.mean_ns) < 100.0);
  BOOST_TEST(d.mean_ns > c.mean_ns + 15'000); // the mean does move: 4 x 1 ms / 200
}

BOOST_AUTO_TEST_CASE(a_fast_phase_of_the_machine_sets_the_minimum_not_the_minimum_without_outliers) {
  // What a VM does to a 64 KiB copy (docs/repetition.md, "The two minima"):
  // runs of 850-900 ns, and in one burst of 20 consecutive runs the whole
  // machine is 17 % faster.
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<std::uint64_t> usual(850, 900), burst(700, 750);
  std::vector<std::uint64_t> runs(2000);
  for (auto& v : runs) v = usual(rng);
  for (std::size_t i = 1200; i < 1220; ++i) runs[i] = burst(rng);
  const auto r = summarize_repetitions(runs);
  BOOST_TEST(r.min_ns <= 750u);
  BOOST_TEST(r.min_without_outliers_ns >= 850u);
  BOOST_TEST(r.min_without_outliers_ns == *std::min_element(runs.begin(), runs.begin() + 1200));
  std::vector<std::uint64_t> flagged;
  for (const auto& [run, ns] : r.outliers) flagged.push_back(run);
  std::vector<std::uint64_t> burst_runs(20);
  std::iota(burst_runs.begin(), burst_runs.end(), 1200);
  BOOST_TEST(flagged == burst_runs, boost::test_tools::per_element());
  // Without the burst, the two minima are the same run.
  const auto quiet = summarize_repetitions(std::vector<std::uint64_t>(runs.begin(), runs.begin() + 1200));
  BOOST_TEST(quiet.min_without_outliers_ns == quiet.min_ns);
}

BOOST_AUTO_TEST_CASE(compare_finds_a_3_percent_change_and_calls_identical_ones_indistinguishable) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> a(10'000.0, 100.0), b(10'300.0, 103.0); // 3 % slower
  const auto base = named(draw(rng, 30, a)), slower = named(draw(rng, 30, b)), same = named(draw(rng, 30, a));
  const auto c = compare_repetitions(base, slower);
  BOOST_TEST_MESSAGE("measured: " << to_text(c));
  BOOST_TEST((c.result == RepetitionComparison::verdict::slower));
  BOOST_TEST(c.p_value < 1e-6);
  BOOST_TEST(c.relative_low <= 0.03);
  BOOST_TEST(0.03 <= c.relative_high);
  BOOST_TEST(c.regression(0.02));
  BOOST_TEST(!c.regression(0.05));
  const auto back = compare_repetitions(slower, base);
  BOOST_TEST((back.result == RepetitionComparison::verdict::faster));
  const auto i = compare_repetitions(base, same);
  BOOST_TEST_MESSAGE("measured: " << to_text(i));
  BOOST_TEST((i.result == RepetitionComparison::verdict::indistinguishable));
  BOOST_TEST(!i.regression(0.0));
  // Identical distributions: called different about 5 times in 100.
  int false_alarms = 0;
  for (int e = 0; e < 400; ++e)
    false_alarms += compare_repetitions(named(draw(rng, 30, a)), named(draw(rng, 30, a))).result !=
                    RepetitionComparison::verdict::indistinguishable;
  BOOST_TEST_MESSAGE("measured: " << false_alarms << " of 400 identical pairs called different");
  BOOST_TEST(false_alarms >= 4);
  BOOST_TEST(false_alarms <= 40);
}

BOOST_AUTO_TEST_CASE(throughput_and_rusage_of_a_real_copy) {
  Profiler p{"repeat_copy"};
  std::vector<char> from(64 * 1024, 'x'), to(64 * 1024);
  auto r = p.repeat(0, "copy_64k",
                    [&]() -> std::uint64_t {
                      std::memcpy(to.data(), from.data(), from.size());
                      return from.size();
                    },
                    {.iterations = 200});
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(r->bytes_fastest == 64u * 1024u);
  BOOST_TEST(r->bytes_total == 200u * 64u * 1024u);
  BOOST_TEST(r->best_bytes_per_second >= r->mean_bytes_per_second);
  BOOST_TEST(r->best_bytes_per_second > 1e8); // 64 KiB in well under 655 us
  BOOST_TEST(r->page_faults_per_run >= 0.0);
  BOOST_TEST(p.get_results().find_block(0, "copy_64k")->bytes == 200u * 64u * 1024u);
}

BOOST_AUTO_TEST_CASE(repetitions_are_in_the_exports_and_read_back) {
  Profiler p{"repeat_export"};
  auto r = p.repeat(1, "tiny \"quoted\"", [] { busy_for(1us); }, {.iterations = 25});
  BOOST_TEST_REQUIRE(r.has_value());
  const auto results = p.get_results();
  const auto back = read_results_json(to_json(results), "memory");
  BOOST_TEST_REQUIRE(back.has_value());
  BOOST_TEST_REQUIRE(back->repetitions.size() == 1u);
  BOOST_TEST((back->repetitions[0] == results.repetitions[0])); // every figure and every run
  BOOST_TEST(to_table(results).find("Repetitions") != std::string::npos);
  BOOST_TEST(to_table(results).find("tiny \"quoted\" (track 1): 25 runs, stopped by iterations") != std::string::npos);
  const auto csv = to_repetitions_csv(results);
  BOOST_TEST(csv.find("1,\"tiny \"\"quoted\"\"\",25,iterations,") != std::string::npos, csv);
  const auto header_end = csv.find("\r\n");
  const auto row = csv.substr(header_end + 2);
  BOOST_TEST(std::count(csv.begin(), csv.begin() + header_end, ',') == std::count(row.begin(), row.end(), ','),
             "as many columns in the header as in the row"); // the name has no comma
  BOOST_TEST(to_table(results).find(", mean ") != std::string::npos);
  // A file written before the minimum without outliers existed: it is
  // recomputed from the runs and the outliers the file lists (here the
  // fastest run, 1 ns, is one).
  ProfilerResults with_low_outlier;
  with_low_outlier.repetitions.push_back(summarize_repetitions({1000, 1001, 1002, 1003, 1004, 1, 1002}));
  with_low_outlier.repetitions[0].name = "low";
  with_low_outlier.repetitions[0].stopped_by = "iterations";
  BOOST_TEST_REQUIRE(with_low_outlier.repetitions[0].min_without_outliers_ns == 1000u);
  std::string old = to_json(with_low_outlier);
  const auto key = old.find("\"min_without_outliers_ns\"");
  BOOST_TEST_REQUIRE(key != std::string::npos);
  old.erase(key, old.find(',', key) + 1 - key);
  BOOST_TEST_REQUIRE(old.find("min_without_outliers_ns") == std::string::npos);
  const auto batch = old.find("\"batch\""); // nor batches: one call a run
  BOOST_TEST_REQUIRE(batch != std::string::npos);
  old.erase(batch, old.find(',', batch) + 1 - batch);
  const auto old_back = read_results_json(old, "old");
  BOOST_TEST_REQUIRE(old_back.has_value());
  BOOST_TEST((old_back->repetitions[0] == with_low_outlier.repetitions[0]));
  // Merged results keep both processes' repetitions.
  const auto merged = merge_results({results, *back});
  BOOST_TEST(merged.repetitions.size() == 2u);
  // A document with a broken repetition is an error, not a crash.
  std::string broken = to_json(results);
  broken.replace(broken.find("\"samples_ns\": ["), 15, "\"samples_ns\": [\"x\", ");
  BOOST_TEST(!read_results_json(broken, "broken").has_value());
}

BOOST_AUTO_TEST_CASE(page_faults_per_run_are_counted) {
  Profiler p{"repeat_faults"};
  // Each run maps 1 MiB afresh and touches every page: 256 page faults a
  // run (4 KiB pages), long enough to be read run by run.
  auto r = p.repeat(0, "fresh_1mib",
                    [] {
                      constexpr std::size_t size = 1 << 20;
                      void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                      BOOST_REQUIRE(m != MAP_FAILED);
                      auto* bytes = static_cast<volatile char*>(m);
                      for (std::size_t i = 0; i < size; i += 4096) bytes[i] = 1;
                      ::munmap(m, size);
                    },
                    {.iterations = 30});
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST_MESSAGE("measured: " << r->page_faults_per_run << " page faults a run, at most " << r->max_page_faults);
  BOOST_TEST(r->page_faults_per_run >= 100.0);
  BOOST_TEST(r->max_page_faults >= 100u);
}
