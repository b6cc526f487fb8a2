module;
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>
export module stichotrope:format;
import :error;
import :results;

export namespace stichotrope {

/// "N ns", "x.xx μs", "x.xx ms" or "x.xx s", as the seed prints times.
std::string format_time_ns(std::uint64_t ns);

/// The seed's CSV (RFC 4180 quoting, CRLF rows) plus extension columns after
/// its nine: Self Time (ns), P50/P90/P99/P99.9 (ns), Bytes, Throughput (B/s).
void write_csv(std::ostream& out, const ProfilerResults& results);
/// The seed's JSON document (Python json.dumps layout; indent < 0 is one
/// line); extension keys come after the seed's in every object.
void write_json(std::ostream& out, const ProfilerResults& results, int indent = 2);
/// The seed's console table, followed per track by a latency section (self
/// time, percentiles, throughput) and, at the end, the call tree.
void write_table(std::ostream& out, const ProfilerResults& results);

std::string to_csv(const ProfilerResults& results);
std::string to_json(const ProfilerResults& results, int indent = 2);
std::string to_table(const ProfilerResults& results);

/// Writes `content` to `file` through a temporary in the same directory and a
/// rename, so a failed write never leaves a partial file nor destroys an
/// existing one. Devices and pipes (which cannot be renamed over) are written
/// directly.
expected<void> write_file(const std::filesystem::path& file, std::string_view content);

/// Chrome Trace Event JSON (opens in ui.perfetto.dev and chrome://tracing):
/// "X" slices for blocks of a thread's own flow, async "b"/"e" pairs keyed by
/// flow id for blocks of coroutine flows (one span across threads), small
/// "suspend"/"resume" slices joined by flow arrows ("s"/"f") from the thread
/// that suspended to the one that resumed, "M" metadata naming the process,
/// threads and tracks; timestamps in µs with ns fractions.
void write_chrome_trace(std::ostream& out, const Timeline& timeline);
/// speedscope's file format: one "evented" profile per thread (its own
/// blocks) and one per coroutine flow (its blocks on whichever threads they
/// ran), balanced open/close events in non-decreasing time, a shared frame
/// table with file and line. Spans that overlap without nesting are left out
/// and counted in the profile's name.
void write_speedscope(std::ostream& out, const Timeline& timeline);

/// What folded stacks are weighted by.
enum class fold_weight { self_time, active_time };
/// Folded stacks (`root;child;leaf weight`, one line per path) from the call
/// tree, for flame graph tools. A block with several parents has its weight
/// split between them in proportion to its time under each.
std::string to_folded(const ProfilerResults& results, fold_weight weight = fold_weight::self_time);

/// Prometheus text exposition format (version 0.0.4) of several profilers'
/// results: per block a histogram `stichotrope_block_duration_seconds` (one
/// cumulative `le` bucket per power of two of nanoseconds, 16 ns to 2^41 ns,
/// then +Inf; `_sum`, `_count`) and counters of self, active and suspended
/// seconds, suspensions and abandoned blocks. Labels: profiler, track,
/// track_name, block, site ("file:line", which tells apart blocks of the same
/// name), escaped as the format requires.
void write_prometheus(std::ostream& out, const std::vector<ProfilerResults>& results);
std::string to_prometheus(const std::vector<ProfilerResults>& results);

expected<void> export_chrome_trace(const Timeline& timeline, const std::filesystem::path& file);
expected<void> export_speedscope(const Timeline& timeline, const std::filesystem::path& file);

/// Reads a results document written by write_json (or by the Python seed:
/// the extension keys are optional). Errors name `source` and the byte
/// position or the JSON path of the problem.
expected<ProfilerResults> read_results_json(std::string_view json, std::string_view source = "<input>");
expected<ProfilerResults> load_results_json(const std::filesystem::path& file);

/// Results of several processes as one: the same block (track, name, file,
/// line) in several inputs adds up; site ids are renumbered.
ProfilerResults merge_results(const std::vector<ProfilerResults>& inputs);

/// One block compared between two runs; changes in percent (0 when the base is 0).
struct BlockComparison {
  int track_idx = 0;
  std::string name;
  bool in_base = false, in_current = false;
  std::uint64_t base_hits = 0, current_hits = 0;
  double base_mean_ns = 0, current_mean_ns = 0, mean_change_pct = 0;
  std::uint64_t base_p99_ns = 0, current_p99_ns = 0;
  double p99_change_pct = 0;
  std::uint64_t base_active_ns = 0, current_active_ns = 0;
  double active_change_pct = 0;
  std::uint64_t base_suspended_ns = 0, current_suspended_ns = 0;
  double suspended_change_pct = 0;
  bool regression = false; ///< mean or p99 grew by more than the threshold
};
struct Comparison {
  double threshold_pct = 0;
  std::vector<BlockComparison> blocks;
  bool any_regression() const noexcept {
    for (const auto& b : blocks)
      if (b.regression) return true;
    return false;
  }
};
/// Compares two runs block by block (matched by track and name, then by
/// order among blocks of the same name).
Comparison compare_results(const ProfilerResults& base, const ProfilerResults& current, double threshold_pct);
std::string to_text(const Comparison& comparison);

expected<void> export_csv(const ProfilerResults& results, const std::filesystem::path& file);
expected<void> export_json(const ProfilerResults& results, const std::filesystem::path& file, int indent = 2);

} // namespace stichotrope
