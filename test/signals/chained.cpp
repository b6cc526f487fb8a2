// A program with its own SIGTERM handler, installed before the profiler: a
// SIGTERM writes the configured outputs (the profiler's results so far), then
// the program's handler runs and the program goes on; the outputs are
// written again, whole, when the profiler ends (docs/reliability.md,
// "Signals"). Exit status 0 when both files hold the hits recorded before
// each.
//     signals_chained_test work_dir
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <unistd.h>

import stichotrope;

namespace {

volatile std::sig_atomic_t handled = 0;
extern "C" void program_handler(int) { handled = 1; }

int fail(const std::string& message) {
  std::fprintf(stderr, "signals_chained_test: %s\n", message.c_str());
  return 1;
}

/// The hits of block "work" in the results file, or -1 with the reason said.
long long hits_in(const std::filesystem::path& file) {
  const auto r = stichotrope::load_results_json(file);
  if (!r) {
    std::fprintf(stderr, "signals_chained_test: %s\n", r.error().message.c_str());
    return -1;
  }
  for (const auto& track : r->tracks)
    for (const auto& b : track.blocks)
      if (b.name == "work") return static_cast<long long>(b.hit_count);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: signals_chained_test work_dir");
  const std::filesystem::path work = argv[1];
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);
  const auto file = work / "chained.json";

  struct sigaction own{};
  own.sa_handler = &program_handler;
  sigemptyset(&own.sa_mask);
  if (::sigaction(SIGTERM, &own, nullptr) != 0) return fail("sigaction failed");

  {
    stichotrope::Config config;
    config.outputs = std::vector<std::string>{file.string()};
    stichotrope::Profiler profiler{"chained", config};
    const auto site = *profiler.site(0, "work");
    for (int i = 0; i < 3; ++i) profiler.record(site, std::chrono::microseconds(10));

    ::kill(::getpid(), SIGTERM);
    for (int i = 0; i < 1000 && handled == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (handled == 0) return fail("the program's own handler never ran");
    if (const long long n = hits_in(file); n != 3)
      return fail("after SIGTERM the outputs held " + std::to_string(n) + " hits of 3");

    for (int i = 0; i < 2; ++i) profiler.record(site, std::chrono::microseconds(10));
  } // the profiler ends: its outputs are written again
  if (const long long n = hits_in(file); n != 5)
    return fail("at the profiler's end the outputs held " + std::to_string(n) + " hits of 5");
  std::puts("signals_chained_test: written on SIGTERM (3 hits) and at the end (5 hits); the program's handler ran");
  return 0;
}
