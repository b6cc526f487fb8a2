// An allocation failure on the recording path (a thread's buffer, a chunk of
// slots, a histogram, a timeline ring) drops that record and counts it:
// never std::terminate, never a crash. This program replaces the global
// operator new so that the test decides when memory runs out.
#define BOOST_TEST_MODULE alloc_failure
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

import stichotrope;

namespace {
thread_local bool out_of_memory = false; // only this thread's allocations fail
// Or every thread's but those marked: the threads a read starts fail.
std::atomic<bool> unmarked_out_of_memory{false};
thread_local bool marked = false;
std::atomic<int> refused{0};

void* allocate(std::size_t n) noexcept {
  if (out_of_memory || (unmarked_out_of_memory.load(std::memory_order_relaxed) && !marked)) {
    ++refused;
    return nullptr;
  }
  return std::malloc(n == 0 ? 1 : n);
}
} // namespace

void* operator new(std::size_t n) {
  if (void* p = allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace stichotrope;

BOOST_AUTO_TEST_CASE(a_thread_without_memory_drops_its_records_and_counts_them) {
  Profiler p{"oom"};
  auto a = p.site(0, "a");
  auto b = p.site(0, "b");
  BOOST_REQUIRE(a && b);
  std::thread t([&] {
    out_of_memory = true; // the thread has no buffer yet: it cannot get one
    for (int i = 0; i < 10; ++i) {
      auto x = p.block(*a);
      auto y = p.block(*b);
    }
    out_of_memory = false;
    for (int i = 0; i < 5; ++i) auto x = p.block(*a); // memory is back: records land
  });
  t.join();
  const auto r = p.get_results();
  BOOST_TEST(r.dropped_records == 20u);
  BOOST_TEST(r.find_block(0, "a")->hit_count == 5u);
  BOOST_TEST(refused.load() > 0);
  BOOST_TEST(!r.diagnostics.empty());
}

// A flow's first 8 open blocks have frames in its context; deeper ones need
// memory made at the first such nesting. Without it they record as blocks
// too deep to have a frame: counted, no parent, never a crash.
BOOST_AUTO_TEST_CASE(no_memory_for_deeper_frames_records_them_as_too_deep) {
  Profiler p{"oom_deep"};
  std::vector<Site> sites;
  for (int i = 0; i < 10; ++i) sites.push_back(*p.site(0, "level_" + std::to_string(i)));
  std::thread t([&] {
    {
      auto warm = p.block(sites[0]);
    } // the thread's buffer and slots, while memory lasts
    for (int i = 1; i < 10; ++i) {
      auto w = p.block(sites[static_cast<std::size_t>(i)]);
    }
    {
      std::vector<Block> chain;
      chain.reserve(10);
      out_of_memory = true;
      for (int i = 0; i < 10; ++i) chain.push_back(p.block(sites[static_cast<std::size_t>(i)]));
      while (!chain.empty()) chain.pop_back();
      out_of_memory = false;
    }
  });
  t.join();
  const auto r = p.get_results();
  for (int i = 0; i < 10; ++i) {
    const auto* b = r.find_block(0, "level_" + std::to_string(i));
    BOOST_TEST_REQUIRE(b != nullptr);
    BOOST_TEST(b->hit_count == 2u, b->name);
    BOOST_TEST(b->too_deep == (i >= 8 ? 1u : 0u), b->name);
  }
}

BOOST_AUTO_TEST_CASE(no_memory_for_a_new_chunk_or_histogram_drops_only_those_records) {
  Profiler p{"oom_chunk"};
  auto first = p.site(0, "first");
  BOOST_REQUIRE(first);
  // Enough sites that their slots and directories outgrow the thread's
  // arena block (64 KiB): the first record of the later ones needs memory.
  constexpr int far_sites = 2000;
  std::vector<Site> far;
  for (int i = 0; i < far_sites; ++i) far.push_back(*p.site(1, "far" + std::to_string(i)));
  {
    auto warm = p.block(*first); // buffer, first chunk and directory exist
  }
  out_of_memory = true;
  for (const Site& s : far) {
    auto x = p.block(s); // recorded while the arena block lasts, then dropped
  }
  out_of_memory = false;
  const auto after_far = p.get_results();
  std::uint64_t far_hits = 0;
  for (int i = 0; i < far_sites; ++i) far_hits += after_far.find_block(1, "far" + std::to_string(i))->hit_count;
  BOOST_TEST(after_far.dropped_records >= 1u);
  BOOST_TEST(far_hits > 0u);
  BOOST_TEST(far_hits + after_far.dropped_records == std::uint64_t{far_sites}); // each record counted or dropped, once
  BOOST_TEST(after_far.find_block(1, "far" + std::to_string(far_sites - 1))->hit_count == 0u);

  out_of_memory = true;
  {
    auto again = p.block(*first); // no new slot needed: recorded
  }
  p.start_timeline({.events_per_thread = 16});
  {
    auto y = p.block(*first); // needs a timeline ring: the event is dropped, the record stays
  }
  out_of_memory = false;
  p.stop_timeline();
  const auto r = p.get_results();
  BOOST_TEST(r.find_block(0, "first")->hit_count == 3u);
  BOOST_TEST(p.get_timeline().threads.empty());
}

BOOST_AUTO_TEST_CASE(a_read_that_runs_out_of_memory_throws_bad_alloc_and_loses_no_record) {
  // Enough live slots for get_results() to split the read among threads
  // (src/core/aggregate.cpp). First the helpers' allocations fail, then the
  // caller's; a take_results() that fails after beginning its interval
  // leaves that interval for the next call, even as its threads exit.
  Profiler p{"split"};
  constexpr int threads = 20, sites = 3300;
  constexpr std::uint64_t all = std::uint64_t{threads} * sites;
  static_assert(all >= stichotrope::detail::testing::slots_for_a_parallel_merge());
  std::vector<Site> handles;
  for (int i = 0; i < sites; ++i) handles.push_back(*p.site(0, "s" + std::to_string(i)));
  std::atomic<int> ready{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      marked = true;
      for (const Site& s : handles) p.record(s, std::chrono::nanoseconds(100));
      ++ready;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  marked = true;
  while (ready < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (std::thread::hardware_concurrency() > 1) {
    unmarked_out_of_memory = true; // the helper threads of the split read
    BOOST_CHECK_THROW(p.get_results(), std::bad_alloc);
    BOOST_TEST(stichotrope::detail::testing::last_merge_threads() > 1u);
    BOOST_CHECK_THROW(p.take_results(), std::bad_alloc);
    unmarked_out_of_memory = false;
  }
  out_of_memory = true; // the caller: the read on one thread fails the same way
  BOOST_CHECK_THROW(p.take_results(), std::bad_alloc);
  out_of_memory = false;
  BOOST_TEST(p.get_results().total_hits() == all); // the lock was released, the unread interval counts
  release = true;                                  // the threads end while their interval is unread
  for (auto& t : pool) t.join();
  const auto since_start = p.get_results();
  BOOST_TEST(since_start.total_hits() == all);
  BOOST_TEST(since_start.find_block(0, "s3299")->hit_count == std::uint64_t{threads});
  const auto taken = p.take_results(); // the interval the failed calls began to take
  BOOST_TEST(taken.total_hits() == all);
  BOOST_TEST(taken.find_block(0, "s0")->hit_count == std::uint64_t{threads});
  BOOST_TEST(p.take_results().total_hits() == 0u); // nothing counted twice
  BOOST_TEST(p.get_results().total_hits() == all);
  marked = false;
}
