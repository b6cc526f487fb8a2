// What attributing suspensions to their co_await costs (docs/performance.md,
// "Waits"), in a flow (stichotrope::task), measured as an importer builds:
// - a suspend/resume round trip with no block open (nothing to charge) and
//   with one and four blocks open (a wait charged to each): the difference
//   is the attribution; target: +5 ns for one open block;
// - a co_await that does not suspend, in a task (through the promise's
//   await_transform and its source_location) against the same await in a
//   coroutine with no hooks; target: +1 ns;
// - memory per (thread, await site): 1,000 await sites charged once each.
#include <benchmark/benchmark.h>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <utility>
import stichotrope;

namespace {

stichotrope::Profiler profiler{"waits_bench"};
const stichotrope::Site outer_site = *profiler.site(0, "outer");
const stichotrope::Site inner_site = *profiler.site(0, "inner");

/// Suspends to whoever resumed the task; the driver resumes it again.
struct yield_awaiter {
  std::coroutine_handle<>* parked;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept { *parked = h; }
  void await_resume() const noexcept {}
};

struct ready_awaiter {
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int await_resume() const noexcept { return 1; }
};

/// A coroutine with no hooks, for the plain await.
struct eager {
  struct promise_type {
    eager get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

/// Runs `body` as a task, resuming it every time it parks until it ends.
template <class Body>
void drive(Body body) {
  std::coroutine_handle<> parked;
  bool done = false;
  stichotrope::spawn(body(&parked), [&](std::exception_ptr) { done = true; });
  while (!done) std::exchange(parked, nullptr).resume();
}

template <int Blocks>
void flow_round_trip(benchmark::State& state) {
  drive([&](std::coroutine_handle<>* parked) -> stichotrope::task<void> {
    stichotrope::Block open[Blocks > 0 ? Blocks : 1];
    for (int i = 0; i < Blocks; ++i) open[i] = profiler.block(i == 0 ? outer_site : inner_site);
    for (auto _ : state) co_await yield_awaiter{parked};
  });
}
BENCHMARK(flow_round_trip<0>)->Name("flow_round_trip_no_block");
BENCHMARK(flow_round_trip<1>)->Name("flow_round_trip_one_block");
BENCHMARK(flow_round_trip<4>)->Name("flow_round_trip_four_blocks");

void ready_await_plain(benchmark::State& state) {
  [](benchmark::State& s) -> eager {
    for (auto _ : s) benchmark::DoNotOptimize(co_await ready_awaiter{});
  }(state);
}
BENCHMARK(ready_await_plain);

void ready_await_in_task(benchmark::State& state) {
  drive([&](std::coroutine_handle<>*) -> stichotrope::task<void> {
    auto b = profiler.block(outer_site);
    for (auto _ : state) benchmark::DoNotOptimize(co_await ready_awaiter{});
  });
}
BENCHMARK(ready_await_in_task);

template <int N>
stichotrope::task<void> park_at_site(std::coroutine_handle<>* parked) {
  co_await yield_awaiter{parked}; // one await site per instantiation
}

template <int G, int... N>
stichotrope::task<void> park_group(std::coroutine_handle<>* parked, std::integer_sequence<int, N...>) {
  (co_await park_at_site<G * 100 + N>(parked), ...);
}

template <int... G>
stichotrope::task<void> park_groups(std::coroutine_handle<>* parked, std::integer_sequence<int, G...>) {
  // 10 groups of 100 sites: a fold of 1,000 awaits is past clang's nesting limit.
  (co_await park_group<G>(parked, std::make_integer_sequence<int, 100>{}), ...);
}

/// Memory that 1,000 await sites take in one thread (the block's waits and
/// their chains), reported as bytes per (thread, await site): what the
/// thread's buffer grows by once it exists (the block recorded once first).
void memory_per_await_site(benchmark::State& state) {
  for (auto _ : state) {
    stichotrope::Profiler p{"sites"};
    {
      auto b = p.block(0, "many");
    }
    const auto before = p.memory_use();
    drive([&](std::coroutine_handle<>* parked) -> stichotrope::task<void> {
      auto b = p.block(0, "many");
      co_await park_groups(parked, std::make_integer_sequence<int, 10>{});
    });
    const auto after = p.memory_use();
    state.counters["bytes_per_thread_await_site"] =
        static_cast<double>(after.thread_buffers - before.thread_buffers) / 1000.0;
    state.counters["registry_bytes_per_await_site"] = static_cast<double>(after.sites - before.sites) / 1000.0;
  }
}
BENCHMARK(memory_per_await_site)->Iterations(3);

} // namespace

BENCHMARK_MAIN();
