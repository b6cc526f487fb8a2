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
namespace {

/// The wait frames of a leaf wait of `b` ("[wait] a.cpp:10;[wait] b.cpp:50 awaited").
template <class Frame>
std::string wait_frames(const BlockResults& b, const WaitResults& w, Frame& frame) {
  std::string leaf = "[wait] " + w.name + (w.awaited.empty() || w.awaited == w.name ? "" : " " + w.awaited);
  std::string frames = frame(leaf);
  for (std::uint32_t parent = w.parent_site_id; parent != no_parent;) {
    auto it = std::find_if(b.waits.begin(), b.waits.end(), [&](const WaitResults& x) { return x.site_id == parent; });
    if (it == b.waits.end() || frames.size() > 4096) break;
    frames = frame("[wait] " + it->name) + ";" + frames;
    parent = it->parent_site_id;
  }
  return frames;
}

/// The waits of `b` outside the blocks it called (each child's waits, for
/// its share of time under `b`, taken from the same await seen from `b`): the
/// off-CPU part of its self time, as wait frames and their weight.
template <class Frame>
std::vector<std::pair<std::string, double>>
own_waits(const BlockResults& b, const std::vector<std::pair<const BlockResults*, double>>& called, Frame& frame) {
  auto is_leaf = [](const BlockResults& x, const WaitResults& w) {
    return std::none_of(x.waits.begin(), x.waits.end(),
                        [&](const WaitResults& y) { return y.parent_site_id == w.site_id; });
  };
  std::vector<std::pair<std::string, double>> own;
  for (const auto& w : b.waits)
    if (is_leaf(b, w)) own.emplace_back(wait_frames(b, w, frame), static_cast<double>(w.total_time_ns));
  for (const auto& [child, share] : called)
    for (const auto& w : child->waits) {
      if (!is_leaf(*child, w)) continue;
      const std::string frames = wait_frames(*child, w, frame);
      for (auto& [mine, amount] : own)
        if (mine.ends_with(frames) && (mine.size() == frames.size() || mine[mine.size() - frames.size() - 1] == ';')) {
          amount -= static_cast<double>(w.total_time_ns) * share;
          break;
        }
    }
  std::erase_if(own, [](const auto& x) { return x.second < 0.5; });
  return own;
}

} // namespace

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
  // The blocks called from each block, with the share of their time spent under it.
  std::map<std::uint32_t, std::vector<std::pair<const BlockResults*, double>>> called;
  for (const auto& [id, b] : by_site)
    for (const auto& c : b->callers)
      if (c.parent_site_id != no_parent && b->total_time_ns > 0)
        called[c.parent_site_id].push_back(
            {b, static_cast<double>(c.total_time_ns) / static_cast<double>(b->total_time_ns)});
  for (const auto& [id, b] : by_site) {
    double w = static_cast<double>(b->self_time_ns);
    std::vector<std::pair<std::string, double>> waits;
    if (weight == fold_weight::active_time && b->total_time_ns > 0)
      w *= static_cast<double>(b->active_time_ns()) / static_cast<double>(b->total_time_ns);
    else if (weight == fold_weight::self_time)
      waits = own_waits(*b, called[id], frame);
    std::set<std::uint32_t> seen{id};
    for (const auto& [frames, amount] : waits) {
      w -= amount;
      up(*b, frames, amount, 0, seen);
    }
    if (w <= 0) continue;
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
