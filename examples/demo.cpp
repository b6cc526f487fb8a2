// The demo: the seed's usage examples in one program — a small batch
// "server" with tracks, nested blocks, wrapped functions and a thread pool —
// printing the results table and writing CSV and JSON to a directory.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>
import stichotrope;

int main(int argc, char** argv) {
  const std::filesystem::path out_dir = argc > 1 ? argv[1] : "stichotrope-demo";
  std::filesystem::create_directories(out_dir);

  stichotrope::Profiler profiler{"DemoServer"};
  (void)profiler.set_track_name(0, "Requests");
  (void)profiler.set_track_name(1, "Parsing");
  (void)profiler.set_track_name(2, "Backend");

  auto parse = profiler.track(1, "parse", [](const std::string& request) {
    std::uint64_t h = 1469598103934665603ull;
    for (char c : request) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return h;
  });
  auto backend_call = profiler.track(2, "backend_call", [](std::uint64_t key) {
    std::this_thread::sleep_for(std::chrono::microseconds(200 + key % 300)); // a remote call
    return key % 1000;
  });
  auto handle = [&](int id) {
    auto request = profiler.block(0, "handle_request");
    const std::string body = "GET /item/" + std::to_string(id) + " HTTP/1.1";
    request.add_bytes(body.size());
    const auto key = parse(body);
    std::uint64_t value = 0;
    {
      auto cache = profiler.block(2, "cache_lookup");
      if (id % 3 != 0) value = key % 7; // two in three requests hit the cache
    }
    if (value == 0) value = backend_call(key);
    return value;
  };

  constexpr int workers = 4, requests = 2000;
  std::atomic<int> next{0};
  std::atomic<std::uint64_t> checksum{0};
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (int id; (id = next.fetch_add(1)) < requests;) checksum += handle(id);
    });
  for (auto& t : pool) t.join();

  profiler.print_results();
  std::cout << profiler << '\n';
  const auto csv = out_dir / "demo.csv", json = out_dir / "demo.json";
  if (auto r = profiler.export_csv(csv); !r) {
    std::cerr << "demo: " << r.error() << '\n';
    return 1;
  }
  if (auto r = profiler.export_json(json); !r) {
    std::cerr << "demo: " << r.error() << '\n';
    return 1;
  }
  std::cout << "Wrote " << std::filesystem::absolute(csv).string() << " and "
            << std::filesystem::absolute(json).string() << " (checksum " << checksum << ")\n";
}
