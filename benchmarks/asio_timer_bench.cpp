// An awaited timer round trip in an Asio coroutine with a block open, for
// both flavours in one program (stichotrope/asio.hpp and
// stichotrope/boost_asio.hpp are one implementation; the report's target: the
// Boost.Asio round trip costs the same as the standalone one within 5 %).
// Each iteration: open a block, co_await an expired timer's async_wait (a
// real suspension: the completion is posted and the io_context resumes the
// coroutine), close the block. One thread, one io_context.
#include <benchmark/benchmark.h>

#include <asio.hpp>
#include <boost/asio.hpp>

#include <stichotrope/asio.hpp>
#include <stichotrope/boost_asio.hpp>
import stichotrope;

namespace {

struct standalone {
  using io_context = ::asio::io_context;
  using timer = ::asio::steady_timer;
  template <class T>
  using awaitable = ::asio::awaitable<T>;
  static constexpr const auto& use_awaitable = ::asio::use_awaitable;
  static constexpr const auto& executor = ::asio::this_coro::executor;
  template <class... A>
  static void spawn(A&&... a) {
    ::asio::co_spawn(std::forward<A>(a)..., ::asio::detached);
  }
};

struct boost_flavour {
  using io_context = ::boost::asio::io_context;
  using timer = ::boost::asio::steady_timer;
  template <class T>
  using awaitable = ::boost::asio::awaitable<T>;
  static constexpr const auto& use_awaitable = ::boost::asio::use_awaitable;
  static constexpr const auto& executor = ::boost::asio::this_coro::executor;
  template <class... A>
  static void spawn(A&&... a) {
    ::boost::asio::co_spawn(std::forward<A>(a)..., ::boost::asio::detached);
  }
};

template <class Net>
typename Net::template awaitable<void> rounds(benchmark::State& state, stichotrope::Profiler& p, bool with_block) {
  typename Net::timer t(co_await Net::executor);
  for (auto _ : state) {
    auto b = with_block ? p.block(0, "await") : p.block(1, "unused"); // (track 1 is off: no block)
    t.expires_at(Net::timer::time_point::min());
    co_await t.async_wait(Net::use_awaitable);
  }
}

template <class Net>
void timer_round_trip(benchmark::State& state, bool with_block) {
  typename Net::io_context io(1);
  stichotrope::Profiler p{"asio_timer_bench"};
  (void)p.set_track_enabled(1, false);
  Net::spawn(io, rounds<Net>(state, p, with_block));
  io.run();
}

void standalone_round_trip_one_block(benchmark::State& s) { timer_round_trip<standalone>(s, true); }
void boost_round_trip_one_block(benchmark::State& s) { timer_round_trip<boost_flavour>(s, true); }
void standalone_round_trip_no_block(benchmark::State& s) { timer_round_trip<standalone>(s, false); }
void boost_round_trip_no_block(benchmark::State& s) { timer_round_trip<boost_flavour>(s, false); }

} // namespace

// Interleaved, so that a drift of the machine touches both flavours alike.
BENCHMARK(standalone_round_trip_one_block);
BENCHMARK(boost_round_trip_one_block);
BENCHMARK(standalone_round_trip_no_block);
BENCHMARK(boost_round_trip_no_block);
BENCHMARK_MAIN();
