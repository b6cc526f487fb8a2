// Multi-track organisation: requests, database and cache on their own tracks.
#include <chrono>
#include <iostream>
#include <map>
#include <string>
#include <thread>
import stichotrope;

int main() {
  stichotrope::Profiler profiler{"WebServer"};
  (void)profiler.set_track_name(0, "Requests");
  (void)profiler.set_track_name(1, "Database");
  (void)profiler.set_track_name(2, "Cache");

  std::map<int, std::string> cache;
  auto query_database = profiler.track(1, "db_query", [](int key) {
    std::this_thread::sleep_for(std::chrono::microseconds(300));
    return "row " + std::to_string(key);
  });
  auto check_cache = profiler.track(2, "cache_lookup", [&](int key) -> const std::string* {
    auto it = cache.find(key);
    return it == cache.end() ? nullptr : &it->second;
  });
  auto handle_request = profiler.track(0, "handle_request", [&](int key) {
    if (const std::string* hit = check_cache(key)) return *hit;
    return cache[key] = query_database(key);
  });

  std::size_t bytes = 0;
  for (int i = 0; i < 200; ++i) bytes += handle_request(i % 20).size();

  const auto results = profiler.get_results();
  for (const auto& track : results.tracks)
    std::cout << "Track " << track.track_idx << " (" << track.track_name.value_or("unnamed")
              << "): " << track.blocks.size() << " blocks, " << track.total_hits() << " hits\n";
  profiler.print_results();
  std::cout << "served " << bytes << " bytes\n";
}
