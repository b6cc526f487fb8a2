// Basic usage: the seed's first example, in C++.
#include <chrono>
#include <cmath>
#include <iostream>
#include <numeric>
#include <thread>
#include <vector>
import stichotrope;

namespace {
std::vector<double> transform(std::vector<double> data) {
  for (auto& x : data) x = std::sqrt(x) * 2.0;
  return data;
}
double query_database() {
  std::this_thread::sleep_for(std::chrono::milliseconds(2)); // stands in for a round trip
  return 42.0;
}
} // namespace

int main() {
  stichotrope::Profiler profiler{"MyApplication"};

  // @profiler.track(0, "process_data")
  auto process_data =
      profiler.track(0, "process_data", [](std::vector<double> data) { return transform(std::move(data)); });

  // with profiler.block(1, "database_query"):
  auto complex_function = [&] {
    auto scope = profiler.block(1, "database_query");
    return query_database();
  };

  std::vector<double> data(10'000);
  std::iota(data.begin(), data.end(), 1.0);
  double checksum = 0;
  for (int i = 0; i < 50; ++i) {
    checksum += process_data(data).back();
    checksum += complex_function();
  }

  const stichotrope::ProfilerResults results = profiler.get_results();
  profiler.print_results();
  const auto* track0 = results.find_track(0); // null when instrumentation is compiled out
  std::cout << profiler << "\nchecksum " << checksum << ", blocks on track 0: " << (track0 ? track0->blocks.size() : 0)
            << '\n';
}
