// Folded stacks from the call tree (modules/folded.cppm), for flame graph
// tools and the live view's icicle.
module;
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <tl/expected.hpp>
module stichotrope;

namespace stichotrope {

std::string to_folded(const ProfilerResults& results, fold_weight weight) {
  std::map<std::uint32_t, const BlockResults*> by_site;
  for (const auto& tr : results.tracks)
    for (const auto& b : tr.blocks) by_site[b.site_id] = &b;
  auto frame = [](const std::string& name) {
    std::string f = name;
    for (char& c : f)
      if (c == ';' || c == '\n' || c == '\r') c = '_';
    return f.empty() ? std::string("_") : f;
  };
  // Paths from the roots to a block with the share of its time under each.
  std::map<std::string, double> lines;
  std::function<void(const BlockResults&, const std::string&, double, int, std::set<std::uint32_t>&)> up;
  up = [&](const BlockResults& b, const std::string& suffix, double share, int depth, std::set<std::uint32_t>& seen) {
    const std::string path = suffix.empty() ? frame(b.name) : frame(b.name) + ";" + suffix;
    if (b.callers.empty() || depth > 64) {
      lines[path] += share;
      return;
    }
    std::uint64_t under = 0;
    for (const auto& c : b.callers) under += c.total_time_ns;
    for (const auto& c : b.callers) {
      const double part = under == 0 ? share / static_cast<double>(b.callers.size())
                                     : share * static_cast<double>(c.total_time_ns) / static_cast<double>(under);
      auto parent = by_site.find(c.parent_site_id);
      if (c.parent_site_id == no_parent || parent == by_site.end() || seen.count(c.parent_site_id) > 0) {
        lines[path] += part;
      } else {
        seen.insert(b.site_id);
        up(*parent->second, path, part, depth + 1, seen);
        seen.erase(b.site_id);
      }
    }
  };
  for (const auto& [id, b] : by_site) {
    double w = static_cast<double>(b->self_time_ns);
    if (weight == fold_weight::active_time && b->total_time_ns > 0)
      w *= static_cast<double>(b->active_time_ns()) / static_cast<double>(b->total_time_ns);
    if (w <= 0) continue;
    std::set<std::uint32_t> seen{id};
    up(*b, "", w, 0, seen);
  }
  std::string out;
  for (const auto& [path, w] : lines) {
    const auto n = static_cast<std::uint64_t>(std::llround(w));
    if (n > 0) out += path + " " + std::to_string(n) + "\n";
  }
  return out;
}

} // namespace stichotrope
