// The HTTP endpoint: the optional stichotrope::http target (also known by its
// older name stichotrope::prometheus). A server from cpp-httplib (Debian's
// libcpp-httplib-dev) serves, for every profiler whose configuration names
// an address (STICHOTROPE_HTTP=127.0.0.1:9464, or `http = "..."` in the
// configuration file):
//   /metrics            Prometheus text exposition (all its profilers)
//   /                   the live view (web/, compiled in: no network needed)
//   /api/...            the JSON API behind it (docs/live-view.md)
// Linking the target is enough: this file registers itself with the library
// at start-up. Reads use get_results() and get_timeline(), which never block
// recorders; controls that change state are POST only and need the header
// X-Stichotrope-Control (a cross-site form cannot send it); requests naming
// another host than the one bound are refused (DNS rebinding).
#include <arpa/inet.h>
#include <netinet/in.h>

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "json_writer.hpp" // the library's JSON escaping (private header)
#include "web_assets.hpp"
import stichotrope;

namespace {

struct endpoint {
  httplib::Server server;
  std::string host;                              // as bound
  std::vector<stichotrope::Profiler*> profilers; // under exporter_state::mutex
};

/// Never freed: profilers may end during static destruction, and the
/// servers' threads run until the process ends.
struct exporter_state {
  std::mutex mutex;
  std::map<std::string, endpoint*> endpoints; // by address as configured
};
exporter_state& state() {
  static exporter_state* s = new exporter_state;
  return *s;
}

/// "host:port" (checked by the configuration); an empty host is loopback.
std::pair<std::string, int> split_address(const std::string& address) {
  const auto colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.empty()) host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  std::from_chars(address.data() + colon + 1, address.data() + address.size(), port);
  return {host, port};
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.starts_with("127.");
}

/// Whether `authority` (a Host header, or the authority of an absolute-form
/// request target) names this machine's loopback exactly: an IPv4 literal in
/// 127.0.0.0/8 (four decimal parts), `::1` (bracketed when a port follows),
/// or `localhost` (any case), each with an optional decimal port. Anything
/// else, empty included, is a name another machine could answer to (a
/// DNS-rebinding domain such as 127.0.0.1.example resolves to loopback too).
bool names_loopback(std::string_view authority) {
  std::string_view host = authority, port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    in6_addr a6{};
    const std::string h(host);
    return inet_pton(AF_INET6, h.c_str(), &a6) == 1 && std::memcmp(&a6, &in6addr_loopback, sizeof a6) == 0 &&
           port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  if (authority == "::1") return true; // unbracketed, without a port
  if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
  }
  if (host.size() == 9) {
    std::string lower(host);
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (lower == "localhost") return true;
  }
  // inet_pton takes exactly four decimal parts ("127.1", octal or hex forms fail).
  in_addr a4{};
  const std::string h(host);
  return !h.empty() && h.find_first_not_of("0123456789.") == std::string::npos &&
         inet_pton(AF_INET, h.c_str(), &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

// ------------------------------------------------------------------ JSON

using stichotrope::detail::json::json_string;

/// The profiler's switches: started, timeline capture, and each track that
/// has a name or is switched off (the page adds the tracks it sees in the
/// results: a poll aggregates once, in /api/results).
std::string state_json(stichotrope::Profiler& p) {
  std::map<int, std::pair<std::optional<std::string>, bool>> tracks;
  for (int i = 0; i < stichotrope::max_tracks; ++i) {
    const bool enabled = p.is_track_enabled(i);
    auto name = p.track_name(i);
    if (name || !enabled) tracks[i] = {std::move(name), enabled};
  }
  std::string out = "{\"name\":";
  json_string(out, p.name());
  out += ",\"started\":";
  out += p.is_started() ? "true" : "false";
  out += ",\"timeline\":";
  out += p.is_timeline_on() ? "true" : "false";
  out += ",\"tracks\":[";
  bool first = true;
  for (const auto& [idx, t] : tracks) {
    if (!first) out += ',';
    first = false;
    out += "{\"track\":" + std::to_string(idx) + ",\"name\":";
    if (t.first)
      json_string(out, *t.first);
    else
      out += "null";
    out += ",\"enabled\":";
    out += t.second ? "true" : "false";
    out += '}';
  }
  out += "]}";
  return out;
}

/// Per-thread results: each entry's "results" is the results JSON.
std::string threads_json(stichotrope::Profiler& p) {
  std::string out = "{\"threads\":[";
  bool first = true;
  for (const auto& t : p.get_all_thread_data()) {
    if (!first) out += ',';
    first = false;
    out += "{\"thread_id\":" + std::to_string(t.thread_id) + ",\"thread_name\":";
    json_string(out, t.thread_name);
    out += ",\"exited\":";
    out += t.exited ? "true" : "false";
    out += ",\"results\":" + stichotrope::to_json(t.results, -1) + "}";
  }
  out += "]}";
  return out;
}

/// The timeline's last `window_ns`: sites, and per thread the events that
/// ended in the window as [kind, start_ns, end_ns, site, flow, arrow]
/// (kind 0 block, 1 suspend, 2 resume), times on the timeline clock whose
/// present is "now_ns"; at most `limit` per thread, the most recent
/// ("cut" counts the older ones left out).
std::string timeline_json(stichotrope::Profiler& p, std::uint64_t window_ns, std::size_t limit) {
  const auto tl = p.get_timeline();
  const std::uint64_t now =
      stichotrope::detail::ticks_to_ns(stichotrope::detail::epoch_ticks.load(), stichotrope::detail::now_ticks());
  const std::uint64_t from = now > window_ns ? now - window_ns : 0;
  std::string out = "{\"now_ns\":" + std::to_string(now) + ",\"window_ns\":" + std::to_string(window_ns) +
                    ",\"on\":" + (p.is_timeline_on() ? "true" : "false") + ",\"sites\":[";
  for (std::size_t i = 0; i < tl.sites.size(); ++i) {
    const auto& s = tl.sites[i];
    if (i) out += ',';
    out += "{\"id\":" + std::to_string(s.site_id) + ",\"track\":" + std::to_string(s.track) + ",\"name\":";
    json_string(out, s.name);
    out += '}';
  }
  out += "],\"threads\":[";
  bool first = true;
  for (const auto& t : tl.threads) {
    if (!first) out += ',';
    first = false;
    out += "{\"id\":" + std::to_string(t.thread_id) + ",\"name\":";
    json_string(out, t.thread_name);
    out += ",\"exited\":";
    out += t.exited ? "true" : "false";
    std::size_t begin = 0, in_window = 0;
    for (const auto& e : t.events) in_window += e.end_ns >= from;
    const std::size_t cut = in_window > limit ? in_window - limit : 0;
    out += ",\"dropped\":" + std::to_string(t.dropped) + ",\"cut\":" + std::to_string(cut) + ",\"events\":[";
    bool first_event = true;
    for (const auto& e : t.events) {
      if (e.end_ns < from || begin++ < cut) continue;
      if (!first_event) out += ',';
      first_event = false;
      out += '[';
      out += std::to_string(static_cast<int>(e.kind)) + ',' + std::to_string(e.start_ns) + ',' +
             std::to_string(e.end_ns) + ',' + std::to_string(e.site_id) + ',' + std::to_string(e.flow_id) + ',' +
             std::to_string(e.arrow_id);
      out += ']';
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

// ------------------------------------------------------------------ routes

// "; charset=utf-8" also keeps cpp-httplib from compressing the body: it
// compresses "application/json" exactly, with brotli at its slowest
// quality (about 1 MB/s: seconds of the program's CPU for a timeline).
constexpr const char* json_type = "application/json; charset=utf-8";

void send_json(httplib::Response& res, std::string body) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(std::move(body), json_type);
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  std::string body = "{\"error\":";
  json_string(body, message);
  body += '}';
  res.status = status;
  res.set_content(std::move(body), json_type);
}

/// Calls `fn(profiler)` for the profiler named by ?profiler= (the first one
/// served when absent), under the state mutex: a profiler ends only after
/// the request that reads it.
template <class F>
void with_profiler(endpoint* e, const httplib::Request& req, httplib::Response& res, F&& fn) {
  std::lock_guard lock(state().mutex);
  stichotrope::Profiler* found = nullptr;
  if (req.has_param("profiler")) {
    const auto name = req.get_param_value("profiler");
    for (auto* p : e->profilers)
      if (p->name() == name) found = p;
  } else if (!e->profilers.empty()) {
    found = e->profilers.front();
  }
  if (found == nullptr) return send_error(res, 404, "no such profiler on this endpoint");
  fn(*found);
}

std::string file_name(std::string_view profiler, std::string_view ext) {
  std::string name;
  for (const char c : profiler) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '_';
  return name.append(ext);
}

void serve(endpoint* e) {
  auto& srv = e->server;
  // DNS rebinding: a page from another site that resolves its own name to
  // 127.0.0.1 could otherwise read the profile. Bound to loopback, only
  // requests addressed to a loopback name are answered.
  srv.set_pre_routing_handler([e](const httplib::Request& req, httplib::Response& res) {
    if (!is_loopback(e->host)) return httplib::Server::HandlerResponse::Unhandled;
    // Exactly one Host header naming loopback, and no absolute-form target
    // naming another host (RFC 9112 3.2.2: such a target overrides Host).
    // (The header's whole value: httplib decodes %XX in it, and its
    // get_header_value stops at a decoded NUL.)
    const auto host = req.headers.find("Host");
    bool ok = req.get_header_value_count("Host") == 1 && host != req.headers.end() && names_loopback(host->second);
    for (std::string_view scheme : {"http://", "https://"})
      if (ok && std::string_view(req.target).starts_with(scheme)) {
        const std::string_view rest = std::string_view(req.target).substr(scheme.size());
        ok = names_loopback(rest.substr(0, rest.find_first_of("/?#")));
      }
    if (ok) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, 403, "this endpoint answers requests addressed to a loopback host only");
    return httplib::Server::HandlerResponse::Handled;
  });

  srv.Get("/metrics", [e](const httplib::Request&, httplib::Response& res) {
    std::vector<stichotrope::ProfilerResults> results;
    {
      std::lock_guard lock(state().mutex); // a profiler ends only after its scrape
      for (auto* p : e->profilers) results.push_back(p->get_results());
    }
    res.set_content(stichotrope::to_prometheus(results), "text/plain; version=0.0.4; charset=utf-8");
  });

  for (const auto& asset : stichotrope_web::assets) {
    const auto* a = &asset;
    srv.Get(a->path, [a](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-cache");
      res.set_content(std::string(a->content), a->content_type);
    });
  }

  srv.Get("/api/profilers", [e](const httplib::Request&, httplib::Response& res) {
    std::string out = "{\"profilers\":[";
    {
      std::lock_guard lock(state().mutex);
      for (std::size_t i = 0; i < e->profilers.size(); ++i) out += (i ? "," : "") + state_json(*e->profilers[i]);
    }
    send_json(res, out + "]}");
  });
  srv.Get("/api/results", [e](const httplib::Request& req, httplib::Response& res) {
    with_profiler(e, req, res, [&](stichotrope::Profiler& p) {
      const bool per_thread = req.get_param_value("threads") == "1";
      if (req.get_param_value("download") == "1")
        res.set_header("Content-Disposition", "attachment; filename=\"" + file_name(p.name(), ".json") + "\"");
      send_json(res, per_thread ? threads_json(p) : stichotrope::to_json(p.get_results(), -1));
    });
  });
  srv.Get("/api/folded", [e](const httplib::Request& req, httplib::Response& res) {
    with_profiler(e, req, res, [&](stichotrope::Profiler& p) {
      const auto weight = req.get_param_value("weight") == "active" ? stichotrope::fold_weight::active_time
                                                                    : stichotrope::fold_weight::self_time;
      res.set_header("Cache-Control", "no-store");
      res.set_content(stichotrope::to_folded(p.get_results(), weight), "text/plain; charset=utf-8");
    });
  });
  srv.Get("/api/timeline", [e](const httplib::Request& req, httplib::Response& res) {
    std::uint64_t seconds = 5, limit = 20'000;
    for (auto [name, value, most] : {std::tuple{"seconds", &seconds, 3600ull}, std::tuple{"limit", &limit, 1ull << 20}})
      if (req.has_param(name)) {
        const auto v = req.get_param_value(name);
        if (std::from_chars(v.data(), v.data() + v.size(), *value).ec != std::errc{} || *value == 0 || *value > most)
          return send_error(res, 400, std::string(name) + ": expected 1 to " + std::to_string(most));
      }
    with_profiler(e, req, res, [&](stichotrope::Profiler& p) {
      send_json(res, timeline_json(p, seconds * 1'000'000'000ull, static_cast<std::size_t>(limit)));
    });
  });
  srv.Get("/api/trace", [e](const httplib::Request& req, httplib::Response& res) {
    with_profiler(e, req, res, [&](stichotrope::Profiler& p) {
      std::ostringstream out;
      stichotrope::write_chrome_trace(out, p.get_timeline());
      res.set_header("Content-Disposition", "attachment; filename=\"" + file_name(p.name(), ".trace.json") + "\"");
      send_json(res, std::move(out).str());
    });
  });

  // Controls: POST with X-Stichotrope-Control, answered with the new state.
  auto control = [e](const std::string& path, auto action) {
    e->server.Post(path, [e, action](const httplib::Request& req, httplib::Response& res) {
      if (!req.has_header("X-Stichotrope-Control"))
        return send_error(res, 403, "controls need the header X-Stichotrope-Control (the live view sends it)");
      with_profiler(e, req, res, [&](stichotrope::Profiler& p) {
        if (auto error = action(p, req)) return send_error(res, 400, *error);
        send_json(res, state_json(p));
      });
    });
    e->server.Get(path, [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      send_error(res, 405, "this control changes state: POST only");
    });
  };
  using opt = std::optional<std::string>;
  control("/api/start", [](stichotrope::Profiler& p, const httplib::Request&) -> opt {
    p.start();
    return std::nullopt;
  });
  control("/api/stop", [](stichotrope::Profiler& p, const httplib::Request&) -> opt {
    p.stop();
    return std::nullopt;
  });
  control("/api/clear", [](stichotrope::Profiler& p, const httplib::Request&) -> opt {
    p.clear();
    return std::nullopt;
  });
  control("/api/capture", [](stichotrope::Profiler& p, const httplib::Request& req) -> opt {
    const auto on = req.get_param_value("on");
    if (on == "1")
      p.start_timeline();
    else if (on == "0")
      p.stop_timeline();
    else
      return "on: expected 1 or 0";
    return std::nullopt;
  });
  control("/api/track", [](stichotrope::Profiler& p, const httplib::Request& req) -> opt {
    int track = -1;
    const auto t = req.get_param_value("track");
    if (std::from_chars(t.data(), t.data() + t.size(), track).ec != std::errc{}) return "track: expected a track index";
    const auto enabled = req.get_param_value("enabled");
    if (enabled != "1" && enabled != "0") return "enabled: expected 1 or 0";
    if (auto r = p.set_track_enabled(track, enabled == "1"); !r) return r.error().message;
    return std::nullopt;
  });
}

void configured(stichotrope::Profiler& p) {
  const auto address = p.config().http;
  auto& s = state();
  std::lock_guard lock(s.mutex);
  for (auto& [a, e] : s.endpoints) std::erase(e->profilers, &p); // the address may have changed
  if (!address) return;
  auto it = s.endpoints.find(*address);
  if (it == s.endpoints.end()) {
    const auto [host, port] = split_address(*address);
    auto* e = new endpoint;
    e->host = host;
    serve(e);
    if (!e->server.bind_to_port(host.c_str(), port)) {
      stichotrope::detail::report(p, "http: cannot listen on " + *address +
                                         " (in use, or not an address of this machine); /metrics and the live view "
                                         "are not served");
      delete e;
      return;
    }
    std::thread([e] { e->server.listen_after_bind(); }).detach();
    it = s.endpoints.emplace(*address, e).first;
  }
  it->second->profilers.push_back(&p);
}

void ending(stichotrope::Profiler& p) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  for (auto& [a, e] : s.endpoints) std::erase(e->profilers, &p);
}

const stichotrope::detail::exporter http_exporter{&configured, &ending};
[[maybe_unused]] const bool registered = (stichotrope::detail::register_exporter(&http_exporter), true);

} // namespace
