module;
#include <atomic>
#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <source_location>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
export module stichotrope:task;
import :core;
import :coro;

// A minimal lazy coroutine task whose promise keeps a flow (Context) for its
// whole chain: the reference for how a coroutine type gets stichotrope's
// coroutine awareness automatically, and what the tests and examples use.

export namespace stichotrope {

template <class T = void>
class task;

} // namespace stichotrope

namespace stichotrope::detail { // internal: reachable, not visible

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

template <class T>
struct is_timed_task : std::false_type {};
template <class T>
struct is_timed_task<timed_awaitable<task<T>>> : std::true_type {};

struct task_promise_base {
  context* own = nullptr;  // the flow, when this task is the root of its chain (from the pool)
  context* flow = nullptr; // the flow it runs in: its own, or its awaiter's (set before it starts)
  std::coroutine_handle<> continuation{};
  std::exception_ptr error;

  task_promise_base() = default;
  task_promise_base(const task_promise_base&) = delete;
  ~task_promise_base() {
    if (own != nullptr) {
      leave_destroying(*own); // its frames, destroyed while suspended, are gone now
      release_context(own);
    }
  }

  struct initial_awaiter {
    task_promise_base* promise;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const {
      task_promise_base& p = *promise;
      if (p.flow == nullptr) p.flow = p.own = acquire_context(); // started on its own: the root of a flow
      resume_flow(*p.flow);
    }
  };
  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      task_promise_base& p = h.promise();
      if (p.flow == p.own) finish_flow(*p.flow); // a root's flow ends here
      return p.continuation ? p.continuation : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  initial_awaiter initial_suspend() noexcept { return {this}; }
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }

  /// The await of a task that joins this flow: while the task runs, its
  /// waits are charged under this await too (docs/coroutines.md, "Waits").
  template <class Inner>
  struct join_awaiter {
    Inner inner;
    context* flow;
    const void* where;
    std::uint32_t restore = UINT32_MAX; // the join depth to go back to; UINT32_MAX: nothing pushed
    bool await_ready() { return static_cast<bool>(inner.await_ready()); }
    template <class P>
    auto await_suspend(std::coroutine_handle<P> h) {
      restore = push_join(*flow, where);
      return inner.await_suspend(h);
    }
    decltype(auto) await_resume() {
      if (restore != UINT32_MAX) pop_join(*flow, restore);
      return inner.await_resume();
    }
  };

  /// Every co_await: a task (timed or not) joins this flow and runs in it;
  /// anything else suspends the flow, and each suspension is a wait at the
  /// co_await's own line (`loc` is evaluated there).
  template <class A>
  decltype(auto) await_transform(A&& a, std::source_location loc = std::source_location::current()) {
    if constexpr (is_task<std::remove_cvref_t<A>>::value) {
      a.handle_.promise().flow = flow; // the awaited task continues this chain's flow
      using inner = decltype(std::forward<A>(a).operator co_await());
      return join_awaiter<inner>{std::forward<A>(a).operator co_await(), flow, await_key(loc)};
    } else if constexpr (is_timed_task<std::remove_cvref_t<A>>::value) {
      a.inner().handle_.promise().flow = flow; // wrap(task) / track(): the task nests in the timed await
      using inner = decltype(std::forward<A>(a).operator co_await());
      return join_awaiter<inner>{std::forward<A>(a).operator co_await(), flow, await_key(loc)};
    } else {
      using held = held_t<awaiter_t<A&&>>;
      return flow_awaiter<held>(get_awaiter(std::forward<A>(a)), *flow, await_key(loc),
                                &awaited_type<std::remove_cvref_t<A>>::name);
    }
  }
};

template <class T>
struct task_promise : task_promise_base {
  std::optional<T> value;
  task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct task_promise<void> : task_promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

} // namespace stichotrope::detail
export namespace stichotrope {

/// A lazy coroutine: starts when awaited, resumes its awaiter when done
/// (symmetric transfer), rethrows its exception there. Its blocks nest in its
/// chain's flow, whichever thread runs it.
template <class T>
class [[nodiscard]] task {
public:
  using promise_type = detail::task_promise<T>;

  task(task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~task() { destroy(); }

  auto operator co_await() && noexcept {
    struct awaiter {
      std::coroutine_handle<promise_type> h;
      bool await_ready() const noexcept { return !h || h.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation = awaiting;
        return h;
      }
      T await_resume() { return h.promise().take(); }
    };
    return awaiter{handle_};
  }

  /// Releases the coroutine (for runners that own its lifetime).
  std::coroutine_handle<promise_type> release() noexcept { return std::exchange(handle_, nullptr); }

private:
  friend struct detail::task_promise<T>;
  friend struct detail::task_promise_base;

  // A task destroyed while suspended: its flow becomes current (still
  // suspended) while its frames go, so that their open blocks count as
  // abandoned; the root's promise restores the thread (~task_promise_base).
  void destroy() noexcept {
    if (!handle_) return;
    detail::context* flow = handle_.promise().flow;
    if (flow != nullptr && !handle_.done() && flow->suspended && flow->active == 0) detail::enter_destroying(*flow);
    // A joined task goes only with its caller's frame: the root leaves (its promise).
    std::exchange(handle_, nullptr).destroy();
  }
  explicit task(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
  std::coroutine_handle<promise_type> handle_;
};

} // namespace stichotrope

namespace stichotrope::detail { // internal: reachable, not visible
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

/// An eager coroutine that destroys itself when done.
struct detached {
  struct promise_type {
    detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

template <class T>
struct wait_state {
  std::atomic<bool> done{false};
  std::exception_ptr error;
  std::conditional_t<std::is_void_v<T>, std::monostate, std::optional<T>> value;
};

template <class T>
detached run_and_signal(task<T> t, std::shared_ptr<wait_state<T>> state) {
  try {
    if constexpr (std::is_void_v<T>)
      co_await std::move(t);
    else
      state->value.emplace(co_await std::move(t));
  } catch (...) {
    state->error = std::current_exception();
  }
  state->done.store(true, std::memory_order_release);
  state->done.notify_all();
}

template <class F>
detached run_detached(task<void> t, F on_done) {
  std::exception_ptr error;
  try {
    co_await std::move(t);
  } catch (...) {
    error = std::current_exception();
  }
  on_done(error);
}
} // namespace stichotrope::detail
export namespace stichotrope {

/// Runs a task to completion, blocking the calling thread (the task may
/// finish on any thread), and returns its value or rethrows its exception.
template <class T>
T sync_wait(task<T> t) {
  auto state = std::make_shared<detail::wait_state<T>>();
  detail::run_and_signal(std::move(t), state);
  state->done.wait(false, std::memory_order_acquire);
  if (state->error) std::rethrow_exception(state->error);
  if constexpr (!std::is_void_v<T>) return std::move(*state->value);
}

/// Starts a task now, on this thread, without waiting for it; `on_done` is
/// called with its exception (or null) on whichever thread finishes it.
template <class F>
void spawn(task<void> t, F on_done) {
  detail::run_detached(std::move(t), std::move(on_done));
}

} // namespace stichotrope
