// The README's Asio integration, against the installed package: a coroutine
// that spawns children from this_coro::executor, each a flow of its own.
#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include <stichotrope/asio.hpp>
import stichotrope;

int main() {
  stichotrope::Profiler profiler{"consumer_asio"};
  asio::io_context io(2);
  std::atomic<int> done{0};
  auto child = [&](int ms) -> asio::awaitable<void> {
    auto b = profiler.block(1, "child");
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
    co_await timer.async_wait(asio::use_awaitable);
    ++done;
  };
  auto parent = [&]() -> asio::awaitable<void> {
    auto b = profiler.block(0, "parent");
    for (int i = 0; i < 4; ++i) asio::co_spawn(co_await asio::this_coro::executor, child(5 + i), asio::detached);
    co_await stichotrope::for_asio::timed(profiler, 2, "wait", [&]() -> asio::awaitable<void> {
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
      co_await t.async_wait(asio::use_awaitable);
    }());
  };
  asio::co_spawn(io, parent(), asio::detached);
  std::vector<std::thread> pool;
  for (int i = 0; i < 2; ++i) pool.emplace_back([&] { io.run(); });
  for (auto& t : pool) t.join();
  const auto r = profiler.get_results();
  const auto* c = r.find_block(1, "child");
  const auto* w = r.find_block(2, "wait");
  if (done != 4 || c == nullptr || c->hit_count != 4 || c->callers.size() != 1 ||
      c->callers[0].parent_site_id != stichotrope::no_parent || w == nullptr || w->suspensions == 0) {
    std::cerr << "consumer_asio: unexpected results\n";
    profiler.print_results(std::cerr);
    return 1;
  }
  std::cout << "consumer_asio: installed stichotrope::asio works (4 children, each its own flow)\n";
  return 0;
}
