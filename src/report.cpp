// Results as the seed writes them (modules/report.cppm): the CSV, the JSON
// document and the console table, and their files.
module;
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <tl/expected.hpp>

#include "json_writer.hpp"
module stichotrope;

namespace stichotrope {
using namespace detail::json;

namespace {

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

double percent(std::uint64_t part, std::uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole) * 100.0;
}

// ---------------------------------------------------------------- CSV

void csv_field(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

/// A block's waits in one CSV field: `site [awaited] count total_ns` for
/// each, "; " between them, a wait under another after " > ".
std::string waited_on(const BlockResults& b) {
  std::string out;
  for (const auto& w : b.waits) {
    if (!out.empty()) out += "; ";
    out += b.wait_path(w) + (w.awaited.empty() ? "" : " [" + w.awaited + "]") + " " + std::to_string(w.count) + " " +
           std::to_string(w.total_time_ns);
  }
  return out;
}

// ---------------------------------------------------------------- JSON

/// Sparse histogram: [lower bound in ns, count] for non-empty buckets.
void write_histogram(json_writer& w, const latency_histogram& h) {
  w.begin_array();
  for (unsigned i = 0; i < h.counts.size(); ++i) {
    if (h.counts[i] == 0) continue;
    w.begin_array();
    w.value(latency_histogram::lower_bound(h.first + i));
    w.value(h.counts[i]);
    w.end_array();
  }
  w.end_array();
}

// ---------------------------------------------------------------- table

std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0u) != 0x80u) ++n;
  return n;
}
std::string left(std::string_view s, std::size_t w) {
  std::string r(s);
  if (auto n = display_width(s); n < w) r.append(w - n, ' ');
  return r;
}
std::string right(std::string_view s, std::size_t w) {
  const auto n = display_width(s);
  return n < w ? std::string(w - n, ' ') + std::string(s) : std::string(s);
}
std::string thousands(std::uint64_t v) {
  std::string digits = std::to_string(v), r;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) r += ',';
    r += digits[i];
  }
  return r;
}
std::string throughput(double bytes_per_s) {
  if (bytes_per_s <= 0) return "-";
  const char* units[] = {"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"};
  unsigned u = 0;
  while (bytes_per_s >= 1024.0 && u + 1 < std::size(units)) bytes_per_s /= 1024.0, ++u;
  return fixed2(bytes_per_s) + " " + units[u];
}

} // namespace

std::string format_time_ns(std::uint64_t ns) {
  const auto v = static_cast<double>(ns);
  if (ns >= 1'000'000'000) return fixed2(v / 1e9) + " s";
  if (ns >= 1'000'000) return fixed2(v / 1e6) + " ms";
  if (ns >= 1'000) return fixed2(v / 1e3) + " \u03bcs";
  return std::to_string(ns) + " ns";
}

std::string to_csv(const ProfilerResults& results) {
  std::string out =
      "Track,Block Name,Hit Count,Total Time (ns),Avg Time (ns),Min Time (ns),Max Time (ns),% Track,% "
      "Total,Self Time (ns),P50 (ns),P90 (ns),P99 (ns),P99.9 (ns),Bytes,Throughput (B/s),Active Time (ns),"
      "Suspended Time (ns),Suspensions,Migrations,Abandoned,Waited On\r\n";
  const std::uint64_t all = results.total_time_ns();
  for (const auto& t : results.tracks) {
    const std::uint64_t track_total = t.total_time_ns();
    for (const auto& b : t.blocks) {
      const auto p = b.percentiles();
      out += std::to_string(t.track_idx);
      out += ',';
      csv_field(out, b.name);
      for (std::uint64_t v : {b.hit_count, b.total_time_ns, b.avg_time_ns_rounded(),
                              b.hit_count > 0 ? b.min_time_ns : std::uint64_t{0}, b.max_time_ns})
        out += ',' + std::to_string(v);
      out += ',' + fixed2(percent(b.total_time_ns, track_total));
      out += ',' + fixed2(percent(b.total_time_ns, all));
      for (std::uint64_t v : {b.self_time_ns, p.p50_ns, p.p90_ns, p.p99_ns, p.p999_ns, b.bytes})
        out += ',' + std::to_string(v);
      out += ',' + fixed2(b.throughput_bytes_per_s());
      for (std::uint64_t v : {b.active_time_ns(), b.suspended_time_ns, b.suspensions, b.migrations, b.abandoned})
        out += ',' + std::to_string(v);
      out += ',';
      csv_field(out, waited_on(b));
      out += "\r\n";
    }
  }
  return out;
}

std::string to_json(const ProfilerResults& results, int indent) {
  json_writer w(indent);
  w.begin_object();
  w.key("profiler_name");
  w.value(results.profiler_name);
  w.key("tracks");
  w.begin_array();
  for (const auto& t : results.tracks) {
    w.begin_object();
    w.key("track_idx");
    w.value(t.track_idx);
    w.key("track_name");
    if (t.track_name)
      w.value(*t.track_name);
    else
      w.null();
    w.key("enabled");
    w.value(t.enabled);
    w.key("blocks");
    w.begin_array();
    for (const auto& b : t.blocks) {
      const auto p = b.percentiles();
      w.begin_object();
      w.key("name"), w.value(b.name);
      w.key("file"), w.value(b.file);
      w.key("line"), w.value(std::uint64_t{b.line});
      w.key("hit_count"), w.value(b.hit_count);
      w.key("total_time_ns"), w.value(b.total_time_ns);
      w.key("avg_time_ns"), w.value(b.avg_time_ns());
      w.key("min_time_ns"), w.value(b.hit_count > 0 ? b.min_time_ns : std::uint64_t{0});
      w.key("max_time_ns"), w.value(b.max_time_ns);
      // Extensions, after the seed's keys.
      w.key("site_id"), w.value(std::uint64_t{b.site_id});
      w.key("function"), w.value(b.function);
      w.key("column"), w.value(std::uint64_t{b.column});
      w.key("self_time_ns"), w.value(b.self_time_ns);
      w.key("p50_ns"), w.value(p.p50_ns);
      w.key("p90_ns"), w.value(p.p90_ns);
      w.key("p99_ns"), w.value(p.p99_ns);
      w.key("p999_ns"), w.value(p.p999_ns);
      w.key("bytes"), w.value(b.bytes);
      w.key("throughput_bytes_per_s"), w.value(b.throughput_bytes_per_s());
      w.key("active_time_ns"), w.value(b.active_time_ns());
      w.key("suspended_time_ns"), w.value(b.suspended_time_ns);
      w.key("suspensions"), w.value(b.suspensions);
      w.key("migrations"), w.value(b.migrations);
      w.key("abandoned"), w.value(b.abandoned);
      w.key("callers");
      w.begin_array();
      for (const auto& c : b.callers) {
        w.begin_object();
        w.key("parent_site_id");
        if (c.parent_site_id == no_parent)
          w.null();
        else
          w.value(std::uint64_t{c.parent_site_id});
        w.key("hit_count"), w.value(c.hit_count);
        w.key("total_time_ns"), w.value(c.total_time_ns);
        w.end_object();
      }
      w.end_array();
      w.key("other_callers_hits"), w.value(b.other_callers_hits);
      w.key("histogram");
      write_histogram(w, b.histogram);
      w.key("waits");
      w.begin_array();
      for (const auto& x : b.waits) {
        const auto wp = x.percentiles();
        w.begin_object();
        w.key("site_id"), w.value(std::uint64_t{x.site_id});
        w.key("parent_site_id");
        if (x.parent_site_id == no_parent)
          w.null();
        else
          w.value(std::uint64_t{x.parent_site_id});
        w.key("name"), w.value(x.name);
        w.key("file"), w.value(x.file);
        w.key("line"), w.value(std::uint64_t{x.line});
        w.key("column"), w.value(std::uint64_t{x.column});
        w.key("function"), w.value(x.function);
        w.key("awaited"), w.value(x.awaited);
        w.key("count"), w.value(x.count);
        w.key("total_time_ns"), w.value(x.total_time_ns);
        w.key("avg_time_ns"), w.value(x.count == 0 ? 0.0 : static_cast<double>(x.total_time_ns) / x.count);
        w.key("min_time_ns"), w.value(x.min_time_ns);
        w.key("max_time_ns"), w.value(x.max_time_ns);
        w.key("p50_ns"), w.value(wp.p50_ns);
        w.key("p90_ns"), w.value(wp.p90_ns);
        w.key("p99_ns"), w.value(wp.p99_ns);
        w.key("migrations"), w.value(x.migrations);
        w.key("histogram");
        write_histogram(w, x.histogram);
        w.end_object();
      }
      w.end_array();
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.key("clock_source");
  w.value(to_string(results.clock));
  w.key("total_time_ns");
  w.value(results.total_time_ns());
  w.key("total_hits");
  w.value(results.total_hits());
  w.key("diagnostics");
  w.begin_array();
  for (const auto& d : results.diagnostics) w.value(d);
  w.end_array();
  if (!results.repetitions.empty()) { // Profiler::repeat's statistics and every run
    w.key("repetitions");
    w.begin_array();
    for (const auto& r : results.repetitions) {
      w.begin_object();
      w.key("name"), w.value(r.name);
      w.key("track"), w.value(r.track);
      w.key("stopped_by"), w.value(r.stopped_by);
      w.key("runs"), w.value(r.runs);
      w.key("batch"), w.value(r.batch);
      for (auto [key, v] :
           {std::pair{"min_ns", r.min_ns}, std::pair{"max_ns", r.max_ns}, std::pair{"median_ns", r.median_ns},
            std::pair{"p90_ns", r.p90_ns}, std::pair{"p99_ns", r.p99_ns},
            std::pair{"median_ci_low_ns", r.median_ci_low_ns}, std::pair{"median_ci_high_ns", r.median_ci_high_ns},
            std::pair{"min_without_outliers_ns", r.min_without_outliers_ns},
            std::pair{"bytes_fastest", r.bytes_fastest}, std::pair{"bytes_total", r.bytes_total},
            std::pair{"max_page_faults", r.max_page_faults}, std::pair{"max_context_switches", r.max_context_switches}})
        w.key(key), w.value(v);
      for (auto [key, v] :
           {std::pair{"mean_ns", r.mean_ns}, std::pair{"stddev_ns", r.stddev_ns},
            std::pair{"mean_ci_low_ns", r.mean_ci_low_ns}, std::pair{"mean_ci_high_ns", r.mean_ci_high_ns},
            std::pair{"median_ci_level", r.median_ci_level},
            std::pair{"mean_without_outliers_ns", r.mean_without_outliers_ns},
            std::pair{"best_bytes_per_second", r.best_bytes_per_second},
            std::pair{"mean_bytes_per_second", r.mean_bytes_per_second},
            std::pair{"page_faults_per_run", r.page_faults_per_run},
            std::pair{"context_switches_per_run", r.context_switches_per_run}})
        w.key(key), w.value(v);
      w.key("outliers"); // [run index, ns]
      w.begin_array();
      for (const auto& [run, ns] : r.outliers) {
        w.begin_array();
        w.value(run), w.value(ns);
        w.end_array();
      }
      w.end_array();
      w.key("samples_ns");
      w.begin_array();
      for (const auto ns : r.samples_ns) w.value(ns);
      w.end_array();
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
  return std::move(w.str());
}

std::string to_table(const ProfilerResults& results) {
  std::ostringstream os;
  const std::string rule_eq(120, '='), rule_dash(120, '-');
  os << rule_eq << '\n'
     << "Profiler: " << results.profiler_name << '\n'
     << "Total Time: " << format_time_ns(results.total_time_ns()) << '\n'
     << "Total Hits: " << thousands(results.total_hits()) << '\n'
     << rule_eq << '\n';
  for (const auto& t : results.tracks) {
    const std::uint64_t track_total = t.total_time_ns();
    const std::string title = t.track_name ? *t.track_name : "Track " + std::to_string(t.track_idx);
    os << '\n'
       << title << " (Track " << t.track_idx << ")\n"
       << "  Total Time: " << format_time_ns(track_total) << '\n'
       << "  Total Hits: " << thousands(t.total_hits()) << '\n'
       << rule_dash << '\n'
       << left("Block Name", 40) << ' ' << right("Hits", 10) << ' ' << right("Total", 15) << ' ' << right("Avg", 15)
       << ' ' << right("Min", 15) << ' ' << right("Max", 15) << ' ' << right("%Track", 8) << '\n'
       << rule_dash << '\n';
    for (const auto& b : t.blocks) {
      os << left(b.name, 40) << ' ' << right(thousands(b.hit_count), 10) << ' '
         << right(format_time_ns(b.total_time_ns), 15) << ' '
         << right(format_time_ns(static_cast<std::uint64_t>(b.avg_time_ns())), 15) << ' '
         << right(format_time_ns(b.hit_count > 0 ? b.min_time_ns : 0), 15) << ' '
         << right(format_time_ns(b.max_time_ns), 15) << ' ' << right(fixed2(percent(b.total_time_ns, track_total)), 7)
         << "%\n";
    }
    if (t.blocks.empty()) continue;
    // Extensions: self, active and suspended time, percentiles (throughput
    // only when some block of the track counted bytes).
    bool any_bytes = false;
    for (const auto& b : t.blocks) any_bytes = any_bytes || b.bytes > 0;
    os << rule_dash << '\n' << left("  latency", 30);
    for (const char* h : {"Self", "Active", "Suspended", "P50", "P90", "P99", "P99.9"}) os << ' ' << right(h, 11);
    if (any_bytes) os << ' ' << right("Throughput", 13);
    os << '\n';
    for (const auto& b : t.blocks) {
      const auto p = b.percentiles();
      os << left("  " + b.name, 30);
      for (std::uint64_t v :
           {b.self_time_ns, b.active_time_ns(), b.suspended_time_ns, p.p50_ns, p.p90_ns, p.p99_ns, p.p999_ns})
        os << ' ' << right(format_time_ns(v), 11);
      if (any_bytes) os << ' ' << right(throughput(b.throughput_bytes_per_s()), 13);
      os << '\n';
    }
    // Where the suspended time went: each block's awaits, the ones made
    // inside an awaited child coroutine under the await of the child.
    bool any_waits = false;
    for (const auto& b : t.blocks) any_waits = any_waits || !b.waits.empty();
    if (any_waits) {
      os << rule_dash << '\n'
         << left("  waited on", 70) << ' ' << right("Count", 9) << ' ' << right("Total", 9) << ' ' << right("Avg", 9)
         << ' ' << right("P99", 9) << ' ' << right("%Susp", 7) << '\n';
      for (const auto& b : t.blocks) {
        if (b.waits.empty()) continue;
        os << "  " << b.name << " (suspended " << format_time_ns(b.suspended_time_ns) << ")\n";
        for (const auto& w : b.waits) {
          std::string label = std::string(4 + 2 * b.wait_depth(w), ' ') + w.name;
          if (!w.awaited.empty() && w.awaited != w.name) label += "  " + w.awaited;
          if (display_width(label) > 70) label = label.substr(0, 67) + "...";
          os << left(label, 70) << ' ' << right(thousands(w.count), 9) << ' '
             << right(format_time_ns(w.total_time_ns), 9) << ' '
             << right(format_time_ns(w.count == 0 ? 0 : w.total_time_ns / w.count), 9) << ' '
             << right(format_time_ns(w.percentiles().p99_ns), 9) << ' '
             << right(fixed2(percent(w.total_time_ns, b.suspended_time_ns)), 6) << "%\n";
        }
      }
    }
    for (const auto& b : t.blocks)
      if (b.abandoned > 0)
        os << "  " << b.name << ": " << thousands(b.abandoned)
           << " abandoned (destroyed while their coroutine was suspended)\n";
  }

  // Call tree: children under parents, from the recorded caller edges.
  std::map<std::uint32_t, std::vector<std::pair<const BlockResults*, const caller_stats*>>> children;
  for (const auto& t : results.tracks)
    for (const auto& b : t.blocks)
      for (const auto& c : b.callers) children[c.parent_site_id].push_back({&b, &c});
  if (!children.empty() && results.total_hits() > 0) {
    os << '\n' << "Call tree (hits, total time inside the parent)\n" << rule_dash << '\n';
    std::set<std::uint32_t> path;
    std::function<void(std::uint32_t, int)> walk = [&](std::uint32_t parent, int depth) {
      auto it = children.find(parent);
      if (it == children.end() || depth > 32) return;
      for (const auto& [b, c] : it->second) {
        const std::string label = std::string(static_cast<std::size_t>(2 * depth), ' ') + b->name;
        os << left(label, 60) << ' ' << right(thousands(c->hit_count), 12) << ' '
           << right(format_time_ns(c->total_time_ns), 15) << '\n';
        if (path.insert(b->site_id).second) { // a recursive block is shown once per path
          walk(b->site_id, depth + 1);
          path.erase(b->site_id);
        }
      }
    };
    walk(no_parent, 0);
  }
  if (!results.repetitions.empty()) {
    os << '\n' << "Repetitions (Profiler::repeat; 95 % intervals: docs/repetition.md)\n" << rule_dash << '\n';
    const auto rate = [](double bps) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f GiB/s", bps / (1024.0 * 1024.0 * 1024.0)); // as the block table
      return std::string(buf);
    };
    for (const auto& r : results.repetitions) {
      // A run's figure as the table shows it: per call when a run is a batch
      // of calls, with decimals below 1 us (a call of a few ns needs them).
      const auto ns = [&r](auto run_ns) {
        const double v = r.per_call(run_ns);
        if (r.batch > 1 && v < 1000) return fixed2(v) + " ns";
        return format_time_ns(v <= 0 ? 0 : static_cast<std::uint64_t>(v + 0.5));
      };
      char level[16];
      std::snprintf(level, sizeof level, "%.1f %%", r.median_ci_level * 100);
      os << r.name << " (track " << r.track << "): " << thousands(r.runs) << " runs";
      if (r.batch > 1) os << " of " << thousands(r.batch) << " calls (figures per call)";
      os << ", stopped by " << r.stopped_by << '\n'
         << "  min " << ns(r.min_ns) << "   median " << ns(r.median_ns) << " [" << ns(r.median_ci_low_ns) << " .. "
         << ns(r.median_ci_high_ns) << ", " << level << "]   mean " << ns(r.mean_ns) << " [" << ns(r.mean_ci_low_ns)
         << " .. " << ns(r.mean_ci_high_ns) << "]   sd " << ns(r.stddev_ns) << '\n'
         << "  p90 " << ns(r.p90_ns) << "   p99 " << ns(r.p99_ns) << "   max " << ns(r.max_ns) << "   outliers "
         << r.outliers.size() << " (without them: min " << ns(r.min_without_outliers_ns) << ", mean "
         << ns(r.mean_without_outliers_ns) << ")\n";
      if (r.bytes_total > 0)
        os << "  throughput: best " << rate(r.best_bytes_per_second) << ", mean " << rate(r.mean_bytes_per_second)
           << '\n';
      char per_run[96];
      std::snprintf(per_run, sizeof per_run,
                    "  per run: %.2f page faults (max %llu), %.2f context switches (max %llu)\n", r.page_faults_per_run,
                    static_cast<unsigned long long>(r.max_page_faults), r.context_switches_per_run,
                    static_cast<unsigned long long>(r.max_context_switches));
      os << per_run;
    }
  }
  os << rule_eq << '\n';
  return os.str();
}

std::string to_repetitions_csv(const ProfilerResults& results) {
  std::string out =
      "Track,Name,Runs,Stopped By,Min (ns),Median (ns),Median CI Low (ns),Median CI High (ns),"
      "Median CI Level,Mean (ns),Mean CI Low (ns),Mean CI High (ns),Std Dev (ns),P90 (ns),P99 (ns),"
      "Max (ns),Outliers,Min Without Outliers (ns),Mean Without Outliers (ns),"
      "Best Throughput (B/s),Mean Throughput (B/s),Page Faults Per Run,Context Switches Per Run,Calls Per Run\r\n";
  for (const auto& r : results.repetitions) {
    out += std::to_string(r.track);
    out += ',';
    csv_field(out, r.name);
    out += ',' + std::to_string(r.runs) + ',';
    csv_field(out, r.stopped_by);
    for (const auto v : {r.min_ns, r.median_ns, r.median_ci_low_ns, r.median_ci_high_ns})
      out += ',' + std::to_string(v);
    out += ',' + detail::json::python_float(r.median_ci_level);
    for (const double v : {r.mean_ns, r.mean_ci_low_ns, r.mean_ci_high_ns, r.stddev_ns})
      out += ',' + detail::json::python_float(v);
    for (const auto v : {r.p90_ns, r.p99_ns, r.max_ns, std::uint64_t{r.outliers.size()}, r.min_without_outliers_ns})
      out += ',' + std::to_string(v);
    for (const double v : {r.mean_without_outliers_ns, r.best_bytes_per_second, r.mean_bytes_per_second,
                           r.page_faults_per_run, r.context_switches_per_run})
      out += ',' + detail::json::python_float(v);
    out += ',' + std::to_string(r.batch) + "\r\n";
  }
  return out;
}

void write_csv(std::ostream& out, const ProfilerResults& results) { out << to_csv(results); }
void write_json(std::ostream& out, const ProfilerResults& results, int indent) { out << to_json(results, indent); }
void write_table(std::ostream& out, const ProfilerResults& results) { out << to_table(results); }

expected<void> export_csv(const ProfilerResults& results, const std::filesystem::path& file) {
  return write_file(file, to_csv(results));
}

expected<void> export_json(const ProfilerResults& results, const std::filesystem::path& file, int indent) {
  return write_file(file, to_json(results, indent));
}

} // namespace stichotrope
