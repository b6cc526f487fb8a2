// A Boost.Beast HTTP server written as Beast's own awaitable examples are (an
// accept loop, a session coroutine per connection, async_read / async_write
// with use_awaitable as the stream's default token, keep-alive), with a
// built-in load of keep-alive clients, profiled with
// stichotrope/boost_asio.hpp: each session and each client is a flow of its
// own, so the blocks around parse, handle and write nest in their session and
// split their wall time into active and suspended time, whichever thread runs
// them. Bounded: a fixed number of clients and requests, a safety deadline,
// loopback only. Prints the table and checks that every session is a flow of
// its own; exits 1 if not.
#include "options.hpp"

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <stichotrope/boost_asio.hpp>
import stichotrope;

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
// The stream of Beast's awaitable examples: use_awaitable is its default
// completion token.
using tcp_stream =
    beast::tcp_stream::rebind_executor<net::use_awaitable_t<>::executor_with_default<net::any_io_executor>>::other;

namespace {

enum track : int { session_track, parse_track, handle_track, write_track, client_track };

stichotrope::Profiler profiler{"BeastServer"};

// The handler: a simulated backend call (a timer of 1-3 ms), then the body.
net::awaitable<http::response<http::string_body>> handle(const http::request<http::string_body>& req) {
  std::uint64_t key = 0;
  for (char c : req.target())
    if (c >= '0' && c <= '9') key = key * 10 + static_cast<std::uint64_t>(c - '0');
  net::steady_timer backend(co_await net::this_coro::executor, std::chrono::microseconds(1000 + key * 7919 % 2000));
  co_await backend.async_wait(net::use_awaitable);
  http::response<http::string_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "text/plain");
  res.keep_alive(req.keep_alive());
  res.body() = "value-" + std::to_string(key * key % 1000) + "\n";
  res.prepare_payload();
  co_return res;
}

net::awaitable<void> session(tcp_stream stream) {
  auto whole = profiler.block(session_track, "session");
  beast::flat_buffer buffer;
  for (;;) {
    stream.expires_after(30s);
    http::request<http::string_body> req;
    {
      auto parse = profiler.block(parse_track, "read_parse");
      auto [ec, n] = co_await http::async_read(stream, buffer, req, net::as_tuple(net::use_awaitable));
      if (ec) break; // end_of_stream: the client is done
      parse.add_bytes(n);
    }
    http::response<http::string_body> res;
    {
      auto h = profiler.block(handle_track, "handle");
      res = co_await handle(req);
    }
    {
      auto write = profiler.block(write_track, "write");
      write.add_bytes(co_await http::async_write(stream, res));
    }
    if (!res.keep_alive()) break;
  }
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

net::awaitable<void> listener(tcp::acceptor& acceptor, int connections) {
  for (int i = 0; i < connections; ++i) {
    auto socket = co_await acceptor.async_accept(net::use_awaitable);
    net::co_spawn(acceptor.get_executor(), session(tcp_stream(std::move(socket))), net::detached);
  }
}

net::awaitable<void> client(tcp::endpoint server, int id, int requests, std::atomic<int>& completed) {
  tcp_stream stream(co_await net::this_coro::executor);
  co_await stream.async_connect(server);
  beast::flat_buffer buffer;
  for (int r = 0; r < requests; ++r) {
    auto roundtrip = profiler.block(client_track, "client_request");
    http::request<http::string_body> req{http::verb::get, "/item/" + std::to_string(id * 1000 + r), 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(r + 1 < requests);
    co_await http::async_write(stream, req);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res);
    if (res.result() == http::status::ok) ++completed;
  }
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

} // namespace

int main(int argc, char** argv) {
  const int threads = example::option(argc, argv, "--threads", 2);
  const int clients = example::option(argc, argv, "--clients", 8);
  const int requests = example::option(argc, argv, "--requests", 25);
  (void)profiler.set_track_name(session_track, "Session");
  (void)profiler.set_track_name(parse_track, "Read+parse");
  (void)profiler.set_track_name(handle_track, "Handle");
  (void)profiler.set_track_name(write_track, "Write");
  (void)profiler.set_track_name(client_track, "Client");

  net::io_context io(threads);
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::address_v4::loopback(), 0)); // loopback, any free port
  const tcp::endpoint server = acceptor.local_endpoint();
  std::cout << "Beast server on " << server << ", " << threads << " threads, " << clients << " keep-alive clients x "
            << requests << " requests\n"
            << std::flush;
  std::atomic<int> completed{0};
  net::steady_timer deadline(io, 30s); // a safety bound: the load ends long before
  deadline.async_wait([&](beast::error_code ec) {
    if (!ec) {
      std::cerr << "beast_server: deadline reached, stopping\n";
      io.stop();
    }
  });
  net::co_spawn(io, listener(acceptor, clients), net::detached);
  std::atomic<int> clients_left{clients};
  for (int c = 0; c < clients; ++c)
    net::co_spawn(io, client(server, c, requests, completed), [&](std::exception_ptr e) {
      if (e) std::cerr << "beast_server: a client failed\n";
      if (--clients_left == 0) deadline.cancel(); // the sessions end as their clients close
    });
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      stichotrope::set_thread_name("io-" + std::to_string(t));
      io.run();
    });
  for (auto& t : pool) t.join();

  profiler.print_results();
  const auto r = profiler.get_results();
  const auto expected = static_cast<std::uint64_t>(clients) * static_cast<std::uint64_t>(requests);
  bool ok = completed.load() == clients * requests && r.diagnostics.empty();
  for (const auto& d : r.diagnostics) std::cout << "diagnostic: " << d << '\n';
  for (const auto& t : r.tracks)
    for (const auto& b : t.blocks)
      ok = ok && b.active_time_ns() + b.suspended_time_ns == b.total_time_ns && b.outside_flow == 0 && b.abandoned == 0;
  if (stichotrope::instrumentation_compiled_in) {
    // Every session and every client is a flow of its own: neither is ever
    // the other's child, and each request's blocks are children of their
    // own session.
    const auto* s = r.find_block(session_track, "session");
    const auto* c = r.find_block(client_track, "client_request");
    ok = ok && s != nullptr && c != nullptr && s->hit_count == static_cast<std::uint64_t>(clients) &&
         s->callers.size() == 1 && s->callers[0].parent_site_id == stichotrope::no_parent && c->hit_count == expected &&
         c->callers.size() == 1 && c->callers[0].parent_site_id == stichotrope::no_parent;
    for (auto [track, name] :
         {std::pair{parse_track, "read_parse"}, std::pair{handle_track, "handle"}, std::pair{write_track, "write"}}) {
      const auto* b = r.find_block(track, name);
      ok = ok && b != nullptr && b->callers.size() == 1 && s != nullptr && b->callers[0].parent_site_id == s->site_id &&
           b->hit_count >= expected;
    }
  }
  std::cout << completed.load() << " of " << expected
            << " requests answered; active + suspended = wall for every block, every session and client a flow of "
               "its own: "
            << (ok ? "yes" : "NO") << '\n';
  return ok ? 0 : 1;
}
