// :core's half that only the library's own sources see: the cold paths'
// entry points, the read side and the helpers the stages of src/core/ and
// src/profiler/ share. An internal partition (a module implementation unit):
// no interface unit imports it, so an importer neither sees nor compiles it,
// and it is not installed. Everything an importer's inlined hot path needs
// stays in :core (docs/architecture.md, "What an importer compiles").
// Implemented in src/core/ beside :core.
module;
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
module stichotrope:core_internal;
import :results;
import :core;

namespace stichotrope::detail {

/// Empties a directory of an interval already read, for reuse: its pages stay
/// (the same octaves are likely to be needed again).
void empty_directory(slot_dir& d) noexcept;

/// The cold statistics of a directory, allocated at their first use; null
/// without memory.
slot_ext* ext_of(thread_buffer& buf, slot_dir& d) noexcept;

/// Charges a wait of `ns` that ended now to every open block of `c` (a
/// block's suspended time is the sum of its waits; src/core/waits.cpp).
void charge_waits(context& c, std::uint64_t ns, bool migrated) noexcept;
/// The wait site the innermost open block of `core` in `c` charges the
/// flow's current await to (a suspension's name in the timeline), or
/// no_parent.
std::uint32_t current_wait_site(context& c, profiler_core& core) noexcept;

/// Counts one record on a cold counter of its slot (outside_flow, too_deep).
void record_note(profiler_core& core, std::uint32_t site, std::atomic<std::uint64_t> slot_ext::* counter);

// The read side (src/core/aggregate.cpp).

/// What a slot held in one interval, read consistently under its seqlock.
struct slot_reading {
  std::uint64_t hits, total_ns, min_ns, max_ns, self_ns, pending_ns;
  std::uint64_t bytes, suspended_ns, suspensions, migrations, abandoned, outside_flow, too_deep;
  std::uint64_t other_callers, other_callers_ns;
  std::uint32_t first_caller;
  std::uint32_t caller_tag[tracked_callers - 1];
  std::uint64_t caller_hits[tracked_callers - 1], caller_ns[tracked_callers - 1];
  const slot_dir* dir;
  const std::atomic<std::uint64_t>* more_pages;
};

/// What a wait record held in one interval, read consistently under its seqlock.
struct wait_reading {
  std::uint64_t hits, total_ns, min_ns, max_ns, migrations;
  std::uint64_t pending_ns; // a sample counted in `hits` but in no page yet (no_sample: none)
  std::uint32_t octave;     // of `page`, + 1 (0: none)
  std::uint32_t page[page_buckets];
  const slot_dir* dir; // pages of other octaves (a directory without pages when there are none)
};
/// Reads what `w` holds of `interval`; false when it holds nothing of it.
bool read_wait(const wait_record& w, std::uint32_t interval, wait_reading& out);

/// Reads what `s` holds of `interval` (its live values, or the sealed ones if
/// its thread has moved on); false when it holds nothing of it.
bool read_slot(const slot& s, std::uint32_t interval, slot_reading& out);
/// Adds the histogram of a reading to `h` (left untrimmed: see accumulator::finish).
void add_pages(const slot_reading& r, latency_histogram& h);

/// Sums readings and results per call site.
struct accumulator {
  explicit accumulator(std::size_t sites);
  std::vector<BlockResults> blocks; // by site id, names empty
  void add(std::uint32_t site, const slot_reading& r);
  void add(const BlockResults& b); // by b.site_id
  /// The sums, by site id.
  std::vector<BlockResults> finish();
};

/// Adds every slot of `buffers` that holds something of `interval`, in the
/// order that keeps the sums in cache; from parallel_merge_slots (live
/// thread x site slots) on, on up to four threads (src/core/aggregate.cpp).
void merge_buffers(accumulator& acc, const std::vector<std::shared_ptr<thread_buffer>>& buffers,
                   std::uint32_t interval);
/// One thread's blocks of `interval`, the sites it used only (in site order):
/// costs what the thread used (its chunks), not every site of the profiler.
std::vector<BlockResults> buffer_blocks(const thread_buffer& buf, std::uint32_t sites, std::uint32_t interval);
/// The blocks that recorded something.
std::vector<BlockResults> used_blocks(std::vector<BlockResults> blocks);
/// Memory a thread buffer holds.
std::uint64_t buffer_bytes(const thread_buffer& buf);
/// Makes every thread's earlier stores visible to the caller, as if each had
/// executed a full fence (membarrier, or a page-protection change where the
/// kernel lacks it). Cold: once per take_results().
void issue_barrier() noexcept;

/// set_thread_name's work: the calling thread's name, in its buffers too.
void rename_thread(std::string_view name);
std::string current_thread_name();

// Shared by the stages in src/ (each file says which it is):
/// A path's last part; "file.cpp:12" for a place in the diagnostics (src/core/sites.cpp).
std::string base_name(std::string_view path);
std::string where(const char* file, std::uint32_t line);
/// Adds a diagnostic once (core.mutex held; src/core/sites.cpp).
void add_diagnostic(profiler_core& core, std::string message);
/// A thread's blocks of the current interval, used sites only (core.mutex
/// held; src/core/aggregate.cpp).
std::vector<BlockResults> thread_blocks(const profiler_core& core, const thread_buffer& buf);
/// Adds `blocks` to `folded`, indexed by site id (src/core/aggregate.cpp).
void fold_blocks(const profiler_core& core, std::vector<BlockResults>& folded, const std::vector<BlockResults>& blocks);
/// A thread's timeline ring as events (core.mutex held; src/core/timeline.cpp).
ThreadTimeline read_timeline(const thread_buffer& buf, bool exited);

} // namespace stichotrope::detail
