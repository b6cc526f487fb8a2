// A program that records without pause on three threads (nested blocks on
// tracks 0-2, one on unnamed track 3, a timeline) while test/http/run.py reads and controls it
// through the HTTP endpoint (STICHOTROPE_HTTP, set by run.py). Prints READY,
// then records until stdin says "done" (or ends). "measure" times the main
// thread's own blocks (a block opened and closed, ns each: the fastest of 45
// batches of 20,000), printed as "NS <value>": test/http/slow.py compares
// it with and without load on the endpoint. The fastest batch, because on a
// 2-core machine the recording threads, the server and wrk take turns, and
// a batch the scheduler interrupted measures the turn, not the recorder; a
// recorder held up by the endpoint (a lock, a stall) would be slow in every
// batch.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

int main() {
  // Large bodies mmapped and unmapped when freed, so that the RSS
  // test/http/slow.py samples during its downloads follows the bodies the
  // endpoint holds, not what glibc's arenas keep after a body is freed (its
  // mmap threshold otherwise rises to the size of the last body freed).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  stichotrope::Profiler profiler{"httptest"};
  (void)profiler.set_track_name(0, "Outer");
  (void)profiler.set_track_name(1, "Inner");
  (void)profiler.set_track_name(2, "Leaf \"quoted\"");
  // HTTP_TARGET_EVENTS: events kept per thread (test/http/slow.py asks for
  // large traces).
  const char* events = std::getenv("HTTP_TARGET_EVENTS");
  profiler.start_timeline({events != nullptr ? std::stoull(events) : 4096, stichotrope::overflow_policy::keep_latest});
  for (const auto& d : profiler.get_results().diagnostics) {
    std::cerr << "diagnostic: " << d << '\n';
    return 1; // e.g. the endpoint could not listen
  }
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      stichotrope::set_thread_name("worker-" + std::to_string(t));
      while (!done.load(std::memory_order_relaxed)) {
        auto outer = profiler.block(0, "outer");
        for (int i = 0; i < 4; ++i) {
          auto inner = profiler.block(1, "inner");
          auto leaf = profiler.block(2, "leaf");
        }
        auto unnamed = profiler.block(3, "unnamed"); // a track with no name
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    });
  std::cout << "READY" << std::endl;
  std::string line;
  while (std::getline(std::cin, line) && line != "done") {
    if (line != "measure") continue;
    std::vector<double> batches;
    for (int b = 0; b < 45; ++b) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < 20'000; ++i) auto measured = profiler.block(4, "measured");
      const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
      batches.push_back(took.count() / 20'000);
    }
    std::cout << "NS " << *std::min_element(batches.begin(), batches.end()) << std::endl;
  }
  done = true;
  for (auto& t : threads) t.join();
  return 0;
}
