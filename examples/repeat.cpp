// Repetition testing: how fast is one function, and is a second version of
// it faster? Two ways of copying 64 KiB, each run until its fastest run has
// not improved for 100 ms (after a warm-up), then compared. Every run is also
// a hit of its block: the table shows them with the repetitions' statistics.
//
//   example_repeat [RESULTS_JSON]   also writes the results (repetitions
//                                   included) for `stichotrope compare-repeat`
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <vector>
import stichotrope;

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  stichotrope::Profiler profiler{"repeat"};
  std::vector<char> from(64 * 1024, 'x'), to(64 * 1024);
  const stichotrope::RepeatOptions options{.until_no_improvement = 100ms, .warmup = 10, .time_limit = 5s};

  auto memcpy_copy = profiler.repeat(
      0, "copy_64k memcpy",
      [&]() -> std::uint64_t {
        std::memcpy(to.data(), from.data(), from.size());
        return from.size(); // bytes: the results carry throughput
      },
      options);
  auto byte_copy = profiler.repeat(
      0, "copy_64k byte loop",
      [&]() -> std::uint64_t {
        volatile char* out = to.data(); // one byte at a time, as written
        for (std::size_t i = 0; i < from.size(); ++i) out[i] = from[i];
        return from.size();
      },
      options);
  if (!memcpy_copy || !byte_copy) {
    std::cerr << "repeat: " << (memcpy_copy ? byte_copy.error() : memcpy_copy.error()) << '\n';
    return 1;
  }
  profiler.print_results();
  // The byte loop, compared with memcpy: named for the second.
  std::cout << stichotrope::to_text(stichotrope::compare_repetitions(*memcpy_copy, *byte_copy));
  if (argc > 1)
    if (auto written = profiler.export_json(argv[1]); !written) {
      std::cerr << "repeat: " << written.error() << '\n';
      return 1;
    }
  const bool sane = memcpy_copy->runs > 0 && memcpy_copy->min_ns <= memcpy_copy->median_ns &&
                    memcpy_copy->median_ci_low_ns <= memcpy_copy->median_ns && byte_copy->runs > 0 &&
                    memcpy_copy->best_bytes_per_second > 0;
  return sane ? 0 : 1;
}
