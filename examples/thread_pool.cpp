// Coroutines on a small round-robin thread pool, without Asio: each job
// hops threads at every co_await, and stichotrope follows it. Blocks that
// span the hops are recorded once, by the thread that closes them, with
// their wall time split into active and suspended time.
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>
import stichotrope;

namespace {

class round_robin_pool {
public:
  explicit round_robin_pool(unsigned n) : queues_(n) {
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, i] { run(queues_[i]); });
  }
  ~round_robin_pool() {
    for (auto& q : queues_) {
      std::lock_guard lock(q.mutex);
      q.stop = true;
      q.ready.notify_one();
    }
    for (auto& t : threads_) t.join();
  }
  /// `co_await pool.hop()`: continue on the next worker.
  auto hop() {
    struct awaiter {
      round_robin_pool* pool;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<> h) const { pool->post(h); }
      void await_resume() const noexcept {}
    };
    return awaiter{this};
  }

private:
  struct queue {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<std::coroutine_handle<>> jobs;
    bool stop = false;
  };
  void post(std::coroutine_handle<> h) {
    auto& q = queues_[next_++ % queues_.size()];
    std::lock_guard lock(q.mutex);
    q.jobs.push_back(h);
    q.ready.notify_one();
  }
  static void run(queue& q) {
    for (;;) {
      std::unique_lock lock(q.mutex);
      q.ready.wait(lock, [&] { return q.stop || !q.jobs.empty(); });
      if (q.jobs.empty()) return;
      auto h = q.jobs.front();
      q.jobs.pop_front();
      lock.unlock();
      h.resume();
    }
  }
  std::vector<queue> queues_;
  std::vector<std::thread> threads_;
  std::atomic<unsigned> next_{0};
};

double crunch(int n) {
  double x = 0;
  for (int i = 1; i < n; ++i) x += std::sqrt(static_cast<double>(i));
  return x;
}

} // namespace

int main() {
  stichotrope::Profiler profiler{"ThreadPool"};
  (void)profiler.set_track_name(0, "Jobs");
  (void)profiler.set_track_name(1, "Stages");
  round_robin_pool pool(4);

  auto stage = [&](int id) -> stichotrope::task<double> {
    auto s = profiler.block(1, "stage");
    const double part = crunch(20'000 + id % 7 * 1000);
    co_await profiler.wrap(1, "hop", pool.hop()); // a timed await: resumes on another worker
    co_return part + crunch(10'000);
  };
  auto job = [&](int id) -> stichotrope::task<void> {
    auto j = profiler.block(0, "job"); // spans every hop below
    double total = 0;
    for (int k = 0; k < 3; ++k) total += co_await stage(id + k);
    if (total < 0) std::cout << "impossible\n";
  };

  constexpr int jobs = 200;
  std::atomic<int> left{jobs};
  for (int i = 0; i < jobs; ++i)
    stichotrope::spawn(job(i), [&](std::exception_ptr) {
      if (left.fetch_sub(1) == 1) left.notify_all();
    });
  for (int l = left.load(); l != 0; l = left.load()) left.wait(l);

  profiler.print_results();
  const auto r = profiler.get_results();
  if (const auto* j = r.find_block(0, "job"))
    std::cout << "job: " << j->hit_count << " hits, " << j->migrations << " resumed on another thread, active "
              << stichotrope::format_time_ns(j->active_time_ns()) << " + suspended "
              << stichotrope::format_time_ns(j->suspended_time_ns) << " = wall "
              << stichotrope::format_time_ns(j->total_time_ns) << '\n';
}
