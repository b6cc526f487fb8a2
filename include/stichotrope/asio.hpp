// stichotrope + Asio (optional): flows for Asio coroutines, and timed
// sub-operations. Include it after <asio.hpp> and your other headers; it
// imports the stichotrope module itself.
//
//   asio::co_spawn(stichotrope::asio::with_flow(io.get_executor()), session(), asio::detached);
//
// with_flow gives the spawned coroutine (and everything it co_awaits) a flow
// of its own: each time Asio runs it, on whichever thread, the flow is
// entered, and left when it suspends. Blocks that span co_await then nest
// per session and split their wall time into active and suspended time.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/execution.hpp>
#include <asio/prefer.hpp>
#include <asio/query.hpp>
#include <asio/require.hpp>

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <source_location>
#include <string_view>
#include <type_traits>
#include <utility>

import stichotrope;

namespace stichotrope::asio {

/// An executor that runs every function of a coroutine inside one flow: the
/// flow is entered before and left after each run, wherever it runs.
template <class Inner>
class flow_executor {
public:
  flow_executor(Inner inner, std::shared_ptr<Context> flow) noexcept
      : inner_(std::move(inner)), flow_(std::move(flow)) {}

  template <class F>
  void execute(F&& f) const {
    ::asio::execution::execute(inner_, [f = std::forward<F>(f), flow = flow_]() mutable {
      struct leave_on_exit {
        stichotrope::detail::context& flow;
        stichotrope::detail::context* previous;
        ~leave_on_exit() { stichotrope::detail::leave_flow(flow, previous); }
      };
      auto& raw = flow->raw();
      leave_on_exit guard{raw, stichotrope::detail::enter_flow(raw)};
      std::move(f)();
    });
  }

  template <class Property>
  auto query(const Property& p) const noexcept(noexcept(::asio::query(std::declval<const Inner&>(), p)))
      -> decltype(::asio::query(std::declval<const Inner&>(), p)) {
    return ::asio::query(inner_, p);
  }
  template <class Property>
  auto require(const Property& p) const
      -> flow_executor<std::decay_t<decltype(::asio::require(std::declval<const Inner&>(), p))>> {
    return {::asio::require(inner_, p), flow_};
  }
  template <class Property>
  auto prefer(const Property& p) const
      -> flow_executor<std::decay_t<decltype(::asio::prefer(std::declval<const Inner&>(), p))>> {
    return {::asio::prefer(inner_, p), flow_};
  }

  friend bool operator==(const flow_executor& a, const flow_executor& b) noexcept {
    return a.inner_ == b.inner_ && a.flow_ == b.flow_;
  }
  friend bool operator!=(const flow_executor& a, const flow_executor& b) noexcept { return !(a == b); }

  const Inner& inner() const noexcept { return inner_; }
  const std::shared_ptr<Context>& flow() const noexcept { return flow_; }

private:
  Inner inner_;
  std::shared_ptr<Context> flow_;
};

/// A new flow on `ex`: pass it to co_spawn for one logical flow (a session,
/// a request).
template <class Executor>
flow_executor<Executor> with_flow(const Executor& ex) {
  return flow_executor<Executor>(ex, std::make_shared<Context>());
}

namespace detail {
template <class T, class E>
::asio::awaitable<T, E> timed_impl(Profiler& profiler, Site site, ::asio::awaitable<T, E> op) {
  auto block = profiler.block(site); // spans the co_await: correct inside a flow
  co_return co_await std::move(op);
}
template <class T, class E>
::asio::awaitable<T, E> timed_wall_only(Profiler& profiler, Site site, ::asio::awaitable<T, E> op) {
  // No flow: a block cannot follow the coroutine between threads, so only
  // the wall time is recorded, as a leaf.
  const auto start = std::chrono::steady_clock::now();
  struct on_exit {
    Profiler& p;
    Site s;
    std::chrono::steady_clock::time_point start;
    ~on_exit() { p.record(s, std::chrono::steady_clock::now() - start); }
  } guard{profiler, site, start};
  co_return co_await std::move(op);
}
} // namespace detail

/// Times an Asio awaitable sub-operation:
/// `co_await stichotrope::asio::timed(profiler, 3, "backend", call_backend());`
template <class T, class E>
::asio::awaitable<T, E> timed(Profiler& profiler, int track, std::string_view name, ::asio::awaitable<T, E> op,
                              std::source_location loc = std::source_location::current()) {
  auto site = profiler.site(track, name, loc);
  if (!site) return std::move(op);
  if (in_flow()) return detail::timed_impl(profiler, *site, std::move(op));
  return detail::timed_wall_only(profiler, *site, std::move(op));
}

/// Wraps a function returning an Asio awaitable, so that each call is timed
/// until the operation completes (Profiler::track's counterpart for Asio).
template <class F>
auto track(Profiler& profiler, int track, std::string_view name, F fn,
           std::source_location loc = std::source_location::current()) {
  auto site = profiler.site(track, name, loc);
  return [&profiler, site, fn = std::move(fn)](auto&&... args) {
    auto op = std::invoke(fn, std::forward<decltype(args)>(args)...);
    if (!site) return op;
    if (in_flow()) return detail::timed_impl(profiler, *site, std::move(op));
    return detail::timed_wall_only(profiler, *site, std::move(op));
  };
}

} // namespace stichotrope::asio
