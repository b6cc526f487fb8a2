// Profiler::repeat against Google Benchmark on the same functions in one
// program: a 64 KiB copy and a 10 us spin, measured two ways.
//
// The same protocol (the report's target: minima within 3 %): runs of
// about 1 ms (copy: 1,000 calls; spin: 100), the minimum over 300 of them.
// Google Benchmark: 300 repetitions of that many iterations, the minimum of
// their per-iteration means; repeat: 300 repetitions of one run (after one
// unmeasured run) with that batch, the fastest. The same quantity from two
// instruments, drawn alike: one run at a time, shuffled in time together.
//
// Each tool's usual protocol (reported, no target): repeat's single runs
// (2,000; the fastest that is not an outlier, and the median; the median of
// 5 repetitions) against
// Google Benchmark's own batches (the minimum over 20 repetitions of its
// per-iteration mean). These are different quantities: a batch of tens of
// ms carries the machine's interruptions, which single runs between them
// escape (docs/repetition.md, "Against Google Benchmark: two protocols").
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

import stichotrope;

namespace {

std::vector<char> from(64 * 1024, 'x'), to(64 * 1024);

void copy_64k() {
  std::memcpy(to.data(), from.data(), from.size());
  benchmark::DoNotOptimize(to.data());
  benchmark::ClobberMemory();
}

void spin_10us() {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(10);
  while (std::chrono::steady_clock::now() < end) {
  }
}

constexpr int runs = 2000;

template <void (*F)()>
void google_benchmark(benchmark::State& state) {
  for (auto _ : state) F();
}

template <void (*F)(), std::uint64_t Batch = 1, std::uint64_t Runs = runs, std::uint64_t Warmup = 50>
void with_repeat(benchmark::State& state) {
  stichotrope::Profiler p{"repeat_bench"};
  for (auto _ : state) {
    auto r = p.repeat(0, "f", F, {.iterations = Runs, .warmup = Warmup, .batch = Batch});
    state.counters["min_ns"] = r->per_call(r->min_ns);
    state.counters["median_ns"] = r->per_call(r->median_ns);
    state.counters["min_without_outliers_ns"] = r->per_call(r->min_without_outliers_ns);
    state.counters["outliers"] = static_cast<double>(r->outliers.size());
  }
}

double minimum(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

} // namespace

// Both tools on one function, each tool's usual protocol and then the same
// one (runs of `Batch` calls, the fastest of 300). Every benchmark has its
// repetitions, so that report.py can shuffle them all
// (--benchmark_enable_random_interleaving): both tools then sample the same
// stretch of the machine's speed.
template <void (*F)(), std::uint64_t Batch>
void register_both(const char* name) {
  const auto both = [](benchmark::internal::Benchmark* b, int repetitions) {
    b->Repetitions(repetitions)->ComputeStatistics("min", minimum)->ReportAggregatesOnly(true)->UseRealTime();
  };
  both(benchmark::RegisterBenchmark((std::string("gb_") + name).c_str(), google_benchmark<F>), 20);
  both(benchmark::RegisterBenchmark((std::string("repeat_") + name).c_str(), with_repeat<F>)->Iterations(1), 5);
  both(
      benchmark::RegisterBenchmark((std::string("gb_batched_") + name).c_str(), google_benchmark<F>)->Iterations(Batch),
      300);
  both(benchmark::RegisterBenchmark((std::string("repeat_batched_") + name).c_str(), with_repeat<F, Batch, 1, 1>)
           ->Iterations(1),
       300);
}

int main(int argc, char** argv) {
  register_both<copy_64k, 1000>("copy_64k");
  register_both<spin_10us, 100>("spin_10us");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
