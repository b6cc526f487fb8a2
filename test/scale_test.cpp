// Memory that follows the data, sparse histograms, and take_results()'s
// intervals: each record lands in exactly one interval, whole, none lost,
// while other threads go on recording.
#define BOOST_TEST_MODULE scale
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

using namespace stichotrope;
using std::chrono::nanoseconds;

namespace {
#if defined(__has_feature)
constexpr bool under_sanitizer = __has_feature(thread_sanitizer) || __has_feature(address_sanitizer);
#else
constexpr bool under_sanitizer = false;
#endif

/// Durations that span many octaves (deterministic per thread and index).
std::uint64_t duration_of(int thread, std::uint64_t i) {
  static constexpr std::uint64_t base[] = {7, 40, 300, 2'500, 90'000, 1'000'000, 70'000'000};
  return base[(i + static_cast<std::uint64_t>(thread)) % 7] + (i * 2654435761u) % 97;
}

/// The histogram's first and last buckets hold the block's min and max: the
/// statistics of one interval describe the same records.
void check_consistent(const BlockResults& b) {
  BOOST_TEST(b.histogram.total() == b.hit_count);
  if (b.hit_count == 0) return;
  BOOST_TEST(latency_histogram::bucket_of(b.min_time_ns) == b.histogram.first);
  BOOST_TEST(latency_histogram::bucket_of(b.max_time_ns) == b.histogram.first + b.histogram.counts.size() - 1);
  BOOST_TEST(b.min_time_ns <= b.max_time_ns);
  BOOST_TEST(b.total_time_ns >= b.hit_count * b.min_time_ns);
  BOOST_TEST(b.total_time_ns <= b.hit_count * b.max_time_ns);
}

struct sums {
  std::uint64_t hits = 0, total = 0;
  latency_histogram hist;
};
} // namespace

BOOST_AUTO_TEST_SUITE(sparse_histograms)

BOOST_AUTO_TEST_CASE(percentiles_from_constructed_samples_match_nearest_rank_within_the_bucket_error) {
  Profiler p{"percentiles"};
  auto site = p.site(0, "constructed");
  BOOST_REQUIRE(site);
  // 20,000 samples over 12 octaves (more than a slot's eight directory
  // entries), in an order that visits octaves out of order.
  std::vector<std::uint64_t> samples;
  latency_histogram reference;
  for (std::uint64_t i = 0; i < 20'000; ++i) {
    const std::uint64_t ns = 20 + (i * 7919 % 20'000) * (i % 3 == 0 ? 1 : i % 3 == 1 ? 17 : 251);
    samples.push_back(ns);
    reference.add(ns);
    p.record(*site, nanoseconds(ns));
  }
  std::sort(samples.begin(), samples.end());
  const auto r = p.get_results();
  const BlockResults* b = r.find_block(0, "constructed");
  BOOST_REQUIRE(b);
  BOOST_TEST(b->hit_count == samples.size());
  BOOST_TEST((b->histogram == reference)); // every sample in its bucket, none lost
  BOOST_TEST(b->min_time_ns == samples.front());
  BOOST_TEST(b->max_time_ns == samples.back());
  const auto pct = b->percentiles();
  auto truth = [&](double q) {
    return samples[static_cast<std::size_t>(std::ceil(q * static_cast<double>(samples.size()))) - 1];
  };
  const std::pair<double, std::uint64_t> cases[] = {
      {0.50, pct.p50_ns}, {0.90, pct.p90_ns}, {0.99, pct.p99_ns}, {0.999, pct.p999_ns}};
  for (auto [q, got] : cases) {
    const double want = static_cast<double>(truth(q));
    BOOST_TEST_INFO("q=" << q << " got " << got << " want " << want);
    BOOST_TEST(std::abs(static_cast<double>(got) - want) <= want * 0.0625);
  }
}

BOOST_AUTO_TEST_CASE(sparse_histogram_operations_keep_it_trimmed) {
  latency_histogram h;
  BOOST_TEST(h.counts.empty());
  h.add(1000, 2);
  h.add(10, 1);
  h.add(1'000'000, 3);
  BOOST_TEST(h.total() == 6u);
  BOOST_TEST(h.first == latency_histogram::bucket_of(10));
  BOOST_TEST(h.counts.back() == 3u);
  BOOST_TEST(h.count(latency_histogram::bucket_of(1000)) == 2u);
  BOOST_TEST(h.count(0) == 0u);
  BOOST_TEST(h.count(latency_histogram::bucket_count + 5) == 0u);
  latency_histogram g;
  g.add(5);
  g.merge(h);
  BOOST_TEST(g.total() == 7u);
  BOOST_TEST(g.first == 5u);
  std::vector<std::uint64_t> dense(latency_histogram::bucket_count, 0);
  dense[40] = 4;
  dense[100] = 1;
  latency_histogram d;
  d.assign_dense(dense.data());
  BOOST_TEST(d.first == 40u);
  BOOST_TEST(d.counts.size() == 61u);
  latency_histogram same;
  same.add_bucket(100, 1);
  same.add_bucket(40, 4);
  BOOST_TEST((same == d));
}

BOOST_AUTO_TEST_CASE(a_bucket_past_four_billion_turns_its_page_wide_without_losing_a_count) {
  // White box (src/core/record.cpp, detail::testing): a narrow page counts to
  // UINT32_MAX, then a 64-bit copy takes over.
  const auto w = stichotrope::detail::testing::widen_a_page(1000);
  BOOST_TEST(w.fast_took_last);
  BOOST_TEST(w.fast_refused);
  BOOST_TEST(w.wide);
  BOOST_TEST(w.count == std::uint64_t{UINT32_MAX} + 2);
  BOOST_TEST(w.total == std::uint64_t{UINT32_MAX} + 2);
}

BOOST_AUTO_TEST_CASE(a_block_over_four_octaves_costs_at_most_320_bytes_per_thread_and_site) {
  Profiler p{"memory"};
  // Enough sites that the buffer's fixed part (18.5 KiB) and its last,
  // partly used arena block (64 KiB) add at most 21 B per (thread, site).
  constexpr int sites = 4000, threads = 8;
  std::vector<Site> handles;
  for (int i = 0; i < sites; ++i) handles.push_back(*p.site(0, "s" + std::to_string(i)));
  const auto before = p.memory_use();
  std::vector<std::thread> pool;
  std::atomic<int> done{0};
  std::atomic<bool> release{false};
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (const Site& s : handles)
        for (std::uint64_t ns : {100u, 300u, 700u, 1500u, 120u}) p.record(s, nanoseconds(ns)); // four octaves
      ++done;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  while (done < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto live = p.memory_use();
  const double per_pair = static_cast<double>(live.thread_buffers - before.thread_buffers) / (sites * threads);
  BOOST_TEST_MESSAGE("measured: " << per_pair << " B per (thread, site), four octaves");
  BOOST_TEST(per_pair <= 320.0);
  release = true;
  for (auto& t : pool) t.join();
  const auto exited = p.memory_use();
  BOOST_TEST(exited.live_threads == 0u);
  BOOST_TEST(exited.thread_buffers == 0u);
  BOOST_TEST(exited.total() < live.total()); // handing over never grows memory
  const auto r = p.get_results();
  for (int i = 0; i < sites; i += 97) {
    const BlockResults* b = r.find_block(0, "s" + std::to_string(i));
    BOOST_TEST(b->hit_count == 5u * threads);
    check_consistent(*b);
  }
}

BOOST_AUTO_TEST_CASE(exited_threads_beyond_the_detail_bound_fold_into_one_entry_and_nothing_is_lost) {
  Profiler p{"exits"};
  std::vector<Site> handles;
  for (int i = 0; i < 1000; ++i) handles.push_back(*p.site(0, "work" + std::to_string(i)));
  // 1,000 sites a thread: four threads fill the 4,096 entries kept one by one.
  for (int t = 0; t < 10; ++t)
    std::thread([&] {
      for (const Site& s : handles) p.record(s, nanoseconds(100 + t));
    }).join();
  const auto threads = p.get_all_thread_data();
  BOOST_TEST(threads.size() == 5u);
  BOOST_TEST(threads.back().thread_name == "(6 older exited threads)");
  BOOST_TEST(threads.back().results.total_hits() == 6000u);
  std::uint64_t hits = 0;
  for (const auto& t : threads) hits += t.results.total_hits();
  BOOST_TEST(hits == 10'000u);
  const auto r = p.get_results();
  BOOST_TEST(r.find_block(0, "work0")->hit_count == 10u);
  BOOST_TEST(r.find_block(0, "work999")->max_time_ns == 109u);
  BOOST_TEST(r.find_block(0, "work999")->min_time_ns == 100u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(intervals)

namespace {
void check_intervals(std::uint64_t per_writer) {
  Profiler p{"intervals"};
  constexpr int sites = 8;
  std::vector<Site> handles;
  for (int i = 0; i < sites; ++i) handles.push_back(*p.site(0, "site" + std::to_string(i)));
  const int writers = 4;
  std::vector<std::thread> pool;
  std::atomic<int> finished{0};
  for (int t = 0; t < writers; ++t)
    pool.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < per_writer; ++i)
        p.record(handles[(i + static_cast<std::uint64_t>(t)) % sites], nanoseconds(duration_of(t, i)));
      // Short-lived helpers exit while intervals are taken.
      std::thread([&, t] {
        for (std::uint64_t i = 0; i < 1000; ++i) p.record(handles[i % sites], nanoseconds(duration_of(t, i)));
      }).join();
      ++finished;
    });
  std::vector<sums> taken(sites);
  int intervals = 0, nonempty = 0;
  auto take = [&] {
    const auto r = p.take_results();
    ++intervals;
    bool any = false;
    for (int i = 0; i < sites; ++i) {
      const BlockResults* b = r.find_block(0, "site" + std::to_string(i));
      if (b == nullptr) continue;
      check_consistent(*b);
      taken[i].hits += b->hit_count;
      taken[i].total += b->total_time_ns;
      taken[i].hist.merge(b->histogram);
      any = any || b->hit_count > 0;
    }
    nonempty += any ? 1 : 0;
  };
  while (finished < writers) {
    take();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (auto& t : pool) t.join();
  take();
  // What was recorded, computed independently.
  std::vector<sums> truth(sites);
  for (int t = 0; t < writers; ++t) {
    for (std::uint64_t i = 0; i < per_writer; ++i) {
      auto& s = truth[(i + static_cast<std::uint64_t>(t)) % sites];
      s.hits += 1;
      s.total += duration_of(t, i);
      s.hist.add(duration_of(t, i));
    }
    for (std::uint64_t i = 0; i < 1000; ++i) {
      auto& s = truth[i % sites];
      s.hits += 1;
      s.total += duration_of(t, i);
      s.hist.add(duration_of(t, i));
    }
  }
  BOOST_TEST_MESSAGE("measured: " << intervals << " intervals, " << nonempty << " with records");
  BOOST_TEST(nonempty >= 2); // the test saw records split between intervals
  const auto cumulative = p.get_results();
  for (int i = 0; i < sites; ++i) {
    BOOST_TEST_INFO("site " << i);
    BOOST_TEST(taken[i].hits == truth[i].hits);
    BOOST_TEST(taken[i].total == truth[i].total);
    BOOST_TEST((taken[i].hist == truth[i].hist));
    const BlockResults* b = cumulative.find_block(0, "site" + std::to_string(i));
    BOOST_TEST(b->hit_count == truth[i].hits); // get_results() still counts since the start
    BOOST_TEST(b->total_time_ns == truth[i].total);
    BOOST_TEST((b->histogram == truth[i].hist));
  }
  const auto after = p.take_results();
  BOOST_TEST(after.total_hits() == 0u); // nothing counted twice
}

} // namespace

BOOST_AUTO_TEST_CASE(each_record_lands_in_exactly_one_interval_while_threads_record_and_exit) {
  check_intervals(under_sanitizer ? 40'000 : 400'000);
}

BOOST_AUTO_TEST_CASE(the_same_with_the_page_protection_barrier) {
  // Where the kernel has no membarrier, a page-protection change orders the
  // recorders' stores instead: the same exactness, the slower barrier.
  stichotrope::detail::testing::use_barrier_by_protection(true);
  check_intervals(under_sanitizer ? 40'000 : 400'000);
  stichotrope::detail::testing::use_barrier_by_protection(false);
}

BOOST_AUTO_TEST_CASE(a_read_split_among_threads_counts_every_slot_once_while_another_thread_records) {
  // Enough live (thread, site) slots for merge_buffers to split the read
  // among threads (src/core/aggregate.cpp), while one more thread records.
  Profiler p{"split"};
  constexpr int threads = 20, sites = 3300;
  static_assert(std::uint64_t{threads} * sites >= stichotrope::detail::testing::slots_for_a_parallel_merge());
  std::vector<Site> handles;
  for (int i = 0; i < sites; ++i) handles.push_back(*p.site(0, "s" + std::to_string(i)));
  const Site busy = *p.site(1, "busy");
  std::atomic<int> ready{0};
  std::atomic<bool> release{false}, stop{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int round = 0; round < 2; ++round)
        for (int i = 0; i < sites; ++i) p.record(handles[i], nanoseconds(duration_of(t, std::uint64_t(i))));
      ++ready;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1)); // parked: its buffer stays live
    });
  std::uint64_t busy_records = 0;
  std::thread recorder([&] {
    while (!stop) {
      p.record(busy, nanoseconds(50));
      ++busy_records;
    }
  });
  while (ready < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<sums> truth(sites);
  std::vector<std::uint64_t> low(sites, UINT64_MAX), high(sites, 0);
  for (int t = 0; t < threads; ++t)
    for (int i = 0; i < sites; ++i)
      for (int round = 0; round < 2; ++round) {
        low[i] = std::min(low[i], duration_of(t, std::uint64_t(i)));
        high[i] = std::max(high[i], duration_of(t, std::uint64_t(i)));
        truth[i].hits += 1;
        truth[i].total += duration_of(t, std::uint64_t(i));
        truth[i].hist.add(duration_of(t, std::uint64_t(i)));
      }
  auto check = [&](const ProfilerResults& r, const char* what) {
    BOOST_TEST_INFO(what);
    if (std::thread::hardware_concurrency() > 1) BOOST_TEST(stichotrope::detail::testing::last_merge_threads() > 1u);
    int wrong = 0;
    for (int i = 0; i < sites; ++i) {
      const BlockResults* b = r.find_block(0, "s" + std::to_string(i));
      if (b == nullptr || b->hit_count != truth[i].hits || b->total_time_ns != truth[i].total ||
          !(b->histogram == truth[i].hist) || b->min_time_ns != low[i] || b->max_time_ns != high[i])
        ++wrong;
      else
        check_consistent(*b);
    }
    BOOST_TEST(wrong == 0);
  };
  std::uint64_t busy_taken = 0;
  check(p.get_results(), "get_results");
  const auto first = p.take_results();
  check(first, "take_results");
  if (const BlockResults* b = first.find_block(1, "busy")) busy_taken += b->hit_count;
  check(p.get_results(), "get_results after take_results"); // still counts since the start
  const auto second = p.take_results();
  BOOST_TEST(second.total_hits() == (second.find_block(1, "busy") ? second.find_block(1, "busy")->hit_count : 0u));
  if (const BlockResults* b = second.find_block(1, "busy")) busy_taken += b->hit_count;
  stop = true;
  recorder.join();
  release = true;
  for (auto& t : pool) t.join();
  const auto last = p.take_results();
  if (const BlockResults* b = last.find_block(1, "busy")) busy_taken += b->hit_count;
  BOOST_TEST(busy_taken == busy_records); // each of the busy thread's records in exactly one interval
  BOOST_TEST(p.get_results().find_block(1, "busy")->hit_count == busy_records);
}

BOOST_AUTO_TEST_CASE(interval_statistics_describe_only_that_intervals_records) {
  Profiler p{"interval_minmax"};
  auto site = p.site(0, "b");
  p.record(*site, nanoseconds(10));
  p.record(*site, nanoseconds(1'000'000));
  const auto first = p.take_results();
  BOOST_TEST(first.find_block(0, "b")->min_time_ns == 10u);
  BOOST_TEST(first.find_block(0, "b")->max_time_ns == 1'000'000u);
  p.record(*site, nanoseconds(500));
  p.record(*site, nanoseconds(700));
  const auto second = p.take_results();
  const BlockResults* b = second.find_block(0, "b");
  BOOST_TEST(b->hit_count == 2u);
  BOOST_TEST(b->min_time_ns == 500u);
  BOOST_TEST(b->max_time_ns == 700u);
  check_consistent(*b);
  const auto empty = p.take_results();
  BOOST_TEST(empty.total_hits() == 0u);
  p.record(*site, nanoseconds(3));
  const auto all_results = p.get_results();
  const auto since_start = all_results.find_block(0, "b");
  BOOST_TEST(since_start->hit_count == 5u);
  BOOST_TEST(since_start->min_time_ns == 3u);
  BOOST_TEST(since_start->max_time_ns == 1'000'000u);
  p.clear();
  BOOST_TEST(p.get_results().total_hits() == 0u);
  BOOST_TEST(p.take_results().total_hits() == 0u);
}

BOOST_AUTO_TEST_CASE(callers_and_suspension_statistics_split_by_interval) {
  Profiler p{"interval_callers"};
  auto inner_block = [&] { auto inner = p.block(0, "inner"); }; // one call site
  {
    auto outer = p.block(0, "outer");
    inner_block();
  }
  inner_block(); // a second caller: top level
  const auto first = p.take_results();
  const BlockResults* inner = first.find_block(0, "inner");
  BOOST_REQUIRE(inner);
  BOOST_TEST(inner->callers.size() == 2u);
  for (const auto& c : inner->callers) BOOST_TEST(c.hit_count == 1u);
  inner_block(); // top level only
  const auto second = p.take_results();
  const BlockResults* again = second.find_block(0, "inner");
  BOOST_TEST(again->callers.size() == 1u);
  BOOST_TEST(again->callers[0].parent_site_id == no_parent);
  BOOST_TEST(again->callers[0].hit_count == 1u);
  BOOST_TEST(again->callers[0].total_time_ns == again->total_time_ns);
  const auto all_results = p.get_results();
  const BlockResults* all = all_results.find_block(0, "inner");
  BOOST_TEST(all->hit_count == 3u);
  std::uint64_t edge_hits = 0;
  for (const auto& c : all->callers) edge_hits += c.hit_count;
  BOOST_TEST(edge_hits == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(site_cache)

BOOST_AUTO_TEST_CASE(a_thread_using_a_thousand_named_sites_grows_its_cache_to_hold_them) {
  Profiler p{"cache"};
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) names.push_back("hot_site_" + std::to_string(i));
  auto open = [&](const std::string& n) { auto b = p.block(6, std::string_view(n)); }; // one call site
  for (int round = 0; round < 3; ++round)
    for (const auto& n : names) open(n);
  // White box (src/core/record.cpp, detail::testing): this thread's cache.
  const auto cache = stichotrope::detail::testing::site_cache_of_calling_thread();
  BOOST_TEST(cache.size == cache.max);
  const std::size_t held = cache.held;
  BOOST_TEST_MESSAGE("measured: " << held << " of 1000 named sites held in a cache of " << cache.size);
  // Two buckets of two entries per site, a site moved to its other bucket to
  // make room: at a quarter of the cache, every site finds an entry (one
  // slot per site, as before, left up to a fifth of these evicting each
  // other on every pass, by the address the call site was loaded at: a model
  // of the cache in docs/performance.md).
  BOOST_TEST(held == 1000u);
  const auto r = p.get_results();
  BOOST_TEST(r.total_hits() == 3000u);
  BOOST_TEST(r.tracks.front().blocks.size() == 1000u);
}

// Names longer than 16 bytes that differ only in their middle (neither in
// their first nor their last eight bytes): hashed by their whole text, they
// spread over the cache like any others.
BOOST_AUTO_TEST_CASE(long_names_that_differ_only_in_the_middle_are_each_held) {
  Profiler p{"middle"};
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) names.push_back("GET /users/" + std::to_string(100000 + i) + "/profile");
  auto open = [&](const std::string& n) { auto b = p.block(4, std::string_view(n)); }; // one call site
  for (int round = 0; round < 3; ++round)
    for (const auto& n : names) open(n);
  const auto cache = stichotrope::detail::testing::site_cache_of_calling_thread();
  BOOST_TEST_MESSAGE("measured: " << cache.held << " of 1000 long names held in a cache of " << cache.size);
  BOOST_TEST(cache.size == cache.max);
  BOOST_TEST(cache.held == 1000u); // by their first and last bytes alone, all would share two buckets
  const auto r = p.get_results();
  BOOST_REQUIRE(r.tracks.size() == 1u);
  BOOST_TEST(r.tracks.front().blocks.size() == 1000u);
  for (const auto& b : r.tracks.front().blocks) BOOST_TEST(b.hit_count == 3u, b.name);
}

// A name of up to 16 bytes is matched in the cache by its length and its
// first and last bytes alone (detail::name_key), a longer one by those and
// the registered text: every byte position must still tell names apart.
BOOST_AUTO_TEST_CASE(names_that_differ_in_one_byte_anywhere_are_different_sites) {
  Profiler p{"keys"};
  std::vector<std::string> names;
  for (const std::size_t length : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40}) {
    const std::string base(length, 'a');
    names.push_back(base);
    for (std::size_t at = 0; at < length; ++at) {
      std::string other = base;
      other[at] = 'b';
      names.push_back(other);
    }
  }
  BOOST_REQUIRE(names.size() == 333u);
  // White box (src/core/record.cpp, detail::testing): the comparison itself, for
  // every pair, since the hash rarely puts two of these in one bucket.
  std::size_t held = 0;
  for (const auto& a : names)
    for (const auto& b : names) held += stichotrope::detail::testing::cache_entry_holds(a, b) ? 1 : 0;
  BOOST_TEST(held == names.size());
  for (const auto& a : names) BOOST_TEST(stichotrope::detail::testing::cache_entry_holds(a, a), a);
  // Each name opened (index % 5) + 1 times on two tracks, interleaved, from
  // one call site, through a reused buffer: the cache is asked every time.
  std::string text;
  auto open = [&](int track, const std::string& n) {
    text = n;
    auto b = p.block(track, std::string_view(text));
  };
  for (int round = 0; round < 5; ++round)
    for (std::size_t i = 0; i < names.size(); ++i)
      if (static_cast<int>(i % 5) >= round) {
        open(1, names[i]);
        open(2, names[i]);
      }
  const auto r = p.get_results();
  for (const int track : {1, 2}) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      const BlockResults* b = r.find_block(track, names[i]);
      BOOST_REQUIRE_MESSAGE(b != nullptr, names[i]);
      BOOST_TEST(b->hit_count == i % 5 + 1, names[i] << " on track " << track);
    }
  }
  BOOST_TEST(r.tracks.size() == 2u);
  for (const auto& t : r.tracks) BOOST_TEST(t.blocks.size() == names.size());
}

// More sites than the largest cache holds, from two call sites: entries are
// moved and evicted all the time, and every block still lands on its own
// site (the same name at two call sites is two sites).
BOOST_AUTO_TEST_CASE(more_named_sites_than_the_cache_holds_are_each_counted_exactly) {
  Profiler p{"evicted"};
  std::vector<std::string> names;
  for (std::uint32_t i = 0; i < 4096; ++i) names.push_back("site_" + std::to_string(i * 7919));
  auto here = [&](const std::string& n) { auto b = p.block(3, std::string_view(n)); };
  auto there = [&](const std::string& n) { auto b = p.block(3, std::string_view(n)); };
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      here(names[i]);
      if (i % 2 == 0) there(names[i]);
    }
  }
  const auto cache = stichotrope::detail::testing::site_cache_of_calling_thread();
  BOOST_TEST(cache.size == cache.max);
  BOOST_TEST(cache.max == names.size()); // 1.5 x as many sites as it holds
  BOOST_TEST_MESSAGE("measured: " << cache.held << " of " << names.size() * 3 / 2 << " sites held in a cache of "
                                  << cache.size);
  BOOST_TEST(cache.held <= cache.size);
  const auto r = p.get_results();
  BOOST_TEST(r.total_hits() == 3u * (names.size() + names.size() / 2));
  BOOST_REQUIRE(r.tracks.size() == 1u);
  BOOST_TEST(r.tracks.front().blocks.size() == names.size() + names.size() / 2);
  std::size_t checked = 0;
  for (const auto& b : r.tracks.front().blocks) {
    BOOST_TEST(b.hit_count == 3u, b.name);
    ++checked;
  }
  BOOST_TEST(checked == names.size() * 3 / 2);
}

BOOST_AUTO_TEST_SUITE_END()
