// The Prometheus text exposition format (src/prometheus.cpp).
module;
#include "output_headers.hpp"
export module stichotrope:prometheus;
import :results;

export namespace stichotrope {

/// Prometheus text exposition format (version 0.0.4) of several profilers'
/// results: per block a histogram `stichotrope_block_duration_seconds` (one
/// cumulative `le` bucket per power of two of nanoseconds, 16 ns to 2^41 ns,
/// then +Inf; `_sum`, `_count`) and counters of self, active and suspended
/// seconds, suspensions and abandoned blocks. Labels: profiler, track,
/// track_name, block, site ("file:line", which tells apart blocks of the same
/// name), escaped as the format requires.
void write_prometheus(std::ostream& out, const std::vector<ProfilerResults>& results);
std::string to_prometheus(const std::vector<ProfilerResults>& results);

} // namespace stichotrope
