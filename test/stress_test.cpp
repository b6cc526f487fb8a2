// Everything at once for a bounded time (2 s by default; set
// STICHOTROPE_STRESS_SECONDS for a longer run): threads and hopping
// coroutines recording nested blocks and timed awaits, while other threads
// toggle every switch, read results and timelines, clear, export, create and
// destroy profilers, and start and end threads. Every snapshot is checked for
// impossible statistics; a watchdog turns a deadlock into a failure message
// instead of a hung CI; afterwards, counts are checked exactly.
#define BOOST_TEST_MODULE stress
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/async.hpp"
import stichotrope;

using namespace stichotrope;
using namespace std::chrono_literals;

namespace {

double stress_seconds() {
  if (const char* s = std::getenv("STICHOTROPE_STRESS_SECONDS")) return std::atof(s);
  return 2.0;
}

/// Fails the process with a message if the test has not finished in time.
class watchdog {
public:
  explicit watchdog(std::chrono::seconds limit)
      : thread_([this, limit] {
          const auto end = std::chrono::steady_clock::now() + limit;
          while (!done_.load()) {
            if (std::chrono::steady_clock::now() > end) {
              std::fprintf(stderr, "stress: no progress for %llds: deadlock suspected (watchdog)\n",
                           static_cast<long long>(limit.count()));
              std::_Exit(3);
            }
            std::this_thread::sleep_for(50ms);
          }
        }) {}
  ~watchdog() {
    done_ = true;
    thread_.join();
  }

private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// Violations seen by the actors (Boost.Test's macros are for the main thread).
std::atomic<std::uint64_t> violations{0};
std::mutex first_mutex;
std::string first_violation;

void violated(const std::string& what) {
  if (violations.fetch_add(1) == 0) {
    std::lock_guard lock(first_mutex);
    first_violation = what;
  }
}
#define STRESS_CHECK(cond) ((cond) ? void() : violated(#cond))

/// Checks what no snapshot may ever show.
void check_snapshot(const ProfilerResults& r) {
  for (const auto& t : r.tracks)
    for (const auto& b : t.blocks) {
      STRESS_CHECK(b.suspended_time_ns <= b.total_time_ns);
      STRESS_CHECK(b.active_time_ns() + b.suspended_time_ns == b.total_time_ns);
      STRESS_CHECK(b.self_time_ns <= b.total_time_ns);
      if (b.hit_count == 0) continue;
      STRESS_CHECK(b.min_time_ns <= b.max_time_ns);
      STRESS_CHECK(static_cast<double>(b.min_time_ns) <= b.avg_time_ns() + 1e-6);
      STRESS_CHECK(b.avg_time_ns() <= static_cast<double>(b.max_time_ns) + 1e-6);
      const auto p = b.percentiles();
      STRESS_CHECK(p.p50_ns <= p.p99_ns || b.histogram.total() == 0);
      STRESS_CHECK(p.p999_ns <= b.max_time_ns);
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(everything_at_once_then_exact_counts) {
  const double seconds = stress_seconds();
  watchdog dog(std::chrono::seconds(static_cast<long long>(seconds) + 120));
  auto profiler = std::make_unique<Profiler>("stress");
  Profiler& p = *profiler;
  p.start_timeline({256, overflow_policy::keep_latest});
  test_async::thread_pool pool(2);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> snapshots{0}, spawned{0}, finished{0};
  std::vector<std::thread> actors;

  for (int w = 0; w < 2; ++w) // recorders: nested blocks, manual records
    actors.emplace_back([&, w] {
      std::mt19937 rng(static_cast<unsigned>(w));
      while (!stop.load(std::memory_order_relaxed)) {
        auto outer = p.block(static_cast<int>(rng() % 4), "outer");
        auto inner = p.block(static_cast<int>(rng() % 4), "inner");
        if (rng() % 3 == 0) p.record(5, "manual", std::chrono::nanoseconds(rng() % 1000));
      }
    });
  // A coroutine lambda's frame refers to its closure: the closure must outlive
  // every coroutine it starts, so it lives here, not in the actor thread.
  auto job = [&]() -> task<void> {
    auto b = p.block(6, "coro");
    co_await p.wrap(6, "hop", pool.schedule());
    auto after = p.block(6, "after");
  };
  actors.emplace_back([&] { // coroutines hopping threads, with timed awaits
    while (!stop.load(std::memory_order_relaxed)) {
      if (spawned.load() - finished.load() > 64) {
        std::this_thread::yield();
        continue;
      }
      ++spawned;
      spawn(job(), [&](std::exception_ptr) { ++finished; });
    }
  });
  actors.emplace_back([&] { // switches
    std::mt19937 rng(7);
    while (!stop.load(std::memory_order_relaxed)) {
      set_global_enabled(rng() % 8 != 0);
      (rng() % 4 == 0) ? p.stop() : p.start();
      (void)p.set_track_enabled(static_cast<int>(rng() % 7), rng() % 2 == 0);
      (void)p.set_track_name(static_cast<int>(rng() % 7), "name " + std::to_string(rng() % 10));
      std::this_thread::sleep_for(100us);
    }
  });
  actors.emplace_back([&] { // readers
    while (!stop.load(std::memory_order_relaxed)) {
      check_snapshot(p.get_results());
      for (const auto& t : p.get_all_thread_data()) check_snapshot(t.results);
      const auto tl = p.get_timeline();
      for (const auto& th : tl.threads)
        for (const auto& e : th.events) STRESS_CHECK(e.start_ns <= e.end_ns);
      ++snapshots;
    }
  });
  actors.emplace_back([&] { // clear and export
    const auto dir = std::filesystem::temp_directory_path() / ("stichotrope-stress-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    while (!stop.load(std::memory_order_relaxed)) {
      p.clear();
      STRESS_CHECK(p.export_csv(dir / "r.csv").has_value());
      STRESS_CHECK(p.export_json(dir / "r.json").has_value());
      STRESS_CHECK(export_chrome_trace(p.get_timeline(), dir / "r.trace.json").has_value());
      std::this_thread::sleep_for(5ms);
    }
    std::filesystem::remove_all(dir);
  });
  actors.emplace_back([&] { // profilers and threads that come and go
    while (!stop.load(std::memory_order_relaxed)) {
      auto temporary = std::make_unique<Profiler>("temporary");
      std::atomic<bool> recorded{false};
      std::thread t([&] {
        temporary->block(0, "t").close();
        recorded = true;
        recorded.notify_all();
        p.block(1, "short_lived").close(); // then records into the long-lived one
      });
      recorded.wait(false);
      temporary.reset(); // destroyed while its thread still lives
      t.join();
    }
  });

  while (std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  stop = true;
  for (auto& a : actors) a.join();
  while (finished.load() != spawned.load()) std::this_thread::sleep_for(1ms);
  BOOST_TEST_MESSAGE(snapshots.load() << " snapshots, " << spawned.load() << " coroutines in " << seconds << " s");
  BOOST_TEST(snapshots.load() > 0u);
  BOOST_TEST(violations.load() == 0u, "first violation: " << first_violation);

  // Exactness: after a clear, every record is counted once.
  set_global_enabled(true);
  p.start();
  for (int t = 0; t < 8; ++t) (void)p.set_track_enabled(t, true);
  p.clear();
  constexpr int threads = 4, per_thread = 5'000;
  std::vector<std::thread> exact;
  for (int t = 0; t < threads; ++t)
    exact.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) p.record(7, "exact", std::chrono::nanoseconds(3));
    });
  for (auto& t : exact) t.join();
  const auto r = p.get_results();
  const auto* b = r.find_block(7, "exact");
  BOOST_REQUIRE(b != nullptr);
  BOOST_TEST(b->hit_count == std::uint64_t{threads} * per_thread);
  BOOST_TEST(b->total_time_ns == 3u * threads * per_thread);
  BOOST_TEST(b->histogram.total() == std::uint64_t{threads} * per_thread);
  check_snapshot(r);
  BOOST_TEST(violations.load() == 0u, "first violation: " << first_violation);
}
