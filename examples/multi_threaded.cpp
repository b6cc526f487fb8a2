// Multi-threaded usage: five workers, one profiler, per-thread and merged results.
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>
#include <vector>
import stichotrope;

int main() {
  stichotrope::Profiler profiler{"MultiThreadApp"};

  auto process = [](int task_id) {
    double x = 0;
    for (int i = 0; i < 20'000 * (task_id + 1); ++i) x += std::sqrt(static_cast<double>(i));
    return x;
  };
  auto worker_task = profiler.track(0, "worker_task", [&](int task_id) {
    auto s = profiler.block(1, "task_processing");
    return process(task_id);
  });

  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) threads.emplace_back([&, i] { worker_task(i); });
  for (auto& t : threads) t.join(); // exited threads keep their data

  for (const auto& t : profiler.get_all_thread_data())
    std::cout << "Thread " << t.thread_id << (t.exited ? " (exited)" : "") << ": " << t.results.total_hits()
              << " hits, " << stichotrope::format_time_ns(t.results.total_time_ns()) << '\n';
  profiler.print_results();
}
