// Timelines and the exporters that feed existing viewers, read back and
// checked structurally; the results reader, compare and merge on constructed
// inputs; malformed inputs.
#define BOOST_TEST_MODULE timeline
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/async.hpp"
import stichotrope;

using namespace stichotrope;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

json chrome(const Timeline& t) {
  std::ostringstream os;
  write_chrome_trace(os, t);
  return json::parse(os.str());
}
json speedscope(const Timeline& t) {
  std::ostringstream os;
  write_speedscope(os, t);
  return json::parse(os.str());
}
std::size_t block_events(const Timeline& t) {
  std::size_t n = 0;
  for (const auto& th : t.threads)
    for (const auto& e : th.events) n += e.kind == timeline_kind::block ? 1 : 0;
  return n;
}

BlockResults block(std::string name, std::uint32_t site, std::uint64_t hits, std::uint64_t total, std::uint64_t self) {
  BlockResults b;
  b.name = std::move(name);
  b.file = "app.cpp";
  b.line = 10 + site;
  b.site_id = site;
  b.hit_count = hits;
  b.total_time_ns = total;
  b.self_time_ns = self;
  b.min_time_ns = hits ? total / hits : 0;
  b.max_time_ns = hits ? total / hits : 0;
  if (hits) b.histogram.add(total / hits, hits);
  return b;
}

} // namespace

BOOST_AUTO_TEST_SUITE(capture)

BOOST_AUTO_TEST_CASE(capture_is_off_by_default_and_switched_per_profiler) {
  Profiler p{"t"};
  BOOST_TEST(!p.is_timeline_on());
  {
    auto b = p.block(0, "x");
  }
  BOOST_TEST(block_events(p.get_timeline()) == 0u);
  p.start_timeline();
  {
    auto b = p.block(0, "x");
  }
  p.stop_timeline();
  {
    auto b = p.block(0, "x");
  }
  const auto t = p.get_timeline();
  BOOST_TEST(block_events(t) == 1u);
  BOOST_TEST(t.threads.at(0).events.at(0).start_ns <= t.threads.at(0).events.at(0).end_ns);
  p.clear();
  BOOST_TEST(p.get_timeline().threads.empty());
}

BOOST_AUTO_TEST_CASE(keep_first_keeps_exactly_the_first_events_and_counts_the_rest) {
  Profiler p{"t"};
  p.start_timeline({10, overflow_policy::keep_first});
  for (int i = 0; i < 25; ++i) p.block(0, "x").close();
  const auto t = p.get_timeline();
  BOOST_REQUIRE(t.threads.size() == 1u);
  const auto& th = t.threads[0];
  BOOST_TEST(th.events.size() == 10u);
  BOOST_TEST(th.dropped == 15u);
  BOOST_TEST(t.dropped() == 15u);
  for (std::size_t i = 1; i < th.events.size(); ++i) BOOST_TEST(th.events[i - 1].end_ns <= th.events[i].start_ns);
  // The first ten: a block recorded after the buffer filled is later than all of them.
  p.stop_timeline();
}

BOOST_AUTO_TEST_CASE(keep_latest_keeps_exactly_the_most_recent_events_and_counts_the_rest) {
  Profiler p{"t"};
  p.start_timeline({10, overflow_policy::keep_latest});
  std::uint64_t marker_start = 0;
  for (int i = 0; i < 25; ++i) {
    if (i == 15) { // the first of the ten that must survive
      p.stop_timeline();
      const auto before = p.get_timeline();
      marker_start = before.threads[0].events.back().end_ns;
      p.start_timeline({10, overflow_policy::keep_latest});
    }
    p.block(0, "x").close();
  }
  const auto t = p.get_timeline();
  const auto& th = t.threads.at(0);
  BOOST_TEST(th.events.size() == 10u);
  BOOST_TEST(th.dropped == 15u);
  BOOST_TEST(th.events.front().start_ns >= marker_start); // all ten come after the 15th
}

BOOST_AUTO_TEST_CASE(chrome_trace_of_threads_has_metadata_and_complete_slices) {
  Profiler p{"trace"};
  (void)p.set_track_name(1, "IO");
  p.start_timeline();
  auto work = [&] {
    auto outer = p.block(0, "outer");
    auto inner = p.block(1, "inner");
  };
  work();
  std::thread(work).join();
  const auto t = p.get_timeline();
  const json j = chrome(t);
  BOOST_TEST(j["displayTimeUnit"] == "ns");
  std::map<std::string, int> phases;
  std::set<std::uint64_t> tids;
  for (const auto& e : j["traceEvents"]) {
    phases[e["ph"].get<std::string>()]++;
    if (e["ph"] == "X") {
      tids.insert(e["tid"].get<std::uint64_t>());
      BOOST_TEST(e["ts"].is_number());
      BOOST_TEST(e["dur"].get<double>() >= 0.0);
      BOOST_TEST((e["name"] == "outer" || e["name"] == "inner"));
    }
  }
  BOOST_TEST(phases["X"] == 4);
  BOOST_TEST(tids.size() == 2u);
  int process = 0, threads = 0, tracks = 0;
  for (const auto& e : j["traceEvents"])
    if (e["ph"] == "M") {
      process += e["name"] == "process_name";
      threads += e["name"] == "thread_name";
      tracks += e["name"] == "track_name";
    }
  BOOST_TEST(process == 1);
  BOOST_TEST(threads == 2);
  BOOST_TEST(tracks == 1);
}

BOOST_AUTO_TEST_CASE(coroutine_spans_are_async_pairs_and_suspensions_are_arrows_across_threads) {
  test_async::thread_pool pool(2);
  Profiler p{"async"};
  p.start_timeline();
  std::uint32_t hop_line = 0;
  auto job = [&]() -> task<void> {
    auto request = p.block(0, "request");
    hop_line = __LINE__ + 1;
    co_await pool.schedule(); // resumes on a pool thread
    auto after = p.block(1, "after_hop");
  };
  for (int i = 0; i < 20; ++i) sync_wait(job());
  const auto t = p.get_timeline();
  // Each suspension names the wait site it was charged to.
  int named = 0;
  for (const auto& th : t.threads)
    for (const auto& e : th.events)
      if (e.kind == timeline_kind::suspend) {
        BOOST_REQUIRE(e.site_id < t.sites.size());
        named += t.sites[e.site_id].line == hop_line ? 1 : 0;
      }
  BOOST_TEST(named == 20);
  const json j = chrome(t);
  std::map<std::string, int> open;
  std::map<std::uint64_t, std::uint64_t> arrow_from, arrow_to;
  int b = 0, waits = 0;
  const std::string wait_name = "[wait] timeline_test.cpp:" + std::to_string(hop_line);
  for (const auto& e : j["traceEvents"]) {
    const auto ph = e["ph"].get<std::string>();
    if (ph == "b" && e["cat"] == "wait") { // the suspended time as a slice of the flow, named by its await
      BOOST_TEST(e["name"].get<std::string>().starts_with(wait_name), e["name"]);
      BOOST_TEST(e["args"]["suspended_on"] != e["args"]["resumed_on"]);
      ++waits;
    }
    if (ph == "b" && e["cat"] != "wait") ++b;
    if (ph == "b") ++open[e["id"].get<std::string>()];
    if (ph == "e") --open[e["id"].get<std::string>()];
    if (ph == "s") arrow_from[e["id"].get<std::uint64_t>()] = e["tid"].get<std::uint64_t>();
    if (ph == "f") arrow_to[e["id"].get<std::uint64_t>()] = e["tid"].get<std::uint64_t>();
  }
  BOOST_TEST(b == 40); // request and after_hop, 20 times, as async spans
  BOOST_TEST(waits == 20);
  for (const auto& [id, n] : open) BOOST_TEST(n == 0, "unbalanced async id " << id);
  BOOST_TEST(arrow_from.size() == 20u);
  int hops = 0;
  for (const auto& [id, from] : arrow_from) {
    BOOST_REQUIRE(arrow_to.count(id) == 1u);
    hops += arrow_to[id] != from ? 1 : 0;
  }
  BOOST_TEST(hops == 20); // every suspension on the caller's thread, every resumption on a pool thread
}

BOOST_AUTO_TEST_CASE(a_detached_timed_await_draws_its_own_arrow) {
  test_async::thread_pool pool(1);
  Profiler p{"detached"};
  p.start_timeline();
  std::atomic<bool> done{false};
  auto plain = [&]() -> test_async::fire_and_forget {
    co_await p.wrap(0, "hop", pool.schedule());
    done = true;
    done.notify_all();
  };
  plain();
  done.wait(false);
  const auto t = p.get_timeline();
  std::map<timeline_kind, int> kinds;
  for (const auto& th : t.threads)
    for (const auto& e : th.events) kinds[e.kind]++;
  BOOST_TEST(kinds[timeline_kind::block] == 1);
  BOOST_TEST(kinds[timeline_kind::suspend] == 1);
  BOOST_TEST(kinds[timeline_kind::resume] == 1);
}

BOOST_AUTO_TEST_CASE(speedscope_profiles_are_balanced_ordered_and_share_frames) {
  Profiler p{"speedscope"};
  p.start_timeline();
  auto work = [&] {
    for (int i = 0; i < 5; ++i) {
      auto outer = p.block(0, "outer");
      {
        auto a = p.block(1, "a");
      }
      {
        auto b = p.block(1, "b");
      }
    }
  };
  work();
  std::thread(work).join();
  const json j = speedscope(p.get_timeline());
  BOOST_TEST(j["$schema"] == "https://www.speedscope.app/file-format-schema.json");
  BOOST_TEST(j["shared"]["frames"].size() == 3u);
  BOOST_TEST(j["profiles"].size() == 2u);
  for (const auto& prof : j["profiles"]) {
    BOOST_TEST(prof["type"] == "evented");
    BOOST_TEST(prof["unit"] == "nanoseconds");
    std::vector<std::uint64_t> stack;
    std::uint64_t last = 0;
    for (const auto& e : prof["events"]) {
      const auto at = e["at"].get<std::uint64_t>();
      BOOST_TEST_REQUIRE(at >= last);
      last = at;
      if (e["type"] == "O") {
        stack.push_back(e["frame"].get<std::uint64_t>());
      } else {
        BOOST_TEST_REQUIRE(!stack.empty());
        BOOST_TEST_REQUIRE(stack.back() == e["frame"].get<std::uint64_t>());
        stack.pop_back();
      }
    }
    BOOST_TEST(stack.empty());
    BOOST_TEST(prof["events"].size() == 30u);
    BOOST_TEST(prof["startValue"].get<std::uint64_t>() <= prof["endValue"].get<std::uint64_t>());
  }
}

BOOST_AUTO_TEST_CASE(speedscope_gives_each_coroutine_flow_a_profile_of_its_own) {
  test_async::thread_pool pool(2);
  Profiler p{"flows"};
  p.start_timeline();
  auto job = [&]() -> task<void> {
    auto request = p.block(0, "request");
    co_await pool.schedule();
    auto inner = p.block(1, "inner");
  };
  sync_wait(job());
  sync_wait(job());
  const json j = speedscope(p.get_timeline());
  BOOST_REQUIRE(j["profiles"].size() == 2u); // two flows, no thread-own blocks
  for (const auto& prof : j["profiles"]) {
    BOOST_TEST(prof["name"].get<std::string>().starts_with("flow 0x"));
    const auto& ev = prof["events"];
    BOOST_REQUIRE(ev.size() == 4u); // request contains inner, though they closed on a pool thread
    BOOST_TEST(ev[0]["type"] == "O");
    BOOST_TEST(ev[1]["type"] == "O");
    BOOST_TEST(ev[2]["type"] == "C");
    BOOST_TEST(ev[3]["type"] == "C");
    BOOST_TEST(ev[0]["frame"] == ev[3]["frame"]);
  }
}

BOOST_AUTO_TEST_CASE(timelines_of_exited_threads_stay) {
  Profiler p{"exit"};
  p.start_timeline();
  std::thread([&] { p.block(0, "gone").close(); }).join();
  const auto t = p.get_timeline();
  BOOST_REQUIRE(t.threads.size() == 1u);
  BOOST_TEST(t.threads[0].exited);
  BOOST_TEST(t.threads[0].events.size() == 1u);
}

BOOST_AUTO_TEST_CASE(reading_the_timeline_while_threads_record_is_safe) {
  Profiler p{"race"};
  p.start_timeline({64, overflow_policy::keep_latest});
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w)
    writers.emplace_back([&] {
      while (!stop.load()) p.block(0, "busy").close();
    });
  for (int i = 0; i < 200; ++i) {
    const auto t = p.get_timeline();
    for (const auto& th : t.threads) {
      BOOST_TEST_REQUIRE(th.events.size() <= 64u);
      for (const auto& e : th.events) BOOST_TEST_REQUIRE(e.start_ns <= e.end_ns);
    }
  }
  stop = true;
  for (auto& w : writers) w.join();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(folded)

BOOST_AUTO_TEST_CASE(folded_stacks_follow_the_call_tree_with_exact_weights) {
  ProfilerResults r;
  r.profiler_name = "f";
  TrackResults t;
  t.blocks.push_back(block("main", 0, 1, 1000, 100));
  t.blocks.push_back(block("load", 1, 2, 300, 300));
  t.blocks.push_back(block("parse", 2, 4, 600, 600));
  t.blocks[0].callers = {{no_parent, 1, 1000}};
  t.blocks[1].callers = {{0, 2, 300}};
  t.blocks[2].callers = {{0, 3, 450}, {1, 1, 150}}; // 3/4 of parse under main, 1/4 under load
  t.blocks[2].suspended_time_ns = 300;              // half of it suspended
  r.tracks = {t};
  BOOST_TEST(to_folded(r) == "main 100\nmain;load 300\nmain;load;parse 150\nmain;parse 450\n");
  BOOST_TEST(to_folded(r, fold_weight::active_time) == "main 100\nmain;load 300\nmain;load;parse 75\nmain;parse 225\n");
  const std::regex line("^(.*) (\\d+)$");
  std::istringstream in(to_folded(r));
  for (std::string l; std::getline(in, l);) BOOST_TEST(std::regex_match(l, line), l);
}

BOOST_AUTO_TEST_CASE(frame_names_cannot_break_the_format) {
  ProfilerResults r;
  TrackResults t;
  t.blocks.push_back(block("a;b\nc", 0, 1, 10, 10));
  r.tracks = {t};
  BOOST_TEST(to_folded(r) == "a_b_c 10\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reader)

BOOST_AUTO_TEST_CASE(the_reader_round_trips_what_the_writer_wrote) {
  Profiler p{"round \"trip\" \u00e9"};
  (void)p.set_track_name(2, "IO");
  auto work = [&] {
    auto outer = p.block(0, "outer");
    auto inner = p.block(2, "in,ner");
    inner.add_bytes(64);
  };
  for (int i = 0; i < 10; ++i) work();
  const auto original = p.get_results();
  const std::string text = to_json(original);
  const auto back = read_results_json(text, "mem");
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(to_json(*back) == text);
  BOOST_TEST((back->find_block(2, "in,ner")->histogram == original.find_block(2, "in,ner")->histogram));
  BOOST_TEST((back->find_block(2, "in,ner")->callers == original.find_block(2, "in,ner")->callers));
}

BOOST_AUTO_TEST_CASE(the_seeds_own_files_read_too) {
  const std::string seed = R"({"profiler_name": "Py", "tracks": [{"track_idx": 0, "track_name": null, "enabled": true,
    "blocks": [{"name": "f", "file": "a.py", "line": 3, "hit_count": 2, "total_time_ns": 10, "avg_time_ns": 5.0,
    "min_time_ns": 4, "max_time_ns": 6}]}]})";
  const auto r = read_results_json(seed);
  BOOST_REQUIRE(r.has_value());
  BOOST_TEST(r->find_block(0, "f")->hit_count == 2u);
  BOOST_TEST(r->find_block(0, "f")->self_time_ns == 10u);
}

BOOST_AUTO_TEST_CASE(malformed_inputs_give_errors_naming_the_place) {
  const std::string good = R"({"profiler_name": "p", "tracks": [{"track_idx": 0, "track_name": null, "enabled": true,
    "blocks": [{"name": "f", "file": "a", "line": 1, "hit_count": 1, "total_time_ns": 1, "avg_time_ns": 1.0,
    "min_time_ns": 1, "max_time_ns": 1}]}]})";
  BOOST_REQUIRE(read_results_json(good).has_value());
  struct bad {
    std::string text, expect;
  };
  const std::vector<bad> cases = {
      {good.substr(0, 60), "x.json: invalid JSON at byte"},
      {"[1, 2]", "expected a results object"},
      {R"({"profiler_name": 3, "tracks": []})", "$.profiler_name expected a string"},
      {std::string(good).replace(good.find("\"hit_count\": 1"), 14, "\"hit_count\": \"1\""),
       "$.tracks[0].blocks[0].hit_count expected an unsigned integer"},
      {std::string(good).replace(good.find("\"hit_count\": 1"), 14, "\"hit_count\": 99999999999999999999999"),
       "$.tracks[0].blocks[0].hit_count expected an unsigned integer"},
      {std::string(good).replace(good.find("\"hit_count\": 1"), 14, "\"hit_count\": -4"),
       "$.tracks[0].blocks[0].hit_count expected an unsigned integer"},
      {std::string(good).replace(good.find("\"name\": \"f\""), 11, "\"name\": \"\xff\""), "invalid JSON"},
      {std::string(good).replace(good.find("\"track_idx\": 0"), 14, "\"track_idx\": 300"), "out of range"},
      {R"({"profiler_name": "p"})", "$.tracks is missing"},
  };
  for (const auto& c : cases) {
    const auto r = read_results_json(c.text, "x.json");
    BOOST_TEST_REQUIRE(!r.has_value(), c.text);
    BOOST_TEST((r.error().code == errc::invalid_input));
    BOOST_TEST(r.error().message.find(c.expect) != std::string::npos, r.error().message << " lacks " << c.expect);
  }
  const auto missing = load_results_json("/nonexistent/results.json");
  BOOST_TEST(!missing.has_value());
  BOOST_TEST(missing.error().message.find("/nonexistent/results.json") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(compare_and_merge)

BOOST_AUTO_TEST_CASE(compare_gives_exact_changes_and_flags_regressions_over_the_threshold) {
  ProfilerResults base, now;
  TrackResults a, b;
  a.blocks = {block("fast", 0, 10, 1000, 1000), block("steady", 1, 4, 400, 400), block("gone", 2, 1, 5, 5)};
  b.blocks = {block("fast", 0, 10, 1200, 1200), block("steady", 1, 4, 404, 404), block("new", 3, 1, 5, 5)};
  a.blocks[1].suspended_time_ns = 100;
  b.blocks[1].suspended_time_ns = 50;
  base.tracks = {a};
  now.tracks = {b};
  const auto c = compare_results(base, now, 10.0);
  std::map<std::string, BlockComparison> by;
  for (const auto& r : c.blocks) by[r.name] = r;
  BOOST_TEST(by["fast"].base_mean_ns == 100.0);
  BOOST_TEST(by["fast"].current_mean_ns == 120.0);
  BOOST_TEST(by["fast"].mean_change_pct == 20.0);
  BOOST_TEST(by["fast"].regression);
  BOOST_TEST(by["steady"].mean_change_pct == 1.0);
  BOOST_TEST(!by["steady"].regression);
  BOOST_TEST(by["steady"].suspended_change_pct == -50.0);
  BOOST_TEST(by["steady"].active_change_pct == (354.0 - 300.0) / 300.0 * 100.0);
  BOOST_TEST((by["gone"].in_base && !by["gone"].in_current));
  BOOST_TEST((!by["new"].in_base && by["new"].in_current));
  BOOST_TEST(c.any_regression());
  BOOST_TEST(!compare_results(base, now, 25.0).any_regression());
  BOOST_TEST(to_text(c).find("REGRESSION") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(merge_adds_the_same_block_from_several_processes) {
  ProfilerResults one, two;
  one.profiler_name = two.profiler_name = "svc";
  TrackResults t1, t2;
  t1.blocks = {block("handle", 0, 2, 200, 100), block("db", 1, 2, 100, 100)};
  t1.blocks[1].callers = {{0, 2, 100}};
  t2.blocks = {block("db", 0, 3, 600, 600), block("handle", 1, 3, 900, 300)};
  t2.blocks[0].callers = {{1, 3, 600}};
  t2.blocks[0].min_time_ns = 50;
  t2.track_name = "Main";
  for (auto* t : {&t1, &t2}) // the same source in both processes
    for (auto& b : t->blocks) b.line = b.name == "handle" ? 20 : 30;
  one.tracks = {t1};
  two.tracks = {t2};
  const auto m = merge_results({one, two});
  BOOST_TEST(m.profiler_name == "svc");
  BOOST_TEST(m.find_track(0)->track_name.value() == "Main");
  const auto* handle = m.find_block(0, "handle");
  const auto* db = m.find_block(0, "db");
  BOOST_TEST(handle->hit_count == 5u);
  BOOST_TEST(handle->total_time_ns == 1100u);
  BOOST_TEST(handle->self_time_ns == 400u);
  BOOST_TEST(db->hit_count == 5u);
  BOOST_TEST(db->min_time_ns == 50u);
  BOOST_TEST(db->histogram.total() == 5u);
  BOOST_REQUIRE(db->callers.size() == 1u); // both inputs' edges point at the merged "handle"
  BOOST_TEST(db->callers[0].parent_site_id == handle->site_id);
  BOOST_TEST(db->callers[0].hit_count == 5u);
  BOOST_TEST(db->callers[0].total_time_ns == 700u);
}

BOOST_AUTO_TEST_SUITE_END()
