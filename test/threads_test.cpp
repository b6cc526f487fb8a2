// Thread safety and lifetimes (docs/architecture.md, "Invariants"): exact counts with
// many threads, exited threads kept, snapshots and clear() while recording,
// profilers destroyed while their threads live on.
#define BOOST_TEST_MODULE threads
#include <boost/test/unit_test.hpp>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

using namespace stichotrope;
using std::chrono::nanoseconds;

namespace {
constexpr int thread_count = 8;
// The sanitizers are about 10x slower; the races they look for are the same.
#if defined(__has_feature)
constexpr bool under_sanitizer = __has_feature(thread_sanitizer) || __has_feature(address_sanitizer);
#else
constexpr bool under_sanitizer = false;
#endif
constexpr int per_thread = under_sanitizer ? 5'000 : 50'000;
} // namespace

BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(counts_are_exact_with_eight_threads_on_shared_and_own_sites) {
  Profiler profiler{"mt"};
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t)
    threads.emplace_back([&, t] {
      const std::string own = "own_" + std::to_string(t);
      for (int i = 0; i < per_thread; ++i) {
        auto shared = profiler.block(0, "shared");
        auto mine = profiler.block(1, own);
      }
    });
  for (auto& th : threads) th.join(); // every thread has exited: its data must stay
  const auto r = profiler.get_results();
  BOOST_TEST(r.find_block(0, "shared")->hit_count == std::uint64_t{thread_count} * per_thread);
  for (int t = 0; t < thread_count; ++t)
    BOOST_TEST(r.find_block(1, "own_" + std::to_string(t))->hit_count == std::uint64_t{per_thread});
  BOOST_TEST(r.find_block(0, "shared")->histogram.total() == std::uint64_t{thread_count} * per_thread);
  const auto per = profiler.get_all_thread_data();
  BOOST_TEST(per.size() == std::size_t{thread_count});
  for (const auto& t : per) {
    BOOST_TEST(t.exited);
    BOOST_TEST(t.results.find_block(0, "shared")->hit_count == std::uint64_t{per_thread});
  }
}

BOOST_AUTO_TEST_CASE(thread_names_are_reported) {
  Profiler profiler{"names"};
  std::thread([&] {
    pthread_setname_np(pthread_self(), "worker-7");
    auto s = profiler.block(0, "x");
  }).join();
  const auto per = profiler.get_all_thread_data();
  BOOST_REQUIRE(per.size() == 1u);
  BOOST_TEST(per[0].thread_name == "worker-7");
  BOOST_TEST(per[0].thread_id != 0u);
}

BOOST_AUTO_TEST_CASE(snapshots_while_recording_are_consistent_and_monotonic) {
  Profiler profiler{"snap"};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) profiler.record(0, "fixed", nanoseconds(7));
    });
  std::uint64_t last = 0;
  int snapshots = 0;
  while (!done.load()) {
    const auto r = profiler.get_results();
    if (const auto* b = r.find_block(0, "fixed")) {
      // A record is never seen half-written: total is exactly 7 x hits.
      BOOST_TEST_REQUIRE(b->total_time_ns == 7 * b->hit_count);
      BOOST_TEST_REQUIRE(b->hit_count >= last);
      if (b->hit_count > 0) BOOST_TEST_REQUIRE((b->min_time_ns == 7u && b->max_time_ns == 7u));
      last = b->hit_count;
      done = b->hit_count == 4u * per_thread;
    }
    ++snapshots;
  }
  for (auto& th : threads) th.join();
  BOOST_TEST(profiler.get_results().find_block(0, "fixed")->hit_count == 4u * per_thread);
  BOOST_TEST_MESSAGE(snapshots << " snapshots taken while recording");
}

BOOST_AUTO_TEST_CASE(clear_while_recording_never_blocks_and_loses_nothing_after_it) {
  Profiler profiler{"clear"};
  constexpr int workers = 4;
  std::barrier sync(workers + 1);
  std::atomic<bool> stop{false};
  auto record = [&] { profiler.record(0, "r", nanoseconds(3)); }; // one call site
  std::vector<std::thread> threads;
  for (int t = 0; t < workers; ++t)
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) record();
      sync.arrive_and_wait(); // main clears once more
      sync.arrive_and_wait();
      for (int i = 0; i < 1000; ++i) record();
    });
  for (int i = 0; i < 200; ++i) {
    profiler.clear();
    const auto r = profiler.get_results();
    if (const auto* b = r.find_block(0, "r")) BOOST_TEST_REQUIRE(b->total_time_ns == 3 * b->hit_count);
  }
  stop = true;
  sync.arrive_and_wait();
  profiler.clear();
  sync.arrive_and_wait();
  for (auto& th : threads) th.join();
  const auto results = profiler.get_results();
  const auto* b = results.find_block(0, "r");
  BOOST_TEST(b->hit_count == workers * 1000u);
  BOOST_TEST(b->total_time_ns == workers * 3000u);
}

BOOST_AUTO_TEST_CASE(threads_exiting_while_results_are_read) {
  Profiler profiler{"exit"};
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      const auto r = profiler.get_results();
      (void)profiler.get_all_thread_data();
      if (const auto* b = r.find_block(0, "short")) BOOST_TEST_REQUIRE(b->hit_count <= 64u * 100);
    }
  });
  for (int round = 0; round < 16; ++round) {
    std::vector<std::thread> batch;
    for (int t = 0; t < 4; ++t)
      batch.emplace_back([&] {
        for (int i = 0; i < 100; ++i) auto s = profiler.block(0, "short");
      });
    for (auto& th : batch) th.join();
  }
  done = true;
  reader.join();
  BOOST_TEST(profiler.get_results().find_block(0, "short")->hit_count == 64u * 100);
}

BOOST_AUTO_TEST_CASE(destroying_a_profiler_while_its_threads_live_is_safe) {
  auto doomed = std::make_unique<Profiler>("doomed");
  Profiler survivor{"survivor"};
  std::barrier sync(2);
  std::thread worker([&] {
    for (int i = 0; i < 100; ++i) auto s = doomed->block(0, "x");
    sync.arrive_and_wait(); // main destroys `doomed`
    sync.arrive_and_wait();
    for (int i = 0; i < 100; ++i) auto s = survivor.block(0, "y");
    auto again = std::make_unique<Profiler>("reborn"); // may reuse the freed address
    for (int i = 0; i < 10; ++i) auto s = again->block(0, "z");
    BOOST_TEST(again->get_results().find_block(0, "z")->hit_count == 10u);
    BOOST_TEST(again->get_results().find_block(0, "x") == nullptr);
  });
  sync.arrive_and_wait();
  doomed.reset();
  sync.arrive_and_wait();
  worker.join(); // the thread's exit hands data only to the profiler still alive
  BOOST_TEST(survivor.get_results().find_block(0, "y")->hit_count == 100u);
}

BOOST_AUTO_TEST_CASE(two_profilers_never_share_call_sites) {
  Profiler a{"a"}, b{"b"};
  auto work = [](Profiler& p) { auto s = p.block(0, "same_site"); };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        work(a);
        work(b);
        work(b);
      }
    });
  for (auto& th : threads) th.join();
  const auto ra = a.get_results(), rb = b.get_results();
  BOOST_TEST(ra.find_track(0)->blocks.size() == 1u);
  BOOST_TEST(rb.find_track(0)->blocks.size() == 1u);
  BOOST_TEST(ra.find_block(0, "same_site")->hit_count == 4000u);
  BOOST_TEST(rb.find_block(0, "same_site")->hit_count == 8000u);
}

BOOST_AUTO_TEST_CASE(switches_toggled_from_other_threads_are_safe) {
  Profiler profiler{"toggle"};
  {
    auto first = profiler.block(0, "maybe");
  } // one hit while the track is surely on
  std::atomic<bool> stop{false};
  std::thread toggler([&] {
    for (int i = 0; !stop.load(); ++i) {
      (void)profiler.set_track_enabled(0, i % 2 == 0);
      (i % 3 == 0) ? profiler.stop() : profiler.start();
      (void)profiler.set_track_name(0, "name " + std::to_string(i % 5));
    }
  });
  for (int i = 0; i < per_thread; ++i) auto s = profiler.block(0, "maybe");
  stop = true;
  toggler.join();
  const auto results = profiler.get_results();
  const auto* b = results.find_block(0, "maybe");
  BOOST_TEST_REQUIRE(b != nullptr);
  BOOST_TEST(b->hit_count >= 1u);
  BOOST_TEST(b->hit_count <= std::uint64_t{per_thread} + 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bounds)

BOOST_AUTO_TEST_CASE(a_hundred_thousand_call_sites_register_record_and_then_refuse_cleanly) {
  Profiler profiler{"many_sites"};
  std::vector<Site> sites;
  sites.reserve(100'000);
  for (int i = 0; i < 100'000; ++i) {
    auto s = profiler.site(i % max_tracks, "site_" + std::to_string(i));
    BOOST_TEST_REQUIRE(s.has_value());
    sites.push_back(*s);
  }
  for (const auto& s : sites) profiler.block(s).close();
  const auto r = profiler.get_results();
  BOOST_TEST(r.total_hits() == 100'000u);
  // Up to the limit, then an error value, never a crash.
  for (std::uint32_t i = 100'000; i < max_sites; ++i)
    BOOST_TEST_REQUIRE(profiler.site(0, "more_" + std::to_string(i)).has_value());
  const auto refused = profiler.site(0, "one_too_many");
  BOOST_REQUIRE(!refused.has_value());
  BOOST_TEST((refused.error().code == errc::too_many_sites));
  {
    auto b = profiler.block(0, "also_too_many");
    BOOST_TEST(!b.active());
  }
  BOOST_TEST(!profiler.get_results().diagnostics.empty());
}

BOOST_AUTO_TEST_CASE(thousands_of_short_lived_threads_keep_memory_bounded_and_counts_exact) {
  constexpr int count = under_sanitizer ? 2'000 : 10'000; // thread creation is slow under the sanitizers
  Profiler profiler{"short_lived"};
  profiler.start_timeline({8, overflow_policy::keep_first});
  auto work = [&] {
    for (int i = 0; i < 3; ++i) profiler.block(0, "short").close();
  };
  for (int i = 0; i < count; i += 4) {
    std::thread a(work), b(work), c(work), d(work);
    a.join(), b.join(), c.join(), d.join();
  }
  const auto r = profiler.get_results();
  BOOST_TEST(r.find_block(0, "short")->hit_count == 3u * count); // nothing lost
  const auto per = profiler.get_all_thread_data();
  // One site a thread: the most recent threads one by one (one entry each),
  // then one folded entry.
  constexpr int kept = std::min<int>(count, stichotrope::detail::testing::exited_entries_kept());
  BOOST_TEST(per.size() == std::size_t{kept} + (kept < count ? 1 : 0));
  if (kept < count) BOOST_TEST(per.back().thread_name == "(" + std::to_string(count - kept) + " older exited threads)");
  std::uint64_t hits = 0;
  for (const auto& t : per) hits += t.results.total_hits();
  BOOST_TEST(hits == 3u * count);
  const auto timeline = profiler.get_timeline();
  BOOST_TEST(timeline.threads.size() == stichotrope::detail::testing::exited_timelines_kept() + 1);
  std::uint64_t events = 0;
  for (const auto& t : timeline.threads) events += t.events.size();
  BOOST_TEST(events + timeline.dropped() == 3u * count); // kept or counted, never silently lost
}

BOOST_AUTO_TEST_CASE(set_thread_name_names_the_thread_in_per_thread_data_timelines_and_after_exit) {
  Profiler profiler{"names"};
  profiler.start_timeline({64, overflow_policy::keep_latest});
  std::atomic<int> stage{0};
  std::thread io([&] {
    profiler.block(0, "before").close(); // the buffer exists before the name is set
    stichotrope::set_thread_name("io-1");
    profiler.block(0, "after").close();
    ++stage;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  auto live = profiler.get_all_thread_data();
  auto named = std::find_if(live.begin(), live.end(), [](const ThreadResults& t) { return t.thread_name == "io-1"; });
  BOOST_REQUIRE(named != live.end());
  BOOST_TEST(named->results.total_hits() == 2u); // the data recorded before the name carries it too
  BOOST_TEST(!named->exited);
  char os_name[32] = {};
  pthread_getname_np(io.native_handle(), os_name, sizeof os_name);
  BOOST_TEST(std::string(os_name) == "io-1");
  const auto timeline = profiler.get_timeline();
  BOOST_TEST(std::any_of(timeline.threads.begin(), timeline.threads.end(),
                         [](const ThreadTimeline& t) { return t.thread_name == "io-1"; }));
  ++stage;
  io.join();
  const auto after = profiler.get_all_thread_data();
  BOOST_TEST(std::any_of(after.begin(), after.end(),
                         [](const ThreadResults& t) { return t.thread_name == "io-1" && t.exited; }));
  std::thread([&] {
    stichotrope::set_thread_name(std::string(300, 'x')); // kept to 127 bytes, the OS name to 15
    BOOST_TEST(stichotrope::thread_name() == std::string(127, 'x'));
    stichotrope::set_thread_name("");
    BOOST_TEST(stichotrope::thread_name() == std::string(15, 'x')); // back to the OS name
  }).join();
}

BOOST_AUTO_TEST_SUITE_END()

// Many threads meeting 1,500 named call sites for the first time at once
// (the profiler's lock-free site table grows from 256 slots as they do), then
// alternating among them: every name is one site, every hit is counted.
BOOST_AUTO_TEST_CASE(threads_racing_to_register_the_same_named_sites_agree) {
  Profiler p{"site_race"};
  constexpr int names = 1500, threads = 6, rounds = under_sanitizer ? 2 : 10;
  std::vector<std::string> name(names);
  for (int i = 0; i < names; ++i) name[static_cast<std::size_t>(i)] = "named_" + std::to_string(i);
  std::barrier start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < rounds; ++r)
        for (int i = 0; i < names; ++i) { // each thread in its own order
          const auto k = static_cast<std::size_t>((i * 7 + t * 311) % names);
          auto b = p.block(3, std::string_view(name[k]));
        }
    });
  for (auto& th : pool) th.join();
  const auto r = p.get_results();
  const TrackResults* track = nullptr;
  for (const auto& tr : r.tracks)
    if (tr.track_idx == 3) track = &tr;
  BOOST_REQUIRE(track != nullptr);
  BOOST_TEST(track->blocks.size() == static_cast<std::size_t>(names)); // one site per name, never two
  for (const auto& b : track->blocks) BOOST_TEST(b.hit_count == static_cast<std::uint64_t>(threads * rounds));
}
