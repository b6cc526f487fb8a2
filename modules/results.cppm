module;
#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
export module stichotrope:results;
import :clock;

export namespace stichotrope {

/// Latency histogram with a fixed log-linear bucket layout: values below 16 ns
/// each have their own bucket; above, every power of two is split into 8
/// buckets, so a bucket is at most 1/8 of its lower bound wide and a reported
/// percentile is within 6.25% of the true one. Values of 2^41 ns (about 36
/// minutes) and more share the last bucket; min and max stay exact.
struct latency_histogram {
  static constexpr unsigned linear_buckets = 16;
  static constexpr unsigned sub_bits = 3;
  static constexpr unsigned max_exponent = 40;
  static constexpr unsigned bucket_count = linear_buckets + (max_exponent - 4 + 1) * (1u << sub_bits);

  static constexpr unsigned bucket_of(std::uint64_t ns) noexcept {
    if (ns < linear_buckets) return static_cast<unsigned>(ns);
    const unsigned e = 63u - static_cast<unsigned>(std::countl_zero(ns));
    if (e > max_exponent) return bucket_count - 1;
    const unsigned sub = static_cast<unsigned>(ns >> (e - sub_bits)) & ((1u << sub_bits) - 1);
    return linear_buckets + (e - 4) * (1u << sub_bits) + sub;
  }
  /// Smallest value that falls into bucket b.
  static constexpr std::uint64_t lower_bound(unsigned b) noexcept {
    if (b < linear_buckets) return b;
    const unsigned e = (b - linear_buckets) / (1u << sub_bits) + 4;
    const unsigned sub = (b - linear_buckets) % (1u << sub_bits);
    return (std::uint64_t{(1u << sub_bits) + sub}) << (e - sub_bits);
  }
  /// Largest value that falls into bucket b (the last bucket is open-ended).
  static constexpr std::uint64_t upper_bound(unsigned b) noexcept {
    return b + 1 >= bucket_count ? UINT64_MAX : lower_bound(b + 1) - 1;
  }

  /// Sparse: counts[i] is the count of bucket `first + i`. Empty when there
  /// are no samples, and otherwise never begins or ends with a zero, so that
  /// equal histograms compare equal.
  unsigned first = 0;
  std::vector<std::uint64_t> counts;

  /// The count of bucket b (0 outside the stored range).
  std::uint64_t count(unsigned b) const noexcept {
    return b >= first && b - first < counts.size() ? counts[b - first] : 0;
  }
  void add(std::uint64_t ns, std::uint64_t n = 1);
  void add_bucket(unsigned b, std::uint64_t n);
  /// Replaces the contents with `dense`, bucket_count counters by bucket.
  void assign_dense(const std::uint64_t* dense);
  void merge(const latency_histogram& other);
  std::uint64_t total() const noexcept;
  /// Nearest-rank percentile q in [0, 1]: the midpoint of the bucket holding
  /// the ceil(q * total)-th sample, clamped to [min_ns, max_ns]. 0 when empty.
  std::uint64_t percentile(double q, std::uint64_t min_ns, std::uint64_t max_ns) const noexcept;

  friend bool operator==(const latency_histogram&, const latency_histogram&) = default;
};

/// Sentinel parent id for blocks opened with no enclosing block.
inline constexpr std::uint32_t no_parent = UINT32_MAX;

/// One edge of the call tree: how often, and how long, this block ran inside
/// the block with `parent_site_id` (or at top level, for no_parent).
struct caller_stats {
  std::uint32_t parent_site_id = no_parent;
  std::uint64_t hit_count = 0;
  std::uint64_t total_time_ns = 0;
  friend bool operator==(const caller_stats&, const caller_stats&) = default;
};

/// The percentiles of a block's or a wait's times (from its histogram).
struct latency_percentiles {
  std::uint64_t p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0;
  friend bool operator==(const latency_percentiles&, const latency_percentiles&) = default;
};
/// The type's former name (the member functions percentiles() shadowed it).
using percentiles [[deprecated("use latency_percentiles")]] = latency_percentiles;

/// Where a block's coroutine waited: one await site of the block, with the
/// statistics of the suspensions charged to it (docs/coroutines.md, "Waits").
/// What Profiler::repeat measured: every run's time, and statistics a
/// reader can trust (docs/repetition.md says which methods and why).
/// Figures are nanoseconds; intervals are 95 % (two-sided).
struct RepetitionResults {
  std::string name;
  int track = 0;
  /// Why it stopped: "iterations", "no improvement" (the fastest run had
  /// not improved for the time asked) or "time limit".
  std::string stopped_by;
  std::vector<std::uint64_t> samples_ns; ///< every measured run, in order (warm-up runs excluded)
  std::uint64_t runs = 0;
  /// Calls of the function per run (RepeatOptions::batch). Every figure here
  /// is per run, as measured (whole ns); per call: per_call(). The table
  /// and compare_repetitions show figures per call.
  std::uint64_t batch = 1;
  std::uint64_t min_ns = 0, max_ns = 0, median_ns = 0;
  double mean_ns = 0, stddev_ns = 0; ///< stddev: the sample standard deviation (n - 1)
  std::uint64_t p90_ns = 0, p99_ns = 0;
  /// The mean's interval: a percentile bootstrap (2,000 resamples, a fixed
  /// seed): no assumption of a normal distribution, so it follows the skew
  /// of timing data.
  double mean_ci_low_ns = 0, mean_ci_high_ns = 0;
  /// The median's interval: distribution-free, from order statistics (the
  /// binomial distribution of how many runs fall below the median), exact
  /// for any continuous distribution however skewed. `median_ci_level` is
  /// the level actually achieved (at least 0.95 from 6 runs on; below that
  /// the widest interval, min to max, and its level).
  std::uint64_t median_ci_low_ns = 0, median_ci_high_ns = 0;
  double median_ci_level = 0;
  /// Runs whose modified z-score 0.6745 |x - median| / MAD exceeds 3.5
  /// (Iglewicz and Hoaglin): by run index (0-based), with their times. With
  /// a MAD of 0 (half the runs or more identical), every run that differs
  /// from the median.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> outliers;
  double mean_without_outliers_ns = 0;
  /// The fastest run that is not an outlier. `min_ns` is the fastest of all:
  /// a short fast phase of the machine (on a VM, tens of microseconds in
  /// which every run is 15-20 % faster) sets it below anything the function
  /// reproduces; this one is the minimum of the runs as they usually are
  /// (docs/repetition.md, "The two minima").
  std::uint64_t min_without_outliers_ns = 0;
  /// Bytes `fn` reported (0: none): of the fastest run, and in all.
  std::uint64_t bytes_fastest = 0, bytes_total = 0;
  double best_bytes_per_second = 0, mean_bytes_per_second = 0;
  /// getrusage(RUSAGE_THREAD) (Linux): page faults (minor and major) and
  /// context switches (voluntary and not) per run on average (read around
  /// the whole repetition), and at most in one run (read around each run
  /// that follows one of 20 us or more, where the two calls cost under 1 %;
  /// shorter runs would be slowed by them).
  double page_faults_per_run = 0, context_switches_per_run = 0;
  std::uint64_t max_page_faults = 0, max_context_switches = 0;
  /// A figure of a run (ns) as a call's: divided by `batch`.
  template <class T>
    requires std::is_arithmetic_v<T>
  double per_call(T run_ns) const noexcept {
    return static_cast<double>(run_ns) / static_cast<double>(batch > 0 ? batch : 1);
  }
  friend bool operator==(const RepetitionResults&, const RepetitionResults&) = default;
};

/// The statistics of `samples_ns` (the runs of a repetition), filled into a
/// RepetitionResults; `bytes` per run (empty: none), page faults and
/// context switches per run (empty: unknown). Deterministic.
RepetitionResults summarize_repetitions(std::vector<std::uint64_t> samples_ns,
                                        const std::vector<std::uint64_t>& bytes = {},
                                        const std::vector<std::uint64_t>& page_faults = {},
                                        const std::vector<std::uint64_t>& context_switches = {});

/// Whether `current` is faster, slower or indistinguishable from `base`.
struct RepetitionComparison {
  std::string name;
  int track = 0;
  enum class verdict { faster, slower, indistinguishable } result = verdict::indistinguishable;
  /// Two-sided p-value of the Mann-Whitney U test (normal approximation with
  /// the tie correction): no assumption on the distributions' shape, robust
  /// to outliers.
  double p_value = 1;
  double confidence = 0.95;
  /// The effect: the Hodges-Lehmann shift (the median of every difference
  /// current - base), with its distribution-free interval at `confidence`,
  /// in ns and relative to the base's median (0.03: 3 % slower). Figures
  /// in ns are per call (runs divided by their batch: two repetitions with
  /// different batches compare call for call).
  double shift_ns = 0, shift_low_ns = 0, shift_high_ns = 0;
  double relative = 0, relative_low = 0, relative_high = 0;
  double base_median_ns = 0, current_median_ns = 0;
  std::uint64_t base_runs = 0, current_runs = 0;
  /// A regression beyond `threshold`: slower at the confidence asked, by a
  /// shift whose estimate exceeds threshold (relative, 0.05 = 5 %).
  bool regression(double threshold) const noexcept { return result == verdict::slower && relative > threshold; }
};

/// Compares two repetitions of the same function (or of two versions of it).
RepetitionComparison compare_repetitions(const RepetitionResults& base, const RepetitionResults& current,
                                         double confidence = 0.95);
/// One paragraph: the verdict, the effect and its interval, the test.
std::string to_text(const RepetitionComparison& c);

/// An await of a child coroutine is the parent of the awaits made inside the
/// child, and its figures include theirs: a block's waits form a tree, and
/// its suspended time is the sum of its top-level waits.
struct WaitResults {
  std::uint32_t site_id = 0;                ///< the wait's id among its profiler's sites
  std::uint32_t parent_site_id = no_parent; ///< the await this one happened under, or no_parent at the top
  std::string name;                         ///< "file.cpp:88", or what was awaited when there is no line
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string function;
  std::string awaited;     ///< the awaited type or operation, when known
  std::uint64_t count = 0; ///< suspensions
  std::uint64_t total_time_ns = 0;
  std::uint64_t min_time_ns = 0;
  std::uint64_t max_time_ns = 0;
  std::uint64_t migrations = 0; ///< suspensions that resumed on another thread than they began on
  latency_histogram histogram;

  latency_percentiles percentiles() const noexcept;
  /// Adds the figures of another record set of the same wait.
  void add(const WaitResults& other);
  friend bool operator==(const WaitResults&, const WaitResults&) = default;
};

/// Statistics of one call site. Seed fields first, extensions after.
struct BlockResults {
  std::string name;
  std::string file;
  std::uint32_t line = 0;
  std::uint64_t hit_count = 0;
  std::uint64_t total_time_ns = 0;
  std::uint64_t min_time_ns = 0; ///< 0 when hit_count is 0
  std::uint64_t max_time_ns = 0;

  // Extensions.
  std::uint32_t site_id = 0; ///< dense id of the call site within its profiler
  std::string function;      ///< enclosing function, from std::source_location
  std::uint32_t column = 0;
  std::uint64_t self_time_ns = 0; ///< total minus time spent in child blocks
  std::uint64_t bytes = 0;        ///< bytes reported through Block::add_bytes
  latency_histogram histogram;
  std::vector<caller_stats> callers;    ///< sorted by parent_site_id
  std::uint64_t other_callers_hits = 0; ///< hits under parents beyond the tracked ones
  std::uint64_t suspended_time_ns = 0;  ///< time the block's coroutine spent suspended inside it
  std::uint64_t suspensions = 0;        ///< suspensions inside the block, all hits together
  std::uint64_t migrations = 0;         ///< hits that resumed on another thread at least once
  std::uint64_t abandoned = 0;          ///< blocks destroyed with their suspended coroutine (not hits)
  /// Hits closed outside the flow that opened them (moved to another thread,
  /// or spanning co_await in a coroutine without a flow): wall time only, no
  /// parent, no suspended time. results.diagnostics names the site.
  std::uint64_t outside_flow = 0;
  std::uint64_t too_deep = 0; ///< hits opened deeper than max nesting: recorded without a parent
  /// Where the suspended time went: the block's await sites, parents before
  /// their children, by site id.
  std::vector<WaitResults> waits;

  /// Wall time minus suspended time: when the block's flow was running.
  std::uint64_t active_time_ns() const noexcept {
    return total_time_ns > suspended_time_ns ? total_time_ns - suspended_time_ns : 0;
  }

  /// Mean in ns as a real number (0 with no hits).
  double avg_time_ns() const noexcept;
  /// Mean rounded to the nearest ns, as the CSV writes it.
  std::uint64_t avg_time_ns_rounded() const noexcept;
  latency_percentiles percentiles() const noexcept;
  /// bytes per second of total time; 0 without bytes or time.
  double throughput_bytes_per_s() const noexcept;

  /// How many awaits wait `w` happened under (0: a top-level wait).
  std::size_t wait_depth(const WaitResults& w) const noexcept;
  /// The names of `w` and of the awaits it happened under, outermost first:
  /// "handler.cpp:12 > db.cpp:40".
  std::string wait_path(const WaitResults& w) const;

  /// Adds another record set of the same call site.
  void merge(const BlockResults& other);

  friend bool operator==(const BlockResults&, const BlockResults&) = default;
};

struct TrackResults {
  int track_idx = 0;
  std::optional<std::string> track_name; ///< null in JSON when unset
  bool enabled = true;
  std::vector<BlockResults> blocks; ///< in site-id order

  std::uint64_t total_time_ns() const noexcept;
  std::uint64_t total_hits() const noexcept;
  friend bool operator==(const TrackResults&, const TrackResults&) = default;
};

/// Everything a profiler measured: plain data, printable without a profiler.
struct ProfilerResults {
  std::string profiler_name;
  std::vector<TrackResults> tracks; ///< in track-index order

  // Extensions.
  clock_source clock = clock_source::steady_clock;
  std::vector<std::string> diagnostics; ///< rejected call sites and similar
  std::uint64_t dropped_records = 0;    ///< records dropped for want of memory (never a crash)
  /// What Profiler::repeat measured since the last clear(), in order.
  std::vector<RepetitionResults> repetitions;

  std::uint64_t total_time_ns() const noexcept;
  std::uint64_t total_hits() const noexcept;
  const TrackResults* find_track(int track_idx) const noexcept;
  /// The first block named `name` on `track_idx`, or nullptr.
  const BlockResults* find_block(int track_idx, std::string_view name) const noexcept;
  /// Block by site id, or nullptr.
  const BlockResults* find_site(std::uint32_t site_id) const noexcept;

  /// Adds results of the same profiler (e.g. another thread's): blocks are
  /// matched by site id, tracks by index.
  void merge(const ProfilerResults& other);

  friend bool operator==(const ProfilerResults&, const ProfilerResults&) = default;
};

/// What a timeline event records.
enum class timeline_kind : std::uint8_t {
  block,   ///< a block or timed await: start and end
  suspend, ///< a flow with open blocks stopped running on this thread
  resume,  ///< ...and started running again (possibly on another thread)
};

/// One event of a thread's timeline; times in ns since the process's clock
/// calibration.
struct TimelineEvent {
  timeline_kind kind = timeline_kind::block;
  std::uint64_t start_ns = 0;
  std::uint64_t end_ns = 0;   ///< equal to start_ns for suspend and resume
  std::uint32_t site_id = 0;  ///< block events: the block; suspend events: the wait site (no_parent: unknown)
  std::uint64_t flow_id = 0;  ///< 0: the thread's own flow; else a coroutine flow or a timed await
  std::uint64_t arrow_id = 0; ///< links a suspend to its resume
  friend bool operator==(const TimelineEvent&, const TimelineEvent&) = default;
};

struct ThreadTimeline {
  std::uint64_t thread_id = 0;
  std::string thread_name;
  bool exited = false;
  std::vector<TimelineEvent> events; ///< in the order the thread wrote them
  std::uint64_t dropped = 0;         ///< events lost to the buffer's bound (counted, never silent)
  friend bool operator==(const ThreadTimeline&, const ThreadTimeline&) = default;
};

struct TimelineSite {
  std::uint32_t site_id = 0;
  int track = 0;
  std::string name;
  std::string file;
  std::uint32_t line = 0;
  std::string awaited; ///< a wait site: what was awaited (docs/coroutines.md, "Waits")
  friend bool operator==(const TimelineSite&, const TimelineSite&) = default;
};

/// What the timeline capture saw: per-thread events plus the sites they name.
struct Timeline {
  std::string profiler_name;
  std::vector<TimelineSite> sites;                      ///< index = site id
  std::vector<std::pair<int, std::string>> track_names; ///< named tracks only
  std::vector<ThreadTimeline> threads;
  /// Events a reader cut from this copy to bound its size (the HTTP
  /// endpoint's /api/trace keeps each thread's most recent): not in
  /// `threads`, not counted in dropped(). Chrome traces name it.
  std::uint64_t left_out = 0;
  std::uint64_t dropped() const noexcept {
    std::uint64_t d = 0;
    for (const auto& t : threads) d += t.dropped;
    return d;
  }
  friend bool operator==(const Timeline&, const Timeline&) = default;
};

/// One thread's share of a profiler's results.
struct ThreadResults {
  std::uint64_t thread_id = 0; ///< the OS thread id (gettid on Linux)
  std::string thread_name;
  bool exited = false; ///< the thread ended; its data stays
  ProfilerResults results;
  friend bool operator==(const ThreadResults&, const ThreadResults&) = default;
};

} // namespace stichotrope
