module;
#include <optional>
#include <span>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string_view>
export module stichotrope:clock;

export namespace stichotrope {

/// Where timestamps come from; reported in every result.
enum class clock_source : std::uint8_t {
  tsc,          ///< the CPU's invariant time-stamp counter, calibrated to ns
  steady_clock, ///< std::chrono::steady_clock, already in ns
};

constexpr std::string_view to_string(clock_source s) noexcept {
  return s == clock_source::tsc ? "tsc" : "steady_clock";
}
inline std::ostream& operator<<(std::ostream& os, clock_source s) { return os << to_string(s); }

/// The calibration in force: ns = (ticks * mult) >> 32.
struct clock_calibration {
  clock_source source = clock_source::steady_clock;
  std::uint64_t mult = std::uint64_t{1} << 32;
  double ticks_per_ns = 1.0;
};

/// Detects the counter and calibrates it once per process (about 20 ms the
/// first time, nothing afterwards). Every Profiler calls it on construction.
const clock_calibration& calibrate_clock();

} // namespace stichotrope

namespace stichotrope::detail {

// Set once by calibrate_clock() before any Profiler exists; read relaxed.
// Not exported: importers reach them through the inline functions below.
inline std::atomic<bool> use_tsc{false};
inline std::atomic<std::uint64_t> ns_mult{std::uint64_t{1} << 32};
// Timeline times are ns since this counter value, taken at calibration.
inline std::atomic<std::uint64_t> epoch_ticks{0};

inline std::uint64_t steady_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

/// One raw timestamp. Hot path: never locks, never allocates.
export inline std::uint64_t now_ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  if (use_tsc.load(std::memory_order_relaxed)) return __builtin_ia32_rdtsc();
#endif
  return steady_ns();
}

/// A timestamp taken in program order: every earlier instruction has
/// finished, and no later one has started (a fence on each side of the
/// read, as the kernel's clock_gettime reads the TSC). For Profiler::repeat,
/// whose runs may be a few hundred ns: an unordered read can be taken while
/// the run's last instructions are still executing (docs/repetition.md).
export inline std::uint64_t now_ticks_ordered() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  if (use_tsc.load(std::memory_order_relaxed)) {
    __builtin_ia32_lfence();
    const std::uint64_t t = __builtin_ia32_rdtsc();
    __builtin_ia32_lfence();
    return t;
  }
#endif
  return steady_ns();
}

/// Converts a tick difference to ns with one multiply. Counters that went
/// backwards (a TSC read on another core) give 0, never a huge value.
export inline std::uint64_t ticks_to_ns(std::uint64_t begin, std::uint64_t end) noexcept {
  if (end <= begin) return 0;
  const unsigned __int128 wide = static_cast<unsigned __int128>(end - begin) * ns_mult.load(std::memory_order_relaxed);
  return static_cast<std::uint64_t>(wide >> 32);
}

namespace testing {
// The calibration's arithmetic (src/clock.cpp), which the tests check.
/// One counter read bracketed by two clock reads (ns): the narrower the
/// bracket, the better the pair ties the counter to the clock.
export struct clock_pair {
  std::uint64_t ns_before = 0;
  std::uint64_t ticks = 0;
  std::uint64_t ns_after = 0;
};

/// Counters per ns from pairs taken at the two ends of a window: at each end
/// the narrowest pair is kept; a window whose best pair is wider than
/// `max_bracket_ns` (the thread was preempted while taking every pair) gives
/// nothing, and the caller measures again. Pure, so that tests can feed it
/// a preemption.
export std::optional<double> ticks_per_ns_from(std::span<const clock_pair> start, std::span<const clock_pair> end,
                                               std::uint64_t max_bracket_ns);
} // namespace testing

/// Nanoseconds since the clock's epoch (its calibration): the time base of
/// timelines and of the exporters' uptime.
export inline std::uint64_t ns_since_epoch() noexcept {
  return ticks_to_ns(epoch_ticks.load(std::memory_order_relaxed), now_ticks());
}

} // namespace stichotrope::detail
