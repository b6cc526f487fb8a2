// stichotrope + Boost.Asio (optional; Beast servers too): every
// boost::asio::awaitable<T, Executor> coroutine is a flow, and timed
// sub-operations, exactly as stichotrope/asio.hpp does for standalone Asio
// (the same implementation: detail/asio_flows.hpp). Include it after
// <boost/asio.hpp> (and <boost/beast.hpp>, your other headers), in every
// translation unit that defines Boost.Asio coroutines; it imports the
// stichotrope module itself. Link stichotrope::boost_asio.
//
// Boost 1.78 to 1.83 (Asio 1.22 to 1.28, whose awaitable frames this follows;
// tested with Debian's 1.83 from bookworm-backports); any other version stops
// the build here with a clear error, not with wrong numbers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/version.hpp>
#include <boost/version.hpp>

#if BOOST_ASIO_VERSION < 102200 || BOOST_ASIO_VERSION >= 102900
#error "stichotrope/boost_asio.hpp follows the awaitable frames of Boost 1.78-1.83 (Asio 1.22-1.28): docs/coroutines.md"
#endif

#define STICHOTROPE_ASIO ::boost::asio
#define STICHOTROPE_ASIO_FLAVOUR boost_asio
#include "detail/asio_flows.hpp"
#undef STICHOTROPE_ASIO_FLAVOUR
#undef STICHOTROPE_ASIO
