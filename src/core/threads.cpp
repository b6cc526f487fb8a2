// Thread buffers' lifetime: each thread's registry of its buffers (one per
// profiler it records into), made at its first record, handed over to the
// profiler when the thread ends (retire); thread names.
module;
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {
namespace {

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

} // namespace stichotrope::detail

namespace stichotrope {

void set_thread_name(std::string_view name) { detail::rename_thread(name); }
std::string thread_name() { return detail::current_thread_name(); }

} // namespace stichotrope
