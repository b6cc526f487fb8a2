// The HTTP endpoint: the optional stichotrope::http target (also known by its
// older name stichotrope::prometheus). A libmicrohttpd daemon (Debian's
// libmicrohttpd-dev: event-driven, so idle and slow clients hold a socket and
// a bounded buffer, never a thread; docs/reliability.md) serves, for every
// profiler whose configuration names an address (STICHOTROPE_HTTP=
// 127.0.0.1:9464, or `http = "..."` in the configuration file):
//   /metrics            Prometheus text exposition (all its profilers)
//   /                   the live view (web/, compiled in: no network needed)
//   /api/...            the JSON API behind it (docs/live-view.md)
// Linking the target is enough: this file registers itself with the library
// at start-up. Reads use get_results() and get_timeline(), which never block
// recorders; controls that change state are POST only and need the header
// X-Stichotrope-Control (a cross-site form cannot send it); bound to
// loopback, requests naming another host are refused (DNS rebinding); with a
// token (STICHOTROPE_HTTP_TOKEN) every request needs it, and an address other
// than loopback is served only with one.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

#include "json_writer.hpp" // the library's JSON escaping (private header)
#include "web_assets.hpp"
import stichotrope;

namespace {

// The endpoint's stated limits (docs/reliability.md, "The endpoint as a guest").
constexpr unsigned idle_timeout_s = 10;             // a connection silent this long is closed
constexpr unsigned max_connections = 4096;          // beyond: accepted and closed at once
constexpr std::size_t connection_memory = 16 << 10; // per connection: request head and buffers
constexpr unsigned serving_threads = 2;             // each an epoll loop over its connections
constexpr std::size_t body_budget = 64u << 20;      // large bodies waiting to be sent; beyond: 503
constexpr std::size_t large_body = 1u << 20;        // a body this large counts against the budget
constexpr std::uint64_t trace_events_default = 100'000, trace_events_most = 1'000'000;

struct endpoint {
  MHD_Daemon* daemon = nullptr;
  std::string host;                              // as bound
  std::string token;                             // empty: none needed
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

/// Whether the address bound (a literal, or localhost) is this machine's loopback.
bool is_loopback(const std::string& host) {
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return std::memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
  return host == "localhost";
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
  const std::uint64_t now = stichotrope::detail::ns_since_epoch();
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

// ------------------------------------------------------------------ requests and replies

struct request {
  MHD_Connection* connection;
  std::string_view method;
  std::string_view path;
  std::optional<std::string_view> param(const char* name) const {
    const char* v = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, name);
    if (v == nullptr) return std::nullopt;
    return std::string_view(v);
  }
  std::string_view param_or_empty(const char* name) const { return param(name).value_or(std::string_view{}); }
  bool has_header(const char* name) const {
    return MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name) != nullptr;
  }
};

struct reply {
  unsigned status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

constexpr const char* json_type = "application/json; charset=utf-8";

reply json_reply(std::string body) { return {200, json_type, std::move(body), {{"Cache-Control", "no-store"}}}; }

reply error_reply(unsigned status, std::string_view message) {
  std::string body = "{\"error\":";
  json_string(body, message);
  body += '}';
  return {status, json_type, std::move(body), {}};
}

/// Bytes of large response bodies built and not yet sent, over all endpoints.
std::atomic<std::size_t> bodies_in_flight{0};
/// Traces are built one at a time: with the budget above, the memory the
/// endpoint holds for answers stays below body_budget plus what the serving
/// threads are building (at most one trace: its timeline copy, its body and
/// the body's growth).
std::mutex trace_building;

reply busy_reply() {
  auto r = error_reply(503, "too many large answers are waiting to be sent; try again");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

/// Calls `fn(profiler)` for the profiler named by ?profiler= (the first one
/// served when absent), under the state mutex: a profiler ends only after
/// the request that reads it.
template <class F>
reply with_profiler(endpoint* e, const request& req, F&& fn) {
  std::lock_guard lock(state().mutex);
  stichotrope::Profiler* found = nullptr;
  if (const auto name = req.param("profiler")) {
    for (auto* p : e->profilers)
      if (p->name() == *name) found = p;
  } else if (!e->profilers.empty()) {
    found = e->profilers.front();
  }
  if (found == nullptr) return error_reply(404, "no such profiler on this endpoint");
  return fn(*found);
}

std::string file_name(std::string_view profiler, std::string_view ext) {
  std::string name;
  for (const char c : profiler) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '_';
  return name.append(ext);
}

/// The timeline's most recent `most` events over all threads (by end time);
/// the others are counted in `left_out`.
void keep_most_recent(stichotrope::Timeline& tl, std::uint64_t most) {
  std::vector<std::uint64_t> ends;
  for (const auto& t : tl.threads)
    for (const auto& e : t.events) ends.push_back(e.end_ns);
  if (ends.size() <= most) return;
  const auto nth = ends.begin() + static_cast<std::ptrdiff_t>(ends.size() - most);
  std::nth_element(ends.begin(), nth, ends.end());
  const std::uint64_t cutoff = *nth;
  std::uint64_t newer = 0;
  for (const auto e : ends) newer += e > cutoff;
  std::uint64_t ties = most - newer; // events ending exactly at the cutoff that still fit
  for (auto& t : tl.threads) {
    const auto before = t.events.size();
    std::erase_if(t.events, [&](const stichotrope::TimelineEvent& e) {
      if (e.end_ns > cutoff) return false;
      if (e.end_ns == cutoff && ties > 0) return (--ties, false);
      return true;
    });
    tl.left_out += before - t.events.size();
  }
}

/// A decimal query parameter in [1, most], `fallback` when absent.
std::optional<std::uint64_t> count_param(const request& req, const char* name, std::uint64_t fallback,
                                         std::uint64_t most, reply& error) {
  const auto v = req.param(name);
  if (!v) return fallback;
  std::uint64_t n = 0;
  if (std::from_chars(v->data(), v->data() + v->size(), n).ec != std::errc{} || n == 0 || n > most) {
    error = error_reply(400, std::string(name) + ": expected 1 to " + std::to_string(most));
    return std::nullopt;
  }
  return n;
}

// ------------------------------------------------------------------ routes

reply metrics(endpoint* e) {
  std::vector<stichotrope::ProfilerResults> results;
  {
    std::lock_guard lock(state().mutex); // a profiler ends only after its scrape
    for (auto* p : e->profilers) results.push_back(p->get_results());
  }
  return {200, "text/plain; version=0.0.4; charset=utf-8", stichotrope::to_prometheus(results), {}};
}

std::optional<reply> read_route(endpoint* e, const request& req) {
  const auto path = req.path;
  if (path == "/metrics") return metrics(e);
  for (const auto& asset : stichotrope_web::assets)
    if (path == asset.path)
      return reply{200, asset.content_type, std::string(asset.content), {{"Cache-Control", "no-cache"}}};
  if (path == "/api/profilers") {
    std::string out = "{\"profilers\":[";
    {
      std::lock_guard lock(state().mutex);
      for (std::size_t i = 0; i < e->profilers.size(); ++i) out += (i ? "," : "") + state_json(*e->profilers[i]);
    }
    return json_reply(out + "]}");
  }
  if (path == "/api/results")
    return with_profiler(e, req, [&](stichotrope::Profiler& p) {
      auto r = json_reply(req.param_or_empty("threads") == "1" ? threads_json(p)
                                                               : stichotrope::to_json(p.get_results(), -1));
      if (req.param_or_empty("download") == "1")
        r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + file_name(p.name(), ".json") + "\"");
      return r;
    });
  if (path == "/api/folded")
    return with_profiler(e, req, [&](stichotrope::Profiler& p) {
      const auto weight = req.param_or_empty("weight") == "active" ? stichotrope::fold_weight::active_time
                                                                   : stichotrope::fold_weight::self_time;
      return reply{200,
                   "text/plain; charset=utf-8",
                   stichotrope::to_folded(p.get_results(), weight),
                   {{"Cache-Control", "no-store"}}};
    });
  if (path == "/api/timeline") {
    reply error;
    const auto seconds = count_param(req, "seconds", 5, 3600, error);
    if (!seconds) return error;
    const auto limit = count_param(req, "limit", 20'000, 1u << 20, error);
    if (!limit) return error;
    return with_profiler(e, req, [&](stichotrope::Profiler& p) {
      return json_reply(timeline_json(p, *seconds * 1'000'000'000ull, static_cast<std::size_t>(*limit)));
    });
  }
  if (path == "/api/trace") {
    reply error;
    const auto limit = count_param(req, "limit", trace_events_default, trace_events_most, error);
    if (!limit) return error;
    std::lock_guard one_at_a_time(trace_building);
    if (bodies_in_flight.load(std::memory_order_relaxed) >= body_budget) return busy_reply(); // (not built at all)
    return with_profiler(e, req, [&](stichotrope::Profiler& p) {
      auto tl = p.get_timeline();
      keep_most_recent(tl, *limit);
      auto r = json_reply(stichotrope::to_chrome_trace(tl));
      r.headers.emplace_back("Content-Disposition",
                             "attachment; filename=\"" + file_name(p.name(), ".trace.json") + "\"");
      r.headers.emplace_back("X-Stichotrope-Left-Out-Events", std::to_string(tl.left_out));
      return r;
    });
  }
  return std::nullopt;
}

using control_action = std::optional<std::string> (*)(stichotrope::Profiler&, const request&);

/// The controls: POST with X-Stichotrope-Control, answered with the new state.
control_action find_control(std::string_view path) {
  using opt = std::optional<std::string>;
  if (path == "/api/start")
    return [](stichotrope::Profiler& p, const request&) -> opt { return p.start(), std::nullopt; };
  if (path == "/api/stop")
    return [](stichotrope::Profiler& p, const request&) -> opt { return p.stop(), std::nullopt; };
  if (path == "/api/clear")
    return [](stichotrope::Profiler& p, const request&) -> opt { return p.clear(), std::nullopt; };
  if (path == "/api/capture")
    return [](stichotrope::Profiler& p, const request& req) -> opt {
      const auto on = req.param_or_empty("on");
      if (on == "1")
        p.start_timeline();
      else if (on == "0")
        p.stop_timeline();
      else
        return "on: expected 1 or 0";
      return std::nullopt;
    };
  if (path == "/api/track")
    return [](stichotrope::Profiler& p, const request& req) -> opt {
      int track = -1;
      const auto t = req.param_or_empty("track");
      if (std::from_chars(t.data(), t.data() + t.size(), track).ec != std::errc{})
        return "track: expected a track index";
      const auto enabled = req.param_or_empty("enabled");
      if (enabled != "1" && enabled != "0") return "enabled: expected 1 or 0";
      if (auto r = p.set_track_enabled(track, enabled == "1"); !r) return r.error().message;
      return std::nullopt;
    };
  return nullptr;
}

/// Exactly one Host header naming loopback, and no absolute-form target
/// naming another host (RFC 9112 3.2.2: such a target overrides Host).
bool addressed_to_loopback(const request& req) {
  struct seen {
    int hosts = 0;
    std::string_view value;
  } s;
  MHD_get_connection_values_n(
      req.connection, MHD_HEADER_KIND,
      [](void* cls, MHD_ValueKind, const char* key, std::size_t key_size, const char* value,
         std::size_t value_size) -> MHD_Result {
        auto* s = static_cast<seen*>(cls);
        if (key_size == 4 && strncasecmp(key, "Host", 4) == 0) {
          ++s->hosts;
          s->value = value == nullptr ? std::string_view{} : std::string_view(value, value_size);
        }
        return MHD_YES;
      },
      &s);
  // (Whitespace around a field value is not part of it: RFC 9110 5.5.)
  std::string_view host = s.value;
  while (!host.empty() && (host.front() == ' ' || host.front() == '\t')) host.remove_prefix(1);
  while (!host.empty() && (host.back() == ' ' || host.back() == '\t')) host.remove_suffix(1);
  bool ok = s.hosts == 1 && names_loopback(host);
  for (std::string_view scheme : {"http://", "https://"})
    if (ok && req.path.starts_with(scheme)) {
      const std::string_view rest = req.path.substr(scheme.size());
      ok = names_loopback(rest.substr(0, rest.find_first_of("/?#")));
    }
  return ok;
}

/// `Authorization: Bearer <token>`, compared in time that depends on the
/// token's length only (never on where a guess first differs).
bool carries_token(const request& req, const std::string& token) {
  const char* given = MHD_lookup_connection_value(req.connection, MHD_HEADER_KIND, "Authorization");
  const std::string_view g = given == nullptr ? std::string_view{} : std::string_view(given);
  constexpr std::string_view scheme = "bearer ";
  unsigned diff = g.size() == scheme.size() + token.size() ? 0u : 1u;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    const char c = i < g.size() ? g[i] : '\0';
    diff |= static_cast<unsigned char>((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) ^ scheme[i]);
  }
  for (std::size_t i = 0; i < token.size(); ++i) {
    const char c = scheme.size() + i < g.size() ? g[scheme.size() + i] : '\0';
    diff |= static_cast<unsigned char>(c ^ token[i]);
  }
  return diff == 0;
}

reply route(endpoint* e, const request& req) {
  if (is_loopback(e->host) && !addressed_to_loopback(req))
    // DNS rebinding: a page from another site that resolves its own name
    // to 127.0.0.1 could otherwise read the profile.
    return error_reply(403, "this endpoint answers requests addressed to a loopback host only");
  if (!e->token.empty() && !carries_token(req, e->token)) {
    auto r = error_reply(401, "this endpoint needs its token: Authorization: Bearer <token>");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"stichotrope\"");
    return r;
  }
  const bool read = req.method == "GET" || req.method == "HEAD";
  if (const auto control = find_control(req.path)) {
    if (req.method != "POST") {
      auto r = error_reply(405, "this control changes state: POST only");
      r.headers.emplace_back("Allow", "POST");
      return r;
    }
    if (!req.has_header("X-Stichotrope-Control"))
      return error_reply(403, "controls need the header X-Stichotrope-Control (the live view sends it)");
    return with_profiler(e, req, [&](stichotrope::Profiler& p) {
      if (auto error = control(p, req)) return error_reply(400, *error);
      return json_reply(state_json(p));
    });
  }
  if (!read) {
    auto r = error_reply(405, "this address is read with GET");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (auto r = read_route(e, req)) return std::move(*r);
  return error_reply(404, "no such page: / (the live view), /metrics, /api/...");
}

void free_body(void* body) {
  auto* s = static_cast<std::string*>(body);
  if (s->size() >= large_body) bodies_in_flight.fetch_sub(s->size(), std::memory_order_relaxed);
  delete s;
}

/// libmicrohttpd's access handler: called once the request's head is in,
/// then once per piece of its body (if any) and once at its end, where it
/// is answered. (An answer queued at the first call, before the request is
/// known to be whole, makes libmicrohttpd close the connection: no
/// keep-alive.) A body is read and set aside (no route takes one), so a
/// POST without one is answered at once.
MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*,
                      const char*, std::size_t* upload_size, void** per_request) {
  static int head_seen;
  const std::string_view m(method);
  if (*per_request == nullptr) {
    *per_request = &head_seen;
    return MHD_YES;
  }
  if (*upload_size != 0) {
    *upload_size = 0;
    return MHD_YES;
  }
  reply r = route(static_cast<endpoint*>(cls), request{connection, m, url});
  // A large body waits for its turn within the budget: refused (and freed)
  // when the bodies already waiting would exceed it.
  if (r.body.size() >= large_body &&
      bodies_in_flight.fetch_add(r.body.size(), std::memory_order_relaxed) + r.body.size() > body_budget) {
    bodies_in_flight.fetch_sub(r.body.size(), std::memory_order_relaxed);
    r = busy_reply();
  }
  auto* body = new std::string(std::move(r.body));
  MHD_Response* response =
      MHD_create_response_from_buffer_with_free_callback_cls(body->size(), body->data(), &free_body, body);
  if (response == nullptr) {
    free_body(body);
    return MHD_NO; // out of memory: the connection is closed
  }
  MHD_add_response_header(response, "Content-Type", r.content_type.c_str());
  for (const auto& [name, value] : r.headers) MHD_add_response_header(response, name.c_str(), value.c_str());
  const MHD_Result queued = MHD_queue_response(connection, r.status, response);
  MHD_destroy_response(response);
  return queued;
}

// ------------------------------------------------------------------ serving

/// The token named by the configuration: the value, or the first line of
/// the file it names when it begins with '/'. An error says why not.
tl::expected<std::string, std::string> resolve_token(const std::string& configured) {
  std::string token = configured;
  if (configured.starts_with('/')) {
    std::ifstream in(configured);
    if (!in || !std::getline(in, token)) return tl::unexpected("cannot read the token file " + configured);
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
  }
  if (token.size() < 16) return tl::unexpected(std::string("the token is shorter than 16 characters"));
  return token;
}

/// Starts serving `address` ("host:port"); an error says why not.
tl::expected<endpoint*, std::string> start_endpoint(const std::string& address, std::string token) {
  const auto [host, port] = split_address(address);
  if (!is_loopback(host) && token.empty())
    return tl::unexpected("not serving on " + address +
                          ": an address other than loopback needs a token (STICHOTROPE_HTTP_TOKEN)");
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(port);
  if (getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found) != 0 || found == nullptr)
    return tl::unexpected("cannot listen on " + address + " (not an address of this machine)");
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(found, &freeaddrinfo);
  auto* e = new endpoint;
  e->host = host;
  e->token = std::move(token);
  const unsigned flags =
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | (found->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0u);
  e->daemon = MHD_start_daemon(flags, static_cast<std::uint16_t>(port), nullptr, nullptr, &on_request, e,
                               MHD_OPTION_SOCK_ADDR, found->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, serving_threads,
                               MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                               max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory, MHD_OPTION_END);
  if (e->daemon == nullptr) {
    delete e;
    return tl::unexpected("cannot listen on " + address + " (in use, or not an address of this machine)");
  }
  return e;
}

void configured(stichotrope::Profiler& p) {
  const auto& config = p.config();
  auto& s = state();
  std::lock_guard lock(s.mutex);
  for (auto& [a, e] : s.endpoints) std::erase(e->profilers, &p); // the address may have changed
  if (!config.http) return;
  auto it = s.endpoints.find(*config.http);
  if (it == s.endpoints.end()) {
    std::string token;
    if (config.http_token) {
      auto t = resolve_token(*config.http_token);
      if (!t) {
        stichotrope::detail::add_diagnostic(p,
                                            "http: not serving on " + *config.http + ": " + t.error() +
                                                " (STICHOTROPE_HTTP_TOKEN); /metrics and the live view are not served");
        return;
      }
      token = std::move(*t);
    }
    auto e = start_endpoint(*config.http, std::move(token));
    if (!e) {
      stichotrope::detail::add_diagnostic(p, "http: " + e.error() + "; /metrics and the live view are not served");
      return;
    }
    it = s.endpoints.emplace(*config.http, *e).first;
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
