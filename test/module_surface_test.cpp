// Uses every exported name once, and checks that no macro leaks from the
// module: the cheapest way to notice a name that stopped being exported.
#define BOOST_TEST_MODULE module_surface
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <optional>
#include <source_location>
#include <sstream>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>
import stichotrope;

#if defined(STICHOTROPE_COMPILED_OUT) || defined(TL_EXPECTED_VERSION_MAJOR) || defined(BOOST_TEST_MODULE_STICHOTROPE)
#error "a macro leaked through import stichotrope"
#endif

BOOST_AUTO_TEST_CASE(every_exported_name_is_usable) {
  namespace st = stichotrope;
  static_assert(st::instrumentation_compiled_in);
  static_assert(st::max_tracks == 256);
  static_assert(st::max_sites >= 100'000u);
  static_assert(st::no_parent == UINT32_MAX);
  static_assert(std::is_move_constructible_v<st::Block>);

  st::Error error{st::errc::invalid_track, "m"};
  st::expected<int> value = 1;
  const auto failed = st::load_results_json("/nonexistent/surface.json");
  BOOST_TEST(!failed.has_value());
  BOOST_TEST((failed.error().code == st::errc::io_error));
  BOOST_TEST(*value == 1);
  std::ostringstream os;
  os << error;
  BOOST_TEST(os.str() == "m");
  std::set<int> codes; // every code, each a value of its own
  for (auto code : {st::errc::invalid_track, st::errc::empty_name, st::errc::io_error, st::errc::too_many_sites,
                    st::errc::invalid_input, st::errc::invalid_argument})
    codes.insert(static_cast<int>(code));
  BOOST_TEST(codes.size() == 6u);

  const st::clock_calibration& cal = st::calibrate_clock();
  BOOST_TEST((cal.source == st::clock_source::tsc || cal.source == st::clock_source::steady_clock));
  BOOST_TEST(!st::to_string(cal.source).empty());

  st::set_global_enabled(true);
  BOOST_TEST(st::is_global_enabled());

  st::Profiler profiler{"surface"};
  st::Site site = *profiler.site(0, "s");
  BOOST_TEST(site.valid());
  BOOST_TEST(site.track() == 0);
  BOOST_TEST(site.id() == 0u);
  {
    st::Block b = profiler.block(site);
  }
  st::Tracked<int (*)(int)> tracked = profiler.track(0, "t", +[](int x) { return x; });
  BOOST_TEST(tracked(3) == 3);
  BOOST_TEST(tracked.site().valid());
  BOOST_TEST(tracked.callable()(4) == 4);
  st::Site other_site = *profiler.site(1, "opened");
  st::BlockOpener opener = profiler.opener(other_site);
  BOOST_TEST(opener.site().id() == other_site.id());
  {
    st::Block b = opener();
    BOOST_TEST(b.active());
  }
  BOOST_TEST(tracked.opener().site().id() == tracked.site().id());

  st::ProfilerResults results = profiler.get_results();
  std::vector<st::ThreadResults> threads = profiler.get_all_thread_data();
  st::ProfilerResults taken = profiler.take_results();
  BOOST_TEST(taken.total_hits() >= 1u);
  st::MemoryUse held = profiler.memory_use();
  BOOST_TEST(held.total() == held.thread_buffers + held.exited_threads + held.sites);
  BOOST_TEST(held.live_threads >= 1u);
  BOOST_TEST(threads.size() == 1u);
  const st::TrackResults& track = results.tracks.at(0);
  const st::BlockResults& block = track.blocks.at(0);
  st::latency_percentiles p = block.percentiles();
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  static_assert(std::is_same_v<st::percentiles, st::latency_percentiles>); // the former name still compiles
#pragma clang diagnostic pop
  st::caller_stats c = block.callers.at(0);
  st::latency_histogram h = block.histogram;
  BOOST_TEST(p.p50_ns <= block.max_time_ns);
  BOOST_TEST(c.parent_site_id == st::no_parent);
  BOOST_TEST(block.outside_flow == 0u);
  BOOST_TEST(block.too_deep == 0u);
  BOOST_TEST(h.total() == 1u);
  const std::vector<st::WaitResults>& waits = block.waits; // a block on a thread never waits
  BOOST_TEST(waits.empty());
  st::WaitResults w;
  BOOST_TEST(block.wait_path(w).empty());
  BOOST_TEST(block.wait_depth(w) == 0u);
  BOOST_TEST(w.percentiles().p99_ns == 0u);

  BOOST_TEST(!st::format_time_ns(1).empty());
  BOOST_TEST(!st::to_csv(results).empty());
  BOOST_TEST(!st::to_json(results).empty());
  BOOST_TEST(!st::to_table(results).empty());
  std::ostringstream sink;
  st::write_csv(sink, results);
  st::write_json(sink, results);
  st::write_table(sink, results);
  const auto dir = std::filesystem::temp_directory_path();
  BOOST_TEST(st::write_file(dir / "stichotrope-surface.txt", "x").has_value());
  BOOST_TEST(st::export_csv(results, dir / "stichotrope-surface.csv").has_value());
  BOOST_TEST(st::export_json(results, dir / "stichotrope-surface.json").has_value());
  for (const char* f : {"stichotrope-surface.txt", "stichotrope-surface.csv", "stichotrope-surface.json"})
    std::filesystem::remove(dir / f);
}

BOOST_AUTO_TEST_CASE(every_coroutine_timeline_and_reader_name_is_usable) {
  namespace st = stichotrope;
  // Coroutines.
  st::Context ctx;
  {
    st::ContextScope scope(ctx);
    BOOST_TEST(st::in_flow());
  }
  BOOST_TEST(!st::in_flow());
  BOOST_TEST(ctx.suspended());
  BOOST_TEST(ctx.flow().suspended); // the state wrap(ctx, ...) times an await in
  st::Profiler profiler{"surface2"};
  auto t = []() -> st::task<int> { co_return 4; };
  BOOST_TEST(st::sync_wait(t()) == 4);
  std::atomic<bool> done{false};
  st::spawn([]() -> st::task<void> { co_return; }(), [&](std::exception_ptr) { done = true; });
  BOOST_TEST(done.load());
  static_assert(std::is_class_v<st::flow_awaiter<std::suspend_never>>);
  static_assert(std::is_class_v<st::timed_awaiter<std::suspend_never>>);
  static_assert(std::is_class_v<st::timed_awaitable<std::suspend_never>>);
  auto body = [&]() -> st::task<void> {
    co_await profiler.wrap(0, "ready", std::suspend_never{});
    co_await st::on_flow(ctx, std::suspend_never{});
  };
  st::sync_wait(body());
  // Timeline.
  profiler.start_timeline(st::TimelineOptions{16, st::overflow_policy::keep_first});
  BOOST_TEST(profiler.is_timeline_on());
  {
    auto b = profiler.block(0, "captured");
  }
  profiler.stop_timeline();
  const st::Timeline timeline = profiler.get_timeline();
  const st::ThreadTimeline& thread = timeline.threads.at(0);
  const st::TimelineEvent& event = thread.events.at(0);
  const st::TimelineSite& site = timeline.sites.at(event.site_id);
  BOOST_TEST((event.kind == st::timeline_kind::block));
  BOOST_TEST(site.name == "captured");
  std::ostringstream sink;
  st::write_chrome_trace(sink, timeline);
  BOOST_TEST(st::to_chrome_trace(timeline) + "\n" == sink.str()); // the same document
  st::write_speedscope(sink, timeline);
  const auto dir = std::filesystem::temp_directory_path();
  BOOST_TEST(st::export_chrome_trace(timeline, dir / "stichotrope-surface.trace.json").has_value());
  BOOST_TEST(st::export_speedscope(timeline, dir / "stichotrope-surface.speedscope.json").has_value());
  std::filesystem::remove(dir / "stichotrope-surface.trace.json");
  std::filesystem::remove(dir / "stichotrope-surface.speedscope.json");
  // Reader, folded stacks, compare, merge.
  const st::ProfilerResults results = profiler.get_results();
  BOOST_TEST(!st::to_folded(results, st::fold_weight::active_time).empty());
  const st::expected<st::ProfilerResults> back = st::read_results_json(st::to_json(results));
  BOOST_TEST(back.has_value());
  BOOST_TEST(!st::load_results_json("/nonexistent.json").has_value());
  BOOST_TEST((st::read_results_json("{").error().code == st::errc::invalid_input));
  const st::Comparison c = st::compare_results(results, *back, 10.0);
  const st::BlockComparison& row = c.blocks.at(0);
  BOOST_TEST(!row.regression);
  BOOST_TEST(!st::to_text(c).empty());
  BOOST_TEST(st::merge_results({results, *back}).total_hits() == 2 * results.total_hits());
  // Repetition testing.
  const st::RepeatOptions options{.iterations = 12};
  const st::expected<st::RepetitionResults> rep = profiler.repeat(5, "repeated", [] {}, options);
  BOOST_TEST_REQUIRE(rep.has_value());
  BOOST_TEST(rep->runs == 12u);
  BOOST_TEST((profiler.repeat(5, "repeated", [] {}, st::RepeatOptions{}).error().code == st::errc::invalid_argument));
  const st::RepetitionResults summary = st::summarize_repetitions({3, 1, 2});
  BOOST_TEST(summary.median_ns == 2u);
  const st::RepetitionComparison same = st::compare_repetitions(summary, summary);
  BOOST_TEST((same.result == st::RepetitionComparison::verdict::indistinguishable));
  BOOST_TEST(!same.regression(0.0));
  BOOST_TEST(st::to_text(same).find("indistinguishable") != std::string::npos);
  BOOST_TEST(st::to_repetitions_csv(profiler.get_results()).find(",repeated,12,") != std::string::npos);
}

// The internal names importers may use, and only these (docs/architecture.md,
// "The exported surface"): the flow hooks of the Asio header, the exporters'
// registration, the clock, the tests' white-box hooks. Every other
// stichotrope::detail name is reachable from the inline hot path but not
// visible: test/surface/hidden.cpp names a few, and must not compile.
BOOST_AUTO_TEST_CASE(the_listed_internal_names_are_usable) {
  namespace d = stichotrope::detail;
  // include/stichotrope/asio.hpp
  // (Their signatures, as the header calls them: a change fails to compile.)
  static_assert(std::is_same_v<decltype(&d::acquire_context), d::context* (*)()>);
  static_assert(std::is_same_v<decltype(&d::release_context), void (*)(d::context*) noexcept>);
  static_assert(std::is_same_v<decltype(&d::resume_flow), void (*)(d::context&) noexcept>);
  static_assert(std::is_same_v<decltype(&d::finish_flow), void (*)(d::context&) noexcept>);
  static_assert(std::is_same_v<decltype(&d::leave_destroying), void (*)(d::context&) noexcept>);
  static_assert(std::is_same_v<decltype(&d::continue_flow), void (*)(d::context&) noexcept>);
  d::context* flow = d::acquire_context(); // a wait's await site and join path
  const std::uint32_t depth = d::push_join(*flow, d::await_key(std::source_location::current()));
  BOOST_TEST(flow->join_depth == depth + 1);
  d::pop_join(*flow, depth);
  BOOST_TEST(flow->join_depth == depth);
  d::release_context(flow);
  BOOST_TEST(d::awaited_type<int>::name == "int");
  // the optional exporters (stichotrope::http, stichotrope::otel)
  static_assert(std::is_same_v<decltype(&d::register_exporter), void (*)(const d::exporter*)>);
  static_assert(std::is_same_v<decltype(&d::add_diagnostic), void (*)(stichotrope::Profiler&, std::string)>);
  static_assert(std::is_same_v<decltype(&d::replace_diagnostic),
                               void (*)(stichotrope::Profiler&, std::string_view, std::string)>);
  {
    stichotrope::Profiler diagnosed{"diagnosed"};
    d::add_diagnostic(diagnosed, "surface: a diagnostic");
    d::replace_diagnostic(diagnosed, "surface: count", "surface: count 1");
    d::replace_diagnostic(diagnosed, "surface: count", "surface: count 2");
    const auto diags = diagnosed.get_results().diagnostics;
    BOOST_TEST(std::count(diags.begin(), diags.end(), "surface: a diagnostic") == 1);
    BOOST_TEST(std::count(diags.begin(), diags.end(), "surface: count 2") == 1);
    BOOST_TEST(std::count(diags.begin(), diags.end(), "surface: count 1") == 0);
  }
  // the clock
  const std::uint64_t t0 = d::now_ticks();
  BOOST_TEST(d::ticks_to_ns(t0, d::now_ticks_ordered()) < 1'000'000'000u);
  BOOST_TEST(d::ns_since_epoch() > 0u);
  // Profiler::repeat's loop
  BOOST_TEST(!d::check_repeat(stichotrope::RepeatOptions{.iterations = 1}).has_value());
  d::repetition run(stichotrope::RepeatOptions{.iterations = 1});
  BOOST_TEST(run.more());
  BOOST_TEST(
      (d::refused(stichotrope::Error{stichotrope::errc::io_error, "x"}).error().code == stichotrope::errc::io_error));
  // the tests
  static_assert(d::testing::exited_entries_kept() == 4096 && d::testing::exited_timelines_kept() == 64);
  static_assert(d::testing::slots_for_a_parallel_merge() == 65536);
  d::testing::use_barrier_by_protection(false);
  BOOST_TEST(d::testing::last_merge_threads() <= 4u);
  BOOST_TEST(d::testing::site_cache_of_calling_thread().max > 0u);
}
