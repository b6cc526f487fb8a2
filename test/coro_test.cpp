// Coroutine awareness (docs/architecture.md, "Invariants"; docs/coroutines.md): blocks and timed awaits
// that follow coroutines across threads, with ground truth the test controls.
#define BOOST_TEST_MODULE coro
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "support/async.hpp"
import stichotrope;

using namespace stichotrope;
using namespace std::chrono_literals;
using namespace test_async;

namespace {

constexpr int coroutine_count = 4000; // 4 pool threads, 4 hops each: also fast under the sanitizers

const BlockResults& only(const ProfilerResults& r, int track, std::string_view name) {
  const auto* b = r.find_block(track, name);
  BOOST_TEST_REQUIRE(b != nullptr, "no block " << name);
  return *b;
}

std::uint64_t hits_on_thread(const Profiler& p, std::uint64_t tid, int track, std::string_view name) {
  for (const auto& t : p.get_all_thread_data())
    if (t.thread_id == tid)
      if (const auto* b = t.results.find_block(track, name)) return b->hit_count;
  return 0;
}

const std::uint64_t main_tid = static_cast<std::uint64_t>(::gettid());

} // namespace

BOOST_AUTO_TEST_SUITE(spanning_blocks)

BOOST_AUTO_TEST_CASE(block_spanning_a_timer_that_completes_on_another_thread) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"coro"};
  auto body = [&]() -> task<void> {
    auto span = p.block(0, "span");
    co_await timers.after(50ms); // resumes on a pool thread
    busy_for(5ms);
  };
  sync_wait(body());
  const auto r = p.get_results();
  const auto& b = only(r, 0, "span");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.suspensions == 1u);
  BOOST_TEST(b.migrations == 1u);
  // Ground truth: the timer never fires early and the spin runs at least 5 ms;
  // upper bounds leave 150 ms / 100 ms for a loaded shared machine.
  BOOST_TEST(b.total_time_ns >= 55'000'000u);
  BOOST_TEST(b.suspended_time_ns >= 50'000'000u);
  BOOST_TEST(b.suspended_time_ns < 200'000'000u);
  BOOST_TEST(b.active_time_ns() >= 5'000'000u);
  BOOST_TEST(b.active_time_ns() < 105'000'000u);
  BOOST_TEST(b.active_time_ns() + b.suspended_time_ns == b.total_time_ns);
  // Recorded once, by the resuming thread: no thread-local address from before
  // the suspension was reused after it.
  BOOST_TEST(hits_on_thread(p, main_tid, 0, "span") == 0u);
}

BOOST_AUTO_TEST_CASE(blocks_closed_after_a_hop_land_in_the_resuming_threads_buffer) {
  thread_pool pool(2);
  Profiler p{"hop"};
  std::atomic<std::uint64_t> closer{0};
  auto body = [&]() -> task<void> {
    {
      auto b = p.block(0, "crosses");
      co_await pool.schedule();
      closer = static_cast<std::uint64_t>(::gettid());
    }
    auto after = p.block(0, "after_hop");
  };
  sync_wait(body());
  BOOST_TEST(closer.load() != main_tid);
  BOOST_TEST(hits_on_thread(p, closer.load(), 0, "crosses") == 1u);
  BOOST_TEST(hits_on_thread(p, main_tid, 0, "crosses") == 0u);
  BOOST_TEST(hits_on_thread(p, closer.load(), 0, "after_hop") == 1u);
}

BOOST_AUTO_TEST_CASE(interleaved_coroutines_on_one_thread_do_not_nest) {
  Profiler p{"interleave"};
  manual_event ea, eb;
  auto a = [&]() -> task<void> {
    auto outer = p.block(0, "a_outer");
    co_await ea;
  };
  auto b = [&]() -> task<void> {
    auto block = p.block(1, "b_block");
    co_await eb;
    auto inner = p.block(1, "b_inner");
  };
  std::atomic<int> done{0};
  spawn(a(), [&](std::exception_ptr) { ++done; }); // runs to `co_await ea` on this thread
  spawn(b(), [&](std::exception_ptr) { ++done; }); // then b runs on the same thread
  {
    auto plain = p.block(2, "thread_block");
  } // the thread's own flow, while both wait
  ea.set();
  eb.set();
  BOOST_TEST(done.load() == 2);
  const auto r = p.get_results();
  const auto& ao = only(r, 0, "a_outer");
  const auto& bb = only(r, 1, "b_block");
  const auto& bi = only(r, 1, "b_inner");
  const auto& tb = only(r, 2, "thread_block");
  BOOST_REQUIRE(bb.callers.size() == 1u);
  BOOST_TEST(bb.callers[0].parent_site_id == no_parent); // not a child of a_outer
  BOOST_REQUIRE(tb.callers.size() == 1u);
  BOOST_TEST(tb.callers[0].parent_site_id == no_parent);
  BOOST_REQUIRE(bi.callers.size() == 1u);
  BOOST_TEST(bi.callers[0].parent_site_id == bb.site_id);
  BOOST_TEST(ao.self_time_ns == ao.total_time_ns); // no children
  BOOST_TEST(bb.self_time_ns + bi.total_time_ns == bb.total_time_ns);
  BOOST_TEST(ao.suspensions == 1u);
  BOOST_TEST(ao.migrations == 0u);
  BOOST_TEST(ao.suspended_time_ns > 0u);
  BOOST_TEST(ao.suspended_time_ns <= ao.total_time_ns);
}

BOOST_AUTO_TEST_CASE(a_task_chain_shares_one_flow_across_threads) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"chain"};
  auto level3 = [&]() -> task<int> {
    auto b = p.block(2, "level3");
    co_await timers.after(10ms);
    co_return 3;
  };
  auto level2 = [&]() -> task<int> {
    auto b = p.block(1, "level2");
    co_return 2 + co_await level3();
  };
  auto level1 = [&]() -> task<int> {
    auto b = p.block(0, "level1");
    co_return 1 + co_await level2();
  };
  BOOST_TEST(sync_wait(level1()) == 6);
  const auto r = p.get_results();
  const auto& l1 = only(r, 0, "level1");
  const auto& l2 = only(r, 1, "level2");
  const auto& l3 = only(r, 2, "level3");
  BOOST_REQUIRE(l2.callers.size() == 1u);
  BOOST_TEST(l2.callers[0].parent_site_id == l1.site_id);
  BOOST_REQUIRE(l3.callers.size() == 1u);
  BOOST_TEST(l3.callers[0].parent_site_id == l2.site_id);
  for (const auto* b : {&l1, &l2, &l3}) {
    BOOST_TEST(b->suspensions == 1u); // the whole chain was suspended on the timer
    BOOST_TEST(b->migrations == 1u);
    BOOST_TEST(b->suspended_time_ns >= 10'000'000u);
  }
  BOOST_TEST(l1.self_time_ns + l2.total_time_ns == l1.total_time_ns);
}

BOOST_AUTO_TEST_CASE(a_coroutine_destroyed_while_suspended_counts_as_abandoned) {
  Profiler p{"abandon"};
  manual_event never;
  auto body = [&]() -> task<void> {
    auto b = p.block(0, "doomed");
    co_await p.wrap(0, "waiting", never);
  };
  {
    auto t = body();
    auto h = t.release();
    h.resume(); // runs until it waits on `never`
    BOOST_TEST(never.waiting());
    h.destroy();
  }
  {
    auto after = p.block(1, "after");
  } // the thread's flow is intact
  const auto r = p.get_results();
  BOOST_TEST(only(r, 0, "doomed").hit_count == 0u);
  BOOST_TEST(only(r, 0, "doomed").abandoned == 1u);
  BOOST_TEST(only(r, 0, "waiting").hit_count == 0u);
  BOOST_TEST(only(r, 0, "waiting").abandoned == 1u);
  BOOST_TEST(only(r, 1, "after").callers.at(0).parent_site_id == no_parent);
}

BOOST_AUTO_TEST_CASE(a_chain_destroyed_from_its_root_abandons_every_open_block) {
  Profiler p{"abandon_chain"};
  manual_event never;
  auto child = [&]() -> task<void> {
    auto b = p.block(1, "child");
    co_await never;
  };
  auto parent = [&]() -> task<void> {
    auto b = p.block(0, "parent");
    co_await child();
  };
  auto h = parent().release();
  h.resume();
  h.destroy(); // destroys the child's frame too
  const auto r = p.get_results();
  BOOST_TEST(only(r, 0, "parent").abandoned == 1u);
  BOOST_TEST(only(r, 1, "child").abandoned == 1u);
  BOOST_TEST(r.total_hits() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(wrapped_awaits)

BOOST_AUTO_TEST_CASE(every_awaiter_shape_keeps_its_result) {
  thread_pool pool(2);
  Profiler p{"shapes"};
  int target = 1;
  auto body = [&]() -> task<void> {
    BOOST_TEST(co_await p.wrap(0, "ready", ready_awaiter{5}) == 5);
    BOOST_TEST(co_await p.wrap(0, "bool_false", bool_awaiter{&pool, false}) == 0);
    BOOST_TEST(co_await p.wrap(0, "bool_true", bool_awaiter{&pool, true}) == 1);
    co_await p.wrap(0, "void", pool.schedule());
    BOOST_TEST(co_await p.wrap(0, "handle", handle_awaiter{}) == 7);
    co_await p.wrap(0, "member", member_co_await{&pool});
    BOOST_TEST(co_await p.wrap(0, "free", free_co_await{3}) == 3);
    int& ref = co_await p.wrap(0, "ref", ref_awaiter{&target});
    ref = 42;
    std::unique_ptr<int> owned = co_await p.wrap(0, "move_only", move_only_awaiter{});
    BOOST_TEST(*owned == 99);
    ready_awaiter lvalue{8};
    BOOST_TEST(co_await p.wrap(0, "lvalue", lvalue) == 8);
  };
  sync_wait(body());
  BOOST_TEST(target == 42);
  const auto r = p.get_results();
  for (const char* name :
       {"ready", "bool_false", "bool_true", "void", "handle", "member", "free", "ref", "move_only", "lvalue"})
    BOOST_TEST(only(r, 0, name).hit_count == 1u, name);
  // A symmetric transfer to the awaiting coroutine itself goes on at once: no suspension.
  for (const char* name : {"ready", "bool_false", "handle", "free", "ref", "move_only", "lvalue"})
    BOOST_TEST(only(r, 0, name).suspensions == 0u, name);
  for (const char* name : {"bool_true", "void", "member"}) BOOST_TEST(only(r, 0, name).suspensions == 1u, name);
  BOOST_TEST(only(r, 0, "void").suspended_time_ns <= only(r, 0, "void").total_time_ns);
}

BOOST_AUTO_TEST_CASE(exceptions_from_await_resume_pass_through_and_are_recorded) {
  thread_pool pool(1);
  Profiler p{"throws"};
  auto body = [&]() -> task<int> {
    auto b = p.block(0, "around");
    try {
      co_await p.wrap(0, "throwing", throwing_awaiter{&pool});
    } catch (const std::runtime_error& e) {
      BOOST_TEST(std::string(e.what()) == "await_resume failed");
      co_return 1;
    }
    co_return 0;
  };
  BOOST_TEST(sync_wait(body()) == 1);
  const auto r = p.get_results();
  BOOST_TEST(only(r, 0, "throwing").hit_count == 1u);
  BOOST_TEST(only(r, 0, "throwing").migrations == 1u);
  BOOST_TEST(only(r, 0, "throwing").callers.at(0).parent_site_id == only(r, 0, "around").site_id);
  BOOST_TEST(only(r, 0, "around").hit_count == 1u);
}

BOOST_AUTO_TEST_CASE(a_task_exception_reaches_its_awaiter) {
  Profiler p{"task_throw"};
  auto failing = [&]() -> task<int> {
    auto b = p.block(0, "failing");
    throw std::logic_error("inner");
    co_return 0;
  };
  auto outer = [&]() -> task<int> { co_return co_await failing(); };
  BOOST_CHECK_THROW(sync_wait(outer()), std::logic_error);
  BOOST_TEST(only(p.get_results(), 0, "failing").hit_count == 1u);
}

BOOST_AUTO_TEST_CASE(wrap_works_in_coroutines_without_any_hooks) {
  thread_pool pool(2);
  Profiler p{"plain"};
  std::atomic<bool> done{false};
  auto plain = [&]() -> fire_and_forget {
    co_await p.wrap(0, "plain_await", pool.schedule()); // hops to a pool thread
    done = true;
    done.notify_all();
  };
  plain();
  {
    auto b = p.block(1, "meanwhile");
  } // the thread's nesting was left intact
  done.wait(false);
  const auto r = p.get_results();
  const auto& w = only(r, 0, "plain_await");
  BOOST_TEST(w.hit_count == 1u);
  BOOST_TEST(w.migrations == 1u);
  BOOST_TEST(only(r, 1, "meanwhile").callers.at(0).parent_site_id == no_parent);
}

BOOST_AUTO_TEST_CASE(track_times_a_coroutine_function_until_it_completes) {
  thread_pool pool(2);
  timer_service timers(pool);
  Profiler p{"track_coro"};
  auto op = p.track(0, "op", [&](int x) -> task<int> {
    co_await timers.after(20ms);
    co_return x * 2;
  });
  auto body = [&]() -> task<int> { co_return co_await op(21); };
  BOOST_TEST(sync_wait(body()) == 42);
  const auto results = p.get_results();
  const auto& b = only(results, 0, "op");
  BOOST_TEST(b.hit_count == 1u);
  BOOST_TEST(b.total_time_ns >= 20'000'000u); // the whole operation, not just until its first suspension
  BOOST_TEST(b.suspended_time_ns >= 20'000'000u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(contexts)

BOOST_AUTO_TEST_CASE(a_fiber_context_carries_its_blocks_between_threads) {
  Profiler p{"fiber"};
  Context fiber;
  std::unique_ptr<Block> open;
  {
    ContextScope run(fiber); // the fiber runs on this thread...
    open = std::make_unique<Block>(p.block(0, "fiber_block"));
  } // ...and is switched out
  BOOST_TEST(fiber.suspended());
  {
    auto b = p.block(1, "thread_block");
  } // not a child of the fiber's block
  std::this_thread::sleep_for(10ms);
  std::thread([&] {
    fiber.enter(); // resumed on another thread
    auto child = p.block(0, "fiber_child");
    child.close();
    open.reset();
    fiber.finish();
  }).join();
  const auto r = p.get_results();
  const auto& fb = only(r, 0, "fiber_block");
  BOOST_TEST(fb.suspensions == 1u);
  BOOST_TEST(fb.migrations == 1u);
  BOOST_TEST(fb.suspended_time_ns >= 10'000'000u);
  BOOST_TEST(only(r, 1, "thread_block").callers.at(0).parent_site_id == no_parent);
  BOOST_TEST(only(r, 0, "fiber_child").callers.at(0).parent_site_id == fb.site_id);
  BOOST_TEST(fiber.migrations() == 1u);
}

BOOST_AUTO_TEST_CASE(thousands_of_coroutines_hopping_threads_count_exactly) {
  thread_pool pool(4);
  Profiler p{"many"};
  std::atomic<int> remaining{coroutine_count};
  auto job = [&]() -> task<void> {
    for (int k = 0; k < 3; ++k) {
      auto b = p.block(0, "hop");
      co_await pool.schedule();
    }
    co_await p.wrap(1, "scheduled", pool.schedule());
  };
  for (int i = 0; i < coroutine_count; ++i)
    spawn(job(), [&](std::exception_ptr) {
      if (remaining.fetch_sub(1) == 1) remaining.notify_all();
    });
  for (int left = remaining.load(); left != 0; left = remaining.load()) remaining.wait(left);
  const auto r = p.get_results();
  const auto& hop = only(r, 0, "hop");
  BOOST_TEST(hop.hit_count == 3u * coroutine_count);
  BOOST_TEST(hop.suspensions == 3u * coroutine_count);
  BOOST_TEST(hop.migrations <= hop.hit_count);
  BOOST_TEST(hop.suspended_time_ns <= hop.total_time_ns);
  BOOST_TEST(only(r, 1, "scheduled").hit_count == std::uint64_t{coroutine_count});
  BOOST_TEST(only(r, 0, "hop").abandoned == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
