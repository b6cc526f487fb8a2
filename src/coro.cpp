module;
#include <cstdint>
module stichotrope;

namespace stichotrope::detail {

const void* this_thread_id() noexcept { return &thread_context; }

context& current_context_fresh() noexcept { return current_context(); }

void resume_flow(context& c) noexcept {
  context* current = current_context_ptr;
  if (current != &c) {
    c.saved = current;
    current_context_ptr = &c;
  }
  const void* here = &thread_context;
  if (c.suspended) {
    c.suspended_ns += ticks_to_ns(c.suspend_begin, now_ticks());
    ++c.suspensions;
    if (c.thread != nullptr && c.thread != here) ++c.migrations;
    c.suspended = false;
  }
  c.thread = here;
}

void suspend_flow(context& c) noexcept {
  if (current_context_ptr == &c) current_context_ptr = c.saved;
  c.saved = nullptr;
  c.thread = &thread_context;
  c.suspended = true;
  c.suspend_begin = now_ticks(); // last: once suspended, another thread may resume the flow
}

void finish_flow(context& c) noexcept {
  if (current_context_ptr == &c) current_context_ptr = c.saved;
  c.saved = nullptr;
}

} // namespace stichotrope::detail
