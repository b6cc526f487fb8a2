module;
#include <cstdint>
#include <utility>
module stichotrope;

namespace stichotrope::detail {

const void* this_thread_id() noexcept { return &thread_context; }

context& current_context_fresh() noexcept { return current_context(); }

context* enter_flow(context& c) noexcept {
  context* previous = current_context_ptr;
  current_context_ptr = &c;
  const void* here = &thread_context;
  if (c.active++ == 0) {
    if (c.suspended) {
      c.suspended_ns += ticks_to_ns(c.suspend_begin, now_ticks());
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
    c.suspend_begin = now_ticks(); // last: once suspended, another thread may resume the flow
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
