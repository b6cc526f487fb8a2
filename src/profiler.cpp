module;
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ostream>
#include <set>
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

/// The waits among `blocks` (wait sites' records), each added to the awaits
/// it happened under too, by wait site id (core.mutex held).
std::map<std::uint32_t, WaitResults> gather_waits(const profiler_core& core, const std::vector<BlockResults>& blocks) {
  std::map<std::uint32_t, WaitResults> waits;
  auto wait_at = [&](std::uint32_t id) -> WaitResults& {
    auto [it, fresh] = waits.try_emplace(id);
    if (fresh) {
      const site_info& s = core.sites[id];
      WaitResults& w = it->second;
      w.site_id = id;
      w.parent_site_id = s.wait_parent == invalid_site ? no_parent : s.wait_parent;
      w.name = s.name;
      w.file = s.file;
      w.line = s.line;
      w.column = s.column;
      w.function = s.function;
      w.awaited = s.awaited;
    }
    return it->second;
  };
  for (const auto& b : blocks) {
    if (b.site_id >= core.sites.size() || core.sites[b.site_id].wait_of == invalid_site || b.hit_count == 0) continue;
    WaitResults direct;
    direct.count = b.hit_count;
    direct.total_time_ns = b.total_time_ns;
    direct.min_time_ns = b.min_time_ns;
    direct.max_time_ns = b.max_time_ns;
    direct.migrations = b.migrations;
    direct.histogram = b.histogram;
    for (std::uint32_t id = b.site_id; id != invalid_site; id = core.sites[id].wait_parent) wait_at(id).add(direct);
  }
  return waits;
}

/// Arranges per-site blocks into tracks (core.mutex held).
ProfilerResults assemble(const profiler_core& core, std::vector<BlockResults> blocks, bool keep_empty,
                         std::uint64_t dropped) {
  ProfilerResults r;
  r.profiler_name = core.name;
  r.clock = calibrate_clock().source;
  r.diagnostics = core.diagnostics;
  r.diagnostics.insert(r.diagnostics.end(), core.config_errors.begin(), core.config_errors.end());
  r.dropped_records = dropped;
  if (keep_empty) r.repetitions = core.repetitions; // the whole profiler's results, not a thread's
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
  std::map<std::uint32_t, std::vector<WaitResults>> waits_of; // by block site, in wait site order
  for (auto& [id, w] : gather_waits(core, blocks)) waits_of[core.sites[id].wait_of].push_back(std::move(w));
  for (auto& b : blocks) {
    const site_info& site = core.sites[b.site_id];
    if (site.wait_of != invalid_site) continue; // a wait: attached to its block
    if (auto it = waits_of.find(b.site_id); it != waits_of.end()) b.waits = std::move(it->second);
    if (!keep_empty && b.hit_count == 0 && b.abandoned == 0 && b.outside_flow == 0 && b.too_deep == 0 &&
        b.waits.empty())
      continue;
    b.name = site.name;
    b.file = site.file;
    b.line = site.line;
    b.column = site.column;
    b.function = site.function;
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
    // A thread's share may hold waits it resumed of a block closed elsewhere.
    if (!keep_empty && b.hit_count == 0 && b.abandoned == 0 && b.waits.empty()) continue;
    track_at(site.track).blocks.push_back(std::move(b));
  }
  if (keep_empty)
    for (int idx = 0; idx < max_tracks; ++idx)
      if (core.track_names[static_cast<unsigned>(idx)]) track_at(idx);
  for (auto& t : tracks)
    if (t) r.tracks.push_back(std::move(*t));
  return r;
}

/// The statistics of one thread in the current interval, used sites only.
std::vector<BlockResults> thread_blocks(const profiler_core& core, const thread_buffer& buf) {
  return buffer_blocks(buf, static_cast<std::uint32_t>(core.sites.size()),
                       core.interval.load(std::memory_order_relaxed));
}

ThreadResults thread_results(const profiler_core& core, std::uint64_t os_thread_id, const std::string& thread_name,
                             bool exited, const std::vector<BlockResults>& used) {
  std::vector<BlockResults> blocks(core.sites.size());
  for (std::uint32_t id = 0; id < blocks.size(); ++id) blocks[id].site_id = id;
  for (const auto& b : used) blocks[b.site_id] = b;
  ThreadResults t;
  t.thread_id = os_thread_id;
  t.thread_name = thread_name;
  t.exited = exited;
  t.results = assemble(core, std::move(blocks), false, 0);
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
      ev.site_id = static_cast<std::uint32_t>(r.meta); // a suspension: its wait site, or no_parent
    }
    ev.flow_id = r.flow;
    t.events.push_back(ev);
  }
  t.dropped = ring->dropped.load(std::memory_order_relaxed) + discarded;
  return t;
}

/// Adds `blocks` to `folded`, which is indexed by site id: costs what the
/// blocks cover, not every site.
void fold_blocks(const profiler_core& core, std::vector<BlockResults>& folded,
                 const std::vector<BlockResults>& blocks) {
  for (const auto& b : blocks) {
    if (folded.size() <= b.site_id) {
      const std::size_t old = folded.size();
      folded.resize(std::min(core.sites.size(), std::max<std::size_t>(b.site_id + 1, old * 2)));
      for (std::size_t id = old; id < folded.size(); ++id) folded[id].site_id = static_cast<std::uint32_t>(id);
    }
    folded[b.site_id].merge(b);
  }
}

/// Hands a thread's data over to the profiler when the thread ends: its
/// statistics of the current interval (the sites it used, without names),
/// and its timeline. O(sites the thread used), no string copies.
void retire(profiler_core& core, const std::shared_ptr<thread_buffer>& buf) {
  std::lock_guard lock(core.mutex);
  if (core.dead.load(std::memory_order_relaxed)) return;
  exited_thread t{buf->os_thread_id, buf->thread_name, thread_blocks(core, *buf)};
  if (!t.blocks.empty()) {
    core.exited_entries += t.blocks.size();
    core.exited.push_back(std::move(t));
  }
  // A take_results() that failed left an interval unread: this thread's part
  // of it goes there (its buffer is about to go).
  if (core.unread.interval != 0)
    fold_blocks(core, core.unread.folded.blocks,
                buffer_blocks(*buf, static_cast<std::uint32_t>(core.sites.size()), core.unread.interval));
  while (core.exited_entries > max_exited_entries && core.exited.size() > 1) {
    fold_blocks(core, core.exited_folded.blocks, core.exited.front().blocks);
    core.exited_entries -= core.exited.front().blocks.size();
    core.exited.pop_front();
    ++core.exited_folded_count;
  }
  if (buf->generation.load(std::memory_order_acquire) == core.generation.load(std::memory_order_relaxed)) {
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

/// Set by set_thread_name (empty: not set). Trivially destructible: a block
/// closed by another thread_local's destructor may still ask for the name.
constexpr std::size_t max_thread_name = 127;
constinit thread_local char chosen_thread_name[max_thread_name + 1] = {};

std::string thread_name_of_self() {
  if (chosen_thread_name[0] != '\0') return chosen_thread_name;
  char name[64] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof name) != 0) return {};
  return name;
}

} // namespace

void rename_thread(std::string_view name) {
  name = name.substr(0, max_thread_name);
  std::memcpy(chosen_thread_name, name.data(), name.size());
  chosen_thread_name[name.size()] = '\0';
  if (!name.empty()) {
    const std::string os_name(name.substr(0, 15)); // the kernel keeps 15 bytes
    pthread_setname_np(pthread_self(), os_name.c_str());
  }
  if (registry_gone) return;
  const std::string now = thread_name_of_self();
  for (auto& e : registry.entries) {
    std::lock_guard lock(e.core->mutex); // readers copy the name under it
    e.buffer->thread_name = now;
  }
}

std::string current_thread_name() { return thread_name_of_self(); }

void note_no_memory(profiler_core& core) noexcept { core.dropped_no_memory.fetch_add(1, std::memory_order_relaxed); }

thread_buffer* find_buffer_nothrow(profiler_core& core) noexcept {
  try {
    return &find_buffer_slow(core);
  } catch (...) { // std::bad_alloc: no buffer, the record is dropped and counted
    return nullptr;
  }
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

profiler_core::profiler_core(std::string profiler_name)
    : id(next_core_id.fetch_add(1, std::memory_order_relaxed)), name(std::move(profiler_name)) {
  for (auto& e : track_enabled) e.store(true, std::memory_order_relaxed);
  for (auto& e : track_open) e.store(false, std::memory_order_relaxed); // opened once listed (switched())
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
  const site_info& s = core.sites.emplace_back(
      site_info{track, std::string(name), file, function, line, column, invalid_site, invalid_site, {}});
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

void set_thread_name(std::string_view name) { detail::rename_thread(name); }
std::string thread_name() { return detail::current_thread_name(); }

namespace {
/// A list of cores under its own mutex; the two below are never freed
/// (profilers may end during static destruction).
struct core_list {
  std::mutex mutex;
  std::vector<detail::profiler_core*> cores;
};

/// The cores of live profilers, for the global switch: it is folded into
/// each core's track flags, so that a block checks one flag however it was
/// switched off (modules/profiler.cppm, Profiler::site_core). Lock order:
/// this mutex, then a core's switch_mutex.
core_list& switched() {
  static core_list* s = new core_list;
  return *s;
}

/// Recomputes a core's track flags from the three switches (its switch_mutex
/// held). A dead core stays closed.
void reopen_tracks(detail::profiler_core& core) noexcept {
  const bool on = !core.dead.load(std::memory_order_relaxed) &&
                  detail::global_enabled.load(std::memory_order_relaxed) &&
                  core.started.load(std::memory_order_relaxed);
  for (unsigned t = 0; t < unsigned{max_tracks}; ++t)
    core.track_open[t].store(on && core.track_enabled[t].load(std::memory_order_relaxed), std::memory_order_relaxed);
}
} // namespace

void set_global_enabled(bool enabled) noexcept {
  auto& s = switched();
  std::lock_guard lock(s.mutex);
  detail::global_enabled.store(enabled, std::memory_order_relaxed);
  for (detail::profiler_core* core : s.cores) {
    std::lock_guard core_lock(core->switch_mutex);
    reopen_tracks(*core);
  }
}

namespace {
/// Puts a resolved configuration into effect (switches, names, timeline);
/// outputs and endpoints are kept for the exporters.
/// Writes "stichotrope: <line>" to stderr the first time the process meets
/// that line: a program whose results are never written still says what of
/// its configuration was ignored, once, however many profilers it makes.
void report_once_on_stderr(const std::string& line) {
  static std::mutex* mutex = new std::mutex; // never destroyed: profilers may be made during static destruction
  static std::set<std::string>* said = new std::set<std::string>;
  std::lock_guard lock(*mutex);
  if (said->insert(line).second) std::cerr << "stichotrope: " << line << std::endl;
}

void apply_config(Profiler& p, detail::profiler_core& core, ResolvedConfig resolved) {
  const Config& c = resolved.config;
  if (c.enabled) set_global_enabled(*c.enabled);
  for (const auto& [track, on] : c.tracks_enabled) (void)p.set_track_enabled(track, on);
  for (const auto& [track, name] : c.track_names) (void)p.set_track_name(track, name);
  if (c.timeline) {
    if (*c.timeline == 0)
      p.stop_timeline();
    else
      p.start_timeline({*c.timeline, c.timeline_when_full.value_or(overflow_policy::keep_latest)});
  }
  if (c.outputs || c.otlp_endpoint) detail::write_outputs_on_signals(); // a server stopped by a signal loses nothing
  std::lock_guard lock(core.mutex);
  core.config = c;
  core.config_errors.clear();
  for (const auto& e : resolved.errors) {
    std::string line = "configuration: " + e.message + " (left out; the rest of the configuration applies)";
    report_once_on_stderr(line);
    core.config_errors.push_back(std::move(line));
  }
}

/// Writes the configured outputs (cold: once, when the profiler ends).
void write_outputs(const Profiler& p, const std::vector<std::string>& outputs) {
  auto ends_with = [](std::string_view s, std::string_view ext) {
    return s.size() > ext.size() && s.substr(s.size() - ext.size()) == ext;
  };
  for (const auto& pattern : outputs) {
    const std::string path = expand_output_path(pattern, p.name());
    expected<void> done;
    if (ends_with(path, ".trace.json"))
      done = export_chrome_trace(p.get_timeline(), path);
    else if (ends_with(path, ".speedscope.json"))
      done = export_speedscope(p.get_timeline(), path);
    else if (ends_with(path, ".json"))
      done = export_json(p.get_results(), path);
    else if (ends_with(path, ".csv"))
      done = export_csv(p.get_results(), path);
    else if (ends_with(path, ".txt"))
      done = write_file(path, to_table(p.get_results()));
    else if (ends_with(path, ".folded"))
      done = write_file(path, to_folded(p.get_results()));
    if (!done) std::cerr << "stichotrope: profiler '" << p.name() << "': output not written: " << done.error() << '\n';
  }
}
} // namespace

namespace {
/// Live profilers and the exporters linked into the program (never freed:
/// profilers may end during static destruction).
struct live_profilers {
  std::mutex mutex;
  std::vector<Profiler*> all;
  std::vector<const detail::exporter*> exporters;
};
live_profilers& live() {
  static live_profilers* l = new live_profilers;
  return *l;
}

void announce(Profiler& p) {
  auto& l = live();
  std::lock_guard lock(l.mutex);
  for (const auto* e : l.exporters) e->profiler_configured(p);
}
} // namespace

namespace detail {
void register_exporter(const exporter* e) {
  auto& l = live();
  std::lock_guard lock(l.mutex);
  l.exporters.push_back(e);
  for (Profiler* p : l.all) e->profiler_configured(*p);
}

void write_outputs_now(bool ending) {
  auto& l = live();
  std::lock_guard lock(l.mutex); // no profiler ends meanwhile
  for (Profiler* p : l.all) {
    if (ending)
      for (const auto* e : l.exporters) e->profiler_ending(*p); // the last interval goes out now
    if (const auto outputs = p->config().outputs) {
      try {
        write_outputs(*p, *outputs);
      } catch (const std::exception& e) {
        std::cerr << "stichotrope: profiler '" << p->name() << "': outputs not written: " << e.what() << '\n';
      }
    }
  }
}

void add_diagnostic(Profiler& p, std::string message) {
  std::lock_guard lock(p.core_->mutex);
  add_diagnostic(*p.core_, std::move(message));
}

void replace_diagnostic(Profiler& p, std::string_view key, std::string message) {
  std::lock_guard lock(p.core_->mutex);
  auto& d = p.core_->diagnostics;
  const auto it = std::find_if(d.begin(), d.end(), [&](const std::string& m) { return m.starts_with(key); });
  if (it != d.end())
    *it = std::move(message);
  else
    d.push_back(std::move(message));
}
} // namespace detail

Profiler::Profiler(std::string name, Config config) {
  calibrate_clock();
  core_ = new detail::profiler_core(std::move(name)); // owned by the graveyard once the profiler is gone
  {
    auto& s = switched();
    std::lock_guard lock(s.mutex);
    s.cores.push_back(core_);
    std::lock_guard core_lock(core_->switch_mutex);
    reopen_tracks(*core_);
  }
  core_->code_config = config;
  apply_config(*this, *core_, resolve_config(config, core_->name));
  {
    auto& l = live();
    std::lock_guard lock(l.mutex);
    l.all.push_back(this);
  }
  announce(*this);
}

std::vector<Error> Profiler::reload_config() {
  Config code;
  {
    std::lock_guard lock(core_->mutex);
    code = core_->code_config;
  }
  auto resolved = resolve_config(code, core_->name);
  auto errors = resolved.errors;
  apply_config(*this, *core_, std::move(resolved));
  announce(*this);
  return errors;
}

Config Profiler::config() const {
  std::lock_guard lock(core_->mutex);
  return core_->config;
}

namespace {
/// Cores of destroyed profilers. A core is small once emptied, and it is never
/// freed: blocks, timed awaits and wrappers that outlive their profiler (on
/// any thread, at static destruction time) still read its `dead` flag and
/// then record nothing. Reachable from this never-destroyed list.
core_list& graveyard() {
  static core_list* g = new core_list;
  return *g;
}
} // namespace

Profiler::~Profiler() {
  detail::profiler_core& core = *core_;
  {
    auto& l = live();
    std::lock_guard lock(l.mutex);
    std::erase(l.all, this);
    for (const auto* e : l.exporters) e->profiler_ending(*this);
  }
  std::optional<std::vector<std::string>> outputs;
  {
    std::lock_guard lock(core.mutex);
    outputs = core.config.outputs;
  }
  if (outputs) { // export at exit (STICHOTROPE_OUTPUT)
    try {
      write_outputs(*this, *outputs);
    } catch (const std::exception& e) {
      std::cerr << "stichotrope: profiler '" << core.name << "': outputs not written: " << e.what() << '\n';
    }
  }
  core.started.store(false, std::memory_order_relaxed);
  {
    auto& s = switched();
    std::lock_guard lock(s.mutex);
    std::erase(s.cores, core_);
    std::lock_guard core_lock(core.switch_mutex);
    core.dead.store(true, std::memory_order_relaxed); // start() after this reopens nothing
    reopen_tracks(core);
  }
  core.timeline_on.store(false, std::memory_order_relaxed);
  {
    std::lock_guard lock(core.mutex);
    core.dead.store(true, std::memory_order_relaxed);
    // Threads keep their own buffers until they next look one up or exit.
    std::vector<std::shared_ptr<detail::thread_buffer>>().swap(core.buffers);
    std::deque<detail::exited_thread>().swap(core.exited);
    core.exited_folded = {};
    core.unread.reset();
    std::vector<BlockResults>().swap(core.taken);
    std::deque<ThreadTimeline>().swap(core.exited_timelines);
    core.site_index.clear();
    // Sites stay: a thread that passed the switches just before this may
    // still compare a call site's name through its cache.
    std::vector<std::string>().swap(core.diagnostics);
    core.config = {};
    core.code_config = {};
    std::vector<std::string>().swap(core.config_errors);
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
  std::lock_guard lock(core_->switch_mutex);
  core_->track_enabled[static_cast<unsigned>(track)].store(enabled, std::memory_order_relaxed);
  reopen_tracks(*core_);
  return {};
}

namespace {
void set_started(detail::profiler_core& core, bool started) noexcept {
  std::lock_guard lock(core.switch_mutex);
  if (core.dead.load(std::memory_order_relaxed)) return;
  core.started.store(started, std::memory_order_relaxed);
  reopen_tracks(core);
}
} // namespace

void Profiler::start() noexcept { set_started(*core_, true); }
void Profiler::stop() noexcept { set_started(*core_, false); }

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
  return Site{id == detail::invalid_site ? 0 : core_->id, id, track}; // invalid: matches no profiler
}

void Profiler::note_invalid_track(int track, std::string_view name, const std::source_location& loc) {
  if (!is_global_enabled()) return; // switched off globally: nothing at all, not even a diagnostic
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

namespace detail {
namespace {
/// Adds one interval: every live thread's slots of it and the threads that
/// ended in it (core.mutex held).
void add_interval(accumulator& acc, const profiler_core& core, std::uint32_t interval,
                  const std::deque<exited_thread>& exited, const exited_thread& folded) {
  merge_buffers(acc, core.buffers, interval);
  for (const auto& t : exited)
    for (const auto& b : t.blocks) acc.add(b);
  for (const auto& b : folded.blocks) acc.add(b);
}

/// Adds the interval a failed take_results() left unread, if any.
void add_unread(accumulator& acc, const profiler_core& core) {
  if (core.unread.interval != 0) add_interval(acc, core, core.unread.interval, core.unread.exited, core.unread.folded);
}
} // namespace
} // namespace detail

ProfilerResults Profiler::get_results() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  detail::accumulator acc(core.sites.size());
  detail::add_interval(acc, core, core.interval.load(std::memory_order_relaxed), core.exited, core.exited_folded);
  detail::add_unread(acc, core);
  for (const auto& b : core.taken) acc.add(b);
  return detail::assemble(core, acc.finish(), true,
                          core.dropped_taken + core.dropped_no_memory.load(std::memory_order_relaxed));
}

ProfilerResults Profiler::take_results() {
  auto& core = *core_;
  std::lock_guard lock(core.mutex);
  if (core.unread.interval == 0) {
    // A new interval first; then every record still writing the old one is
    // either visible as in progress (read_slot waits for it) or was made
    // after the switch and lands in the new one (modules/core.cppm,
    // open_slot). The threads that ended in the old one go with it.
    const std::uint32_t ended = core.interval.load(std::memory_order_relaxed);
    core.interval.store(ended + 1 == 0 ? 1 : ended + 1, std::memory_order_seq_cst);
    detail::issue_barrier();
    core.unread.interval = ended;
    core.unread.exited.swap(core.exited);
    std::swap(core.unread.folded, core.exited_folded);
    core.exited_entries = 0;
    core.exited_folded_count = 0;
  }
  // Whatever can fail (no memory) comes before anything changes: a call
  // that throws leaves the interval unread, and the next one returns it.
  detail::accumulator acc(core.sites.size());
  detail::add_unread(acc, core);
  const std::uint64_t dropped = core.dropped_no_memory.load(std::memory_order_relaxed);
  auto blocks = acc.finish();
  detail::accumulator total(core.sites.size());
  for (const auto& b : core.taken) total.add(b);
  for (const auto& b : blocks) total.add(b);
  auto taken = detail::used_blocks(total.finish());
  auto results = detail::assemble(core, std::move(blocks), true, dropped);
  // Nothing below allocates.
  core.taken = std::move(taken);
  core.dropped_taken += dropped;
  core.dropped_no_memory.fetch_sub(dropped, std::memory_order_relaxed);
  core.unread.reset();
  return results;
}

std::vector<ThreadResults> Profiler::get_all_thread_data() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  std::vector<ThreadResults> out;
  for (const auto& buf : core.buffers) {
    auto used = detail::thread_blocks(core, *buf);
    if (!used.empty()) out.push_back(detail::thread_results(core, buf->os_thread_id, buf->thread_name, false, used));
  }
  for (const auto& t : core.exited)
    out.push_back(detail::thread_results(core, t.os_thread_id, t.thread_name, true, t.blocks));
  if (core.exited_folded_count > 0)
    out.push_back(detail::thread_results(core, 0,
                                         "(" + std::to_string(core.exited_folded_count) + " older exited threads)",
                                         true, core.exited_folded.blocks));
  return out;
}

MemoryUse Profiler::memory_use() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  MemoryUse m;
  for (const auto& buf : core.buffers) {
    m.thread_buffers += detail::buffer_bytes(*buf);
    ++m.live_threads;
  }
  auto blocks_bytes = [](const std::vector<BlockResults>& blocks) {
    std::uint64_t n = blocks.capacity() * sizeof(BlockResults);
    for (const auto& b : blocks)
      n += b.callers.capacity() * sizeof(caller_stats) + b.histogram.counts.capacity() * sizeof(std::uint64_t);
    return n;
  };
  for (const auto& t : core.exited) m.exited_threads += sizeof(t) + blocks_bytes(t.blocks);
  m.exited_threads += blocks_bytes(core.exited_folded.blocks) + blocks_bytes(core.taken);
  for (const auto& t : core.unread.exited) m.exited_threads += sizeof(t) + blocks_bytes(t.blocks);
  m.exited_threads += blocks_bytes(core.unread.folded.blocks);
  for (const auto& s : core.sites) m.sites += sizeof(s) + s.name.capacity() + s.file.capacity() + s.function.capacity();
  return m;
}

void Profiler::clear() {
  std::lock_guard lock(core_->mutex);
  // Records of the interval that ends are never read: each thread moves a
  // slot to the new interval at its next record there (no thread is made to
  // empty its whole buffer inside a block).
  const std::uint32_t ended = core_->interval.load(std::memory_order_relaxed);
  core_->interval.store(ended + 1 == 0 ? 1 : ended + 1, std::memory_order_release);
  core_->generation.fetch_add(1, std::memory_order_release);
  core_->dropped_no_memory.store(0, std::memory_order_relaxed);
  core_->dropped_taken = 0;
  core_->taken.clear();
  core_->exited.clear();
  core_->exited_entries = 0;
  core_->exited_folded = {};
  core_->exited_folded_count = 0;
  core_->unread.reset(); // never read: its records go with the rest
  core_->exited_timelines.clear();
  core_->exited_timeline_events_dropped = 0;
  core_->repetitions.clear();
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
