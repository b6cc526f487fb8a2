// Nesting is memory-safe in any order, and profilers may go in any order
// (docs/coroutines.md): blocks closed out of order, reassigned, emplaced,
// moved to other threads, spanning co_await without a flow; tasks wrapped
// and tracked; profilers destroyed with blocks, awaits and wrappers still
// outstanding. Every case runs under ASan+UBSan and TSan too; each is a test
// case of its own, so a failure in one never hides the others.
#define BOOST_TEST_MODULE nesting
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/async.hpp"
import stichotrope;

using namespace stichotrope;
using namespace std::chrono_literals;
using namespace test_async;

namespace {

const BlockResults& only(const ProfilerResults& r, int track, std::string_view name) {
  const auto* b = r.find_block(track, name);
  BOOST_TEST_REQUIRE(b != nullptr, "no block " << name);
  return *b;
}

/// The single parent of a block (every hit under the same one).
std::uint32_t parent_of(const BlockResults& b) {
  BOOST_TEST_REQUIRE(b.callers.size() == 1u, b.name << " has " << b.callers.size() << " parents");
  return b.callers[0].parent_site_id;
}

bool mentions(const ProfilerResults& r, std::string_view what) {
  return std::any_of(r.diagnostics.begin(), r.diagnostics.end(),
                     [&](const std::string& d) { return d.find(what) != std::string::npos; });
}

} // namespace

BOOST_AUTO_TEST_SUITE(order)

BOOST_AUTO_TEST_CASE(reassigning_an_open_block_closes_it_and_opens_a_sibling) {
  Profiler p{"reassign"};
  {
    auto outer = p.block(0, "outer");
    auto b = p.block(0, "one");
    b = p.block(0, "two"); // "two" opens before "one" closes
    {
      auto c = p.block(0, "child");
    }
  }
  {
    auto after = p.block(0, "after");
  }
  const auto r = p.get_results();
  const auto &outer = only(r, 0, "outer"), &one = only(r, 0, "one"), &two = only(r, 0, "two");
  BOOST_TEST(one.hit_count == 1u);
  BOOST_TEST(two.hit_count == 1u);
  BOOST_TEST(parent_of(one) == outer.site_id);
  BOOST_TEST(parent_of(two) == outer.site_id); // a sibling, not a child of "one", not its own parent
  BOOST_TEST(parent_of(only(r, 0, "child")) == two.site_id);
  BOOST_TEST(parent_of(only(r, 0, "after")) == no_parent);
  // Both are children of "outer" (their time is its child time). They overlap
  // by the moment between opening "two" and closing "one", so under a loaded
  // machine outer's self time may reach 0; it is never negative.
  const std::uint64_t children = one.total_time_ns + two.total_time_ns;
  BOOST_TEST(outer.self_time_ns == (outer.total_time_ns > children ? outer.total_time_ns - children : 0u));
  BOOST_TEST(r.diagnostics.empty());
}

BOOST_AUTO_TEST_CASE(optional_emplace_twice_gives_siblings) {
  Profiler p{"emplace"};
  {
    auto outer = p.block(0, "outer");
    std::optional<Block> b;
    b.emplace(p.block(0, "first"));
    b.emplace(p.block(0, "second"));
    b.reset();
    auto last = p.block(0, "last");
  }
  const auto r = p.get_results();
  const auto& outer = only(r, 0, "outer");
  for (const char* name : {"first", "second", "last"}) {
    BOOST_TEST(only(r, 0, name).hit_count == 1u, name);
    BOOST_TEST(parent_of(only(r, 0, name)) == outer.site_id, name);
  }
}

BOOST_AUTO_TEST_CASE(blocks_closed_in_any_order_keep_the_thread_nesting_intact) {
  Profiler p{"any_order"};
  {
    std::vector<Block> open;
    for (int i = 0; i < 6; ++i) open.push_back(p.block(0, "b" + std::to_string(i)));
    // Close 1, 4, 0, 5, 2, 3: each one out of order at some point.
    for (int i : {1, 4, 0, 5, 2, 3}) open[static_cast<std::size_t>(i)].close();
  }
  {
    auto after = p.block(1, "after");
    auto inside = p.block(1, "inside");
  }
  const auto r = p.get_results();
  for (int i = 0; i < 6; ++i) BOOST_TEST(only(r, 0, "b" + std::to_string(i)).hit_count == 1u);
  BOOST_TEST(parent_of(only(r, 1, "after")) == no_parent);
  BOOST_TEST(parent_of(only(r, 1, "inside")) == only(r, 1, "after").site_id);
}

BOOST_AUTO_TEST_CASE(a_block_moved_to_another_thread_is_counted_with_a_diagnostic) {
  Profiler p{"moved"};
  std::thread t;
  {
    auto outer = p.block(0, "outer");
    auto b = p.block(0, "moved");
    t = std::thread([b = std::move(b)]() mutable {
      busy_for(1ms);
      b.close(); // closed on a thread that never saw it open
    });
    t.join();
  }
  {
    auto after = p.block(0, "after");
  }
  const auto r = p.get_results();
  const auto& moved = only(r, 0, "moved");
  BOOST_TEST_MESSAGE("measured: moved block: " << moved.hit_count << " hit, outside_flow " << moved.outside_flow << ", "
                                               << r.diagnostics.size() << " diagnostic(s)");
  BOOST_TEST(moved.hit_count == 1u);
  BOOST_TEST(moved.outside_flow == 1u);
  BOOST_TEST(moved.total_time_ns >= 1'000'000u);
  BOOST_TEST(parent_of(moved) == no_parent); // not invented
  BOOST_TEST(parent_of(only(r, 0, "after")) == no_parent);
  BOOST_TEST(mentions(r, "block 'moved' at nesting_test.cpp:"));
  BOOST_TEST(std::count_if(r.diagnostics.begin(), r.diagnostics.end(),
                           [](const std::string& d) { return d.find("'moved'") != std::string::npos; }) == 1);
}

BOOST_AUTO_TEST_CASE(a_block_moved_into_a_handler_run_later_on_the_same_thread_nests_normally) {
  Profiler p{"handler"};
  std::vector<std::function<void()>> queue;
  {
    auto b = p.block(0, "request");
    queue.push_back([b = std::make_shared<Block>(std::move(b))] { b->close(); });
  }
  {
    auto other = p.block(0, "other"); // runs while "request" is still open: its child by time
  }
  queue.front()();
  const auto r = p.get_results();
  BOOST_TEST(only(r, 0, "request").hit_count == 1u);
  BOOST_TEST(only(r, 0, "request").outside_flow == 0u);
  BOOST_TEST(parent_of(only(r, 0, "request")) == no_parent);
}

// A context holds its first 8 frames in itself and makes the deeper ones
// when its flow first nests that deep: parents, child time and a block
// closed on another thread must hold on both sides of that boundary.
BOOST_AUTO_TEST_CASE(deep_nesting_keeps_parents_and_child_time_across_the_context_s_own_frames) {
  Profiler p{"deep_sites"};
  constexpr int levels = 20;
  std::vector<std::string> names;
  for (int i = 0; i < levels; ++i) names.push_back("level_" + std::to_string(i));
  std::unique_ptr<Block> moved;
  std::thread elsewhere;
  {
    std::vector<Block> chain;
    for (int i = 0; i < levels; ++i) {
      chain.push_back(p.block(0, names[static_cast<std::size_t>(i)]));
      if (i == 11) moved = std::make_unique<Block>(std::move(chain.back())); // level_11 leaves the flow
    }
    std::this_thread::sleep_for(2ms);
    elsewhere = std::thread([&] { moved->close(); });
    elsewhere.join();
    while (!chain.empty()) chain.pop_back();
  }
  const auto r = p.get_results();
  for (int i = 1; i < levels; ++i) {
    const auto& b = only(r, 0, names[static_cast<std::size_t>(i)]);
    BOOST_TEST(b.hit_count == 1u, b.name);
    if (i == 11) {
      BOOST_TEST(b.outside_flow == 1u); // closed on another thread: no parent known
      continue;
    }
    // level_12 opened above level_11's frame, which is a hole by the time
    // it closes: its parent is the nearest open block, level_10.
    const int parent = i == 12 ? 10 : i - 1;
    BOOST_TEST(parent_of(b) == only(r, 0, names[static_cast<std::size_t>(parent)]).site_id, b.name);
    BOOST_TEST(b.too_deep == 0u);
  }
  // Child time adds up across the boundary: each level's total covers the next one's.
  for (int i = 12; i + 1 < levels; ++i) {
    const auto& outer = only(r, 0, names[static_cast<std::size_t>(i)]);
    const auto& inner = only(r, 0, names[static_cast<std::size_t>(i + 1)]);
    BOOST_TEST(outer.total_time_ns >= inner.total_time_ns);
    BOOST_TEST(outer.self_time_ns == outer.total_time_ns - inner.total_time_ns, outer.name);
  }
  BOOST_TEST(only(r, 0, "level_19").total_time_ns >= 2'000'000u);
}

BOOST_AUTO_TEST_CASE(nesting_deeper_than_the_limit_is_counted_without_a_parent) {
  Profiler p{"deep"};
  {
    std::vector<Block> chain;
    for (int i = 0; i < 40; ++i) chain.push_back(p.block(0, "level"));
    while (!chain.empty()) chain.pop_back();
  }
  const auto r = p.get_results();
  const auto& level = only(r, 0, "level");
  BOOST_TEST(level.hit_count == 40u);
  BOOST_TEST(level.too_deep == 8u);
  BOOST_TEST(mentions(r, "blocks deep in one flow"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(without_a_flow)

BOOST_AUTO_TEST_CASE(a_block_spanning_co_await_in_a_coroutine_without_a_flow_is_counted_and_named) {
  thread_pool pool(1);
  Profiler p{"no_flow"};
  std::atomic<bool> done{false};
  auto body = [&]() -> fire_and_forget {
    auto span = p.block(0, "span");
    co_await pool.schedule(); // resumes on the pool thread: the block cannot follow
    busy_for(1ms);
    span.close();
    done = true;
  };
  {
    auto outer = p.block(1, "outer");
    body();
  }
  while (!done) std::this_thread::yield();
  {
    auto after = p.block(1, "after");
  }
  const auto r = p.get_results();
  const auto& span = only(r, 0, "span");
  BOOST_TEST_MESSAGE("measured: no-flow span: " << span.hit_count << " hit, outside_flow " << span.outside_flow
                                                << ", diagnostic: " << (r.diagnostics.empty() ? "" : r.diagnostics[0]));
  BOOST_TEST(span.hit_count == 1u);
  BOOST_TEST(span.outside_flow == 1u);
  BOOST_TEST(span.suspended_time_ns == 0u); // unknown, not invented
  BOOST_TEST(parent_of(span) == no_parent);
  BOOST_TEST(mentions(r, "block 'span' at nesting_test.cpp:"));
  BOOST_TEST(mentions(r, "without a flow"));
  BOOST_TEST(parent_of(only(r, 1, "after")) == no_parent);
  BOOST_TEST(only(r, 1, "outer").hit_count == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(wrapped_tasks)

task<int> compute_then_wait(Profiler& p, timer_service& timers) {
  auto inner = p.block(1, "inner");
  busy_for(10ms);
  co_await timers.after(20ms);
  co_return 3;
}

/// The record of a task that spun 10 ms then waited 20 ms, run in its
/// caller's flow (inside block "outer"): the spin is active time of the record
/// and of "outer", the wait is suspended time, its block "inner" nests in it.
void check_task_record(const Profiler& p, std::string_view name) {
  const auto r = p.get_results();
  const auto &outer = only(r, 0, "outer"), &rec = only(r, 2, name), &inner = only(r, 1, "inner");
  BOOST_TEST_MESSAGE("measured: " << name << ": active " << rec.active_time_ns() << " ns (spin 10 ms), suspended "
                                  << rec.suspended_time_ns << " ns (timer 20 ms)");
  BOOST_TEST(rec.hit_count == 1u);
  BOOST_TEST(rec.active_time_ns() >= 10'000'000u);  // the child's spin
  BOOST_TEST(rec.active_time_ns() < 60'000'000u);   // wide slack, not its 20 ms wait
  BOOST_TEST(rec.suspended_time_ns >= 20'000'000u); // the child's timer
  BOOST_TEST(rec.suspended_time_ns < 120'000'000u);
  BOOST_TEST(rec.suspensions == 1u);
  BOOST_TEST(parent_of(rec) == outer.site_id);
  BOOST_TEST(parent_of(inner) == rec.site_id);
  BOOST_TEST(outer.active_time_ns() >= 10'000'000u);
  BOOST_TEST(outer.suspended_time_ns >= 20'000'000u);
  BOOST_TEST(rec.self_time_ns + inner.total_time_ns == rec.total_time_ns);
}

BOOST_AUTO_TEST_CASE(wrap_of_a_task_counts_its_computing_as_active_and_nests_its_blocks) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"wrap_task"};
  int value = 0;
  auto parent = [&]() -> task<void> {
    auto outer = p.block(0, "outer");
    value = co_await p.wrap(2, "wrapped", compute_then_wait(p, timers));
  };
  sync_wait(parent());
  BOOST_TEST(value == 3);
  check_task_record(p, "wrapped");
}

BOOST_AUTO_TEST_CASE(track_of_a_task_function_counts_its_computing_as_active) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"track_task"};
  auto tracked = p.track(2, "tracked", [&] { return compute_then_wait(p, timers); });
  int value = 0;
  auto parent = [&]() -> task<void> {
    auto outer = p.block(0, "outer");
    value = co_await tracked();
  };
  sync_wait(parent());
  BOOST_TEST(value == 3);
  check_task_record(p, "tracked");
}

BOOST_AUTO_TEST_CASE(an_await_that_declines_or_resumes_at_once_is_not_a_suspension) {
  thread_pool pool(1);
  Profiler p{"not_suspended"};
  struct resumes_at_once { // void await_suspend that resumes the coroutine before returning
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const { h.resume(); }
    int await_resume() const noexcept { return 5; }
  };
  int sum = 0;
  auto body = [&]() -> task<void> {
    auto b = p.block(0, "span");
    sum += co_await bool_awaiter{&pool, false};
    sum += co_await resumes_at_once{};
    sum += co_await handle_awaiter{};
  };
  sync_wait(body());
  BOOST_TEST(sum == 12);
  const auto r = p.get_results();
  BOOST_TEST(only(r, 0, "span").suspensions == 0u);
  BOOST_TEST(only(r, 0, "span").suspended_time_ns == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(profiler_lifetime)

BOOST_AUTO_TEST_CASE(a_profiler_destroyed_while_another_thread_is_inside_a_block) {
  auto doomed = std::make_unique<Profiler>("doomed");
  Profiler survivor{"survivor"};
  std::atomic<int> stage{0};
  std::thread t([&] {
    {
      auto b = doomed->block(0, "open_while_destroyed");
      stage = 1;
      while (stage.load() != 2) std::this_thread::yield();
    } // closes after its profiler is gone
    for (int i = 0; i < 100; ++i) auto s = survivor.block(0, "after"); // another profiler on the same thread
  });
  while (stage.load() != 1) std::this_thread::yield();
  doomed.reset();
  stage = 2;
  t.join();
  BOOST_TEST(only(survivor.get_results(), 0, "after").hit_count == 100u);
}

BOOST_AUTO_TEST_CASE(a_profiler_destroyed_with_a_timed_await_outstanding) {
  auto doomed = std::make_unique<Profiler>("doomed_await");
  manual_event event;
  bool finished = false;
  auto body = [&]() -> task<void> {
    auto b = doomed->block(0, "outer");
    co_await doomed->wrap(1, "waiting", event);
    finished = true;
  };
  auto t = body();
  auto h = t.release();
  h.resume();
  BOOST_TEST(event.waiting());
  // The lambda's captures outlive the profiler: `doomed` is only read before.
  auto* raw = doomed.release();
  delete raw;
  event.set(); // resumes: the timed await and the block close on a dead profiler
  BOOST_TEST(finished);
  h.destroy();
}

BOOST_AUTO_TEST_CASE(wrappers_and_openers_outlive_their_profiler) {
  std::optional<Profiler> p;
  p.emplace("short_lived");
  auto twice = p->track(0, "twice", [](int x) { return 2 * x; });
  auto site = p->site(1, "opened");
  BOOST_REQUIRE(site);
  auto opener = p->opener(*site);
  p.reset();
  BOOST_TEST(twice(21) == 42); // still calls the function, records nothing
  auto b = opener();
  BOOST_TEST(!b.active());
}

BOOST_AUTO_TEST_CASE(a_thread_local_block_closed_during_thread_teardown) {
  Profiler p{"teardown"};
  std::thread t([&] {
    thread_local std::optional<Block> held; // destroyed after the thread's stichotrope storage
    held.emplace(p.block(0, "held"));
    auto normal = p.block(0, "normal");
  });
  t.join();
  BOOST_TEST(only(p.get_results(), 0, "normal").hit_count == 1u);
}

BOOST_AUTO_TEST_CASE(profilers_destroyed_in_every_order_while_threads_record) {
  for (int round = 0; round < 20; ++round) {
    std::vector<std::unique_ptr<Profiler>> profilers;
    for (int i = 0; i < 3; ++i) profilers.push_back(std::make_unique<Profiler>("p" + std::to_string(i)));
    std::vector<Profiler*> raw;
    for (auto& q : profilers) raw.push_back(q.get());
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    std::vector<std::optional<BlockOpener>> openers(3);
    for (int i = 0; i < 3; ++i) {
      auto s = raw[static_cast<std::size_t>(i)]->site(0, "work");
      BOOST_REQUIRE(s);
      openers[static_cast<std::size_t>(i)] = raw[static_cast<std::size_t>(i)]->opener(*s);
    }
    std::atomic<int> recorded{0};
    for (int t = 0; t < 3; ++t)
      threads.emplace_back([&, t] {
        std::size_t k = static_cast<std::size_t>(t);
        bool first = true;
        while (!stop.load(std::memory_order_relaxed)) {
          {
            auto a = (*openers[k])();
            auto b = (*openers[(k + 1) % 3])();
            auto c = (*openers[(k + 2) % 3])();
          }
          if (std::exchange(first, false)) ++recorded; // every thread recorded into every profiler once
        }
      });
    while (recorded.load() < 3) std::this_thread::yield();
    std::this_thread::sleep_for(1ms);
    // Destroy in an order that depends on the round.
    const std::size_t first = static_cast<std::size_t>(round % 3);
    profilers[first].reset();
    std::this_thread::sleep_for(1ms);
    profilers[(first + 1 + static_cast<std::size_t>(round / 3 % 2)) % 3].reset();
    std::this_thread::sleep_for(1ms);
    stop = true;
    for (auto& th : threads) th.join();
    for (auto& q : profilers)
      if (q) BOOST_TEST(only(q->get_results(), 0, "work").hit_count > 0u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
