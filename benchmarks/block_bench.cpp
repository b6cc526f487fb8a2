// The cost of a block in every state docs/performance.md names, each family with its
// baseline in the same binary: two raw timestamp reads, an empty loop
// iteration, the uninstrumented function. Built twice by the report script:
// normally, and with -DSTICHOTROPE_INSTRUMENTATION=OFF (compiled out).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>
import stichotrope;

namespace {

stichotrope::Profiler profiler{"bench"};
const stichotrope::Site site =
    stichotrope::instrumentation_compiled_in ? *profiler.site(0, "site") : stichotrope::Site{};

// Every loop body's one required operation. benchmark::DoNotOptimize(++i)
// leaves i in a stack slot under clang (it takes the "m" alternative), so each
// loop carried a store-to-load dependency through memory whose cost varied from
// run to run of the same binary (the empty loop from 0.43 to 2.5 ns on the
// 2026-12-02 VM; docs/performance.md). keep() holds i in a register, and its
// memory clobber still makes every iteration re-read the profiler's state, as a
// block around real code would.
inline void keep(int& i) { asm volatile("" : "+r"(i) : : "memory"); }

[[gnu::noinline]] int work(int x) {
  keep(x);
  return x + 1;
}

// ---- baselines
void baseline_two_timestamps(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(stichotrope::detail::now_ticks());
    benchmark::DoNotOptimize(stichotrope::detail::now_ticks());
  }
}
BENCHMARK(baseline_two_timestamps);

// A probe of the machine, not of stichotrope: the two timestamp reads with 16
// independent load-add-stores after each, about the memory traffic of an
// enabled block's bookkeeping. Where the CPU overlaps that work with the
// timestamp reads it costs what the two reads cost (the 2026-11-24 VM: an
// enabled block at 1.0 x the reads); where it does not, the difference is
// the floor under any block that records in place (docs/performance.md).
std::uint64_t probe_cells[32];
void probe_two_timestamps_32_stores(benchmark::State& state) {
  for (auto _ : state) {
    const std::uint64_t a = stichotrope::detail::now_ticks();
    for (int k = 0; k < 16; ++k) {
      probe_cells[k] += a;
      asm volatile("" : : : "memory");
    }
    const std::uint64_t b = stichotrope::detail::now_ticks();
    for (int k = 16; k < 32; ++k) {
      probe_cells[k] += b - a;
      asm volatile("" : : : "memory");
    }
  }
}
BENCHMARK(probe_two_timestamps_32_stores);

void baseline_empty_loop(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) keep(++i);
}
BENCHMARK(baseline_empty_loop);

void baseline_function(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) keep(i = work(i));
}
BENCHMARK(baseline_function);

// ---- enabled
void block_site_seen(benchmark::State& state) { // the source_location path
  int i = 0;
  for (auto _ : state) {
    auto b = profiler.block(0, "seen");
    keep(++i);
  }
}
BENCHMARK(block_site_seen);

void block_explicit_site(benchmark::State& state) { // the Site path
  int i = 0;
  for (auto _ : state) {
    auto b = profiler.block(site);
    keep(++i);
  }
}
BENCHMARK(block_explicit_site);

void block_first_use(benchmark::State& state) { // a new call site every iteration
  stichotrope::Profiler fresh{"first_use"};
  std::vector<std::string> names(static_cast<std::size_t>(state.max_iterations));
  for (std::size_t n = 0; n < names.size(); ++n) names[n] = "site_" + std::to_string(n);
  std::size_t n = 0;
  for (auto _ : state) {
    auto b = fresh.block(1, names[n++]);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(block_first_use)->Iterations(50'000);

// One thread alternating among 1,000 hot named sites (more than its 64-entry
// cache holds: found in the profiler's lock-free table), against one hot
// named site through the same call form. Target: <= 1.3 x. And the same
// with 1,000 names of 25 bytes that differ only in their middle
// ("GET /users/100000/profile", ...): a name longer than 16 bytes is hashed
// and compared by its whole text.
std::vector<std::string> numbered(const std::string& prefix, int first, const std::string& suffix) {
  std::vector<std::string> n;
  for (int i = 0; i < 1000; ++i) n.push_back(prefix + std::to_string(first + i) + suffix);
  return n;
}
const std::vector<std::string>& hot_names() {
  static const std::vector<std::string> names = numbered("hot_site_", 0, "");
  return names;
}
const std::vector<std::string>& long_names() {
  static const std::vector<std::string> names = numbered("GET /users/", 100000, "/profile");
  return names;
}

// The two loops each pair shares (inlined: each benchmark's loop is its own).
[[gnu::always_inline]] inline void one_named_site(benchmark::State& state, int track, std::string_view name) {
  for (auto _ : state) {
    auto b = profiler.block(track, name);
    benchmark::DoNotOptimize(b);
  }
}
[[gnu::always_inline]] inline void many_named_sites(benchmark::State& state, int track,
                                                    const std::vector<std::string>& names) {
  std::size_t i = 0;
  for (auto _ : state) {
    auto b = profiler.block(track, std::string_view(names[i]));
    benchmark::DoNotOptimize(b);
    if (++i == names.size()) i = 0;
  }
  // The thread's cache after the run: entries, and how many hold a site.
  const auto cache = stichotrope::detail::testing::site_cache_of_calling_thread();
  state.counters["cache_entries"] = cache.size;
  state.counters["cache_held"] = static_cast<double>(cache.held);
}

void block_one_named_site(benchmark::State& state) { one_named_site(state, 6, hot_names().front()); }
BENCHMARK(block_one_named_site);

void block_many_named_sites(benchmark::State& state) {
  // Registered once first, from another call site (its 1,000 entries share the cache).
  for (const auto& n : hot_names()) auto warm = profiler.block(6, std::string_view(n));
  many_named_sites(state, 6, hot_names());
}
BENCHMARK(block_many_named_sites);

void block_one_long_named_site(benchmark::State& state) { one_named_site(state, 8, long_names().front()); }
BENCHMARK(block_one_long_named_site);

void block_many_long_named_sites(benchmark::State& state) { many_named_sites(state, 8, long_names()); }
BENCHMARK(block_many_long_named_sites);

// The same 1,000 sites through Site handles (no lookup at all): what is left
// of the difference above is the cost of recording into 1,000 slots.
void block_many_site_handles(benchmark::State& state) {
  static const std::vector<stichotrope::Site> handles = [] {
    std::vector<stichotrope::Site> h;
    for (const auto& n : hot_names())
      h.push_back(stichotrope::instrumentation_compiled_in ? *profiler.site(7, n) : stichotrope::Site{});
    return h;
  }();
  std::size_t i = 0;
  for (auto _ : state) {
    auto b = profiler.block(handles[i]);
    benchmark::DoNotOptimize(b);
    if (++i == handles.size()) i = 0;
  }
}
BENCHMARK(block_many_site_handles);

void block_timeline_on(benchmark::State& state) { // the same block with timeline capture on
  stichotrope::Profiler captured{"timeline"};
  if constexpr (stichotrope::instrumentation_compiled_in) {
    const auto s = *captured.site(0, "captured");
    captured.start_timeline({4096, stichotrope::overflow_policy::keep_latest});
    int i = 0;
    for (auto _ : state) {
      auto b = captured.block(s);
      keep(++i);
    }
    state.counters["dropped"] = static_cast<double>(captured.get_timeline().dropped());
  } else {
    for (auto _ : state) benchmark::DoNotOptimize(state.iterations());
  }
}
BENCHMARK(block_timeline_on);

void tracked_function(benchmark::State& state) {
  auto tracked = profiler.track(0, "work", work);
  int i = 0;
  for (auto _ : state) keep(i = tracked(i));
}
BENCHMARK(tracked_function);

// ---- switched off at run time
void block_disabled_track(benchmark::State& state) {
  (void)profiler.set_track_enabled(3, false);
  int i = 0;
  for (auto _ : state) {
    auto b = profiler.block(3, "off");
    keep(++i);
  }
  (void)profiler.set_track_enabled(3, true);
}
BENCHMARK(block_disabled_track);

void block_stopped_profiler(benchmark::State& state) {
  profiler.stop();
  int i = 0;
  for (auto _ : state) {
    auto b = profiler.block(site);
    keep(++i);
  }
  profiler.start();
}
BENCHMARK(block_stopped_profiler);

void block_globally_disabled(benchmark::State& state) {
  stichotrope::set_global_enabled(false);
  int i = 0;
  for (auto _ : state) {
    auto b = profiler.block(site);
    keep(++i);
  }
  stichotrope::set_global_enabled(true);
}
BENCHMARK(block_globally_disabled);

// ---- every disabled form: each switch (global, stopped profiler, disabled
// track) with each call form (literal name, std::string name, Site handle,
// track() wrapper). Target: <= 1 ns each, in an importer (benchmarks/report.py
// builds this file against the installed package). The wrapper's figure
// includes the wrapped function; its baseline is baseline_function.
enum class switched_off { global, stopped, track };
enum class call_form { literal, string, site, tracked };

template <switched_off How>
struct off_scope {
  off_scope() {
    if constexpr (How == switched_off::global) stichotrope::set_global_enabled(false);
    if constexpr (How == switched_off::stopped) profiler.stop();
    if constexpr (How == switched_off::track) (void)profiler.set_track_enabled(0, false);
  }
  ~off_scope() {
    stichotrope::set_global_enabled(true);
    profiler.start();
    (void)profiler.set_track_enabled(0, true);
  }
};

template <switched_off How, call_form Form>
void disabled(benchmark::State& state) {
  const std::string name = "a string name";
  auto tracked = profiler.track(0, "tracked_off", work);
  off_scope<How> off;
  int i = 0;
  for (auto _ : state) {
    if constexpr (Form == call_form::literal) {
      auto b = profiler.block(0, "literal_off");
      keep(++i);
    } else if constexpr (Form == call_form::string) {
      auto b = profiler.block(0, name);
      keep(++i);
    } else if constexpr (Form == call_form::site) {
      auto b = profiler.block(site);
      keep(++i);
    } else {
      keep(i = tracked(i));
    }
  }
}
#define STICHOTROPE_DISABLED(how, form)                                                                                \
  BENCHMARK(disabled<switched_off::how, call_form::form>)->Name("disabled_" #how "_" #form)
STICHOTROPE_DISABLED(global, literal);
STICHOTROPE_DISABLED(global, string);
STICHOTROPE_DISABLED(global, site);
STICHOTROPE_DISABLED(global, tracked);
STICHOTROPE_DISABLED(stopped, literal);
STICHOTROPE_DISABLED(stopped, string);
STICHOTROPE_DISABLED(stopped, site);
STICHOTROPE_DISABLED(stopped, tracked);
STICHOTROPE_DISABLED(track, literal);
STICHOTROPE_DISABLED(track, string);
STICHOTROPE_DISABLED(track, site);
STICHOTROPE_DISABLED(track, tracked);
#undef STICHOTROPE_DISABLED

// ---- threads: per-thread CPU cost should stay flat from 1 to 8 threads
void threads_distinct_sites(benchmark::State& state) {
  static std::vector<stichotrope::Site> sites = [] {
    std::vector<stichotrope::Site> s;
    for (int t = 0; t < 64; ++t)
      s.push_back(stichotrope::instrumentation_compiled_in ? *profiler.site(4, "thread_" + std::to_string(t))
                                                           : stichotrope::Site{});
    return s;
  }();
  const auto& mine = sites[static_cast<std::size_t>(state.thread_index())];
  int i = 0;
  for (auto _ : state) {
    auto b = profiler.block(mine);
    keep(++i);
  }
}
BENCHMARK(threads_distinct_sites)->ThreadRange(1, 8);

void threads_shared_site(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    auto b = profiler.block(site);
    keep(++i);
  }
}
BENCHMARK(threads_shared_site)->ThreadRange(1, 8);

} // namespace

BENCHMARK_MAIN();
