// Asio integration: every coroutine started by co_spawn is a flow of its own
// (whatever executor it was spawned on), a coroutine it awaits joins it, and
// blocks that span co_await nest per flow and split active/suspended time.
// One source, two flavours: built as asio_test (standalone Asio, `net` =
// ::asio) and as boost_asio_test (STICHOTROPE_TEST_BOOST_ASIO: Boost.Asio,
// `net` = boost::asio), so every case runs for both.
#if defined(STICHOTROPE_TEST_BOOST_ASIO)
#define BOOST_TEST_MODULE boost_asio
#else
#define BOOST_TEST_MODULE asio
#endif
#include <boost/test/unit_test.hpp>

#if defined(STICHOTROPE_TEST_BOOST_ASIO)
#include <boost/asio.hpp>
#include <boost/asio/experimental/append.hpp>
#include <boost/asio/experimental/as_single.hpp>
#include <boost/asio/experimental/prepend.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/system/system_error.hpp>
#else
#include <asio.hpp>
#include <asio/experimental/append.hpp>
#include <asio/experimental/as_single.hpp>
#include <asio/experimental/prepend.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#endif

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#if defined(STICHOTROPE_TEST_BOOST_ASIO)
#include <stichotrope/boost_asio.hpp>
namespace net = boost::asio;
using net_error_code = boost::system::error_code;
using net_system_error = boost::system::system_error;
constexpr const char* net_spelling = "boost::asio"; // as waits name the operations
#else
#include <stichotrope/asio.hpp>
namespace net = ::asio;
using net_error_code = std::error_code;
using net_system_error = std::system_error;
constexpr const char* net_spelling = "asio";
#endif
import stichotrope;

using namespace std::chrono_literals;
using stichotrope::BlockResults;
using stichotrope::Profiler;
using stichotrope::ProfilerResults;
namespace sa = stichotrope::for_asio;

namespace {

/// An Asio timer's time starts at its construction, a little before the flow
/// suspends on it (its initiation: microseconds, more under the sanitizers;
/// a boost_asio_test run under ASan measured 9.996 ms of suspension for a
/// 10 ms timer). A suspension on a timer of d lasts at least d minus this.
constexpr std::uint64_t initiation_ns = 1'000'000;

const BlockResults& only(const ProfilerResults& r, int track, std::string_view name) {
  const auto* b = r.find_block(track, name);
  BOOST_TEST_REQUIRE(b != nullptr, "no block " << name);
  return *b;
}

void busy_for(std::chrono::nanoseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

void run(net::io_context& io, int threads) {
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&] { io.run(); });
  for (auto& t : pool) t.join();
}

net::awaitable<int> backend(std::chrono::milliseconds d) {
  net::steady_timer timer(co_await net::this_coro::executor, d);
  co_await timer.async_wait(net::use_awaitable);
  co_return 7;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_block_spanning_an_asio_timer_splits_active_and_suspended_time) {
  net::io_context io(2);
  Profiler p{"asio"};
  auto session = [&]() -> net::awaitable<void> {
    auto span = p.block(0, "span");
    net::steady_timer timer(co_await net::this_coro::executor, 30ms);
    co_await timer.async_wait(net::use_awaitable);
    busy_for(3ms);
  };
  net::co_spawn(io.get_executor(), session(), net::detached);
  run(io, 2);
  const auto r = p.get_results();
  const auto& b = only(r, 0, "span");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.suspensions >= 1u);
  BOOST_TEST(b.suspended_time_ns >= 30'000'000u - initiation_ns); // the timer never fires early
  BOOST_TEST(b.active_time_ns() >= 3'000'000u);                   // the spin the test controls
  BOOST_TEST(b.active_time_ns() < 103'000'000u);                  // 100 ms slack for a loaded machine
  BOOST_TEST(b.active_time_ns() + b.suspended_time_ns == b.total_time_ns);
}

BOOST_AUTO_TEST_CASE(sessions_interleaving_on_one_thread_keep_their_own_nesting) {
  net::io_context io(1);
  Profiler p{"asio_interleave"};
  std::atomic<int> sessions_done{0};
  auto session = [&](int id) -> net::awaitable<void> {
    for (int i = 0; i < 5; ++i) {
      auto request = p.block(0, "request");
      co_await sa::timed(p, 1, "backend", backend(std::chrono::milliseconds(2 + id)));
    }
    ++sessions_done;
  };
  for (int id = 0; id < 3; ++id) net::co_spawn(io.get_executor(), session(id), net::detached);
  run(io, 1);
  BOOST_TEST(sessions_done.load() == 3);
  const auto r = p.get_results();
  const auto& request = only(r, 0, "request");
  const auto& backend_block = only(r, 1, "backend");
  BOOST_TEST(request.hit_count == 15u);
  BOOST_TEST(backend_block.hit_count == 15u);
  // Every request is top level, never a child of another session's request.
  BOOST_REQUIRE(request.callers.size() == 1u);
  BOOST_TEST(request.callers[0].parent_site_id == stichotrope::no_parent);
  BOOST_TEST(request.callers[0].hit_count == 15u);
  // Every backend call is the child of its own session's request.
  BOOST_REQUIRE(backend_block.callers.size() == 1u);
  BOOST_TEST(backend_block.callers[0].parent_site_id == request.site_id);
  BOOST_TEST(request.self_time_ns + backend_block.total_time_ns == request.total_time_ns);
  BOOST_TEST(backend_block.suspended_time_ns >= 15u * 2'000'000u);
}

BOOST_AUTO_TEST_CASE(track_times_functions_returning_asio_awaitables) {
  net::io_context io(1);
  Profiler p{"asio_track"};
  auto call = sa::track(p, 2, "call_backend", [](int ms) { return backend(std::chrono::milliseconds(ms)); });
  int result = 0;
  auto main_flow = [&]() -> net::awaitable<void> { result = co_await call(10); };
  net::co_spawn(io.get_executor(), main_flow(), net::detached);
  run(io, 1);
  BOOST_TEST(result == 7);
  const auto r = p.get_results();
  const auto& b = only(r, 2, "call_backend");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.total_time_ns >= 10'000'000u);
  BOOST_TEST(b.suspended_time_ns >= 10'000'000u - initiation_ns);
}

BOOST_AUTO_TEST_CASE(a_coroutine_spawned_on_a_plain_executor_has_a_flow) {
  net::io_context io(2);
  Profiler p{"asio_plain"};
  auto plain = [&]() -> net::awaitable<void> { co_await sa::timed(p, 0, "timed", backend(5ms)); };
  net::co_spawn(io, plain(), net::detached);
  run(io, 2);
  const auto r = p.get_results();
  const auto& b = only(r, 0, "timed");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.total_time_ns >= 5'000'000u);
  BOOST_TEST(b.suspensions >= 1u);
  BOOST_TEST(b.suspended_time_ns >= 5'000'000u - initiation_ns);
  BOOST_TEST(b.outside_flow == 0u);
}

// Children spawned from inside a coroutine with co_await this_coro::executor
// (the idiom of Asio's examples) on a 3-thread pool: each child is a flow of
// its own, concurrent siblings never become each other's parents, and the
// parent is charged neither their CPU time nor their waits.
BOOST_AUTO_TEST_CASE(nested_co_spawn_from_this_coro_executor_gives_each_child_its_own_flow) {
  net::io_context io(3);
  Profiler p{"nested_spawn"};
  constexpr int children = 12;
  std::atomic<int> done{0};
  auto child = [&](int i) -> net::awaitable<void> {
    auto b = p.block(1, "child");
    busy_for(2ms); // Asio runs a spawned coroutine inline until it first suspends: inside the parent's run
    net::steady_timer timer(co_await net::this_coro::executor, std::chrono::milliseconds(20 + i % 3));
    co_await timer.async_wait(net::use_awaitable);
    busy_for(2ms);
    {
      auto inner = p.block(2, "child_inner");
      busy_for(1ms);
    }
    ++done;
  };
  auto parent = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "parent");
    for (int i = 0; i < children; ++i) net::co_spawn(co_await net::this_coro::executor, child(i), net::detached);
    net::steady_timer timer(co_await net::this_coro::executor, 60ms);
    co_await timer.async_wait(net::use_awaitable);
  };
  net::co_spawn(io, parent(), net::detached);
  run(io, 3);
  BOOST_TEST(done.load() == children);
  const auto r = p.get_results();
  const auto& par = only(r, 0, "parent");
  const auto& ch = only(r, 1, "child");
  const auto& inner = only(r, 2, "child_inner");
  BOOST_TEST_MESSAGE("measured: parent active "
                     << par.active_time_ns() << " ns, suspended " << par.suspended_time_ns << " ns; " << ch.hit_count
                     << " children, mean active " << ch.active_time_ns() / children << " ns, mean suspended "
                     << ch.suspended_time_ns / children << " ns, parents " << ch.callers.size() << " (no_parent)");
  BOOST_TEST(par.hit_count == 1u);
  BOOST_TEST(ch.hit_count == unsigned(children));
  BOOST_TEST(inner.hit_count == unsigned(children));
  // No child has a parent: each one is the root of its own flow.
  BOOST_REQUIRE(ch.callers.size() == 1u);
  BOOST_TEST(ch.callers[0].parent_site_id == stichotrope::no_parent);
  BOOST_REQUIRE(inner.callers.size() == 1u);
  BOOST_TEST(inner.callers[0].parent_site_id == ch.site_id);
  // Each child: suspended about its timer (>= 20 ms), active about its spins (>= 5 ms).
  BOOST_TEST(ch.suspended_time_ns >= children * (20'000'000ull - initiation_ns));
  BOOST_TEST(ch.active_time_ns() >= children * 5'000'000ull);
  BOOST_TEST(ch.suspended_time_ns < children * (20'000'000ull + 100'000'000ull)); // wide slack: shared machine
  BOOST_TEST(ch.suspensions >= unsigned(children));
  // The parent waited 60 ms; it is not charged its children's 60 ms of spinning,
  // not even the 24 ms they spun inline, inside its own run, before suspending.
  BOOST_TEST(par.suspended_time_ns >= 60'000'000u - initiation_ns);
  BOOST_TEST(par.active_time_ns() < 20'000'000u); // charged, it would be >= 24 ms; wide for loaded machines
  BOOST_TEST(par.active_time_ns() + par.suspended_time_ns == par.total_time_ns);
  BOOST_TEST(ch.outside_flow == 0u);
  BOOST_TEST(r.diagnostics.empty());
}

net::awaitable<void> wait_then_spin(Profiler& p, std::string_view name, std::chrono::milliseconds wait,
                                    std::chrono::milliseconds spin) {
  auto b = p.block(1, name);
  net::steady_timer timer(co_await net::this_coro::executor, wait);
  co_await timer.async_wait(net::use_awaitable);
  busy_for(spin);
}

BOOST_AUTO_TEST_CASE(awaitable_operators_run_each_operand_in_its_own_flow) {
  using namespace net::experimental::awaitable_operators;
  net::io_context io(2);
  Profiler p{"operators"};
  bool finished = false;
  auto parent = [&]() -> net::awaitable<void> {
    {
      auto both = p.block(0, "both");
      co_await (wait_then_spin(p, "a", 20ms, 10ms) && wait_then_spin(p, "b", 30ms, 10ms));
    }
    {
      auto either = p.block(0, "either");
      // The 200 ms operand loses and is cancelled: its block closes by the exception.
      co_await (wait_then_spin(p, "fast", 10ms, 10ms) || wait_then_spin(p, "slow", 200ms, 0ms));
    }
    finished = true;
  };
  net::co_spawn(io, parent(), net::detached);
  run(io, 2);
  BOOST_TEST(finished);
  const auto r = p.get_results();
  const auto& both = only(r, 0, "both");
  const auto& either = only(r, 0, "either");
  BOOST_TEST_MESSAGE("measured: a && b: block active "
                     << both.active_time_ns() << " ns, suspended " << both.suspended_time_ns
                     << " ns; fast || slow: active " << either.active_time_ns() << " ns, suspended "
                     << either.suspended_time_ns << " ns; slow (cancelled) " << only(r, 1, "slow").total_time_ns
                     << " ns");
  for (const char* name : {"a", "b", "fast", "slow"}) {
    const auto& b = only(r, 1, name);
    BOOST_TEST(b.hit_count == 1u, name);
    BOOST_REQUIRE(b.callers.size() == 1u);
    BOOST_TEST(b.callers[0].parent_site_id == stichotrope::no_parent, name); // a flow of its own
  }
  BOOST_TEST(only(r, 1, "a").suspended_time_ns >= 20'000'000u - initiation_ns);
  BOOST_TEST(only(r, 1, "a").active_time_ns() >= 10'000'000u);
  BOOST_TEST(only(r, 1, "b").suspended_time_ns >= 30'000'000u - initiation_ns);
  BOOST_TEST(only(r, 1, "slow").total_time_ns < 150'000'000u); // cancelled, not waited for
  BOOST_TEST(both.suspended_time_ns >= 30'000'000u - initiation_ns);
  BOOST_TEST(both.active_time_ns() < 10'000'000u); // the operands' 20 ms of spinning are theirs
  BOOST_TEST(either.suspended_time_ns >= 10'000'000u - initiation_ns);
  BOOST_TEST(either.active_time_ns() < 10'000'000u);
  BOOST_TEST(r.diagnostics.empty());
}

// An echo server as in Asio's C++20 examples: a listener co_spawns a session
// on each accepted socket's executor; clients talk to it concurrently.
net::awaitable<void> echo_session(Profiler& p, net::ip::tcp::socket socket) {
  auto session = p.block(0, "session");
  char data[64];
  try {
    for (;;) {
      std::size_t n = 0;
      {
        auto rd = p.block(1, "read");
        n = co_await socket.async_read_some(net::buffer(data), net::use_awaitable);
      }
      auto wr = p.block(1, "write");
      co_await net::async_write(socket, net::buffer(data, n), net::use_awaitable);
    }
  } catch (const std::exception&) {
    // the client closed the connection
  }
}

net::awaitable<void> echo_listener(Profiler& p, net::ip::tcp::acceptor& acceptor, int sessions) {
  auto listen = p.block(2, "listen");
  for (int i = 0; i < sessions; ++i) {
    auto socket = co_await acceptor.async_accept(net::use_awaitable);
    auto ex = socket.get_executor();
    net::co_spawn(ex, echo_session(p, std::move(socket)), net::detached);
  }
}

net::awaitable<void> echo_client(Profiler& p, net::ip::tcp::endpoint server, int messages, std::atomic<int>& ok) {
  auto ex = co_await net::this_coro::executor;
  net::ip::tcp::socket socket(ex);
  co_await socket.async_connect(server, net::use_awaitable);
  char reply[5];
  for (int i = 0; i < messages; ++i) {
    auto rt = p.block(3, "round_trip");
    co_await net::async_write(socket, net::buffer("hello", 5), net::use_awaitable);
    co_await net::async_read(socket, net::buffer(reply), net::use_awaitable);
    if (std::string_view(reply, 5) == "hello") ++ok;
  }
}

BOOST_AUTO_TEST_CASE(an_echo_server_in_the_style_of_asio_examples_keeps_sessions_apart) {
  net::io_context io(3);
  Profiler p{"echo"};
  net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
  const auto server = acceptor.local_endpoint();
  constexpr int clients = 6, messages = 20;
  std::atomic<int> ok{0};
  net::co_spawn(io, echo_listener(p, acceptor, clients), net::detached);
  for (int c = 0; c < clients; ++c) net::co_spawn(io, echo_client(p, server, messages, ok), net::detached);
  run(io, 3);
  BOOST_TEST(ok.load() == clients * messages);
  const auto r = p.get_results();
  const auto& session = only(r, 0, "session");
  const auto& rd = only(r, 1, "read");
  const auto& wr = only(r, 1, "write");
  const auto& listen = only(r, 2, "listen");
  const auto& rt = only(r, 3, "round_trip");
  BOOST_TEST_MESSAGE("measured: " << session.hit_count << " sessions, " << rd.hit_count << " reads, " << wr.hit_count
                                  << " writes, " << rt.hit_count << " round trips; listener suspensions "
                                  << listen.suspensions << "; session parents: " << session.callers.size());
  BOOST_TEST(session.hit_count == unsigned(clients));
  BOOST_TEST(listen.hit_count == 1u);
  BOOST_TEST(rt.hit_count == unsigned(clients * messages));
  BOOST_TEST(wr.hit_count == unsigned(clients * messages));
  BOOST_TEST(rd.hit_count == unsigned(clients * messages + clients)); // the last read sees the close
  // Sessions are flows of their own: never children of the listener.
  BOOST_REQUIRE(session.callers.size() == 1u);
  BOOST_TEST(session.callers[0].parent_site_id == stichotrope::no_parent);
  BOOST_REQUIRE(rd.callers.size() == 1u);
  BOOST_TEST(rd.callers[0].parent_site_id == session.site_id);
  BOOST_REQUIRE(wr.callers.size() == 1u);
  BOOST_TEST(wr.callers[0].parent_site_id == session.site_id);
  // The listener only waited for connections: its resumptions are its own accepts.
  BOOST_TEST(listen.suspensions <= unsigned(clients + 1));
  for (const auto* b : {&session, &rd, &wr, &listen, &rt}) {
    BOOST_TEST(b->active_time_ns() + b->suspended_time_ns == b->total_time_ns);
    BOOST_TEST(b->outside_flow == 0u);
  }
  BOOST_TEST(r.diagnostics.empty());
}

BOOST_AUTO_TEST_CASE(a_coroutine_destroyed_while_suspended_abandons_its_blocks) {
  Profiler p{"asio_abandon"};
  {
    net::io_context io(1);
    auto stuck = [&]() -> net::awaitable<void> {
      auto outer = p.block(0, "outer");
      co_await [&]() -> net::awaitable<void> {
        auto inner = p.block(0, "inner");
        net::steady_timer timer(co_await net::this_coro::executor, std::chrono::hours(1));
        co_await timer.async_wait(net::use_awaitable);
      }();
    };
    net::co_spawn(io, stuck(), net::detached);
    io.run_for(20ms); // the timer never fires; destroying io destroys the coroutine
  }
  {
    auto after = p.block(1, "after"); // the thread's own nesting is intact
  }
  const auto r = p.get_results();
  BOOST_TEST(only(r, 0, "outer").abandoned == 1u);
  BOOST_TEST(only(r, 0, "inner").abandoned == 1u);
  BOOST_TEST(only(r, 0, "outer").hit_count == 0u);
  BOOST_TEST(only(r, 1, "after").hit_count == 1u);
  BOOST_TEST(only(r, 1, "after").callers.at(0).parent_site_id == stichotrope::no_parent);
}

// co_spawn with use_awaitable (the child is awaited, but started on its own:
// a flow of its own), and coroutines on a strand of a pool.
BOOST_AUTO_TEST_CASE(a_child_spawned_and_awaited_or_on_a_strand_is_a_flow_of_its_own) {
  net::io_context io(2);
  Profiler p{"spawn_await"};
  int value = 0;
  auto child = [&]() -> net::awaitable<int> {
    auto b = p.block(1, "spawned_child");
    busy_for(10ms); // inline, inside the parent's co_spawn
    net::steady_timer timer(co_await net::this_coro::executor, 15ms);
    co_await timer.async_wait(net::use_awaitable);
    co_return 42;
  };
  auto parent = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "awaiting_parent");
    value = co_await net::co_spawn(net::make_strand(io), child(), net::use_awaitable);
  };
  net::co_spawn(net::make_strand(io), parent(), net::detached);
  run(io, 2);
  BOOST_TEST(value == 42);
  const auto r = p.get_results();
  const auto& par = only(r, 0, "awaiting_parent");
  const auto& ch = only(r, 1, "spawned_child");
  BOOST_TEST_MESSAGE("measured: co_spawn(use_awaitable): parent active "
                     << par.active_time_ns() << " ns, suspended " << par.suspended_time_ns << " ns, child active "
                     << ch.active_time_ns());
  BOOST_REQUIRE(ch.callers.size() == 1u);
  BOOST_TEST(ch.callers[0].parent_site_id == stichotrope::no_parent);
  BOOST_TEST(ch.active_time_ns() >= 10'000'000u);
  BOOST_TEST(ch.suspended_time_ns >= 15'000'000u);
  BOOST_TEST(par.suspended_time_ns >= 15'000'000u);
  BOOST_TEST(par.active_time_ns() < 10'000'000u); // the child's spin is the child's
  BOOST_TEST(r.diagnostics.empty());
}

// Waits (docs/coroutines.md, "Waits"): each co_await of an Asio operation is
// a wait named for the program's line and the operation it started.

namespace {

const stichotrope::WaitResults* wait_at_line(const BlockResults& b, std::uint32_t line) {
  for (const auto& w : b.waits)
    if (w.line == line) return &w;
  return nullptr;
}

std::uint64_t top_level_wait_ns(const BlockResults& b) {
  std::uint64_t sum = 0;
  for (const auto& w : b.waits)
    if (w.parent_site_id == stichotrope::no_parent) sum += w.total_time_ns;
  return sum;
}

std::uint64_t ns_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

} // namespace

BOOST_AUTO_TEST_CASE(each_await_of_a_handler_is_a_wait_named_for_its_line_and_operation) {
  net::io_context io(4);
  Profiler p{"asio_waits"};
  constexpr int requests = 200;
  std::atomic<std::uint64_t> db_ns{0}, cache_ns{0};
  std::atomic<std::uint32_t> db_line{0}, cache_line{0};
  auto handle_request = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "handle_request");
    net::steady_timer db(co_await net::this_coro::executor, 20ms);
    auto t0 = std::chrono::steady_clock::now();
    db_line = __LINE__ + 1;
    co_await db.async_wait(net::use_awaitable);
    db_ns += ns_since(t0);
    net::steady_timer cache(co_await net::this_coro::executor, 5ms);
    t0 = std::chrono::steady_clock::now();
    cache_line = __LINE__ + 1;
    co_await cache.async_wait(net::use_awaitable);
    cache_ns += ns_since(t0);
  };
  for (int i = 0; i < requests; ++i) net::co_spawn(io, handle_request(), net::detached);
  run(io, 4);
  const auto r = p.get_results();
  const auto& b = only(r, 0, "handle_request");
  BOOST_TEST(b.hit_count == unsigned(requests));
  const auto* db = wait_at_line(b, db_line);
  const auto* cache = wait_at_line(b, cache_line);
  BOOST_TEST_REQUIRE(db != nullptr);
  BOOST_TEST_REQUIRE(cache != nullptr);
  BOOST_TEST(db->count == unsigned(requests));
  BOOST_TEST(cache->count == unsigned(requests));
  BOOST_TEST(db->total_time_ns <= db_ns.load());
  BOOST_TEST(db->total_time_ns >= db_ns.load() / 100 * 99);
  BOOST_TEST(cache->total_time_ns <= cache_ns.load());
  BOOST_TEST(cache->total_time_ns >= cache_ns.load() / 100 * 99);
  BOOST_TEST(db->awaited == std::string(net_spelling) + "::basic_waitable_timer::async_wait");
  BOOST_TEST(db->file.ends_with("asio_test.cpp"));
  BOOST_TEST(db->parent_site_id == stichotrope::no_parent);
  BOOST_TEST(b.waits.size() == 2u); // Asio's own awaits are folded into the program's
  BOOST_TEST(b.suspended_time_ns == top_level_wait_ns(b));
  BOOST_TEST(b.suspensions == db->count + cache->count);
}

BOOST_AUTO_TEST_CASE(a_wait_in_an_awaited_asio_coroutine_is_charged_under_the_await_of_it) {
  net::io_context io(1);
  Profiler p{"asio_tree"};
  std::uint32_t call_line = 0, inner_line = 0;
  auto lookup = [&]() -> net::awaitable<int> {
    auto b = p.block(1, "lookup");
    net::steady_timer t(co_await net::this_coro::executor, 10ms);
    inner_line = __LINE__ + 1;
    co_await t.async_wait(net::use_awaitable);
    co_return 3;
  };
  auto handle = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "handle");
    call_line = __LINE__ + 1;
    co_await lookup();
  };
  net::co_spawn(io, handle(), net::detached);
  io.run();
  const auto r = p.get_results();
  const auto& h = only(r, 0, "handle");
  const auto& l = only(r, 1, "lookup");
  const auto* via = wait_at_line(h, call_line);
  const auto* inner = wait_at_line(h, inner_line);
  BOOST_TEST_REQUIRE(via != nullptr);
  BOOST_TEST_REQUIRE(inner != nullptr);
  BOOST_TEST(inner->parent_site_id == via->site_id);
  BOOST_TEST(inner->awaited == std::string(net_spelling) + "::basic_waitable_timer::async_wait");
  BOOST_TEST(via->total_time_ns == inner->total_time_ns);
  BOOST_TEST(inner->min_time_ns >= 10'000'000u - initiation_ns);
  BOOST_REQUIRE(l.waits.size() == 1u);
  BOOST_TEST(l.waits[0].line == inner_line);
  BOOST_TEST(h.suspended_time_ns == top_level_wait_ns(h));
  BOOST_TEST(l.suspended_time_ns == top_level_wait_ns(l));
}

BOOST_AUTO_TEST_CASE(a_cancelled_wait_is_counted_until_it_was_cancelled) {
  // Ground truth in the profiler's own clock (its counter and calibration),
  // so that no calibration error sits between the wait and the reference.
  namespace sd = stichotrope::detail;
  net::io_context io(1);
  Profiler p{"asio_cancel"};
  net::steady_timer timer(io, std::chrono::hours(1));
  bool aborted = false;
  std::uint64_t t_ref = 0, t_cancel = 0, t_resumed = 0, t_before = 0;
  std::chrono::steady_clock::time_point steady_ref;
  std::uint64_t steady_until_cancel = 0; // the timer's own clock
  net::steady_timer canceller(io);
  auto waiter = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "waiter");
    // On a one-thread io_context this handler runs after the coroutine has
    // suspended on the timer below: the wait began before t_ref. The cancel
    // comes 15 ms after t_ref, however late the handler ran.
    net::post(io, [&] {
      t_ref = sd::now_ticks();
      steady_ref = std::chrono::steady_clock::now();
      canceller.expires_after(15ms);
      canceller.async_wait([&](net_error_code) {
        steady_until_cancel = ns_since(steady_ref);
        t_cancel = sd::now_ticks();
        timer.cancel();
      });
    });
    t_before = sd::now_ticks();
    try {
      co_await timer.async_wait(net::use_awaitable);
    } catch (const net_system_error& e) {
      aborted = e.code() == net::error::operation_aborted;
    }
    t_resumed = sd::now_ticks();
  };
  net::co_spawn(io, waiter(), net::detached);
  io.run();
  BOOST_TEST(aborted);
  const std::uint64_t until_cancel = sd::ticks_to_ns(t_ref, t_cancel);
  const std::uint64_t waited = sd::ticks_to_ns(t_before, t_resumed);
  const auto r = p.get_results();
  const auto& b = only(r, 0, "waiter");
  BOOST_REQUIRE(b.waits.size() == 1u);
  BOOST_TEST(b.waits[0].count == 1u);
  // It began at the suspension (after t_before, before t_ref) and ended when
  // the cancelled operation's handler resumed it (after t_cancel, before
  // t_resumed).
  BOOST_TEST(b.waits[0].total_time_ns <= waited);
  BOOST_TEST(b.waits[0].total_time_ns >= until_cancel);
  BOOST_TEST(steady_until_cancel >= 15'000'000u);
  BOOST_TEST(b.suspended_time_ns == b.waits[0].total_time_ns);
}

BOOST_AUTO_TEST_CASE(children_spawned_inline_are_the_parents_wait_not_its_active_time) {
  net::io_context io(1);
  Profiler p{"asio_inline"};
  constexpr int children = 8;
  std::uint64_t own_spin = 0;
  auto child = [&]() -> net::awaitable<void> {
    busy_for(4ms); // inline, inside the parent's run, before the child first suspends
    net::steady_timer t(co_await net::this_coro::executor, 1ms);
    co_await t.async_wait(net::use_awaitable);
  };
  auto parent = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "parent");
    const auto t0 = std::chrono::steady_clock::now();
    busy_for(1ms);
    own_spin = ns_since(t0);
    for (int i = 0; i < children; ++i) net::co_spawn(co_await net::this_coro::executor, child(), net::detached);
    co_return; // the block closes without the parent ever suspending
  };
  net::co_spawn(io, parent(), net::detached);
  io.run();
  const auto r = p.get_results();
  const auto& b = only(r, 0, "parent");
  BOOST_TEST(b.suspensions == 0u);
  BOOST_TEST(b.suspended_time_ns >= children * 4'000'000u);
  BOOST_TEST(b.active_time_ns() >= own_spin);
  BOOST_TEST(b.active_time_ns() < own_spin + 10'000'000u); // far below the children's 32 ms (TSan: +3 ms of co_spawn)
  BOOST_REQUIRE(b.waits.size() == 1u);
  BOOST_TEST(b.waits[0].awaited == "(other flows ran inline)");
  BOOST_TEST(b.waits[0].count == unsigned(children));
  BOOST_TEST(b.suspended_time_ns == b.waits[0].total_time_ns);
}

// ---------------------------------------------------------------------------
// Awaitables with an executor of their own type (not any_io_executor): a
// strand, io_context's own executor type, a program's own executor. Two
// sessions interleaved on one thread, each holding a block across a timer
// (40 ms and 20 ms): each is a flow of its own, so neither block is the
// other's parent, and each is suspended for its timer.

/// A program's own executor type: forwards to another (through Asio's
/// customisation points) and counts what it runs.
template <class Inner>
struct counting_executor {
  Inner inner;
  std::atomic<int>* runs;
  friend bool operator==(const counting_executor& a, const counting_executor& b) noexcept {
    return a.inner == b.inner && a.runs == b.runs;
  }
  friend bool operator!=(const counting_executor& a, const counting_executor& b) noexcept { return !(a == b); }
  template <class F>
  void execute(F&& f) const {
    runs->fetch_add(1, std::memory_order_relaxed);
    net::execution::execute(inner, std::forward<F>(f));
  }
  template <class Property>
  auto query(const Property& p) const -> decltype(net::query(std::declval<const Inner&>(), p)) {
    return net::query(inner, p);
  }
  template <class Property>
  auto require(const Property& p) const
      -> counting_executor<std::decay_t<decltype(net::require(std::declval<const Inner&>(), p))>> {
    return {net::require(inner, p), runs};
  }
  template <class Property>
  auto prefer(const Property& p) const
      -> counting_executor<std::decay_t<decltype(net::prefer(std::declval<const Inner&>(), p))>> {
    return {net::prefer(inner, p), runs};
  }
};

template <class Executor>
void check_typed_sessions(Executor a, Executor b, net::io_context& io, const char* label) {
  Profiler p{std::string("asio_typed_") + label};
  using timer_type = typename net::steady_timer::template rebind_executor<Executor>::other;
  auto session = [&p](Executor ex, std::chrono::milliseconds d, const char* name) -> net::awaitable<void, Executor> {
    auto block = p.block(0, name);
    timer_type t(ex, d);
    co_await t.async_wait(net::use_awaitable_t<Executor>{});
  };
  net::co_spawn(a, session(a, 40ms, "long"), net::detached);
  net::co_spawn(b, session(b, 20ms, "short"), net::detached);
  io.run();
  const auto r = p.get_results();
  BOOST_TEST(r.diagnostics.empty(), label);
  for (const auto& d : r.diagnostics) BOOST_TEST_MESSAGE(label << " diagnostic: " << d);
  for (auto [name, ms] : {std::pair{"long", 40u}, std::pair{"short", 20u}}) {
    const auto& b = only(r, 0, name);
    BOOST_TEST(b.hit_count == 1u, label << ' ' << name);
    BOOST_REQUIRE(b.callers.size() == 1u);
    BOOST_TEST(b.callers[0].parent_site_id == stichotrope::no_parent, label << ' ' << name << ": a flow of its own");
    BOOST_TEST(b.self_time_ns == b.total_time_ns, label << ' ' << name << ": no child");
    BOOST_TEST(b.suspensions == 1u, label << ' ' << name);
    BOOST_TEST(b.suspended_time_ns >= ms * 1'000'000u - 1'000'000u, label << ' ' << name);
    BOOST_TEST(b.suspended_time_ns < ms * 1'000'000u + 100'000'000u, label << ' ' << name); // a loaded machine
    BOOST_TEST(b.active_time_ns() < 10'000'000u, label << ' ' << name);
    BOOST_REQUIRE(b.waits.size() == 1u);
    BOOST_TEST(b.waits[0].total_time_ns == b.suspended_time_ns);
  }
}

BOOST_AUTO_TEST_CASE(strand_typed_awaitables_are_flows_with_exact_parents_and_suspended_time) {
  net::io_context io(1);
  check_typed_sessions(net::make_strand(io.get_executor()), net::make_strand(io.get_executor()), io, "strand");
}

BOOST_AUTO_TEST_CASE(io_context_executor_typed_awaitables_are_flows) {
  net::io_context io(1);
  check_typed_sessions(io.get_executor(), io.get_executor(), io, "io_context");
}

BOOST_AUTO_TEST_CASE(a_programs_own_executor_type_gets_flows) {
  net::io_context io(1);
  std::atomic<int> runs{0};
  using own = counting_executor<net::io_context::executor_type>;
  check_typed_sessions(own{io.get_executor(), &runs}, own{io.get_executor(), &runs}, io, "own");
  BOOST_TEST(runs.load() > 0); // the program's executor ran them
}

// ---------------------------------------------------------------------------
// Idioms from Asio's own examples and documentation, each with a block held
// across the await: completion tokens that adapt use_awaitable (as_tuple,
// redirect_error), a channel between two coroutines, a parallel group, and
// (Boost.Asio 1.83) an operation awaited through deferred.

namespace {

/// One block held across `await` (a timer of `d` made by `make`): it is the
/// only block, its own flow, suspended for the timer, with one wait that is
/// all of its suspended time.
void check_one_suspended_block(const ProfilerResults& r, const char* name, std::uint64_t at_least_ns) {
  BOOST_TEST(r.diagnostics.empty(), name);
  const auto& b = only(r, 0, name);
  BOOST_TEST(b.hit_count == 1u, name);
  BOOST_REQUIRE(b.callers.size() == 1u);
  BOOST_TEST(b.callers[0].parent_site_id == stichotrope::no_parent, name);
  BOOST_TEST(b.suspensions == 1u, name);
  BOOST_TEST(b.suspended_time_ns >= at_least_ns, name);
  BOOST_TEST(b.active_time_ns() < 10'000'000u, name);
  BOOST_REQUIRE(b.waits.size() == 1u);
  BOOST_TEST(b.waits[0].total_time_ns == b.suspended_time_ns, name);
}

} // namespace

BOOST_AUTO_TEST_CASE(as_tuple_and_redirect_error_tokens_are_waits_like_use_awaitable) {
  net::io_context io(1);
  Profiler p{"asio_tokens"};
  net_error_code redirected;
  std::uint32_t tuple_line = 0, redirect_line = 0;
  auto with_tuple = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "as_tuple");
    net::steady_timer t(co_await net::this_coro::executor, 20ms);
    tuple_line = __LINE__ + 1;
    auto [ec] = co_await t.async_wait(net::experimental::as_tuple(net::use_awaitable));
    BOOST_TEST(!ec);
  };
  auto with_redirect = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "redirect_error");
    net::steady_timer t(co_await net::this_coro::executor, 20ms);
    redirect_line = __LINE__ + 1;
    co_await t.async_wait(net::redirect_error(net::use_awaitable, redirected));
  };
  net::co_spawn(io, with_tuple(), net::detached);
  net::co_spawn(io, with_redirect(), net::detached);
  io.run();
  BOOST_TEST(!redirected);
  const auto r = p.get_results();
  check_one_suspended_block(r, "as_tuple", 20'000'000u - initiation_ns);
  check_one_suspended_block(r, "redirect_error", 20'000'000u - initiation_ns);
  const auto timer_wait = std::string(net_spelling) + "::basic_waitable_timer::async_wait";
  BOOST_TEST(only(r, 0, "as_tuple").waits[0].line == tuple_line);
  BOOST_TEST(only(r, 0, "as_tuple").waits[0].awaited == timer_wait);
  BOOST_TEST(only(r, 0, "redirect_error").waits[0].line == redirect_line);
  BOOST_TEST(only(r, 0, "redirect_error").waits[0].awaited == timer_wait);
}

BOOST_AUTO_TEST_CASE(a_consumer_waiting_on_a_channel_is_suspended_until_the_producer_sends) {
  net::io_context io(1);
  Profiler p{"asio_channel"};
  net::experimental::channel<void(net_error_code, int)> ch(io, 0);
  int received = 0;
  auto consumer = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "consume");
    received = co_await ch.async_receive(net::use_awaitable);
  };
  auto producer = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "produce");
    net::steady_timer t(co_await net::this_coro::executor, 20ms);
    co_await t.async_wait(net::use_awaitable);
    co_await ch.async_send(net_error_code{}, 7, net::use_awaitable);
  };
  net::co_spawn(io, consumer(), net::detached);
  net::co_spawn(io, producer(), net::detached);
  io.run();
  BOOST_TEST(received == 7);
  const auto r = p.get_results();
  check_one_suspended_block(r, "consume", 20'000'000u - initiation_ns);
  BOOST_TEST(only(r, 0, "consume").waits[0].awaited.find("async_receive") != std::string::npos,
             only(r, 0, "consume").waits[0].awaited);
  const auto& prod = only(r, 0, "produce");
  BOOST_REQUIRE(prod.callers.size() == 1u);
  BOOST_TEST(prod.callers[0].parent_site_id == stichotrope::no_parent); // not the consumer's child
  BOOST_TEST(prod.suspended_time_ns >= 20'000'000u - initiation_ns);
}

BOOST_AUTO_TEST_CASE(a_parallel_group_of_two_timers_is_one_wait_of_the_longer) {
  net::io_context io(1);
  Profiler p{"asio_group"};
  auto parent = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "group");
    auto ex = co_await net::this_coro::executor;
    net::steady_timer a(ex, 10ms), c(ex, 30ms);
    co_await net::experimental::make_parallel_group(a.async_wait(net::experimental::deferred),
                                                    c.async_wait(net::experimental::deferred))
        .async_wait(net::experimental::wait_for_all(), net::use_awaitable);
  };
  net::co_spawn(io, parent(), net::detached);
  io.run();
  check_one_suspended_block(p.get_results(), "group", 30'000'000u - initiation_ns);
}

#if defined(STICHOTROPE_TEST_BOOST_ASIO)
BOOST_AUTO_TEST_CASE(an_operation_awaited_through_deferred_is_a_wait) {
  net::io_context io(1);
  Profiler p{"asio_deferred"};
  auto waiter = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "deferred");
    net::steady_timer t(co_await net::this_coro::executor, 20ms);
    co_await t.async_wait(net::experimental::deferred);
  };
  net::co_spawn(io, waiter(), net::detached);
  io.run();
  check_one_suspended_block(p.get_results(), "deferred", 20'000'000u - initiation_ns);
}
#endif
BOOST_AUTO_TEST_CASE(every_completion_token_adapter_names_the_operation_it_wraps) {
  // Adapters of use_awaitable, alone and nested: each wait is the timer's
  // async_wait (Boost 1.83's redirect_error passes the operation as an
  // argument of its wrapper, as_tuple as a template argument).
  net::io_context io(1);
  Profiler p{"asio_adapters"};
  auto waiter = [&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    auto strand = net::make_strand(ex);
    net::cancellation_signal signal;
    net_error_code ec;
    const auto timed = [&](const char* name, auto token) -> net::awaitable<void> {
      auto b = p.block(0, name);
      net::steady_timer t(ex, 2ms);
      co_await t.async_wait(std::move(token));
    };
    co_await timed("append", net::experimental::append(net::use_awaitable, 1));
    co_await timed("prepend", net::experimental::prepend(net::use_awaitable, 1));
    co_await timed("as_single", net::experimental::as_single(net::use_awaitable));
    co_await timed("bind_executor", net::bind_executor(strand, net::use_awaitable));
    co_await timed("bind_cancellation_slot", net::bind_cancellation_slot(signal.slot(), net::use_awaitable));
    co_await timed("redirect_error(as_tuple)",
                   net::redirect_error(net::experimental::as_tuple(net::use_awaitable), ec));
    co_await timed("as_tuple(redirect_error)",
                   net::experimental::as_tuple(net::redirect_error(net::use_awaitable, ec)));
  };
  net::co_spawn(io, waiter(), net::detached);
  io.run();
  const auto r = p.get_results();
  BOOST_TEST(r.diagnostics.empty());
  const auto timer_wait = std::string(net_spelling) + "::basic_waitable_timer::async_wait";
  for (const char* name : {"append", "prepend", "as_single", "bind_executor", "bind_cancellation_slot",
                           "redirect_error(as_tuple)", "as_tuple(redirect_error)"}) {
    const auto& b = only(r, 0, name);
    BOOST_TEST(b.suspended_time_ns >= 2'000'000u - initiation_ns, name);
    BOOST_REQUIRE(!b.waits.empty());
    const auto& leaf = b.waits.back(); // under the await of the lambda's coroutine
    BOOST_TEST(leaf.awaited == timer_wait, name);
    BOOST_TEST(leaf.count == 1u, name);
    BOOST_TEST(top_level_wait_ns(b) == b.suspended_time_ns, name);
  }
}
BOOST_AUTO_TEST_CASE(waits_on_asio_free_functions_are_named_for_the_function_the_program_called) {
  // Asio starts these through initiation classes of its detail namespace,
  // named for the overload (async_read_buffer_sequence, ..._delim_v2,
  // async_range_connect, post_with_executor): the wait says async_read.
  net::io_context io(1);
  Profiler p{"asio_free_functions"};
  std::map<std::string, std::uint32_t> line_of;
  auto server = [&](net::ip::tcp::acceptor& acc) -> net::awaitable<void> {
    auto b = p.block(0, "server");
    line_of["basic_socket_acceptor::async_accept"] = __LINE__ + 1;
    auto sock = co_await acc.async_accept(net::use_awaitable);
    std::string line;
    line_of["async_read_until"] = __LINE__ + 1;
    co_await net::async_read_until(sock, net::dynamic_buffer(line), '\n', net::use_awaitable);
    char byte[1];
    line_of["async_read"] = __LINE__ + 1;
    co_await net::async_read(sock, net::buffer(byte), net::use_awaitable);
    co_await net::async_write(sock, net::buffer("ok\n", 3), net::use_awaitable);
  };
  auto client = [&](net::ip::tcp::endpoint ep) -> net::awaitable<void> {
    auto b = p.block(0, "client");
    auto ex = co_await net::this_coro::executor;
    net::ip::tcp::resolver resolver(ex);
    auto endpoints = co_await resolver.async_resolve("127.0.0.1", std::to_string(ep.port()), net::use_awaitable);
    net::ip::tcp::socket sock(ex);
    line_of["async_connect"] = __LINE__ + 1;
    co_await net::async_connect(sock, endpoints, net::use_awaitable);
    line_of["async_write"] = __LINE__ + 1;
    co_await net::async_write(sock, net::buffer("hello\n", 6), net::use_awaitable);
    co_await net::steady_timer(ex, 5ms).async_wait(net::use_awaitable); // the line and the byte: two reads
    co_await sock.async_write_some(net::buffer("x", 1), net::use_awaitable);
    line_of["post"] = __LINE__ + 1;
    co_await net::post(ex, net::use_awaitable);
    line_of["defer"] = __LINE__ + 1;
    co_await net::defer(ex, net::use_awaitable);
    char reply[3];
    co_await net::async_read(sock, net::buffer(reply), net::use_awaitable);
  };
  net::ip::tcp::acceptor acc(io, {net::ip::address_v4::loopback(), 0});
  net::co_spawn(io, server(acc), net::detached);
  net::co_spawn(io, client(acc.local_endpoint()), net::detached);
  io.run();
  const auto r = p.get_results();
  BOOST_TEST(r.diagnostics.empty());
  for (const auto& [function, line] : line_of) {
    const bool on_server = function.starts_with("basic_socket") || function.starts_with("async_read");
    const auto* w = wait_at_line(only(r, 0, on_server ? "server" : "client"), line);
    BOOST_TEST_REQUIRE(w != nullptr, function);
    BOOST_TEST(w->awaited == std::string(net_spelling) + "::" + function);
  }
}

#if defined(STICHOTROPE_TEST_BOOST_ASIO)
BOOST_AUTO_TEST_CASE(waits_on_beast_http_are_named_for_the_function_the_program_called) {
  // Beast starts them through detail::run_read_msg_op and run_write_msg_op.
  namespace http = boost::beast::http;
  net::io_context io(1);
  Profiler p{"beast_names"};
  std::uint32_t read_line = 0, write_line = 0;
  auto server = [&](net::ip::tcp::acceptor& acc) -> net::awaitable<void> {
    auto sock = co_await acc.async_accept(net::use_awaitable);
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    co_await http::async_read(sock, buffer, req, net::use_awaitable);
    http::response<http::string_body> res{http::status::ok, req.version(), "ok"};
    res.prepare_payload();
    co_await http::async_write(sock, res, net::use_awaitable);
  };
  auto client = [&](net::ip::tcp::endpoint ep) -> net::awaitable<void> {
    auto b = p.block(0, "client");
    net::ip::tcp::socket sock(co_await net::this_coro::executor);
    co_await sock.async_connect(ep, net::use_awaitable);
    http::request<http::string_body> req{http::verb::get, "/", 11};
    write_line = __LINE__ + 1;
    co_await http::async_write(sock, req, net::use_awaitable);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    read_line = __LINE__ + 1;
    co_await http::async_read(sock, buffer, res, net::use_awaitable);
    BOOST_TEST(res.body() == "ok");
  };
  net::ip::tcp::acceptor acc(io, {net::ip::address_v4::loopback(), 0});
  net::co_spawn(io, server(acc), net::detached);
  net::co_spawn(io, client(acc.local_endpoint()), net::detached);
  io.run();
  const auto r = p.get_results();
  const auto& c = only(r, 0, "client");
  const auto* read = wait_at_line(c, read_line);
  BOOST_TEST_REQUIRE(read != nullptr);
  BOOST_TEST(read->awaited == "boost::beast::http::async_read");
  if (const auto* write = wait_at_line(c, write_line)) // a write to loopback may complete without suspending
    BOOST_TEST(write->awaited == "boost::beast::http::async_write");
}
#endif
namespace {

/// A composed operation as Asio's examples write one: two timer waits, then
/// completion.
struct two_timers_op {
  net::steady_timer& timer;
  int step = 0;
  template <class Self>
  void operator()(Self& self, net_error_code = {}) {
    if (step++ < 2) {
      timer.expires_after(2ms);
      return timer.async_wait(std::move(self));
    }
    self.complete(net_error_code{});
  }
};

template <class Token>
auto async_two_timers(net::steady_timer& t, Token&& token) {
  return net::async_compose<Token, void(net_error_code)>(two_timers_op{t}, token, t);
}

} // namespace

BOOST_AUTO_TEST_CASE(a_wait_on_a_composed_operation_is_named_for_its_implementation) {
  net::io_context io(1);
  Profiler p{"asio_compose"};
  std::uint32_t class_line = 0, lambda_line = 0, lambda_written = 0;
  auto waiter = [&]() -> net::awaitable<void> {
    auto b = p.block(0, "composed");
    net::steady_timer t(co_await net::this_coro::executor);
    class_line = __LINE__ + 1;
    co_await async_two_timers(t, net::use_awaitable);
    lambda_line = __LINE__ + 1;
    co_await net::async_compose<const net::use_awaitable_t<>&, void(net_error_code)>(
        [&, n = 0](auto& self, net_error_code = {}) mutable {
          if (n++ == 0) {
            t.expires_after(1ms);
            return t.async_wait(std::move(self));
          }
          self.complete({});
        },
        net::use_awaitable, t);
    lambda_written = lambda_line + 1; // the lambda starts on the next line
  };
  net::co_spawn(io, waiter(), net::detached);
  io.run();
  const auto r = p.get_results();
  const auto& b = only(r, 0, "composed");
  const auto* by_class = wait_at_line(b, class_line);
  const auto* by_lambda = wait_at_line(b, lambda_line);
  BOOST_TEST_REQUIRE(by_class != nullptr);
  BOOST_TEST_REQUIRE(by_lambda != nullptr);
  BOOST_TEST(by_class->awaited == "(anonymous namespace)::two_timers_op");
  BOOST_TEST(by_class->total_time_ns >= 4'000'000u - initiation_ns); // both of its timer waits
  BOOST_TEST(by_lambda->awaited.starts_with("(lambda at asio_test.cpp:" + std::to_string(lambda_written) + ":"),
             by_lambda->awaited);
}

BOOST_AUTO_TEST_CASE(exceptions_through_blocks_on_a_thread_pool_keep_nesting_and_times) {
  // 40 sessions on Asio's own thread_pool (4 threads). Each opens "request"
  // and awaits a child coroutine that opens "step", waits 2 ms and, for odd
  // sessions, throws: half of them catch it in the session, the others let
  // it end the session, and co_spawn's handler receives it.
  net::thread_pool pool(4);
  Profiler p{"asio_throw"};
  std::atomic<int> caught{0}, propagated{0}, completed{0};
  auto step = [&](int id) -> net::awaitable<void> {
    auto b = p.block(1, "step");
    net::steady_timer t(co_await net::this_coro::executor, 2ms);
    co_await t.async_wait(net::use_awaitable);
    if (id % 2 == 1) throw std::runtime_error("step failed");
  };
  auto session = [&](int id) -> net::awaitable<void> {
    auto b = p.block(0, "request");
    if (id % 4 == 1) {
      try {
        co_await step(id);
      } catch (const std::runtime_error&) {
        ++caught;
      }
    } else {
      co_await step(id); // id % 4 == 3 throws out of the session
    }
  };
  constexpr int sessions = 40;
  for (int id = 0; id < sessions; ++id)
    net::co_spawn(pool, session(id), [&](std::exception_ptr e) { ++(e ? propagated : completed); });
  pool.join();
  BOOST_TEST(caught.load() == sessions / 4);
  BOOST_TEST(propagated.load() == sessions / 4);
  BOOST_TEST(completed.load() == sessions - sessions / 4);
  const auto r = p.get_results();
  BOOST_TEST(r.diagnostics.empty());
  for (const auto& d : r.diagnostics) BOOST_TEST_MESSAGE("diagnostic: " << d);
  const auto& request = only(r, 0, "request");
  const auto& st = only(r, 1, "step");
  BOOST_TEST(request.hit_count == unsigned(sessions));
  BOOST_TEST(st.hit_count == unsigned(sessions));
  BOOST_REQUIRE(request.callers.size() == 1u);
  BOOST_TEST(request.callers[0].parent_site_id == stichotrope::no_parent);
  BOOST_REQUIRE(st.callers.size() == 1u);
  BOOST_TEST(st.callers[0].parent_site_id == request.site_id); // never another session's request
  BOOST_TEST(st.suspended_time_ns >= sessions * (2'000'000u - initiation_ns / 10));
  BOOST_TEST(request.self_time_ns + st.total_time_ns == request.total_time_ns);
  BOOST_TEST(request.suspended_time_ns >= st.suspended_time_ns);
}
