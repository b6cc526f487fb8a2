// Flows for one Asio flavour: the one implementation behind
// stichotrope/asio.hpp (standalone Asio) and stichotrope/boost_asio.hpp
// (Boost.Asio), which include it once each with
//   STICHOTROPE_ASIO          the flavour's namespace: ::asio or ::boost::asio
//   STICHOTROPE_ASIO_FLAVOUR  a name for its own details: standalone or boost_asio
// Both follow the awaitable frames of Asio 1.22-1.28 (Boost 1.78-1.83), which
// are the same code in either namespace. Not meant to be included alone.
// docs/coroutines.md, "Asio", says how it works.
#include "asio_common.hpp"

namespace stichotrope::for_asio {

namespace detail::STICHOTROPE_ASIO_FLAVOUR {

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<STICHOTROPE_ASIO::awaitable<T, E>> : std::true_type {};

/// Whether a coroutine's parameters hold a use_awaitable token: Asio's own
/// operation coroutines (async_result<use_awaitable_t>::initiate) do. Such a
/// frame joins the flow that awaits it, and starts none of its own: awaited
/// by co_spawn's entry point (its first dispatch), it belongs to no flow.
template <class A>
struct is_use_awaitable : std::false_type {};
template <class E>
struct is_use_awaitable<STICHOTROPE_ASIO::use_awaitable_t<E>> : std::true_type {};
template <class... Args>
inline constexpr bool is_operation = (is_use_awaitable<std::remove_cvref_t<Args>>::value || ...);

/// The promise of awaitable<T, Executor>: Asio's own frame plus a flow.
/// `Operation`: an Asio operation's frame, which never starts a flow.
template <class T, class Executor, bool Operation = false>
class flow_frame : public STICHOTROPE_ASIO::detail::awaitable_frame<T, Executor> {
  using base = STICHOTROPE_ASIO::detail::awaitable_frame<T, Executor>;

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
      offer_join(static_cast<STICHOTROPE_ASIO::detail::awaitable_frame_base<Executor>*>(this), flow_);
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

template <class T, class E>
STICHOTROPE_ASIO::awaitable<T, E> timed_impl(BlockOpener open, STICHOTROPE_ASIO::awaitable<T, E> op) {
  auto block = open(); // spans the co_await, in the caller's flow
  co_return co_await std::move(op);
}

} // namespace detail::STICHOTROPE_ASIO_FLAVOUR

namespace detail {
template <class T, class E>
struct timing<STICHOTROPE_ASIO::awaitable<T, E>> {
  static STICHOTROPE_ASIO::awaitable<T, E> wrap(BlockOpener open, STICHOTROPE_ASIO::awaitable<T, E> op) {
    return STICHOTROPE_ASIO_FLAVOUR::timed_impl(std::move(open), std::move(op));
  }
};
} // namespace detail

/// Times an Asio awaitable sub-operation, until it completes:
/// `co_await stichotrope::for_asio::timed(profiler, 3, "backend", call_backend());`
/// The operation runs in the caller's flow: its blocks are children of this one.
template <class T, class E>
STICHOTROPE_ASIO::awaitable<T, E> timed(Profiler& profiler, int track, std::string_view name,
                                        STICHOTROPE_ASIO::awaitable<T, E> op,
                                        std::source_location loc = std::source_location::current()) {
  if constexpr (!instrumentation_compiled_in) {
    return op;
  } else {
    auto site = profiler.site(track, name, loc);
    if (!site) return op;
    return detail::STICHOTROPE_ASIO_FLAVOUR::timed_impl(profiler.opener(*site), std::move(op));
  }
}

} // namespace stichotrope::for_asio

// The promise of every awaitable<T, Executor> of this flavour, whatever the
// executor (any_io_executor, a strand, io_context::executor_type, one of the
// program's own): Asio's own frame type for the entry point of an awaitable
// thread, the flow frame for every coroutine a program writes. Asio itself
// declares coroutine_traits<awaitable<T, Executor>, Args...>; these two
// (no parameters; a first parameter and the rest) are more specialised, so
// together they take every awaitable coroutine. Instrumentation compiled
// out: Asio's own.
#if !defined(STICHOTROPE_COMPILED_OUT)
namespace stichotrope::for_asio::detail::STICHOTROPE_ASIO_FLAVOUR {
template <class T, class Executor, class... Args>
using promise_for = std::conditional_t<std::is_same_v<T, STICHOTROPE_ASIO::detail::awaitable_thread_entry_point>,
                                       STICHOTROPE_ASIO::detail::awaitable_frame<T, Executor>,
                                       flow_frame<T, Executor, is_operation<Args...>>>;
} // namespace stichotrope::for_asio::detail::STICHOTROPE_ASIO_FLAVOUR

template <class T, class Executor>
struct std::coroutine_traits<STICHOTROPE_ASIO::awaitable<T, Executor>> {
  using promise_type = stichotrope::for_asio::detail::STICHOTROPE_ASIO_FLAVOUR::promise_for<T, Executor>;
};
template <class T, class Executor, class First, class... Args>
struct std::coroutine_traits<STICHOTROPE_ASIO::awaitable<T, Executor>, First, Args...> {
  using promise_type =
      stichotrope::for_asio::detail::STICHOTROPE_ASIO_FLAVOUR::promise_for<T, Executor, First, Args...>;
};
#endif
