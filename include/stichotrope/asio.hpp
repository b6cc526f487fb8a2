// stichotrope + Asio (optional): every Asio coroutine is a flow, and timed
// sub-operations. Include it after <asio.hpp> (and your other headers), in
// every translation unit that defines Asio coroutines; it imports the
// stichotrope module itself.
//
// How it works (docs/coroutines.md has the details): Asio runs a coroutine
// started by co_spawn as an "awaitable thread" — a stack of coroutine frames
// that one handler at a time resumes, on whichever thread. This header gives
// asio::awaitable<T> (any_io_executor, the default) a promise type derived
// from Asio's own, which adds what a flow needs and nothing else:
// - a frame that starts as the bottom of an awaitable thread (co_spawn from
//   any executor, including this_coro::executor and the ones inside
//   awaitable operators and parallel groups) gets a flow of its own;
// - a frame started by `co_await child()` joins its caller's flow;
// - every other co_await (an I/O operation, a timer, post, a channel) leaves
//   the flow while it is suspended and enters it again on whichever thread
//   resumes it; an operation that completes at once is not a suspension;
// - frames destroyed while suspended count their open blocks as abandoned.
// No executor is wrapped: executors are copied freely and say nothing about
// which coroutine runs.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/version.hpp>

#include <coroutine>
#include <cstdint>
#include <functional>
#include <source_location>
#include <string_view>
#include <type_traits>
#include <utility>

import stichotrope;

#if ASIO_VERSION < 102200 || ASIO_VERSION >= 102900
#error "stichotrope/asio.hpp follows the awaitable frames of Asio 1.22-1.28; see docs/coroutines.md"
#endif

namespace stichotrope::for_asio {

namespace detail {

/// Set by a flow frame that is about to co_await a child coroutine, read by
/// the child when it starts: which frame is its caller, and whose flow it
/// joins. Only the awaiting thread touches it, between the two.
struct pending_join {
  const void* caller = nullptr;
  stichotrope::detail::context* flow = nullptr;
};
inline thread_local pending_join join_hint{};

// Out of line on purpose: read right after a resumption (docs/coroutines.md).
[[gnu::noinline]] inline stichotrope::detail::context* take_join(const void* caller) noexcept {
  pending_join& hint = join_hint;
  stichotrope::detail::context* flow = hint.caller == caller ? hint.flow : nullptr;
  hint = {};
  return flow;
}
[[gnu::noinline]] inline void offer_join(const void* caller, stichotrope::detail::context* flow) noexcept {
  join_hint = {caller, flow};
}

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<::asio::awaitable<T, E>> : std::true_type {};

/// `co_await child()` from a flow frame: Asio's own await, given the handle
/// type Asio expects (the flow frame starts with Asio's frame).
/// Asio completes an operation by dropping the operation's frame and
/// resuming its caller, so the flow goes on here, not in the operation.
/// While the child runs, its waits are charged under this await too (an
/// Asio operation is such a child: its wait is named for this line).
template <class Awaitable, class Frame>
struct join_awaiter {
  Awaitable awaitable;
  stichotrope::detail::context* flow;
  const void* where;
  std::uint32_t restore = UINT32_MAX; // the join depth to go back to; UINT32_MAX: nothing pushed
  bool await_ready() noexcept { return awaitable.await_ready(); }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    if (flow != nullptr) restore = stichotrope::detail::push_join(*flow, where);
    awaitable.await_suspend(std::coroutine_handle<Frame>::from_address(h.address()));
  }
  decltype(auto) await_resume() {
    if (flow != nullptr) {
      stichotrope::detail::continue_flow(*flow); // before the operation's frame goes
      if (restore != UINT32_MAX) stichotrope::detail::pop_join(*flow, restore);
    }
    return awaitable.await_resume();
  }
};

/// Whether a coroutine's parameters hold a use_awaitable token: Asio's own
/// operation coroutines (async_result<use_awaitable_t>::initiate) do. Such a
/// frame joins the flow that awaits it, and starts none of its own: awaited
/// by co_spawn's entry point (its first dispatch), it belongs to no flow.
template <class A>
struct is_use_awaitable : std::false_type {};
template <class E>
struct is_use_awaitable<::asio::use_awaitable_t<E>> : std::true_type {};
template <class... Args>
inline constexpr bool is_operation = (is_use_awaitable<std::remove_cvref_t<Args>>::value || ...);

/// The promise of asio::awaitable<T>: Asio's own frame plus a flow.
/// `Operation`: an Asio operation's frame, which never starts a flow.
template <class T, class Executor, bool Operation = false>
class flow_frame : public ::asio::detail::awaitable_frame<T, Executor> {
  using base = ::asio::detail::awaitable_frame<T, Executor>;

public:
  static_assert(alignof(base) == alignof(stichotrope::detail::context*), "the flow frame must share Asio's layout");
  flow_frame() = default;
  flow_frame(const flow_frame&) = delete;
  ~flow_frame() {
    if (own_ != nullptr) {
      stichotrope::detail::leave_destroying(*own_);
      stichotrope::detail::release_context(own_);
    }
  }

  auto initial_suspend() noexcept {
    struct starter {
      flow_frame* self;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<>) const noexcept {}
      void await_resume() const { self->start(); }
    };
    return starter{this};
  }

  auto final_suspend() noexcept {
    struct finisher {
      flow_frame* self;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<>) const noexcept {
        if (self->own_ != nullptr) stichotrope::detail::finish_flow(*self->own_); // the bottom frame ends its flow
        self->pop_frame();
      }
      void await_resume() const noexcept {}
    };
    return finisher{this};
  }

  /// A child coroutine joins this flow; everything else Asio accepts is
  /// awaited as Asio would, with the flow leaving the thread meanwhile. Each
  /// suspension is a wait at the co_await's own line (`loc` is evaluated
  /// there); one inside Asio's own operation coroutine is named for the
  /// program's co_await of it and the operation it started.
  template <class A>
  auto await_transform(A&& a, std::source_location loc = std::source_location::current()) {
    if constexpr (is_awaitable<std::remove_cvref_t<A>>::value) {
      offer_join(static_cast<::asio::detail::awaitable_frame_base<Executor>*>(this), flow_);
      using child = decltype(base::await_transform(std::forward<A>(a)));
      return join_awaiter<child, base>{base::await_transform(std::forward<A>(a)), flow_,
                                       stichotrope::detail::await_key(loc)};
    } else {
      auto inner = base::await_transform(std::forward<A>(a));
      return stichotrope::flow_awaiter<decltype(inner)>(
          std::move(inner), flow_, stichotrope::detail::await_key(loc),
          &stichotrope::detail::awaited_type<std::remove_cvref_t<A>>::name);
    }
  }

private:
  void start() {
    // Asio pushes a child frame over its caller (caller_) before resuming it.
    if (this->caller_ != nullptr) flow_ = take_join(static_cast<const void*>(this->caller_));
    if constexpr (Operation) return;                                             // joined, or of no flow
    if (flow_ == nullptr) flow_ = own_ = stichotrope::detail::acquire_context(); // the bottom of an awaitable thread
    if (own_ != nullptr) stichotrope::detail::resume_flow(*own_);
  }

  stichotrope::detail::context* flow_ = nullptr;
  stichotrope::detail::context* own_ = nullptr;
};

template <class T>
::asio::awaitable<T> timed_impl(BlockOpener open, ::asio::awaitable<T> op) {
  auto block = open(); // spans the co_await, in the caller's flow
  co_return co_await std::move(op);
}

} // namespace detail

/// Times an Asio awaitable sub-operation, until it completes:
/// `co_await stichotrope::for_asio::timed(profiler, 3, "backend", call_backend());`
/// The operation runs in the caller's flow: its blocks are children of this one.
template <class T>
::asio::awaitable<T> timed(Profiler& profiler, int track, std::string_view name, ::asio::awaitable<T> op,
                           std::source_location loc = std::source_location::current()) {
  if constexpr (!instrumentation_compiled_in) {
    return op;
  } else {
    auto site = profiler.site(track, name, loc);
    if (!site) return op;
    return detail::timed_impl(profiler.opener(*site), std::move(op));
  }
}

/// Wraps a function returning an Asio awaitable, so that each call is timed
/// until the operation completes (Profiler::track's counterpart for Asio).
/// The wrapper holds a Tracked: it may outlive the profiler (it then records
/// nothing).
template <class F>
auto track(Profiler& profiler, int track, std::string_view name, F fn,
           std::source_location loc = std::source_location::current()) {
  if constexpr (!instrumentation_compiled_in) {
    return fn;
  } else {
    return [tracked = profiler.track(track, name, std::move(fn), loc)](auto&&... args) {
      return detail::timed_impl(tracked.opener(),
                                std::invoke(tracked.callable(), std::forward<decltype(args)>(args)...));
    };
  }
}

} // namespace stichotrope::for_asio

// The promise of asio::awaitable<T> with Asio's default executor: Asio's own
// frame type for the entry point of an awaitable thread, the flow frame for
// every coroutine a program writes. Instrumentation compiled out: Asio's own.
#if !defined(STICHOTROPE_COMPILED_OUT)
template <class T, class... Args>
struct std::coroutine_traits<::asio::awaitable<T, ::asio::any_io_executor>, Args...> {
  using promise_type =
      std::conditional_t<std::is_same_v<T, ::asio::detail::awaitable_thread_entry_point>,
                         ::asio::detail::awaitable_frame<T, ::asio::any_io_executor>,
                         stichotrope::for_asio::detail::flow_frame<
                             T, ::asio::any_io_executor, stichotrope::for_asio::detail::is_operation<Args...>>>;
};
#endif
