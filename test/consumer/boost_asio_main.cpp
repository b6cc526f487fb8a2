// The README's Boost.Asio integration, against the installed package: two
// sessions interleaved on one thread (one on a strand-typed awaitable), each
// holding a block across a timer, are flows of their own: neither block is
// the other's parent, and each is suspended for its own timer.
#include <boost/asio.hpp>

#include <chrono>
#include <iostream>

#include <stichotrope/boost_asio.hpp>
import stichotrope;

namespace net = boost::asio;

int main() {
  stichotrope::Profiler profiler{"consumer_boost_asio"};
  net::io_context io(1);
  auto session = [&](const char* name, int ms) -> net::awaitable<void> {
    auto b = profiler.block(0, name);
    net::steady_timer timer(co_await net::this_coro::executor, std::chrono::milliseconds(ms));
    co_await timer.async_wait(net::use_awaitable);
  };
  using strand = net::strand<net::io_context::executor_type>;
  auto on_strand = [&](strand s) -> net::awaitable<void, strand> {
    auto b = profiler.block(0, "strand");
    net::steady_timer::rebind_executor<strand>::other timer(s, std::chrono::milliseconds(30));
    co_await timer.async_wait(net::use_awaitable_t<strand>{});
  };
  net::co_spawn(io, session("long", 40), net::detached);
  net::co_spawn(io, session("short", 20), net::detached);
  const auto s = net::make_strand(io.get_executor());
  net::co_spawn(s, on_strand(s), net::detached);
  io.run();
  const auto r = profiler.get_results();
  bool ok = r.diagnostics.empty();
  for (auto [name, ms] : {std::pair{"long", 40ull}, std::pair{"short", 20ull}, std::pair{"strand", 30ull}}) {
    const auto* b = r.find_block(0, name);
    ok = ok && b != nullptr && b->hit_count == 1 && b->callers.size() == 1 &&
         b->callers[0].parent_site_id == stichotrope::no_parent && b->self_time_ns == b->total_time_ns &&
         b->suspended_time_ns + 1'000'000 >= ms * 1'000'000;
  }
  if (!ok) {
    std::cerr << "consumer_boost_asio: unexpected results\n";
    profiler.print_results(std::cerr);
    return 1;
  }
  std::cout << "consumer_boost_asio: installed stichotrope::boost_asio works (3 interleaved flows, a strand's too)\n";
  return 0;
}
