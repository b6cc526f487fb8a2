// The timeline: each thread's ring of events (written by timeline_append,
// without a lock), read under the profiler's lock by get_timeline and by a
// thread's retirement.
module;
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>
#include <string>
#include <vector>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {

/// Reads a thread's ring (core.mutex held, generation checked by the caller).
/// Entries overwritten while being read are discarded and counted as dropped.
ThreadTimeline read_timeline(const thread_buffer& buf, bool exited) {
  ThreadTimeline t;
  t.thread_id = buf.os_thread_id;
  t.thread_name = buf.thread_name;
  t.exited = exited;
  const timeline_ring* ring = buf.timeline.load(std::memory_order_acquire);
  if (ring == nullptr) return t;
  const std::uint64_t epoch = epoch_ticks.load(std::memory_order_relaxed);
  const std::uint64_t n = ring->written.load(std::memory_order_acquire);
  const std::uint64_t first = ring->keep_latest && n > ring->capacity ? n - ring->capacity : 0;
  struct raw {
    std::uint64_t index, start, end, flow, meta;
  };
  std::uint64_t discarded = 0;
  for (std::uint64_t i = first; i < n; ++i) {
    const timeline_event& e = ring->events[i % ring->capacity];
    const std::uint64_t before = e.seq.load(std::memory_order_acquire);
    raw r{i, e.start.load(std::memory_order_relaxed), e.end.load(std::memory_order_relaxed),
          e.flow.load(std::memory_order_relaxed), e.meta.load(std::memory_order_relaxed)};
    std::atomic_thread_fence(std::memory_order_acquire);
    if (before != i + 1 || e.seq.load(std::memory_order_relaxed) != before) { // overwritten meanwhile
      ++discarded;
      continue;
    }
    TimelineEvent ev;
    ev.kind = static_cast<timeline_kind>(r.meta >> 32);
    if (ev.kind == timeline_kind::block) {
      ev.start_ns = ticks_to_ns(epoch, r.start);
      // A block that hopped cores may read an end counter a little behind its start.
      ev.end_ns = std::max(ev.start_ns, ticks_to_ns(epoch, r.end));
      ev.site_id = static_cast<std::uint32_t>(r.meta);
    } else {
      ev.start_ns = ev.end_ns = ticks_to_ns(epoch, r.start);
      ev.arrow_id = r.end;
      ev.site_id = static_cast<std::uint32_t>(r.meta); // a suspension: its wait site, or no_parent
    }
    ev.flow_id = r.flow;
    t.events.push_back(ev);
  }
  t.dropped = ring->dropped.load(std::memory_order_relaxed) + discarded;
  return t;
}

std::uint64_t next_timeline_id() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void timeline_append(profiler_core& core, timeline_kind kind, std::uint32_t site, std::uint64_t start,
                     std::uint64_t end, std::uint64_t flow) noexcept {
  if (core.dead.load(std::memory_order_relaxed)) return;
  thread_buffer* bp = current_buffer(core);
  if (bp == nullptr) return note_no_memory(core);
  thread_buffer& buf = *bp;
  timeline_ring* ring = buf.timeline.load(std::memory_order_relaxed);
  const std::uint64_t gen = core.generation.load(std::memory_order_acquire);
  if (buf.generation.load(std::memory_order_relaxed) != gen) { // cleared since this thread's last event
    if (ring != nullptr) {
      ring->written.store(0, std::memory_order_relaxed);
      ring->dropped.store(0, std::memory_order_relaxed);
    }
    buf.generation.store(gen, std::memory_order_release);
  }
  if (ring == nullptr) {
    ring = new (std::nothrow)
        timeline_ring(std::max<std::uint64_t>(1, core.timeline_capacity.load()), core.timeline_keep_latest.load());
    if (ring == nullptr) return; // no memory for a timeline: results still record
    buf.timeline.store(ring, std::memory_order_release);
  }
  ring->append(kind, site, start, end, flow);
}

} // namespace stichotrope::detail

namespace stichotrope {

void Profiler::start_timeline(TimelineOptions options) {
  core_->timeline_capacity.store(std::max<std::uint64_t>(1, options.events_per_thread));
  core_->timeline_keep_latest.store(options.when_full == overflow_policy::keep_latest);
  core_->timeline_on.store(true);
}

Timeline Profiler::get_timeline() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  Timeline t;
  t.profiler_name = core.name;
  for (std::uint32_t id = 0; id < core.sites.size(); ++id) {
    const auto& s = core.sites[id];
    t.sites.push_back({id, s.track, s.name, s.file, s.line, s.awaited});
  }
  for (int idx = 0; idx < max_tracks; ++idx)
    if (const auto& n = core.track_names[static_cast<unsigned>(idx)]) t.track_names.emplace_back(idx, *n);
  const std::uint64_t gen = core.generation.load(std::memory_order_relaxed);
  for (const auto& buf : core.buffers) {
    if (buf->generation.load(std::memory_order_acquire) != gen) continue;
    auto thread = detail::read_timeline(*buf, false);
    if (buf->generation.load(std::memory_order_acquire) != gen) continue; // reset while read
    if (!thread.events.empty() || thread.dropped > 0) t.threads.push_back(std::move(thread));
  }
  t.threads.insert(t.threads.end(), core.exited_timelines.begin(), core.exited_timelines.end());
  if (core.exited_timeline_events_dropped > 0) { // timelines of older exited threads, no longer kept
    ThreadTimeline older;
    older.thread_name = "(older exited threads)";
    older.exited = true;
    older.dropped = core.exited_timeline_events_dropped;
    t.threads.push_back(std::move(older));
  }
  return t;
}

} // namespace stichotrope
