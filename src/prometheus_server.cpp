// The Prometheus endpoint: the optional stichotrope::prometheus target. An
// HTTP server from cpp-httplib (Debian's libcpp-httplib-dev) serves /metrics
// for every profiler whose configuration names an address
// (STICHOTROPE_PROMETHEUS=127.0.0.1:9464, or `prometheus = "..."` in the
// configuration file). Linking the target is enough: this file registers
// itself with the library at start-up. A scrape reads each profiler with
// get_results(), which never blocks recorders. docs/telemetry.md.
#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>
import stichotrope;

namespace {

struct endpoint {
  httplib::Server server;
  std::vector<stichotrope::Profiler*> profilers; // under exporter::mutex
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

void serve(endpoint* e) {
  e->server.Get("/metrics", [e](const httplib::Request&, httplib::Response& res) {
    std::vector<stichotrope::ProfilerResults> results;
    {
      std::lock_guard lock(state().mutex); // a profiler ends only after its scrape
      for (auto* p : e->profilers) results.push_back(p->get_results());
    }
    res.set_content(stichotrope::to_prometheus(results), "text/plain; version=0.0.4; charset=utf-8");
  });
}

void configured(stichotrope::Profiler& p) {
  const auto address = p.config().prometheus;
  auto& s = state();
  std::lock_guard lock(s.mutex);
  for (auto& [a, e] : s.endpoints) std::erase(e->profilers, &p); // the address may have changed
  if (!address) return;
  auto it = s.endpoints.find(*address);
  if (it == s.endpoints.end()) {
    const auto [host, port] = split_address(*address);
    auto* e = new endpoint;
    serve(e);
    if (!e->server.bind_to_port(host.c_str(), port)) {
      stichotrope::detail::report(p, "prometheus: cannot listen on " + *address +
                                         " (in use, or not an address of this machine); /metrics is not served");
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

const stichotrope::detail::exporter prometheus_exporter{&configured, &ending};
[[maybe_unused]] const bool registered = (stichotrope::detail::register_exporter(&prometheus_exporter), true);

} // namespace
