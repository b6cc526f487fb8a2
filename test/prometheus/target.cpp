// A program that records known counts and serves them on /metrics (the
// address comes from STICHOTROPE_PROMETHEUS, set by run.py: no code here
// names it). Prints READY, then waits for a line on stdin.
#include <chrono>
#include <iostream>
#include <string>
import stichotrope;

int main() {
  stichotrope::Profiler profiler{"promtest"};
  (void)profiler.set_track_name(1, "Database \"main\"");
  for (int i = 0; i < 1234; ++i) profiler.record(0, "alpha", std::chrono::nanoseconds(1000 + i % 5000));
  for (int i = 0; i < 567; ++i) profiler.record(1, "quote\"back\\slash\nline", std::chrono::nanoseconds(2'000'000 + i));
  const auto r = profiler.get_results();
  for (const auto& d : r.diagnostics) {
    std::cerr << "diagnostic: " << d << '\n';
    return 1; // e.g. the endpoint could not listen
  }
  std::cout << "READY" << std::endl;
  std::string line;
  std::getline(std::cin, line);
  return 0;
}
