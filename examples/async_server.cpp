// The demo: an Asio server on loopback with a thread pool and a built-in
// client load, profiled per track (accept, read, handle, backend, write).
// Every coroutine started by co_spawn is a flow of its own (including the
// sessions the listener spawns and the audit tasks each session spawns from
// this_coro::executor), so blocks that span co_await are timed across
// threads, with their wall time split into active and suspended time.
// Bounded: a fixed number of clients and requests (or, with --live S, a
// request every few ms per client for S seconds), a safety deadline,
// loopback only. With the HTTP endpoint linked and STICHOTROPE_HTTP set, it
// prints the live view's URL.
#include "options.hpp"

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <stichotrope/asio.hpp>
import stichotrope;

namespace sa = stichotrope::for_asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

enum track : int { accept_track, read_track, handle_track, backend_track, write_track, client_track, audit_track };

stichotrope::Profiler profiler{"AsyncServer"};
std::atomic<int> open_sessions{0};
std::atomic<int> open_audits{0};
std::atomic<int> clients_left{0};
std::function<void()> on_idle; // set by main: ends the run once clients and sessions are done

void maybe_idle() {
  if (clients_left.load() == 0 && open_sessions.load() == 0 && open_audits.load() == 0) on_idle();
}

std::uint64_t parse(const std::string& line) {
  std::uint64_t key = 0;
  for (char c : line)
    if (c >= '0' && c <= '9') key = key * 10 + static_cast<std::uint64_t>(c - '0');
  return key;
}

// A simulated backend: a database or service call that takes 1-4 ms.
awaitable<std::string> backend_call(std::uint64_t key) {
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::microseconds(1000 + key * 7919 % 3000));
  co_await timer.async_wait(use_awaitable);
  co_return "value-" + std::to_string(key * key % 1000);
}

// Spawned by a session for every request, and not awaited: a flow of its own.
awaitable<void> audit(std::uint64_t key) {
  auto record = profiler.block(audit_track, "audit_record");
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::microseconds(200 + key % 300));
  co_await timer.async_wait(use_awaitable);
  --open_audits;
  maybe_idle();
}

awaitable<void> session(tcp::socket socket) {
  std::string buffer;
  for (;;) {
    std::size_t length = 0;
    {
      auto read = profiler.block(read_track, "read_request");
      std::error_code ec;
      const std::size_t n = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), '\n',
                                                            asio::redirect_error(use_awaitable, ec));
      if (ec) break; // the client closed the connection
      read.add_bytes(n);
      length = n;
    }
    std::string reply;
    {
      auto handle = profiler.block(handle_track, "handle_request");
      std::uint64_t key = 0;
      {
        auto p = profiler.block(handle_track, "parse");
        key = parse(buffer.substr(0, length));
        buffer.erase(0, length);
      }
      ++open_audits;
      asio::co_spawn(co_await asio::this_coro::executor, audit(key), asio::detached);
      reply = co_await sa::timed(profiler, backend_track, "backend_call", backend_call(key));
      reply += '\n';
    }
    {
      auto write = profiler.block(write_track, "write_response");
      write.add_bytes(reply.size());
      co_await asio::async_write(socket, asio::buffer(reply), use_awaitable);
    }
  }
  --open_sessions;
  maybe_idle();
}

awaitable<void> listener(tcp::acceptor& acceptor, int connections) {
  for (int i = 0; i < connections; ++i) {
    auto accept = profiler.block(accept_track, "accept");
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    accept.close();
    ++open_sessions;
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
  }
}

// With --live, clients keep sending (a request every few ms) until then.
std::optional<std::chrono::steady_clock::time_point> live_until;

awaitable<void> client(tcp::endpoint server, int id, int requests, std::atomic<int>& completed) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, use_awaitable);
  std::string buffer;
  asio::steady_timer pause(socket.get_executor());
  for (int r = 0; live_until ? std::chrono::steady_clock::now() < *live_until : r < requests; ++r) {
    if (live_until) {
      pause.expires_after(std::chrono::milliseconds(4));
      co_await pause.async_wait(use_awaitable);
    }
    auto roundtrip = profiler.block(client_track, "client_roundtrip");
    const std::string request = "GET /item/" + std::to_string(id * 1000 + r) + "\n";
    co_await asio::async_write(socket, asio::buffer(request), use_awaitable);
    const std::size_t n = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), '\n', use_awaitable);
    buffer.erase(0, n);
    ++completed;
  }
  socket.shutdown(tcp::socket::shutdown_both);
  --clients_left;
  maybe_idle();
}

} // namespace

int main(int argc, char** argv) {
  const int threads = example::option(argc, argv, "--threads", 4);
  const int clients = example::option(argc, argv, "--clients", 16);
  const int requests = example::option(argc, argv, "--requests", 50);
  const int linger_s = example::option(argc, argv, "--linger", 0); // keep serving /metrics after the load (seconds)
  const int live_s = example::option(argc, argv, "--live", 0);     // keep the load going this long (for the live view)
  if (live_s > 0) live_until = std::chrono::steady_clock::now() + std::chrono::seconds(live_s);
  const std::filesystem::path out_dir = example::option(argc, argv, "--out", "stichotrope-demo");
  std::filesystem::create_directories(out_dir);

  (void)profiler.set_track_name(accept_track, "Accept");
  (void)profiler.set_track_name(read_track, "Read");
  (void)profiler.set_track_name(handle_track, "Handle");
  (void)profiler.set_track_name(backend_track, "Backend");
  (void)profiler.set_track_name(write_track, "Write");
  (void)profiler.set_track_name(client_track, "Client");
  (void)profiler.set_track_name(audit_track, "Audit");

  profiler.start_timeline(); // every block, suspension and resumption, per thread (bounded)
  asio::io_context io(threads);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)); // loopback, any free port
  const tcp::endpoint server = acceptor.local_endpoint();
  std::cout << "stichotrope demo: server on " << server << ", " << threads << " threads, " << clients << " clients x ";
  if (live_s > 0)
    std::cout << "requests for " << live_s << " s\n";
  else
    std::cout << requests << " requests\n";
  std::cout << std::flush; // at once, also into a pipe: a supervisor may wait for this line
  if (const auto address = profiler.config().http)
    std::cout << "Live view: http://" << (address->front() == ':' ? "127.0.0.1" + *address : *address) << "/\n"
              << std::flush;

  std::atomic<int> completed{0};
  clients_left = clients;
  asio::steady_timer deadline(io, 30s + std::chrono::seconds(live_s)); // a safety bound: the load ends long before
  deadline.async_wait([&](std::error_code ec) {
    if (!ec) {
      std::cerr << "demo: deadline reached, stopping\n";
      io.stop();
    }
  });
  on_idle = [&] { asio::post(io, [&] { deadline.cancel(); }); };
  asio::co_spawn(io.get_executor(), listener(acceptor, clients), asio::detached);
  for (int c = 0; c < clients; ++c)
    asio::co_spawn(io.get_executor(), client(server, c, requests, completed), asio::detached);

  std::vector<std::thread> pool;
  const auto started = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      stichotrope::set_thread_name("io-" + std::to_string(t)); // in per-thread results and traces
      io.run();                                                // returns when every session and client has ended
    });
  for (auto& t : pool) t.join();
  const auto elapsed = std::chrono::steady_clock::now() - started;

  profiler.print_results();
  const auto results = profiler.get_results();
  bool consistent = results.diagnostics.empty();
  for (const auto& t : results.tracks)
    for (const auto& b : t.blocks)
      consistent = consistent && b.active_time_ns() + b.suspended_time_ns == b.total_time_ns && b.outside_flow == 0 &&
                   b.abandoned == 0;
  // Each session's blocks nest in its own flow: a request's handling is never
  // the child of another session's block, nor of the audit it spawned.
  const auto* handle = results.find_block(handle_track, "handle_request");
  const auto* audit_block = results.find_block(audit_track, "audit_record");
  if (stichotrope::instrumentation_compiled_in)
    consistent = consistent && handle != nullptr && audit_block != nullptr && audit_block->callers.size() == 1 &&
                 audit_block->callers[0].parent_site_id == stichotrope::no_parent &&
                 (live_s > 0 || // the live view may have cleared or switched tracks meanwhile
                  audit_block->hit_count == static_cast<std::uint64_t>(clients) * static_cast<std::uint64_t>(requests));
  std::cout << completed.load() << " requests in "
            << stichotrope::format_time_ns(
                   static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()))
            << "; active + suspended = wall for every block, each session and audit in its own flow: "
            << (consistent ? "yes" : "NO") << '\n';

  const auto csv = out_dir / "async_server.csv", json = out_dir / "async_server.json";
  const auto trace = out_dir / "async_server.trace.json", speedscope = out_dir / "async_server.speedscope.json";
  const auto timeline = profiler.get_timeline();
  for (auto r :
       {profiler.export_csv(csv), profiler.export_json(json), stichotrope::export_chrome_trace(timeline, trace),
        stichotrope::export_speedscope(timeline, speedscope)})
    if (!r) {
      std::cerr << "demo: " << r.error() << '\n';
      return 1;
    }
  std::size_t events = 0;
  for (const auto& t : timeline.threads) events += t.events.size();
  const auto abs = [](const std::filesystem::path& p) { return std::filesystem::absolute(p).string(); };
  std::cout << "Wrote " << abs(csv) << "\n      " << abs(json) << "\n      " << abs(trace) << "  (" << events
            << " timeline events, " << timeline.dropped() << " dropped)\n      " << abs(speedscope) << '\n'
            << "Open the trace at https://ui.perfetto.dev (Open trace file) or chrome://tracing;\n"
            << "the speedscope file at https://www.speedscope.app (drop the file on the page).\n";
  if (const auto address = profiler.config().http; address && linger_s > 0) {
    std::cout << "Serving http://" << *address << "/metrics for " << linger_s << " s\n" << std::flush;
    std::this_thread::sleep_for(std::chrono::seconds(linger_s));
  }
  return (live_s > 0 || completed.load() == clients * requests) && consistent ? 0 : 1;
}
