// The read side of recording: slots read under their seqlock, per interval,
// summed per call site; the process-wide barrier that take_results() relies on.
module;
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {

bool read_slot(const slot& s, std::uint32_t interval, slot_reading& out) {
  for (;;) {
    const std::uint32_t before = s.seq.load(std::memory_order_acquire);
    if ((before & 1u) != 0) continue; // a record is being written; it takes nanoseconds
    slot_reading r{};
    // Acquire: pairs with the recorder's release store of a new directory, so
    // the directory's construction happens before this read of it.
    const slot_dir* dir = s.dir.load(std::memory_order_acquire);
    bool found = false;
    // The live values and the sealed copy have the same fields.
    auto take = [&r](const auto& from, const slot_dir* d) {
      read_sample_stats(from, r);
      r.self_ns = from.self_ns.load(std::memory_order_relaxed);
      r.pending_ns = from.pending_ns.load(std::memory_order_relaxed);
      r.dir = d;
    };
    if (dir != nullptr) {
      if (s.interval.load(std::memory_order_relaxed) == interval) {
        found = true;
        take(s, dir);
      } else if (const sealed_slot* z = dir->sealed.load(std::memory_order_relaxed);
                 z != nullptr && z->interval.load(std::memory_order_relaxed) == interval) {
        found = true;
        take(*z, z->dir.load(std::memory_order_relaxed));
      }
      if (found) {
        r.first_caller = r.dir->first_caller.load(std::memory_order_relaxed);
        if (const slot_ext* e = r.dir->ext.load(std::memory_order_acquire)) {
          r.bytes = e->bytes.load(std::memory_order_relaxed);
          r.suspended_ns = e->suspended_ns.load(std::memory_order_relaxed);
          r.suspensions = e->suspensions.load(std::memory_order_relaxed);
          r.migrations = e->migrations.load(std::memory_order_relaxed);
          r.abandoned = e->abandoned.load(std::memory_order_relaxed);
          r.outside_flow = e->outside_flow.load(std::memory_order_relaxed);
          r.too_deep = e->too_deep.load(std::memory_order_relaxed);
          r.other_callers = e->other_callers.load(std::memory_order_relaxed);
          r.other_callers_ns = e->other_callers_ns.load(std::memory_order_relaxed);
          for (unsigned i = 0; i < tracked_callers - 1; ++i) {
            r.caller_tag[i] = e->callers[i].parent_plus1.load(std::memory_order_relaxed);
            r.caller_hits[i] = e->callers[i].hits.load(std::memory_order_relaxed);
            r.caller_ns[i] = e->callers[i].total_ns.load(std::memory_order_relaxed);
          }
          r.more_pages = e->more_pages.load(std::memory_order_acquire);
        }
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != before) continue;
    if (!found || (r.hits == 0 && r.abandoned == 0 && r.outside_flow == 0 && r.too_deep == 0)) return false;
    out = r;
    return true;
  }
}

bool read_wait(const wait_record& w, std::uint32_t interval, wait_reading& out) {
  for (;;) {
    const std::uint32_t before = w.seq.load(std::memory_order_acquire);
    if ((before & 1u) != 0) continue; // a wait is being written; it takes nanoseconds
    wait_reading r{};
    bool found = false;
    auto take = [&r](const auto& from, const slot_dir* d, std::uint64_t migrations) {
      read_sample_stats(from, r);
      r.migrations = migrations;
      r.pending_ns = from.pending_ns.load(std::memory_order_relaxed);
      r.octave = from.octave.load(std::memory_order_relaxed);
      for (unsigned i = 0; i < page_buckets; ++i) r.page[i] = from.page.n[i].load(std::memory_order_relaxed);
      r.dir = d;
    };
    // Acquire: pairs with the release stores that published the cold part
    // and its directory (src/core/waits.cpp). A published record always has a
    // cold part (a shared empty one until its own is made).
    const wait_cold* c = w.cold.load(std::memory_order_acquire);
    if (w.interval.load(std::memory_order_relaxed) == interval) {
      found = true;
      if (c != nullptr)
        take(w, c->dir.load(std::memory_order_acquire), c->migrations.load(std::memory_order_relaxed));
      else
        take(w, nullptr, 0);
    } else if (const wait_sealed* z = c != nullptr ? c->sealed.load(std::memory_order_acquire) : nullptr;
               z != nullptr && z->interval.load(std::memory_order_relaxed) == interval) {
      found = true;
      take(*z, z->dir.load(std::memory_order_relaxed), z->migrations.load(std::memory_order_relaxed));
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (w.seq.load(std::memory_order_relaxed) != before) continue;
    if (!found || r.hits == 0) return false;
    out = r;
    return true;
  }
}

namespace {
/// Makes `h` cover buckets [lo, hi] (zeros where it had none).
void cover(latency_histogram& h, unsigned lo, unsigned hi) {
  if (h.counts.empty()) {
    h.first = lo;
    h.counts.assign(hi - lo + 1, 0);
    return;
  }
  if (lo < h.first) {
    h.counts.insert(h.counts.begin(), h.first - lo, 0);
    h.first = lo;
  }
  if (hi - h.first >= h.counts.size()) h.counts.resize(hi - h.first + 1, 0);
}

/// Drops zeros at both ends (the invariant latency_histogram documents).
void trim(latency_histogram& h) {
  std::size_t lo = 0, hi = h.counts.size();
  while (lo < hi && h.counts[lo] == 0) ++lo;
  while (hi > lo && h.counts[hi - 1] == 0) --hi;
  if (lo == hi) {
    h.counts.clear();
    h.first = 0;
    return;
  }
  h.counts.erase(h.counts.begin() + static_cast<std::ptrdiff_t>(hi), h.counts.end());
  h.counts.erase(h.counts.begin(), h.counts.begin() + static_cast<std::ptrdiff_t>(lo));
  h.first += static_cast<unsigned>(lo);
}
} // namespace

void add_pages(const slot_reading& r, latency_histogram& h) {
  // Pages are read outside the seqlock: exact for an interval that ended
  // (nothing writes its directory any more) and for a thread that is not
  // recording; while one records, the few samples written meanwhile may be
  // missed or added, which only percentiles can notice.
  struct page_ref {
    unsigned base;
    std::uint64_t entry;
  };
  page_ref pages[dir_entries + octaves];
  unsigned n = 0, lo = latency_histogram::bucket_count, hi = 0;
  for (const auto& entry : r.dir->pages) {
    const std::uint64_t e = entry.load(std::memory_order_acquire); // a page may be newer than the reading
    if (e == 0) continue;
    pages[n++] = {static_cast<unsigned>((e >> 56) - 1) * page_buckets, e};
  }
  if (r.more_pages != nullptr)
    for (unsigned o = 0; o < octaves; ++o)
      if (const std::uint64_t e = r.more_pages[o].load(std::memory_order_acquire); e != 0)
        pages[n++] = {o * page_buckets, e | page_wide};
  for (unsigned i = 0; i < n; ++i) {
    lo = std::min(lo, pages[i].base);
    hi = std::max(hi, pages[i].base + page_buckets - 1);
  }
  const unsigned pending = r.pending_ns != no_sample ? latency_histogram::bucket_of(r.pending_ns) : 0;
  if (r.pending_ns != no_sample) lo = std::min(lo, pending), hi = std::max(hi, pending);
  if (lo > hi) return;
  cover(h, lo, hi);
  std::uint64_t* counts = h.counts.data() - h.first; // indexed by bucket
  for (unsigned i = 0; i < n; ++i) {
    const unsigned base = pages[i].base;
    if ((pages[i].entry & page_wide) != 0) {
      const auto* p = reinterpret_cast<const wide_page*>(pages[i].entry & page_address);
      for (unsigned k = 0; k < page_buckets; ++k) counts[base + k] += p->n[k].load(std::memory_order_relaxed);
    } else {
      const auto* p = reinterpret_cast<const narrow_page*>(pages[i].entry & page_address);
      for (unsigned k = 0; k < page_buckets; ++k) counts[base + k] += p->n[k].load(std::memory_order_relaxed);
    }
  }
  if (r.pending_ns != no_sample) counts[pending] += 1;
}

namespace {
void add_caller(BlockResults& b, std::uint32_t tag, std::uint64_t hits, std::uint64_t ns) {
  if (tag == 0 || hits == 0) return;
  const std::uint32_t parent = tag == UINT32_MAX ? no_parent : tag - 1;
  auto it = std::lower_bound(b.callers.begin(), b.callers.end(), parent,
                             [](const caller_stats& c, std::uint32_t id) { return c.parent_site_id < id; });
  if (it != b.callers.end() && it->parent_site_id == parent) {
    it->hit_count += hits;
    it->total_time_ns += ns;
  } else {
    b.callers.insert(it, caller_stats{parent, hits, ns});
  }
}
} // namespace

accumulator::accumulator(std::size_t sites) : blocks(sites) {
  for (std::uint32_t id = 0; id < sites; ++id) blocks[id].site_id = id;
}

void add_reading(BlockResults& b, const slot_reading& r) {
  if (r.hits > 0) {
    b.min_time_ns = b.hit_count == 0 ? r.min_ns : std::min(b.min_time_ns, r.min_ns);
    b.max_time_ns = std::max(b.max_time_ns, r.max_ns);
  }
  b.hit_count += r.hits;
  b.total_time_ns += r.total_ns;
  b.self_time_ns += r.self_ns;
  b.bytes += r.bytes;
  b.other_callers_hits += r.other_callers;
  b.suspended_time_ns += r.suspended_ns;
  b.suspensions += r.suspensions;
  b.migrations += r.migrations;
  b.abandoned += r.abandoned;
  b.outside_flow += r.outside_flow;
  b.too_deep += r.too_deep;
  // The interval's first caller has the hits and time the others do not.
  std::uint64_t first_hits = r.hits - std::min(r.hits, r.other_callers);
  std::uint64_t first_ns = r.total_ns - std::min(r.total_ns, r.other_callers_ns);
  for (unsigned i = 0; i < tracked_callers - 1; ++i) {
    if (r.caller_tag[i] == 0) continue;
    add_caller(b, r.caller_tag[i], r.caller_hits[i], r.caller_ns[i]);
    first_hits -= std::min(first_hits, r.caller_hits[i]);
    first_ns -= std::min(first_ns, r.caller_ns[i]);
  }
  add_caller(b, r.first_caller, first_hits, first_ns);
  if (r.hits > 0) add_pages(r, b.histogram);
}

void accumulator::add(std::uint32_t site, const slot_reading& r) { add_reading(blocks[site], r); }
namespace {
/// Adds a wait's reading to its wait site's sums (a wait has no callers and
/// no self time).
void add_wait_reading(BlockResults& b, const wait_reading& r) {
  b.min_time_ns = b.hit_count == 0 ? r.min_ns : std::min(b.min_time_ns, r.min_ns);
  b.max_time_ns = std::max(b.max_time_ns, r.max_ns);
  b.hit_count += r.hits;
  b.total_time_ns += r.total_ns;
  b.migrations += r.migrations;
  if (r.octave != 0) {
    const unsigned base = (r.octave - 1) * page_buckets;
    cover(b.histogram, base, base + page_buckets - 1);
    for (unsigned i = 0; i < page_buckets; ++i) b.histogram.counts[base + i - b.histogram.first] += r.page[i];
  }
  if (r.dir != nullptr) { // the other octaves, read as a slot's pages are
    slot_reading pages{};
    pages.dir = r.dir;
    pages.pending_ns = no_sample;
    if (const slot_ext* e = r.dir->ext.load(std::memory_order_acquire))
      pages.more_pages = e->more_pages.load(std::memory_order_acquire);
    add_pages(pages, b.histogram);
  }
  if (r.pending_ns != no_sample) { // counted in hits, not yet in a page
    const unsigned bucket = latency_histogram::bucket_of(r.pending_ns);
    cover(b.histogram, bucket, bucket);
    ++b.histogram.counts[bucket - b.histogram.first];
  }
}

/// Calls `f(site, reading)` for every wait record of `buf` that holds
/// something of `interval`.
template <class F>
void for_each_wait(const thread_buffer& buf, std::uint32_t interval, F f) {
  // Acquire: pairs with the release stores that published each chunk and
  // each record in it (src/core/waits.cpp), so their keys and sites are set.
  for (const wait_chunk* c = buf.wait_chunks.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    const std::uint32_t n = c->used.load(std::memory_order_acquire);
    for (std::uint32_t i = 0; i < n; ++i) {
      wait_reading r;
      if (read_wait(c->records()[i], interval, r)) f(c->records()[i].site, r);
    }
  }
}
} // namespace

void accumulator::add(const BlockResults& other) { blocks[other.site_id].merge(other); }

std::vector<BlockResults> accumulator::finish() {
  for (auto& b : blocks) trim(b.histogram);
  return std::move(blocks);
}

namespace {
void prefetch_dir(const slot& s) {
  if (const slot_dir* d = s.dir.load(std::memory_order_relaxed)) {
    __builtin_prefetch(d);
    __builtin_prefetch(reinterpret_cast<const char*>(d) + sizeof(slot_dir) - 1); // it may straddle two lines
  }
}

void prefetch_pages(const slot& s) {
  // Reads the directory outside the seqlock: acquire pairs with the release
  // that published it (src/core/record.cpp), so its entries are initialised.
  if (const slot_dir* d = s.dir.load(std::memory_order_acquire))
    for (const auto& entry : d->pages)
      if (const std::uint64_t e = entry.load(std::memory_order_relaxed); e != 0)
        __builtin_prefetch(reinterpret_cast<const void*>(e & page_address));
}

void merge_chunk(accumulator& acc, const slot* chunk, std::uint32_t first_site, std::uint32_t n,
                 std::uint32_t interval) {
  // Memory-bound: a slot, its directory and its pages are four or five cache
  // lines at addresses known only one after the other, so each is asked for
  // ahead of its turn: slots eight steps ahead, directories four, pages two
  // (perf annotate showed the loads of the next directory and of its second
  // line as the two stalls).
  for (std::uint32_t i = 0; i < n && i < 8; ++i) __builtin_prefetch(&chunk[i]);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (i + 8 < n) __builtin_prefetch(&chunk[i + 8]);
    if (i + 4 < n) prefetch_dir(chunk[i + 4]);
    if (i + 2 < n) prefetch_pages(chunk[i + 2]);
    slot_reading r;
    if (read_slot(chunk[i], interval, r)) acc.add(first_site + i, r);
  }
}
} // namespace

namespace {
/// Merges the columns `first`, `first + step`, ... (a column: chunk c of every
/// buffer, the sites [64c, 64c + 64)). Site-major: the sums of 64 sites stay
/// in cache while every thread's slots of them are read (thread-major, the
/// sums of all sites are walked once per thread; docs/performance.md).
void merge_columns(accumulator& acc, const std::vector<std::shared_ptr<thread_buffer>>& buffers, std::uint32_t interval,
                   std::uint32_t first, std::uint32_t step) {
  const auto sites = static_cast<std::uint32_t>(acc.blocks.size());
  for (std::uint32_t c = first; c * chunk_slots < sites; c += step)
    for (const auto& buf : buffers)
      if (const slot* chunk = buf->chunks[c].load(std::memory_order_acquire))
        merge_chunk(acc, chunk, c * chunk_slots, std::min(chunk_slots, sites - c * chunk_slots), interval);
}
} // namespace

void merge_buffers(accumulator& acc, const std::vector<std::shared_ptr<thread_buffer>>& buffers,
                   std::uint32_t interval) {
  const auto sites = static_cast<std::uint32_t>(acc.blocks.size());
  const std::uint32_t columns = (sites + chunk_slots - 1) / chunk_slots;
  const std::uint64_t slots = std::uint64_t{sites} * buffers.size();
  // A large read is memory-bound, one cache miss after another: it is split
  // among up to four threads, each taking every n-th column, so each writes
  // sums of its own sites only (disjoint elements of acc.blocks). The caller
  // holds the profiler's lock for all of them, and joins them before it goes
  // on; recorders are never waited for, as with one reader.
  std::uint32_t threads = 1;
  if (slots >= parallel_merge_slots) { // hardware_concurrency() is a system call: only for a large read
    const unsigned cores = std::thread::hardware_concurrency();
    threads = static_cast<std::uint32_t>(std::min<std::uint64_t>({cores == 0 ? 1 : cores, 4, columns}));
  }
  // Waits first, on this thread (a wait site has records, no slots: the
  // columns below never touch its sums).
  for (const auto& buf : buffers)
    for_each_wait(*buf, interval, [&](std::uint32_t site, const wait_reading& r) {
      if (site < sites) add_wait_reading(acc.blocks[site], r);
    });
  testing::merge_threads_used.store(threads, std::memory_order_relaxed);
  if (threads <= 1) return merge_columns(acc, buffers, interval, 0, 1);
  std::vector<std::exception_ptr> failed(threads);
  auto share = [&](std::uint32_t t) noexcept {
    try {
      merge_columns(acc, buffers, interval, t, threads);
    } catch (...) {
      failed[t] = std::current_exception();
    }
  };
  {
    std::vector<std::jthread> helpers;
    helpers.reserve(threads - 1);
    for (std::uint32_t t = 1; t < threads; ++t) {
      try {
        helpers.emplace_back(share, t);
      } catch (const std::system_error&) { // no thread to be had: this one reads that share too
        share(t);
      }
    }
    share(0);
  } // the helpers are joined here
  for (const auto& e : failed)
    if (e) std::rethrow_exception(e);
}

std::vector<BlockResults> buffer_blocks(const thread_buffer& buf, std::uint32_t sites, std::uint32_t interval) {
  std::vector<BlockResults> out;
  for (std::uint32_t c = 0; c * chunk_slots < sites; ++c) {
    const slot* chunk = buf.chunks[c].load(std::memory_order_acquire);
    if (chunk == nullptr) continue;
    for (std::uint32_t i = 0; i < std::min(chunk_slots, sites - c * chunk_slots); ++i) {
      slot_reading r;
      if (!read_slot(chunk[i], interval, r)) continue;
      BlockResults& b = out.emplace_back();
      b.site_id = c * chunk_slots + i;
      add_reading(b, r);
      trim(b.histogram);
    }
  }
  // Waits: records of different chains may share a wait site (awaits inside
  // the libraries are folded into the program's).
  const std::size_t slots_read = out.size();
  std::unordered_map<std::uint32_t, std::size_t> wait_at; // site -> index in out
  for_each_wait(buf, interval, [&](std::uint32_t site, const wait_reading& r) {
    if (site >= sites) return;
    const auto [it, fresh] = wait_at.try_emplace(site, out.size());
    if (fresh) out.emplace_back().site_id = site;
    add_wait_reading(out[it->second], r);
  });
  for (auto it = out.begin() + static_cast<std::ptrdiff_t>(slots_read); it != out.end(); ++it) trim(it->histogram);
  std::sort(out.begin(), out.end(), [](const BlockResults& a, const BlockResults& b) { return a.site_id < b.site_id; });
  return out;
}

std::vector<BlockResults> used_blocks(std::vector<BlockResults> blocks) {
  std::erase_if(blocks, [](const BlockResults& b) {
    return b.hit_count == 0 && b.abandoned == 0 && b.outside_flow == 0 && b.too_deep == 0;
  });
  return blocks;
}

std::uint64_t buffer_bytes(const thread_buffer& buf) {
  std::uint64_t n = sizeof(thread_buffer) + buf.memory.bytes.load(std::memory_order_relaxed) +
                    buf.wait_bytes.load(std::memory_order_relaxed);
  if (const timeline_ring* t = buf.timeline.load(std::memory_order_acquire))
    n += sizeof(timeline_ring) + t->capacity * sizeof(timeline_event);
  return n;
}

namespace {
/// The fallback barrier: changing a page's protection makes the kernel
/// interrupt every CPU that runs a thread of this process (to flush its
/// TLB), which orders their memory accesses as a fence would.
void protection_barrier() noexcept {
  static std::mutex mutex;
  static void* page = [] {
    void* p = ::mmap(nullptr, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }();
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (page == nullptr) return;
  std::lock_guard lock(mutex);
  const auto size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  static_cast<volatile char*>(page)[0] = 1; // the page must be mapped in for the change to reach other CPUs
  ::mprotect(page, size, PROT_READ);
  ::mprotect(page, size, PROT_READ | PROT_WRITE);
}
} // namespace

void issue_barrier() noexcept {
  static const bool expedited = [] {
    const long commands = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return commands > 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
           ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (expedited && !barrier_by_protection.load(std::memory_order_relaxed) &&
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
    return;
  protection_barrier();
}

} // namespace stichotrope::detail

// Results: every thread's records of an interval merged (get_results,
// take_results), per thread (get_all_thread_data), arranged into tracks with
// their waits (assemble); clear() starts a new interval.
namespace stichotrope::detail {
namespace {

void add_unique(std::vector<std::string>& list, std::string message) {
  if (std::find(list.begin(), list.end(), message) == list.end()) list.push_back(std::move(message));
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

} // namespace

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

} // namespace stichotrope::detail

namespace stichotrope {

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

} // namespace stichotrope
