// get_results() with 64 threads x 1,000 sites while a recorder runs, the
// recorder's cost meanwhile, and the memory a (thread, site) takes.
#include <benchmark/benchmark.h>

#include "resident.hpp"

#include <atomic>
#include <barrier>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

namespace {

constexpr int thread_count = 64;
constexpr int site_count = 1000;

/// 64 parked threads that each recorded every one of 1,000 sites.
struct populated {
  stichotrope::Profiler profiler{"results_bench"};
  std::vector<stichotrope::Site> sites;
  std::vector<std::thread> threads;
  std::barrier<> ready{thread_count + 1};
  std::barrier<> finish{thread_count + 1};
  long rss_growth_kib = 0;

  populated() {
    for (int s = 0; s < site_count; ++s) sites.push_back(*profiler.site(s % 16, "site_" + std::to_string(s)));
    const long before = resident_kib();
    for (int t = 0; t < thread_count; ++t)
      threads.emplace_back([this] {
        for (int round = 0; round < 3; ++round)
          for (const auto& s : sites) auto b = profiler.block(s);
        ready.arrive_and_wait();
        finish.arrive_and_wait(); // stay alive: their buffers are live, not merged
      });
    ready.arrive_and_wait();
    rss_growth_kib = resident_kib() - before;
  }
  ~populated() {
    finish.arrive_and_wait();
    for (auto& t : threads) t.join();
  }
};

populated& data() {
  static populated p;
  return p;
}

void get_results_64_threads_x_1000_sites(benchmark::State& state) {
  auto& d = data();
  std::atomic<bool> stop{false};
  std::thread recorder([&] { // recording goes on meanwhile
    while (!stop.load(std::memory_order_relaxed)) auto b = d.profiler.block(d.sites[0]);
  });
  for (auto _ : state) benchmark::DoNotOptimize(d.profiler.get_results());
  stop = true;
  recorder.join();
  state.counters["rss_kib_per_thread_site"] =
      static_cast<double>(d.rss_growth_kib) / (thread_count * static_cast<double>(site_count));
  state.counters["bytes_per_thread_site"] =
      static_cast<double>(d.rss_growth_kib) * 1024.0 / (thread_count * static_cast<double>(site_count));
}
BENCHMARK(get_results_64_threads_x_1000_sites)->Unit(benchmark::kMillisecond)->UseRealTime();

void recorder_alone(benchmark::State& state) {
  auto& d = data();
  for (auto _ : state) auto b = d.profiler.block(d.sites[1]);
}
BENCHMARK(recorder_alone);

void recorder_during_get_results(benchmark::State& state) {
  auto& d = data();
  std::atomic<bool> stop{false};
  std::thread aggregator([&] {
    while (!stop.load(std::memory_order_relaxed)) benchmark::DoNotOptimize(d.profiler.get_results());
  });
  for (auto _ : state) auto b = d.profiler.block(d.sites[1]);
  stop = true;
  aggregator.join();
}
BENCHMARK(recorder_during_get_results);

} // namespace

BENCHMARK_MAIN();
