// The Prometheus text exposition format (modules/prometheus.cppm).
// The format: docs/telemetry.md.
module;
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>
module stichotrope;

namespace stichotrope {
namespace {

/// A label value: backslash, double quote and line feed escaped.
void put_label_value(std::ostream& out, std::string_view v) {
  for (char ch : v) {
    if (ch == '\\')
      out << "\\\\";
    else if (ch == '"')
      out << "\\\"";
    else if (ch == '\n')
      out << "\\n";
    else
      out << ch;
  }
}

std::string seconds(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(ns) / 1e9);
  return buf;
}

struct series {
  const ProfilerResults* profiler;
  const TrackResults* track;
  const BlockResults* block;
};

void put_labels(std::ostream& out, const series& s, std::string_view extra = {}) {
  out << "{profiler=\"";
  put_label_value(out, s.profiler->profiler_name);
  out << "\",track=\"" << s.track->track_idx << "\",track_name=\"";
  put_label_value(out, s.track->track_name.value_or(""));
  out << "\",block=\"";
  put_label_value(out, s.block->name);
  out << "\",site=\"";
  put_label_value(out, s.block->file + ":" + std::to_string(s.block->line));
  out << '"';
  if (!extra.empty()) out << ',' << extra;
  out << '}';
}

/// One histogram series: a bucket boundary per octave (the histogram's
/// buckets never straddle one), then +Inf, sum and count.
void put_histogram(std::ostream& out, std::string_view name, const series& s, const std::string& extra,
                   const latency_histogram& h, std::uint64_t count, std::uint64_t total_ns) {
  constexpr unsigned first_octave = 4, last_octave = latency_histogram::max_exponent; // 16 ns .. 2^41 ns
  const std::string sep = extra.empty() ? "" : ",";
  std::uint64_t cumulative = 0;
  unsigned b = 0;
  for (unsigned e = first_octave; e <= last_octave + 1; ++e) {
    const std::uint64_t bound = std::uint64_t{1} << e; // values below it
    for (; b < latency_histogram::bucket_count && latency_histogram::upper_bound(b) < bound; ++b)
      cumulative += h.count(b);
    out << name << "_bucket";
    put_labels(out, s, extra + sep + "le=\"" + seconds(bound - 1) + "\"");
    out << ' ' << cumulative << '\n';
  }
  out << name << "_bucket";
  put_labels(out, s, extra + sep + "le=\"+Inf\"");
  out << ' ' << count << '\n';
  out << name << "_sum";
  put_labels(out, s, extra);
  out << ' ' << seconds(total_ns) << '\n';
  out << name << "_count";
  put_labels(out, s, extra);
  out << ' ' << count << '\n';
}

} // namespace

void write_prometheus(std::ostream& out, const std::vector<ProfilerResults>& results) {
  std::vector<series> all;
  for (const auto& p : results)
    for (const auto& t : p.tracks)
      for (const auto& b : t.blocks) all.push_back({&p, &t, &b});

  out << "# HELP stichotrope_block_duration_seconds Wall time of each hit of a block.\n"
         "# TYPE stichotrope_block_duration_seconds histogram\n";
  for (const auto& s : all)
    put_histogram(out, "stichotrope_block_duration_seconds", s, {}, s.block->histogram, s.block->hit_count,
                  s.block->total_time_ns);
  out << "# HELP stichotrope_wait_duration_seconds Suspensions of a block's coroutine, by the co_await that made "
         "them (await_path: the awaits of child coroutines it happened under; top_level=\"true\" series add up to "
         "the block's suspended time).\n"
         "# TYPE stichotrope_wait_duration_seconds histogram\n";
  for (const auto& s : all)
    for (const auto& w : s.block->waits) {
      std::ostringstream labels;
      labels << "await=\"";
      put_label_value(labels, w.file.empty() ? w.name : w.name + ":" + std::to_string(w.column));
      labels << "\",await_path=\"";
      put_label_value(labels, s.block->wait_path(w));
      labels << "\",awaited=\"";
      put_label_value(labels, w.awaited);
      labels << "\",top_level=\"" << (w.parent_site_id == no_parent ? "true" : "false") << '"';
      put_histogram(out, "stichotrope_wait_duration_seconds", s, labels.str(), w.histogram, w.count, w.total_time_ns);
    }
  struct counter {
    const char* name;
    const char* help;
    bool in_seconds;
    std::uint64_t (*value)(const BlockResults&);
  };
  static constexpr counter counters[] = {
      {"stichotrope_block_self_seconds_total", "Time in a block outside its child blocks.", true,
       [](const BlockResults& b) { return b.self_time_ns; }},
      {"stichotrope_block_active_seconds_total", "Time a block's flow was running (wall minus suspended).", true,
       [](const BlockResults& b) { return b.active_time_ns(); }},
      {"stichotrope_block_suspended_seconds_total", "Time a block's coroutine spent suspended inside it.", true,
       [](const BlockResults& b) { return b.suspended_time_ns; }},
      {"stichotrope_block_suspensions_total", "Suspensions inside a block.", false,
       [](const BlockResults& b) { return b.suspensions; }},
      {"stichotrope_block_abandoned_total", "Blocks destroyed while their coroutine was suspended.", false,
       [](const BlockResults& b) { return b.abandoned; }},
  };
  for (const auto& c : counters) {
    out << "# HELP " << c.name << ' ' << c.help << "\n# TYPE " << c.name << " counter\n";
    for (const auto& s : all) {
      out << c.name;
      put_labels(out, s);
      const std::uint64_t v = c.value(*s.block);
      out << ' ' << (c.in_seconds ? seconds(v) : std::to_string(v)) << '\n';
    }
  }
}

std::string to_prometheus(const std::vector<ProfilerResults>& results) {
  std::ostringstream out;
  write_prometheus(out, results);
  return out.str();
}

} // namespace stichotrope
