// A global profiler destroyed at exit while other threads still record into
// it, open blocks in thread_local and static objects: the process must end
// cleanly (no crash, no sanitizer report). Run by ctest; exit status 0.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

import stichotrope;

namespace {
stichotrope::Profiler global_profiler{"global"};
std::optional<stichotrope::Block>
    static_block; // closed by static destruction, after the profiler? before? either is fine
std::atomic<int> started{0};
} // namespace

int main() {
  static_block.emplace(global_profiler.block(0, "static"));
  for (int i = 0; i < 3; ++i)
    std::thread([] {
      thread_local std::optional<stichotrope::Block> held;
      held.emplace(global_profiler.block(1, "thread_local"));
      ++started;
      for (;;) { // records until the process ends, through the profiler's destruction
        auto b = global_profiler.block(2, "loop");
        auto inner = global_profiler.block(2, "inner");
      }
    }).detach();
  while (started.load() < 3) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto r = global_profiler.get_results();
  const auto* loop = r.find_block(2, "loop");
  if (loop == nullptr || loop->hit_count == 0) {
    std::puts("exit_test: no records");
    return 1;
  }
  std::puts("exit_test: returning while threads record");
  return 0; // static destruction runs with the recorders still going
}
