module;
#include <array>
#include <atomic>
#include <optional>
#include <span>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
module stichotrope;

namespace stichotrope {
using detail::testing::clock_pair;
namespace {

bool has_invariant_tsc() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) == 0 || eax < 0x80000007u) return false;
  if (__get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (edx & (1u << 8)) != 0;
#else
  return false;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
constexpr int pairs_per_end = 16;
constexpr std::uint64_t max_bracket_ns = 20'000; // a clean pair takes well under 1 us
constexpr int max_attempts = 8;

std::array<clock_pair, pairs_per_end> take_pairs() {
  std::array<clock_pair, pairs_per_end> out{};
  for (auto& p : out) {
    p.ns_before = detail::steady_ns();
    p.ticks = __builtin_ia32_rdtsc();
    p.ns_after = detail::steady_ns();
  }
  return out;
}
#endif

clock_calibration measure() {
  clock_calibration c;
#if defined(__x86_64__) || defined(__i386__)
  if (has_invariant_tsc()) {
    // Ticks per ns over a 20 ms window, each end tied to the clock by its
    // narrowest of 16 pairs: a preemption inside one pair (4 ms once skewed
    // every duration by 10 % for the process's life) costs that pair only;
    // a window where every pair at one end was preempted is measured again.
    for (int attempt = 0; attempt < max_attempts; ++attempt) {
      const auto start = take_pairs();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const auto end = take_pairs();
      if (const auto ticks_per_ns = detail::testing::ticks_per_ns_from(start, end, max_bracket_ns)) {
        c.source = clock_source::tsc;
        c.ticks_per_ns = *ticks_per_ns;
        c.mult = static_cast<std::uint64_t>(std::llround(4294967296.0 / *ticks_per_ns));
        break;
      }
    }
  }
#endif
  return c;
}

} // namespace

std::optional<double> detail::testing::ticks_per_ns_from(std::span<const clock_pair> start,
                                                         std::span<const clock_pair> end, std::uint64_t max_bracket) {
  auto best = [&](std::span<const clock_pair> pairs) -> std::optional<clock_pair> {
    std::optional<clock_pair> b;
    for (const auto& p : pairs) {
      if (p.ns_after < p.ns_before) continue;
      if (!b || p.ns_after - p.ns_before < b->ns_after - b->ns_before) b = p;
    }
    if (!b || b->ns_after - b->ns_before > max_bracket) return std::nullopt;
    return b;
  };
  const auto a = best(start), b = best(end);
  if (!a || !b) return std::nullopt;
  // The counter was read between the two clock reads: the midpoint.
  const double ns0 = static_cast<double>(a->ns_before) + static_cast<double>(a->ns_after - a->ns_before) / 2;
  const double ns1 = static_cast<double>(b->ns_before) + static_cast<double>(b->ns_after - b->ns_before) / 2;
  if (!(ns1 > ns0) || b->ticks <= a->ticks) return std::nullopt;
  const double ticks_per_ns = static_cast<double>(b->ticks - a->ticks) / (ns1 - ns0);
  if (!std::isfinite(ticks_per_ns) || ticks_per_ns <= 0.01) return std::nullopt;
  return ticks_per_ns;
}

const clock_calibration& calibrate_clock() {
  static const clock_calibration calibration = [] {
    const auto c = measure();
    detail::ns_mult.store(c.mult, std::memory_order_relaxed);
    detail::use_tsc.store(c.source == clock_source::tsc, std::memory_order_relaxed);
    detail::epoch_ticks.store(detail::now_ticks(), std::memory_order_relaxed);
    return c;
  }();
  return calibration;
}

} // namespace stichotrope
