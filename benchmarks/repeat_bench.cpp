// Profiler::repeat against Google Benchmark on the same functions in one
// program: a 64 KiB copy and a 10 us spin. repeat: 2,000 runs; the fastest
// one, the fastest that is not an outlier, and the median. Google Benchmark:
// the minimum over 20 repetitions of its per-iteration mean (its own
// batches: with one iteration per repetition, its timer's CPU-time system
// call falls inside the measured time, 1.4-1.6 us more a run here). The
// report's target: minima within 3 %, repeat's without its outliers: a
// batch's mean averages away the machine's short fast phases that single
// runs catch (docs/repetition.md, "The two minima").
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

template <void (*F)()>
void with_repeat(benchmark::State& state) {
  stichotrope::Profiler p{"repeat_bench"};
  for (auto _ : state) {
    auto r = p.repeat(0, "f", F, {.iterations = runs, .warmup = 50});
    state.counters["min_ns"] = static_cast<double>(r->min_ns);
    state.counters["median_ns"] = static_cast<double>(r->median_ns);
    state.counters["min_without_outliers_ns"] = static_cast<double>(r->min_without_outliers_ns);
    state.counters["outliers"] = static_cast<double>(r->outliers.size());
  }
}

double minimum(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

} // namespace

// Both tools on one function: Google Benchmark's minimum over 20
// repetitions, then one repeat() of 2,000 runs.
template <void (*F)()>
void register_both(const char* name) {
  benchmark::RegisterBenchmark((std::string("gb_") + name).c_str(), google_benchmark<F>)
      ->Repetitions(20)
      ->ComputeStatistics("min", minimum)
      ->ReportAggregatesOnly(true)
      ->UseRealTime();
  benchmark::RegisterBenchmark((std::string("repeat_") + name).c_str(), with_repeat<F>)->Iterations(1)->UseRealTime();
}

int main(int argc, char** argv) {
  register_both<copy_64k>("copy_64k");
  register_both<spin_10us>("spin_10us");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
