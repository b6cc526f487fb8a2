// Runtime control: pause a profiler, switch tracks off, switch everything off.
#include <iostream>
import stichotrope;

int main() {
  stichotrope::Profiler profiler{"MyApp"};
  auto work = [&](int track) { auto s = profiler.block(track, "work"); };

  work(0); // recorded

  profiler.stop();  // pause profiling
  work(0);          // not recorded
  profiler.start(); // resume

  (void)profiler.set_track_enabled(0, false); // disable track 0, on every thread
  work(0);                                    // not recorded
  work(1);                                    // recorded: track 1 is still on
  (void)profiler.set_track_enabled(0, true);

  stichotrope::set_global_enabled(false); // every profiler: two loads and a branch per block
  work(0);                                // not recorded
  stichotrope::set_global_enabled(true);

  // Bad input is an error value, not a crash.
  if (auto r = profiler.set_track_enabled(300, true); !r) std::cout << "error: " << r.error() << '\n';

  profiler.print_results();
  const auto results = profiler.get_results();
  auto hits = [&](int track) { // a track is absent when instrumentation is compiled out
    const auto* t = results.find_track(track);
    return t != nullptr ? t->total_hits() : 0;
  };
  std::cout << "track 0 hits: " << hits(0) << ", track 1 hits: " << hits(1) << '\n';
}
