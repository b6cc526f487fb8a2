// The cold side of recording (modules/core.cppm has the hot side): a thread's
// arena, a slot's first record, a new interval, histogram pages, the cold
// statistics. Everything here runs on the recording thread and never locks.
module;
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {

// docs/performance.md "Memory": what one (thread, site) and one thread buffer
// cost (test/stats_test.cpp checks the sizes importers can see).
static_assert(sizeof(slot) == 64);        // hot statistics: one cache line
static_assert(sizeof(slot_dir) == 88);    // eight page entries, cold part, sealed copy, first caller
static_assert(sizeof(narrow_page) == 32); // one octave: eight 32-bit buckets
static_assert(sizeof(wide_page) == 64);
static_assert(sizeof(slot_ext) == 152);
static_assert(sizeof(sealed_slot) == 64);
static_assert(sizeof(thread_buffer) == 18880); // with 256 B of wait table
static_assert(sizeof(wait_record) == 104);     // a (thread, wait site): inline page, cold part made when needed
static_assert(sizeof(wait_sealed) == 96);
static_assert(sizeof(wait_cold) == 24);
static_assert(sizeof(wait_chunk) == 16);
static_assert(chunk_slots * sizeof(slot) == 4096);

arena::~arena() {
  while (blocks != nullptr) {
    void* previous = *static_cast<void**>(blocks);
    ::operator delete(blocks);
    blocks = previous;
  }
}

void* arena::allocate_slow(std::size_t size, std::size_t align) noexcept {
  const std::size_t header = 64; // the link to the previous block, padded to a cache line
  const std::size_t want = size + align + header > block_size ? size + align + header : block_size;
  void* block = ::operator new(want, std::nothrow);
  if (block == nullptr) return nullptr;
  *static_cast<void**>(block) = blocks;
  blocks = block;
  bytes.store(bytes.load(std::memory_order_relaxed) + want, std::memory_order_relaxed);
  next = static_cast<std::byte*>(block) + header;
  end = static_cast<std::byte*>(block) + want;
  return allocate(size, align);
}

namespace {
template <class T>
T* make(arena& a) noexcept {
  void* p = a.allocate(sizeof(T), alignof(T));
  return p == nullptr ? nullptr : new (p) T{};
}

void zero(slot_ext& e) noexcept {
  for (auto* f : {&e.bytes, &e.suspended_ns, &e.suspensions, &e.migrations, &e.abandoned, &e.outside_flow, &e.too_deep,
                  &e.other_callers, &e.other_callers_ns})
    f->store(0, std::memory_order_relaxed);
  for (auto& c : e.callers) {
    c.parent_plus1.store(0, std::memory_order_relaxed);
    c.hits.store(0, std::memory_order_relaxed);
    c.total_ns.store(0, std::memory_order_relaxed);
  }
  if (auto* more = e.more_pages.load(std::memory_order_relaxed))
    for (unsigned o = 0; o < octaves; ++o) {
      auto* page = reinterpret_cast<wide_page*>(more[o].load(std::memory_order_relaxed));
      if (page != nullptr)
        for (auto& n : page->n) n.store(0, std::memory_order_relaxed);
    }
}

/// Turns a narrow page whose counter is full into a wide copy (the narrow
/// page is left as it was: a reader may still hold it).
std::uint64_t widen(thread_buffer& buf, std::uint64_t e) noexcept {
  auto* wide = make<wide_page>(buf.memory);
  if (wide == nullptr) return 0;
  const auto* narrow = reinterpret_cast<const narrow_page*>(e & page_address);
  for (unsigned i = 0; i < page_buckets; ++i)
    wide->n[i].store(narrow->n[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  return (e & ~page_address) | page_wide | reinterpret_cast<std::uintptr_t>(wide);
}

bool count_in(thread_buffer& buf, std::atomic<std::uint64_t>& entry, unsigned bucket) noexcept {
  std::uint64_t e = entry.load(std::memory_order_relaxed);
  if ((e & page_wide) == 0) {
    auto& c = reinterpret_cast<narrow_page*>(e & page_address)->n[bucket % page_buckets];
    const std::uint32_t n = c.load(std::memory_order_relaxed);
    if (n != UINT32_MAX) {
      c.store(n + 1, std::memory_order_relaxed);
      return true;
    }
    e = widen(buf, e);
    if (e == 0) return false;
    entry.store(e, std::memory_order_release);
  }
  bump(reinterpret_cast<wide_page*>(e & page_address)->n[bucket % page_buckets], 1);
  return true;
}
} // namespace

void empty_directory(slot_dir& d) noexcept {
  for (auto& entry : d.pages) {
    const std::uint64_t e = entry.load(std::memory_order_relaxed);
    if (e == 0) continue;
    if ((e & page_wide) != 0) {
      for (auto& n : reinterpret_cast<wide_page*>(e & page_address)->n) n.store(0, std::memory_order_relaxed);
    } else {
      for (auto& n : reinterpret_cast<narrow_page*>(e & page_address)->n) n.store(0, std::memory_order_relaxed);
    }
  }
  if (slot_ext* e = d.ext.load(std::memory_order_relaxed)) zero(*e);
  d.first_caller.store(0, std::memory_order_relaxed);
}

slot* thread_buffer::add_chunk(std::uint32_t index) noexcept {
  void* p = memory.allocate(sizeof(slot) * chunk_slots, alignof(slot));
  if (p == nullptr) return nullptr;
  slot* chunk = new (p) slot[chunk_slots];
  chunks[index].store(chunk, std::memory_order_release);
  return chunk;
}

thread_buffer::~thread_buffer() {
  delete timeline.load(std::memory_order_relaxed);
  for (wait_chunk* c = wait_chunks.load(std::memory_order_relaxed); c != nullptr;) {
    wait_chunk* next = c->next;
    ::operator delete(c); // records are trivially destructible (atomics of integers and pointers)
    c = next;
  }
  if (waits != first_waits.data()) delete[] waits;
}

bool add_sample_slow(thread_buffer& buf, slot_dir& d, std::uint64_t ns) noexcept {
  const unsigned b = latency_histogram::bucket_of(ns);
  const unsigned octave = b / page_buckets;
  const std::uint64_t tag = std::uint64_t{octave + 1} << 56;
  for (unsigned probe = 0; probe < dir_entries; ++probe) {
    auto& entry = d.pages[(octave + probe) % dir_entries];
    const std::uint64_t e = entry.load(std::memory_order_relaxed);
    if ((e & ~(page_wide | page_address)) == tag) return count_in(buf, entry, b);
    if (e == 0) {
      auto* page = make<narrow_page>(buf.memory);
      if (page == nullptr) return false;
      page->n[b % page_buckets].store(1, std::memory_order_relaxed);
      entry.store(tag | reinterpret_cast<std::uintptr_t>(page), std::memory_order_release); // readers follow it
      return true;
    }
  }
  // More octaves than directory entries: the extension holds a page per octave.
  slot_ext* ext = ext_of(buf, d);
  if (ext == nullptr) return false;
  auto* more = ext->more_pages.load(std::memory_order_relaxed);
  if (more == nullptr) {
    void* p = buf.memory.allocate(sizeof(std::atomic<std::uint64_t>) * octaves, alignof(std::atomic<std::uint64_t>));
    if (p == nullptr) return false;
    more = new (p) std::atomic<std::uint64_t>[octaves] {};
    ext->more_pages.store(more, std::memory_order_release);
  }
  auto* page = reinterpret_cast<wide_page*>(more[octave].load(std::memory_order_relaxed));
  if (page == nullptr) {
    page = make<wide_page>(buf.memory);
    if (page == nullptr) return false;
    more[octave].store(reinterpret_cast<std::uintptr_t>(page), std::memory_order_release);
  }
  bump(page->n[b % page_buckets], 1);
  return true;
}

slot_ext* ext_of(thread_buffer& buf, slot_dir& d) noexcept {
  slot_ext* e = d.ext.load(std::memory_order_relaxed);
  if (e == nullptr) {
    e = make<slot_ext>(buf.memory);
    if (e != nullptr) d.ext.store(e, std::memory_order_release);
  }
  return e;
}

void record_cold(profiler_core& core, thread_buffer& buf, slot_dir& d, std::uint64_t ns, std::uint64_t bytes,
                 const flow_mark& flow, std::uint32_t caller_tag) noexcept {
  slot_ext* e = ext_of(buf, d);
  if (e == nullptr) return note_no_memory(core);
  if (bytes != 0) bump(e->bytes, bytes);
  // Suspended time without a suspension is time other flows ran inside this
  // one's run (a child started inline): not this block's active time either.
  if (flow.suspended_ns != 0) bump(e->suspended_ns, flow.suspended_ns < ns ? flow.suspended_ns : ns);
  if (flow.suspensions != 0) bump(e->suspensions, flow.suspensions);
  if (flow.migrations != 0) bump(e->migrations, 1);
  if (caller_tag == 0) return; // the interval's first caller
  for (auto& c : e->callers) {
    const std::uint32_t p = c.parent_plus1.load(std::memory_order_relaxed);
    if (p == caller_tag || p == 0) {
      if (p == 0) c.parent_plus1.store(caller_tag, std::memory_order_relaxed);
      bump(c.hits, 1);
      bump(c.total_ns, ns);
      return;
    }
  }
  bump(e->other_callers, 1);
  bump(e->other_callers_ns, ns);
}

slot_dir* begin_interval(thread_buffer& buf, slot& s, std::uint32_t now) noexcept {
  slot_dir* old = s.dir.load(std::memory_order_relaxed);
  if (old == nullptr) { // the slot's first record
    slot_dir* d = make<slot_dir>(buf.memory);
    if (d == nullptr) return nullptr;
    s.dir.store(d, std::memory_order_release); // prefetching readers follow it outside the seqlock
    s.interval.store(now, std::memory_order_relaxed);
    return d;
  }
  // Seal the ended interval: its values move to the sealed copy and its
  // directory is no longer written (the pending sample travels with the
  // values, so nothing is added to a directory that may be being read). The
  // directory of the interval before, read long since, is emptied and reused.
  sealed_slot* z = old->sealed.load(std::memory_order_relaxed);
  slot_dir* fresh = nullptr;
  if (z == nullptr) {
    z = make<sealed_slot>(buf.memory);
    fresh = make<slot_dir>(buf.memory);
    if (z == nullptr || fresh == nullptr) return nullptr; // both are retried at the next record
  } else {
    fresh = z->dir.load(std::memory_order_relaxed);
    empty_directory(*fresh);
  }
  z->interval.store(s.interval.load(std::memory_order_relaxed), std::memory_order_relaxed);
  move_sample_stats(s, *z);
  move_value(s.self_ns, z->self_ns, 0);
  move_value(s.pending_ns, z->pending_ns, no_sample);
  z->dir.store(old, std::memory_order_relaxed);
  fresh->sealed.store(z, std::memory_order_relaxed);
  s.dir.store(fresh, std::memory_order_release); // as above
  s.interval.store(now, std::memory_order_relaxed);
  return fresh;
}

void record_note(profiler_core& core, std::uint32_t site, std::atomic<std::uint64_t> slot_ext::* counter) {
  if (core.dead.load(std::memory_order_relaxed)) return;
  thread_buffer* buf = current_buffer(core);
  slot* s = buf != nullptr ? buf->slot_for(site) : nullptr;
  if (s == nullptr) return note_no_memory(core);
  const std::uint32_t seq = s->seq.load(std::memory_order_relaxed);
  slot_dir* d = open_slot(core, *buf, *s, seq);
  slot_ext* e = d != nullptr ? ext_of(*buf, *d) : nullptr;
  if (e != nullptr) bump(e->*counter, 1);
  s->seq.store(seq + 2, std::memory_order_release);
  if (e == nullptr) note_no_memory(core);
}

void record_abandoned(profiler_core& core, std::uint32_t site) { record_note(core, site, &slot_ext::abandoned); }

namespace testing {
page_widening widen_a_page(std::uint64_t ns) {
  thread_buffer buf;
  slot_dir dir;
  empty_directory(dir);
  page_widening out;
  if (!add_sample_slow(buf, dir, ns)) return out;
  const unsigned b = latency_histogram::bucket_of(ns);
  const std::uint64_t entry = dir.pages[b / page_buckets % dir_entries].load();
  auto* narrow = reinterpret_cast<narrow_page*>(entry & page_address);
  narrow->n[b % page_buckets].store(UINT32_MAX - 1);
  out.fast_took_last = add_sample_fast(dir, ns); // reaches UINT32_MAX
  out.fast_refused = !add_sample_fast(dir, ns);  // full: the slow path widens
  if (!add_sample_slow(buf, dir, ns) || !add_sample_slow(buf, dir, ns)) return out;
  out.wide = (dir.pages[b / page_buckets % dir_entries].load() & page_wide) != 0;
  slot_reading r{};
  r.dir = &dir;
  r.pending_ns = no_sample;
  latency_histogram h;
  add_pages(r, h);
  out.count = h.count(b);
  out.total = h.total();
  return out;
}
} // namespace testing

} // namespace stichotrope::detail
