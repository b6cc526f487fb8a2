// Results JSON read back, merged and compared: the CLI's side (src/reader.cpp).
module;
#include "output_headers.hpp"
export module stichotrope:reader;
import :error;
import :results;

export namespace stichotrope {

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
  /// Where the block waited, in both runs (matched by the wait's path and
  /// what was awaited): total time and its change.
  struct wait_change {
    std::string path; ///< "a.cpp:10 > b.cpp:50", then the awaited type or operation
    std::uint64_t base_ns = 0, current_ns = 0;
    double change_pct = 0;
  };
  std::vector<wait_change> waits;
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

} // namespace stichotrope
