// The cost of a timed co_await, against the same await unwrapped, in one
// run; and the empty block and raw timestamp reads it is measured against.
// The target (docs/performance.md): a wrapped co_await costs at most 2 x an empty block more
// than the same await unwrapped.
#include <benchmark/benchmark.h>

#include <coroutine>
#include <exception>
import stichotrope;

namespace {

stichotrope::Profiler profiler{"bench"};
const stichotrope::Site block_site = *profiler.site(0, "block");
const stichotrope::Site ready_site = *profiler.site(1, "ready");
const stichotrope::Site round_trip_site = *profiler.site(1, "round_trip");

/// A coroutine with no hooks, so that only the awaits differ between cases.
struct eager {
  struct promise_type {
    eager get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

struct ready_awaiter { // never suspends
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int await_resume() const noexcept { return 1; }
};

struct round_trip_awaiter { // suspends, then resumes at once by symmetric transfer
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) const noexcept { return h; }
  int await_resume() const noexcept { return 1; }
};

void two_timestamps(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(stichotrope::detail::now_ticks());
    benchmark::DoNotOptimize(stichotrope::detail::now_ticks());
  }
}
BENCHMARK(two_timestamps);

void empty_block(benchmark::State& state) {
  for (auto _ : state) {
    auto b = profiler.block(block_site);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(empty_block);

void ready_await(benchmark::State& state) {
  [](benchmark::State& s) -> eager {
    for (auto _ : s) benchmark::DoNotOptimize(co_await ready_awaiter{});
  }(state);
}
BENCHMARK(ready_await);

void ready_await_wrapped(benchmark::State& state) {
  [](benchmark::State& s) -> eager {
    for (auto _ : s) benchmark::DoNotOptimize(co_await profiler.wrap(ready_site, ready_awaiter{}));
  }(state);
}
BENCHMARK(ready_await_wrapped);

void round_trip_await(benchmark::State& state) {
  [](benchmark::State& s) -> eager {
    for (auto _ : s) benchmark::DoNotOptimize(co_await round_trip_awaiter{});
  }(state);
}
BENCHMARK(round_trip_await);

void round_trip_await_wrapped(benchmark::State& state) {
  [](benchmark::State& s) -> eager {
    for (auto _ : s) benchmark::DoNotOptimize(co_await profiler.wrap(round_trip_site, round_trip_awaiter{}));
  }(state);
}
BENCHMARK(round_trip_await_wrapped);

} // namespace

BENCHMARK_MAIN();
