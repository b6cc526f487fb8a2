// Executors and awaiters for the coroutine tests: a round-robin thread pool,
// a timer that resumes on the pool, a manual event, and one awaiter for each
// shape the language allows. Plain C++: included before `import stichotrope;`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace test_async {

/// N workers with a queue each; post() hands coroutines out round robin.
class thread_pool {
public:
  explicit thread_pool(std::size_t n) : queues_(n) {
    for (std::size_t i = 0; i < n; ++i) workers_.emplace_back([this, i] { run(i); });
  }
  ~thread_pool() {
    for (auto& q : queues_) {
      std::lock_guard lock(q.mutex);
      q.stop = true;
      q.ready.notify_all();
    }
    for (auto& w : workers_) w.join();
  }
  void post(std::coroutine_handle<> h) {
    auto& q = queues_[next_.fetch_add(1) % queues_.size()];
    std::lock_guard lock(q.mutex);
    q.items.push_back(h);
    q.ready.notify_one();
  }
  /// `co_await pool.schedule()`: continue on the next worker (void await_suspend).
  auto schedule() {
    struct awaiter {
      thread_pool* pool;
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
    std::deque<std::coroutine_handle<>> items;
    bool stop = false;
  };
  void run(std::size_t i) {
    auto& q = queues_[i];
    for (;;) {
      std::coroutine_handle<> h;
      {
        std::unique_lock lock(q.mutex);
        q.ready.wait(lock, [&] { return q.stop || !q.items.empty(); });
        if (q.items.empty()) return;
        h = q.items.front();
        q.items.pop_front();
      }
      h.resume();
    }
  }
  std::vector<queue> queues_;
  std::vector<std::thread> workers_;
  std::atomic<std::size_t> next_{0};
};

/// `co_await timers.after(d)`: resumes on a pool worker after d (bool await_suspend).
class timer_service {
public:
  explicit timer_service(thread_pool& pool) : pool_(pool), thread_([this] { run(); }) {}
  ~timer_service() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  auto after(std::chrono::nanoseconds d) {
    struct awaiter {
      timer_service* self;
      std::chrono::nanoseconds d;
      bool await_ready() const noexcept { return d.count() <= 0; }
      bool await_suspend(std::coroutine_handle<> h) const {
        std::lock_guard lock(self->mutex_);
        self->due_.emplace(std::chrono::steady_clock::now() + d, h);
        self->wake_.notify_all();
        return true;
      }
      void await_resume() const noexcept {}
    };
    return awaiter{this, d};
  }

private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      if (due_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto when = due_.begin()->first;
      if (std::chrono::steady_clock::now() >= when) {
        const auto h = due_.begin()->second;
        due_.erase(due_.begin());
        pool_.post(h);
        continue;
      }
      wake_.wait_until(lock, when);
    }
  }
  thread_pool& pool_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::multimap<std::chrono::steady_clock::time_point, std::coroutine_handle<>> due_;
  bool stop_ = false;
  std::thread thread_;
};

/// Suspends until set() resumes the waiter on the calling thread.
class manual_event {
public:
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter_ = h; }
  void await_resume() const noexcept {}
  void set() { std::exchange(waiter_, nullptr).resume(); }
  bool waiting() const noexcept { return static_cast<bool>(waiter_); }

private:
  std::coroutine_handle<> waiter_;
};

/// Spins for d: active time the test controls.
inline void busy_for(std::chrono::nanoseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// One awaiter per shape.
struct ready_awaiter { // await_ready short-cut
  int value;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int await_resume() const noexcept { return value; }
};
struct bool_awaiter { // bool await_suspend: false means "did not suspend"
  thread_pool* pool;
  bool suspend;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) const {
    const bool suspending = suspend; // read before handing over: the awaiter may be gone after post()
    if (suspending) pool->post(h);
    return suspending;
  }
  int await_resume() const noexcept { return suspend ? 1 : 0; }
};
struct handle_awaiter { // symmetric transfer: returns the coroutine to run next
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) const noexcept { return h; }
  int await_resume() const noexcept { return 7; }
};
struct member_co_await { // operator co_await member
  thread_pool* pool;
  auto operator co_await() const { return pool->schedule(); }
};
struct free_co_await { // operator co_await free function
  int value;
};
inline ready_awaiter operator co_await(free_co_await f) { return {f.value}; }
struct ref_awaiter { // returns a reference
  int* target;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int& await_resume() const noexcept { return *target; }
};
struct move_only_awaiter { // returns a move-only value
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  std::unique_ptr<int> await_resume() const { return std::make_unique<int>(99); }
};
struct throwing_awaiter { // await_resume throws after a real suspension
  thread_pool* pool;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { pool->post(h); }
  int await_resume() const { throw std::runtime_error("await_resume failed"); }
};

/// A coroutine type with no stichotrope hooks at all: starts eagerly,
/// destroys itself at the end.
struct fire_and_forget {
  struct promise_type {
    fire_and_forget get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

} // namespace test_async
