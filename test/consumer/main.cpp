#include <iostream>
import stichotrope;

int main() {
  stichotrope::Profiler profiler{"consumer"};
  auto twice = profiler.track(0, "twice", [](int x) { return 2 * x; });
  int sum = 0;
  for (int i = 0; i < 10; ++i) {
    auto scope = profiler.block(1, "loop");
    sum += twice(i);
  }
  const auto results = profiler.get_results();
  const auto* b = results.find_block(0, "twice");
  if (sum != 90 || b == nullptr || b->hit_count != 10) {
    std::cerr << "consumer: unexpected results\n";
    return 1;
  }
  std::cout << "consumer: installed stichotrope works (" << results.total_hits() << " hits)\n";
  return 0;
}
