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
module stichotrope;

namespace stichotrope {
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

// ---------------------------------------------------------------- JSON

/// Python's repr() of a float, as json.dumps writes it.
std::string python_float(double v) {
  if (!std::isfinite(v)) return v > 0 ? "Infinity" : (v < 0 ? "-Infinity" : "NaN");
  if (v == 0.0) return "0.0";
  char buf[64];
  const double a = std::fabs(v);
  const bool fixed = a >= 1e-4 && a < 1e16;
  auto [end, ec] =
      std::to_chars(buf, buf + sizeof buf, v, fixed ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(buf, end);
  if (fixed && s.find('.') == std::string::npos) s += ".0";
  if (!fixed) {
    // to_chars writes "1e+16"; Python writes the same, but "1e-05" as "1e-05" too.
    return s;
  }
  return s;
}

void hex4(std::string& out, unsigned v) {
  static constexpr char digits[] = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += digits[(v >> shift) & 0xFu];
}

/// JSON string with only ASCII inside (json.dumps' ensure_ascii): control and
/// non-ASCII characters as \uXXXX, invalid UTF-8 bytes as U+FFFD.
void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20)
          hex4(out, c);
        else
          out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence strictly (no overlongs, no surrogates).
    unsigned len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1Fu;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0Fu;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07u;
    bool ok = len != 0 && i + len <= s.size();
    for (unsigned k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0u) != 0x80u)
        ok = false;
      else
        cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (ok &&
        ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    if (!ok) {
      hex4(out, 0xFFFD);
      ++i;
      continue;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      hex4(out, 0xD800 + (cp >> 10));
      hex4(out, 0xDC00 + (cp & 0x3FFu));
    } else {
      hex4(out, cp);
    }
    i += len;
  }
  out += '"';
}

/// Writes JSON with json.dumps' layout: "key": value, items separated by
/// "," and a newline plus indentation (or ", " on one line when indent < 0).
class json_writer {
public:
  explicit json_writer(int indent) : indent_(indent) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  void key(std::string_view k) {
    item();
    json_string(out_, k);
    out_ += ": ";
    after_key_ = true;
  }
  void value(std::string_view s) {
    item();
    json_string(out_, s);
  }
  void value(const char* s) { value(std::string_view(s)); }
  void value(std::uint64_t v) {
    item();
    out_ += std::to_string(v);
  }
  void value(int v) {
    item();
    out_ += std::to_string(v);
  }
  void value(double v) {
    item();
    out_ += python_float(v);
  }
  void value(bool v) {
    item();
    out_ += v ? "true" : "false";
  }
  void null() {
    item();
    out_ += "null";
  }
  void raw(std::string_view text) { // a number already formatted
    item();
    out_ += text;
  }

  std::string& str() { return out_; }

private:
  void item() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!counts_.empty()) {
      if (counts_.back()++ > 0) out_ += indent_ < 0 ? ", " : ",";
      newline();
    }
  }
  void open(char c) {
    item();
    out_ += c;
    counts_.push_back(0);
  }
  void close(char c) {
    const bool had_items = counts_.back() > 0;
    counts_.pop_back();
    if (had_items) newline();
    out_ += c;
  }
  void newline() {
    if (indent_ < 0) return;
    out_ += '\n';
    out_.append(counts_.size() * static_cast<std::size_t>(indent_), ' ');
  }

  int indent_;
  bool after_key_ = false;
  std::vector<int> counts_;
  std::string out_;
};

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
      "Suspended Time (ns),Suspensions,Migrations,Abandoned\r\n";
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
      // Sparse histogram: [lower bound in ns, count] for non-empty buckets.
      w.key("histogram");
      w.begin_array();
      for (unsigned i = 0; i < b.histogram.counts.size(); ++i) {
        if (b.histogram.counts[i] == 0) continue;
        w.begin_array();
        w.value(latency_histogram::lower_bound(b.histogram.first + i));
        w.value(b.histogram.counts[i]);
        w.end_array();
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
  os << rule_eq << '\n';
  return os.str();
}

void write_csv(std::ostream& out, const ProfilerResults& results) { out << to_csv(results); }
void write_json(std::ostream& out, const ProfilerResults& results, int indent) { out << to_json(results, indent); }
void write_table(std::ostream& out, const ProfilerResults& results) { out << to_table(results); }

namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

Error io_error(const std::filesystem::path& file, std::string_view what, int err) {
  return Error{errc::io_error, "cannot " + std::string(what) + " '" + file.string() + "': " + errno_text(err)};
}

/// Writes all of `content` to `fd`; 0 or an errno value.
int write_all(int fd, std::string_view content) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

} // namespace

expected<void> write_file(const std::filesystem::path& file, std::string_view content) {
  if (file.empty()) return fail(errc::io_error, "cannot write a file with an empty path");
  struct stat st{};
  const bool exists = ::stat(file.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode))
    return fail(errc::io_error, "cannot write '" + file.string() + "': it is a directory");
  if (exists && !S_ISREG(st.st_mode)) {
    // A device or a pipe: it cannot be replaced, so write it in place.
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return tl::unexpected(io_error(file, "open", errno));
    int err = write_all(fd, content);
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0) return tl::unexpected(io_error(file, "write", err));
    return {};
  }

  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::string temp = (dir / ("." + file.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    const int err = errno;
    return fail(errc::io_error,
                "cannot create a file in '" + dir.string() + "' to write '" + file.string() + "': " + errno_text(err));
  }
  ::fchmod(fd, exists ? (st.st_mode & 07777) : 0644);
  int err = write_all(fd, content);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(temp.c_str(), file.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(temp.c_str());
    return tl::unexpected(io_error(file, "write", err));
  }
  return {};
}

expected<void> export_csv(const ProfilerResults& results, const std::filesystem::path& file) {
  return write_file(file, to_csv(results));
}

expected<void> export_json(const ProfilerResults& results, const std::filesystem::path& file, int indent) {
  return write_file(file, to_json(results, indent));
}

} // namespace stichotrope

namespace stichotrope {
namespace {

std::string micros(std::uint64_t ns) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%llu.%03llu", static_cast<unsigned long long>(ns / 1000),
                static_cast<unsigned long long>(ns % 1000));
  return buf;
}

const TimelineSite* site_of(const Timeline& t, std::uint32_t id) {
  return id < t.sites.size() ? &t.sites[id] : nullptr;
}

std::string track_label(const Timeline& t, int track) {
  for (const auto& [idx, name] : t.track_names)
    if (idx == track) return "track " + std::to_string(track) + ": " + name;
  return "track " + std::to_string(track);
}

std::string hex_id(std::uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
  return buf;
}

} // namespace

void write_chrome_trace(std::ostream& out, const Timeline& t) {
  json_writer w(-1);
  w.begin_object();
  w.key("displayTimeUnit"), w.value("ns");
  w.key("otherData");
  w.begin_object();
  w.key("profiler"), w.value(t.profiler_name);
  w.key("exporter"), w.value("stichotrope");
  w.key("dropped_events"), w.value(t.dropped());
  w.end_object();
  w.key("traceEvents");
  w.begin_array();
  auto meta = [&](const char* name, std::uint64_t tid, const std::string& value) {
    w.begin_object();
    w.key("name"), w.value(name);
    w.key("ph"), w.value("M");
    w.key("pid"), w.value(std::uint64_t{1});
    w.key("tid"), w.value(tid);
    w.key("args");
    w.begin_object();
    w.key("name"), w.value(value);
    w.end_object();
    w.end_object();
  };
  meta("process_name", 0, t.profiler_name);
  for (const auto& [idx, name] : t.track_names) meta("track_name", 0, track_label(t, idx));
  for (const auto& th : t.threads)
    meta("thread_name", th.thread_id,
         (th.thread_name.empty() ? "thread" : th.thread_name) + " (" + std::to_string(th.thread_id) + ")" +
             (th.exited ? ", exited" : ""));
  auto common = [&](const std::string& name, const std::string& cat, const char* ph, std::uint64_t ns,
                    std::uint64_t tid) {
    w.key("name"), w.value(name);
    w.key("cat"), w.value(cat);
    w.key("ph"), w.value(ph);
    w.key("ts");
    w.raw(micros(ns));
    w.key("pid"), w.value(std::uint64_t{1});
    w.key("tid"), w.value(tid);
  };
  for (const auto& th : t.threads) {
    for (const auto& e : th.events) {
      if (e.kind == timeline_kind::block) {
        const TimelineSite* s = site_of(t, e.site_id);
        const std::string name = s ? s->name : "site " + std::to_string(e.site_id);
        const std::string cat = s ? track_label(t, s->track) : "unknown";
        auto args = [&] {
          w.key("args");
          w.begin_object();
          if (s) {
            w.key("file"), w.value(s->file);
            w.key("line"), w.value(std::uint64_t{s->line});
          }
          w.key("flow"), w.value(e.flow_id);
          w.end_object();
        };
        if (e.flow_id == 0) { // the thread's own flow: a complete slice on its thread
          w.begin_object();
          common(name, cat, "X", e.start_ns, th.thread_id);
          w.key("dur");
          w.raw(micros(e.end_ns - e.start_ns));
          args();
          w.end_object();
        } else { // a coroutine flow: one async span, whichever threads it ran on
          w.begin_object();
          common(name, cat, "b", e.start_ns, th.thread_id);
          w.key("id"), w.value(hex_id(e.flow_id));
          args();
          w.end_object();
          w.begin_object();
          common(name, cat, "e", e.end_ns, th.thread_id);
          w.key("id"), w.value(hex_id(e.flow_id));
          w.end_object();
        }
      } else {
        // A tiny slice to anchor the arrow, and the arrow itself.
        const bool suspend = e.kind == timeline_kind::suspend;
        const std::string name = std::string(suspend ? "suspend" : "resume") + " flow " + hex_id(e.flow_id);
        w.begin_object();
        common(name, "suspension", "X", e.start_ns, th.thread_id);
        w.key("dur");
        w.raw("0.001");
        w.end_object();
        w.begin_object();
        common("suspended", "suspension", suspend ? "s" : "f", e.start_ns, th.thread_id);
        w.key("id"), w.value(e.arrow_id);
        if (!suspend) w.key("bp"), w.value("e");
        w.end_object();
      }
    }
  }
  w.end_array();
  w.end_object();
  out << w.str() << '\n';
}

void write_speedscope(std::ostream& out, const Timeline& t) {
  json_writer w(-1);
  w.begin_object();
  w.key("$schema"), w.value("https://www.speedscope.app/file-format-schema.json");
  w.key("name"), w.value(t.profiler_name);
  w.key("exporter"), w.value("stichotrope");
  w.key("activeProfileIndex"), w.value(std::uint64_t{0});
  w.key("shared");
  w.begin_object();
  w.key("frames");
  w.begin_array();
  for (const auto& s : t.sites) {
    w.begin_object();
    w.key("name"), w.value(s.name);
    w.key("file"), w.value(s.file);
    w.key("line"), w.value(std::uint64_t{s.line});
    w.end_object();
  }
  w.end_array();
  w.end_object();
  // One profile per logical thread: each OS thread for the blocks of its own
  // flow, and each coroutine flow for its blocks wherever they ran (drawing
  // those by the thread that closed them would nest unrelated flows).
  struct lane {
    std::string name;
    std::vector<const TimelineEvent*> spans;
    std::set<std::uint64_t> threads;
  };
  std::vector<lane> lanes;
  std::map<std::uint64_t, std::size_t> flow_lane;
  for (const auto& th : t.threads) {
    lane own{(th.thread_name.empty() ? "thread" : th.thread_name) + " (" + std::to_string(th.thread_id) + ")", {}, {}};
    for (const auto& e : th.events) {
      if (e.kind != timeline_kind::block || e.site_id >= t.sites.size()) continue;
      if (e.flow_id == 0) {
        own.spans.push_back(&e);
        continue;
      }
      auto it = flow_lane.find(e.flow_id);
      if (it == flow_lane.end()) {
        it = flow_lane.emplace(e.flow_id, lanes.size()).first;
        lanes.push_back({"flow " + hex_id(e.flow_id), {}, {}});
      }
      lanes[it->second].spans.push_back(&e);
      lanes[it->second].threads.insert(th.thread_id);
    }
    if (!own.spans.empty()) lanes.push_back(std::move(own));
  }
  w.key("profiles");
  w.begin_array();
  for (auto& l : lanes) {
    auto& spans = l.spans;
    std::sort(spans.begin(), spans.end(), [](const TimelineEvent* a, const TimelineEvent* b) {
      return a->start_ns != b->start_ns ? a->start_ns < b->start_ns : a->end_ns > b->end_ns;
    });
    struct ev {
      bool open;
      std::uint32_t frame;
      std::uint64_t at;
    };
    std::vector<ev> events;
    std::vector<const TimelineEvent*> stack;
    std::uint64_t omitted = 0;
    auto pop_until = [&](std::uint64_t at) {
      while (!stack.empty() && stack.back()->end_ns <= at) {
        events.push_back({false, stack.back()->site_id, stack.back()->end_ns});
        stack.pop_back();
      }
    };
    for (const TimelineEvent* s : spans) {
      pop_until(s->start_ns);
      if (!stack.empty() && s->end_ns > stack.back()->end_ns) { // overlaps without nesting
        ++omitted;
        continue;
      }
      events.push_back({true, s->site_id, s->start_ns});
      stack.push_back(s);
    }
    pop_until(UINT64_MAX);
    const std::uint64_t first = events.empty() ? 0 : events.front().at;
    const std::uint64_t last = events.empty() ? 0 : events.back().at;
    std::string name = l.name;
    if (!l.threads.empty()) name += ", on " + std::to_string(l.threads.size()) + " thread(s)";
    if (omitted > 0) name += ", " + std::to_string(omitted) + " interleaved spans omitted";
    w.begin_object();
    w.key("type"), w.value("evented");
    w.key("name"), w.value(name);
    w.key("unit"), w.value("nanoseconds");
    w.key("startValue"), w.value(first);
    w.key("endValue"), w.value(last);
    w.key("events");
    w.begin_array();
    for (const auto& e : events) {
      w.begin_object();
      w.key("type"), w.value(e.open ? "O" : "C");
      w.key("frame"), w.value(std::uint64_t{e.frame});
      w.key("at"), w.value(e.at);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  out << w.str() << '\n';
}

std::string to_folded(const ProfilerResults& results, fold_weight weight) {
  std::map<std::uint32_t, const BlockResults*> by_site;
  for (const auto& tr : results.tracks)
    for (const auto& b : tr.blocks) by_site[b.site_id] = &b;
  auto frame = [](const std::string& name) {
    std::string f = name;
    for (char& c : f)
      if (c == ';' || c == '\n' || c == '\r') c = '_';
    return f.empty() ? std::string("_") : f;
  };
  // Paths from the roots to a block with the share of its time under each.
  std::map<std::string, double> lines;
  std::function<void(const BlockResults&, const std::string&, double, int, std::set<std::uint32_t>&)> up;
  up = [&](const BlockResults& b, const std::string& suffix, double share, int depth, std::set<std::uint32_t>& seen) {
    const std::string path = suffix.empty() ? frame(b.name) : frame(b.name) + ";" + suffix;
    if (b.callers.empty() || depth > 64) {
      lines[path] += share;
      return;
    }
    std::uint64_t under = 0;
    for (const auto& c : b.callers) under += c.total_time_ns;
    for (const auto& c : b.callers) {
      const double part = under == 0 ? share / static_cast<double>(b.callers.size())
                                     : share * static_cast<double>(c.total_time_ns) / static_cast<double>(under);
      auto parent = by_site.find(c.parent_site_id);
      if (c.parent_site_id == no_parent || parent == by_site.end() || seen.count(c.parent_site_id) > 0) {
        lines[path] += part;
      } else {
        seen.insert(b.site_id);
        up(*parent->second, path, part, depth + 1, seen);
        seen.erase(b.site_id);
      }
    }
  };
  for (const auto& [id, b] : by_site) {
    double w = static_cast<double>(b->self_time_ns);
    if (weight == fold_weight::active_time && b->total_time_ns > 0)
      w *= static_cast<double>(b->active_time_ns()) / static_cast<double>(b->total_time_ns);
    if (w <= 0) continue;
    std::set<std::uint32_t> seen{id};
    up(*b, "", w, 0, seen);
  }
  std::string out;
  for (const auto& [path, w] : lines) {
    const auto n = static_cast<std::uint64_t>(std::llround(w));
    if (n > 0) out += path + " " + std::to_string(n) + "\n";
  }
  return out;
}

expected<void> export_chrome_trace(const Timeline& timeline, const std::filesystem::path& file) {
  std::ostringstream os;
  write_chrome_trace(os, timeline);
  return write_file(file, os.str());
}

expected<void> export_speedscope(const Timeline& timeline, const std::filesystem::path& file) {
  std::ostringstream os;
  write_speedscope(os, timeline);
  return write_file(file, os.str());
}

} // namespace stichotrope
