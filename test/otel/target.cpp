// A program that records a known workload over several export intervals;
// the OTLP endpoint, the interval and the timeline come from the environment
// set by run.py (no code here names them). Writes its own results JSON when
// done, then ends its profiler, which sends the last interval.
//
//   target RESULTS_JSON            record, then write RESULTS_JSON
//   target RESULTS_JSON unreachable  the same, and print the diagnostics
#include <utility>

#include "../support/async.hpp"

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

namespace {

void spin(std::chrono::microseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: target RESULTS_JSON [unreachable]\n";
    return 2;
  }
  const bool unreachable = argc > 2 && std::string(argv[2]) == "unreachable";
  test_async::thread_pool pool(2);
  test_async::timer_service timers(pool);
  int rc = 0;
  {
    stichotrope::Profiler profiler{"oteltest"};
    (void)profiler.set_track_name(0, "Requests");
    (void)profiler.set_track_name(1, "Database \"main\"");
    {
      // A block open across an export: its child closes one or two exports
      // before it, and is still sent as its child.
      auto slow = profiler.block(0, "long");
      {
        auto early = profiler.block(1, "early");
        spin(std::chrono::microseconds(50));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(220));
    }
    const int rounds = unreachable ? 4 : 8;
    for (int round = 0; round < rounds; ++round) {
      // A thread's own flow: outer > 3 x inner.
      for (int i = 0; i < 5; ++i) {
        auto outer = profiler.block(0, "outer");
        for (int j = 0; j < 3; ++j) {
          auto inner = profiler.block(1, "inner");
          spin(std::chrono::microseconds(50));
        }
      }
      // Exact durations: the histogram's buckets are known.
      for (int i = 0; i < 100; ++i) profiler.record(2, "fixed", std::chrono::nanoseconds(1000 + 37 * i + 1000 * round));
      // Coroutine flows that hop threads: request > step, suspended on a timer.
      for (int i = 0; i < 3; ++i) {
        stichotrope::sync_wait([&]() -> stichotrope::task<void> {
          auto request = profiler.block(0, "request");
          co_await pool.schedule();
          {
            auto step = profiler.block(1, "step");
            spin(std::chrono::microseconds(100));
          }
          co_await timers.after(std::chrono::milliseconds(2));
          auto step = profiler.block(1, "step");
          spin(std::chrono::microseconds(100));
        }());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
    }
    if (auto ok = profiler.export_json(argv[1]); !ok) {
      std::cerr << "cannot write " << argv[1] << ": " << ok.error().message << '\n';
      rc = 1;
    }
    if (unreachable) {
      // Give the exporter one more interval to fail, then show what it said.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      for (const auto& d : profiler.get_results().diagnostics) std::cout << "diagnostic: " << d << '\n';
    }
    std::cout << "DONE" << std::endl;
  } // the last interval goes out here
  std::cout << "ENDED" << std::endl;
  return rc;
}
