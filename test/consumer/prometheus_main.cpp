// Links stichotrope::http from the installed package: setting
// STICHOTROPE_HTTP is all it takes for /metrics and the live view to be
// served. The check reads both with a plain socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
import stichotrope;

namespace {
int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(s);
  return ntohs(a.sin_port);
}

std::string fetch(int port, const std::string& path = "/metrics") {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {};
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)::write(s, request.data(), request.size());
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::read(s, buf, sizeof buf)) > 0;) response.append(buf, static_cast<std::size_t>(n));
  ::close(s);
  return response;
}
} // namespace

int main() {
  const int port = free_port();
  ::setenv("STICHOTROPE_HTTP", ("127.0.0.1:" + std::to_string(port)).c_str(), 1);
  stichotrope::Profiler profiler{"consumer"};
  for (int i = 0; i < 42; ++i) profiler.record(0, "served", std::chrono::microseconds(3));
  const std::string page = fetch(port);
  if (page.find(" 200 ") == std::string::npos ||
      page.find("stichotrope_block_duration_seconds_count{profiler=\"consumer\",track=\"0\",track_name=\"\","
                "block=\"served\"") == std::string::npos ||
      page.find("} 42\n") == std::string::npos) {
    std::cerr << "unexpected /metrics:\n" << page << '\n';
    return 1;
  }
  const std::string view = fetch(port, "/");
  const std::string api = fetch(port, "/api/results");
  if (view.find(" 200 ") == std::string::npos || view.find("live.js") == std::string::npos ||
      api.find("\"profiler_name\": \"consumer\"") == std::string::npos) {
    std::cerr << "unexpected live view or API:\n" << view.substr(0, 300) << '\n' << api.substr(0, 300) << '\n';
    return 1;
  }
  std::cout << "consumer_prometheus: /metrics served 42 hits; the live view and its API are served\n";
  return 0;
}
