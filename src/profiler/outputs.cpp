// What a profiler writes in the formats: its configured outputs, an
// exporter like the optional ones (written at the profiler's end or when a
// signal asks), and its own export calls. The formats themselves are the
// output partitions (src/report.cpp, src/trace.cpp, src/folded.cpp,
// src/files.cpp).
module;
#include <exception>
#include <filesystem>
#include <iostream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>
module stichotrope;

namespace stichotrope {

namespace {
/// Writes `outputs` (paths, patterns expanded) in the format each one's
/// extension names; errors go to stderr.
void write_outputs(const Profiler& p, const std::vector<std::string>& outputs) {
  auto ends_with = [](std::string_view s, std::string_view ext) {
    return s.size() > ext.size() && s.substr(s.size() - ext.size()) == ext;
  };
  for (const auto& pattern : outputs) {
    const std::string path = expand_output_path(pattern, p.name());
    expected<void> done;
    if (ends_with(path, ".trace.json"))
      done = export_chrome_trace(p.get_timeline(), path);
    else if (ends_with(path, ".speedscope.json"))
      done = export_speedscope(p.get_timeline(), path);
    else if (ends_with(path, ".json"))
      done = export_json(p.get_results(), path);
    else if (ends_with(path, ".csv"))
      done = export_csv(p.get_results(), path);
    else if (ends_with(path, ".txt"))
      done = write_file(path, to_table(p.get_results()));
    else if (ends_with(path, ".folded"))
      done = write_file(path, to_folded(p.get_results()));
    if (!done) std::cerr << "stichotrope: profiler '" << p.name() << "': output not written: " << done.error() << '\n';
  }
}

/// Writes the profiler's configured outputs, if it has any.
void write_configured(Profiler& p) {
  try {
    if (const auto outputs = p.config().outputs) write_outputs(p, *outputs);
  } catch (const std::exception& e) { // no memory for a path or a result
    std::cerr << "stichotrope: profiler '" << p.name() << "': outputs not written: " << e.what() << '\n';
  }
}
} // namespace

namespace detail {
const exporter outputs_exporter{nullptr, &write_configured, &write_configured}; // nothing to do at configuration
} // namespace detail

expected<void> Profiler::export_csv(const std::filesystem::path& file) const {
  return stichotrope::export_csv(get_results(), file);
}
void Profiler::export_csv(std::ostream& out) const { write_csv(out, get_results()); }
expected<void> Profiler::export_json(const std::filesystem::path& file, int indent) const {
  return stichotrope::export_json(get_results(), file, indent);
}
void Profiler::export_json(std::ostream& out, int indent) const { write_json(out, get_results(), indent); }
void Profiler::print_results() const { write_table(std::cout, get_results()); }
void Profiler::print_results(std::ostream& out) const { write_table(out, get_results()); }

} // namespace stichotrope
