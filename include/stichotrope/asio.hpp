// stichotrope + standalone Asio (optional): every Asio coroutine is a flow,
// and timed sub-operations. Include it after <asio.hpp> (and your other
// headers), in every translation unit that defines Asio coroutines; it
// imports the stichotrope module itself. Boost.Asio: stichotrope/boost_asio.hpp
// (the same implementation, detail/asio_flows.hpp; both may be included).
//
// How it works (docs/coroutines.md has the details): Asio runs a coroutine
// started by co_spawn as an "awaitable thread" — a stack of coroutine frames
// that one handler at a time resumes, on whichever thread. This header gives
// asio::awaitable<T, Executor> (any executor: any_io_executor, the default,
// strands, io_context::executor_type, the program's own) a promise type
// derived from Asio's own, which adds what a flow needs and nothing else:
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
#include <asio/use_awaitable.hpp>
#include <asio/version.hpp>

#if ASIO_VERSION < 102200 || ASIO_VERSION >= 102900
#error "stichotrope/asio.hpp follows the awaitable frames of Asio 1.22-1.28; see docs/coroutines.md"
#endif

#define STICHOTROPE_ASIO ::asio
#define STICHOTROPE_ASIO_FLAVOUR standalone
#include "detail/asio_flows.hpp"
#undef STICHOTROPE_ASIO_FLAVOUR
#undef STICHOTROPE_ASIO
