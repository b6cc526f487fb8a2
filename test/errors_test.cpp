// Bad input gets an Error value with a message, never a crash, never a half-written file.
#define BOOST_TEST_MODULE errors
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>
#include <fstream>
#include <sstream>
#include <string>
import stichotrope;

using namespace stichotrope;
namespace fs = std::filesystem;

namespace {
struct scratch_dir {
  fs::path path;
  scratch_dir() {
    path = fs::temp_directory_path() / ("stichotrope-errors-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~scratch_dir() { fs::remove_all(path); }
  std::size_t entries() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), {})); }
};
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }
} // namespace

BOOST_AUTO_TEST_SUITE(validation)

BOOST_AUTO_TEST_CASE(track_indices_out_of_range_are_errors) {
  Profiler p{"p"};
  for (int bad : {-1, max_tracks, 1000}) {
    const auto e = p.set_track_enabled(bad, false);
    BOOST_REQUIRE(!e.has_value());
    BOOST_TEST((e.error().code == errc::invalid_track));
    BOOST_TEST(contains(e.error().message, std::to_string(bad)));
    BOOST_TEST(!p.set_track_name(bad, "x").has_value());
    BOOST_TEST(!p.site(bad, "x").has_value());
    BOOST_TEST(!p.is_track_enabled(bad));
  }
  BOOST_TEST(p.set_track_enabled(max_tracks - 1, true).has_value());
}

BOOST_AUTO_TEST_CASE(empty_names_are_errors) {
  Profiler p{"p"};
  const auto e = p.set_track_name(0, "");
  BOOST_REQUIRE(!e.has_value());
  BOOST_TEST((e.error().code == errc::empty_name));
  const auto s = p.site(0, "");
  BOOST_REQUIRE(!s.has_value());
  BOOST_TEST((s.error().code == errc::empty_name));
  BOOST_TEST(contains(s.error().message, "errors_test.cpp"));
}

BOOST_AUTO_TEST_CASE(blocks_with_bad_input_are_inert_and_diagnosed) {
  Profiler p{"p"};
  {
    auto a = p.block(-1, "negative");
    auto b = p.block(max_tracks, "too_far");
    auto c = p.block(0, "");
    BOOST_TEST(!a.active());
    BOOST_TEST(!b.active());
    BOOST_TEST(!c.active());
  }
  auto tracked = p.track(999, "bad_track", [] { return 5; });
  BOOST_TEST(tracked() == 5); // the function still runs
  const auto r = p.get_results();
  BOOST_TEST(r.tracks.empty());
  BOOST_REQUIRE(r.diagnostics.size() == 4u);
  BOOST_TEST(contains(r.diagnostics[0], "track index -1 is out of range [0, 256)"));
  BOOST_TEST(contains(r.diagnostics[2], "block name must not be empty"));
  BOOST_TEST(contains(to_json(r), "track index 999"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(files)

BOOST_AUTO_TEST_CASE(exports_write_whole_files) {
  scratch_dir dir;
  Profiler p{"p"};
  {
    auto s = p.block(0, "x");
  }
  BOOST_TEST(p.export_csv(dir.path / "out.csv").has_value());
  BOOST_TEST(p.export_json(dir.path / "out.json").has_value());
  BOOST_TEST(slurp(dir.path / "out.csv").starts_with("Track,Block Name,"));
  BOOST_TEST(slurp(dir.path / "out.json").starts_with("{\n  \"profiler_name\": \"p\""));
  BOOST_TEST(dir.entries() == 2u); // no temporaries left behind
}

BOOST_AUTO_TEST_CASE(missing_parent_directory_is_an_error_naming_the_path) {
  scratch_dir dir;
  Profiler p{"p"};
  const auto target = dir.path / "no" / "such" / "dir" / "out.csv";
  const auto e = p.export_csv(target);
  BOOST_REQUIRE(!e.has_value());
  BOOST_TEST((e.error().code == errc::io_error));
  BOOST_TEST(contains(e.error().message, target.string()));
  BOOST_TEST(contains(e.error().message, "No such file or directory"));
}

BOOST_AUTO_TEST_CASE(full_disk_is_an_error) {
  if (!fs::exists("/dev/full")) return;
  Profiler p{"p"};
  {
    auto s = p.block(0, "x");
  }
  const auto e = p.export_json("/dev/full");
  BOOST_REQUIRE(!e.has_value());
  BOOST_TEST(contains(e.error().message, "/dev/full"));
  BOOST_TEST(contains(e.error().message, "No space left on device"));
  BOOST_TEST(fs::is_character_file("/dev/full")); // a device is written in place, never replaced
}

BOOST_AUTO_TEST_CASE(a_directory_where_a_file_is_expected_is_an_error) {
  scratch_dir dir;
  fs::create_directory(dir.path / "taken");
  Profiler p{"p"};
  const auto e = p.export_csv(dir.path / "taken");
  BOOST_REQUIRE(!e.has_value());
  BOOST_TEST(contains(e.error().message, "is a directory"));
  BOOST_TEST(fs::is_directory(dir.path / "taken"));
}

BOOST_AUTO_TEST_CASE(a_failed_export_keeps_the_existing_file_intact) {
  scratch_dir dir;
  // A name so long that the temporary beside it cannot be created.
  const auto target = dir.path / std::string(250, 'f');
  {
    std::ofstream(target) << "good old data";
  }
  Profiler p{"p"};
  {
    auto s = p.block(0, "x");
  }
  const auto e = p.export_csv(target);
  BOOST_REQUIRE(!e.has_value());
  BOOST_TEST(contains(e.error().message, "File name too long"));
  BOOST_TEST(slurp(target) == "good old data");
  BOOST_TEST(dir.entries() == 1u);
}

BOOST_AUTO_TEST_CASE(an_existing_file_is_replaced_whole_and_keeps_its_mode) {
  scratch_dir dir;
  const auto target = dir.path / "out.csv";
  {
    std::ofstream(target) << std::string(100000, 'z');
  }
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  Profiler p{"p"};
  BOOST_TEST(p.export_csv(target).has_value());
  const std::string now = slurp(target);
  BOOST_TEST(now.find('z') == std::string::npos);
  BOOST_TEST(now.ends_with("\r\n"));
  BOOST_TEST(
      (fs::status(target).permissions() == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read)));
}

BOOST_AUTO_TEST_CASE(an_empty_path_is_an_error) {
  Profiler p{"p"};
  BOOST_TEST(!p.export_csv(fs::path{}).has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(fault_injection)

namespace {
struct writer {
  const char* what;
  std::function<stichotrope::expected<void>(const fs::path&)> write;
};
std::vector<writer> every_writer(Profiler& p) {
  p.start_timeline();
  {
    auto b = p.block(0, "x");
  }
  const auto r = p.get_results();
  const auto t = p.get_timeline();
  return {
      {"csv", [r](const fs::path& f) { return export_csv(r, f); }},
      {"json", [r](const fs::path& f) { return export_json(r, f); }},
      {"chrome trace", [t](const fs::path& f) { return export_chrome_trace(t, f); }},
      {"speedscope", [t](const fs::path& f) { return export_speedscope(t, f); }},
      {"raw file", [](const fs::path& f) { return write_file(f, "content"); }},
  };
}
} // namespace

BOOST_AUTO_TEST_CASE(every_writer_reports_every_fault_and_leaves_nothing_behind) {
  scratch_dir dir;
  fs::create_directory(dir.path / "a_directory");
  const std::vector<std::pair<fs::path, std::string>> faults = {
      {"/dev/full", "No space left on device"},                                  // full disk
      {"/proc/stichotrope-fault.json", "/proc"},                                 // a read-only file system
      {dir.path / "a_directory", "is a directory"},                              // a directory where a file is expected
      {dir.path / std::string(300, 'n'), "File name too long"},                  // a name too long
      {dir.path / std::string(5000, 'p').insert(100, "/"), "too long"},          // a path too long
      {dir.path / "missing" / "parent" / "f.json", "No such file or directory"}, // a missing parent
  };
  Profiler p{"faults"};
  for (const auto& w : every_writer(p))
    for (const auto& [path, expect] : faults) {
      if (path == "/dev/full" && !fs::exists(path)) continue;
      const auto r = w.write(path);
      BOOST_TEST_REQUIRE(!r.has_value(), w.what << " to " << path.string().substr(0, 80));
      BOOST_TEST((r.error().code == errc::io_error));
      BOOST_TEST(r.error().message.find(expect) != std::string::npos,
                 w.what << ": '" << r.error().message.substr(0, 200) << "' lacks '" << expect << "'");
    }
  BOOST_TEST(dir.entries() == 1u); // only a_directory: no temporary left by any failure
  BOOST_TEST(fs::is_directory(dir.path / "a_directory"));
}

BOOST_AUTO_TEST_CASE(a_file_replaced_while_others_read_it_is_always_whole) {
  scratch_dir dir;
  const auto target = dir.path / "shared.json";
  Profiler p{"replaced"};
  for (int i = 0; i < 50; ++i) p.block(i % 8, "block " + std::to_string(i)).close();
  const auto r = p.get_results();
  BOOST_REQUIRE(export_json(r, target).has_value());
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, torn{0};
  std::thread reader([&] {
    while (!stop.load()) {
      auto back = load_results_json(target);
      if (back.has_value() && back->total_hits() == r.total_hits())
        ++reads;
      else
        ++torn;
    }
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w)
    writers.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (!export_json(r, target).has_value()) ++torn;
    });
  for (auto& t : writers) t.join();
  stop = true;
  reader.join();
  BOOST_TEST(torn.load() == 0); // every read saw a whole file: the old one or the new one
  BOOST_TEST(reads.load() > 0);
  BOOST_TEST(dir.entries() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
