// Configuration: code > environment > TOML file > defaults; every bad value
// an Error naming the variable, or the file, line and key; a profiler with a
// broken configuration records with the defaults and says so; outputs
// written when the profiler ends.
#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <iostream>
#include <algorithm>
#include <string>
import stichotrope;

using namespace stichotrope;
namespace fs = std::filesystem;

namespace {
struct environment {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> lookup() const {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("stichotrope-config-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

std::string error_of(const environment& env) {
  auto c = config_from_environment(env.lookup());
  BOOST_REQUIRE(!c.has_value());
  return c.error().message;
}

std::string toml_error(const std::string& text) {
  auto c = config_from_toml(text, "app.toml", "MyApp");
  BOOST_REQUIRE(!c.has_value());
  return c.error().message;
}
} // namespace

BOOST_AUTO_TEST_SUITE(environment_variables)

BOOST_AUTO_TEST_CASE(every_variable_is_read) {
  environment env{{{"STICHOTROPE_ENABLED", "0"},
                   {"STICHOTROPE_TRACKS_DISABLED", "1, 3"},
                   {"STICHOTROPE_TIMELINE", "4096"},
                   {"STICHOTROPE_TIMELINE_WHEN_FULL", "keep_first"},
                   {"STICHOTROPE_OUTPUT", "results.json, {name}-{pid}.csv"},
                   {"STICHOTROPE_PROMETHEUS", "127.0.0.1:9464"},
                   {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"},
                   {"OTEL_SERVICE_NAME", "svc"},
                   {"OTEL_RESOURCE_ATTRIBUTES", "team=a,zone=b"},
                   {"OTEL_METRIC_EXPORT_INTERVAL", "5000"}}};
  auto c = config_from_environment(env.lookup());
  BOOST_REQUIRE(c.has_value());
  BOOST_TEST(*c->enabled == false);
  BOOST_TEST(c->tracks_enabled.size() == 2u);
  BOOST_TEST(c->tracks_enabled.at(3) == false);
  BOOST_TEST(*c->timeline_events == 4096u);
  BOOST_TEST((*c->timeline_when_full == overflow_policy::keep_first));
  BOOST_TEST(c->outputs->size() == 2u);
  BOOST_TEST(c->outputs->at(1) == "{name}-{pid}.csv");
  BOOST_TEST(*c->http == "127.0.0.1:9464");
  BOOST_TEST(*c->otlp_endpoint == "http://127.0.0.1:4318");
  BOOST_TEST(*c->service_name == "svc");
  BOOST_TEST(*c->resource_attributes == "team=a,zone=b");
  BOOST_TEST(*c->export_interval_ms == 5000u);
  BOOST_TEST((config_from_environment(environment{}.lookup()).value() == Config{})); // nothing set
}

BOOST_AUTO_TEST_CASE(the_http_endpoint_wins_over_its_older_name) {
  auto c = config_from_environment(
      environment{{{"STICHOTROPE_PROMETHEUS", "127.0.0.1:1111"}, {"STICHOTROPE_HTTP", "127.0.0.1:2222"}}}.lookup());
  BOOST_REQUIRE(c.has_value());
  BOOST_TEST(*c->http == "127.0.0.1:2222");
  auto old = config_from_environment(environment{{{"STICHOTROPE_PROMETHEUS", "127.0.0.1:1111"}}}.lookup());
  BOOST_TEST(*old->http == "127.0.0.1:1111");
  auto file = config_from_toml("prometheus = \"127.0.0.1:1\"\nhttp = \"127.0.0.1:2\"\n", "f.toml", "P");
  BOOST_REQUIRE(file.has_value());
  BOOST_TEST(*file->http == "127.0.0.1:2");
}

BOOST_AUTO_TEST_CASE(each_bad_value_names_its_variable_and_value) {
  const std::pair<const char*, const char*> cases[] = {
      {"STICHOTROPE_ENABLED", "yes"},
      {"STICHOTROPE_TRACKS_DISABLED", "1,256"},
      {"STICHOTROPE_TRACKS_DISABLED", "x"},
      {"STICHOTROPE_TIMELINE", "-1"},
      {"STICHOTROPE_TIMELINE", "12abc"},
      {"STICHOTROPE_TIMELINE_WHEN_FULL", "latest"},
      {"STICHOTROPE_OUTPUT", "results.xml"},
      {"STICHOTROPE_OUTPUT", ","},
      {"STICHOTROPE_PROMETHEUS", "9464"},
      {"STICHOTROPE_PROMETHEUS", "127.0.0.1:0"},
      {"STICHOTROPE_PROMETHEUS", "127.0.0.1:70000"},
      {"STICHOTROPE_HTTP", "localhost"},
      {"STICHOTROPE_HTTP", "127.0.0.1:http"},
      {"OTEL_METRIC_EXPORT_INTERVAL", "0"},
      {"OTEL_METRIC_EXPORT_INTERVAL", "soon"},
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"},
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"},
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://"},
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://:4318"},
      {"OTEL_RESOURCE_ATTRIBUTES", "team"},
      {"OTEL_RESOURCE_ATTRIBUTES", "team=a,=b"},
  };
  for (auto [name, value] : cases) {
    const std::string message = error_of(environment{{{name, value}}});
    BOOST_TEST_INFO(name << "=" << value << ": " << message);
    BOOST_TEST(message.find(name) != std::string::npos);
    BOOST_TEST(message.find(std::string("'") + value + "'") != std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(toml_file)

BOOST_AUTO_TEST_CASE(top_level_keys_then_the_profilers_own_section) {
  const std::string text = R"(
enabled = true
output = ["all.json"]
prometheus = "127.0.0.1:9464"
[timeline]
events = 1024
when_full = "keep_latest"
[tracks]
0 = { name = "Main" }
2 = { name = "Database", enabled = false }
[otel]
endpoint = "http://127.0.0.1:4317"
service_name = "svc"
export_interval_ms = 1000
[profiler.MyApp]
output = "myapp.csv"
[profiler.MyApp.tracks]
2 = { enabled = true }
[profiler.Other]
output = "other.json"
)";
  auto c = config_from_toml(text, "app.toml", "MyApp");
  BOOST_REQUIRE_MESSAGE(c.has_value(), (c.has_value() ? std::string() : c.error().message));
  BOOST_TEST(*c->enabled);
  BOOST_TEST(c->outputs->size() == 1u);
  BOOST_TEST(c->outputs->front() == "myapp.csv"); // the section wins
  BOOST_TEST(c->tracks_enabled.at(2) == true);    // the section wins
  BOOST_TEST(c->track_names.at(2) == "Database"); // the top level fills the rest
  BOOST_TEST(*c->timeline_events == 1024u);
  BOOST_TEST(*c->otlp_endpoint == "http://127.0.0.1:4317");
  BOOST_TEST(*c->export_interval_ms == 1000u);
  auto other = config_from_toml(text, "app.toml", "Unnamed");
  BOOST_TEST(other->outputs->front() == "all.json");
}

BOOST_AUTO_TEST_CASE(each_bad_key_names_the_file_line_and_key) {
  const std::pair<std::string, std::string> cases[] = {
      {"enabled = 1", "app.toml:1:"},
      {"\n\noutput = 3", "key 'output'"},
      {"output = [\"a.xml\"]", "key 'output'"},
      {"prometheus = \"nowhere\"", "key 'prometheus'"},
      {"http = 9464", "key 'http'"},
      {"[timeline]\nevents = -5", "key 'timeline.events'"},
      {"[timeline]\nwhen_full = \"sometimes\"", "key 'timeline.when_full'"},
      {"[tracks]\n300 = { name = \"x\" }", "key 'tracks.300'"},
      {"[tracks]\n1 = { name = \"\" }", "key 'tracks.1.name'"},
      {"[tracks]\n1 = { colour = \"red\" }", "key 'tracks.1.colour'"},
      {"[otel]\nexport_interval_ms = 0", "key 'otel.export_interval_ms'"},
      {"[otel]\nendpoint = \"localhost:4318\"", "key 'otel.endpoint'"},
      {"[otel]\nresource_attributes = \"zone\"", "key 'otel.resource_attributes'"},
      {"unknown = 1", "key 'unknown'"},
      {"[profiler.MyApp]\nenabled = \"no\"", "key 'profiler.MyApp.enabled'"},
      {"profiler = 3", "key 'profiler'"},
      {"enabled = ", "app.toml:1:"}, // not TOML at all
  };
  for (const auto& [text, expect] : cases) {
    const std::string message = toml_error(text);
    BOOST_TEST_INFO(text << " -> " << message);
    BOOST_TEST(message.find(expect) != std::string::npos);
    BOOST_TEST(message.rfind("app.toml:", 0) == 0);
  }
  // The line is the key's own.
  BOOST_TEST(toml_error("\n\noutput = 3").find("app.toml:3:") == 0u);
}

BOOST_AUTO_TEST_CASE(a_missing_file_is_an_io_error_naming_it) {
  auto c = load_config_file("/nonexistent/stichotrope.toml", "x");
  BOOST_REQUIRE(!c.has_value());
  BOOST_TEST((c.error().code == errc::io_error));
  BOOST_TEST(c.error().message.find("/nonexistent/stichotrope.toml") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(resolution)

BOOST_AUTO_TEST_CASE(code_wins_over_environment_which_wins_over_the_file) {
  const auto file = scratch("priority.toml");
  write(file, "output = \"file.json\"\nprometheus = \"127.0.0.1:1111\"\n[timeline]\nevents = 10\n"
              "[tracks]\n4 = { name = \"FromFile\" }\n");
  environment env{{{"STICHOTROPE_CONFIG", file.string()},
                   {"STICHOTROPE_PROMETHEUS", "127.0.0.1:2222"},
                   {"STICHOTROPE_OUTPUT", "env.json"}}};
  Config code;
  code.outputs = std::vector<std::string>{"code.json"};
  auto r = resolve_config(code, "P", env.lookup());
  BOOST_TEST(r.errors.empty());
  BOOST_TEST(r.config.outputs->front() == "code.json"); // code
  BOOST_TEST(*r.config.http == "127.0.0.1:2222");       // environment over the file
  BOOST_TEST(*r.config.timeline_events == 10u);         // the file
  BOOST_TEST(r.config.track_names.at(4) == "FromFile"); // the file
  BOOST_TEST(!r.config.enabled.has_value());            // defaults: unset
}

// Config::timeline (deprecated) still sets the capture when
// timeline_events is unset, above the environment; the new name wins.
BOOST_AUTO_TEST_CASE(the_deprecated_timeline_name_still_counts_below_the_new_one) {
  environment env{{{"STICHOTROPE_TIMELINE", "7"}}};
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  Config old_name;
  old_name.timeline = 20;
  auto r = resolve_config(old_name, "P", env.lookup());
  BOOST_TEST(*r.config.timeline_events == 20u); // the code's, by its old name, over the environment
  BOOST_TEST(*r.config.timeline == 20u);        // and mirrored
  Config both;
  both.timeline = 20;
  both.timeline_events = 30;
  BOOST_TEST(*resolve_config(both, "P", env.lookup()).config.timeline_events == 30u);
#pragma clang diagnostic pop
  BOOST_TEST(*resolve_config({}, "P", env.lookup()).config.timeline_events == 7u); // the environment
}

BOOST_AUTO_TEST_CASE(a_broken_source_is_left_out_whole_and_reported) {
  const auto file = scratch("broken.toml");
  write(file, "[timeline]\nevents = 10\n[tracks]\n1 = { enabled = \"no\" }\n");
  environment env{{{"STICHOTROPE_CONFIG", file.string()}, {"STICHOTROPE_TIMELINE", "many"}}};
  auto r = resolve_config({}, "P", env.lookup());
  BOOST_TEST(r.errors.size() == 2u);
  BOOST_TEST(!r.config.timeline_events.has_value()); // neither the variable nor the file's valid part
  BOOST_TEST(r.errors[0].message.find("STICHOTROPE_TIMELINE") != std::string::npos);
  BOOST_TEST(r.errors[1].message.find(file.string() + ":4:") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_bad_variable_is_left_out_alone_and_said_once_on_stderr) {
  environment env{{{"STICHOTROPE_ENABLED", "perhaps"},
                   {"STICHOTROPE_OUTPUT", "run.json"},
                   {"STICHOTROPE_TIMELINE", "lots"},
                   {"STICHOTROPE_TIMELINE_WHEN_FULL", "keep_first"}}};
  auto r = resolve_config({}, "P", env.lookup());
  BOOST_TEST_REQUIRE(r.errors.size() == 2u);
  BOOST_TEST(r.errors[0].message.find("STICHOTROPE_ENABLED='perhaps'") != std::string::npos, r.errors[0].message);
  BOOST_TEST(r.errors[1].message.find("STICHOTROPE_TIMELINE='lots'") != std::string::npos, r.errors[1].message);
  BOOST_TEST_REQUIRE(r.config.outputs.has_value()); // the valid variables still apply
  BOOST_TEST(r.config.outputs->front() == "run.json");
  BOOST_TEST((r.config.timeline_when_full == overflow_policy::keep_first));
  BOOST_TEST(!r.config.enabled.has_value());
  // A profiler says it on stderr, once per process, and keeps it as a diagnostic.
  ::setenv("STICHOTROPE_ENABLED", "perhaps-not", 1);
  std::ostringstream captured;
  auto* old = std::cerr.rdbuf(captured.rdbuf());
  {
    Profiler a{"loud_a"};
    Profiler b{"loud_b"};
    const auto diags = a.get_results().diagnostics;
    BOOST_TEST(std::count_if(diags.begin(), diags.end(), [](const std::string& d) {
                 return d.find("STICHOTROPE_ENABLED='perhaps-not'") != std::string::npos;
               }) == 1);
  }
  std::cerr.rdbuf(old);
  ::unsetenv("STICHOTROPE_ENABLED");
  const std::string said = captured.str();
  BOOST_TEST(said.find("stichotrope: configuration: environment variable STICHOTROPE_ENABLED='perhaps-not': "
                       "expected 0 or 1 (left out; the rest of the configuration applies)\n") != std::string::npos,
             said);
  BOOST_TEST(said.find("perhaps-not") == said.rfind("perhaps-not")); // once, though two profilers read it
}

BOOST_AUTO_TEST_CASE(a_profiler_applies_its_configuration_and_reports_a_broken_one) {
  const auto file = scratch("apply.toml");
  write(file, "[tracks]\n1 = { name = \"Database\", enabled = false }\n[timeline]\nevents = 64\n");
  ::setenv("STICHOTROPE_CONFIG", file.string().c_str(), 1);
  {
    Profiler p{"applied"};
    BOOST_TEST(!p.is_track_enabled(1));
    BOOST_TEST(*p.track_name(1) == "Database");
    BOOST_TEST(p.is_timeline_on());
    p.block(1, "off").close();
    p.block(0, "on").close();
    const auto r = p.get_results();
    BOOST_TEST(r.total_hits() == 1u);
    BOOST_TEST(p.config().timeline_events.value() == 64u);
  }
  ::setenv("STICHOTROPE_TIMELINE", "lots", 1);
  {
    Profiler p{"broken"};
    p.block(0, "still").close(); // records with what is valid, and the defaults
    const auto r = p.get_results();
    BOOST_TEST(r.total_hits() == 1u);
    bool named = false;
    for (const auto& d : r.diagnostics) named = named || d.find("STICHOTROPE_TIMELINE='lots'") != std::string::npos;
    BOOST_TEST(named);
    BOOST_TEST(!p.is_track_enabled(1)); // the file still applies
    ::unsetenv("STICHOTROPE_TIMELINE");
    BOOST_TEST(p.reload_config().empty()); // fixed, re-read on request
    bool still = false;
    for (const auto& d : p.get_results().diagnostics)
      still = still || d.find("STICHOTROPE_TIMELINE") != std::string::npos;
    BOOST_TEST(!still);
  }
  Config code;
  code.tracks_enabled[1] = true; // the code wins over the file
  {
    Profiler p{"code", code};
    BOOST_TEST(p.is_track_enabled(1));
  }
  ::unsetenv("STICHOTROPE_CONFIG");
}

BOOST_AUTO_TEST_CASE(outputs_are_written_when_the_profiler_ends) {
  const auto dir = scratch("out");
  fs::create_directories(dir);
  const std::string pattern = (dir / "{name}-{pid}").string();
  ::setenv("STICHOTROPE_OUTPUT",
           (pattern + ".json," + pattern + ".csv," + pattern + ".txt," + pattern + ".trace.json," + pattern +
            ".speedscope.json," + pattern + ".folded")
               .c_str(),
           1);
  ::setenv("STICHOTROPE_TIMELINE", "256", 1);
  {
    Profiler p{"exit/job"};
    for (int i = 0; i < 3; ++i) p.block(0, "work").close();
  }
  ::unsetenv("STICHOTROPE_OUTPUT");
  ::unsetenv("STICHOTROPE_TIMELINE");
  const std::string base = (dir / ("exit_job-" + std::to_string(::getpid()))).string();
  for (const char* ext : {".json", ".csv", ".txt", ".trace.json", ".speedscope.json", ".folded"}) {
    BOOST_TEST_INFO(base + ext);
    BOOST_TEST(fs::exists(base + ext));
    BOOST_TEST(fs::file_size(base + ext) > 0u);
  }
  auto back = load_results_json(base + ".json");
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->find_block(0, "work")->hit_count == 3u);
  BOOST_TEST(expand_output_path("{name}.{pid}.json", "a/b") == "a_b." + std::to_string(::getpid()) + ".json");
}

BOOST_AUTO_TEST_SUITE_END()
