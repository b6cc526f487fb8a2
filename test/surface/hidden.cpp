// Must not compile: each HIDDEN_CASE names one internal of the module that is
// not part of its surface (test/surface/check.cmake builds every case and
// expects clang to say the declaration is not visible).
import stichotrope;

int main() {
#if HIDDEN_CASE == 1
  stichotrope::detail::profiler_core* core = nullptr; // the profiler's data
  (void)core;
#elif HIDDEN_CASE == 2
  return static_cast<int>(stichotrope::detail::global_enabled.load()); // the switch behind set_global_enabled
#elif HIDDEN_CASE == 3
  stichotrope::detail::thread_buffer* buffer = nullptr; // a thread's slots
  (void)buffer;
#elif HIDDEN_CASE == 4
  return static_cast<int>(stichotrope::detail::current_context().depth); // the flow's frames
#elif HIDDEN_CASE == 5
  return static_cast<int>(sizeof(stichotrope::detail::slot)); // one (thread, site)
#elif HIDDEN_CASE == 6
  stichotrope::detail::close_open; // the out-of-line close
#elif HIDDEN_CASE == 7
  stichotrope::detail::use_tsc = false; // the clock's calibration: no exported mutable state
#elif HIDDEN_CASE == 8
  return stichotrope::fail(stichotrope::errc::io_error, "x").error().message.size(); // the library's own shorthand
#endif
  return 0;
}
