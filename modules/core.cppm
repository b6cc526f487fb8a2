module;
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <deque>
#include <vector>
export module stichotrope:core;
import :clock;
import :config;
import :results;

// Internal machinery behind Profiler and Block. It is reachable from the
// public inline functions (so importers can inline the hot path) but is not
// part of the documented API.

export namespace stichotrope {
/// Track indices are in [0, max_tracks).
inline constexpr int max_tracks = 256;
/// Call sites per profiler.
inline constexpr std::uint32_t max_sites = 64 * 2048;
} // namespace stichotrope

// Internal: reachable from the inline hot path, not visible to importers;
// the few names the Asio header and the tests use are exported one by one.
namespace stichotrope::detail {

inline constexpr std::uint32_t invalid_site = UINT32_MAX;
inline constexpr std::uint32_t chunk_slots = 64;
inline constexpr std::uint32_t max_chunks = max_sites / chunk_slots;
inline constexpr unsigned tracked_callers = 4;
/// A thread's call-site cache starts with this many entries (two per
/// bucket) and grows (x4) while it keeps missing, up to site_cache_max.
inline constexpr unsigned site_cache_size = 64;
inline constexpr unsigned site_cache_max = 4096;
inline constexpr std::uint64_t no_sample = UINT64_MAX;
/// Exited threads whose statistics are kept one by one, per interval: the
/// most recent ones while they hold at most this many (thread, site) entries
/// in all (and at least the last one); older ones are folded into one entry
/// per site, so memory after threads exit stays bounded by the sites.
inline constexpr std::size_t max_exited_entries = 4096;
/// Exited threads' timelines kept (older ones are dropped and counted).
inline constexpr std::size_t max_exited_timelines = 64;

inline std::atomic<bool> global_enabled{true};

/// Single-writer update: no lock prefix, still data-race free for readers.
inline void bump(std::atomic<std::uint64_t>& a, std::uint64_t v) noexcept {
  a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

/// Single-writer move: `to` takes the value of `from`, which becomes `empty`.
template <class T>
void move_value(std::atomic<T>& from, std::atomic<T>& to, std::type_identity_t<T> empty) noexcept {
  to.store(from.load(std::memory_order_relaxed), std::memory_order_relaxed);
  from.store(empty, std::memory_order_relaxed);
}

// A slot, its sealed copy, a wait record and its sealed copy all begin with
// the same four statistics; these write, move and read them alike.

/// Counts one sample of `ns` (single writer).
template <class Stats>
[[gnu::always_inline]] inline void count_sample(Stats& s, std::uint64_t ns) noexcept {
  bump(s.hits, 1);
  bump(s.total_ns, ns);
  if (ns < s.min_ns.load(std::memory_order_relaxed)) s.min_ns.store(ns, std::memory_order_relaxed);
  if (ns > s.max_ns.load(std::memory_order_relaxed)) s.max_ns.store(ns, std::memory_order_relaxed);
}
/// Moves the four statistics of `from` to `to` and empties `from` (a seal).
template <class From, class To>
void move_sample_stats(From& from, To& to) noexcept {
  move_value(from.hits, to.hits, 0);
  move_value(from.total_ns, to.total_ns, 0);
  move_value(from.min_ns, to.min_ns, UINT64_MAX);
  move_value(from.max_ns, to.max_ns, 0);
}
/// Reads the four statistics into a reading's plain fields.
template <class Stats, class Reading>
void read_sample_stats(const Stats& from, Reading& r) noexcept {
  r.hits = from.hits.load(std::memory_order_relaxed);
  r.total_ns = from.total_ns.load(std::memory_order_relaxed);
  r.min_ns = from.min_ns.load(std::memory_order_relaxed);
  r.max_ns = from.max_ns.load(std::memory_order_relaxed);
}

struct caller_slot {
  std::atomic<std::uint32_t> parent_plus1{0}; // 0 = unused, else parent site + 1
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> total_ns{0};
};

/// The histogram is kept in pages of one octave: eight buckets of
/// latency_histogram (values below 16 ns: octaves 0 and 1), 39 octaves in all.
inline constexpr unsigned page_buckets = 8;
inline constexpr unsigned octaves = latency_histogram::bucket_count / page_buckets;
static_assert(octaves * page_buckets == latency_histogram::bucket_count);
inline constexpr unsigned dir_entries = 8;
/// A directory entry: (octave + 1) << 56 | wide_page << 55 | page address
/// (user-space addresses fit in 47 bits); 0 = unused.
inline constexpr std::uint64_t page_wide = std::uint64_t{1} << 55;
inline constexpr std::uint64_t page_address = (std::uint64_t{1} << 55) - 1;

/// Eight 32-bit bucket counters (32 B). A counter that would pass UINT32_MAX
/// turns its page wide (64-bit counters, a copy) instead: a narrow counter
/// never wraps, so a reader that still holds the narrow page sees a count
/// that was true a moment ago.
struct narrow_page {
  std::atomic<std::uint32_t> n[page_buckets];
};
struct wide_page {
  std::atomic<std::uint64_t> n[page_buckets];
};

/// The cold statistics of a slot in one interval, allocated at their first
/// use: most blocks never suspend, count bytes or have a second caller.
struct slot_ext {
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> suspended_ns{0}; // time the block's flow spent suspended inside it
  std::atomic<std::uint64_t> suspensions{0};
  std::atomic<std::uint64_t> migrations{0};   // records whose flow resumed on another thread
  std::atomic<std::uint64_t> abandoned{0};    // blocks destroyed while their coroutine was suspended
  std::atomic<std::uint64_t> outside_flow{0}; // records closed outside the flow that opened them
  std::atomic<std::uint64_t> too_deep{0};     // records opened deeper than max_depth
  std::atomic<std::uint64_t> other_callers{0};
  std::atomic<std::uint64_t> other_callers_ns{0};
  // Callers after the first (whose hits and time are the slot's minus these).
  caller_slot callers[tracked_callers - 1];
  // Octaves beyond the directory's eight entries, by octave (allocated when needed).
  std::atomic<std::atomic<std::uint64_t>*> more_pages{nullptr};
};

struct sealed_slot;

/// A slot's histogram pages and cold statistics for one interval. 88 B.
struct slot_dir {
  std::atomic<std::uint64_t> pages[dir_entries]{}; // probed from octave % dir_entries
  std::atomic<slot_ext*> ext{nullptr};
  std::atomic<sealed_slot*> sealed{nullptr};  // the slot's previous interval, once there was one
  std::atomic<std::uint32_t> first_caller{0}; // caller tag of the interval's first record (0: none yet)
};

/// A slot's values at the end of its previous interval (written when its
/// thread first records in a new one; see docs/performance.md, "Intervals").
struct sealed_slot {
  std::atomic<std::uint32_t> interval{0};
  std::atomic<std::uint64_t> hits{0}, total_ns{0}, min_ns{UINT64_MAX}, max_ns{0}, self_ns{0};
  std::atomic<std::uint64_t> pending_ns{no_sample};
  std::atomic<slot_dir*> dir{nullptr};
};

/// Statistics of one call site in one thread for the current interval: one
/// cache line. Written only by its thread, read by aggregators under the
/// seqlock `seq` (odd while a record is being written), so a snapshot never
/// shows half a record.
struct alignas(64) slot {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> interval{0}; // the profiler's interval these values belong to (0: none yet)
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> total_ns{0};
  std::atomic<std::uint64_t> min_ns{UINT64_MAX};
  std::atomic<std::uint64_t> max_ns{0};
  std::atomic<std::uint64_t> self_ns{0};
  // The newest sample waits here and enters the histogram at the next record:
  // a bucket address computed from the fresh timestamp would make every block
  // wait for the counter read (7 ns measured); the previous sample is ready.
  std::atomic<std::uint64_t> pending_ns{no_sample};
  std::atomic<slot_dir*> dir{nullptr};
};
static_assert(sizeof(slot) == 64);

/// Memory of one thread buffer: blocks taken from the global allocator and
/// handed out by bumping a pointer; freed all at once with the buffer. Owner
/// only, no lock. Null when there is no memory.
struct arena {
  static constexpr std::size_t block_size = 64 * 1024;
  std::byte* next = nullptr;
  std::byte* end = nullptr;
  void* blocks = nullptr;              // each block begins with a pointer to the previous one
  std::atomic<std::uint64_t> bytes{0}; // allocated from the global allocator, for memory reports

  arena() = default;
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  ~arena();
  void* allocate(std::size_t size, std::size_t align) noexcept {
    auto p = reinterpret_cast<std::uintptr_t>(next);
    p = (p + align - 1) & ~(std::uintptr_t{align} - 1);
    if (next != nullptr && p + size <= reinterpret_cast<std::uintptr_t>(end)) {
      next = reinterpret_cast<std::byte*>(p + size);
      return reinterpret_cast<void*>(p);
    }
    return allocate_slow(size, align);
  }
  void* allocate_slow(std::size_t size, std::size_t align) noexcept;
};

// Events are stored with their timeline_kind (modules/results.cppm) in `meta`.

/// One timeline event, written by its thread only, under a per-event
/// sequence number: a reader racing with an overwrite sees a changed or zero
/// `seq` and discards the event, never a torn one, never a data race.
struct timeline_event {
  std::atomic<std::uint64_t> seq{0};   // index + 1 of the event held; 0 while being written
  std::atomic<std::uint64_t> start{0}; // ticks (suspend/resume: the moment)
  std::atomic<std::uint64_t> end{0};   // ticks (suspend/resume: the arrow id)
  std::atomic<std::uint64_t> flow{0};  // flow id, 0 for the thread's own
  std::atomic<std::uint64_t> meta{0};  // kind << 32 | site
};

/// A thread's bounded timeline: `capacity` events, then either the first
/// ones are kept (later ones refused) or the latest (oldest overwritten);
/// either way each lost event is counted in `dropped`.
struct timeline_ring {
  explicit timeline_ring(std::uint64_t cap, bool latest)
      : events(new timeline_event[cap]), capacity(cap), keep_latest(latest) {}
  std::unique_ptr<timeline_event[]> events;
  const std::uint64_t capacity;
  const bool keep_latest;
  std::atomic<std::uint64_t> written{0}; // events published so far
  std::atomic<std::uint64_t> dropped{0};

  /// Owner only; no lock, no allocation.
  void append(timeline_kind kind, std::uint32_t site, std::uint64_t start, std::uint64_t end,
              std::uint64_t flow) noexcept {
    const std::uint64_t n = written.load(std::memory_order_relaxed);
    if (n >= capacity) {
      dropped.store(dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      if (!keep_latest) return;
    }
    timeline_event& e = events[n % capacity];
    e.seq.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    e.start.store(start, std::memory_order_relaxed);
    e.end.store(end, std::memory_order_relaxed);
    e.flow.store(flow, std::memory_order_relaxed);
    e.meta.store(std::uint64_t{static_cast<std::uint8_t>(kind)} << 32 | site, std::memory_order_relaxed);
    e.seq.store(n + 1, std::memory_order_release);
    written.store(n + 1, std::memory_order_release);
  }
};

struct wait_cold;

/// One (thread, wait site)'s statistics in the current interval: 104 B with
/// its first histogram page inline (docs/performance.md, "Memory"). Written
/// by its thread only, read by aggregators under the seqlock `seq`, like a
/// slot. A wait is not a block: no callers, no self time. Like a slot, it
/// counts its newest sample in the histogram only at the next one
/// (`pending_ns`): the counter's address then never waits for the time
/// stamp just taken (docs/performance.md, "Waits").
struct wait_record {
  std::uint64_t key = 0;  // the hash of (block, await chain): set before the record is published
  std::uint32_t site = 0; // the wait site
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> interval{0};
  std::atomic<std::uint32_t> octave{0}; // the inline page's octave + 1 (0: none yet)
  std::atomic<std::uint64_t> hits{0}, total_ns{0}, min_ns{UINT64_MAX}, max_ns{0};
  std::atomic<std::uint64_t> pending_ns{no_sample}; // the newest sample, not yet in the histogram
  narrow_page page{};
  std::atomic<wait_cold*> cold{nullptr}; // a shared empty one until a second octave, a migration or a new interval
};

/// A wait record's values at the end of its previous interval.
struct wait_sealed {
  std::atomic<std::uint32_t> interval{0};
  std::atomic<std::uint32_t> octave{0};
  std::atomic<std::uint64_t> hits{0}, total_ns{0}, min_ns{UINT64_MAX}, max_ns{0}, migrations{0};
  std::atomic<std::uint64_t> pending_ns{no_sample};
  narrow_page page{};
  std::atomic<slot_dir*> dir{nullptr};
};

/// The rare part of a wait record: pages of other octaves than the inline
/// one (a slot's directory), the sealed copy of the previous interval, and
/// the count of waits that resumed on another thread than they began on.
struct wait_cold {
  std::atomic<slot_dir*> dir{nullptr};
  std::atomic<wait_sealed*> sealed{nullptr};
  std::atomic<std::uint64_t> migrations{0};
};

/// Wait records made by one thread, published one by one through `used`.
struct wait_chunk {
  wait_chunk* next = nullptr;
  std::uint32_t capacity = 0;
  std::atomic<std::uint32_t> used{0};
  wait_record* records() noexcept { return reinterpret_cast<wait_record*>(this + 1); }
  const wait_record* records() const noexcept { return reinterpret_cast<const wait_record*>(this + 1); }
};

/// The serial of the newest thread buffer (see thread_buffer::serial).
inline std::atomic<std::uint64_t> buffer_serials{0};

/// Where a thread keeps one profiler's data. Owned jointly by the thread and
/// the profiler, so either may end first.
struct thread_buffer {
  // Two to a cache line, which is a bucket: a site is looked for in both
  // entries of its bucket at once. A name of up to 16 bytes is held whole by
  // its length and key (name_key), so a hit compares registers with the
  // line, with no pointer to follow and no memcmp.
  struct alignas(32) cache_entry {
    const void* location = nullptr; // identity of the std::source_location; null: empty
    std::uint64_t head = 0;         // name_key::head; an entry found by address: the text's address
    std::uint64_t tail = 0;         // name_key::tail; a name longer than 16 bytes: its registered text
    std::uint32_t site = invalid_site;
    std::uint32_t shape = 0; // track | length << 8; an entry found by address: track | literal_length << 8
  };
  static constexpr std::uint32_t literal_length = 0xFFFFFF; // names this long or longer are not cached
  static_assert(max_tracks <= 256, "a track takes the low 8 bits of an entry's shape");

  std::uint64_t core_id = 0;
  std::uint64_t os_thread_id = 0;
  // Unique in the process, never reused: a flow's memo of its last wait
  // record (context::memo_buffer) names the buffer that holds it by this,
  // since a buffer freed and another made may share an address.
  const std::uint64_t serial = buffer_serials.fetch_add(1, std::memory_order_relaxed) + 1;
  std::string thread_name;
  std::atomic<std::uint64_t> generation{0}; // the profiler's clear() count its timeline belongs to
  arena memory;                             // chunks, directories, pages: freed with the buffer
  std::array<std::atomic<slot*>, max_chunks> chunks{};
  // Touched by the owner only: `cache` is `first_cache` until the thread
  // uses more named sites than it holds (then a larger table from the arena).
  alignas(64) std::array<cache_entry, site_cache_size> first_cache{}; // a bucket is one cache line
  cache_entry* cache = first_cache.data();
  std::uint32_t cache_shift = 64 - 5;            // a bucket is a hash's top bits (log2 of the buckets)
  std::uint32_t cache_fills = 0;                 // entries written since the table was made
  std::atomic<timeline_ring*> timeline{nullptr}; // created at the thread's first event
  // Waits this thread has charged: a record per (block, await chain), in
  // chunks that are never moved or freed before the buffer (aggregators walk
  // them), found by the owner through a table of tagged pointers (16 high
  // bits of the key, 48 of address) that grows x2 at 3/4 load, the old table
  // freed (src/core/waits.cpp).
  static constexpr std::uint32_t first_wait_entries = 32;
  std::atomic<wait_chunk*> wait_chunks{nullptr}; // newest first
  std::array<std::uint64_t, first_wait_entries> first_waits{};
  std::uint64_t* waits = first_waits.data();
  std::uint32_t wait_mask = first_wait_entries - 1;
  std::uint32_t wait_used = 0;
  std::atomic<std::uint64_t> wait_bytes{0}; // chunks and tables beyond first_waits, for memory reports

  thread_buffer() = default;
  thread_buffer(const thread_buffer&) = delete;
  thread_buffer& operator=(const thread_buffer&) = delete;
  ~thread_buffer();

  /// The slot of `site`, creating its chunk on first use (the only
  /// allocation); null when there is no memory for it.
  inline slot* slot_for(std::uint32_t site) noexcept {
    slot* chunk = chunks[site / chunk_slots].load(std::memory_order_relaxed);
    if (chunk == nullptr) [[unlikely]] {
      chunk = add_chunk(site / chunk_slots);
      if (chunk == nullptr) return nullptr;
    }
    return chunk + site % chunk_slots;
  }
  slot* add_chunk(std::uint32_t index) noexcept;
};

struct site_info {
  int track = 0;
  std::string name;
  std::string file;
  std::string function;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  // A wait site (docs/coroutines.md, "Waits"): the block it is a wait of, the
  // await it happened under (a child coroutine's caller's await), and what
  // was awaited. Ordinary call sites have wait_of == invalid_site.
  std::uint32_t wait_of = UINT32_MAX;
  std::uint32_t wait_parent = UINT32_MAX;
  std::string awaited;
};

/// A call site already registered, keyed by what a thread's cache misses on:
/// (source location, track, name). Immutable once published.
struct site_link {
  const void* location;
  int track;
  std::uint32_t site;
  const std::string* name; // the registered name (stable: sites are never freed)
};

/// Open-addressing table of site links, read without a lock (a thread whose
/// cache misses on a site registered before finds it here); written under the
/// profiler's mutex, replaced by a table twice as large at half load (old
/// tables are kept: a reader may still be probing one).
struct site_table {
  explicit site_table(std::size_t capacity)
      : slots(new std::atomic<const site_link*>[capacity] {}), mask(capacity - 1) {}
  std::unique_ptr<std::atomic<const site_link*>[]> slots;
  const std::size_t mask;
  std::size_t used = 0; // under the profiler's mutex
};

inline std::size_t link_hash(const void* location, int track, std::string_view name) noexcept {
  std::uint64_t h = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(location)) * 0x9E3779B97F4A7C15ull;
  h ^= (static_cast<std::uint64_t>(static_cast<unsigned>(track)) << 32 | name.size()) * 0xC2B2AE3D27D4EB4Full;
  const char* p = name.data();
  std::size_t n = name.size();
  for (; n >= 8; p += 8, n -= 8) { // eight bytes a step: names are hashed on every cache miss
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 32;
  }
  if (n != 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
  }
  return static_cast<std::size_t>(h ^ (h >> 29));
}

/// The statistics a thread left when it ended (only the sites it used).
struct exited_thread {
  std::uint64_t os_thread_id = 0;
  std::string thread_name;
  std::vector<BlockResults> blocks; // site_id set, names empty
};

/// The state of a profiler shared with the threads that record into it.
struct profiler_core {
  const std::uint64_t id;
  std::atomic<bool> dead{false}; // its Profiler was destroyed: records are dropped (the core itself is never freed)
  std::atomic<std::uint64_t> dropped_no_memory{0}; // records dropped: no memory for a buffer, chunk or histogram
  std::string name;
  std::atomic<bool> started{true};
  std::array<std::atomic<bool>, max_tracks> track_enabled;
  // global_enabled && started && track_enabled[t] (and not dead): the one flag
  // a block checks, recomputed under switch_mutex whenever one changes
  // (src/profiler/profiler.cpp, reopen_tracks).
  std::array<std::atomic<bool>, max_tracks> track_open;
  std::mutex switch_mutex;
  std::atomic<std::uint64_t> generation{1}; // clear() count: timelines older than it are emptied
  // The interval records land in: take_results() and clear() begin a new one.
  // A slot still tagged with an older interval holds nothing of this one.
  std::atomic<std::uint32_t> interval{1};
  std::atomic<bool> timeline_on{false}; // checked once per block close
  std::atomic<std::uint64_t> timeline_capacity{std::uint64_t{1} << 16};
  std::atomic<bool> timeline_keep_latest{true};
  std::atomic<const site_table*> links{nullptr}; // registered sites, lock-free to read

  mutable std::mutex mutex;                        // guards everything below; never taken on the hot path
  std::deque<site_link> link_store;                // what `links` points to
  std::vector<std::unique_ptr<site_table>> tables; // the current table and the ones it replaced
  std::deque<site_info> sites;                     // index = site id; deque keeps names at stable addresses
  std::map<std::tuple<int, std::string_view, std::string_view, std::uint32_t, std::uint32_t, std::string_view>,
           std::uint32_t>
      site_index;                                  // keys view into `sites`
  std::map<std::string, std::uint32_t> wait_index; // wait sites by (block, parent wait, await, awaited) as bytes
  std::array<std::optional<std::string>, max_tracks> track_names;
  std::vector<std::shared_ptr<thread_buffer>> buffers; // live threads
  // Threads that ended in the current interval: the most recent ones one by
  // one, older ones folded into one entry, so that memory stays bounded
  // however many short-lived threads come and go. No names: they are added
  // when results are assembled.
  std::deque<exited_thread> exited;
  std::size_t exited_entries = 0; // blocks in `exited`
  exited_thread exited_folded;    // "(N older exited threads)"
  std::uint64_t exited_folded_count = 0;
  // An interval that a take_results() ended but could not read (it ran out of
  // memory): the next take_results() returns it and begins no other; until
  // then get_results() adds it, and a thread that ends hands over its part
  // of it too. So a failed call loses no record. interval 0: none.
  struct unread_interval {
    std::uint32_t interval = 0;
    std::deque<exited_thread> exited; // threads that ended in it
    exited_thread folded;             // the blocks of threads that ended since, by site id
    void reset() noexcept {
      interval = 0;
      exited.clear();
      folded = {};
    }
  } unread;
  std::vector<BlockResults> taken; // the intervals taken since the last clear(), summed (used sites, no names)
  std::uint64_t dropped_taken = 0; // dropped_no_memory of those intervals
  std::deque<ThreadTimeline> exited_timelines; // their timelines (when capture was on), most recent only
  std::uint64_t exited_timeline_events_dropped = 0;
  std::vector<std::string> diagnostics;
  std::vector<RepetitionResults> repetitions; // Profiler::repeat's, since the last clear()
  Config code_config;                         // what the code gave (wins over every other source)
  Config config;                              // in effect
  std::vector<std::string> config_errors;     // of the last reading, as diagnostics

  explicit profiler_core(std::string profiler_name);
};

/// Open blocks nest per flow, at most this deep; deeper blocks still record,
/// as top-level blocks, and a diagnostic names them.
inline constexpr std::uint32_t max_depth = 32;
/// Frames a context holds in itself; the deeper ones are made when its flow
/// first nests that deep (a context per coroutine alive: 100,000 of them at
/// 1,200 bytes each cost more than the coroutines; docs/performance.md).
inline constexpr std::uint32_t near_frames = 8;
/// Set in a frame's serial once its block has closed (out of order, or in
/// another flow): the entry is a hole, skipped as a parent, popped when on top.
inline constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;

/// One open block (or timed await) in its flow's stack. `serial` is the
/// block's start timestamp: a block finds its entry only if the serial still
/// matches, so a stale block never mistakes a newer entry for its own.
struct frame_entry {
  std::atomic<std::uint64_t> serial{0}; // written by the flow's thread; a block closed elsewhere sets closed_bit
  profiler_core* core = nullptr;
  std::uint32_t site = 0;
  std::uint32_t join_depth = 0; // the flow's join_depth when the block opened (its waits' chains start there)
  std::uint64_t child_ns = 0;   // time of the closed children
};

/// A frame whose block closed in another thread (popped when it reaches the top).
inline bool is_hole(const frame_entry& f) noexcept {
  return (f.serial.load(std::memory_order_relaxed) & closed_bit) != 0;
}

/// Awaits of child coroutines a flow's wait chains remember (deeper ones
/// still join; their waits are charged to the deepest remembered await).
inline constexpr std::uint32_t max_joins = 8;

/// A logical flow of control whose open blocks nest: a thread, or a coroutine
/// chain, or a fiber. Only the thread currently running the flow touches it
/// (except for the atomic `serial` of a frame whose block closed elsewhere).
/// Contexts come from a pool and are never freed (see acquire_context), so a
/// block that outlives its flow can never reach freed memory.
export struct context {
  frame_entry near[near_frames];
  // Frames near_frames..max_depth-1, made by grow_frames when the flow first
  // nests that deep and kept with the context (never freed, never moved: a
  // block closed in another thread may still mark its frame there).
  frame_entry* far = nullptr;
  /// Frame `d` (< max_depth; `far` exists when d >= near_frames).
  [[gnu::always_inline]] inline frame_entry& frame(std::uint32_t d) noexcept {
    return d < near_frames ? near[d] : far[d - near_frames];
  }
  [[gnu::always_inline]] inline const frame_entry& frame(std::uint32_t d) const noexcept {
    return d < near_frames ? near[d] : far[d - near_frames];
  }
  std::uint32_t depth = 0;          // frames in use (holes included)
  std::uint32_t active = 0;         // runs in progress (an executor may run a flow inside itself)
  std::uint64_t suspended_ns = 0;   // total time spent suspended so far
  std::uint64_t suspensions = 0;    // how many times it suspended
  std::uint64_t migrations = 0;     // resumptions on a thread other than the previous one
  std::uint64_t suspend_begin = 0;  // ticks when the current suspension began
  std::uint64_t interrupted_at = 0; // ticks when another flow began to run inside this one's run (0: not)
  const void* thread = nullptr;     // the thread that last ran it
  context* saved = nullptr;         // what was current on the thread before this was entered
  context* destroy_saved = nullptr; // what was current before its frames began to be destroyed
  std::uint64_t id = 0;             // timeline id, given at the first entry (0: a thread's own)
  std::uint64_t arrow = 0;          // timeline arrow from the current suspension to its resumption
  // The await the flow is suspended in (set just before it leaves): its
  // source_location's identity and the awaited type's name (static storage).
  const void* wait_location = nullptr;
  const std::string_view* wait_type = nullptr;
  // Awaits of child coroutines that joined this flow, outermost first: the
  // path from the flow's bottom frame to the running one (a wait's chain).
  const void* joins[max_joins]{};
  std::uint32_t join_depth = 0;
  // The record the flow's last wait was charged to in its innermost block,
  // with what found it: a wait at the same await, in a block of the same
  // site with no join since it opened, on a thread whose buffer has serial
  // `memo_buffer`, is charged to it without the key and the table (0: none).
  std::uint32_t memo_site = 0;
  const void* memo_location = nullptr;
  const std::string_view* memo_type = nullptr;
  wait_record* memo_record = nullptr;
  std::uint64_t memo_buffer = 0;
  bool suspended = false;
  bool destroying = false; // its suspended frames are being destroyed (blocks count as abandoned)
  bool is_thread = false;  // a thread's own context
};

/// Makes `c.far`; false without memory (cold: once per context that nests
/// deeper than near_frames).
bool grow_frames(context& c) noexcept;
/// Whether a block opening at `depth` of `c` gets a frame (making the deep
/// ones when first needed).
[[gnu::always_inline]] inline bool has_frame(context& c, std::uint32_t depth) noexcept {
  return depth < near_frames || (depth < max_depth && (c.far != nullptr || grow_frames(c)));
}

/// Pushes the frame of a block (or timed await) opening now in `c` with
/// start `serial`: its index, or max_depth when it gets none (too deep).
[[gnu::always_inline]] inline std::uint32_t push_frame(context& c, profiler_core* core, std::uint32_t site,
                                                       std::uint64_t serial) noexcept {
  const std::uint32_t d = c.depth;
  if (!has_frame(c, d)) [[unlikely]]
    return max_depth;
  frame_entry& f = c.frame(d);
  f.serial.store(serial, std::memory_order_relaxed);
  f.core = core;
  f.site = site;
  f.join_depth = c.join_depth;
  f.child_ns = 0;
  c.depth = d + 1;
  return d;
}

/// A context from the pool, reset (never freed: blocks may refer to it after
/// its flow ended). Cold: called once per flow.
export context* acquire_context();
/// Returns a context to the pool once its flow has ended.
export void release_context(context* c) noexcept;

/// What happened to a flow between two points: counters taken at a block's
/// open and subtracted at its close.
struct flow_mark { // no default member initializers: an inert Block leaves it unwritten
  std::uint64_t suspended_ns;
  std::uint64_t suspensions;
  std::uint64_t migrations;
  inline static flow_mark of(const context& c) noexcept { return {c.suspended_ns, c.suspensions, c.migrations}; }
  inline flow_mark since(const flow_mark& open) const noexcept {
    return {suspended_ns - open.suspended_ns, suspensions - open.suspensions, migrations - open.migrations};
  }
};

/// The flow running on this thread; null until the thread's first block.
inline constinit thread_local context* current_context_ptr = nullptr;
/// Gives the calling thread its own context (cold, once per thread).
context& init_thread_context() noexcept;

inline context& current_context() noexcept {
  context* c = current_context_ptr;
  if (c == nullptr) [[unlikely]]
    return init_thread_context();
  return *c;
}

struct buffer_cache {
  std::uint64_t core_id = 0;
  thread_buffer* buffer = nullptr;
};
inline constinit thread_local buffer_cache last_buffer{};

/// Finds or creates this thread's buffer for `core` (locks the core once per
/// thread and profiler).
thread_buffer& find_buffer_slow(profiler_core& core);

/// This thread's buffer for `core`. Hot path: a TLS compare, no lock.
inline thread_buffer& buffer_for(profiler_core& core) {
  const buffer_cache c = last_buffer;
  if (c.core_id == core.id) [[likely]]
    return *c.buffer;
  return find_buffer_slow(core);
}

/// As find_buffer_slow, for the recording paths: null when there is no
/// memory for the buffer (the record is dropped and counted, never thrown).
thread_buffer* find_buffer_nothrow(profiler_core& core) noexcept;

/// Counts a record dropped for want of memory (cold).
void note_no_memory(profiler_core& core) noexcept;

/// This thread's buffer for `core`; null without memory.
inline thread_buffer* current_buffer(profiler_core& core) noexcept {
  const buffer_cache c = last_buffer;
  return c.core_id == core.id ? c.buffer : find_buffer_nothrow(core);
}

/// Moves a slot to interval `now`: seals its values for the reader of the
/// interval that ended and starts empty. Cold: once per slot and interval.
slot_dir* begin_interval(thread_buffer& buf, slot& s, std::uint32_t now) noexcept;

/// Opens a slot for writing: makes the sequence odd, then reads the
/// profiler's interval. The order matters to take_results(), which publishes
/// a new interval and then makes every thread's pending stores visible (a
/// process-wide barrier, see issue_barrier): a record either shows an odd
/// sequence to the reader, which waits for it, or sees the new interval. On
/// this side a compiler barrier is enough, so the hot path has no fence
/// instruction. Returns the slot's directory for this interval (switching the
/// slot over if the interval changed); null without memory.
inline slot_dir* open_slot(profiler_core& core, thread_buffer& buf, slot& s, std::uint32_t seq) noexcept {
  s.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  const std::uint32_t now = core.interval.load(std::memory_order_relaxed);
  slot_dir* d = s.dir.load(std::memory_order_relaxed);
  if (s.interval.load(std::memory_order_relaxed) != now) [[unlikely]]
    d = begin_interval(buf, s, now);
  return d;
}

/// Counts one sample in a directory's pages when the page is there and not
/// full; false sends the caller to add_sample_slow.
inline bool add_sample_fast(slot_dir& d, std::uint64_t ns) noexcept {
  const unsigned b = latency_histogram::bucket_of(ns);
  const unsigned octave = b / page_buckets;
  const std::uint64_t e = d.pages[octave % dir_entries].load(std::memory_order_relaxed);
  if ((e >> 55) != std::uint64_t{octave + 1} << 1) return false; // another octave, or a wide page
  auto& counter = reinterpret_cast<narrow_page*>(e & page_address)->n[b % page_buckets];
  const std::uint32_t c = counter.load(std::memory_order_relaxed);
  if (c == UINT32_MAX) return false;
  counter.store(c + 1, std::memory_order_relaxed);
  return true;
}
/// The rest of add_sample: probing, a new page, a page turning wide. False
/// without memory.
bool add_sample_slow(thread_buffer& buf, slot_dir& d, std::uint64_t ns) noexcept;

/// The cold part of a record: bytes, suspensions, callers after the first.
void record_cold(profiler_core& core, thread_buffer& buf, slot_dir& d, std::uint64_t ns, std::uint64_t bytes,
                 const flow_mark& flow, std::uint32_t caller_tag) noexcept;

/// The identity of the pseudo-await "other flows ran inside this flow's run"
/// (a child started inline): a wait location no co_await has.
inline constexpr char inline_run_marker = 0;
/// Registers the wait site of block `block` for a wait whose chain is the
/// joins `joins[0..n)` (outermost first) and then the await `location` (an
/// await_key, inline_run_marker's address, or null: unknown) of type `type`
/// (may be null), with the sites of its chain's prefixes, under the core's
/// lock; invalid_site when there is no room.
std::uint32_t register_wait_site(profiler_core& core, std::uint32_t block, const void* const* joins, std::uint32_t n,
                                 const void* location, const std::string_view* type);

/// Registers a call site (or finds it) under the core's lock; invalid_site
/// when the track or name is invalid (a diagnostic is kept in the results).
std::uint32_t register_site(profiler_core& core, int track, std::string_view name, const char* file, std::uint32_t line,
                            std::uint32_t column, const char* function, const std::string** registered_name,
                            const void* location = nullptr);

/// A call site registered before (by any thread), found without a lock;
/// invalid_site if it never was.
inline std::uint32_t find_link(const profiler_core& core, const void* location, int track, std::string_view name,
                               const std::string** registered_name) noexcept {
  const site_table* t = core.links.load(std::memory_order_acquire);
  if (t == nullptr) return invalid_site;
  for (std::size_t i = link_hash(location, track, name) & t->mask;; i = (i + 1) & t->mask) {
    const site_link* l = t->slots[i].load(std::memory_order_acquire);
    if (l == nullptr) return invalid_site;
    if (l->location == location && l->track == track && l->name->size() == name.size() &&
        std::memcmp(l->name->data(), name.data(), name.size()) == 0) {
      *registered_name = l->name;
      return l->site;
    }
  }
}

/// A name's first and last eight bytes (overlapping when it is shorter
/// than 16; for fewer than eight, its first and last four, or its bytes
/// 0, n/2 and n-1): with the length, the whole name when it is at most 16
/// bytes long.
struct name_key {
  std::uint64_t head = 0, tail = 0;
};
[[gnu::always_inline]] inline name_key key_of(std::string_view name) noexcept {
  const char* p = name.data();
  const std::size_t n = name.size();
  name_key k;
  if (n >= 8) {
    std::memcpy(&k.head, p, 8);
    std::memcpy(&k.tail, p + n - 8, 8);
  } else if (n >= 4) {
    std::uint32_t first = 0, last = 0;
    std::memcpy(&first, p, 4);
    std::memcpy(&last, p + n - 4, 4);
    k.head = first | std::uint64_t{last} << 32;
  } else if (n != 0) {
    k.head = std::uint64_t{static_cast<unsigned char>(p[0])} |
             std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 |
             std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16;
  }
  return k;
}

/// Where a named call site goes in a thread's cache: hashed by length and
/// key, and a name longer than 16 bytes by the rest of its text too (names
/// like "/users/17/profile" differ only in the middle). One call site often
/// opens blocks of many names ("hot_site_1", "hot_site_2", ...), which
/// differ in their last bytes, the top bits of `tail`: the folds before the
/// multiplies bring them down, so that every bit of the result depends on
/// them (both buckets of a site are taken from its top bits; see
/// second_bucket).
[[gnu::always_inline]] inline std::uint64_t cache_hash(const void* location, int track, std::string_view name,
                                                       name_key k) noexcept {
  const std::uint64_t key =
      reinterpret_cast<std::uintptr_t>(location) + (std::uint64_t{static_cast<unsigned>(track)} << 48) + name.size();
  std::uint64_t x = ((key ^ k.head) * 0xC2B2AE3D27D4EB4Full) ^ k.tail;
  for (std::size_t at = 8; at + 8 < name.size(); at += 8) { // the middle of a longer name, eight bytes a step
    std::uint64_t word;
    std::memcpy(&word, name.data() + at, 8);
    x ^= x >> 32;
    x = (x * 0xC2B2AE3D27D4EB4Full) ^ word;
  }
  x ^= x >> 32;
  return x * 0x9E3779B97F4A7C15ull;
}

/// Where a call site whose name is immutable text goes: found by the text's
/// address, not its content.
inline std::uint64_t literal_hash(const void* location, int track, const char* text) noexcept {
  return (reinterpret_cast<std::uintptr_t>(location) ^ (reinterpret_cast<std::uintptr_t>(text) << 16) ^
          static_cast<unsigned>(track)) *
         0x9E3779B97F4A7C15ull;
}

/// A site's second bucket in the cache, tried when its first (the hash's
/// top bits) holds two other sites: the bits below those, never the first
/// bucket itself. Two buckets of two entries per site, a site moved to its
/// other bucket to make room (src/core/record.cpp, site_for_miss): a thread that
/// alternates among half as many sites as the cache holds finds them all in
/// it (with one slot per site, up to a fifth of them would evict each other
/// on every pass: a model of both in docs/performance.md).
inline std::size_t second_bucket(std::uint64_t hash, std::uint32_t shift) noexcept {
  const std::uint32_t bits = 64 - shift;
  const std::size_t first = hash >> shift;
  const std::size_t second = (hash >> (shift - bits)) & ((std::size_t{1} << bits) - 1);
  return second == first ? second ^ 1 : second;
}

/// The shape of a named site's cache entry; a name too long to cache has a
/// shape no entry holds.
inline std::uint64_t shape_of(int track, std::size_t length) noexcept {
  return std::uint64_t{static_cast<unsigned>(track)} | std::uint64_t{length} << 8;
}

/// The rest of a call site's look-up once the first bucket of its cache
/// holds other sites (cold, out of line): the second bucket, then the
/// profiler's table of sites (no lock), then registration (the lock); the
/// site found is put in the cache. `literal` is the immutable text the block
/// was opened with (compared by address; `name` is then that array, of its
/// full capacity), or null (compared by content).
std::uint32_t site_for_miss(thread_buffer& buf, profiler_core& core, std::uint64_t hash, const void* location,
                            int track, std::string_view name, const char* literal, const char* file, std::uint32_t line,
                            std::uint32_t column, const char* function);

/// Whether cache entry `e` holds the named call site (location, track, name
/// with key `k`): compared by content, so a reused buffer with new text is a
/// new site. Only a name longer than 16 bytes is read beyond its key.
[[gnu::always_inline]] inline bool holds(const thread_buffer::cache_entry& e, const void* location, int track,
                                         std::string_view name, name_key k) noexcept {
  if (e.location != location || e.head != k.head || e.shape != shape_of(track, name.size())) return false;
  if (name.size() <= 16) return e.tail == k.tail;
  // The registered text (owned by the core, never freed), one pointer away.
  const auto* registered = reinterpret_cast<const char*>(static_cast<std::uintptr_t>(e.tail));
  if (registered == nullptr) return false; // (a literal entry's shape is that of a name of literal_length bytes)
  const std::size_t n = name.size();
  if (n > 32) return std::memcmp(registered + 8, name.data() + 8, n - 8) == 0;
  // Up to 32 bytes: the words at 8, at 16 or n - 8, and at n - 8 cover the
  // rest of the name, compared without a call.
  const auto differ = [&](std::size_t at) {
    std::uint64_t a, b;
    std::memcpy(&a, registered + at, 8);
    std::memcpy(&b, name.data() + at, 8);
    return a ^ b;
  };
  return (differ(8) | differ(n < 24 ? n - 8 : 16) | differ(n - 8)) == 0;
}

/// Whether cache entry `e` holds the call site found by the address of its
/// immutable text.
[[gnu::always_inline]] inline bool holds_literal(const thread_buffer::cache_entry& e, const void* location, int track,
                                                 const char* text) noexcept {
  return e.location == location && e.head == reinterpret_cast<std::uintptr_t>(text) &&
         e.shape == shape_of(track, thread_buffer::literal_length);
}

/// The site id for a named call site, through the thread's cache.
[[gnu::always_inline]] inline std::uint32_t site_for(thread_buffer& buf, profiler_core& core, const void* location,
                                                     int track, std::string_view name, const char* file,
                                                     std::uint32_t line, std::uint32_t column, const char* function) {
  const name_key k = key_of(name);
  const std::uint64_t h = cache_hash(location, track, name, k);
  const thread_buffer::cache_entry* bucket = buf.cache + (h >> buf.cache_shift) * 2;
  if (holds(bucket[0], location, track, name, k)) [[likely]]
    return bucket[0].site;
  if (holds(bucket[1], location, track, name, k)) [[likely]]
    return bucket[1].site;
  return site_for_miss(buf, core, h, location, track, name, nullptr, file, line, column, function);
}

/// The site id for a call site whose name is immutable text (a string
/// literal or a const array): compared by address, no memcmp. Always
/// inlined: the caller lays it out of line, as the unlikely branch of the
/// switch, where clang would otherwise leave it a call.
[[gnu::always_inline]] inline std::uint32_t site_for_literal(thread_buffer& buf, profiler_core& core,
                                                             const void* location, int track, const char* text,
                                                             std::size_t capacity, const char* file, std::uint32_t line,
                                                             std::uint32_t column, const char* function) {
  const std::uint64_t h = literal_hash(location, track, text);
  const thread_buffer::cache_entry* bucket = buf.cache + (h >> buf.cache_shift) * 2;
  if (holds_literal(bucket[0], location, track, text)) [[likely]]
    return bucket[0].site;
  if (holds_literal(bucket[1], location, track, text)) [[likely]]
    return bucket[1].site;
  return site_for_miss(buf, core, h, location, track, std::string_view(text, capacity), text, file, line, column,
                       function);
}

/// Appends a timeline event to the calling thread's ring for `core` (cold:
/// only while capture is on).
void timeline_append(profiler_core& core, timeline_kind kind, std::uint32_t site, std::uint64_t start,
                     std::uint64_t end, std::uint64_t flow) noexcept;

/// Adds one record to the calling thread's slot for `site` (and, while the
/// timeline capture is on and the times are known, a block event).
/// Hot path: never locks; allocates (from the thread's arena) only on the
/// site's first record in this thread and in a histogram octave's first.
inline void record(profiler_core& core, std::uint32_t site, std::uint64_t ns, std::uint64_t child_ns,
                   std::uint64_t bytes, std::uint32_t parent_site, const flow_mark& flow = {},
                   std::uint64_t start_ticks = 0, std::uint64_t end_ticks = 0, std::uint64_t flow_id = 0) {
  if (core.dead.load(std::memory_order_relaxed)) [[unlikely]]
    return; // its profiler is gone
  if (end_ticks != 0 && core.timeline_on.load(std::memory_order_relaxed)) [[unlikely]]
    timeline_append(core, timeline_kind::block, site, start_ticks, end_ticks, flow_id);
  const buffer_cache cached = last_buffer;
  thread_buffer* buf = cached.core_id == core.id ? cached.buffer : find_buffer_nothrow(core);
  if (buf == nullptr) [[unlikely]]
    return note_no_memory(core);
  slot* sp = buf->slot_for(site);
  if (sp == nullptr) [[unlikely]]
    return note_no_memory(core);
  slot& s = *sp;
  const std::uint32_t seq = s.seq.load(std::memory_order_relaxed);
  slot_dir* d = open_slot(core, *buf, s, seq);
  if (d == nullptr) [[unlikely]] {
    s.seq.store(seq + 2, std::memory_order_release);
    return note_no_memory(core);
  }
  count_sample(s, ns);
  bump(s.self_ns, ns > child_ns ? ns - child_ns : 0);
  // Caller tags: 0 marks none yet, UINT32_MAX top level, else parent + 1. The
  // interval's first caller is counted by the slot's own hits and time.
  const std::uint32_t tag = parent_site == no_parent ? UINT32_MAX : parent_site + 1;
  std::uint32_t first = d->first_caller.load(std::memory_order_relaxed);
  if (first == 0) [[unlikely]] {
    d->first_caller.store(tag, std::memory_order_relaxed);
    first = tag;
  }
  if ((bytes | flow.suspended_ns | flow.suspensions | flow.migrations) != 0 || first != tag) [[unlikely]]
    record_cold(core, *buf, *d, ns, bytes, flow, first != tag ? tag : 0);
  const std::uint64_t pending = s.pending_ns.load(std::memory_order_relaxed);
  if (pending != no_sample && !add_sample_fast(*d, pending)) [[unlikely]]
    if (!add_sample_slow(*buf, *d, pending)) note_no_memory(core);
  s.pending_ns.store(ns, std::memory_order_relaxed);
  s.seq.store(seq + 2, std::memory_order_release);
}

/// A fresh id for a flow or an arrow.
std::uint64_t next_timeline_id() noexcept;

/// Counts a block that never closed: its coroutine was destroyed while
/// suspended. It is not a hit; its time is unknown.
void record_abandoned(profiler_core& core, std::uint32_t site);

/// White-box checks of internals that importers cannot name (the tests).
namespace testing {
/// What a page held after `ns` was recorded UINT32_MAX + 2 times: it is
/// counted to UINT32_MAX - 1 directly in its 32-bit page, then recorded
/// through the hot and cold paths until the page has turned 64-bit.
export struct page_widening {
  bool wide = false;           ///< the page is 64-bit now
  bool fast_took_last = false; ///< the hot path counted up to UINT32_MAX
  bool fast_refused = false;   ///< ... and then left the rest to the cold path
  std::uint64_t count = 0;     ///< the bucket's count, as a reader sees it
  std::uint64_t total = 0;     ///< all counts of the histogram
};
export page_widening widen_a_page(std::uint64_t ns);
/// The call-site cache of the calling thread's most recently used buffer.
export struct site_cache_use {
  std::uint32_t size = 0; ///< entries now
  std::uint32_t max = 0;  ///< entries it may grow to
  std::size_t held = 0;   ///< entries holding a site
};
export site_cache_use site_cache_of_calling_thread();
/// Whether the cache entry a thread makes for a site named `registered`
/// holds a look-up of `name` at the same call site and track: the
/// comparison a cache hit makes, without the hash that picks the bucket.
export bool cache_entry_holds(std::string_view registered, std::string_view name);
/// How many threads the last merge_buffers used.
inline std::atomic<unsigned> merge_threads_used{0};
/// ... as the tests read it (they check the split ran).
export inline unsigned last_merge_threads() noexcept { return merge_threads_used.load(std::memory_order_relaxed); }
} // namespace testing

/// From this many live (thread, site) slots on, a read is split among up to
/// four threads (merge_buffers, src/core/aggregate.cpp).
inline constexpr std::uint64_t parallel_merge_slots = std::uint64_t{1} << 16;
/// Set by testing::use_barrier_by_protection: the fallback, where membarrier is available.
inline std::atomic<bool> barrier_by_protection{false};

namespace testing {
/// Bounds the tests check against.
export constexpr std::size_t exited_entries_kept() noexcept { return max_exited_entries; }
export constexpr std::size_t exited_timelines_kept() noexcept { return max_exited_timelines; }
export constexpr std::uint64_t slots_for_a_parallel_merge() noexcept { return parallel_merge_slots; }
/// Makes issue_barrier use its page-protection fallback (true) or not.
export inline void use_barrier_by_protection(bool on) noexcept {
  barrier_by_protection.store(on, std::memory_order_relaxed);
}
} // namespace testing

} // namespace stichotrope::detail
