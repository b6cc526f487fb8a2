// The seed's results formats: CSV, JSON, the console table (src/report.cpp).
module;
#include "output_headers.hpp"
export module stichotrope:report;
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
/// Profiler::repeat's statistics, one row per repetition (RFC 4180, a header
/// row): the block CSV above keeps the seed's columns.
std::string to_repetitions_csv(const ProfilerResults& results);

expected<void> export_csv(const ProfilerResults& results, const std::filesystem::path& file);
expected<void> export_json(const ProfilerResults& results, const std::filesystem::path& file, int indent = 2);

} // namespace stichotrope
