// A global profiler destroyed at exit while other threads still record into
// it, open blocks in thread_local and static objects, and a second global
// profiler read at exit (a split read) while its threads live: the process
// must end cleanly (no crash, no sanitizer report). Run by ctest; exit
// status 0.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

import stichotrope;

namespace {
// A second global profiler, read at exit during static destruction while the
// threads that recorded into it are still alive (parked): its read is large
// enough to be split among threads (src/core/aggregate.cpp), started after main
// returned. The checker is destroyed first (made last) and reads it.
constexpr int big_threads = 20, big_sites = 3300;
stichotrope::Profiler big_profiler{"big"};
std::atomic<int> big_ready{0};
struct big_checker {
  ~big_checker() {
    if (big_ready.load() != big_threads) { // main never finished its setup: a failure, said so
      std::puts("exit_test: the big profiler's threads never all recorded");
      std::fflush(stdout);
      std::_Exit(1);
    }
    const auto r = big_profiler.get_results();
    const bool split =
        std::thread::hardware_concurrency() < 2 || stichotrope::detail::testing::last_merge_threads() > 1;
    if (r.total_hits() != std::uint64_t{big_threads} * big_sites || !split) {
      std::printf("exit_test: the read at exit found %llu of %llu records (split: %d)\n",
                  static_cast<unsigned long long>(r.total_hits()),
                  static_cast<unsigned long long>(std::uint64_t{big_threads} * big_sites), split ? 1 : 0);
      std::fflush(stdout);
      std::_Exit(1);
    }
    std::puts("exit_test: the split read at exit found every record");
    std::fflush(stdout);
  }
} checker;
stichotrope::Profiler global_profiler{"global"};
std::optional<stichotrope::Block>
    static_block; // closed by static destruction, after the profiler? before? either is fine
std::atomic<int> started{0};
} // namespace

int main() {
  static_assert(std::uint64_t{big_threads} * big_sites >= stichotrope::detail::testing::slots_for_a_parallel_merge());
  {
    std::vector<stichotrope::Site> sites;
    for (int i = 0; i < big_sites; ++i) sites.push_back(*big_profiler.site(0, "s" + std::to_string(i)));
    for (int t = 0; t < big_threads; ++t)
      std::thread([sites] {
        for (const auto& s : sites) big_profiler.record(s, std::chrono::nanoseconds(100));
        ++big_ready;
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1)); // alive, its buffer live, until the end
      }).detach();
    while (big_ready.load() < big_threads) std::this_thread::yield();
  }
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
