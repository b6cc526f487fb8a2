module;
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
module stichotrope;

namespace stichotrope {

void latency_histogram::add(std::uint64_t ns, std::uint64_t n) { add_bucket(bucket_of(ns), n); }

void latency_histogram::add_bucket(unsigned b, std::uint64_t n) {
  if (n == 0 || b >= bucket_count) return;
  if (counts.empty()) {
    first = b;
    counts.assign(1, n);
    return;
  }
  if (b < first) {
    counts.insert(counts.begin(), first - b, 0);
    first = b;
  } else if (b - first >= counts.size()) {
    counts.resize(b - first + 1, 0);
  }
  counts[b - first] += n;
}

void latency_histogram::assign_dense(const std::uint64_t* dense) {
  unsigned lo = 0, hi = bucket_count;
  while (lo < hi && dense[lo] == 0) ++lo;
  while (hi > lo && dense[hi - 1] == 0) --hi;
  first = lo == hi ? 0 : lo;
  counts.assign(dense + lo, dense + hi);
}

void latency_histogram::merge(const latency_histogram& other) {
  if (other.counts.empty()) return;
  if (counts.empty()) {
    first = other.first;
    counts = other.counts;
    return;
  }
  const unsigned lo = std::min(first, other.first);
  const auto hi = std::max<std::size_t>(first + counts.size(), other.first + other.counts.size());
  if (lo < first) counts.insert(counts.begin(), first - lo, 0);
  first = lo;
  counts.resize(hi - lo, 0);
  for (std::size_t i = 0; i < other.counts.size(); ++i) counts[other.first - lo + i] += other.counts[i];
}

std::uint64_t latency_histogram::total() const noexcept {
  std::uint64_t t = 0;
  for (auto c : counts) t += c;
  return t;
}

std::uint64_t latency_histogram::percentile(double q, std::uint64_t min_ns, std::uint64_t max_ns) const noexcept {
  const std::uint64_t n = total();
  if (n == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n)));
  rank = std::clamp<std::uint64_t>(rank, 1, n);
  std::uint64_t seen = 0;
  for (unsigned b = first; b < first + counts.size(); ++b) {
    seen += counts[b - first];
    if (seen >= rank) {
      const std::uint64_t lo = lower_bound(b);
      const std::uint64_t hi = b + 1 >= bucket_count ? lo : upper_bound(b);
      const std::uint64_t mid = lo + (hi - lo) / 2;
      return std::clamp(mid, min_ns, std::max(min_ns, max_ns));
    }
  }
  return max_ns;
}

double BlockResults::avg_time_ns() const noexcept {
  return hit_count == 0 ? 0.0 : static_cast<double>(total_time_ns) / static_cast<double>(hit_count);
}

std::uint64_t BlockResults::avg_time_ns_rounded() const noexcept {
  if (hit_count == 0) return 0;
  const std::uint64_t q = total_time_ns / hit_count;
  const std::uint64_t r = total_time_ns % hit_count;
  // Round half to even, as the seed's "%.0f" does.
  if (2 * r > hit_count || (2 * r == hit_count && (q % 2) == 1)) return q + 1;
  return q;
}

latency_percentiles BlockResults::percentiles() const noexcept {
  return {histogram.percentile(0.50, min_time_ns, max_time_ns), histogram.percentile(0.90, min_time_ns, max_time_ns),
          histogram.percentile(0.99, min_time_ns, max_time_ns), histogram.percentile(0.999, min_time_ns, max_time_ns)};
}

latency_percentiles WaitResults::percentiles() const noexcept {
  return {histogram.percentile(0.50, min_time_ns, max_time_ns), histogram.percentile(0.90, min_time_ns, max_time_ns),
          histogram.percentile(0.99, min_time_ns, max_time_ns), histogram.percentile(0.999, min_time_ns, max_time_ns)};
}

void WaitResults::add(const WaitResults& other) {
  if (other.count > 0) {
    min_time_ns = count == 0 ? other.min_time_ns : std::min(min_time_ns, other.min_time_ns);
    max_time_ns = std::max(max_time_ns, other.max_time_ns);
  }
  count += other.count;
  total_time_ns += other.total_time_ns;
  migrations += other.migrations;
  histogram.merge(other.histogram);
}

namespace {
/// The wait of `b` with site id `id`, or null (waits are sorted by site id).
const WaitResults* wait_of(const BlockResults& b, std::uint32_t id) noexcept {
  auto it = std::lower_bound(b.waits.begin(), b.waits.end(), id,
                             [](const WaitResults& a, std::uint32_t x) { return a.site_id < x; });
  return it != b.waits.end() && it->site_id == id ? &*it : nullptr;
}
constexpr std::size_t max_wait_depth = 64; // a malformed file may loop
} // namespace

std::size_t BlockResults::wait_depth(const WaitResults& w) const noexcept {
  std::size_t depth = 0;
  for (const WaitResults* p = &w; p->parent_site_id != no_parent && depth < max_wait_depth; ++depth)
    if ((p = wait_of(*this, p->parent_site_id)) == nullptr) break;
  return depth;
}

std::string BlockResults::wait_path(const WaitResults& w) const {
  std::string path = w.name;
  std::size_t depth = 0;
  for (const WaitResults* p = &w; p->parent_site_id != no_parent && depth < max_wait_depth; ++depth) {
    if ((p = wait_of(*this, p->parent_site_id)) == nullptr) break;
    path = p->name + " > " + path;
  }
  return path;
}

double BlockResults::throughput_bytes_per_s() const noexcept {
  if (bytes == 0 || total_time_ns == 0) return 0.0;
  return static_cast<double>(bytes) * 1e9 / static_cast<double>(total_time_ns);
}

void BlockResults::merge(const BlockResults& other) {
  if (other.hit_count > 0) {
    min_time_ns = hit_count == 0 ? other.min_time_ns : std::min(min_time_ns, other.min_time_ns);
    max_time_ns = std::max(max_time_ns, other.max_time_ns);
  }
  hit_count += other.hit_count;
  total_time_ns += other.total_time_ns;
  self_time_ns += other.self_time_ns;
  bytes += other.bytes;
  histogram.merge(other.histogram);
  other_callers_hits += other.other_callers_hits;
  suspended_time_ns += other.suspended_time_ns;
  suspensions += other.suspensions;
  migrations += other.migrations;
  abandoned += other.abandoned;
  outside_flow += other.outside_flow;
  too_deep += other.too_deep;
  for (const auto& c : other.callers) {
    auto it = std::lower_bound(callers.begin(), callers.end(), c.parent_site_id,
                               [](const caller_stats& a, std::uint32_t id) { return a.parent_site_id < id; });
    if (it != callers.end() && it->parent_site_id == c.parent_site_id) {
      it->hit_count += c.hit_count;
      it->total_time_ns += c.total_time_ns;
    } else {
      callers.insert(it, c);
    }
  }
  for (const auto& w : other.waits) {
    auto it = std::lower_bound(waits.begin(), waits.end(), w.site_id,
                               [](const WaitResults& a, std::uint32_t id) { return a.site_id < id; });
    if (it != waits.end() && it->site_id == w.site_id)
      it->add(w);
    else
      waits.insert(it, w);
  }
}

std::uint64_t TrackResults::total_time_ns() const noexcept {
  std::uint64_t t = 0;
  for (const auto& b : blocks) t += b.total_time_ns;
  return t;
}

std::uint64_t TrackResults::total_hits() const noexcept {
  std::uint64_t t = 0;
  for (const auto& b : blocks) t += b.hit_count;
  return t;
}

std::uint64_t ProfilerResults::total_time_ns() const noexcept {
  std::uint64_t t = 0;
  for (const auto& tr : tracks) t += tr.total_time_ns();
  return t;
}

std::uint64_t ProfilerResults::total_hits() const noexcept {
  std::uint64_t t = 0;
  for (const auto& tr : tracks) t += tr.total_hits();
  return t;
}

const TrackResults* ProfilerResults::find_track(int track_idx) const noexcept {
  for (const auto& t : tracks)
    if (t.track_idx == track_idx) return &t;
  return nullptr;
}

const BlockResults* ProfilerResults::find_block(int track_idx, std::string_view name) const noexcept {
  if (const auto* t = find_track(track_idx))
    for (const auto& b : t->blocks)
      if (b.name == name) return &b;
  return nullptr;
}

const BlockResults* ProfilerResults::find_site(std::uint32_t site_id) const noexcept {
  for (const auto& t : tracks)
    for (const auto& b : t.blocks)
      if (b.site_id == site_id) return &b;
  return nullptr;
}

void ProfilerResults::merge(const ProfilerResults& other) {
  for (const auto& ot : other.tracks) {
    auto tit = std::lower_bound(tracks.begin(), tracks.end(), ot.track_idx,
                                [](const TrackResults& t, int idx) { return t.track_idx < idx; });
    if (tit == tracks.end() || tit->track_idx != ot.track_idx) {
      tit = tracks.insert(tit, TrackResults{ot.track_idx, ot.track_name, ot.enabled, {}});
    }
    if (!tit->track_name && ot.track_name) tit->track_name = ot.track_name;
    for (const auto& ob : ot.blocks) {
      auto bit = std::lower_bound(tit->blocks.begin(), tit->blocks.end(), ob.site_id,
                                  [](const BlockResults& b, std::uint32_t id) { return b.site_id < id; });
      if (bit != tit->blocks.end() && bit->site_id == ob.site_id) {
        bit->merge(ob);
      } else {
        tit->blocks.insert(bit, ob);
      }
    }
  }
  dropped_records += other.dropped_records;
  repetitions.insert(repetitions.end(), other.repetitions.begin(), other.repetitions.end());
  for (const auto& d : other.diagnostics)
    if (std::find(diagnostics.begin(), diagnostics.end(), d) == diagnostics.end()) diagnostics.push_back(d);
}

} // namespace stichotrope
