module;
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ostream>
#include <source_location>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>
module stichotrope;

namespace stichotrope::detail {
namespace {

std::atomic<std::uint64_t> next_core_id{1};

// Every thread's buffers, one per profiler it recorded into. At thread exit
// the data of profilers still alive is handed over to them.
struct thread_registry {
  struct entry {
    std::uint64_t core_id;
    profiler_core* core; // never freed (see Profiler::~Profiler); dead once its Profiler is gone
    std::shared_ptr<thread_buffer> buffer;
  };
  std::vector<entry> entries;

  ~thread_registry();
};

thread_local thread_registry registry;
constinit thread_local bool registry_gone = false;

/// Buffers for records made after the thread's registry was torn down (a
/// block closed by another thread_local's destructor): they go nowhere. Kept
/// reachable here, never freed.
struct late_buffers {
  std::mutex mutex;
  std::vector<thread_buffer*> buffers;
};
thread_buffer& late_buffer(profiler_core& core) {
  static late_buffers* all = new late_buffers;
  auto* buf = new thread_buffer;
  buf->core_id = core.id;
  buf->generation.store(core.generation.load(std::memory_order_relaxed), std::memory_order_relaxed);
  {
    std::lock_guard lock(all->mutex);
    all->buffers.push_back(buf);
  }
  last_buffer = {core.id, buf};
  return *buf;
}

std::string base_name(std::string_view path) {
  const auto slash = path.find_last_of('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string where(const char* file, std::uint32_t line) { return base_name(file) + ":" + std::to_string(line); }

void add_unique(std::vector<std::string>& list, std::string message) {
  if (std::find(list.begin(), list.end(), message) == list.end()) list.push_back(std::move(message));
}

void add_diagnostic(profiler_core& core, std::string message) {
  if (std::find(core.diagnostics.begin(), core.diagnostics.end(), message) == core.diagnostics.end())
    core.diagnostics.push_back(std::move(message));
}

/// A consistent copy of a slot's scalar fields (the seqlock read side).
struct slot_values {
  std::uint64_t hits, total_ns, min_ns, max_ns, self_ns, bytes, other_callers;
  std::uint64_t suspended_ns, suspensions, migrations, abandoned, pending_ns, outside_flow, too_deep;
  std::uint32_t caller_tag[tracked_callers];
  std::uint64_t caller_hits[tracked_callers], caller_ns[tracked_callers];
};

slot_values read_slot(const slot& s) {
  slot_values v{};
  for (;;) {
    const std::uint32_t before = s.seq.load(std::memory_order_acquire);
    if ((before & 1u) != 0) continue; // a record is being written; it takes nanoseconds
    v.hits = s.hits.load(std::memory_order_relaxed);
    v.total_ns = s.total_ns.load(std::memory_order_relaxed);
    v.min_ns = s.min_ns.load(std::memory_order_relaxed);
    v.max_ns = s.max_ns.load(std::memory_order_relaxed);
    v.self_ns = s.self_ns.load(std::memory_order_relaxed);
    v.bytes = s.bytes.load(std::memory_order_relaxed);
    v.other_callers = s.other_callers.load(std::memory_order_relaxed);
    v.suspended_ns = s.suspended_ns.load(std::memory_order_relaxed);
    v.suspensions = s.suspensions.load(std::memory_order_relaxed);
    v.migrations = s.migrations.load(std::memory_order_relaxed);
    v.abandoned = s.abandoned.load(std::memory_order_relaxed);
    v.pending_ns = s.pending_ns.load(std::memory_order_relaxed);
    v.outside_flow = s.outside_flow.load(std::memory_order_relaxed);
    v.too_deep = s.too_deep.load(std::memory_order_relaxed);
    for (unsigned i = 0; i < tracked_callers; ++i) {
      v.caller_tag[i] = s.callers[i].parent_plus1.load(std::memory_order_relaxed);
      v.caller_hits[i] = s.callers[i].hits.load(std::memory_order_relaxed);
      v.caller_ns[i] = s.callers[i].total_ns.load(std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) == before) return v;
  }
}

/// Adds one thread's slot to the statistics of its site, in place: no
/// allocation per slot except a site's first histogram and new caller edges.
void merge_slot(BlockResults& b, const slot& s) {
  const slot_values v = read_slot(s);
  if (v.hits == 0 && v.abandoned == 0) return;
  if (v.hits > 0) {
    b.min_time_ns = b.hit_count == 0 ? v.min_ns : std::min(b.min_time_ns, v.min_ns);
    b.max_time_ns = std::max(b.max_time_ns, v.max_ns);
  }
  b.hit_count += v.hits;
  b.total_time_ns += v.total_ns;
  b.self_time_ns += v.self_ns;
  b.bytes += v.bytes;
  b.other_callers_hits += v.other_callers;
  b.suspended_time_ns += v.suspended_ns;
  b.suspensions += v.suspensions;
  b.migrations += v.migrations;
  b.abandoned += v.abandoned;
  b.outside_flow += v.outside_flow;
  b.too_deep += v.too_deep;
  for (unsigned i = 0; i < tracked_callers; ++i) {
    if (v.caller_tag[i] == 0) continue;
    const std::uint32_t parent = v.caller_tag[i] == UINT32_MAX ? no_parent : v.caller_tag[i] - 1;
    auto it = std::lower_bound(b.callers.begin(), b.callers.end(), parent,
                               [](const caller_stats& c, std::uint32_t id) { return c.parent_site_id < id; });
    if (it != b.callers.end() && it->parent_site_id == parent) {
      it->hit_count += v.caller_hits[i];
      it->total_time_ns += v.caller_ns[i];
    } else {
      b.callers.insert(it, caller_stats{parent, v.caller_hits[i], v.caller_ns[i]});
    }
  }
  // The histogram is read outside the seqlock, and only between the buckets
  // of the slot's min and max, where all of its samples lie: exact when the
  // thread is not recording; during recording a snapshot may miss or add
  // the few samples written meanwhile, which only percentiles can notice.
  const auto* hist = s.histogram.load(std::memory_order_acquire);
  if (hist == nullptr || v.hits == 0) return;
  if (b.histogram.counts.empty()) b.histogram.counts.assign(latency_histogram::bucket_count, 0);
  const unsigned lo = latency_histogram::bucket_of(v.min_ns), hi = latency_histogram::bucket_of(v.max_ns);
  for (unsigned i = lo; i <= hi; ++i) b.histogram.counts[i] += hist[i].load(std::memory_order_relaxed);
  if (v.pending_ns != no_sample) b.histogram.counts[latency_histogram::bucket_of(v.pending_ns)] += 1;
}

/// Per-site accumulators for every registered site (core.mutex held).
std::vector<BlockResults> empty_blocks(const profiler_core& core) {
  std::vector<BlockResults> blocks(core.sites.size());
  for (std::uint32_t id = 0; id < blocks.size(); ++id) {
    const site_info& s = core.sites[id];
    auto& b = blocks[id];
    b.name = s.name;
    b.file = s.file;
    b.line = s.line;
    b.column = s.column;
    b.function = s.function;
    b.site_id = id;
  }
  return blocks;
}

/// Asks for the histogram lines a slot's samples occupy, ahead of merging it:
/// each histogram is a cache miss of its own otherwise (measured: three
/// quarters of get_results() with 64 threads x 1,000 sites).
void prefetch_histogram(const slot& s) {
  const auto* hist = s.histogram.load(std::memory_order_relaxed);
  if (hist == nullptr) return;
  const std::uint64_t lo = s.min_ns.load(std::memory_order_relaxed), hi = s.max_ns.load(std::memory_order_relaxed);
  if (lo > hi) return;
  const unsigned last = latency_histogram::bucket_of(hi);
  for (unsigned b = latency_histogram::bucket_of(lo); b <= last; b += 8) __builtin_prefetch(hist + b);
  __builtin_prefetch(hist + last);
}

void merge_buffer(std::vector<BlockResults>& blocks, const thread_buffer& buf) {
  constexpr std::uint32_t ahead = 8;
  for (std::uint32_t c = 0; c * chunk_slots < blocks.size(); ++c) {
    const slot* chunk = buf.chunks[c].load(std::memory_order_acquire);
    if (chunk == nullptr) continue;
    const std::uint32_t n =
        std::min<std::uint32_t>(chunk_slots, static_cast<std::uint32_t>(blocks.size() - c * chunk_slots));
    for (std::uint32_t i = 0; i < std::min(ahead, n); ++i) prefetch_histogram(chunk[i]);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (i + ahead < n) prefetch_histogram(chunk[i + ahead]);
      merge_slot(blocks[c * chunk_slots + i], chunk[i]);
    }
  }
}

/// Arranges per-site blocks into tracks (core.mutex held).
ProfilerResults assemble(const profiler_core& core, std::vector<BlockResults> blocks, bool keep_empty) {
  ProfilerResults r;
  r.profiler_name = core.name;
  r.clock = calibrate_clock().source;
  r.diagnostics = core.diagnostics;
  r.dropped_records = core.dropped_no_memory.load(std::memory_order_relaxed);
  if (r.dropped_records > 0)
    r.diagnostics.push_back(std::to_string(r.dropped_records) +
                            " records dropped: no memory for a thread buffer, slot chunk or histogram");
  std::vector<std::optional<TrackResults>> tracks(max_tracks);
  auto track_at = [&](int idx) -> TrackResults& {
    auto& t = tracks[static_cast<unsigned>(idx)];
    if (!t) {
      t.emplace();
      t->track_idx = idx;
      t->track_name = core.track_names[static_cast<unsigned>(idx)];
      t->enabled = core.track_enabled[static_cast<unsigned>(idx)].load(std::memory_order_relaxed);
    }
    return *t;
  };
  for (auto& b : blocks) {
    if (b.outside_flow > 0)
      add_unique(r.diagnostics, "block '" + b.name + "' at " + where(b.file.c_str(), b.line) +
                                    ": closed outside the flow that opened it (moved to another thread or flow, or "
                                    "spanning co_await in a coroutine without a flow); such hits count their wall "
                                    "time only, with no parent and no suspended time. Run the coroutine in a flow "
                                    "(stichotrope::task, stichotrope/asio.hpp, Context) or close the block where "
                                    "it opened");
    if (b.too_deep > 0)
      add_unique(r.diagnostics, "block '" + b.name + "' at " + where(b.file.c_str(), b.line) + ": opened more than " +
                                    std::to_string(max_depth) +
                                    " blocks deep in one flow; such hits are recorded without a parent");
    if (!keep_empty && b.hit_count == 0 && b.abandoned == 0) continue;
    track_at(core.sites[b.site_id].track).blocks.push_back(std::move(b));
  }
  if (keep_empty)
    for (int idx = 0; idx < max_tracks; ++idx)
      if (core.track_names[static_cast<unsigned>(idx)]) track_at(idx);
  for (auto& t : tracks)
    if (t) r.tracks.push_back(std::move(*t));
  return r;
}

ThreadResults thread_snapshot(const profiler_core& core, const thread_buffer& buf, bool exited) {
  auto blocks = empty_blocks(core);
  merge_buffer(blocks, buf);
  ThreadResults t;
  t.thread_id = buf.os_thread_id;
  t.thread_name = buf.thread_name;
  t.exited = exited;
  t.results = assemble(core, std::move(blocks), false);
  return t;
}

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
    }
    ev.flow_id = r.flow;
    t.events.push_back(ev);
  }
  t.dropped = ring->dropped.load(std::memory_order_relaxed) + discarded;
  return t;
}

/// Hands a thread's data over to the profiler when the thread ends.
void retire(profiler_core& core, const std::shared_ptr<thread_buffer>& buf) {
  std::lock_guard lock(core.mutex);
  if (core.dead.load(std::memory_order_relaxed)) return;
  if (buf->generation.load(std::memory_order_acquire) == core.generation.load(std::memory_order_relaxed)) {
    auto snapshot = thread_snapshot(core, *buf, true);
    if (!snapshot.results.tracks.empty()) core.exited.push_back(std::move(snapshot));
    if (core.exited.size() > max_exited_threads) {
      core.exited_folded.results.merge(core.exited.front().results);
      core.exited.pop_front();
      ++core.exited_folded_count;
      core.exited_folded.exited = true;
      core.exited_folded.thread_name = "(" + std::to_string(core.exited_folded_count) + " older exited threads)";
    }
    auto timeline = read_timeline(*buf, true);
    if (!timeline.events.empty() || timeline.dropped > 0) core.exited_timelines.push_back(std::move(timeline));
    if (core.exited_timelines.size() > max_exited_timelines) {
      const auto& oldest = core.exited_timelines.front();
      core.exited_timeline_events_dropped += oldest.events.size() + oldest.dropped;
      core.exited_timelines.pop_front();
    }
  }
  std::erase(core.buffers, buf);
}

thread_registry::~thread_registry() {
  registry_gone = true;
  last_buffer = {};
  for (auto& e : entries) retire(*e.core, e.buffer);
}

std::string thread_name_of_self() {
  char name[64] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof name) != 0) return {};
  return name;
}

} // namespace

thread_buffer::~thread_buffer() {
  for (auto& c : chunks) {
    slot* chunk = c.load(std::memory_order_relaxed);
    if (chunk == nullptr) continue;
    for (std::uint32_t i = 0; i < chunk_slots; ++i) delete[] chunk[i].histogram.load(std::memory_order_relaxed);
    delete[] chunk;
  }
  delete timeline.load(std::memory_order_relaxed);
}

void record_abandoned(profiler_core& core, std::uint32_t site) { record_note(core, site, &slot::abandoned); }

void record_note(profiler_core& core, std::uint32_t site, std::atomic<std::uint64_t> slot::* counter) {
  if (core.dead.load(std::memory_order_relaxed)) return;
  thread_buffer* buf = current_buffer(core);
  slot* s = buf != nullptr ? buf->slot_for(site) : nullptr;
  if (s == nullptr) return note_no_memory(core);
  const slot_write writing(*s);
  bump((*s).*counter, 1);
}

void note_no_memory(profiler_core& core) noexcept { core.dropped_no_memory.fetch_add(1, std::memory_order_relaxed); }

thread_buffer* find_buffer_nothrow(profiler_core& core) noexcept {
  try {
    return &find_buffer_slow(core);
  } catch (...) { // std::bad_alloc: no buffer, the record is dropped and counted
    return nullptr;
  }
}

slot* thread_buffer::add_chunk(std::uint32_t index) noexcept {
  slot* chunk = new (std::nothrow) slot[chunk_slots];
  if (chunk != nullptr) chunks[index].store(chunk, std::memory_order_release);
  return chunk;
}

void thread_buffer::reset(std::uint64_t new_generation) noexcept {
  for (auto& c : chunks) {
    slot* chunk = c.load(std::memory_order_relaxed);
    if (chunk == nullptr) continue;
    for (std::uint32_t i = 0; i < chunk_slots; ++i) {
      slot& s = chunk[i];
      const slot_write writing(s);
      s.hits.store(0, std::memory_order_relaxed);
      s.total_ns.store(0, std::memory_order_relaxed);
      s.min_ns.store(UINT64_MAX, std::memory_order_relaxed);
      s.max_ns.store(0, std::memory_order_relaxed);
      s.self_ns.store(0, std::memory_order_relaxed);
      s.bytes.store(0, std::memory_order_relaxed);
      s.other_callers.store(0, std::memory_order_relaxed);
      s.suspended_ns.store(0, std::memory_order_relaxed);
      s.suspensions.store(0, std::memory_order_relaxed);
      s.migrations.store(0, std::memory_order_relaxed);
      s.abandoned.store(0, std::memory_order_relaxed);
      s.outside_flow.store(0, std::memory_order_relaxed);
      s.too_deep.store(0, std::memory_order_relaxed);
      s.pending_ns.store(no_sample, std::memory_order_relaxed);
      for (auto& k : s.callers) {
        k.parent_plus1.store(0, std::memory_order_relaxed);
        k.hits.store(0, std::memory_order_relaxed);
        k.total_ns.store(0, std::memory_order_relaxed);
      }
      if (auto* hist = s.histogram.load(std::memory_order_relaxed))
        for (unsigned b = 0; b < latency_histogram::bucket_count; ++b) hist[b].store(0, std::memory_order_relaxed);
    }
  }
  if (timeline_ring* ring = timeline.load(std::memory_order_relaxed)) {
    ring->written.store(0, std::memory_order_relaxed);
    ring->dropped.store(0, std::memory_order_relaxed);
  }
  generation.store(new_generation, std::memory_order_release);
}

std::uint64_t next_timeline_id() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void timeline_append(profiler_core& core, event_kind kind, std::uint32_t site, std::uint64_t start, std::uint64_t end,
                     std::uint64_t flow) noexcept {
  if (core.dead.load(std::memory_order_relaxed)) return;
  thread_buffer* bp = current_buffer(core);
  if (bp == nullptr) return note_no_memory(core);
  thread_buffer& buf = *bp;
  timeline_ring* ring = buf.timeline.load(std::memory_order_relaxed);
  if (ring == nullptr) {
    ring = new (std::nothrow)
        timeline_ring(std::max<std::uint64_t>(1, core.timeline_capacity.load()), core.timeline_keep_latest.load());
    if (ring == nullptr) return; // no memory for a timeline: results still record
    buf.timeline.store(ring, std::memory_order_release);
  }
  ring->append(kind, site, start, end, flow);
}

profiler_core::profiler_core(std::string profiler_name)
    : id(next_core_id.fetch_add(1, std::memory_order_relaxed)), name(std::move(profiler_name)) {
  for (auto& e : track_enabled) e.store(true, std::memory_order_relaxed);
}

thread_buffer& find_buffer_slow(profiler_core& core) {
  if (registry_gone) return late_buffer(core);
  auto& entries = registry.entries;
  // Drop buffers of profilers that no longer exist.
  std::erase_if(entries, [](const thread_registry::entry& e) { return e.core->dead.load(std::memory_order_relaxed); });
  for (auto& e : entries) {
    if (e.core_id == core.id) {
      last_buffer = {core.id, e.buffer.get()};
      return *e.buffer;
    }
  }
  auto buf = std::make_shared<thread_buffer>();
  buf->core_id = core.id;
  buf->os_thread_id = static_cast<std::uint64_t>(::gettid());
  buf->thread_name = thread_name_of_self();
  {
    std::lock_guard lock(core.mutex);
    buf->generation.store(core.generation.load(std::memory_order_relaxed), std::memory_order_relaxed);
    if (!core.dead.load(std::memory_order_relaxed)) core.buffers.push_back(buf);
  }
  entries.push_back({core.id, &core, buf});
  last_buffer = {core.id, buf.get()};
  return *buf;
}

namespace {
void insert_link(site_table& t, const site_link* l) {
  for (std::size_t i = link_hash(l->location, l->track, *l->name) & t.mask;; i = (i + 1) & t.mask)
    if (t.slots[i].load(std::memory_order_relaxed) == nullptr) {
      t.slots[i].store(l, std::memory_order_release);
      ++t.used;
      return;
    }
}

/// Makes a registered site findable without the lock (core.mutex held).
void publish_link(profiler_core& core, const void* location, int track, const std::string* name, std::uint32_t site) {
  if (location == nullptr) return;
  site_table* t = core.tables.empty() ? nullptr : core.tables.back().get();
  if (t != nullptr) // another thread may have published it since this one looked
    for (std::size_t i = link_hash(location, track, *name) & t->mask;; i = (i + 1) & t->mask) {
      const site_link* l = t->slots[i].load(std::memory_order_relaxed);
      if (l == nullptr) break;
      if (l->location == location && l->track == track && *l->name == *name) return;
    }
  if (t == nullptr || (t->used + 1) * 2 > t->mask + 1) {
    auto bigger = std::make_unique<site_table>(t == nullptr ? 256 : (t->mask + 1) * 2);
    if (t != nullptr)
      for (std::size_t i = 0; i <= t->mask; ++i)
        if (const site_link* l = t->slots[i].load(std::memory_order_relaxed)) insert_link(*bigger, l);
    t = bigger.get();
    core.tables.push_back(std::move(bigger));
    core.links.store(t, std::memory_order_release); // the old table stays: a reader may be probing it
  }
  insert_link(*t, &core.link_store.emplace_back(site_link{location, track, site, name}));
}
} // namespace

std::uint32_t register_site(profiler_core& core, int track, std::string_view name, const char* file, std::uint32_t line,
                            std::uint32_t column, const char* function, const std::string** registered_name,
                            const void* location) {
  std::lock_guard lock(core.mutex);
  if (core.dead.load(std::memory_order_relaxed)) return invalid_site; // its profiler is gone
  if (static_cast<unsigned>(track) >= unsigned{max_tracks}) {
    add_diagnostic(core, "block '" + std::string(name) + "' at " + where(file, line) + ": track index " +
                             std::to_string(track) + " is out of range [0, " + std::to_string(max_tracks) + ")");
    return invalid_site;
  }
  if (name.empty()) {
    add_diagnostic(core, "block at " + where(file, line) + " on track " + std::to_string(track) +
                             ": block name must not be empty");
    return invalid_site;
  }
  const auto key = std::make_tuple(track, name, std::string_view(file), line, column, std::string_view(function));
  if (auto it = core.site_index.find(key); it != core.site_index.end()) {
    *registered_name = &core.sites[it->second].name;
    publish_link(core, location, track, *registered_name, it->second);
    return it->second;
  }
  if (core.sites.size() >= max_sites) {
    add_diagnostic(core, "block '" + std::string(name) + "' at " + where(file, line) + ": more than " +
                             std::to_string(max_sites) + " call sites in one profiler");
    return invalid_site;
  }
  const auto id = static_cast<std::uint32_t>(core.sites.size());
  const site_info& s = core.sites.emplace_back(site_info{track, std::string(name), file, function, line, column});
  core.site_index.emplace(std::make_tuple(track, std::string_view(s.name), std::string_view(s.file), line, column,
                                          std::string_view(s.function)),
                          id);
  *registered_name = &s.name;
  publish_link(core, location, track, &s.name, id);
  return id;
}

std::string default_track_name(std::string_view type, bool is_class, const std::source_location& loc) {
  if (is_class && !type.empty()) {
    std::string name(type);
    // "(lambda at /long/path/file.cpp:12:5)" reads better with the base name.
    if (const auto at = name.find(" at /"); at != std::string::npos) {
      const auto end = name.find(':', at);
      const auto slash = name.rfind('/', end);
      name.erase(at + 4, slash - (at + 4) + 1);
    }
    return name;
  }
  return "function@" + where(loc.file_name(), loc.line());
}

} // namespace stichotrope::detail

namespace stichotrope {

Profiler::Profiler(std::string name) {
  calibrate_clock();
  core_ = new detail::profiler_core(std::move(name)); // owned by the graveyard once the profiler is gone
}

namespace {
/// Cores of destroyed profilers. A core is small once emptied, and it is never
/// freed: blocks, timed awaits and wrappers that outlive their profiler (on
/// any thread, at static destruction time) still read its `dead` flag and
/// then record nothing. Reachable from this never-destroyed list.
struct core_graveyard {
  std::mutex mutex;
  std::vector<detail::profiler_core*> cores;
};
core_graveyard& graveyard() {
  static core_graveyard* g = new core_graveyard;
  return *g;
}
} // namespace

Profiler::~Profiler() {
  detail::profiler_core& core = *core_;
  core.started.store(false, std::memory_order_relaxed);
  core.timeline_on.store(false, std::memory_order_relaxed);
  {
    std::lock_guard lock(core.mutex);
    core.dead.store(true, std::memory_order_relaxed);
    // Threads keep their own buffers until they next look one up or exit.
    std::vector<std::shared_ptr<detail::thread_buffer>>().swap(core.buffers);
    std::deque<ThreadResults>().swap(core.exited);
    core.exited_folded = {};
    std::deque<ThreadTimeline>().swap(core.exited_timelines);
    core.site_index.clear();
    // Sites stay: a thread that passed the switches just before this may
    // still compare a call site's name through its cache.
    std::vector<std::string>().swap(core.diagnostics);
    for (auto& n : core.track_names) n.reset();
  }
  auto& g = graveyard();
  std::lock_guard lock(g.mutex);
  try {
    g.cores.push_back(core_);
  } catch (...) {
    // Without memory to list it, the core is simply never freed (unlisted).
  }
}

namespace {
expected<void> check_track(int track) {
  if (static_cast<unsigned>(track) >= unsigned{max_tracks})
    return fail(errc::invalid_track,
                "track index " + std::to_string(track) + " is out of range [0, " + std::to_string(max_tracks) + ")");
  return {};
}
} // namespace

expected<void> Profiler::set_track_enabled(int track, bool enabled) {
  if (auto ok = check_track(track); !ok) return ok;
  core_->track_enabled[static_cast<unsigned>(track)].store(enabled, std::memory_order_relaxed);
  return {};
}

expected<void> Profiler::set_track_name(int track, std::string name) {
  if (auto ok = check_track(track); !ok) return ok;
  if (name.empty()) return fail(errc::empty_name, "track " + std::to_string(track) + ": track name must not be empty");
  std::lock_guard lock(core_->mutex);
  core_->track_names[static_cast<unsigned>(track)] = std::move(name);
  return {};
}

std::optional<std::string> Profiler::track_name(int track) const {
  if (!valid_track(track)) return std::nullopt;
  std::lock_guard lock(core_->mutex);
  return core_->track_names[static_cast<unsigned>(track)];
}

expected<Site> Profiler::site(int track, std::string_view name, std::source_location loc) {
  if (auto ok = check_track(track); !ok) return tl::unexpected(ok.error());
  if (name.empty())
    return fail(errc::empty_name, "block at " + detail::where(loc.file_name(), loc.line()) + " on track " +
                                      std::to_string(track) + ": block name must not be empty");
  const std::string* registered = nullptr;
  const std::uint32_t id = detail::register_site(*core_, track, name, loc.file_name(), loc.line(), loc.column(),
                                                 loc.function_name(), &registered);
  if (id == detail::invalid_site)
    return fail(errc::too_many_sites,
                "more than " + std::to_string(max_sites) + " call sites in profiler '" + core_->name + "'");
  return Site{core_->id, id, track};
}

Site Profiler::site_or_invalid(int track, std::string_view name, const std::source_location& loc) {
  const std::string* registered = nullptr;
  const std::uint32_t id = detail::register_site(*core_, track, name, loc.file_name(), loc.line(), loc.column(),
                                                 loc.function_name(), &registered);
  return Site{core_->id, id, track};
}

void Profiler::note_invalid_track(int track, std::string_view name, const std::source_location& loc) {
  const std::string* registered = nullptr;
  detail::register_site(*core_, track, name, loc.file_name(), loc.line(), loc.column(), loc.function_name(),
                        &registered); // records the diagnostic
}

void Profiler::record(int track, std::string_view name, std::chrono::nanoseconds duration, std::source_location loc) {
  if constexpr (instrumentation_compiled_in) {
    detail::profiler_core& core = *core_;
    const std::uint32_t id = named_site(core, track, name, loc, [&](detail::thread_buffer& buf) {
      return detail::site_for(buf, core, location_key(loc), track, name, loc.file_name(), loc.line(), loc.column(),
                              loc.function_name());
    });
    if (id == detail::invalid_site) return;
    const auto ns = duration.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(duration.count());
    detail::record(*core_, id, ns, 0, 0, no_parent);
  }
}

void Profiler::record(const Site& s, std::chrono::nanoseconds duration) {
  if constexpr (instrumentation_compiled_in) {
    if (!is_global_enabled() || !is_started() || s.core_id_ != core_->id || !s.valid() || !is_track_enabled(s.track_))
      return;
    const auto ns = duration.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(duration.count());
    detail::record(*core_, s.id_, ns, 0, 0, no_parent);
  }
}

ProfilerResults Profiler::get_results() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  const std::uint64_t gen = core.generation.load(std::memory_order_relaxed);
  auto blocks = detail::empty_blocks(core);
  for (const auto& buf : core.buffers)
    if (buf->generation.load(std::memory_order_acquire) == gen) detail::merge_buffer(blocks, *buf);
  auto add = [&](const ThreadResults& t) {
    for (const auto& tr : t.results.tracks)
      for (const auto& b : tr.blocks) blocks[b.site_id].merge(b);
  };
  for (const auto& t : core.exited) add(t);
  add(core.exited_folded);
  return detail::assemble(core, std::move(blocks), true);
}

std::vector<ThreadResults> Profiler::get_all_thread_data() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  const std::uint64_t gen = core.generation.load(std::memory_order_relaxed);
  std::vector<ThreadResults> out;
  for (const auto& buf : core.buffers) {
    if (buf->generation.load(std::memory_order_acquire) != gen) continue;
    auto t = detail::thread_snapshot(core, *buf, false);
    if (!t.results.tracks.empty()) out.push_back(std::move(t));
  }
  out.insert(out.end(), core.exited.begin(), core.exited.end());
  if (core.exited_folded_count > 0) out.push_back(core.exited_folded);
  return out;
}

void Profiler::clear() {
  std::lock_guard lock(core_->mutex);
  core_->generation.fetch_add(1, std::memory_order_release);
  core_->dropped_no_memory.store(0, std::memory_order_relaxed);
  core_->exited.clear();
  core_->exited_folded = {};
  core_->exited_folded_count = 0;
  core_->exited_timelines.clear();
  core_->exited_timeline_events_dropped = 0;
}

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
    t.sites.push_back({id, s.track, s.name, s.file, s.line});
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

std::string Profiler::to_string() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  const std::uint64_t gen = core.generation.load(std::memory_order_relaxed);
  std::vector<bool> used(max_tracks, false);
  for (const auto& s : core.sites) used[static_cast<unsigned>(s.track)] = true;
  std::size_t threads = core.exited.size() + core.exited_folded_count;
  for (const auto& b : core.buffers)
    if (b->generation.load(std::memory_order_acquire) == gen) ++threads;
  std::ostringstream os;
  os << "Profiler(name='" << core.name << "', tracks=" << std::count(used.begin(), used.end(), true)
     << ", threads=" << threads << ", started=" << (core.started.load() ? "True" : "False") << ")";
  return os.str();
}

expected<void> Profiler::export_csv(const std::filesystem::path& file) const {
  return stichotrope::export_csv(get_results(), file);
}
void Profiler::export_csv(std::ostream& out) const { write_csv(out, get_results()); }
expected<void> Profiler::export_json(const std::filesystem::path& file, int indent) const {
  return stichotrope::export_json(get_results(), file, indent);
}
void Profiler::export_json(std::ostream& out, int indent) const { write_json(out, get_results(), indent); }
void Profiler::print_results() const { write_table(std::cout, get_results()); }
void Profiler::print_results(std::ostream& out) const { write_table(out, get_results()); }

} // namespace stichotrope
