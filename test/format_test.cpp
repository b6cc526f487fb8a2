// The export formats, byte for byte, on results built by hand.
#define BOOST_TEST_MODULE format
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>
import stichotrope;

using namespace stichotrope;

namespace {

BlockResults block(std::string name, std::uint32_t site, std::uint64_t hits, std::uint64_t total, std::uint64_t min,
                   std::uint64_t max) {
  BlockResults b;
  b.name = std::move(name);
  b.file = "app.cpp";
  b.line = 10 + site;
  b.site_id = site;
  b.hit_count = hits;
  b.total_time_ns = total;
  b.min_time_ns = min;
  b.max_time_ns = max;
  b.self_time_ns = total;
  return b;
}

ProfilerResults sample() {
  ProfilerResults r;
  r.profiler_name = "MyApp";
  TrackResults t0;
  t0.track_idx = 0;
  t0.blocks.push_back(block("plain", 0, 3, 1000, 100, 600));
  t0.blocks.push_back(block("a,b", 1, 1, 3000, 3000, 3000));
  t0.blocks.back().suspended_time_ns = 1800; // a coroutine block: 1200 ns active
  t0.blocks.back().suspensions = 2;
  t0.blocks.back().migrations = 1;
  t0.blocks.back().abandoned = 1;
  TrackResults t2;
  t2.track_idx = 2;
  t2.track_name = "IO";
  t2.blocks.push_back(block("say \"hi\"", 2, 2, 5, 2, 3));
  t2.blocks.push_back(block("line\nbreak", 3, 0, 0, 12345, 0)); // no hits: min is written as 0
  r.tracks = {t0, t2};
  return r;
}

} // namespace

BOOST_AUTO_TEST_SUITE(csv)

BOOST_AUTO_TEST_CASE(header_rows_quoting_crlf_and_percentages_follow_the_seed) {
  const std::string expected =
      "Track,Block Name,Hit Count,Total Time (ns),Avg Time (ns),Min Time (ns),Max Time (ns),% Track,% Total,"
      "Self Time (ns),P50 (ns),P90 (ns),P99 (ns),P99.9 (ns),Bytes,Throughput (B/s),Active Time (ns),"
      "Suspended Time (ns),Suspensions,Migrations,Abandoned,Waited On\r\n"
      "0,plain,3,1000,333,100,600,25.00,24.97,1000,0,0,0,0,0,0.00,1000,0,0,0,0,\r\n"
      "0,\"a,b\",1,3000,3000,3000,3000,75.00,74.91,3000,0,0,0,0,0,0.00,1200,1800,2,1,1,\r\n"
      "2,\"say \"\"hi\"\"\",2,5,2,2,3,100.00,0.12,5,0,0,0,0,0,0.00,5,0,0,0,0,\r\n"
      "2,\"line\nbreak\",0,0,0,0,0,0.00,0.00,0,0,0,0,0,0,0.00,0,0,0,0,0,\r\n";
  BOOST_TEST(to_csv(sample()) == expected);
}

BOOST_AUTO_TEST_CASE(average_rounds_half_to_even_like_the_seed) {
  ProfilerResults r;
  r.profiler_name = "p";
  TrackResults t;
  t.blocks.push_back(block("half_down", 0, 2, 5, 2, 3)); // 2.5 -> 2
  t.blocks.push_back(block("half_up", 1, 2, 7, 3, 4));   // 3.5 -> 4
  t.blocks.push_back(block("third", 2, 3, 2, 0, 1));     // 0.67 -> 1
  r.tracks = {t};
  const std::string csv = to_csv(r);
  BOOST_TEST(csv.find("0,half_down,2,5,2,") != std::string::npos);
  BOOST_TEST(csv.find("0,half_up,2,7,4,") != std::string::npos);
  BOOST_TEST(csv.find("0,third,3,2,1,") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(empty_results_give_the_header_only) {
  ProfilerResults r;
  const std::string csv = to_csv(r);
  BOOST_TEST(csv.size() > 2u);
  BOOST_TEST(csv.find("\r\n") == csv.size() - 2);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(time_format)

BOOST_AUTO_TEST_CASE(units_change_at_each_boundary) {
  BOOST_TEST(format_time_ns(0) == "0 ns");
  BOOST_TEST(format_time_ns(999) == "999 ns");
  BOOST_TEST(format_time_ns(1000) == "1.00 \u03bcs");
  BOOST_TEST(format_time_ns(1234) == "1.23 \u03bcs");
  BOOST_TEST(format_time_ns(999'994) == "999.99 \u03bcs");
  BOOST_TEST(format_time_ns(999'999) == "1000.00 \u03bcs"); // as the seed: the unit follows the value, not the rounding
  BOOST_TEST(format_time_ns(1'000'000) == "1.00 ms");
  BOOST_TEST(format_time_ns(999'999'999) == "1000.00 ms");
  BOOST_TEST(format_time_ns(1'000'000'000) == "1.00 s");
  BOOST_TEST(format_time_ns(3'600'000'000'000) == "3600.00 s");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(json)

BOOST_AUTO_TEST_CASE(seed_keys_come_first_in_order_with_python_layout) {
  ProfilerResults r;
  r.profiler_name = "MyApp";
  TrackResults t;
  t.track_idx = 1;
  t.blocks.push_back(block("q", 0, 2, 5, 2, 3));
  t.blocks[0].function = "int main()";
  t.blocks[0].column = 7;
  t.blocks[0].histogram.add(2);
  t.blocks[0].histogram.add(3);
  t.blocks[0].callers.push_back({no_parent, 2, 5});
  TrackResults empty;
  empty.track_idx = 3;
  empty.track_name = "Named";
  empty.enabled = false;
  r.tracks = {t, empty};
  const std::string expected = R"json({
  "profiler_name": "MyApp",
  "tracks": [
    {
      "track_idx": 1,
      "track_name": null,
      "enabled": true,
      "blocks": [
        {
          "name": "q",
          "file": "app.cpp",
          "line": 10,
          "hit_count": 2,
          "total_time_ns": 5,
          "avg_time_ns": 2.5,
          "min_time_ns": 2,
          "max_time_ns": 3,
          "site_id": 0,
          "function": "int main()",
          "column": 7,
          "self_time_ns": 5,
          "p50_ns": 2,
          "p90_ns": 3,
          "p99_ns": 3,
          "p999_ns": 3,
          "bytes": 0,
          "throughput_bytes_per_s": 0.0,
          "active_time_ns": 5,
          "suspended_time_ns": 0,
          "suspensions": 0,
          "migrations": 0,
          "abandoned": 0,
          "callers": [
            {
              "parent_site_id": null,
              "hit_count": 2,
              "total_time_ns": 5
            }
          ],
          "other_callers_hits": 0,
          "histogram": [
            [
              2,
              1
            ],
            [
              3,
              1
            ]
          ],
          "waits": []
        }
      ]
    },
    {
      "track_idx": 3,
      "track_name": "Named",
      "enabled": false,
      "blocks": []
    }
  ],
  "clock_source": "steady_clock",
  "total_time_ns": 5,
  "total_hits": 2,
  "diagnostics": []
})json";
  BOOST_TEST(to_json(r) == expected);
}

BOOST_AUTO_TEST_CASE(compact_layout_with_negative_indent) {
  ProfilerResults r;
  r.profiler_name = "p";
  BOOST_TEST(
      to_json(r, -1) ==
      R"({"profiler_name": "p", "tracks": [], "clock_source": "steady_clock", "total_time_ns": 0, "total_hits": 0, "diagnostics": []})");
}

BOOST_AUTO_TEST_CASE(strings_escape_controls_quotes_and_non_ascii) {
  ProfilerResults r;
  r.profiler_name = std::string("a\"b\\c\n\t\x01\x1f") + "\xc3\xa9" + "\xf0\x9f\x98\x80" + "\xff" + "\xe2\x82";
  const std::string json = to_json(r, -1);
  BOOST_TEST(json.starts_with(R"({"profiler_name": "a\"b\\c\n\t\u0001\u001f\u00e9\ud83d\ude00\ufffd\ufffd\ufffd",)"));
}

BOOST_AUTO_TEST_CASE(average_is_a_python_float) {
  ProfilerResults r;
  r.profiler_name = "p";
  TrackResults t;
  t.blocks.push_back(block("whole", 0, 1, 100000, 100000, 100000));
  t.blocks.push_back(block("third", 1, 3, 10, 3, 4));
  t.blocks.push_back(block("none", 2, 0, 0, 0, 0));
  r.tracks = {t};
  const std::string json = to_json(r, -1);
  BOOST_TEST(json.find(R"("avg_time_ns": 100000.0,)") != std::string::npos);
  BOOST_TEST(json.find(R"("avg_time_ns": 3.3333333333333335,)") != std::string::npos);
  BOOST_TEST(json.find(R"("avg_time_ns": 0.0,)") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(table)

BOOST_AUTO_TEST_CASE(seed_table_layout) {
  ProfilerResults r;
  r.profiler_name = "MyApp";
  TrackResults t;
  t.track_idx = 0;
  t.track_name = "Requests";
  t.blocks.push_back(block("handle_request", 0, 1250, 2'500'000, 1500, 9000));
  r.tracks = {t};
  const std::string eq(120, '='), dash(120, '-');
  const std::string expected_head = eq + "\nProfiler: MyApp\nTotal Time: 2.50 ms\nTotal Hits: 1,250\n" + eq + "\n" +
                                    "\nRequests (Track 0)\n  Total Time: 2.50 ms\n  Total Hits: 1,250\n" + dash + "\n" +
                                    "Block Name                                     Hits           Total             "
                                    "Avg             Min             Max   %Track\n" +
                                    dash + "\n" +
                                    "handle_request                                1,250         2.50 ms         2.00 "
                                    "\u03bcs         1.50 \u03bcs         9.00 \u03bcs  100.00%\n";
  const std::string table = to_table(r);
  BOOST_TEST(table.substr(0, expected_head.size()) == expected_head);
  BOOST_TEST(table.ends_with(eq + "\n"));
  BOOST_TEST(table.find("P99.9") != std::string::npos);
  BOOST_TEST(table.find("Throughput") == std::string::npos); // no block counted bytes
}

BOOST_AUTO_TEST_CASE(active_and_suspended_columns_and_abandoned_blocks) {
  ProfilerResults r;
  r.profiler_name = "p";
  TrackResults t;
  t.blocks.push_back(block("request", 0, 1, 55'000'000, 55'000'000, 55'000'000));
  t.blocks[0].suspended_time_ns = 50'000'000;
  t.blocks[0].abandoned = 3;
  r.tracks = {t};
  const std::string table = to_table(r);
  const std::string header = "  latency" + std::string(21, ' ') + "        Self      Active   Suspended" +
                             "         P50         P90         P99       P99.9\n";
  BOOST_TEST(table.find(header) != std::string::npos);
  const std::string row = "  request" + std::string(21, ' ') + "    55.00 ms     5.00 ms    50.00 ms";
  BOOST_TEST(table.find(row) != std::string::npos);
  BOOST_TEST(table.find("  request: 3 abandoned (destroyed while their coroutine was suspended)\n") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(unnamed_tracks_are_titled_by_index_and_no_hits_show_min_zero) {
  ProfilerResults r;
  r.profiler_name = "p";
  TrackResults t;
  t.track_idx = 5;
  t.blocks.push_back(block("idle", 0, 0, 0, 777, 0));
  r.tracks = {t};
  const std::string table = to_table(r);
  BOOST_TEST(table.find("\nTrack 5 (Track 5)\n") != std::string::npos);
  const std::string zero = std::string(11, ' ') + "0 ns";
  const std::string row = "idle" + std::string(36, ' ') + " " + std::string(9, ' ') + "0 " + zero + " " + zero + " " +
                          zero + " " + zero + " " + "   0.00%\n";
  BOOST_TEST(table.find(row) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(call_tree_nests_children_under_parents) {
  ProfilerResults r;
  r.profiler_name = "p";
  TrackResults t;
  t.blocks.push_back(block("outer", 0, 1, 100, 100, 100));
  t.blocks.push_back(block("inner", 1, 2, 40, 20, 20));
  t.blocks[0].callers = {{no_parent, 1, 100}};
  t.blocks[1].callers = {{0, 2, 40}};
  r.tracks = {t};
  const std::string table = to_table(r);
  BOOST_TEST(table.find("\nouter ") != std::string::npos);
  BOOST_TEST(table.find("\n  inner ") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(prometheus_text)

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative_per_octave_and_end_at_the_hit_count) {
  Profiler p{"prom \"fmt\""};
  (void)p.set_track_name(2, "DB\\main");
  const std::uint64_t samples[] = {3, 15, 16, 31, 1000, 1023, 1024, 5'000'000};
  for (auto ns : samples) p.record(2, "q\n1", std::chrono::nanoseconds(ns));
  const std::string text = to_prometheus({p.get_results()});
  // Labels escaped as the format requires.
  const std::string labels =
      "{profiler=\"prom \\\"fmt\\\"\",track=\"2\",track_name=\"DB\\\\main\",block=\"q\\n1\",site=\"";
  BOOST_TEST(text.find("stichotrope_block_duration_seconds_count" + labels) != std::string::npos);
  BOOST_TEST(text.find("# TYPE stichotrope_block_duration_seconds histogram\n") != std::string::npos);
  // Every bucket line, in order: cumulative, non-decreasing, ending at the count.
  std::vector<std::pair<std::string, std::uint64_t>> buckets;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("stichotrope_block_duration_seconds_bucket", 0) != 0) continue;
    const auto le = line.find("le=\"");
    buckets.emplace_back(line.substr(le + 4, line.find('"', le + 4) - le - 4),
                         std::stoull(line.substr(line.rfind(' ') + 1)));
  }
  BOOST_TEST(buckets.size() == 39u); // 16 ns .. 2^41 ns, then +Inf
  for (std::size_t i = 1; i < buckets.size(); ++i) BOOST_TEST(buckets[i].second >= buckets[i - 1].second);
  BOOST_TEST(buckets.back().first == "+Inf");
  BOOST_TEST(buckets.back().second == 8u);
  auto at = [&](const std::string& le) {
    for (const auto& [l, n] : buckets)
      if (l == le) return n;
    BOOST_FAIL("no bucket le=" + le);
    return std::uint64_t{0};
  };
  BOOST_TEST(at("1.5e-08") == 2u);   // <= 15 ns: 3, 15
  BOOST_TEST(at("3.1e-08") == 4u);   // <= 31 ns
  BOOST_TEST(at("1.023e-06") == 6u); // <= 1023 ns
  BOOST_TEST(at("2.047e-06") == 7u); // <= 2047 ns: 1024
  BOOST_TEST(at("0.004194303") == 7u);
  BOOST_TEST(at("0.008388607") == 8u); // 5 ms
  BOOST_TEST(text.find("stichotrope_block_duration_seconds_sum" + labels) != std::string::npos);
  for (const char* counter : {"stichotrope_block_self_seconds_total", "stichotrope_block_active_seconds_total",
                              "stichotrope_block_suspended_seconds_total", "stichotrope_block_suspensions_total",
                              "stichotrope_block_abandoned_total"}) {
    BOOST_TEST_INFO(counter);
    BOOST_TEST(text.find(std::string("# TYPE ") + counter + " counter\n") != std::string::npos);
    BOOST_TEST(text.find(counter + labels) != std::string::npos);
  }
  BOOST_TEST(to_prometheus({}).find("stichotrope_block_duration_seconds_bucket") == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(waits)

namespace {

WaitResults wait(std::uint32_t site, std::uint32_t parent, std::string name, std::string awaited, std::uint64_t count,
                 std::uint64_t total) {
  WaitResults w;
  w.site_id = site;
  w.parent_site_id = parent;
  w.name = std::move(name);
  w.file = "/src/" + w.name.substr(0, w.name.find(':'));
  w.line = static_cast<std::uint32_t>(std::stoul(w.name.substr(w.name.find(':') + 1)));
  w.column = 7;
  w.function = "handler()";
  w.awaited = std::move(awaited);
  w.count = count;
  w.total_time_ns = total;
  w.min_time_ns = total / count;
  w.max_time_ns = total / count;
  for (std::uint64_t i = 0; i < count; ++i) w.histogram.add(total / count);
  return w;
}

/// "handle" (1000 ns, 900 of them suspended): 600 ns on a timer at
/// server.cpp:88, 300 ns under its await of a child at server.cpp:90, in
/// which the child waited on db.cpp:40. The child block "lookup" (300 ns,
/// all of it on db.cpp:40) ran inside it.
ProfilerResults with_waits() {
  ProfilerResults r;
  r.profiler_name = "w";
  TrackResults t;
  t.blocks.push_back(block("handle", 0, 1, 1000, 1000, 1000));
  t.blocks.push_back(block("lookup", 1, 1, 300, 300, 300));
  auto& handle = t.blocks[0];
  handle.callers = {{no_parent, 1, 1000}};
  handle.self_time_ns = 700;
  handle.suspended_time_ns = 900;
  handle.suspensions = 2;
  handle.waits = {wait(2, no_parent, "server.cpp:88", "timer", 1, 600), wait(3, no_parent, "server.cpp:90", "", 1, 300),
                  wait(4, 3, "db.cpp:40", "query", 1, 300)};
  auto& lookup = t.blocks[1];
  lookup.callers = {{0, 1, 300}};
  lookup.suspended_time_ns = 300;
  lookup.suspensions = 1;
  lookup.waits = {wait(5, no_parent, "db.cpp:40", "query", 1, 300)};
  r.tracks = {t};
  return r;
}

} // namespace

BOOST_AUTO_TEST_CASE(csv_carries_each_blocks_waits_in_one_field) {
  const std::string csv = to_csv(with_waits());
  BOOST_TEST(
      csv.find(",server.cpp:88 [timer] 1 600; server.cpp:90 1 300; server.cpp:90 > db.cpp:40 [query] 1 300\r\n") !=
      std::string::npos);
  BOOST_TEST(csv.find(",db.cpp:40 [query] 1 300\r\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(json_carries_the_waits_and_reads_back_equal) {
  const ProfilerResults r = with_waits();
  const auto back = read_results_json(to_json(r));
  BOOST_TEST_REQUIRE(back.has_value());
  BOOST_TEST(back->tracks[0].blocks[0].waits == r.tracks[0].blocks[0].waits);
  BOOST_TEST(back->tracks[0].blocks[1].waits == r.tracks[0].blocks[1].waits);
  BOOST_TEST(to_json(*back) == to_json(r));
  // A wait whose parent is not a wait of the block still reads; a broken one is an error.
  std::string broken = to_json(r, -1);
  broken.replace(broken.find("\"count\": 1"), 10, "\"count\": \"x\"");
  const auto bad = read_results_json(broken, "broken.json");
  BOOST_TEST_REQUIRE(!bad.has_value());
  BOOST_TEST(bad.error().message.find("waits[0].count") != std::string::npos, bad.error().message);
}

BOOST_AUTO_TEST_CASE(merging_results_adds_the_same_waits_and_keeps_the_tree) {
  ProfilerResults r = with_waits();
  r.merge(with_waits());
  const auto& handle = r.tracks[0].blocks[0];
  BOOST_TEST_REQUIRE(handle.waits.size() == 3u);
  BOOST_TEST(handle.waits[0].count == 2u);
  BOOST_TEST(handle.waits[0].total_time_ns == 1200u);
  BOOST_TEST(handle.waits[2].parent_site_id == 3u);
  BOOST_TEST(handle.waits[2].histogram.total() == 2u);
  BOOST_TEST(handle.wait_path(handle.waits[2]) == "server.cpp:90 > db.cpp:40");
  BOOST_TEST(handle.wait_depth(handle.waits[2]) == 1u);
  BOOST_TEST(handle.wait_depth(handle.waits[0]) == 0u);
}

BOOST_AUTO_TEST_CASE(the_table_says_where_each_block_waited) {
  const std::string table = to_table(with_waits());
  BOOST_TEST(table.find("  waited on") != std::string::npos);
  BOOST_TEST(table.find("\n  handle (suspended 900 ns)\n") != std::string::npos);
  BOOST_TEST(table.find("\n    server.cpp:88  timer ") != std::string::npos);
  BOOST_TEST(table.find("\n    server.cpp:90 ") != std::string::npos);
  BOOST_TEST(table.find("\n      db.cpp:40  query ") != std::string::npos); // under the await of the child
  BOOST_TEST(table.find("66.67%") != std::string::npos);                    // 600 of 900 ns suspended
}

BOOST_AUTO_TEST_CASE(folded_stacks_end_in_wait_frames_without_counting_a_childs_wait_twice) {
  const std::string folded = to_folded(with_waits());
  // handle's self time (700) is its timer wait (600) and 100 ns on the CPU;
  // its wait under the child await belongs to lookup, which ran inside it.
  BOOST_TEST(folded.find("handle;[wait] server.cpp:88 timer 600\n") != std::string::npos, folded);
  BOOST_TEST(folded.find("handle 100\n") != std::string::npos, folded);
  BOOST_TEST(folded.find("handle;lookup;[wait] db.cpp:40 query 300\n") != std::string::npos, folded);
  BOOST_TEST(folded.find("handle;[wait] server.cpp:90") == std::string::npos, folded);
  // A wait with no line (other flows run inline) is named once.
  ProfilerResults inline_run;
  TrackResults t;
  t.blocks.push_back(block("parent", 0, 1, 10, 10, 10));
  t.blocks[0].callers = {{no_parent, 1, 10}};
  WaitResults w;
  w.site_id = 1;
  w.name = w.awaited = "(other flows ran inline)";
  w.count = 1;
  w.total_time_ns = w.min_time_ns = w.max_time_ns = 4;
  t.blocks[0].waits = {w};
  t.blocks[0].suspended_time_ns = 4;
  inline_run.tracks = {t};
  BOOST_TEST(to_folded(inline_run) == "parent 6\nparent;[wait] (other flows ran inline) 4\n", to_folded(inline_run));
  // On-CPU stacks have no waits.
  BOOST_TEST(to_folded(with_waits(), fold_weight::active_time).find("[wait]") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(results_of_two_processes_merge_their_waits_by_place_and_compare_them) {
  ProfilerResults a = with_waits();
  ProfilerResults b = with_waits(); // another process: its sites registered in another order
  for (auto& blk : b.tracks[0].blocks)
    for (auto& w : blk.waits) {
      w.site_id += 40;
      if (w.parent_site_id != no_parent) w.parent_site_id += 40;
      w.total_time_ns *= 2;
    }
  const ProfilerResults merged = merge_results({a, b});
  const auto& handle = merged.tracks[0].blocks[0];
  BOOST_TEST_REQUIRE(handle.waits.size() == 3u);
  BOOST_TEST(handle.waits[0].count == 2u);
  BOOST_TEST(handle.waits[0].total_time_ns == 1800u); // 600 + 1200
  BOOST_TEST(handle.wait_path(handle.waits[2]) == "server.cpp:90 > db.cpp:40");
  BOOST_TEST(handle.waits[2].total_time_ns == 900u);
  const Comparison c = compare_results(a, b, 10.0);
  BOOST_TEST_REQUIRE(c.blocks.size() == 2u);
  BOOST_TEST_REQUIRE(c.blocks[0].waits.size() == 3u);
  BOOST_TEST(c.blocks[0].waits[0].path == "server.cpp:88 timer");
  BOOST_TEST(c.blocks[0].waits[0].base_ns == 600u);
  BOOST_TEST(c.blocks[0].waits[0].current_ns == 1200u);
  BOOST_TEST(c.blocks[0].waits[0].change_pct == 100.0);
  BOOST_TEST(to_text(c).find("waited on server.cpp:90 > db.cpp:40 query") != std::string::npos, to_text(c));
}

BOOST_AUTO_TEST_CASE(prometheus_has_a_wait_histogram_per_await) {
  const std::string text = to_prometheus({with_waits()});
  BOOST_TEST(text.find("# TYPE stichotrope_wait_duration_seconds histogram\n") != std::string::npos);
  BOOST_TEST(text.find("stichotrope_wait_duration_seconds_count{profiler=\"w\",track=\"0\",track_name=\"\",block="
                       "\"handle\",site=\"app.cpp:10\",await=\"server.cpp:88:7\",await_path=\"server.cpp:88\","
                       "awaited=\"timer\",top_level=\"true\"} 1\n") != std::string::npos);
  BOOST_TEST(text.find("await_path=\"server.cpp:90 > db.cpp:40\",awaited=\"query\",top_level=\"false\"} 1\n") !=
             std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
