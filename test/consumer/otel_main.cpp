// Links stichotrope::otel from the installed package: setting
// OTEL_EXPORTER_OTLP_ENDPOINT is all it takes for the results to be sent.
// A minimal loopback listener here takes the POSTs (test/otel/run.py decodes
// them with the protocol's own classes; this only checks they arrive).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

namespace {
std::mutex mutex;
std::vector<std::string> requests; // head and body of each POST

/// Reads one HTTP request (head, then Content-Length bytes) and answers 200.
bool serve_one(int c) {
  std::string data;
  char buf[4096];
  std::size_t head_end = std::string::npos, length = 0;
  for (;;) {
    if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
      const auto at = data.find("Content-Length: ");
      if (at == std::string::npos || at > head_end) return false;
      length = std::stoul(data.substr(at + 16));
    }
    if (head_end != std::string::npos && data.size() >= head_end + 4 + length) break;
    const ssize_t n = ::read(c, buf, sizeof buf);
    if (n <= 0) return false;
    data.append(buf, static_cast<std::size_t>(n));
  }
  {
    std::lock_guard lock(mutex);
    requests.push_back(data.substr(0, head_end + 4 + length));
  }
  const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
  return ::write(c, reply.data(), reply.size()) == static_cast<ssize_t>(reply.size());
}
} // namespace

int main() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 8) != 0) return 1;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n);
  std::thread([s] {
    for (int c; (c = ::accept(s, nullptr, nullptr)) >= 0;) {
      while (serve_one(c)) {
      }
      ::close(c);
    }
  }).detach();
  ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port))).c_str(), 1);
  {
    stichotrope::Profiler profiler{"consumer"};
    for (int i = 0; i < 42; ++i) profiler.record(0, "exported", std::chrono::microseconds(3));
  } // the interval is sent as the profiler ends
  std::lock_guard lock(mutex);
  for (const auto& r : requests)
    if (r.starts_with("POST /v1/metrics ") && r.find("stichotrope.block.duration") != std::string::npos &&
        r.find("exported") != std::string::npos) {
      std::cout << "consumer_otel: the interval arrived as OTLP metrics\n";
      return 0;
    }
  std::cerr << "consumer_otel: no metrics request arrived (" << requests.size() << " requests)\n";
  return 1;
}
