// Repetition testing: how fast is one function, and is a second version of
// it faster? Two ways of copying 64 KiB, each run until its fastest run has
// not improved for 100 ms (after a warm-up), then compared. Every run is also
// a hit of its block: the table shows them with the repetitions' statistics.
// Then a hash of a few ns, one call a run and 1,000 calls a run.
//
//   example_repeat [RESULTS_JSON [KEY]]   also writes the results
//                                         (repetitions included) for
//                                         `stichotrope compare-repeat`
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
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
  // A function of a few ns: timed one call a run, the figure is mostly the
  // clock (its resolution and its two time stamps); timed 1,000 calls a run
  // (`batch`), every figure is per call.
  const std::string key = argc > 2 ? argv[2] : "a key of 24 bytes, hashed";
  volatile std::size_t sink = 0;
  const auto hash = [&] { sink = std::hash<std::string>{}(key); };
  auto hash_single = profiler.repeat(0, "hash 24 bytes, 1 call a run", hash, options);
  auto hash_batch = profiler.repeat(0, "hash 24 bytes, 1,000 calls a run", hash,
                                    {.until_no_improvement = 100ms, .warmup = 10, .batch = 1000, .time_limit = 5s});
  if (!memcpy_copy || !byte_copy || !hash_single || !hash_batch) {
    std::cerr << "repeat: "
              << (!memcpy_copy   ? memcpy_copy.error()
                  : !byte_copy   ? byte_copy.error()
                  : !hash_single ? hash_single.error()
                                 : hash_batch.error())
              << '\n';
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
                    memcpy_copy->best_bytes_per_second > 0 && hash_batch->batch == 1000 &&
                    hash_batch->per_call(hash_batch->min_ns) <= static_cast<double>(hash_single->min_ns);
  return sane ? 0 : 1;
}
