// An ordinary server's shape: 128 threads x 5,000 call sites, each (thread,
// site) with latencies over four octaves. What it costs in memory while the
// threads live and after they exit, and what get_results() and
// take_results() cost there. Targets: docs/performance.md.
#include <benchmark/benchmark.h>

#include "resident.hpp"

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

namespace {

constexpr int thread_count = 128;
constexpr int site_count = 5000;
constexpr double pairs = double{thread_count} * site_count;

struct populated {
  stichotrope::Profiler profiler{"scale_bench"};
  std::vector<stichotrope::Site> sites;
  std::vector<std::thread> threads;
  std::barrier<> ready{thread_count + 1};
  std::barrier<> go{thread_count + 1};
  std::atomic<bool> quit{false};
  long before_kib = 0, live_kib = 0, before_exit_kib = 0, exited_kib = 0;
  stichotrope::MemoryUse live{}, exited{};
  bool joined = false;

  populated() {
    if constexpr (!stichotrope::instrumentation_compiled_in) return;
    for (int s = 0; s < site_count; ++s) sites.push_back(*profiler.site(s % 16, "site_" + std::to_string(s)));
    before_kib = resident_kib();
    for (int t = 0; t < thread_count; ++t)
      threads.emplace_back([this] {
        for (;;) {
          for (const auto& s : sites)
            for (long ns : {100, 300, 700, 1500, 120}) profiler.record(s, std::chrono::nanoseconds(ns));
          ready.arrive_and_wait();
          go.arrive_and_wait(); // stay alive: their buffers are live, not handed over
          if (quit) return;
        }
      });
    ready.arrive_and_wait();
    live_kib = resident_kib() - before_kib;
    live = profiler.memory_use();
  }
  /// Every thread records its sites once more.
  void record_again() {
    go.arrive_and_wait();
    ready.arrive_and_wait();
  }
  void join() {
    if (joined || threads.empty()) return;
    before_exit_kib = resident_kib() - before_kib;
    quit = true;
    go.arrive_and_wait();
    for (auto& t : threads) t.join();
    joined = true;
    exited_kib = resident_kib() - before_kib;
    exited = profiler.memory_use();
  }
  ~populated() { join(); }
};

populated& data() {
  static populated p;
  return p;
}

void get_results_128_threads_x_5000_sites(benchmark::State& state) {
  auto& d = data();
  for (auto _ : state) benchmark::DoNotOptimize(d.profiler.get_results());
  state.counters["bytes_per_thread_site"] = static_cast<double>(d.live.thread_buffers) / pairs;
  state.counters["rss_bytes_per_thread_site"] = static_cast<double>(d.live_kib) * 1024.0 / pairs;
  state.counters["live_rss_mb"] = static_cast<double>(d.live_kib) / 1024.0;
  state.counters["live_profiler_mb"] = static_cast<double>(d.live.total()) / 1e6;
}
BENCHMARK(get_results_128_threads_x_5000_sites)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);

// take_results() there, each time after every thread recorded its sites
// again (not timed): every slot is read and sealed once.
void take_results_128_threads_x_5000_sites(benchmark::State& state) {
  auto& d = data();
  for (auto _ : state) {
    state.PauseTiming();
    d.record_again();
    state.ResumeTiming();
    benchmark::DoNotOptimize(d.profiler.take_results());
  }
}
BENCHMARK(take_results_128_threads_x_5000_sites)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

void after_exit_128_threads_x_5000_sites(benchmark::State& state) {
  auto& d = data();
  if (!d.joined) d.record_again(); // data in the current interval, for the threads to hand over
  d.join();                        // the threads end: their statistics are handed over, their buffers freed
  for (auto _ : state) benchmark::DoNotOptimize(d.profiler.get_results());
  state.counters["exited_rss_mb"] = static_cast<double>(d.exited_kib) / 1024.0;
  state.counters["before_exit_rss_mb"] = static_cast<double>(d.before_exit_kib) / 1024.0;
  state.counters["exited_profiler_mb"] = static_cast<double>(d.exited.total()) / 1e6;
  state.counters["live_rss_mb"] = static_cast<double>(d.live_kib) / 1024.0;
  state.counters["live_profiler_mb"] = static_cast<double>(d.live.total()) / 1e6;
}
BENCHMARK(after_exit_128_threads_x_5000_sites)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);

} // namespace

BENCHMARK_MAIN();
