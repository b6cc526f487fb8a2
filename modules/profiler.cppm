module;
#include <atomic>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>
export module stichotrope:profiler;
import :error;
import :config;
import :clock;
import :results;
import :core;
import :coro;

export namespace stichotrope {

#if defined(STICHOTROPE_COMPILED_OUT)
/// False when the library was built with -DSTICHOTROPE_INSTRUMENTATION=OFF:
/// blocks are empty objects and track() returns the callable itself.
inline constexpr bool instrumentation_compiled_in = false;
#else
inline constexpr bool instrumentation_compiled_in = true;
#endif

/// Switches every profiler of the process on or off. Off, a block costs what
/// it costs on a stopped profiler or a disabled track: two loads and a
/// branch. The switch itself visits every live profiler (it is folded into
/// their track flags), so it is for turning profiling on and off, not for
/// toggling around each block.
void set_global_enabled(bool enabled) noexcept;
inline bool is_global_enabled() noexcept {
  return instrumentation_compiled_in && detail::global_enabled.load(std::memory_order_relaxed);
}

/// Names the calling thread ("io-1") in per-thread results, timelines and
/// traces of every profiler, from now on and for the data it already
/// recorded; also its OS name (cut to 15 bytes), which debuggers show. An
/// empty name falls back to the OS name.
void set_thread_name(std::string_view name);
/// The calling thread's name: set_thread_name's, else the OS name.
std::string thread_name();

class Profiler;

/// What a profiler's data occupies, in bytes (Profiler::memory_use).
struct MemoryUse {
  std::uint64_t thread_buffers = 0; ///< live threads: slots, histogram pages, timelines
  std::uint64_t live_threads = 0;
  std::uint64_t exited_threads = 0; ///< statistics handed over by exited threads and taken intervals
  std::uint64_t sites = 0;          ///< registered call sites and their names
  std::uint64_t total() const noexcept { return thread_buffers + exited_threads + sites; }
};

/// Timeline capture settings: a thread's buffer holds `events_per_thread`
/// events of 40 bytes (2.5 MiB per thread by default), created at the thread's
/// first captured event with the settings in force then.
struct TimelineOptions {
  std::uint64_t events_per_thread = std::uint64_t{1} << 16;
  overflow_policy when_full = overflow_policy::keep_latest;
};

/// A call site registered once: `static const auto s = *profiler.site(1, "q");`
/// then `profiler.block(s)` skips the per-thread site lookup.
class Site {
public:
  Site() = default;
  inline std::uint32_t id() const noexcept { return id_; }
  inline int track() const noexcept { return track_; }
  inline bool valid() const noexcept { return id_ != detail::invalid_site; }

private:
  friend class Profiler;
  Site(std::uint64_t core_id, std::uint32_t id, int track) : core_id_(core_id), id_(id), track_(track) {}
  std::uint64_t core_id_ = 0;
  std::uint32_t id_ = detail::invalid_site;
  int track_ = 0;
};

/// An open block: timing starts when it is made by Profiler::block and ends
/// when it is destroyed (or close() is called). Move-only. Its start time and
/// the flow's counters at its start live in this object; its place in the
/// flow's nesting is a frame of the flow (see detail::context), found again
/// by its start time, so that closing, moving or destroying blocks in any
/// order never touches another block's memory.
class [[nodiscard]] Block {
public:
  inline Block() noexcept : core_(nullptr) {} ///< an inert block that records nothing

  inline Block(Block&& other) noexcept { take(other); }
  inline Block& operator=(Block&& other) noexcept {
    if (this != &other) {
      close();
      take(other);
    }
    return *this;
  }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  [[gnu::always_inline]] inline ~Block() {
    if constexpr (instrumentation_compiled_in) // compiled out: nothing at all
      if (core_ != nullptr) [[unlikely]]
        finish(); // an inert block: a not-taken branch, no call
  }

  /// True while the block is open and will record.
  inline bool active() const noexcept { return core_ != nullptr; }

  /// Adds to the byte count of this block (for throughput figures).
  inline void add_bytes(std::uint64_t n) noexcept { bytes_ += n; }

  /// Ends the block now. Hot path: never locks; allocates only on the first
  /// record of its site in this thread.
  [[gnu::always_inline]] inline void close() noexcept {
    if constexpr (instrumentation_compiled_in)
      if (core_ != nullptr) finish();
  }

private:
  friend class Profiler;

  [[gnu::always_inline]] inline void finish() noexcept {
    detail::profiler_core* core = core_;
    core_ = nullptr;
    const std::uint64_t end = detail::now_ticks();
    detail::context& ctx = detail::current_context();
    // The common case: closed in its own flow, on top of the stack, below a
    // parent that is still open.
    if (&ctx == ctx_ && depth_ + 1 == ctx.depth && ctx.frame(depth_).serial.load(std::memory_order_relaxed) == start_ &&
        !ctx.suspended &&
        (depth_ == 0 || (ctx.frame(depth_ - 1).serial.load(std::memory_order_relaxed) & detail::closed_bit) == 0))
        [[likely]] {
      const std::uint64_t ns = detail::ticks_to_ns(start_, end);
      ctx.depth = depth_;
      std::uint32_t parent_site = no_parent;
      if (depth_ > 0) {
        detail::frame_entry& parent = ctx.frame(depth_ - 1);
        parent.child_ns += ns;
        if (parent.core == core) parent_site = parent.site;
      }
      detail::record(*core, site_, ns, ctx.frame(depth_).child_ns, bytes_, parent_site,
                     detail::flow_mark::of(ctx).since(flow_), start_, end, ctx.id);
      return;
    }
    // The other cases, out of line. flow_ goes by value: a reference would let
    // the block escape, and keep even an inert one in memory.
    detail::close_open(*core, ctx_, depth_, site_, start_, end, bytes_, flow_);
  }

  inline Block(detail::profiler_core& core, std::uint32_t site) noexcept : Block(&core, site) {}
  // An inert block falls through both this test and the destructor's: the
  // open and close paths are laid out of line, where a taken branch is lost
  // among two timestamp reads (docs/performance.md).
  inline Block(detail::profiler_core* core, std::uint32_t site) noexcept : core_(core) {
    if (core == nullptr) [[likely]]
      return;
    detail::context& ctx = detail::current_context();
    ctx_ = &ctx;
    bytes_ = 0;
    site_ = site;
    flow_ = detail::flow_mark::of(ctx);
    start_ = detail::now_ticks();
    depth_ = detail::push_frame(ctx, core, site, start_);
  }

  inline void take(Block& other) noexcept {
    core_ = std::exchange(other.core_, nullptr);
    if (core_ == nullptr) return;
    ctx_ = other.ctx_;
    start_ = other.start_;
    bytes_ = other.bytes_;
    flow_ = other.flow_;
    site_ = other.site_;
    depth_ = other.depth_;
  }

  // Only core_ is set in an inert block (the disabled path writes nothing
  // else); the other fields are read only while it is set.
  detail::profiler_core* core_;
  detail::context* ctx_; // where it opened: compared, dereferenced only when it is the current flow
  std::uint64_t start_;  // also the serial of its frame
  std::uint64_t bytes_;
  detail::flow_mark flow_;
  std::uint32_t site_;
  std::uint32_t depth_; // its frame's index in ctx_ (max_depth when too deep to have one)
};

} // namespace stichotrope

namespace stichotrope::detail { // internal: reachable, not visible
/// A signal asks every live profiler's exporters for what they hold now;
/// `ending`: the process is about to end, so they stop as at a profiler's
/// end (src/profiler/profiler.cpp).
void signal_exporters(bool ending);
/// Makes SIGINT and SIGTERM write the configured outputs before they end the
/// process (src/profiler/signals.cpp; docs/reliability.md says how it chains). Once
/// per process.
void write_outputs_on_signals();

template <auto F>
constexpr std::string_view value_name() noexcept {
  std::string_view s = template_argument(__PRETTY_FUNCTION__, "F = ");
  if (!s.empty() && s.front() == '&') s.remove_prefix(1);
  constexpr std::string_view anonymous = "(anonymous namespace)::";
  while (s.starts_with(anonymous)) s.remove_prefix(anonymous.size());
  return s;
}
std::string default_track_name(std::string_view type, bool is_class, const std::source_location& loc);

/// Results that track() times until they complete: awaitables, except Asio's
/// (whose coroutines accept only Asio awaitables; see stichotrope/asio.hpp).
template <class R>
concept timed_result = !std::is_reference_v<R> && awaitable<R> && !requires { typename R::executor_type; };
} // namespace stichotrope::detail
export namespace stichotrope {

/// Opens blocks on one pre-registered site, without needing the Profiler
/// object: what a Tracked does for each call. Cheap to copy; it may outlive
/// its profiler (its blocks are then inert).
class BlockOpener {
public:
  BlockOpener() = default;
  inline Block operator()() const noexcept;
  const Site& site() const noexcept { return site_; }

private:
  friend class Profiler;
  template <class G>
  friend class Tracked;
  BlockOpener(detail::profiler_core* core, Site s) noexcept : core_(core), site_(s) {}
  detail::profiler_core* core_ = nullptr;
  Site site_;
};

/// A callable wrapped by Profiler::track: same arguments, same result
/// (references included), exceptions pass through; each call is one block.
template <class F>
class Tracked {
public:
  template <class... Args>
    requires std::invocable<F&, Args...>
  [[gnu::always_inline]] inline decltype(auto) operator()(Args&&... args) & {
    return call(fn_, std::forward<Args>(args)...);
  }
  template <class... Args>
    requires std::invocable<const F&, Args...>
  [[gnu::always_inline]] inline decltype(auto) operator()(Args&&... args) const& {
    return call(fn_, std::forward<Args>(args)...);
  }
  template <class... Args>
    requires std::invocable<F&&, Args...>
  [[gnu::always_inline]] inline decltype(auto) operator()(Args&&... args) && {
    return call(std::move(fn_), std::forward<Args>(args)...);
  }

  const Site& site() const noexcept { return site_; }
  /// Opens a block on this wrapper's site, as each call does.
  BlockOpener opener() const noexcept { return {core_, site_}; }
  /// The wrapped callable.
  const F& callable() const noexcept { return fn_; }

private:
  friend class Profiler;
  Tracked(detail::profiler_core& core, Site s, F fn) : core_(&core), site_(s), fn_(std::move(fn)) {}
  detail::profiler_core* recording_core() const noexcept; // null: switched off
  Block open_on(detail::profiler_core* core) const noexcept;

  // A plain result: the call is one block. An awaitable result (a coroutine
  // function): the record spans the whole operation, until its co_await
  // completes, not just until its first suspension.
  template <class G, class... Args>
  [[gnu::always_inline]] inline decltype(auto) call(G&& g, Args&&... args) const {
    using R = std::invoke_result_t<G, Args...>;
    if constexpr (detail::timed_result<R>) {
      const std::uint64_t start = detail::now_ticks();
      return timed(std::invoke(std::forward<G>(g), std::forward<Args>(args)...), start);
    } else {
      // Switched off, no block at all: the call is the wrapped call and two
      // loads (a block kept alive across the call would cost a register).
      detail::profiler_core* core = recording_core();
      if (core == nullptr) return std::invoke(std::forward<G>(g), std::forward<Args>(args)...);
      auto b = open_on(core);
      return std::invoke(std::forward<G>(g), std::forward<Args>(args)...);
    }
  }
  template <class R>
  timed_awaitable<R> timed(R&& result, std::uint64_t start) const;

  detail::profiler_core* core_; // never freed: a Tracked may outlive its Profiler (it then records nothing)
  Site site_;
  F fn_;
};

namespace detail { // exported: the optional exporters (importers) register through these
/// An optional exporter (the Prometheus endpoint, OpenTelemetry) learns of
/// every profiler, live or to come, without code in the program: its object
/// file registers one of these at start-up.
struct exporter {
  void (*profiler_configured)(Profiler&); ///< after construction and after reload_config(); null: nothing to do
  void (*profiler_ending)(Profiler&);     ///< first thing in ~Profiler, or a signal ends the process: stop using it
  /// A signal that may not end the process (the program's own handler runs
  /// next) asks for what is held now; null: nothing to do.
  void (*profiler_signalled)(Profiler&) = nullptr;
};
/// Calls `e->profiler_configured` for the profilers alive now and later.
void register_exporter(const exporter* e);
/// Adds a diagnostic to a profiler's results (an exporter's failure).
void add_diagnostic(Profiler& p, std::string message);
/// Sets the diagnostic that begins with `key` to `message` (which should
/// begin with it too), replacing the previous one: a running count.
void replace_diagnostic(Profiler& p, std::string_view key, std::string message);
} // namespace detail
} // namespace stichotrope

namespace stichotrope::detail { // internal: reachable, not visible
/// The configured outputs (Config::outputs, STICHOTROPE_OUTPUT) as an
/// exporter: written when the profiler ends or a signal asks, each in the
/// format its extension names (src/profiler/outputs.cpp). Always the first
/// exporter: the profiler itself calls no format.
extern const exporter outputs_exporter;
} // namespace stichotrope::detail

export namespace stichotrope {

/// How Profiler::repeat runs a function (docs/repetition.md).
struct RepeatOptions {
  /// Run exactly this many times (after the warm-up). 0: run until the
  /// fastest run has not improved for `until_no_improvement`.
  std::uint64_t iterations = 0;
  /// With iterations 0: stop once the fastest run is this old (the minimum
  /// is the figure that converges: the repetition-tester style).
  std::chrono::nanoseconds until_no_improvement{0};
  std::uint64_t warmup = 0; ///< unmeasured runs first (not hits, not samples)
  /// Calls of `fn` per run, timed together: a sample, and a hit of the
  /// block, is a run of `batch` calls (RepetitionResults::per_call divides;
  /// the table and compare_repetitions show figures per call). For functions
  /// of a few hundred ns or less, where one call is near the clock's
  /// resolution and the cost of its two time stamps (docs/repetition.md,
  /// "Batches").
  std::uint64_t batch = 1;
  /// 0: runs of `batch` calls. Otherwise the batch is chosen: from `batch`,
  /// doubled until the fastest of three runs of it takes at least this long
  /// (those runs are unmeasured, as the warm-up; at most 2^20 calls a run),
  /// then kept and reported in RepetitionResults::batch. 10 us suits most
  /// functions.
  std::chrono::nanoseconds min_run_time{0};
  /// Stop after this long whatever else says (0: no limit).
  std::chrono::nanoseconds time_limit = std::chrono::seconds(10);
  /// The time source in ns, for tests (a fake clock); null: the profiler's.
  std::uint64_t (*clock)() = nullptr;
};

namespace detail { // exported: Profiler::repeat's loop is a template in the importer
/// One repetition in progress: when to stop, what each run took, what the
/// thread's getrusage said around it (src/profiler/repeat.cpp).
class repetition {
public:
  explicit repetition(const RepeatOptions& options);
  /// Whether to run again.
  bool more();
  /// Before and after a run: the time stamps (ticks, or the fake clock's ns).
  [[gnu::always_inline]] std::uint64_t stamp() const noexcept { return clock_ ? clock_() : now_ticks_ordered(); }
  void begin_run() noexcept;
  void end_run(std::uint64_t start, std::uint64_t end, std::uint64_t bytes);
  /// Calls per run (RepeatOptions::batch, or as chosen so far).
  std::uint64_t batch() const noexcept { return batch_; }
  /// While the batch is being chosen (RepeatOptions::min_run_time), after
  /// each run of batch() calls from `start` to `end`: whether to run again
  /// (three runs of each batch; the batch doubled when the fastest of them
  /// was too short).
  bool longer_batch(std::uint64_t start, std::uint64_t end) noexcept;
  /// The statistics, also kept in the profiler's results; `stopped_by` says why.
  RepetitionResults finish(profiler_core& core, int track, std::string_view name, std::string stopped_by = {});

private:
  std::uint64_t now_ns() const noexcept;
  RepeatOptions options_;
  std::uint64_t (*clock_)() = nullptr;
  std::uint64_t batch_ = 1, choosing_runs_ = 0, choosing_fastest_ns_ = UINT64_MAX;
  std::uint64_t started_ns_ = 0, best_at_ns_ = 0, best_ns_ = UINT64_MAX;
  std::string stopped_by_;
  std::vector<std::uint64_t> samples_, bytes_;
  std::uint64_t faults_at_start_ = 0, switches_at_start_ = 0, faults_before_ = 0, switches_before_ = 0;
  std::uint64_t max_faults_ = 0, max_switches_ = 0, last_ns_ = UINT64_MAX; // the first run is read on its own
  bool usage_this_run_ = false;
};
/// Why `options` cannot run, or nothing.
std::optional<Error> check_repeat(const RepeatOptions& options);
/// `e` as repeat's result (the template cannot name tl::unexpected).
expected<RepetitionResults> refused(Error e);
} // namespace detail

/// A profiler: named, with numbered tracks of blocks. Thread-safe; blocks
/// record lock-free into per-thread buffers that get_results() merges.
class Profiler {
public:
  /// Reads its configuration: `config` (the code's settings) > environment >
  /// the STICHOTROPE_CONFIG file > defaults. A bad variable is left out
  /// alone, a bad file whole; each is named in results.diagnostics and once
  /// on stderr, and the profiler records anyway.
  explicit Profiler(std::string name = "Profiler", Config config = {});
  /// Reads the environment and the file again (the code's settings still
  /// win) and applies the result; the errors met, if any.
  std::vector<Error> reload_config();
  /// The configuration in effect.
  Config config() const;
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  const std::string& name() const noexcept { return core_->name; }

  void start() noexcept;
  void stop() noexcept;
  inline bool is_started() const noexcept { return core_->started.load(std::memory_order_relaxed); }

  /// Profiler-wide: affects blocks opened afterwards on every thread.
  expected<void> set_track_enabled(int track, bool enabled);
  inline bool is_track_enabled(int track) const noexcept {
    return valid_track(track) && core_->track_enabled[static_cast<unsigned>(track)].load(std::memory_order_relaxed);
  }
  expected<void> set_track_name(int track, std::string name);
  std::optional<std::string> track_name(int track) const;

  /// Opens blocks on `s` later, even after this profiler is gone (inert then).
  BlockOpener opener(const Site& s) noexcept { return {core_, s}; }

  /// Registers a call site once, for the fastest block(Site) path.
  expected<Site> site(int track, std::string_view name, std::source_location loc = std::source_location::current());

  /// Opens a block on `track`; it ends when the returned object is destroyed.
  /// An invalid track or empty name gives an inert block and a diagnostic in
  /// the results. Hot path after the site's first use: no lock, no allocation.
  [[gnu::always_inline]] inline Block block(int track, std::string_view name,
                                            std::source_location loc = std::source_location::current()) {
    return named_block(track, name, loc,
                       [&](detail::thread_buffer& buf, detail::profiler_core& core) __attribute__((always_inline)) {
                         return detail::site_for(buf, core, location_key(loc), track, name, loc.file_name(), loc.line(),
                                                 loc.column(), loc.function_name());
                       });
  }

  /// As above for a string literal or const array: found by address, the
  /// fastest name path.
  template <std::size_t N>
  [[gnu::always_inline]] inline Block block(int track, const char (&name)[N],
                                            std::source_location loc = std::source_location::current()) {
    return named_block(track, std::string_view(name), loc,
                       [&](detail::thread_buffer& buf, detail::profiler_core& core) __attribute__((always_inline)) {
                         return detail::site_for_literal(buf, core, location_key(loc), track, name, N, loc.file_name(),
                                                         loc.line(), loc.column(), loc.function_name());
                       });
  }

  /// A modifiable char array is compared by content, like a string_view.
  template <std::size_t N>
  inline Block block(int track, char (&name)[N], std::source_location loc = std::source_location::current()) {
    return block(track, std::string_view(name), loc);
  }

  /// Opens a block for a pre-registered site (see site()).
  inline Block block(const Site& s) noexcept { return site_block(&core_, s); }

  /// Times a co_await: `co_await profiler.wrap(2, "backend", op)`. The record
  /// carries wall and suspended time, the suspension count and whether the
  /// coroutine resumed on another thread; it lands in the resuming thread's
  /// buffer. Any awaitable: the three await_suspend forms, operator
  /// co_await, references and move-only results, exceptions.
  template <class A>
  decltype(auto) wrap(int track, std::string_view name, A&& awaitable,
                      std::source_location loc = std::source_location::current()) {
    if constexpr (!instrumentation_compiled_in) {
      return static_cast<A&&>(awaitable);
    } else {
      detail::profiler_core& core = *core_;
      const std::uint32_t id = named_site(core, track, name, loc, [&](detail::thread_buffer& buf) {
        return detail::site_for(buf, core, location_key(loc), track, name, loc.file_name(), loc.line(), loc.column(),
                                loc.function_name());
      });
      return timed_awaitable<A>(std::forward<A>(awaitable), id == detail::invalid_site ? nullptr : &core, id);
    }
  }
  /// As above, for a pre-registered site.
  template <class A>
  decltype(auto) wrap(const Site& s, A&& awaitable, std::uint64_t start_ticks = 0) {
    return site_wrap(*core_, s, std::forward<A>(awaitable), start_ticks);
  }

  /// Wraps a callable so that every call is timed as block `name` on `track`.
  template <class F>
  auto track(int track, std::string_view name, F&& fn, std::source_location loc = std::source_location::current()) {
    if constexpr (!instrumentation_compiled_in) {
      return std::decay_t<F>(std::forward<F>(fn));
    } else {
      return Tracked<std::decay_t<F>>(*core_, site_or_invalid(track, name, loc), std::forward<F>(fn));
    }
  }
  /// As above, named after the callable: a lambda or functor by its type
  /// (e.g. "(lambda at main.cpp:12:5)"), a function pointer by "fn@file:line".
  template <class F>
    requires(!std::convertible_to<F, std::string_view>)
  auto track(int track, F&& fn, std::source_location loc = std::source_location::current()) {
    using D = std::decay_t<F>;
    const std::string name = detail::default_track_name(detail::type_name<D>(), std::is_class_v<D>, loc);
    return this->track(track, name, std::forward<F>(fn), loc);
  }
  /// As above for a function known at compile time, named after it:
  /// `auto f = profiler.track<&process_data>(0);`
  template <auto F>
  auto track(int track, std::source_location loc = std::source_location::current()) {
    return this->track(track, detail::value_name<F>(), F, loc);
  }

  /// Runs `fn` again and again and measures each run: `options.iterations`
  /// times, or until its fastest run has not improved for
  /// `options.until_no_improvement`, within `options.time_limit`, after
  /// `options.warmup` unmeasured runs; a run calls `fn` `options.batch`
  /// times (1 by default), or as many as `options.min_run_time` chooses. `fn` takes no argument and returns
  /// nothing or the bytes it processed (throughput). Every measured run is
  /// also a hit of block `name` on `track` (in every export, the live view
  /// and the call tree; blocks inside `fn` are its children). The statistics
  /// come back, and stay in the profiler's results (`repetitions`) until
  /// clear(). Errors: a bad track or name, no way to stop (no iterations,
  /// no improvement time), a batch of 0, as Error values. An exception from `fn`
  /// propagates; the runs before it are kept (stopped_by "exception").
  template <class F>
  expected<RepetitionResults> repeat(int track, std::string_view name, F&& fn, const RepeatOptions& options = {},
                                     std::source_location loc = std::source_location::current()) {
    using R = std::invoke_result_t<F&>;
    static_assert(std::is_void_v<R> || std::is_convertible_v<R, std::uint64_t>,
                  "repeat: fn returns nothing or the bytes it processed");
    if (auto why = detail::check_repeat(options)) return detail::refused(std::move(*why));
    auto where = site(track, name, loc);
    if (!where) return detail::refused(where.error());
    // n calls, and the bytes they reported: one loop for the warm-up, the
    // choosing and the measured runs, so that all run the same code (a loop
    // that reloads its bound after each call ran a call of 0.27 ns 4 times
    // slower).
    const auto calls = [&fn](const std::uint64_t n) {
      std::uint64_t bytes = 0;
      for (std::uint64_t i = 0; i < n; ++i)
        if constexpr (std::is_void_v<R>)
          std::invoke(fn);
        else
          bytes += static_cast<std::uint64_t>(std::invoke(fn));
      return bytes;
    };
    calls(options.warmup * options.batch);
    detail::repetition run(options);
    if (options.min_run_time.count() > 0)
      for (bool longer = true; longer;) {
        const std::uint64_t start = run.stamp();
        calls(run.batch());
        longer = run.longer_batch(start, run.stamp());
      }
    try {
      while (run.more()) {
        run.begin_run();
        std::uint64_t bytes = 0, start = 0, end = 0;
        {
          Block b = block(*where);
          const std::uint64_t n = run.batch();
          start = run.stamp();
          bytes = calls(n);
          end = run.stamp();
          b.add_bytes(bytes);
        }
        run.end_run(start, end, bytes);
      }
    } catch (...) {
      run.finish(*core_, track, name, "exception");
      throw;
    }
    return run.finish(*core_, track, name);
  }

  /// Records a duration measured elsewhere for a pre-registered site.
  void record(const Site& s, std::chrono::nanoseconds duration);
  /// Records a duration measured elsewhere, as if a block had run that long.
  void record(int track, std::string_view name, std::chrono::nanoseconds duration,
              std::source_location loc = std::source_location::current());

  /// Starts capturing a timeline: every block and timed await, and every
  /// suspension and resumption of a flow with open blocks, as events in a
  /// bounded per-thread buffer (no lock). Off by default; costs one relaxed
  /// load per block while off.
  void start_timeline(TimelineOptions options = {});
  void stop_timeline() noexcept { core_->timeline_on.store(false, std::memory_order_relaxed); }
  bool is_timeline_on() const noexcept { return core_->timeline_on.load(std::memory_order_relaxed); }
  /// The events captured since the last clear(), per thread (exited ones too).
  Timeline get_timeline() const;

  /// Results of all threads, alive and exited, since the last clear().
  ProfilerResults get_results() const;
  /// Everything recorded since the last take_results() (or clear(), or the
  /// start), and a new interval begins, atomically: each record lands in
  /// exactly one interval, whole, none lost, while other threads go on
  /// recording (they never wait). get_results() still counts from clear().
  /// Throws std::bad_alloc when there is no memory for the results; the
  /// interval it ended is then returned by the next call (which begins no
  /// other), and get_results() counts it meanwhile: no record is lost.
  ProfilerResults take_results();
  /// One entry per thread that recorded in the current interval (since the
  /// last take_results() or clear()); exited threads beyond the most recent
  /// 16 are folded into one entry.
  std::vector<ThreadResults> get_all_thread_data() const;
  /// Drops all data; safe while other threads record (they never wait), and
  /// every record lands wholly before or wholly after it.
  void clear();
  /// Memory the profiler holds for its data, in bytes.
  MemoryUse memory_use() const;

  expected<void> export_csv(const std::filesystem::path& file) const;
  void export_csv(std::ostream& out) const;
  expected<void> export_json(const std::filesystem::path& file, int indent = 2) const;
  void export_json(std::ostream& out, int indent = 2) const;
  void print_results() const;
  void print_results(std::ostream& out) const;

  /// `Profiler(name='MyApp', tracks=2, threads=3, started=True)`, as the seed's repr.
  std::string to_string() const;
  friend std::ostream& operator<<(std::ostream& os, const Profiler& p) { return os << p.to_string(); }

private:
  template <class G>
  friend class Tracked;
  friend class BlockOpener;
  friend void detail::add_diagnostic(Profiler& p, std::string message);
  friend void detail::replace_diagnostic(Profiler& p, std::string_view key, std::string message);

  // The Site paths, on a core that outlives its Profiler (Tracked keeps one).
  // The profiler a block on `s` records into, or null when nothing is to be
  // recorded. The switches are one flag per track (global && started &&
  // enabled), so a block switched off in any of the three ways costs the
  // same: the core pointer, the flag, one not-taken branch. Only an open
  // flag is followed by the check that `s` belongs to this profiler. (With
  // the global switch, the Site's profiler and the track's flag tested in
  // turn, a stopped profiler or a disabled track cost three taken branches
  // an iteration, 1.4-1.5 ns against 0.55 ns for the global switch;
  // docs/performance.md.) The core is never freed: reading it is always safe.
  [[gnu::always_inline]] inline static detail::profiler_core* site_core(detail::profiler_core* const* slot,
                                                                        const Site& s) noexcept {
    detail::profiler_core* const c = *slot;
    if (!c->track_open[flag_index(s)].load(std::memory_order_relaxed)) [[likely]]
      return nullptr;
    return s.core_id_ == c->id ? c : nullptr; // a Site of this profiler (an invalid one has core id 0)
  }
  /// A named block: the switches, then `lookup(buffer, core)` for its site id
  /// (by content or by address). The switched-off path falls through; the
  /// lookup is laid out of line (docs/performance.md, "Disabled blocks").
  template <class Lookup>
  [[gnu::always_inline]] inline Block named_block(int track, std::string_view name, const std::source_location& loc,
                                                  Lookup&& lookup) {
    if constexpr (!instrumentation_compiled_in) {
      return Block{};
    } else {
      detail::profiler_core& core = *core_;
      detail::profiler_core* recording = nullptr;
      std::uint32_t id = detail::invalid_site;
      if (open(core, track)) [[unlikely]] {
        id = lookup(detail::buffer_for(core), core);
        if (id != detail::invalid_site) [[likely]]
          recording = &core;
      } else if (!valid_track(track)) [[unlikely]] {
        note_invalid_track(track, name, loc);
      }
      return Block{recording, id};
    }
  }

  inline static Block site_block(detail::profiler_core* const* slot, const Site& s) noexcept {
    if constexpr (!instrumentation_compiled_in) {
      return Block{};
    } else {
      // One constructor for both outcomes: the "open" decision stays in a
      // register, so a disabled block costs a load and a branch, no stores;
      // the enabled path is laid out of line so that a disabled block falls
      // through (docs/performance.md).
      return Block{site_core(slot, s), s.id_};
    }
  }
  inline static Block open_site(detail::profiler_core* core, const Site& s) noexcept { return Block{core, s.id_}; }
  template <class A>
  static decltype(auto) site_wrap(detail::profiler_core& c, const Site& s, A&& awaitable, std::uint64_t start_ticks) {
    if constexpr (!instrumentation_compiled_in) {
      return static_cast<A&&>(awaitable);
    } else {
      const bool on = c.track_open[flag_index(s)].load(std::memory_order_relaxed) && s.core_id_ == c.id;
      return timed_awaitable<A>(std::forward<A>(awaitable), on ? &c : nullptr, s.id_, start_ticks);
    }
  }

  inline static bool valid_track(int track) noexcept { return static_cast<unsigned>(track) < unsigned{max_tracks}; }
  // The flag a Site reads. An invalid Site keeps the track it was asked for,
  // which may be out of range: the index wraps (a byte load, no extra
  // instruction), and such a Site fails the core id check behind any flag.
  [[gnu::always_inline]] inline static unsigned flag_index(const Site& s) noexcept {
    static_assert((max_tracks & (max_tracks - 1)) == 0);
    return static_cast<unsigned>(s.track_) % unsigned{max_tracks};
  }
  // Whether a block on `track` records: the global switch, the profiler's and
  // the track's, folded into one flag per track (src/profiler/profiler.cpp, reopen_tracks).
  [[gnu::always_inline]] inline static bool open(const detail::profiler_core& core, int track) noexcept {
    return valid_track(track) && core.track_open[static_cast<unsigned>(track)].load(std::memory_order_relaxed);
  }
  inline static const void* location_key(const std::source_location& loc) noexcept {
    if constexpr (sizeof(std::source_location) == sizeof(const void*))
      return std::bit_cast<const void*>(loc); // libstdc++ and libc++: a pointer to per-site static data
    else
      return loc.file_name();
  }
  Site site_or_invalid(int track, std::string_view name, const std::source_location& loc);

  // The named entry points off the hottest path (wrap, record): the switches, then the
  // site through the thread's cache (`find`). invalid_site when nothing is to
  // be recorded; an invalid track also leaves a diagnostic.
  template <class Name, class Find>
  inline std::uint32_t named_site(detail::profiler_core& core, int track, const Name& name,
                                  const std::source_location& loc, Find&& find) {
    if (!open(core, track)) [[unlikely]] {
      if (!valid_track(track)) note_invalid_track(track, std::string_view(name), loc);
      return detail::invalid_site;
    }
    return find(detail::buffer_for(core));
  }
  void note_invalid_track(int track, std::string_view name, const std::source_location& loc);

  // Never freed, and left in place by the destructor: blocks, wrappers and
  // even threads still calling this (destroyed) object at static destruction
  // find a stopped, dead core (docs/coroutines.md).
  detail::profiler_core* core_;
};

inline Block BlockOpener::operator()() const noexcept {
  return core_ == nullptr ? Block{} : Profiler::site_block(&core_, site_);
}

template <class F>
[[gnu::always_inline]] inline detail::profiler_core* Tracked<F>::recording_core() const noexcept {
  return Profiler::site_core(&core_, site_);
}
template <class F>
[[gnu::always_inline]] inline Block Tracked<F>::open_on(detail::profiler_core* core) const noexcept {
  return Profiler::open_site(core, site_);
}
template <class F>
template <class R>
timed_awaitable<R> Tracked<F>::timed(R&& result, std::uint64_t start) const {
  return Profiler::site_wrap(*core_, site_, std::forward<R>(result), start);
}

} // namespace stichotrope
