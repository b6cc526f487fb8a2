// Nested blocks: self time and the call tree come from nesting on a thread.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <numeric>
#include <random>
#include <vector>
import stichotrope;

int main() {
  stichotrope::Profiler profiler{"DataPipeline"};

  auto process_pipeline = [&](std::uint32_t seed) {
    auto pipeline = profiler.block(0, "full_pipeline");
    std::vector<std::uint32_t> data;
    {
      auto load = profiler.block(1, "load_data");
      std::mt19937 rng(seed);
      data.resize(50'000);
      for (auto& x : data) x = rng();
      load.add_bytes(data.size() * sizeof(std::uint32_t));
    }
    {
      auto transform = profiler.block(1, "transform_data");
      std::sort(data.begin(), data.end());
      transform.add_bytes(data.size() * sizeof(std::uint32_t));
    }
    {
      auto save = profiler.block(1, "save_data");
      return std::accumulate(data.begin(), data.end(), std::uint64_t{0});
    }
  };

  std::uint64_t checksum = 0;
  for (std::uint32_t i = 0; i < 20; ++i) checksum += process_pipeline(i);

  profiler.print_results();
  const auto r = profiler.get_results();
  const auto* pipeline = r.find_block(0, "full_pipeline");
  if (pipeline == nullptr) return 0; // instrumentation compiled out
  std::cout << "full_pipeline: total " << stichotrope::format_time_ns(pipeline->total_time_ns) << ", self "
            << stichotrope::format_time_ns(pipeline->self_time_ns) << " (time outside its child blocks)\n"
            << "checksum " << checksum << '\n';
}
