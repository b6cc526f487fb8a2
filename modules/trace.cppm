// Timelines for viewers: Chrome trace (Perfetto) and speedscope (src/trace.cpp).
module;
#include "output_headers.hpp"
export module stichotrope:trace;
import :error;
import :results;

export namespace stichotrope {

/// Chrome Trace Event JSON (opens in ui.perfetto.dev and chrome://tracing):
/// "X" slices for blocks of a thread's own flow, async "b"/"e" pairs keyed by
/// flow id for blocks of coroutine flows (one span across threads), small
/// "suspend"/"resume" slices joined by flow arrows ("s"/"f") from the thread
/// that suspended to the one that resumed, "M" metadata naming the process,
/// threads and tracks; timestamps in µs with ns fractions.
void write_chrome_trace(std::ostream& out, const Timeline& timeline);
/// The same document as a string (no newline at its end): one buffer, no
/// stream's copy of it.
std::string to_chrome_trace(const Timeline& timeline);
/// speedscope's file format: one "evented" profile per thread (its own
/// blocks) and one per coroutine flow (its blocks on whichever threads they
/// ran), balanced open/close events in non-decreasing time, a shared frame
/// table with file and line. Spans that overlap without nesting are left out
/// and counted in the profile's name.
void write_speedscope(std::ostream& out, const Timeline& timeline);

expected<void> export_chrome_trace(const Timeline& timeline, const std::filesystem::path& file);
expected<void> export_speedscope(const Timeline& timeline, const std::filesystem::path& file);

} // namespace stichotrope
