// Configuration from the environment and a TOML file (modules/config.cppm).
// TOML is parsed by toml++ (Debian's libtomlplusplus-dev), private to this
// file; without it, a configuration file is an Error that says so.
module;
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>
#if STICHOTROPE_HAS_TOML
#include <toml++/toml.h>
#endif
module stichotrope;

namespace stichotrope {

Config& Config::fill_from(const Config& lower) {
  if (!enabled) enabled = lower.enabled;
  for (const auto& [t, on] : lower.tracks_enabled) tracks_enabled.emplace(t, on);
  for (const auto& [t, n] : lower.track_names) track_names.emplace(t, n);
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  // The deprecated name counts as its own source's value, below the new one.
  if (!timeline_events) timeline_events = timeline;
  if (!timeline_events) timeline_events = lower.timeline_events ? lower.timeline_events : lower.timeline;
  timeline = timeline_events;
#pragma clang diagnostic pop
  if (!timeline_when_full) timeline_when_full = lower.timeline_when_full;
  if (!outputs) outputs = lower.outputs;
  if (!http) http = lower.http;
  if (!http_token) http_token = lower.http_token;
  if (!otlp_endpoint) otlp_endpoint = lower.otlp_endpoint;
  if (!service_name) service_name = lower.service_name;
  if (!resource_attributes) resource_attributes = lower.resource_attributes;
  if (!export_interval_ms) export_interval_ms = lower.export_interval_ms;
  return *this;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    const auto comma = s.find(',');
    const std::string_view item = trim(s.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) return out;
    s.remove_prefix(comma + 1);
  }
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  s = trim(s);
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

/// "host:port", port in [1, 65535]; an empty host means loopback.
std::optional<std::string> check_endpoint(std::string_view s) {
  s = trim(s);
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return "expected host:port (e.g. 127.0.0.1:9464)";
  const auto port = parse_u64(s.substr(colon + 1));
  if (!port || *port == 0 || *port > 65535) return "the port must be a number in [1, 65535]";
  return std::nullopt;
}

/// An OTLP/HTTP base address: "http://host:port" or "https://..." (the
/// exporter appends /v1/metrics and /v1/traces, as the OpenTelemetry
/// specification says for OTEL_EXPORTER_OTLP_ENDPOINT).
std::optional<std::string> check_otlp_endpoint(std::string_view s) {
  s = trim(s);
  std::string_view rest;
  if (s.starts_with("http://"))
    rest = s.substr(7);
  else if (s.starts_with("https://"))
    rest = s.substr(8);
  else
    return "expected an http:// or https:// address (e.g. http://127.0.0.1:4318)";
  if (rest.empty() || rest.front() == '/' || rest.front() == ':') return "the address names no host";
  if (rest.find_first_of(" \t\r\n") != std::string_view::npos) return "the address contains white space";
  return std::nullopt;
}

/// "key=value,key2=value2", as OTEL_RESOURCE_ATTRIBUTES: every entry has a
/// non-empty key and an '='.
std::optional<std::string> check_resource_attributes(std::string_view s) {
  s = trim(s);
  while (!s.empty()) {
    const auto comma = s.find(',');
    const std::string_view entry = trim(s.substr(0, comma));
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) return "'" + std::string(entry) + "' is not key=value";
    if (trim(entry.substr(0, eq)).empty()) return "'" + std::string(entry) + "' has an empty key";
    if (comma == std::string_view::npos) break;
    s = s.substr(comma + 1);
  }
  return std::nullopt;
}

std::optional<std::string> check_output(std::string_view path) {
  static constexpr std::string_view known[] = {".trace.json", ".speedscope.json", ".json", ".csv", ".txt", ".folded"};
  for (auto ext : known)
    if (path.size() > ext.size() && path.substr(path.size() - ext.size()) == ext) return std::nullopt;
  return "'" + std::string(path) +
         "' has no known extension (.json, .csv, .txt, .trace.json, .speedscope.json, .folded)";
}

tl::unexpected<Error> bad_variable(const char* name, std::string_view value, const std::string& why) {
  return fail(errc::invalid_input,
              std::string("environment variable ") + name + "='" + std::string(value) + "': " + why);
}

} // namespace

namespace {

/// The environment's settings, each variable on its own: a bad one is left
/// out (its error added to `errors`) and the others still apply.
Config read_environment(const std::function<const char*(const char*)>& lookup, std::vector<Error>& errors) {
  auto bad = [&](const char* name, std::string_view value, const std::string& why) {
    errors.push_back(bad_variable(name, value, why).value());
  };
  auto get = [&](const char* name) -> std::optional<std::string_view> {
    const char* v = lookup ? lookup(name) : std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string_view(v);
  };
  Config c;
  if (auto v = get("STICHOTROPE_ENABLED")) {
    const auto t = trim(*v);
    if (t == "1" || t == "true")
      c.enabled = true;
    else if (t == "0" || t == "false")
      c.enabled = false;
    else
      bad("STICHOTROPE_ENABLED", *v, "expected 0 or 1");
  }
  if (auto v = get("STICHOTROPE_TRACKS_DISABLED")) {
    std::map<int, bool> off;
    bool ok = true;
    for (const auto& item : split_list(*v)) {
      const auto t = parse_u64(item);
      if (!t || *t >= static_cast<std::uint64_t>(max_tracks)) {
        bad("STICHOTROPE_TRACKS_DISABLED", *v, "'" + item + "' is not a track index in [0, 256)");
        ok = false;
        break;
      }
      off[static_cast<int>(*t)] = false;
    }
    if (ok) c.tracks_enabled.insert(off.begin(), off.end());
  }
  if (auto v = get("STICHOTROPE_TIMELINE")) {
    const auto n = parse_u64(*v);
    if (!n)
      bad("STICHOTROPE_TIMELINE", *v, "expected the events kept per thread (0: off)");
    else
      c.timeline_events = *n;
  }
  if (auto v = get("STICHOTROPE_TIMELINE_WHEN_FULL")) {
    const auto t = trim(*v);
    if (t == "keep_latest")
      c.timeline_when_full = overflow_policy::keep_latest;
    else if (t == "keep_first")
      c.timeline_when_full = overflow_policy::keep_first;
    else
      bad("STICHOTROPE_TIMELINE_WHEN_FULL", *v, "expected keep_latest or keep_first");
  }
  if (auto v = get("STICHOTROPE_OUTPUT")) {
    auto list = split_list(*v);
    std::optional<std::string> why;
    if (list.empty()) why = "expected one or more file names";
    for (const auto& path : list)
      if (!why) why = check_output(path);
    if (why)
      bad("STICHOTROPE_OUTPUT", *v, *why);
    else
      c.outputs = std::move(list);
  }
  // STICHOTROPE_HTTP; STICHOTROPE_PROMETHEUS is its older name (HTTP wins).
  for (const char* name : {"STICHOTROPE_PROMETHEUS", "STICHOTROPE_HTTP"})
    if (auto v = get(name)) {
      if (auto why = check_endpoint(*v))
        bad(name, *v, *why);
      else
        c.http = std::string(trim(*v));
    }
  // (Never echoed in a diagnostic: it is a secret.)
  if (auto v = get("STICHOTROPE_HTTP_TOKEN")) c.http_token = std::string(trim(*v));
  if (auto v = get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
    if (auto why = check_otlp_endpoint(*v))
      bad("OTEL_EXPORTER_OTLP_ENDPOINT", *v, *why);
    else
      c.otlp_endpoint = std::string(trim(*v));
  }
  if (auto v = get("OTEL_SERVICE_NAME")) c.service_name = std::string(trim(*v));
  if (auto v = get("OTEL_RESOURCE_ATTRIBUTES")) {
    if (auto why = check_resource_attributes(*v))
      bad("OTEL_RESOURCE_ATTRIBUTES", *v, *why);
    else
      c.resource_attributes = std::string(trim(*v));
  }
  if (auto v = get("OTEL_METRIC_EXPORT_INTERVAL")) {
    const auto n = parse_u64(*v);
    if (!n || *n == 0)
      bad("OTEL_METRIC_EXPORT_INTERVAL", *v, "expected milliseconds (> 0)");
    else
      c.export_interval_ms = *n;
  }
  return c;
}

} // namespace

expected<Config> config_from_environment(const std::function<const char*(const char*)>& lookup) {
  std::vector<Error> errors;
  Config c = read_environment(lookup, errors);
  if (!errors.empty()) return tl::unexpected(errors.front()); // the first bad variable
  return c;
}

#if STICHOTROPE_HAS_TOML
namespace {

/// Reads the keys of one table into `c`; the first bad one is the error.
class toml_reader {
public:
  toml_reader(std::string_view source) : source_(source) {}

  std::optional<Error> read(const toml::table& t, const std::string& prefix, Config& c) {
    for (const auto& [key, node] : t) {
      const std::string k(key.str());
      const std::string path = prefix.empty() ? k : prefix + "." + k;
      if (prefix.empty() && k == "profiler") continue; // sections by profiler name: read by the caller
      if (k == "enabled") {
        if (!node.is_boolean()) return bad(node, path, "expected true or false");
        c.enabled = node.as_boolean()->get();
      } else if (k == "output") {
        std::vector<std::string> list;
        if (node.is_string()) {
          list.push_back(node.as_string()->get());
        } else if (const auto* a = node.as_array()) {
          for (const auto& item : *a) {
            if (!item.is_string()) return bad(item, path, "expected a file name (a string)");
            list.push_back(item.as_string()->get());
          }
        } else {
          return bad(node, path, "expected a file name or an array of them");
        }
        for (const auto& p : list)
          if (auto why = check_output(p)) return bad(node, path, *why);
        c.outputs = std::move(list);
      } else if (k == "http" || k == "prometheus") { // `prometheus`: the older name
        if (!node.is_string()) return bad(node, path, "expected \"host:port\"");
        if (auto why = check_endpoint(node.as_string()->get())) return bad(node, path, *why);
        if (k == "http" || !c.http) c.http = node.as_string()->get();
      } else if (k == "http_token") {
        if (!node.is_string() || node.as_string()->get().empty())
          return bad(node, path, "expected the token, or the path of a file holding it");
        c.http_token = node.as_string()->get();
      } else if (k == "timeline") {
        const auto* tt = node.as_table();
        if (tt == nullptr) return bad(node, path, "expected a table with 'events' and 'when_full'");
        for (const auto& [tk, tn] : *tt) {
          const std::string tpath = path + "." + std::string(tk.str());
          if (tk.str() == "events") {
            if (!tn.is_integer() || tn.as_integer()->get() < 0)
              return bad(tn, tpath, "expected the events kept per thread (0: off)");
            c.timeline_events = static_cast<std::uint64_t>(tn.as_integer()->get());
          } else if (tk.str() == "when_full") {
            const auto* s = tn.as_string();
            if (s != nullptr && s->get() == "keep_latest")
              c.timeline_when_full = overflow_policy::keep_latest;
            else if (s != nullptr && s->get() == "keep_first")
              c.timeline_when_full = overflow_policy::keep_first;
            else
              return bad(tn, tpath, "expected \"keep_latest\" or \"keep_first\"");
          } else {
            return bad(tn, tpath, "unknown key");
          }
        }
      } else if (k == "tracks") {
        const auto* tt = node.as_table();
        if (tt == nullptr) return bad(node, path, "expected a table of track indices");
        for (const auto& [tk, tn] : *tt) {
          const std::string tpath = path + "." + std::string(tk.str());
          const auto idx = parse_u64(tk.str());
          if (!idx || *idx >= static_cast<std::uint64_t>(max_tracks))
            return bad(tn, tpath, "a track index in [0, 256) was expected as the key");
          const auto* track = tn.as_table();
          if (track == nullptr) return bad(tn, tpath, "expected { name = \"...\", enabled = true|false }");
          for (const auto& [fk, fn] : *track) {
            const std::string fpath = tpath + "." + std::string(fk.str());
            if (fk.str() == "name") {
              if (!fn.is_string() || fn.as_string()->get().empty()) return bad(fn, fpath, "expected a non-empty name");
              c.track_names[static_cast<int>(*idx)] = fn.as_string()->get();
            } else if (fk.str() == "enabled") {
              if (!fn.is_boolean()) return bad(fn, fpath, "expected true or false");
              c.tracks_enabled[static_cast<int>(*idx)] = fn.as_boolean()->get();
            } else {
              return bad(fn, fpath, "unknown key");
            }
          }
        }
      } else if (k == "otel") {
        const auto* tt = node.as_table();
        if (tt == nullptr) return bad(node, path, "expected a table");
        for (const auto& [ok, on] : *tt) {
          const std::string opath = path + "." + std::string(ok.str());
          if (ok.str() == "export_interval_ms") {
            if (!on.is_integer() || on.as_integer()->get() <= 0) return bad(on, opath, "expected milliseconds (> 0)");
            c.export_interval_ms = static_cast<std::uint64_t>(on.as_integer()->get());
            continue;
          }
          if (!on.is_string()) return bad(on, opath, "expected a string");
          const std::string v = on.as_string()->get();
          if (ok.str() == "endpoint") {
            if (auto why = check_otlp_endpoint(v)) return bad(on, opath, *why);
            c.otlp_endpoint = v;
          } else if (ok.str() == "service_name") {
            c.service_name = v;
          } else if (ok.str() == "resource_attributes") {
            if (auto why = check_resource_attributes(v)) return bad(on, opath, *why);
            c.resource_attributes = v;
          } else
            return bad(on, opath, "unknown key");
        }
      } else {
        return bad(node, path, "unknown key");
      }
    }
    return std::nullopt;
  }

  Error bad(const toml::node& node, const std::string& key, const std::string& why) const {
    const auto& at = node.source().begin;
    return Error{errc::invalid_input, std::string(source_) + ":" + std::to_string(at.line) + ":" +
                                          std::to_string(at.column) + ": key '" + key + "': " + why};
  }

private:
  std::string_view source_;
};

} // namespace

expected<Config> config_from_toml(std::string_view text, std::string_view source, std::string_view profiler_name) {
  toml::table doc;
  try {
    doc = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return fail(errc::invalid_input, std::string(source) + ":" + std::to_string(at.line) + ":" +
                                         std::to_string(at.column) + ": " + std::string(e.description()));
  }
  toml_reader reader(source);
  Config top;
  if (auto error = reader.read(doc, "", top)) return tl::unexpected(*error);
  if (const auto* profilers = doc["profiler"].as_table()) {
    if (const auto* mine = (*profilers)[profiler_name].as_table()) {
      Config section;
      if (auto error = reader.read(*mine, "profiler." + std::string(profiler_name), section))
        return tl::unexpected(*error);
      return section.fill_from(top);
    }
  } else if (doc.contains("profiler")) {
    return tl::unexpected(reader.bad(*doc.get("profiler"), "profiler", "expected tables named after profilers"));
  }
  return top;
}
#else
expected<Config> config_from_toml(std::string_view, std::string_view source, std::string_view) {
  return fail(errc::invalid_input, std::string(source) + ": this stichotrope was built without TOML support (install "
                                                         "libtomlplusplus-dev and rebuild)");
}
#endif

expected<Config> load_config_file(const std::filesystem::path& file, std::string_view profiler_name) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(errc::io_error, "cannot open configuration file '" + file.string() + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(errc::io_error, "cannot read configuration file '" + file.string() + "'");
  return config_from_toml(text.str(), file.string(), profiler_name);
}

ResolvedConfig resolve_config(const Config& code, std::string_view profiler_name,
                              const std::function<const char*(const char*)>& lookup) {
  ResolvedConfig r;
  r.config = code;
  std::vector<Error> env_errors; // each bad variable is left out alone
  r.config.fill_from(read_environment(lookup, env_errors));
  r.errors.insert(r.errors.end(), env_errors.begin(), env_errors.end());
  const char* file = lookup ? lookup("STICHOTROPE_CONFIG") : std::getenv("STICHOTROPE_CONFIG");
  if (file != nullptr && *file != '\0') {
    if (auto from_file = load_config_file(file, profiler_name))
      r.config.fill_from(*from_file);
    else
      r.errors.push_back(from_file.error());
  }
  return r;
}

std::string expand_output_path(std::string_view pattern, std::string_view profiler_name) {
  std::string safe;
  for (char ch : profiler_name)
    safe += (ch == '/' || ch == '\\' || ch == '\0' || static_cast<unsigned char>(ch) < 0x20) ? '_' : ch;
  std::string out;
  for (std::size_t i = 0; i < pattern.size();) {
    if (pattern.substr(i, 6) == "{name}") {
      out += safe;
      i += 6;
    } else if (pattern.substr(i, 5) == "{pid}") {
      out += std::to_string(::getpid());
      i += 5;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

} // namespace stichotrope
