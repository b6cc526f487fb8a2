module;
#include <atomic>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <type_traits>
#include <utility>
export module stichotrope:coro;
import :clock;
import :results;
import :core;

// Coroutine awareness: flows (contexts) that follow coroutines across
// threads, and the timed awaiter behind Profiler::wrap.

export namespace stichotrope::detail {

/// Identity of the calling thread. Out of line on purpose: after a
/// suspension the coroutine may run elsewhere, and a thread-local address
/// computed before it must never be reused (DESIGN.md invariant 5).
const void* this_thread_id() noexcept;

/// Runs of a flow by an executor: enter_flow makes `c` current and returns
/// what was current before, which leave_flow restores. Runs may nest (an
/// executor may run a flow's handler inside another of its handlers); the
/// flow is suspended when its outermost run ends.
context* enter_flow(context& c) noexcept;
void leave_flow(context& c, context* previous) noexcept;

/// Makes `c` the current flow of the calling thread; if it was suspended,
/// its suspension ends now (suspended time, count, thread change).
void resume_flow(context& c) noexcept;
/// The flow stops running on this thread: suspended from now on, and the
/// thread's previous flow becomes current again.
void suspend_flow(context& c) noexcept;
/// The flow ended: the thread's previous flow becomes current again.
void finish_flow(context& c) noexcept;

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
/// when the coroutine did not suspend after all (bool false, or a throw).
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
    try {
      return inner.await_suspend(h); // symmetric transfer: a coroutine handle
    } catch (...) {
      undo();
      throw;
    }
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
  Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  void enter() noexcept { detail::resume_flow(ctx_); }
  void leave() noexcept { detail::suspend_flow(ctx_); }
  /// The flow is done (no suspension is counted).
  void finish() noexcept { detail::finish_flow(ctx_); }

  bool suspended() const noexcept { return ctx_.suspended; }
  std::uint64_t suspended_ns() const noexcept { return ctx_.suspended_ns; }
  std::uint64_t suspensions() const noexcept { return ctx_.suspensions; }
  std::uint64_t migrations() const noexcept { return ctx_.migrations; }

  detail::context& raw() noexcept { return ctx_; }

private:
  detail::context ctx_;
};

/// True when the calling thread runs a flow other than its own (a task, a
/// Context, an Asio coroutine spawned with_flow): blocks may span co_await.
bool in_flow() noexcept;

/// Enters a Context for a scope (e.g. one run of a fiber) and leaves it.
class ContextScope {
public:
  explicit ContextScope(Context& c) noexcept : c_(c) { c_.enter(); }
  ~ContextScope() { c_.leave(); }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

private:
  Context& c_;
};

/// Wraps an awaiter so that the flow `ctx` leaves the thread when the
/// coroutine suspends and enters the resuming thread when it resumes. A
/// promise's await_transform returns this for every co_await (see task).
template <class Aw>
class flow_awaiter {
public:
  template <class X>
  flow_awaiter(X&& inner, detail::context& ctx) : inner_(static_cast<Aw&&>(inner)), ctx_(&ctx) {}

  bool await_ready() { return static_cast<bool>(inner_.await_ready()); }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    detail::suspend_flow(*ctx_); // before handing over: the coroutine may resume elsewhere at once
    return detail::forward_suspend(inner_, h, [this] { detail::resume_flow(*ctx_); });
  }
  decltype(auto) await_resume() {
    detail::resume_flow(*ctx_);
    return inner_.await_resume();
  }

private:
  Aw inner_;
  detail::context* ctx_;
};

/// `co_await on_flow(ctx, x)`: awaits x with ctx following the coroutine.
template <class A>
auto on_flow(Context& ctx, A&& a) {
  using held = detail::held_t<detail::awaiter_t<A&&>>;
  return flow_awaiter<held>(detail::get_awaiter(std::forward<A>(a)), ctx.raw());
}

/// The awaiter of a timed co_await: one record of wall time, suspended
/// time, suspension count and thread change, written to the buffer of the
/// thread that resumes. Destroyed while suspended, it counts as abandoned.
template <class Aw>
class timed_awaiter {
public:
  template <class X>
  timed_awaiter(X&& inner, detail::profiler_core* core, std::uint32_t site, std::uint64_t start_ticks = 0)
      : inner_(static_cast<Aw&&>(inner)), core_(core), start_(start_ticks) {
    frame_.site = site;
  }
  timed_awaiter(timed_awaiter&&) = default; // only before the await begins
  timed_awaiter& operator=(const timed_awaiter&) = delete;
  ~timed_awaiter() {
    if (core_ == nullptr) return;
    if (state_ == state::suspended)
      detail::record_abandoned(*core_, frame_.site);
    else if (state_ == state::running && !detached_ && ctx_->top == &frame_) // await_ready threw
      ctx_->top = frame_.parent;
  }

  bool await_ready() {
    if (core_ != nullptr) begin();
    return static_cast<bool>(inner_.await_ready());
  }

  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    if (core_ != nullptr) {
      state_ = state::suspended;
      if (ctx_ == &detail::thread_context) {
        // A thread's own flow cannot follow the coroutine to another thread:
        // the await is a leaf, so it leaves the thread's nesting now.
        ctx_->top = frame_.parent;
        frame_.parent = nullptr;
        detached_ = true;
      }
      suspend_begin_ = detail::now_ticks();
      if (detached_ && core_->timeline_on.load(std::memory_order_relaxed)) {
        // A flow's suspensions are drawn by the flow; a detached await draws its own.
        if (own_flow_ == 0) own_flow_ = detail::next_timeline_id();
        arrow_ = detail::next_timeline_id();
        detail::timeline_append(*core_, detail::event_kind::suspend, frame_.site, suspend_begin_, arrow_, own_flow_);
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
    ctx_ = &detail::current_context();
    frame_.core = core_;
    frame_.parent = ctx_->top;
    ctx_->top = &frame_;
    parent_site_ = frame_.parent != nullptr ? frame_.parent->site : no_parent;
    thread_ = &detail::thread_context;
    state_ = state::running;
    if (start_ == 0) start_ = detail::now_ticks(); // else timing began when the operation was made
  }
  void resumed() noexcept {
    const std::uint64_t now = detail::now_ticks();
    if (arrow_ != 0) {
      detail::timeline_append(*core_, detail::event_kind::resume, frame_.site, now, arrow_, own_flow_);
      arrow_ = 0;
    }
    suspended_ns_ += detail::ticks_to_ns(suspend_begin_, now);
    ++suspensions_;
    const void* now_on = detail::this_thread_id();
    if (now_on != thread_) migrated_ = true;
    thread_ = now_on;
    state_ = state::running;
  }
  void finish() noexcept {
    if (core_ == nullptr) return;
    const std::uint64_t end = detail::now_ticks();
    const std::uint64_t ns = detail::ticks_to_ns(start_, end);
    if (!detached_) {
      ctx_->top = frame_.parent;
      if (frame_.parent != nullptr) frame_.parent->child_ns += ns;
    }
    detail::profiler_core& core = *core_;
    core_ = nullptr;
    detail::record(core, frame_.site, ns, 0, 0, parent_site_,
                   detail::flow_mark{suspended_ns_, suspensions_, migrated_ ? 1u : 0u}, start_, end,
                   detached_ ? own_flow_ : ctx_->id);
  }

  Aw inner_;
  detail::profiler_core* core_;
  detail::context* ctx_ = nullptr;
  detail::open_frame frame_{};
  std::uint32_t parent_site_ = no_parent;
  state state_ = state::idle;
  bool detached_ = false;
  bool migrated_ = false;
  const void* thread_ = nullptr;
  std::uint64_t start_ = 0;
  std::uint64_t suspend_begin_ = 0;
  std::uint64_t suspended_ns_ = 0;
  std::uint64_t suspensions_ = 0;
  std::uint64_t own_flow_ = 0; // timeline id of a detached await
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

private:
  A awaitable_;
  detail::profiler_core* core_;
  std::uint32_t site_;
  std::uint64_t start_;
};

} // namespace stichotrope
