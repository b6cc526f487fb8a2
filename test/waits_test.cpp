// Waits (docs/coroutines.md, "Waits"): every suspension of a flow is charged
// to the co_await that made it, for every block open in the flow; a block's
// suspended time is the sum of its waits. Ground truth from timers and spins
// the test measures itself. The Asio flavour of these cases is in asio_test.
#define BOOST_TEST_MODULE waits
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <thread>
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

const WaitResults* wait_at_line(const BlockResults& b, std::uint32_t line) {
  for (const auto& w : b.waits)
    if (w.line == line) return &w;
  return nullptr;
}

/// The sum of the top-level waits: what the block's suspended time must equal.
std::uint64_t top_level_wait_ns(const BlockResults& b) {
  std::uint64_t sum = 0;
  for (const auto& w : b.waits)
    if (w.parent_site_id == no_parent) sum += w.total_time_ns;
  return sum;
}

std::uint64_t ns_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

/// Runs `n` copies of `make()` at once and waits for all of them.
template <class Make>
void run_all(int n, Make make) {
  std::atomic<int> done{0};
  for (int i = 0; i < n; ++i) spawn(make(), [&](std::exception_ptr) { done.fetch_add(1, std::memory_order_release); });
  while (done.load(std::memory_order_acquire) < n) std::this_thread::sleep_for(1ms);
}

} // namespace

BOOST_AUTO_TEST_SUITE(task_waits)

BOOST_AUTO_TEST_CASE(each_await_site_of_a_handler_is_counted_and_timed_on_a_pool) {
  thread_pool pool(4);
  timer_service timers(pool);
  Profiler p{"waits"};
  constexpr int requests = 200;
  std::atomic<std::uint64_t> db_ns{0}, cache_ns{0};
  std::atomic<std::uint32_t> db_line{0}, cache_line{0}; // written by every request
  auto handler = [&]() -> task<void> {
    auto b = p.block(0, "handle_request");
    co_await pool.schedule(); // leave the spawning thread: a wait of its own
    auto t0 = std::chrono::steady_clock::now();
    db_line = __LINE__ + 1;
    co_await timers.after(20ms); // the "db"
    db_ns += ns_since(t0);
    t0 = std::chrono::steady_clock::now();
    cache_line = __LINE__ + 1;
    co_await timers.after(5ms); // the "cache"
    cache_ns += ns_since(t0);
  };
  run_all(requests, handler);
  const auto r = p.get_results();
  const auto& b = only(r, 0, "handle_request");
  BOOST_TEST(b.hit_count == std::uint64_t{requests});
  const WaitResults* db = wait_at_line(b, db_line);
  const WaitResults* cache = wait_at_line(b, cache_line);
  BOOST_TEST_REQUIRE(db != nullptr);
  BOOST_TEST_REQUIRE(cache != nullptr);
  BOOST_TEST(db->count == std::uint64_t{requests});
  BOOST_TEST(cache->count == std::uint64_t{requests});
  // Inside the interval the test measured around each await, and within 1 % of it.
  BOOST_TEST(db->total_time_ns <= db_ns.load());
  BOOST_TEST(db->total_time_ns >= db_ns.load() / 100 * 99);
  BOOST_TEST(cache->total_time_ns <= cache_ns.load());
  BOOST_TEST(cache->total_time_ns >= cache_ns.load() / 100 * 99);
  BOOST_TEST(db->min_time_ns >= 20'000'000u);
  BOOST_TEST(cache->min_time_ns >= 5'000'000u);
  BOOST_TEST(db->file.ends_with("waits_test.cpp"));
  BOOST_TEST(db->name == "waits_test.cpp:" + std::to_string(db_line));
  BOOST_TEST(db->column > 0u);
  BOOST_TEST(db->awaited == "awaiter"); // the awaited type, as the compiler names it (a local class here)
  BOOST_TEST(db->percentiles().p50_ns >= 20'000'000u);
  // Three awaits, all at the top: the suspended time is exactly their sum.
  BOOST_TEST(b.waits.size() == 3u);
  BOOST_TEST(b.suspensions == 3u * requests);
  BOOST_TEST(b.suspended_time_ns == top_level_wait_ns(b));
  std::uint64_t count = 0;
  for (const auto& w : b.waits) count += w.count;
  BOOST_TEST(count == b.suspensions);
}

BOOST_AUTO_TEST_CASE(a_wait_in_a_child_task_is_charged_to_its_site_and_to_the_await_of_the_child) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"tree"};
  std::uint32_t child_await_line = 0, timer_line = 0, direct_line = 0;
  auto child = [&]() -> task<int> {
    auto b = p.block(1, "lookup");
    timer_line = __LINE__ + 1;
    co_await timers.after(10ms);
    co_return 1;
  };
  auto parent = [&]() -> task<int> {
    auto b = p.block(0, "handle");
    child_await_line = __LINE__ + 1;
    int v = co_await child();
    direct_line = __LINE__ + 1;
    co_await timers.after(5ms);
    co_return v;
  };
  BOOST_TEST(sync_wait(parent()) == 1);
  const auto r = p.get_results();
  const auto& handle = only(r, 0, "handle");
  const auto& lookup = only(r, 1, "lookup");
  // The child's own block sees the timer as its top-level wait.
  BOOST_TEST_REQUIRE(lookup.waits.size() == 1u);
  BOOST_TEST(lookup.waits[0].line == timer_line);
  BOOST_TEST(lookup.waits[0].parent_site_id == no_parent);
  BOOST_TEST(lookup.suspended_time_ns == lookup.waits[0].total_time_ns);
  // The parent's block sees it under its await of the child.
  const WaitResults* via = wait_at_line(handle, child_await_line);
  const WaitResults* inner = wait_at_line(handle, timer_line);
  const WaitResults* direct = wait_at_line(handle, direct_line);
  BOOST_TEST_REQUIRE(via != nullptr);
  BOOST_TEST_REQUIRE(inner != nullptr);
  BOOST_TEST_REQUIRE(direct != nullptr);
  BOOST_TEST(via->parent_site_id == no_parent);
  BOOST_TEST(inner->parent_site_id == via->site_id);
  BOOST_TEST(direct->parent_site_id == no_parent);
  BOOST_TEST(via->count == 1u);
  BOOST_TEST(via->total_time_ns == inner->total_time_ns);
  BOOST_TEST(inner->total_time_ns == lookup.waits[0].total_time_ns);
  BOOST_TEST(inner->min_time_ns >= 10'000'000u);
  BOOST_TEST(direct->min_time_ns >= 5'000'000u);
  BOOST_TEST(handle.suspended_time_ns == top_level_wait_ns(handle));
  BOOST_TEST(handle.suspended_time_ns == via->total_time_ns + direct->total_time_ns);
}

BOOST_AUTO_TEST_CASE(awaits_that_decline_or_finish_at_once_are_no_waits_and_a_throwing_one_is) {
  thread_pool pool(2);
  Profiler p{"shapes"};
  std::uint32_t throw_line = 0, hop_line = 0;
  auto body = [&]() -> task<void> {
    auto b = p.block(0, "shapes");
    co_await ready_awaiter{1};           // ready: never suspends
    co_await bool_awaiter{&pool, false}; // declines
    co_await handle_awaiter{};           // resumes itself at once (symmetric transfer)
    co_await free_co_await{2};           // operator co_await, ready
    hop_line = __LINE__ + 1;
    co_await bool_awaiter{&pool, true}; // a real suspension
    try {
      throw_line = __LINE__ + 1;
      co_await throwing_awaiter{&pool}; // suspends, then throws from await_resume
    } catch (const std::runtime_error&) {
    }
  };
  sync_wait(body());
  const auto r = p.get_results();
  const auto& b = only(r, 0, "shapes");
  BOOST_TEST(b.suspensions == 2u);
  BOOST_TEST_REQUIRE(b.waits.size() == 2u);
  BOOST_TEST(b.waits[0].line == hop_line);
  BOOST_TEST(b.waits[1].line == throw_line);
  BOOST_TEST(b.waits[0].count == 1u);
  BOOST_TEST(b.waits[1].count == 1u);
  BOOST_TEST(b.suspended_time_ns == top_level_wait_ns(b));
}

BOOST_AUTO_TEST_CASE(every_open_block_of_the_flow_is_charged_and_each_adds_up) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"stack"};
  auto body = [&]() -> task<void> {
    auto outer = p.block(0, "outer");
    co_await timers.after(2ms);
    {
      auto inner = p.block(0, "inner");
      co_await timers.after(3ms);
      co_await timers.after(4ms);
    }
    co_await timers.after(1ms);
  };
  sync_wait(body());
  const auto r = p.get_results();
  const auto& outer = only(r, 0, "outer");
  const auto& inner = only(r, 0, "inner");
  BOOST_TEST(outer.waits.size() == 4u);
  BOOST_TEST(inner.waits.size() == 2u);
  BOOST_TEST(outer.suspended_time_ns == top_level_wait_ns(outer));
  BOOST_TEST(inner.suspended_time_ns == top_level_wait_ns(inner));
  BOOST_TEST(inner.waits[0].total_time_ns == outer.waits[1].total_time_ns); // the same suspension, charged to both
}

BOOST_AUTO_TEST_CASE(children_run_inline_are_the_parents_wait_not_its_active_time) {
  Profiler p{"inline"};
  constexpr int children = 8;
  std::uint64_t own_spin = 0;
  auto child = [&]() -> task<void> {
    busy_for(4ms); // runs inline, inside the parent's run, before it first suspends
    co_return;
  };
  auto parent = [&]() -> task<void> {
    auto b = p.block(0, "parent");
    const auto t0 = std::chrono::steady_clock::now();
    busy_for(1ms);
    own_spin = ns_since(t0);
    for (int i = 0; i < children; ++i) spawn(child(), [](std::exception_ptr) {}); // started inline: flows of their own
    co_return; // closes without ever suspending itself
  };
  sync_wait(parent());
  const auto r = p.get_results();
  const auto& b = only(r, 0, "parent");
  BOOST_TEST(b.suspensions == 0u);
  BOOST_TEST(b.suspended_time_ns >= children * 4'000'000u); // the children's inline runs
  BOOST_TEST(b.active_time_ns() >= own_spin);
  BOOST_TEST(b.active_time_ns() < own_spin + 3'000'000u); // not the children's 32 ms
  BOOST_TEST_REQUIRE(b.waits.size() == 1u);
  BOOST_TEST(b.waits[0].awaited == "(other flows ran inline)");
  BOOST_TEST(b.waits[0].count == std::uint64_t{children});
  BOOST_TEST(b.suspended_time_ns == b.waits[0].total_time_ns);
}

BOOST_AUTO_TEST_CASE(a_fiber_context_waits_where_it_leaves) {
  Profiler p{"fiber"};
  Context fiber;
  std::uint32_t leave_line = 0;
  fiber.enter();
  {
    auto b = p.block(0, "fiber_block");
    leave_line = __LINE__ + 1;
    fiber.leave();
    std::this_thread::sleep_for(3ms);
    fiber.enter();
  }
  fiber.leave();
  const auto r = p.get_results();
  const auto& b = only(r, 0, "fiber_block");
  BOOST_TEST_REQUIRE(b.waits.size() == 1u);
  BOOST_TEST(b.waits[0].line == leave_line);
  BOOST_TEST(b.waits[0].total_time_ns >= 3'000'000u);
  BOOST_TEST(b.suspended_time_ns == b.waits[0].total_time_ns);
}

template <int N>
task<void> await_site_n(thread_pool& pool) {
  co_await pool.schedule(); // one await site per instantiation (its function differs)
}

template <int G, int... N>
task<void> await_group(thread_pool& pool, std::integer_sequence<int, N...>) {
  (co_await await_site_n<G * 100 + N>(pool), ...);
}

template <int... G>
task<void> await_every_site(thread_pool& pool, std::integer_sequence<int, G...>) {
  (co_await await_group<G>(pool, std::make_integer_sequence<int, 100>{}), ...);
}

BOOST_AUTO_TEST_CASE(a_thousand_distinct_await_sites_are_each_counted) {
  thread_pool pool(2);
  Profiler p{"many"};
  auto body = [&]() -> task<void> {
    auto b = p.block(0, "many");
    for (int round = 0; round < 3; ++round) co_await await_every_site(pool, std::make_integer_sequence<int, 10>{});
  };
  sync_wait(body());
  const auto r = p.get_results();
  const auto& b = only(r, 0, "many");
  BOOST_TEST(b.suspensions == 3000u);
  std::size_t leaves = 0;
  for (const auto& w : b.waits)
    if (!w.awaited.empty()) { // the pool's awaiter, under the two awaits of child tasks
      ++leaves;
      BOOST_TEST(w.count == 3u);
    }
  BOOST_TEST(leaves == 1000u);
  BOOST_TEST(b.suspended_time_ns == top_level_wait_ns(b));
}

// When the registry is full, a wait at a new await site is not attributed
// (said in the diagnostics) but still counts in the block's suspended time;
// the next wait there neither crashes nor appears under another site.
BOOST_AUTO_TEST_CASE(waits_at_sites_the_full_registry_refuses_are_said_and_still_suspended_time) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"full"};
  const auto held = p.site(0, "held");
  BOOST_TEST_REQUIRE(held.has_value());
  auto body = [&](bool fill) -> task<void> {
    auto b = p.block(*held);
    co_await timers.after(1ms); // a wait site registered while there is room
    if (fill)
      for (std::uint32_t i = 2; i < max_sites; ++i)
        BOOST_TEST_REQUIRE(p.site(1, "filler_" + std::to_string(i)).has_value());
    for (int i = 0; i < 3; ++i) co_await timers.after(2ms); // refused: the registry is full
  };
  sync_wait(body(true));
  sync_wait(body(false)); // the refused site again, from the record that remembers it
  const auto r = p.get_results();
  const auto& b = only(r, 0, "held");
  BOOST_TEST(b.hit_count == 2u);
  BOOST_TEST(b.suspensions == 8u);
  BOOST_TEST_REQUIRE(b.waits.size() == 1u); // the first await's site only
  BOOST_TEST(b.waits[0].count == 2u);
  BOOST_TEST(b.suspended_time_ns >= b.waits[0].total_time_ns + 6 * 2'000'000u); // the refused waits' time too
  bool said = false;
  for (const auto& d : r.diagnostics)
    said = said || d.find("waits not attributed to their co_await") != std::string::npos;
  BOOST_TEST(said);
}

BOOST_AUTO_TEST_CASE(intervals_threads_and_clear_hold_waits_like_blocks) {
  thread_pool pool(2);
  Profiler p{"intervals"};
  auto body = [&](int hops) -> task<void> {
    auto b = p.block(0, "hops");
    for (int i = 0; i < hops; ++i) co_await pool.schedule();
  };
  sync_wait(body(3));
  const auto first = p.take_results();
  sync_wait(body(5));
  const auto second = p.take_results();
  BOOST_TEST_REQUIRE(only(first, 0, "hops").waits.size() == 1u);
  BOOST_TEST(only(first, 0, "hops").waits[0].count == 3u);
  BOOST_TEST_REQUIRE(only(second, 0, "hops").waits.size() == 1u);
  BOOST_TEST(only(second, 0, "hops").waits[0].count == 5u); // only this interval's
  // Per thread: each wait is in the buffer of the thread that resumed it.
  sync_wait(body(4));
  std::uint64_t per_thread = 0;
  for (const auto& t : p.get_all_thread_data())
    if (const auto* b = t.results.find_block(0, "hops"))
      for (const auto& w : b->waits) per_thread += w.count;
  BOOST_TEST(per_thread == 4u); // a thread's share holds the waits it resumed, wherever the block closed
  BOOST_TEST(only(p.get_results(), 0, "hops").waits[0].count == 3u + 5u + 4u); // since the last clear()
  p.clear();
  BOOST_TEST(only(p.get_results(), 0, "hops").hit_count == 0u);
  BOOST_TEST(only(p.get_results(), 0, "hops").waits.empty());
}

BOOST_AUTO_TEST_CASE(one_await_site_with_waits_of_three_octaves_keeps_its_histogram_across_intervals) {
  // A wait record holds one octave of its histogram inline and the others in
  // pages made when needed; a new interval seals them all. Three rounds, so
  // the third reuses the pages the first sealed.
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"octaves"};
  std::atomic<std::uint32_t> line{0};
  auto body = [&]() -> task<void> {
    auto b = p.block(0, "varied");
    for (std::chrono::microseconds d : {200us, 2000us, 20000us, 200us, 2000us}) {
      line = __LINE__ + 1;
      co_await timers.after(d);
    }
  };
  for (int round = 0; round < 3; ++round) {
    sync_wait(body());
    const auto r = p.take_results();
    const auto& b = only(r, 0, "varied");
    const WaitResults* w = wait_at_line(b, line);
    BOOST_TEST_REQUIRE(w != nullptr);
    BOOST_TEST(w->count == 5u, "round " << round);
    BOOST_TEST(w->histogram.total() == 5u, "round " << round);
    BOOST_TEST(w->min_time_ns >= 200'000u);
    BOOST_TEST(w->max_time_ns >= 20'000'000u);
    const auto q = w->percentiles();
    BOOST_TEST(q.p50_ns >= 2'000'000u / 100 * 95, "round " << round << " p50 " << q.p50_ns); // the middle of 5
    BOOST_TEST(q.p50_ns < 20'000'000u, "round " << round << " p50 " << q.p50_ns);
    BOOST_TEST(b.suspended_time_ns == top_level_wait_ns(b));
  }
}

BOOST_AUTO_TEST_CASE(a_wait_is_in_its_histogram_from_the_moment_it_is_counted) {
  // A record counts its newest wait in the histogram only when the next one
  // comes (so the hot path never waits for the time stamp it just took); a
  // reader must see it all the same: one wait alone, in each of two
  // intervals, and the newest of several.
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"pending"};
  std::atomic<std::uint32_t> line{0};
  auto body = [&](std::chrono::microseconds d, int n) -> task<void> {
    auto b = p.block(0, "one");
    for (int i = 0; i < n; ++i) {
      line = __LINE__ + 1;
      co_await timers.after(d);
    }
  };
  for (auto [d, n] : {std::pair{2000us, 1}, std::pair{5000us, 1}, std::pair{300us, 3}}) {
    sync_wait(body(d, n));
    const auto r = p.take_results();
    const WaitResults* w = wait_at_line(only(r, 0, "one"), line);
    BOOST_TEST_REQUIRE(w != nullptr);
    BOOST_TEST(w->count == std::uint64_t(n));
    BOOST_TEST(w->histogram.total() == std::uint64_t(n), d.count() << " us: " << w->histogram.total());
    const auto q = w->percentiles();
    // The bucket of the wait (its width is an eighth of its octave).
    BOOST_TEST(q.p99_ns >= std::uint64_t(d.count()) * 1000 / 100 * 85, d.count() << " us: p99 " << q.p99_ns);
    BOOST_TEST(q.p50_ns <= w->max_time_ns + w->max_time_ns / 8, d.count() << " us: p50 " << q.p50_ns);
  }
  // The same records read twice (get_results: everything since clear()),
  // the second time with one more wait: the newest wait of the first
  // reading is in both, once.
  sync_wait(body(1000us, 1));
  const auto once = p.get_results();
  sync_wait(body(1000us, 1));
  const auto twice = p.get_results();
  const WaitResults* a = wait_at_line(only(once, 0, "one"), line);
  const WaitResults* b = wait_at_line(only(twice, 0, "one"), line);
  BOOST_TEST_REQUIRE((a != nullptr && b != nullptr));
  BOOST_TEST(a->count == 1u + 1u + 3u + 1u);
  BOOST_TEST(a->histogram.total() == a->count);
  BOOST_TEST(b->count == a->count + 1);
  BOOST_TEST(b->histogram.total() == b->count);
}

// A flow remembers the record its last wait was charged to in its innermost
// block, and charges the next wait there without the key and the table when
// nothing the key is made of changed (context::memo_record). The three cases
// below are each what the memo must not get wrong.

BOOST_AUTO_TEST_CASE(a_flow_that_alternates_threads_charges_each_wait_to_the_resuming_thread) {
  // One await site, resumed by two threads in turn: each wait belongs to the
  // buffer of the thread that resumed it, never to the other's record.
  thread_pool a(1), b(1);
  Profiler p{"memo_threads"};
  constexpr int hops = 200;
  std::atomic<std::uint32_t> line{0};
  sync_wait([&]() -> task<void> {
    auto blk = p.block(0, "hops");
    for (int i = 0; i < hops; ++i) {
      line = __LINE__ + 1;
      co_await (i % 2 == 0 ? a : b).schedule();
    }
  }());
  std::vector<std::uint64_t> counts;
  for (const auto& t : p.get_all_thread_data())
    if (const auto* blk = t.results.find_block(0, "hops"))
      if (const WaitResults* w = wait_at_line(*blk, line)) counts.push_back(w->count);
  BOOST_TEST_REQUIRE(counts.size() == 2u);
  BOOST_TEST(counts[0] == std::uint64_t{hops / 2});
  BOOST_TEST(counts[1] == std::uint64_t{hops / 2});
}

BOOST_AUTO_TEST_CASE(one_await_site_under_blocks_of_two_sites_charges_each_block) {
  // The same co_await, the innermost block alternating between two sites
  // (one thread resumes them all: the memo would be used every time).
  thread_pool pool(1);
  Profiler p{"memo_sites"};
  std::atomic<std::uint32_t> line{0};
  sync_wait([&]() -> task<void> {
    for (int i = 0; i < 100; ++i) {
      auto blk = p.block(0, i % 2 == 0 ? "even" : "odd");
      line = __LINE__ + 1;
      co_await pool.schedule();
    }
  }());
  const auto r = p.get_results();
  for (const char* name : {"even", "odd"}) {
    const WaitResults* w = wait_at_line(only(r, 0, name), line);
    BOOST_TEST_REQUIRE(w != nullptr, name);
    BOOST_TEST(w->count == 50u, name << ": " << w->count);
  }
}

BOOST_AUTO_TEST_CASE(one_await_site_reached_with_and_without_a_join_keeps_both_chains) {
  // step's await is a block's own await when step opens the block, and the
  // end of a chain (the parent's await of step, then step's) when the block
  // was opened by the parent: same await, same block site, two waits (one
  // thread resumes them all: the memo would be used every time).
  thread_pool pool(1);
  Profiler p{"memo_joins"};
  const Site site = *p.site(0, "s"); // one block site for both blocks
  std::atomic<std::uint32_t> step_line{0}, joined_line{0};
  auto step = [&](bool own) -> task<void> {
    Block blk;
    if (own) blk = p.block(site);
    step_line = __LINE__ + 1;
    co_await pool.schedule();
  };
  sync_wait([&]() -> task<void> {
    auto blk = p.block(site);
    for (int i = 0; i < 10; ++i) {
      co_await step(true);
      joined_line = __LINE__ + 1;
      co_await step(false);
    }
  }());
  const auto r = p.get_results();
  const BlockResults& s = only(r, 0, "s");
  std::uint64_t direct = 0, joined = 0;
  std::uint32_t joined_site = no_parent;
  for (const auto& w : s.waits)
    if (w.line == joined_line && w.parent_site_id == no_parent) joined_site = w.site_id, joined = w.count;
  for (const auto& w : s.waits)
    if (w.line == step_line && w.parent_site_id == no_parent) direct += w.count;
  std::uint64_t under_joined = 0;
  for (const auto& w : s.waits)
    if (w.line == step_line && w.parent_site_id == joined_site) under_joined += w.count;
  BOOST_TEST(s.hit_count == 11u);  // the parent's block and step(true)'s ten
  BOOST_TEST(direct == 10u);       // step(true)'s own block
  BOOST_TEST(joined == 10u);       // the parent's block, through step(false)
  BOOST_TEST(under_joined == 10u); // ... whose chain ends at step's await
}

BOOST_AUTO_TEST_CASE(waits_read_while_four_threads_record_them_are_each_counted_once) {
  // take_results() in a loop while the pool's threads charge waits: every
  // wait lands in exactly one interval, with its histogram.
  thread_pool pool(4);
  Profiler p{"racing"};
  constexpr int flows = 8, hops = 2000;
  std::atomic<bool> done{false};
  std::uint64_t counted = 0, histogrammed = 0;
  auto take = [&] {
    const auto r = p.take_results();
    if (const auto* b = r.find_block(0, "hopping"))
      for (const auto& w : b->waits) counted += w.count, histogrammed += w.histogram.total();
  };
  std::thread reader([&] {
    while (!done.load(std::memory_order_acquire)) take();
  });
  run_all(flows, [&]() -> task<void> {
    auto b = p.block(0, "hopping");
    for (int i = 0; i < hops; ++i) co_await pool.schedule();
  });
  done.store(true, std::memory_order_release);
  reader.join();
  take();
  BOOST_TEST(counted == std::uint64_t{flows} * hops); // each hop is one wait
  BOOST_TEST(histogrammed == counted);
}

BOOST_AUTO_TEST_SUITE_END()
