module;
#include <atomic>
#include <bit>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <source_location>
#include <string_view>
#include <type_traits>
#include <utility>
export module stichotrope:coro;
import :clock;
import :results;
import :core;

// Coroutine awareness: flows (contexts) that follow coroutines across
// threads, and the timed awaiter behind Profiler::wrap.

// Internal, but for the flow hooks the Asio header calls (exported one by one).
namespace stichotrope::detail {

/// Identity of the calling thread. Out of line on purpose: after a
/// suspension the coroutine may run elsewhere, and a thread-local address
/// computed before it must never be reused (docs/coroutines.md).
const void* this_thread_id() noexcept;

/// Makes `c` the current flow of the calling thread; if it was suspended,
/// its suspension ends now (suspended time, count, thread change).
export void resume_flow(context& c) noexcept;
/// As resume_flow, for a suspension that did not happen after all (the
/// awaiter declined, or resumed the coroutine at once): nothing is counted.
void resume_flow_uncounted(context& c) noexcept;
/// The flow stops running on this thread: suspended from now on, and the
/// thread's previous flow becomes current again.
void suspend_flow(context& c) noexcept;
/// The flow ended: the thread's previous flow becomes current again.
export void finish_flow(context& c) noexcept;
/// The frames of suspended flow `c` are being destroyed on this thread: `c`
/// becomes current (still suspended), so that its blocks, closed by their
/// destructors, count as abandoned; leave_destroying restores the thread.
void enter_destroying(context& c) noexcept;
export void leave_destroying(context& c) noexcept;

/// Marks the flow whose await_suspend is running on this thread (and returns
/// the previous mark): a resumption that finds its flow's mark happened
/// inside that await_suspend, at once, and is not a suspension.
const void* exchange_suspending(const void* flow) noexcept;
/// The flow goes on running here (after an await): resumed if it was
/// suspended, without counting a suspension that ended inside its own
/// await_suspend.
export void continue_flow(context& c) noexcept;

/// Closes an open frame of `opened_in` (see Block::close): every case, in
/// any order, on any thread. Out of line: the timed awaiters' and the slow
/// paths' way.
void close_open(profiler_core& core, context* opened_in, std::uint32_t depth, std::uint32_t site, std::uint64_t start,
                std::uint64_t end, std::uint64_t bytes, flow_mark at_open, std::uint64_t child_ns_extra = 0) noexcept;
/// An open frame whose coroutine was destroyed while suspended: counted as
/// abandoned, its frame released (in its own flow or from anywhere).
void abandon_open(profiler_core& core, context* opened_in, std::uint32_t depth, std::uint32_t site,
                  std::uint64_t start) noexcept;
/// The innermost block of `c` that is still open (of any profiler), if any:
/// its frame index, or max_depth.
std::uint32_t innermost_open(const context& c) noexcept;

/// The text of the template argument `label` (as "T = ") in a function's
/// __PRETTY_FUNCTION__ (clang spells it "f() [T = int]"), or empty.
constexpr std::string_view template_argument(std::string_view pretty, std::string_view label) noexcept {
  const auto b = pretty.find(label);
  if (b == std::string_view::npos) return {};
  pretty.remove_prefix(b + label.size());
  return pretty.substr(0, pretty.rfind(']'));
}

template <class T>
constexpr std::string_view type_name() noexcept {
  return template_argument(__PRETTY_FUNCTION__, "T = ");
}

/// The name of an awaited type, in static storage: a wait keeps its address
/// (compile-time text, no RTTI).
export template <class T>
struct awaited_type {
  static constexpr std::string_view name = type_name<T>();
};

/// The identity of a co_await's source location: a pointer to its static
/// data (libstdc++ and libc++), which the wait registry reads back once.
export inline const void* await_key(const std::source_location& loc) noexcept {
  static_assert(sizeof(std::source_location) == sizeof(const void*),
                "await sites are identified by std::source_location's pointer to its static data");
  return std::bit_cast<const void*>(loc);
}

/// A child coroutine joins flow `c` through the await at `where`: its
/// suspensions are waits under that await (a wait chain). Returns the depth
/// to restore when the await completes.
export inline std::uint32_t push_join(context& c, const void* where) noexcept {
  const std::uint32_t depth = c.join_depth;
  if (depth < max_joins) c.joins[depth] = where;
  c.join_depth = depth + 1;
  return depth;
}
export inline void pop_join(context& c, std::uint32_t depth) noexcept { c.join_depth = depth; }

template <class A>
concept has_member_co_await = requires(A&& a) { std::forward<A>(a).operator co_await(); };
template <class A>
concept has_free_co_await = requires(A&& a) { operator co_await(std::forward<A>(a)); };

/// The awaiter that `co_await a` would use: a.operator co_await(),
/// operator co_await(a), or `a` itself.
template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (has_member_co_await<A>)
    return std::forward<A>(a).operator co_await();
  else if constexpr (has_free_co_await<A>)
    return operator co_await(std::forward<A>(a));
  else
    return static_cast<A&&>(a);
}

template <class A>
using awaiter_t = decltype(get_awaiter(std::declval<A>()));
/// How an awaiter is held: references as lvalue references (the awaited
/// object outlives the co_await expression), prvalues by value.
template <class T>
using held_t = std::conditional_t<std::is_reference_v<T>, std::remove_reference_t<T>&, T>;

template <class A>
concept awaiter = requires(A& a) {
  { a.await_ready() } -> std::convertible_to<bool>;
  a.await_resume();
};
template <class A>
concept awaitable = std::is_class_v<std::remove_cvref_t<A>> && requires(A&& a) {
  { get_awaiter(std::forward<A>(a)) };
} && awaiter<std::remove_reference_t<awaiter_t<A>>>;

/// Forwards inner.await_suspend(h) in any of its three forms; `undo` runs
/// when the coroutine did not suspend after all (bool false, a throw, or its own handle returned).
template <class Inner, class Handle, class Undo>
auto forward_suspend(Inner& inner, Handle h, Undo&& undo) {
  using R = decltype(inner.await_suspend(h));
  if constexpr (std::is_void_v<R>) {
    try {
      inner.await_suspend(h);
    } catch (...) {
      undo();
      throw;
    }
  } else if constexpr (std::is_same_v<R, bool>) {
    bool suspended = false;
    try {
      suspended = inner.await_suspend(h);
    } catch (...) {
      undo();
      throw;
    }
    if (!suspended) undo();
    return suspended;
  } else {
    R next;
    try {
      next = inner.await_suspend(h); // symmetric transfer: a coroutine handle
    } catch (...) {
      undo();
      throw;
    }
    if (next.address() == h.address()) undo(); // the coroutine itself goes on: no suspension
    return next;
  }
}

} // namespace stichotrope::detail

export namespace stichotrope {

/// A flow stichotrope cannot see by itself — a fiber, a task of a coroutine
/// library without hooks: call enter() when it starts running on a thread
/// and leave() when it stops. Open blocks nest per flow, and accrue
/// suspended time between leave() and the next enter(), on any thread.
/// No global lock: only the thread running the flow touches it.
class Context {
public:
  Context() : ctx_(detail::acquire_context()) {}
  ~Context() {
    if (detail::current_context_ptr == ctx_) detail::finish_flow(*ctx_); // destroyed while entered here
    detail::release_context(ctx_);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  void enter() noexcept { detail::resume_flow(*ctx_); }
  /// The flow stops running here; the time until the next enter() is a wait
  /// at the caller's line (the fiber's switch point).
  void leave(std::source_location loc = std::source_location::current()) noexcept {
    ctx_->wait_location = detail::await_key(loc);
    ctx_->wait_type = nullptr;
    detail::suspend_flow(*ctx_);
  }
  /// The flow is done (no suspension is counted).
  void finish() noexcept { detail::finish_flow(*ctx_); }

  bool suspended() const noexcept { return ctx_->suspended; }
  std::uint64_t suspended_ns() const noexcept { return ctx_->suspended_ns; }
  std::uint64_t suspensions() const noexcept { return ctx_->suspensions; }
  std::uint64_t migrations() const noexcept { return ctx_->migrations; }

  /// The flow's state, for the awaiters that time an await in it (wrap).
  detail::context& flow() noexcept { return *ctx_; }
  /// flow()'s former name.
  [[deprecated("use flow()")]] detail::context& raw() noexcept { return *ctx_; }

private:
  detail::context* ctx_;
};

/// True when the calling thread runs a flow other than its own (a task, a
/// Context, an Asio coroutine): blocks may span co_await.
bool in_flow() noexcept;

/// Enters a Context for a scope (e.g. one run of a fiber) and leaves it.
class ContextScope {
public:
  explicit ContextScope(Context& c, std::source_location loc = std::source_location::current()) noexcept
      : c_(c), loc_(loc) {
    c_.enter();
  }
  ~ContextScope() { c_.leave(loc_); } // the wait until the next run is charged to where the scope was made
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

private:
  Context& c_;
  std::source_location loc_;
};

/// Wraps an awaiter so that the flow `ctx` leaves the thread when the
/// coroutine suspends and enters the resuming thread when it resumes. A
/// promise's await_transform returns this for every co_await that really
/// leaves the flow (see task). An await that declines to suspend, or resumes
/// the coroutine at once inside its await_suspend, is not a suspension.
template <class Aw>
class flow_awaiter {
public:
  /// `where`: the co_await's await_key (null: unknown); `what`: the awaited
  /// type's name (detail::awaited_type), or null.
  template <class X>
  flow_awaiter(X&& inner, detail::context& ctx, const void* where = nullptr, const std::string_view* what = nullptr)
      : inner_(static_cast<Aw&&>(inner)), ctx_(&ctx), where_(where), what_(what) {}
  /// With no flow (`ctx` null) it only forwards: a frame that belongs to none.
  template <class X>
  flow_awaiter(X&& inner, detail::context* ctx, const void* where = nullptr, const std::string_view* what = nullptr)
      : inner_(static_cast<Aw&&>(inner)), ctx_(ctx), where_(where), what_(what) {}
  flow_awaiter(flow_awaiter&&) = default; // only before the await begins
  flow_awaiter& operator=(const flow_awaiter&) = delete;
  ~flow_awaiter() {
    // Destroyed while its flow is suspended: the coroutine's frames are being
    // destroyed, the flow's blocks (destroyed after this) count as abandoned.
    // The owner of the flow calls leave_destroying when the last frame is
    // gone. (A frame can also be dropped after its flow went on elsewhere, as
    // Asio does with the frame of a completed operation: nothing to do then.)
    if (suspended_ && ctx_->suspended && ctx_->active == 0) detail::enter_destroying(*ctx_);
  }

  bool await_ready() { return static_cast<bool>(inner_.await_ready()); }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    if (ctx_ == nullptr) return detail::forward_suspend(inner_, h, [] {});
    suspended_ = true;
    ctx_->wait_location = where_; // what the flow waits on, charged when it resumes
    ctx_->wait_type = what_;
    detail::suspend_flow(*ctx_); // before handing over: the coroutine may resume elsewhere at once
    struct unmark {              // touches only this thread's state, never *this: the frame may be gone
      const void* previous;
      ~unmark() { detail::exchange_suspending(previous); }
    } restore{detail::exchange_suspending(ctx_)};
    return detail::forward_suspend(inner_, h, [this] {
      suspended_ = false;
      detail::resume_flow_uncounted(*ctx_);
    });
  }
  decltype(auto) await_resume() {
    if (suspended_) {
      suspended_ = false;
      detail::continue_flow(*ctx_);
    }
    return inner_.await_resume();
  }

private:
  Aw inner_;
  detail::context* ctx_;
  const void* where_;
  const std::string_view* what_;
  bool suspended_ = false;
};

/// `co_await on_flow(ctx, x)`: awaits x with ctx following the coroutine; a
/// suspension is a wait at this line. A promise's await_transform that takes
/// a defaulted std::source_location passes it on, so that each co_await of
/// its coroutines is its own await site.
template <class A>
auto on_flow(Context& ctx, A&& a, std::source_location loc = std::source_location::current()) {
  using held = detail::held_t<detail::awaiter_t<A&&>>;
  return flow_awaiter<held>(detail::get_awaiter(std::forward<A>(a)), ctx.flow(), detail::await_key(loc),
                            &detail::awaited_type<std::remove_cvref_t<A>>::name);
}

/// The awaiter of a timed co_await: one record of wall time, suspended
/// time, suspension count and thread change, written to the buffer of the
/// thread that resumes. In a flow it is a frame of the flow like a block
/// (a task it awaits joins the flow and nests inside it; the flow's own
/// suspensions are its suspended time); outside a flow it is a leaf that
/// measures its own suspension. Destroyed while suspended, it counts as
/// abandoned.
template <class Aw>
class timed_awaiter {
public:
  template <class X>
  timed_awaiter(X&& inner, detail::profiler_core* core, std::uint32_t site, std::uint64_t start_ticks = 0)
      : inner_(static_cast<Aw&&>(inner)), core_(core), site_(site), start_(start_ticks) {}
  timed_awaiter(timed_awaiter&&) = default; // only before the await begins
  timed_awaiter& operator=(const timed_awaiter&) = delete;
  ~timed_awaiter() {
    if (core_ == nullptr || state_ == state::idle) return;
    if (state_ == state::suspended) {
      if (in_flow_)
        detail::abandon_open(*core_, ctx_, depth_, site_, serial_);
      else
        detail::record_abandoned(*core_, site_);
    } else if (in_flow_) { // await_ready or await_suspend threw: the frame goes, nothing is recorded
      detail::abandon_open(*core_, ctx_, depth_, site_, serial_);
    }
  }

  bool await_ready() {
    if (core_ != nullptr) begin();
    return static_cast<bool>(inner_.await_ready());
  }

  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    if (core_ != nullptr) {
      state_ = state::suspended;
      if (!in_flow_) {
        thread_id_ = detail::this_thread_id();
        suspend_begin_ = detail::now_ticks();
        if (core_->timeline_on.load(std::memory_order_relaxed)) {
          // A flow's suspensions are drawn by the flow; a leaf await draws its own.
          if (own_flow_ == 0) own_flow_ = detail::next_timeline_id();
          arrow_ = detail::next_timeline_id();
          detail::timeline_append(*core_, timeline_kind::suspend, site_, suspend_begin_, arrow_, own_flow_);
        }
      } // nothing after this block: the coroutine may resume elsewhere at once
    }
    return detail::forward_suspend(inner_, h, [this] {
      if (core_ != nullptr) state_ = state::running;
    });
  }

  decltype(auto) await_resume() {
    struct finisher {
      timed_awaiter& self;
      ~finisher() { self.finish(); }
    };
    if (core_ != nullptr && state_ == state::suspended) resumed();
    finisher f{*this}; // records even when await_resume throws
    return inner_.await_resume();
  }

private:
  enum class state : unsigned char { idle, running, suspended };

  void begin() noexcept {
    detail::context& ctx = detail::current_context();
    ctx_ = &ctx;
    state_ = state::running;
    in_flow_ = !ctx.is_thread;
    if (start_ == 0) start_ = detail::now_ticks(); // else timing began when the operation was made
    serial_ = start_;
    if (in_flow_) {
      mark_ = detail::flow_mark::of(ctx);
      depth_ = detail::push_frame(ctx, core_, site_, serial_);
    } else {
      // A thread's own context cannot follow the coroutine to another
      // thread: the await is a leaf and keeps its parent's identity only.
      thread_ = &ctx;
      const std::uint32_t p = ctx.depth == 0 ? detail::max_depth : detail::innermost_open(ctx);
      if (p < detail::max_depth) {
        parent_depth_ = p;
        parent_serial_ = ctx.frame(p).serial.load(std::memory_order_relaxed);
        if (ctx.frame(p).core == core_) parent_site_ = ctx.frame(p).site;
      }
    }
  }
  void resumed() noexcept {
    state_ = state::running;
    if (in_flow_) return; // the flow counted it
    const std::uint64_t now = detail::now_ticks();
    if (arrow_ != 0) {
      detail::timeline_append(*core_, timeline_kind::resume, site_, now, arrow_, own_flow_);
      arrow_ = 0;
    }
    suspended_ns_ += detail::ticks_to_ns(suspend_begin_, now);
    ++suspensions_;
    const void* now_on = detail::this_thread_id();
    if (now_on != thread_id_) migrated_ = true;
  }
  void finish() noexcept {
    if (core_ == nullptr) return;
    const std::uint64_t end = detail::now_ticks();
    detail::profiler_core& core = *core_;
    core_ = nullptr;
    if (in_flow_) {
      detail::close_open(core, ctx_, depth_, site_, serial_, end, 0, mark_, 0);
      return;
    }
    const std::uint64_t ns = detail::ticks_to_ns(start_, end);
    detail::context& now_in = detail::current_context();
    if (&now_in == thread_ && parent_depth_ < now_in.depth &&
        now_in.frame(parent_depth_).serial.load(std::memory_order_relaxed) == parent_serial_)
      now_in.frame(parent_depth_).child_ns += ns; // still under its parent, on the same thread
    detail::record(core, site_, ns, 0, 0, parent_site_,
                   detail::flow_mark{suspended_ns_, suspensions_, migrated_ ? 1u : 0u}, start_, end, own_flow_);
  }

  Aw inner_;
  detail::profiler_core* core_;
  std::uint32_t site_;
  std::uint64_t start_;
  detail::context* ctx_ = nullptr;
  std::uint64_t serial_ = 0;
  detail::flow_mark mark_{0, 0, 0};
  std::uint32_t depth_ = detail::max_depth;
  state state_ = state::idle;
  bool in_flow_ = false;
  bool migrated_ = false;
  // Outside a flow only:
  const detail::context* thread_ = nullptr;
  const void* thread_id_ = nullptr;
  std::uint32_t parent_depth_ = detail::max_depth;
  std::uint64_t parent_serial_ = 0;
  std::uint32_t parent_site_ = no_parent;
  std::uint64_t suspend_begin_ = 0;
  std::uint64_t suspended_ns_ = 0;
  std::uint64_t suspensions_ = 0;
  std::uint64_t own_flow_ = 0; // timeline id of a leaf await
  std::uint64_t arrow_ = 0;    // timeline arrow of the current suspension
};

/// What Profiler::wrap returns: `co_await` it like the awaitable it holds.
template <class A>
class timed_awaitable {
public:
  template <class X>
  timed_awaitable(X&& a, detail::profiler_core* core, std::uint32_t site, std::uint64_t start_ticks = 0)
      : awaitable_(std::forward<X>(a)), core_(core), site_(site), start_(start_ticks) {}

  auto operator co_await() && {
    using held = detail::held_t<detail::awaiter_t<A&&>>;
    return timed_awaiter<held>(detail::get_awaiter(static_cast<A&&>(awaitable_)), core_, site_, start_);
  }

  /// The awaitable it times (a promise's await_transform may need to reach
  /// a task inside, to make it join the flow).
  A& inner() noexcept { return awaitable_; }

private:
  A awaitable_;
  detail::profiler_core* core_;
  std::uint32_t site_;
  std::uint64_t start_;
};

} // namespace stichotrope
