module;
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
module stichotrope;

namespace stichotrope {
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

clock_calibration measure() {
  clock_calibration c;
#if defined(__x86_64__) || defined(__i386__)
  if (has_invariant_tsc()) {
    // Ticks per ns over a 20 ms window; both ends pair a steady_clock read with
    // a TSC read taken between two clock reads, so the error is a few ppm.
    auto pair = [] {
      const auto a = detail::steady_ns();
      const auto t = __builtin_ia32_rdtsc();
      const auto b = detail::steady_ns();
      return std::pair{a + (b - a) / 2, t};
    };
    const auto [ns0, t0] = pair();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto [ns1, t1] = pair();
    if (ns1 > ns0 && t1 > t0) {
      const double ticks_per_ns = static_cast<double>(t1 - t0) / static_cast<double>(ns1 - ns0);
      if (std::isfinite(ticks_per_ns) && ticks_per_ns > 0.01) {
        c.source = clock_source::tsc;
        c.ticks_per_ns = ticks_per_ns;
        c.mult = static_cast<std::uint64_t>(std::llround(4294967296.0 / ticks_per_ns));
      }
    }
  }
#endif
  return c;
}

} // namespace

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
