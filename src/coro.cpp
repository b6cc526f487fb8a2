module;
#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <new>
#include <utility>
#include <vector>
#include <cstdlib>
#include <sys/mman.h>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {

namespace {

/// Contexts are pooled and never freed: a block or awaiter that outlives its
/// flow may still compare against, or mark, a frame of its old context. The
/// free list and every context stay reachable from this never-destroyed
/// object (so leak checkers see no leak and static destruction never runs).
///
/// Contexts are made in slabs, not one allocation each (docs/performance.md,
/// "Waits and many coroutines"): 16, doubling until a slab fills 2 MiB, then
/// 2 MiB each, aligned and advised as a huge page. A program starting
/// 100,000 coroutines at once otherwise spends more in malloc and page
/// faults for contexts than for its own coroutine frames.
struct context_pool {
  std::mutex mutex;
  std::vector<context*> free;  // capacity: every context made, so release never allocates
  std::vector<void*> slabs;    // every context ever made: all stay reachable
  std::size_t made = 0;        // contexts in all slabs
  std::uint32_t slab_size = 0; // contexts in the newest slab
  std::uint32_t slab_used = 0; // of which handed out
};

constexpr std::size_t huge_page = std::size_t{2} << 20;
constexpr std::uint32_t huge_slab = huge_page / sizeof(context);

/// `n` fresh contexts in one allocation.
context* make_slab(std::uint32_t n) {
  const bool huge = n == huge_slab;
  const std::size_t align = huge ? huge_page : 64;
  const std::size_t bytes = (std::size_t{n} * sizeof(context) + align - 1) / align * align;
  void* mem = std::aligned_alloc(align, bytes);
  if (mem == nullptr) throw std::bad_alloc();
  if (huge) ::madvise(mem, bytes, MADV_HUGEPAGE); // a hint: without it (or THP off) small pages
  auto* slab = static_cast<context*>(mem);
  for (std::uint32_t i = 0; i < n; ++i) new (slab + i) context();
  return slab;
}
context_pool& pool() {
  static context_pool* p = new context_pool;
  return *p;
}

/// Returns the thread's own context to the pool when the thread ends.
constinit thread_local bool own_context_gone = false;
struct thread_context_owner {
  context* ctx = nullptr;
  ~thread_context_owner() {
    own_context_gone = true;
    if (ctx == nullptr) return;
    if (current_context_ptr == ctx) current_context_ptr = nullptr;
    release_context(std::exchange(ctx, nullptr));
  }
};
thread_local thread_context_owner own_context;

thread_local const void* suspending_awaiter = nullptr;

/// A thread that cannot get a context from the pool (no memory) nests in
/// this one, its own: blocks still nest and record. (A block moved off such a
/// thread and closed after the thread ended would mark freed storage: that
/// takes running out of memory, moving blocks away and the thread ending.)
constinit thread_local context no_memory_context{};

context& fallback_context() noexcept {
  no_memory_context.is_thread = true;
  current_context_ptr = &no_memory_context;
  return no_memory_context;
}

/// The profiler that draws this flow's suspensions: that of its innermost
/// open block, when its timeline capture is on.
profiler_core* drawing(const context& c) noexcept {
  if (c.depth == 0) return nullptr;
  profiler_core* core = c.frame(c.depth - 1).core;
  if (core == nullptr || core->dead.load(std::memory_order_relaxed)) return nullptr;
  return core->timeline_on.load(std::memory_order_relaxed) ? core : nullptr;
}

/// Pops the closed frames on top of the stack.
void pop_holes(context& c) noexcept {
  while (c.depth > 0 && is_hole(c.frame(c.depth - 1))) --c.depth;
}

/// The nearest open frame below `depth`, or max_depth.
std::uint32_t open_below(const context& c, std::uint32_t depth) noexcept {
  for (std::uint32_t d = depth; d > 0; --d)
    if (!is_hole(c.frame(d - 1))) return d - 1;
  return max_depth;
}

} // namespace

const void* this_thread_id() noexcept { return &own_context; }

context* acquire_context() {
  context* c = nullptr;
  {
    context_pool& p = pool();
    std::lock_guard lock(p.mutex);
    if (!p.free.empty()) {
      c = p.free.back();
      p.free.pop_back();
    } else {
      if (p.slab_used == p.slab_size) {
        const std::uint32_t size = p.slab_size == 0 ? 16 : std::min<std::uint32_t>(p.slab_size * 2, huge_slab);
        if (p.made + size > p.free.capacity()) p.free.reserve(std::max(p.made + size, 2 * p.free.capacity()));
        p.slabs.reserve(p.slabs.size() + 1);
        p.slabs.push_back(make_slab(size)); // fresh: nothing to reset
        p.made += size;
        p.slab_size = size;
        p.slab_used = 0;
      }
      return static_cast<context*>(p.slabs.back()) + p.slab_used++;
    }
  }
  c->depth = 0;
  c->active = 0;
  c->suspended_ns = c->suspensions = c->migrations = c->suspend_begin = c->interrupted_at = 0;
  c->thread = nullptr;
  c->saved = c->destroy_saved = nullptr;
  c->id = c->arrow = 0;
  c->wait_location = nullptr;
  c->wait_type = nullptr;
  c->join_depth = 0;
  c->memo_buffer = 0;
  c->suspended = c->destroying = c->is_thread = false;
  return c;
}

bool grow_frames(context& c) noexcept {
  // Kept with the context when it returns to the pool (reachable from it).
  c.far = new (std::nothrow) frame_entry[max_depth - near_frames];
  return c.far != nullptr;
}

void release_context(context* c) noexcept {
  if (c == nullptr) return;
  context_pool& p = pool();
  std::lock_guard lock(p.mutex);
  p.free.push_back(c); // capacity reserved when it was made
}

context& init_thread_context() noexcept {
  if (own_context_gone) {
    // A block opened while the thread's storage is torn down (by another
    // thread_local's destructor): a context of its own, never returned.
    context* late = nullptr;
    try {
      late = acquire_context();
    } catch (...) {
      return fallback_context();
    }
    late->is_thread = true;
    current_context_ptr = late;
    return *late;
  }
  context* c = own_context.ctx;
  if (c == nullptr) {
    try {
      c = acquire_context();
    } catch (...) {
      return fallback_context();
    }
    c->is_thread = true;
    own_context.ctx = c;
  }
  current_context_ptr = c;
  return *c;
}

namespace {

/// Another flow starts running inside the run of `previous` on this thread
/// (Asio starts a co_spawned coroutine inline; a handler of another flow may
/// be dispatched inside this one's): that time is not `previous`'s own.
void interrupt(context* previous, const context& c) noexcept {
  if (previous != nullptr && previous != &c && !previous->is_thread && previous->active > 0 &&
      previous->interrupted_at == 0)
    previous->interrupted_at = now_ticks();
}

/// `previous` is current again: the time another flow ran inside it counts
/// as its suspended time (not as a suspension).
void uninterrupt(context* previous) noexcept {
  if (previous != nullptr && previous->interrupted_at != 0) {
    const std::uint64_t ns = ticks_to_ns(previous->interrupted_at, now_ticks());
    previous->suspended_ns += ns;
    previous->interrupted_at = 0;
    // A wait of its own kind: the await it is "in" is the inline run.
    const void* location = std::exchange(previous->wait_location, &inline_run_marker);
    const std::string_view* type = std::exchange(previous->wait_type, nullptr);
    charge_waits(*previous, ns, false);
    previous->wait_location = location;
    previous->wait_type = type;
  }
}

/// Runs of a flow: enter_flow makes `c` current and returns what was current
/// before, which leave_flow restores. Runs may nest (an executor may run a
/// flow's handler inside another of its handlers); the flow is suspended when
/// its outermost run ends.
context* enter_flow(context& c) noexcept {
  context* previous = current_context_ptr;
  interrupt(previous, c);
  current_context_ptr = &c;
  const void* here = &own_context;
  if (c.id == 0) c.id = next_timeline_id();
  if (c.active++ == 0) {
    if (c.suspended) {
      const std::uint64_t now = now_ticks();
      if (c.arrow != 0) {
        if (profiler_core* core = drawing(c))
          timeline_append(*core, timeline_kind::resume, no_parent, now, c.arrow, c.id);
        c.arrow = 0;
      }
      const std::uint64_t ns = ticks_to_ns(c.suspend_begin, now);
      c.suspended_ns += ns;
      ++c.suspensions;
      const bool migrated = c.thread != nullptr && c.thread != here;
      if (migrated) ++c.migrations;
      c.suspended = false;
      charge_waits(c, ns, migrated);
      c.wait_location = nullptr; // the next suspension says what it waits on
      c.wait_type = nullptr;
    }
    c.thread = here;
  }
  return previous;
}

void leave_flow(context& c, context* previous) noexcept {
  current_context_ptr = previous;
  uninterrupt(previous);
  if (c.active > 0 && --c.active == 0) {
    c.thread = &own_context;
    c.suspended = true;
    c.suspend_begin = now_ticks();
    if (profiler_core* core = drawing(c)) {
      c.arrow = next_timeline_id();
      timeline_append(*core, timeline_kind::suspend, current_wait_site(c, *core), c.suspend_begin, c.arrow, c.id);
    } // last: once suspended, another thread may resume the flow
  }
}

} // namespace

void resume_flow(context& c) noexcept {
  if (c.active > 0 && current_context_ptr == &c) return; // already running here (a task joining its chain)
  c.saved = enter_flow(c);
}

void resume_flow_uncounted(context& c) noexcept {
  if (c.active > 0 && current_context_ptr == &c) return;
  if (c.suspended && c.active == 0) {
    // Undo the suspension: no time, no count, no arrow.
    c.suspended = false;
    c.arrow = 0;
    c.suspend_begin = now_ticks();
    c.saved = current_context_ptr;
    interrupt(c.saved, c);
    current_context_ptr = &c;
    c.active = 1;
    c.thread = &own_context;
    return;
  }
  c.saved = enter_flow(c);
}

void suspend_flow(context& c) noexcept {
  if (c.active == 0) return;
  context* previous = std::exchange(c.saved, nullptr);
  leave_flow(c, previous);
}

void finish_flow(context& c) noexcept {
  if (c.active == 0) return;
  current_context_ptr = std::exchange(c.saved, nullptr);
  uninterrupt(current_context_ptr);
  c.active = 0;
}

void enter_destroying(context& c) noexcept {
  if (c.destroying) return;
  c.destroying = true;
  c.destroy_saved = current_context_ptr;
  current_context_ptr = &c;
}

void leave_destroying(context& c) noexcept {
  if (!c.destroying) return;
  c.destroying = false;
  current_context_ptr = std::exchange(c.destroy_saved, nullptr);
}

const void* exchange_suspending(const void* flow) noexcept { return std::exchange(suspending_awaiter, flow); }

void continue_flow(context& c) noexcept {
  if (c.active > 0 && current_context_ptr == &c) return;
  if (suspending_awaiter == &c)
    resume_flow_uncounted(c); // resumed inside its own await_suspend
  else
    resume_flow(c);
}

std::uint32_t innermost_open(const context& c) noexcept { return open_below(c, c.depth); }

void close_open(profiler_core& core, context* opened_in, std::uint32_t depth, std::uint32_t site, std::uint64_t start,
                std::uint64_t end, std::uint64_t bytes, flow_mark at_open, std::uint64_t child_ns_extra) noexcept {
  context& ctx = current_context();
  const std::uint64_t ns = ticks_to_ns(start, end);
  if (&ctx == opened_in && depth < max_depth && depth < ctx.depth &&
      ctx.frame(depth).serial.load(std::memory_order_relaxed) == start) {
    // In its own flow, on top or below blocks opened after it and still
    // open (closed out of order: those become its siblings).
    frame_entry& f = ctx.frame(depth);
    if (ctx.suspended) { // its suspended coroutine is being destroyed
      f.serial.store(start | closed_bit, std::memory_order_relaxed);
      pop_holes(ctx);
      record_abandoned(core, site);
      return;
    }
    const std::uint64_t child_ns = f.child_ns + child_ns_extra;
    f.serial.store(start | closed_bit, std::memory_order_relaxed);
    std::uint32_t parent_site = no_parent;
    const std::uint32_t p = open_below(ctx, depth);
    if (p < max_depth) {
      ctx.frame(p).child_ns += ns;
      if (ctx.frame(p).core == &core) parent_site = ctx.frame(p).site;
    }
    pop_holes(ctx);
    record(core, site, ns, child_ns, bytes, parent_site, flow_mark::of(ctx).since(at_open), start, end, ctx.id);
    return;
  }
  if (&ctx == opened_in && depth >= max_depth) {
    // Too deep to have a frame: its flow figures are right, its parent unknown.
    if (ctx.suspended) {
      record_abandoned(core, site);
      return;
    }
    record(core, site, ns, child_ns_extra, bytes, no_parent, flow_mark::of(ctx).since(at_open), start, end, ctx.id);
    record_note(core, site, &slot_ext::too_deep);
    return;
  }
  // Closed outside the flow that opened it: a block moved to another thread
  // or flow, or spanning co_await in a coroutine without a flow. Its wall
  // time is known; its parent, children and suspended time are not, so none
  // is invented. Its frame in the old context is marked closed (the context
  // is never freed; the serial tells whether the frame is still its own).
  if (opened_in != nullptr && depth < max_depth) {
    std::uint64_t expected = start;
    opened_in->frame(depth).serial.compare_exchange_strong(expected, start | closed_bit, std::memory_order_relaxed);
  }
  record(core, site, ns, 0, bytes, no_parent, flow_mark{0, 0, 0}, start, end, ctx.id);
  record_note(core, site, &slot_ext::outside_flow);
}

void abandon_open(profiler_core& core, context* opened_in, std::uint32_t depth, std::uint32_t site,
                  std::uint64_t start) noexcept {
  context& ctx = current_context();
  if (opened_in != nullptr && depth < max_depth) {
    if (&ctx == opened_in) {
      if (depth < ctx.depth && ctx.frame(depth).serial.load(std::memory_order_relaxed) == start) {
        ctx.frame(depth).serial.store(start | closed_bit, std::memory_order_relaxed);
        pop_holes(ctx);
      }
    } else {
      std::uint64_t expected = start;
      opened_in->frame(depth).serial.compare_exchange_strong(expected, start | closed_bit, std::memory_order_relaxed);
    }
  }
  record_abandoned(core, site);
}

} // namespace stichotrope::detail

namespace stichotrope {
bool in_flow() noexcept {
  const detail::context* c = detail::current_context_ptr;
  return c != nullptr && !c->is_thread;
}
} // namespace stichotrope
