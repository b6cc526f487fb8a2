// Every row of the seed API table, in its C++ form.
#define BOOST_TEST_MODULE api
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>
import stichotrope;

using stichotrope::Profiler;

namespace {
int process_data(int x) { return x * 2; }
std::uint64_t hits(const Profiler& p, int track, std::string_view name) {
  const auto r = p.get_results();
  const auto* b = r.find_block(track, name);
  return b == nullptr ? 0 : b->hit_count;
}
std::uint64_t total_hits(const Profiler& p) { // registered sites are listed with 0 hits
  std::uint64_t n = 0;
  for (const auto& t : p.get_results().tracks)
    for (const auto& b : t.blocks) n += b.hit_count;
  return n;
}
} // namespace

BOOST_AUTO_TEST_SUITE(seed_api)

BOOST_AUTO_TEST_CASE(profiler_has_a_name_and_starts_started) {
  Profiler profiler{"MyApp"};
  BOOST_TEST(profiler.name() == "MyApp");
  BOOST_TEST(profiler.is_started());
  Profiler unnamed;
  BOOST_TEST(unnamed.name() == "Profiler");
}

BOOST_AUTO_TEST_CASE(block_records_once_per_scope_with_its_call_site) {
  Profiler profiler{"p"};
  const int line = __LINE__ + 2;
  for (int i = 0; i < 3; ++i) {
    auto scope = profiler.block(1, "database_query");
  }
  const auto r = profiler.get_results();
  const auto* b = r.find_block(1, "database_query");
  BOOST_REQUIRE(b != nullptr);
  BOOST_TEST(b->hit_count == 3u);
  BOOST_TEST(b->line == static_cast<unsigned>(line));
  BOOST_TEST(b->file.ends_with("api_test.cpp"));
  BOOST_TEST(b->function.find("block_records_once") != std::string::npos);
  BOOST_TEST(b->min_time_ns <= b->max_time_ns);
  BOOST_TEST(b->total_time_ns >= b->max_time_ns);
}

BOOST_AUTO_TEST_CASE(same_name_at_two_call_sites_gives_two_blocks) {
  Profiler profiler{"p"};
  {
    auto a = profiler.block(0, "step");
  }
  {
    auto b = profiler.block(0, "step");
  }
  const auto r = profiler.get_results();
  BOOST_REQUIRE(r.find_track(0) != nullptr);
  BOOST_TEST(r.find_track(0)->blocks.size() == 2u);
}

BOOST_AUTO_TEST_CASE(names_are_literals_arrays_or_strings_and_a_reused_buffer_is_a_new_name) {
  Profiler profiler{"p"};
  char buffer[16] = "alpha";
  std::string owned = "gamma";
  auto record = [&] {
    auto a = profiler.block(0, buffer);  // modifiable array: compared by content
    auto b = profiler.block(1, owned);   // string: compared by content
    auto c = profiler.block(2, "delta"); // literal: found by address
  };
  record();
  std::strcpy(buffer, "beta");
  owned = "omega";
  record();
  BOOST_TEST(hits(profiler, 0, "alpha") == 1u);
  BOOST_TEST(hits(profiler, 0, "beta") == 1u);
  BOOST_TEST(hits(profiler, 1, "gamma") == 1u);
  BOOST_TEST(hits(profiler, 1, "omega") == 1u);
  BOOST_TEST(hits(profiler, 2, "delta") == 2u);
}

BOOST_AUTO_TEST_CASE(block_is_move_only_and_records_once_after_a_move) {
  static_assert(!std::is_copy_constructible_v<stichotrope::Block>);
  static_assert(std::is_nothrow_move_constructible_v<stichotrope::Block>);
  Profiler profiler{"p"};
  {
    auto make = [&] { return profiler.block(0, "moved"); };
    stichotrope::Block outer = make();
    stichotrope::Block other = std::move(outer);
    BOOST_TEST(!outer.active());
    BOOST_TEST(other.active());
    {
      auto child = profiler.block(0, "child");
    }
  }
  const auto r = profiler.get_results();
  BOOST_TEST(r.find_block(0, "moved")->hit_count == 1u);
  // The child found its parent through the moved-to object.
  const auto* child = r.find_block(0, "child");
  BOOST_REQUIRE(child->callers.size() == 1u);
  BOOST_TEST(child->callers[0].parent_site_id == r.find_block(0, "moved")->site_id);
}

BOOST_AUTO_TEST_CASE(close_ends_a_block_early) {
  Profiler profiler{"p"};
  auto b = profiler.block(0, "early");
  b.close();
  BOOST_TEST(!b.active());
  BOOST_TEST(hits(profiler, 0, "early") == 1u);
}

BOOST_AUTO_TEST_CASE(track_keeps_signature_and_return_value) {
  Profiler profiler{"p"};
  auto f = profiler.track(0, "process_data", process_data);
  BOOST_TEST(f(21) == 42);
  BOOST_TEST(f(1) == 2);
  BOOST_TEST(hits(profiler, 0, "process_data") == 2u);
}

BOOST_AUTO_TEST_CASE(track_returns_references_and_takes_move_only_arguments) {
  Profiler profiler{"p"};
  int value = 1;
  auto ref = profiler.track(0, "ref", [&]() -> int& { return value; });
  ref() = 7;
  BOOST_TEST(value == 7);
  static_assert(std::is_same_v<decltype(ref()), int&>);

  auto sink = profiler.track(0, "sink", [](std::unique_ptr<int> p) { return *p + 1; });
  BOOST_TEST(sink(std::make_unique<int>(41)) == 42);

  auto make = profiler.track(0, "make", [] { return std::make_unique<int>(5); });
  std::unique_ptr<int> made = make();
  BOOST_TEST(*made == 5);
  BOOST_TEST(hits(profiler, 0, "ref") == 1u);
  BOOST_TEST(hits(profiler, 0, "sink") == 1u);
}

BOOST_AUTO_TEST_CASE(track_passes_exceptions_through_and_still_records) {
  Profiler profiler{"p"};
  auto thrower = profiler.track(0, "thrower", [](int x) -> int {
    if (x > 0) throw std::runtime_error("boom");
    return x;
  });
  BOOST_CHECK_THROW(thrower(1), std::runtime_error);
  BOOST_TEST(thrower(0) == 0);
  BOOST_TEST(hits(profiler, 0, "thrower") == 2u);
}

BOOST_AUTO_TEST_CASE(track_names_default_to_something_meaningful) {
  Profiler profiler{"p"};
  auto by_value = profiler.track<&process_data>(0);
  BOOST_TEST(by_value(2) == 4);
  auto lambda = profiler.track(1, [] { return 3; });
  BOOST_TEST(lambda() == 3);
  auto pointer = profiler.track(2, &process_data);
  BOOST_TEST(pointer(3) == 6);
  const auto r = profiler.get_results();
  BOOST_TEST(r.find_block(0, "process_data") != nullptr);
  BOOST_REQUIRE(r.find_track(1) != nullptr);
  BOOST_TEST(r.find_track(1)->blocks[0].name.starts_with("(lambda at api_test.cpp:"));
  BOOST_TEST(r.find_track(2)->blocks[0].name.starts_with("function@api_test.cpp:"));
}

BOOST_AUTO_TEST_CASE(stop_and_start_pause_and_resume_recording) {
  Profiler profiler{"p"};
  profiler.stop();
  BOOST_TEST(!profiler.is_started());
  {
    auto s = profiler.block(0, "paused");
  }
  profiler.start();
  BOOST_TEST(profiler.is_started());
  {
    auto s = profiler.block(0, "paused");
  }
  BOOST_TEST(hits(profiler, 0, "paused") == 1u);
}

BOOST_AUTO_TEST_CASE(track_enable_is_profiler_wide) {
  Profiler profiler{"p"};
  BOOST_TEST(profiler.is_track_enabled(0));
  BOOST_TEST(profiler.set_track_enabled(0, false).has_value());
  BOOST_TEST(!profiler.is_track_enabled(0));
  // Another thread sees the same switch (the seed's was per-thread).
  std::thread([&] {
    BOOST_TEST(!profiler.is_track_enabled(0));
    auto s = profiler.block(0, "off");
  }).join();
  {
    auto s = profiler.block(0, "off");
  }
  {
    auto s = profiler.block(1, "on");
  }
  BOOST_TEST(hits(profiler, 0, "off") == 0u);
  BOOST_TEST(hits(profiler, 1, "on") == 1u);
  BOOST_TEST(profiler.set_track_enabled(0, true).has_value());
  {
    auto s = profiler.block(0, "off");
  }
  BOOST_TEST(hits(profiler, 0, "off") == 1u);
  BOOST_TEST(profiler.get_results().find_track(0)->enabled);
}

BOOST_AUTO_TEST_CASE(track_names_are_profiler_wide_and_reported) {
  Profiler profiler{"p"};
  BOOST_TEST(!profiler.track_name(2).has_value());
  BOOST_TEST(profiler.set_track_name(2, "Database").has_value());
  std::thread([&] { BOOST_TEST(profiler.track_name(2).value() == "Database"); }).join();
  {
    auto s = profiler.block(2, "q");
  }
  const auto r = profiler.get_results();
  BOOST_TEST(r.find_track(2)->track_name.value() == "Database");
}

BOOST_AUTO_TEST_CASE(global_switch_affects_every_profiler) {
  Profiler a{"a"}, b{"b"};
  BOOST_TEST(stichotrope::is_global_enabled());
  stichotrope::set_global_enabled(false);
  BOOST_TEST(!stichotrope::is_global_enabled());
  {
    auto s = a.block(0, "x");
  }
  {
    auto s = b.block(0, "x");
  }
  stichotrope::set_global_enabled(true);
  {
    auto s = a.block(0, "x");
  }
  BOOST_TEST(hits(a, 0, "x") == 1u);
  BOOST_TEST(hits(b, 0, "x") == 0u);
}

// Each of the three switches (global, profiler, track) against every call
// form: off, nothing records, not even a first use of a site; on again,
// each form records once. The switches are folded into one flag per track,
// so this is also the test that the folding follows every change.
BOOST_AUTO_TEST_CASE(every_switch_turns_every_call_form_off_and_on) {
  enum class how { global, stopped, track };
  for (how h : {how::global, how::stopped, how::track}) {
    Profiler p{"p"};
    const auto site = p.site(0, "site");
    BOOST_REQUIRE(site.has_value());
    auto tracked = p.track(0, "tracked", [](int x) { return x + 1; });
    const auto opener = p.opener(*site);
    const std::string name = "string";
    auto every_form = [&] {
      {
        auto b = p.block(0, "literal");
      }
      {
        auto b = p.block(0, name);
      }
      {
        auto b = p.block(*site);
      }
      {
        auto b = opener();
      }
      BOOST_TEST(tracked(1) == 2);
      p.record(0, "recorded", std::chrono::microseconds(5));
      p.record(*site, std::chrono::microseconds(5));
    };
    auto turn = [&](bool on) {
      if (h == how::global) stichotrope::set_global_enabled(on);
      if (h == how::stopped) on ? p.start() : p.stop();
      if (h == how::track) BOOST_TEST(p.set_track_enabled(0, on).has_value());
    };
    turn(false);
    every_form();
    std::thread(every_form).join();
    BOOST_TEST(total_hits(p) == 0u);
    turn(true);
    every_form();
    BOOST_TEST(hits(p, 0, "literal") == 1u);
    BOOST_TEST(hits(p, 0, "string") == 1u);
    BOOST_TEST(hits(p, 0, "site") == 3u); // block, opener, record
    BOOST_TEST(hits(p, 0, "tracked") == 1u);
    BOOST_TEST(hits(p, 0, "recorded") == 1u);
    turn(false); // and off again, after the sites are known
    every_form();
    BOOST_TEST(hits(p, 0, "literal") == 1u);
    BOOST_TEST(hits(p, 0, "site") == 3u);
    BOOST_TEST(hits(p, 0, "tracked") == 1u);
    turn(true);
  }
}

BOOST_AUTO_TEST_CASE(the_global_switch_reaches_profilers_made_while_it_is_off) {
  stichotrope::set_global_enabled(false);
  auto made_off = std::make_unique<Profiler>("made_off");
  {
    auto b = made_off->block(0, "x");
  }
  (void)made_off->block(-1, "bad track"); // off: not even a diagnostic
  BOOST_TEST(total_hits(*made_off) == 0u);
  BOOST_TEST(made_off->get_results().diagnostics.empty());
  // Switching it on opens this profiler, stopped or not, but never a destroyed one.
  auto stopped = std::make_unique<Profiler>("stopped");
  stopped->stop();
  auto gone = std::make_unique<Profiler>("gone");
  auto outliving = gone->track(0, "outliving", [] {});
  gone.reset();
  stichotrope::set_global_enabled(true);
  {
    auto b = made_off->block(0, "x");
  }
  (void)made_off->block(-1, "bad track");
  BOOST_TEST(hits(*made_off, 0, "x") == 1u);
  BOOST_TEST(made_off->get_results().diagnostics.size() == 1u);
  {
    auto b = stopped->block(0, "x");
  }
  BOOST_TEST(total_hits(*stopped) == 0u);
  outliving(); // records nothing, touches nothing freed
  stopped->start();
  {
    auto b = stopped->block(0, "x");
  }
  BOOST_TEST(hits(*stopped, 0, "x") == 1u);
}

BOOST_AUTO_TEST_CASE(a_site_of_another_profiler_is_inert_in_every_form) {
  Profiler a{"a"}, b{"b"};
  const auto of_a = a.site(0, "of_a");
  BOOST_REQUIRE(of_a.has_value());
  (void)b.site(0, "of_b"); // b has a site of the same id and track
  {
    auto blk = b.block(*of_a);
  }
  {
    auto blk = b.opener(*of_a)();
  }
  b.record(*of_a, std::chrono::microseconds(5));
  {
    auto blk = b.block(stichotrope::Site{}); // an invalid Site
  }
  BOOST_TEST(total_hits(b) == 0u);
  BOOST_TEST(total_hits(a) == 0u);
  {
    auto blk = a.block(*of_a);
  }
  BOOST_TEST(hits(a, 0, "of_a") == 1u);
}

BOOST_AUTO_TEST_CASE(clear_drops_all_data) {
  Profiler profiler{"p"};
  auto work = [&] { auto s = profiler.block(0, "x"); }; // one call site
  work();
  std::thread(work).join();
  BOOST_TEST(hits(profiler, 0, "x") == 2u);
  profiler.clear();
  BOOST_TEST(hits(profiler, 0, "x") == 0u);
  BOOST_TEST(profiler.get_results().find_block(0, "x") != nullptr); // the site stays registered
  BOOST_TEST(profiler.get_all_thread_data().empty());
  work();
  BOOST_TEST(hits(profiler, 0, "x") == 1u);
}

BOOST_AUTO_TEST_CASE(get_all_thread_data_has_one_entry_per_thread) {
  Profiler profiler{"p"};
  {
    auto s = profiler.block(0, "main");
  }
  std::thread([&] {
    for (int i = 0; i < 5; ++i) auto s = profiler.block(0, "worker");
  }).join();
  const auto threads = profiler.get_all_thread_data();
  BOOST_REQUIRE(threads.size() == 2u);
  const auto& live = threads[0].exited ? threads[1] : threads[0];
  const auto& gone = threads[0].exited ? threads[0] : threads[1];
  BOOST_TEST(!live.exited);
  BOOST_TEST(gone.exited);
  BOOST_TEST(live.results.find_block(0, "main")->hit_count == 1u);
  BOOST_TEST(gone.results.find_block(0, "worker")->hit_count == 5u);
  BOOST_TEST(gone.results.find_block(0, "main") == nullptr);
  BOOST_TEST(live.thread_id != gone.thread_id);
}

BOOST_AUTO_TEST_CASE(repr_reports_name_tracks_threads_and_state) {
  Profiler profiler{"MyApp"};
  {
    auto s = profiler.block(0, "a");
  }
  {
    auto s = profiler.block(3, "b");
  }
  profiler.stop();
  std::ostringstream os;
  os << profiler;
  BOOST_TEST(os.str() == "Profiler(name='MyApp', tracks=2, threads=1, started=False)");
  BOOST_TEST(profiler.to_string() == os.str());
}

BOOST_AUTO_TEST_CASE(exports_to_streams_match_the_free_writers) {
  Profiler profiler{"p"};
  profiler.record(0, "fixed", std::chrono::nanoseconds(1500));
  const auto r = profiler.get_results();
  std::ostringstream csv, json, table;
  profiler.export_csv(csv);
  profiler.export_json(json, 4);
  profiler.print_results(table);
  BOOST_TEST(csv.str() == stichotrope::to_csv(r));
  BOOST_TEST(json.str() == stichotrope::to_json(r, 4));
  BOOST_TEST(table.str() == stichotrope::to_table(r));
  BOOST_TEST(csv.str().find("0,fixed,1,1500,1500,1500,1500,100.00,100.00") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(site_handles_are_the_fast_explicit_path) {
  Profiler profiler{"p"};
  const auto site = profiler.site(4, "hot");
  BOOST_REQUIRE(site.has_value());
  for (int i = 0; i < 10; ++i) auto s = profiler.block(*site);
  BOOST_TEST(hits(profiler, 4, "hot") == 10u);
  // A site belongs to its profiler: another one ignores it.
  Profiler other{"other"};
  {
    auto s = other.block(*site);
  }
  BOOST_TEST(other.get_results().tracks.empty());
}

BOOST_AUTO_TEST_CASE(add_bytes_gives_throughput) {
  Profiler profiler{"p"};
  {
    auto s = profiler.block(0, "copy");
    s.add_bytes(1000);
    s.add_bytes(24);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto results = profiler.get_results();
  const auto* b = results.find_block(0, "copy");
  BOOST_TEST(b->bytes == 1024u);
  BOOST_TEST(b->throughput_bytes_per_s() > 0.0);
  BOOST_TEST(b->throughput_bytes_per_s() < 1024.0 * 1000.0); // it took at least 1 ms
}

BOOST_AUTO_TEST_CASE(results_report_the_clock_source) {
  Profiler profiler{"p"};
  const auto& cal = stichotrope::calibrate_clock();
  BOOST_TEST(profiler.get_results().clock == cal.source);
  BOOST_TEST(cal.ticks_per_ns > 0.0);
  BOOST_TEST_MESSAGE("clock: " << stichotrope::to_string(cal.source) << ", ticks/ns " << cal.ticks_per_ns);
}

BOOST_AUTO_TEST_CASE(clock_measures_a_sleep_within_wide_bounds) {
  // Ground truth the test controls: a 20 ms sleep. Lower bound is firm
  // (sleep never returns early); upper bound allows a loaded shared machine.
  Profiler profiler{"p"};
  {
    auto s = profiler.block(0, "sleep");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto results = profiler.get_results();
  const auto* b = results.find_block(0, "sleep");
  BOOST_TEST(b->total_time_ns >= 19'900'000u); // calibration error is ppm, not %
  BOOST_TEST(b->total_time_ns < 500'000'000u);
}

BOOST_AUTO_TEST_SUITE_END()
