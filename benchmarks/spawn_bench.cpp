// Starting N Asio coroutines alive at once on one io_context thread, each
// holding a block across a timer (docs/performance.md, "Many coroutines"):
// the time from the first co_spawn until every coroutine has suspended on
// its timer. Built twice by benchmarks/CMakeLists.txt: spawn_bench with the
// stichotrope Asio integration, spawn_bench_plain (SPAWN_BENCH_PLAIN) the
// same program with plain Asio and no block (a program cannot hold both:
// the header gives asio::awaitable its promise type for the whole program).
// benchmarks/report.py divides the two; target: <= 1.5 x, and no quadratic
// growth (10,000 vs 100,000). One iteration, in a process of its own (the
// report starts each several times): what a server starting up sees. A
// repetition in the same process finds the previous one's memory mapped
// already, and glibc returns freed heap top to the system between rounds,
// so in-process repetitions measure the allocator's state, not the program.
#include <benchmark/benchmark.h>

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <sys/resource.h>

#if !defined(SPAWN_BENCH_PLAIN)
#include <stichotrope/asio.hpp>
import stichotrope;
#endif

namespace {

#if !defined(SPAWN_BENCH_PLAIN)
stichotrope::Profiler profiler{"spawn_bench"};
#endif

std::int64_t waiting = 0;

asio::awaitable<void> connection(asio::steady_timer& release) {
#if !defined(SPAWN_BENCH_PLAIN)
  auto b = profiler.block(0, "connection");
#endif
  ++waiting;
  try {
    co_await release.async_wait(asio::use_awaitable);
  } catch (const std::system_error&) { // cancelled: the benchmark ends the round
  }
}

void start_coroutines(benchmark::State& state) {
  const auto n = state.range(0);
  for (auto _ : state) {
    asio::io_context io(1);
    asio::steady_timer release(io, std::chrono::hours(1));
    waiting = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < n; ++i) asio::co_spawn(io, connection(release), asio::detached);
    while (waiting < n) io.run_one();
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    release.cancel();
    io.run();
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  state.counters["peak_rss_mb"] = static_cast<double>(u.ru_maxrss) / 1024.0;
}
BENCHMARK(start_coroutines)->Arg(10'000)->Arg(100'000)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);

} // namespace

BENCHMARK_MAIN();
