module;
#include <atomic>
#include <cstdint>
#include <utility>
module stichotrope;

namespace stichotrope::detail {

const void* this_thread_id() noexcept { return &thread_context; }

namespace {
/// The profiler that draws this flow's suspensions: that of its innermost
/// open block, when its timeline capture is on.
profiler_core* drawing(const context& c) noexcept {
  if (c.top == nullptr || c.top->core == nullptr) return nullptr;
  return c.top->core->timeline_on.load(std::memory_order_relaxed) ? c.top->core : nullptr;
}
} // namespace

context* enter_flow(context& c) noexcept {
  context* previous = current_context_ptr;
  current_context_ptr = &c;
  const void* here = &thread_context;
  if (c.id == 0) c.id = next_timeline_id();
  if (c.active++ == 0) {
    if (c.suspended) {
      const std::uint64_t now = now_ticks();
      if (c.arrow != 0) {
        if (profiler_core* core = drawing(c)) timeline_append(*core, event_kind::resume, 0, now, c.arrow, c.id);
        c.arrow = 0;
      }
      c.suspended_ns += ticks_to_ns(c.suspend_begin, now);
      ++c.suspensions;
      if (c.thread != nullptr && c.thread != here) ++c.migrations;
      c.suspended = false;
    }
    c.thread = here;
  }
  return previous;
}

void leave_flow(context& c, context* previous) noexcept {
  current_context_ptr = previous;
  if (c.active > 0 && --c.active == 0) {
    c.thread = &thread_context;
    c.suspended = true;
    c.suspend_begin = now_ticks();
    if (profiler_core* core = drawing(c)) {
      c.arrow = next_timeline_id();
      timeline_append(*core, event_kind::suspend, 0, c.suspend_begin, c.arrow, c.id);
    } // last: once suspended, another thread may resume the flow
  }
}

void resume_flow(context& c) noexcept {
  if (c.active > 0 && current_context_ptr == &c) return; // already running here (a task joining its chain)
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
  c.active = 0;
}

} // namespace stichotrope::detail

namespace stichotrope {
bool in_flow() noexcept { return detail::current_context_ptr != nullptr; }
} // namespace stichotrope
