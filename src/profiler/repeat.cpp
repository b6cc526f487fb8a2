// Repetition testing: Profiler::repeat's loop state (when to stop, what each
// run took, getrusage around it), the statistics of the runs, and the
// comparison of two repetitions. docs/repetition.md says which methods and
// why they fit timing data.
module;
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tl/expected.hpp>
module stichotrope;

namespace stichotrope {

namespace {

/// The median of sorted values (the mean of the middle two for an even count).
double median_of_sorted(const std::vector<double>& s) {
  const std::size_t n = s.size();
  if (n == 0) return 0;
  return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/// Nearest-rank percentile of sorted values, q in (0, 1].
std::uint64_t nearest_rank(const std::vector<std::uint64_t>& s, double q) {
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(s.size())));
  return s[std::clamp<std::size_t>(rank, 1, s.size()) - 1];
}

/// P(X <= k) for X ~ Binomial(n, 1/2).
double binomial_half_cdf(std::uint64_t n, std::uint64_t k) {
  double sum = 0;
  const double log_half_n = static_cast<double>(n) * std::log(0.5);
  for (std::uint64_t i = 0; i <= k; ++i)
    sum += std::exp(std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(i) + 1) -
                    std::lgamma(static_cast<double>(n - i) + 1) + log_half_n);
  return sum;
}

/// The standard normal quantile (bisection on erfc: plenty for a test's z).
double normal_quantile(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

/// The 1-based rank k of the order statistics [x(k), x(n-k+1)] that hold the
/// median with probability >= level, and the level they achieve. From 6
/// runs on the level is met; below, k = 1 (min to max) and its level.
std::pair<std::uint64_t, double> median_interval_rank(std::uint64_t n, double level) {
  const double tail = (1 - level) / 2;
  if (n > 1000) { // the normal approximation of the binomial
    const double z = normal_quantile(1 - tail);
    const auto k = static_cast<std::uint64_t>(
        std::max(1.0, std::floor(static_cast<double>(n) / 2 - z * std::sqrt(static_cast<double>(n)) / 2)));
    return {k, level};
  }
  std::uint64_t k = 1;
  while (k + 1 <= n / 2 && binomial_half_cdf(n, k) <= tail) ++k; // P(X <= k - 1) <= tail for the k reached
  return {k, 1 - 2 * binomial_half_cdf(n, k - 1)};
}

std::uint64_t rounded(double v) { return v <= 0 ? 0 : static_cast<std::uint64_t>(std::llround(v)); }

} // namespace

RepetitionResults summarize_repetitions(std::vector<std::uint64_t> samples_ns, const std::vector<std::uint64_t>& bytes,
                                        const std::vector<std::uint64_t>& page_faults,
                                        const std::vector<std::uint64_t>& context_switches) {
  RepetitionResults r;
  r.runs = samples_ns.size();
  r.samples_ns = std::move(samples_ns);
  const auto& x = r.samples_ns;
  const std::size_t n = x.size();
  if (n == 0) return r;
  std::vector<std::uint64_t> s = x;
  std::sort(s.begin(), s.end());
  r.min_ns = s.front();
  r.max_ns = s.back();
  const std::vector<double> sd(s.begin(), s.end());
  r.median_ns = rounded(median_of_sorted(sd));
  r.p90_ns = nearest_rank(s, 0.90);
  r.p99_ns = nearest_rank(s, 0.99);
  const double sum = std::accumulate(sd.begin(), sd.end(), 0.0);
  r.mean_ns = sum / static_cast<double>(n);
  double squares = 0;
  for (const double v : sd) squares += (v - r.mean_ns) * (v - r.mean_ns);
  r.stddev_ns = n > 1 ? std::sqrt(squares / static_cast<double>(n - 1)) : 0.0;

  // The mean's interval: a percentile bootstrap; beyond 5,000 runs the
  // central limit theorem holds and the normal interval is used.
  if (n > 5000) {
    const double half = 1.959963984540054 * r.stddev_ns / std::sqrt(static_cast<double>(n));
    r.mean_ci_low_ns = r.mean_ns - half;
    r.mean_ci_high_ns = r.mean_ns + half;
  } else {
    constexpr int resamples = 2000;
    std::mt19937_64 rng(0x5eed0000u + n); // fixed: the same runs give the same interval
    std::uniform_int_distribution<std::size_t> pick(0, n - 1);
    std::vector<double> means(resamples);
    for (auto& m : means) {
      double t = 0;
      for (std::size_t i = 0; i < n; ++i) t += static_cast<double>(x[pick(rng)]);
      m = t / static_cast<double>(n);
    }
    std::sort(means.begin(), means.end());
    r.mean_ci_low_ns = means[static_cast<std::size_t>(0.025 * resamples)];
    r.mean_ci_high_ns = means[static_cast<std::size_t>(std::ceil(0.975 * resamples)) - 1];
  }
  const auto [k, level] = median_interval_rank(n, 0.95);
  r.median_ci_low_ns = s[k - 1];
  r.median_ci_high_ns = s[n - k];
  r.median_ci_level = level;

  // Outliers: the modified z-score (Iglewicz and Hoaglin) against the MAD.
  std::vector<double> deviations(n);
  const double med = median_of_sorted(sd);
  for (std::size_t i = 0; i < n; ++i) deviations[i] = std::abs(sd[i] - med);
  std::sort(deviations.begin(), deviations.end());
  const double mad = median_of_sorted(deviations);
  double kept_sum = 0;
  std::size_t kept = 0;
  std::uint64_t kept_min = r.min_ns;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = std::abs(static_cast<double>(x[i]) - med);
    const bool outlier = mad > 0 ? 0.6745 * d / mad > 3.5 : d > 0;
    if (outlier) {
      r.outliers.emplace_back(i, x[i]);
    } else {
      kept_min = kept == 0 ? x[i] : std::min(kept_min, x[i]);
      kept_sum += static_cast<double>(x[i]);
      ++kept;
    }
  }
  r.mean_without_outliers_ns = kept > 0 ? kept_sum / static_cast<double>(kept) : r.mean_ns;
  r.min_without_outliers_ns = kept_min;

  if (bytes.size() == n) {
    const auto fastest = static_cast<std::size_t>(std::min_element(x.begin(), x.end()) - x.begin());
    r.bytes_fastest = bytes[fastest];
    r.bytes_total = std::accumulate(bytes.begin(), bytes.end(), std::uint64_t{0});
    if (r.min_ns > 0)
      r.best_bytes_per_second = static_cast<double>(r.bytes_fastest) * 1e9 / static_cast<double>(r.min_ns);
    if (sum > 0) r.mean_bytes_per_second = static_cast<double>(r.bytes_total) * 1e9 / sum;
  }
  if (page_faults.size() == n) {
    r.page_faults_per_run =
        static_cast<double>(std::accumulate(page_faults.begin(), page_faults.end(), std::uint64_t{0})) /
        static_cast<double>(n);
    r.max_page_faults = *std::max_element(page_faults.begin(), page_faults.end());
  }
  if (context_switches.size() == n) {
    r.context_switches_per_run =
        static_cast<double>(std::accumulate(context_switches.begin(), context_switches.end(), std::uint64_t{0})) /
        static_cast<double>(n);
    r.max_context_switches = *std::max_element(context_switches.begin(), context_switches.end());
  }
  return r;
}

RepetitionComparison compare_repetitions(const RepetitionResults& base, const RepetitionResults& current,
                                         double confidence) {
  RepetitionComparison c;
  c.name = current.name;
  c.track = current.track;
  c.confidence = confidence;
  c.base_median_ns = base.per_call(base.median_ns);
  c.current_median_ns = current.per_call(current.median_ns);
  c.base_runs = base.samples_ns.size();
  c.current_runs = current.samples_ns.size();
  const std::size_t n1 = c.base_runs, n2 = c.current_runs;
  if (n1 == 0 || n2 == 0) return c;
  // Call for call: each run divided by its batch.
  const auto calls = [](const RepetitionResults& r) {
    std::vector<double> v;
    v.reserve(r.samples_ns.size());
    for (const auto ns : r.samples_ns) v.push_back(r.per_call(ns));
    return v;
  };
  const std::vector<double> base_calls = calls(base), current_calls = calls(current);

  // Mann-Whitney U: average ranks for ties, the normal approximation with
  // the tie correction and a continuity correction.
  std::vector<std::pair<double, int>> all;
  all.reserve(n1 + n2);
  for (const auto v : base_calls) all.emplace_back(v, 0);
  for (const auto v : current_calls) all.emplace_back(v, 1);
  std::sort(all.begin(), all.end());
  const double nn = static_cast<double>(n1 + n2);
  double rank_sum_base = 0, ties = 0;
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double t = static_cast<double>(j - i);
    const double avg = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2; // ranks i+1 .. j
    for (std::size_t m = i; m < j; ++m)
      if (all[m].second == 0) rank_sum_base += avg;
    ties += t * t * t - t;
    i = j;
  }
  const double d1 = static_cast<double>(n1), d2 = static_cast<double>(n2);
  const double u = rank_sum_base - d1 * (d1 + 1) / 2;
  const double mu = d1 * d2 / 2;
  const double var = d1 * d2 / 12 * ((nn + 1) - ties / (nn * (nn - 1)));
  if (var > 0) {
    const double z = (std::abs(u - mu) - 0.5) / std::sqrt(var);
    c.p_value = std::min(1.0, std::erfc(std::max(z, 0.0) / std::sqrt(2.0)));
  }

  // Hodges-Lehmann: every difference current - base (each sample thinned to
  // 2,000 evenly spaced order statistics when larger), its median and the
  // distribution-free interval of Lehmann's order statistics.
  const auto thin = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    if (v.size() <= 2000) return v;
    std::vector<double> t(2000);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = v[i * (v.size() - 1) / (t.size() - 1)];
    return t;
  };
  const auto a = thin(base_calls), b = thin(current_calls);
  std::vector<double> diffs;
  diffs.reserve(a.size() * b.size());
  for (const auto y : b)
    for (const auto x : a) diffs.push_back(y - x);
  std::sort(diffs.begin(), diffs.end());
  c.shift_ns = median_of_sorted(diffs);
  const double m = static_cast<double>(diffs.size()), da = static_cast<double>(a.size()),
               db = static_cast<double>(b.size());
  const double z = normal_quantile(1 - (1 - confidence) / 2);
  const double ka = std::floor(m / 2 - z * std::sqrt(da * db * (da + db + 1) / 12));
  const auto lo = static_cast<std::size_t>(std::clamp(ka, 0.0, m - 1));
  const auto hi = static_cast<std::size_t>(std::clamp(m - ka - 1, 0.0, m - 1));
  c.shift_low_ns = diffs[std::min(lo, hi)];
  c.shift_high_ns = diffs[std::max(lo, hi)];
  const double scale = c.base_median_ns > 0 ? c.base_median_ns : 1.0;
  c.relative = c.shift_ns / scale;
  c.relative_low = c.shift_low_ns / scale;
  c.relative_high = c.shift_high_ns / scale;
  using verdict = RepetitionComparison::verdict;
  c.result =
      c.p_value < 1 - confidence ? (c.shift_ns > 0 ? verdict::slower : verdict::faster) : verdict::indistinguishable;
  return c;
}

std::string to_text(const RepetitionComparison& c) {
  using verdict = RepetitionComparison::verdict;
  char line[512];
  const char* word = c.result == verdict::slower ? "slower" : c.result == verdict::faster ? "faster" : "";
  std::string head = c.name + " (track " + std::to_string(c.track) + "): ";
  if (c.result == verdict::indistinguishable)
    head += "indistinguishable";
  else {
    std::snprintf(line, sizeof line, "%.2f %% %s", std::abs(c.relative) * 100, word);
    head += line;
  }
  // Calls of a few ns (batches) get the decimals that tell them apart.
  const int shift_digits = c.base_median_ns < 100 ? 3 : 1, median_digits = c.base_median_ns < 100 ? 2 : 0;
  std::snprintf(line, sizeof line,
                " at %.0f %% confidence (Mann-Whitney p = %.3g); shift %+.*f ns, %.0f %% interval %+.*f .. %+.*f ns "
                "(%+.2f .. %+.2f %%); medians %.*f -> %.*f ns over %llu and %llu runs\n",
                c.confidence * 100, c.p_value, shift_digits, c.shift_ns, c.confidence * 100, shift_digits,
                c.shift_low_ns, shift_digits, c.shift_high_ns, c.relative_low * 100, c.relative_high * 100,
                median_digits, c.base_median_ns, median_digits, c.current_median_ns,
                static_cast<unsigned long long>(c.base_runs), static_cast<unsigned long long>(c.current_runs));
  return head + line;
}

namespace detail {

namespace {
std::pair<std::uint64_t, std::uint64_t> thread_usage() noexcept {
  rusage u{};
  if (getrusage(RUSAGE_THREAD, &u) != 0) return {0, 0};
  return {static_cast<std::uint64_t>(u.ru_minflt + u.ru_majflt), static_cast<std::uint64_t>(u.ru_nvcsw + u.ru_nivcsw)};
}
} // namespace

std::optional<Error> check_repeat(const RepeatOptions& o) {
  if (o.iterations == 0 && o.until_no_improvement.count() <= 0)
    return Error{errc::invalid_argument, "repeat: no way to stop: give iterations (> 0) or until_no_improvement (> 0)"};
  if (o.iterations > 0 && o.until_no_improvement.count() > 0)
    return Error{errc::invalid_argument, "repeat: give iterations or until_no_improvement, not both"};
  if (o.time_limit.count() < 0) return Error{errc::invalid_argument, "repeat: time_limit must not be negative"};
  if (o.batch == 0) return Error{errc::invalid_argument, "repeat: batch must be at least 1 call per run"};
  if (o.min_run_time.count() < 0) return Error{errc::invalid_argument, "repeat: min_run_time must not be negative"};
  return std::nullopt;
}

expected<RepetitionResults> refused(Error e) { return tl::unexpected<Error>(std::move(e)); }

repetition::repetition(const RepeatOptions& options) : options_(options), clock_(options.clock), batch_(options.batch) {
  std::tie(faults_at_start_, switches_at_start_) = thread_usage();
  started_ns_ = best_at_ns_ = now_ns();
}

std::uint64_t repetition::now_ns() const noexcept {
  if (clock_ != nullptr) return clock_();
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

bool repetition::more() {
  const std::uint64_t now = now_ns();
  if (options_.iterations > 0 && samples_.size() >= options_.iterations) {
    stopped_by_ = "iterations";
    return false;
  }
  if (options_.time_limit.count() > 0 && now - started_ns_ >= static_cast<std::uint64_t>(options_.time_limit.count())) {
    stopped_by_ = "time limit";
    return false;
  }
  if (options_.iterations == 0 && !samples_.empty() &&
      now - best_at_ns_ >= static_cast<std::uint64_t>(options_.until_no_improvement.count())) {
    stopped_by_ = "no improvement";
    return false;
  }
  return true;
}

// getrusage around every run costs two system calls, which slow the next
// run of a short function (a 64 KiB copy: median 0.85 -> 1.27 us here). So
// each run is read on its own only when the previous one took 20 us or more
// (the calls then cost under 1 %); the averages come from the readings
// around the whole repetition.
constexpr std::uint64_t usage_per_run_from_ns = 20'000;

void repetition::begin_run() noexcept {
  usage_this_run_ = last_ns_ >= usage_per_run_from_ns;
  if (usage_this_run_) std::tie(faults_before_, switches_before_) = thread_usage();
}

// The most calls a chosen batch makes a run: a function of no measurable
// time (a fake clock that stands still) stops the doubling here.
constexpr std::uint64_t max_chosen_batch = std::uint64_t{1} << 20;

bool repetition::longer_batch(std::uint64_t start, std::uint64_t end) noexcept {
  // Three runs of each batch, the fastest decides: one run slowed by an
  // interrupt must not end the doubling early.
  const std::uint64_t ns = clock_ != nullptr ? end - start : ticks_to_ns(start, end);
  choosing_fastest_ns_ = std::min(choosing_fastest_ns_, ns);
  if (++choosing_runs_ < 3) return true;
  if (choosing_fastest_ns_ < static_cast<std::uint64_t>(options_.min_run_time.count()) && batch_ < max_chosen_batch) {
    batch_ *= 2;
    choosing_runs_ = 0;
    choosing_fastest_ns_ = UINT64_MAX;
    return true;
  }
  // Chosen: the page faults and context switches of the choosing runs are
  // not the measured runs'.
  std::tie(faults_at_start_, switches_at_start_) = thread_usage();
  return false;
}

void repetition::end_run(std::uint64_t start, std::uint64_t end, std::uint64_t bytes) {
  const std::uint64_t ns = clock_ != nullptr ? end - start : ticks_to_ns(start, end); // the run: `batch` calls
  if (usage_this_run_) {
    const auto [faults, switches] = thread_usage();
    max_faults_ = std::max(max_faults_, faults - faults_before_);
    max_switches_ = std::max(max_switches_, switches - switches_before_);
  }
  last_ns_ = ns;
  samples_.push_back(ns);
  bytes_.push_back(bytes);
  if (ns < best_ns_) {
    best_ns_ = ns;
    best_at_ns_ = now_ns();
  }
}

RepetitionResults repetition::finish(profiler_core& core, int track, std::string_view name, std::string stopped_by) {
  const auto [faults, switches] = thread_usage();
  const bool any_bytes = std::any_of(bytes_.begin(), bytes_.end(), [](std::uint64_t b) { return b != 0; });
  RepetitionResults r = summarize_repetitions(std::move(samples_), any_bytes ? bytes_ : std::vector<std::uint64_t>{});
  if (r.runs > 0) {
    r.page_faults_per_run = static_cast<double>(faults - faults_at_start_) / static_cast<double>(r.runs);
    r.context_switches_per_run = static_cast<double>(switches - switches_at_start_) / static_cast<double>(r.runs);
  }
  r.max_page_faults = max_faults_;
  r.max_context_switches = max_switches_;
  r.name = std::string(name);
  r.track = track;
  r.batch = batch_;
  r.stopped_by = stopped_by.empty() ? stopped_by_ : std::move(stopped_by);
  std::lock_guard lock(core.mutex);
  core.repetitions.push_back(r);
  return r;
}

} // namespace detail
} // namespace stichotrope
