// What the two Asio flavours share (included by stichotrope/asio.hpp and
// stichotrope/boost_asio.hpp; not meant to be included alone): the hint by
// which a child coroutine finds the flow of the frame that awaits it, the
// awaiter of such a child, and `track`, which works for both.
#pragma once

#include <coroutine>
#include <cstdint>
#include <functional>
#include <source_location>
#include <string_view>
#include <type_traits>
#include <utility>

import stichotrope;

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

/// How an awaitable of either flavour is timed: specialised by each
/// flavour's header for its awaitable<T, Executor> (a `wrap` that returns
/// the same awaitable type, its block spanning the operation).
template <class Awaitable>
struct timing;

} // namespace detail

/// Wraps a function returning an Asio awaitable (standalone or Boost, any
/// executor), so that each call is timed until the operation completes
/// (Profiler::track's counterpart for Asio). The wrapper holds a Tracked: it
/// may outlive the profiler (it then records nothing).
template <class F>
auto track(Profiler& profiler, int track, std::string_view name, F fn,
           std::source_location loc = std::source_location::current()) {
  if constexpr (!instrumentation_compiled_in) {
    return fn;
  } else {
    return [tracked = profiler.track(track, name, std::move(fn), loc)](auto&&... args) {
      auto op = std::invoke(tracked.callable(), std::forward<decltype(args)>(args)...);
      return detail::timing<decltype(op)>::wrap(tracked.opener(), std::move(op));
    };
  }
}

} // namespace stichotrope::for_asio
