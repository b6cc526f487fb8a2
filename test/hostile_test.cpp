// Hostile names and values through every exporter: quotes, commas, newlines,
// control characters, invalid UTF-8, 64 KiB names; durations of zero and of
// years; a counter read that goes backwards; tracks at the limits.
#define BOOST_TEST_MODULE hostile
#include <boost/test/unit_test.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>
import stichotrope;

using namespace stichotrope;
using json = nlohmann::json;

namespace {

const std::vector<std::string>& hostile_names() {
  static const std::vector<std::string> names = {
      "comma,quote\"newline\nreturn\rend", std::string("ctl\x01\x1f\x7f!", 7),   "bad\xff\xfeutf8\xc3",
      std::string(65536, 'x') + "end",     "emoji \xf0\x9f\x98\x80 mu \xce\xbc", "semi;colon\ttab",
  };
  return names;
}

/// RFC 4180 reader: fields of each CRLF-terminated record.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"')
        field += '"', ++i;
      else if (c == '"')
        quoted = false;
      else
        field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(field)), field.clear();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      rows.back().push_back(std::move(field)), field.clear();
      rows.emplace_back();
      ++i;
    } else {
      field += c;
    }
  }
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

/// What a name becomes in ASCII-only JSON once decoded: invalid bytes are U+FFFD.
std::string json_visible(const std::string& s) {
  return json::parse(json(s).dump(-1, ' ', true, json::error_handler_t::replace)).get<std::string>();
}

ProfilerResults hostile_results(Profiler& p) {
  p.start_timeline();
  const auto& names = hostile_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto b = p.block(static_cast<int>(i % 4), std::string_view(names[i]));
  }
  p.record(5, "zero", std::chrono::nanoseconds(0));
  p.record(5, "years", std::chrono::hours(24 * 365 * 10));
  return p.get_results();
}

} // namespace

BOOST_AUTO_TEST_CASE(csv_keeps_every_name_byte_for_byte) {
  Profiler p{"hostile,\"csv\""};
  const auto r = hostile_results(p);
  const auto rows = parse_csv(to_csv(r));
  BOOST_REQUIRE(rows.size() == hostile_names().size() + 3); // header, names, zero, years
  for (std::size_t i = 0; i < hostile_names().size(); ++i) {
    BOOST_REQUIRE(rows[i + 1].size() == 22u);
    bool found = false;
    for (const auto& row : rows) found = found || row[1] == hostile_names()[i];
    BOOST_TEST(found, "name " << i << " not read back");
  }
}

BOOST_AUTO_TEST_CASE(json_is_ascii_parses_and_reads_back_identically) {
  Profiler p{"hostile \"json\" \xff"};
  const auto r = hostile_results(p);
  const std::string text = to_json(r);
  for (unsigned char c : text) BOOST_TEST_REQUIRE((c < 0x80 && (c >= 0x20 || c == '\n')));
  const json j = json::parse(text);
  std::vector<std::string> seen;
  for (const auto& t : j["tracks"])
    for (const auto& b : t["blocks"]) seen.push_back(b["name"].get<std::string>());
  for (const auto& n : hostile_names())
    BOOST_TEST((std::find(seen.begin(), seen.end(), json_visible(n)) != seen.end()));
  const auto back = read_results_json(text);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(to_json(*back) == text);
}

BOOST_AUTO_TEST_CASE(durations_of_zero_and_of_years_stay_exact) {
  Profiler p{"durations"};
  const auto r = hostile_results(p);
  const auto* zero = r.find_block(5, "zero");
  const auto* years = r.find_block(5, "years");
  const std::uint64_t ten_years = 24ull * 365 * 10 * 3600 * 1'000'000'000ull;
  BOOST_TEST(zero->min_time_ns == 0u);
  BOOST_TEST(zero->max_time_ns == 0u);
  BOOST_TEST(zero->percentiles().p99_ns == 0u);
  BOOST_TEST(years->max_time_ns == ten_years);
  BOOST_TEST(years->total_time_ns == ten_years);
  BOOST_TEST(years->percentiles().p50_ns == ten_years); // the open-ended last bucket clamps to max
  BOOST_TEST(to_csv(r).find("," + std::to_string(ten_years) + ",") != std::string::npos);
  BOOST_TEST(format_time_ns(ten_years) == "315360000.00 s");
  BOOST_TEST(to_table(r).find("315360000.00 s") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_counter_read_that_goes_backwards_is_zero_not_years) {
  BOOST_TEST(detail::ticks_to_ns(1000, 999) == 0u);
  BOOST_TEST(detail::ticks_to_ns(1000, 1000) == 0u);
  BOOST_TEST(detail::ticks_to_ns(UINT64_MAX - 1, 3) == 0u);
}

BOOST_AUTO_TEST_CASE(timeline_exporters_and_folded_stacks_stay_well_formed) {
  Profiler p{"hostile \"trace\""};
  const auto r = hostile_results(p);
  const auto t = p.get_timeline();
  std::ostringstream chrome, speed;
  write_chrome_trace(chrome, t);
  write_speedscope(speed, t);
  const json c = json::parse(chrome.str());
  const json s = json::parse(speed.str());
  std::size_t slices = 0;
  for (const auto& e : c["traceEvents"]) slices += e["ph"] == "X" ? 1 : 0;
  BOOST_TEST(slices == hostile_names().size());
  BOOST_TEST(s["shared"]["frames"].size() == hostile_names().size() + 2);
  // ^(.*) (\d+)$, checked by hand: std::regex recurses per character and
  // overflows the stack on a 64 KiB line.
  auto well_formed = [](const std::string& l) {
    const auto space = l.rfind(' ');
    if (space == std::string::npos || space + 1 == l.size()) return false;
    for (std::size_t i = space + 1; i < l.size(); ++i)
      if (l[i] < '0' || l[i] > '9') return false;
    return l.find('\n') == std::string::npos && l.find('\r') == std::string::npos;
  };
  std::istringstream folded(to_folded(r));
  std::size_t lines = 0;
  for (std::string l; std::getline(folded, l); ++lines) BOOST_TEST(well_formed(l));
  BOOST_TEST(lines >= hostile_names().size()); // every name on one line, whatever it contains
  BOOST_TEST(to_table(r).find("xxxxend") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(tracks_at_and_beyond_the_limits) {
  Profiler p{"limits"};
  {
    auto first = p.block(0, "first");
  }
  {
    auto last = p.block(max_tracks - 1, "last");
  }
  {
    auto beyond = p.block(max_tracks, "beyond");
    auto negative = p.block(-1, "negative");
    BOOST_TEST(!beyond.active());
    BOOST_TEST(!negative.active());
  }
  const auto r = p.get_results();
  BOOST_TEST(r.find_block(0, "first")->hit_count == 1u);
  BOOST_TEST(r.find_block(max_tracks - 1, "last")->hit_count == 1u);
  BOOST_TEST(r.diagnostics.size() == 2u);
  BOOST_TEST(read_results_json(to_json(r)).has_value());
}
