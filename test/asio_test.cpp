// Asio integration: coroutines spawned with_flow get flows of their own, so
// blocks that span co_await nest per session and split active/suspended time.
#define BOOST_TEST_MODULE asio
#include <boost/test/unit_test.hpp>

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <stichotrope/asio.hpp>
import stichotrope;

using namespace std::chrono_literals;
using stichotrope::BlockResults;
using stichotrope::Profiler;
using stichotrope::ProfilerResults;
namespace sa = stichotrope::asio;

namespace {

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

void run(asio::io_context& io, int threads) {
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&] { io.run(); });
  for (auto& t : pool) t.join();
}

asio::awaitable<int> backend(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
  co_return 7;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_block_spanning_an_asio_timer_splits_active_and_suspended_time) {
  asio::io_context io(2);
  Profiler p{"asio"};
  auto session = [&]() -> asio::awaitable<void> {
    auto span = p.block(0, "span");
    asio::steady_timer timer(co_await asio::this_coro::executor, 30ms);
    co_await timer.async_wait(asio::use_awaitable);
    busy_for(3ms);
  };
  asio::co_spawn(sa::with_flow(io.get_executor()), session(), asio::detached);
  run(io, 2);
  const auto r = p.get_results();
  const auto& b = only(r, 0, "span");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.suspensions >= 1u);
  BOOST_TEST(b.suspended_time_ns >= 30'000'000u); // the timer never fires early
  BOOST_TEST(b.active_time_ns() >= 3'000'000u);   // the spin the test controls
  BOOST_TEST(b.active_time_ns() < 103'000'000u);  // 100 ms slack for a loaded machine
  BOOST_TEST(b.active_time_ns() + b.suspended_time_ns == b.total_time_ns);
}

BOOST_AUTO_TEST_CASE(sessions_interleaving_on_one_thread_keep_their_own_nesting) {
  asio::io_context io(1);
  Profiler p{"asio_interleave"};
  std::atomic<int> sessions_done{0};
  auto session = [&](int id) -> asio::awaitable<void> {
    for (int i = 0; i < 5; ++i) {
      auto request = p.block(0, "request");
      co_await sa::timed(p, 1, "backend", backend(std::chrono::milliseconds(2 + id)));
    }
    ++sessions_done;
  };
  for (int id = 0; id < 3; ++id) asio::co_spawn(sa::with_flow(io.get_executor()), session(id), asio::detached);
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
  asio::io_context io(1);
  Profiler p{"asio_track"};
  auto call = sa::track(p, 2, "call_backend", [](int ms) { return backend(std::chrono::milliseconds(ms)); });
  int result = 0;
  auto main_flow = [&]() -> asio::awaitable<void> { result = co_await call(10); };
  asio::co_spawn(sa::with_flow(io.get_executor()), main_flow(), asio::detached);
  run(io, 1);
  BOOST_TEST(result == 7);
  const auto r = p.get_results();
  const auto& b = only(r, 2, "call_backend");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.total_time_ns >= 10'000'000u);
  BOOST_TEST(b.suspended_time_ns >= 10'000'000u);
}

BOOST_AUTO_TEST_CASE(timed_without_a_flow_records_wall_time_only) {
  asio::io_context io(2);
  Profiler p{"asio_no_flow"};
  auto plain = [&]() -> asio::awaitable<void> { co_await sa::timed(p, 0, "unflowed", backend(5ms)); };
  asio::co_spawn(io, plain(), asio::detached);
  run(io, 2);
  const auto r = p.get_results();
  const auto& b = only(r, 0, "unflowed");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.total_time_ns >= 5'000'000u);
  BOOST_TEST(b.suspensions == 0u); // not observable without a flow
}
