// Waits: what a flow's suspension is charged to (docs/coroutines.md,
// "Waits"). A wait site is registered once per (block, await chain) under
// the profiler's lock; each thread then charges its waits to records of its
// own, found through an owner-only table, without a lock.
module;
#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {
namespace {

/// One await of a wait chain, as the results name it.
struct await_element {
  std::string file;
  std::string function;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string awaited;
  bool internal = false; // an await inside Asio's or this library's own coroutines
};

/// Awaits written in Asio's headers (standalone or Boost's) or in the Asio
/// integration header: the program did not write them, so a wait there is
/// named for the program's await that led to it.
bool is_library_internal(std::string_view file) {
  return file.find("/asio/") != std::string_view::npos || file.ends_with("stichotrope/asio.hpp");
}

/// Drops every `<...>` group: "a::b<c<d>>::e" -> "a::b::e".
std::string without_template_arguments(std::string_view s) {
  std::string out;
  int depth = 0;
  for (char ch : s) {
    if (ch == '<')
      ++depth;
    else if (ch == '>')
      depth = depth > 0 ? depth - 1 : 0;
    else if (depth == 0)
      out += ch;
  }
  return out;
}

/// The first of a template's arguments from `s` (which starts just after
/// its '<'): up to the ',' or '>' that closes it.
std::string_view first_argument(std::string_view s) {
  int level = 0;
  std::size_t stop = 0;
  for (; stop < s.size(); ++stop) {
    const char ch = s[stop];
    if (ch == '<' || ch == '(')
      ++level;
    else if ((ch == '>' || ch == ')') && level > 0)
      --level;
    else if (level == 0 && (ch == ',' || ch == '>'))
      break;
  }
  return s.substr(0, stop);
}

/// Replaces `what` at the end of `s` by `with`; whether it was there.
bool replace_suffix(std::string& s, std::string_view what, std::string_view with) {
  if (!s.ends_with(what)) return false;
  s.replace(s.size() - what.size(), what.size(), with);
  return true;
}

/// The function the program called for an operation whose initiation is a
/// library's internal class. Asio's free functions start their operations
/// through classes of its detail namespace named for the overload
/// (`asio::detail::initiate_async_read_buffer_sequence`, `..._dynbuf_v2`,
/// `..._delim_v2`, `async_range_connect`, `post_with_executor`), and
/// Beast's through `run_<operation>_op` (`run_read_msg_op`): the wait is
/// named `asio::async_read`, `boost::beast::http::async_read`. Members keep
/// their class (`asio::basic_waitable_timer::async_wait`); the acceptor's
/// `async_move_accept` is the `async_accept` that returns the socket.
std::string public_name(std::string name) {
  const auto last = name.rfind("::");
  const std::size_t part = last == std::string::npos ? 0 : last + 2;
  std::string space = name.substr(0, part), op = name.substr(part);
  if (op == "async_move_accept") return space + "async_accept";
  if (!space.ends_with("detail::")) return name;
  space.erase(space.size() - 8); // "asio::detail::" -> "asio::"
  const bool beast = space.find("beast::") != std::string::npos;
  if (beast && op.size() > 7 && op.starts_with("run_") && op.ends_with("_op")) {
    op = "async_" + op.substr(4, op.size() - 7); // run_read_msg_op -> async_read_msg
    replace_suffix(op, "_msg", "");
    return space + op;
  }
  if (!op.starts_with("async_") && !op.ends_with("_with_executor")) return name;
  replace_suffix(op, "_v1", "") || replace_suffix(op, "_v2", "");
  for (const std::string_view overload :
       {"_buffer_sequence", "_dynbuf", "_delim_string", "_delim", "_expr", "_match", "_with_executor"})
    if (replace_suffix(op, overload, "")) break;
  if (op == "async_range_connect" || op == "async_iterator_connect") op = "async_connect";
  return space + op;
}

/// The operation an Asio awaitable started, from the function that awaits it
/// (`async_result<use_awaitable_t<...>>::initiate(...) [... Initiation = X, ...]`):
/// X without template arguments, its last part's "initiate_" dropped
/// ("asio::basic_waitable_timer::async_wait"). Empty when there is none.
std::string operation_of(std::string_view function) {
  const auto at = function.find("Initiation = ");
  if (at == std::string_view::npos) return {};
  std::string_view rest = function.substr(at + 13);
  int depth = 0;
  std::size_t end = 0;
  for (; end < rest.size(); ++end) {
    const char ch = rest[end];
    if (ch == '<' || ch == '(' || ch == '[')
      ++depth;
    else if ((ch == '>' || ch == ')') && depth > 0)
      --depth;
    else if (depth == 0 && (ch == ',' || ch == ']'))
      break;
  }
  std::string_view initiation = rest.substr(0, end);
  // A completion token's wrapper (redirect_error, as_tuple, ...) holds the
  // operation's initiation: as its template argument (`init_wrapper<X>`:
  // as_tuple), or as a constructor argument, which async_initiate passes on
  // as the first of the initiation's arguments (`init_wrapper` and
  // `InitArgs = <X, ...>`: Boost 1.83's redirect_error).
  bool arguments_used = false;
  for (int guard = 0; guard < 8; ++guard) {
    const std::string outer = without_template_arguments(initiation);
    if (!outer.ends_with("init_wrapper")) break;
    if (initiation.ends_with(">")) {
      const auto open = initiation.rfind("init_wrapper<");
      if (open == std::string_view::npos) break;
      initiation = first_argument(initiation.substr(open + 13));
    } else {
      const auto args = function.find("InitArgs = <");
      if (arguments_used || args == std::string_view::npos) break;
      initiation = first_argument(function.substr(args + 12));
      arguments_used = true;
    }
  }
  // async_compose: the operation is the program's implementation, the first
  // of InitArgs (a class, or a lambda named for where it is written).
  if (const auto args = function.find("InitArgs = <");
      !arguments_used && args != std::string_view::npos &&
      without_template_arguments(initiation).ends_with("detail::initiate_composed_op"))
    initiation = first_argument(function.substr(args + 12));
  std::string name = without_template_arguments(initiation);
  if (name.starts_with("(lambda at ")) { // "(lambda at /src/server.cpp:12:5)" -> "(lambda at server.cpp:12:5)"
    const auto slash = name.rfind('/');
    if (slash != std::string::npos) name.erase(11, slash + 1 - 11);
    return name;
  }
  const auto last = name.rfind("::");
  const std::size_t part = last == std::string::npos ? 0 : last + 2;
  if (name.compare(part, 9, "initiate_") == 0) name.erase(part, 9);
  return public_name(std::move(name));
}

await_element element_of(const void* key, const std::string_view* type) {
  await_element e;
  if (type != nullptr) e.awaited = std::string(*type);
  if (key == nullptr) {
    e.awaited = "(unknown await)";
    return e;
  }
  if (key == &inline_run_marker) {
    e.awaited = "(other flows ran inline)";
    return e;
  }
  const auto loc = std::bit_cast<std::source_location>(key);
  e.file = loc.file_name();
  e.function = loc.function_name();
  e.line = loc.line();
  e.column = loc.column();
  e.internal = is_library_internal(e.file);
  return e;
}

/// The chain as the results show it: awaits inside the libraries are folded
/// into the program's await that led to them; the last one names the
/// operation it started.
std::vector<await_element> user_chain(const void* const* joins, std::uint32_t n, const void* location,
                                      const std::string_view* type) {
  std::vector<await_element> chain;
  for (std::uint32_t i = 0; i <= n; ++i) {
    const bool leaf = i == n;
    await_element e = leaf ? element_of(location, type) : element_of(joins[i], nullptr);
    if (!e.internal) {
      chain.push_back(std::move(e));
    } else if (leaf && !chain.empty()) {
      std::string op = operation_of(e.function);
      chain.back().awaited = op.empty() ? e.awaited : std::move(op);
    } else if (leaf) {
      chain.push_back(std::move(e)); // nothing of the program's: Asio's own await, as it is
    }
  }
  return chain;
}

void append_bytes(std::string& key, const void* p, std::size_t n) { key.append(static_cast<const char*>(p), n); }

} // namespace

std::uint32_t register_wait_site(profiler_core& core, std::uint32_t block, const void* const* joins, std::uint32_t n,
                                 const void* location, const std::string_view* type) {
  const std::vector<await_element> chain = user_chain(joins, n, location, type);
  std::lock_guard lock(core.mutex);
  if (core.dead.load(std::memory_order_relaxed) || block >= core.sites.size()) return invalid_site;
  const int track = core.sites[block].track;
  std::uint32_t parent = invalid_site;
  for (const await_element& e : chain) {
    std::string key;
    append_bytes(key, &block, sizeof block);
    append_bytes(key, &parent, sizeof parent);
    append_bytes(key, &e.line, sizeof e.line);
    append_bytes(key, &e.column, sizeof e.column);
    for (const std::string* part : {&e.file, &e.function, &e.awaited}) {
      const std::uint64_t size = part->size();
      append_bytes(key, &size, sizeof size);
      key += *part;
    }
    if (auto it = core.wait_index.find(key); it != core.wait_index.end()) {
      parent = it->second;
      continue;
    }
    if (core.sites.size() >= max_sites) {
      add_diagnostic(core, "waits not attributed to their co_await: more than " + std::to_string(max_sites) +
                               " call and wait sites in one profiler (the blocks' suspended time is still counted)");
      return invalid_site;
    }
    const auto id = static_cast<std::uint32_t>(core.sites.size());
    site_info s;
    s.track = track;
    s.name = e.file.empty() ? e.awaited : base_name(e.file) + ":" + std::to_string(e.line);
    s.file = e.file;
    s.function = e.function;
    s.line = e.line;
    s.column = e.column;
    s.wait_of = block;
    s.wait_parent = parent;
    s.awaited = e.awaited;
    core.sites.push_back(std::move(s));
    core.wait_index.emplace(std::move(key), id);
    parent = id;
  }
  return parent;
}

namespace {

// What a record's cold part and directory are until it has them (no pages, no migrations), so the write path follows
// the pointers without testing them; and the counter a sample finds when its page is elsewhere. Never written.
slot_dir no_dir{};
wait_cold no_cold{&no_dir, nullptr};
std::atomic<std::uint32_t> always_full{UINT32_MAX};

constexpr std::uint64_t odd1 = 0x9E3779B97F4A7C15ull;
constexpr std::uint64_t odd2 = 0xC2B2AE3D27D4EB4Full;
constexpr std::uint64_t address_bits = (std::uint64_t{1} << 48) - 1; // user-space addresses fit in 47 bits

std::uint64_t bits(const void* p) noexcept { return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)); }

// A wait's key hashes its block, the joins of its chain and the await: the
// two products of the await are independent, and each join adds one
// multiplication, so the key of a flow with no joins is a few cycles.
std::uint64_t await_hash(const context& c) noexcept { return bits(c.wait_location) * odd1 ^ bits(c.wait_type) * odd2; }
std::uint64_t with_join(std::uint64_t h, const void* join) noexcept { return (h ^ bits(join)) * odd1; }
std::uint64_t wait_key(std::uint64_t h, std::uint32_t block) noexcept {
  const std::uint64_t k = h ^ (std::uint64_t{block} + 1) * odd2;
  return k == 0 ? 1 : k;
}

// The table: an entry is the key's 16 high bits over the record's address
// (0: empty); a key starts probing at its bits 24 up.
std::uint64_t tag_of(std::uint64_t key) noexcept { return key >> 48; }
std::uint32_t home_of(std::uint64_t key, std::uint32_t mask) noexcept {
  return static_cast<std::uint32_t>(key >> 24) & mask;
}

wait_record* find_wait(const thread_buffer& buf, std::uint64_t key) noexcept {
  const std::uint64_t tag = tag_of(key);
  for (std::uint32_t i = home_of(key, buf.wait_mask);; i = (i + 1) & buf.wait_mask) {
    const std::uint64_t e = buf.waits[i];
    if (e == 0) return nullptr;
    if ((e >> 48) == tag)
      if (auto* w = reinterpret_cast<wait_record*>(static_cast<std::uintptr_t>(e & address_bits)); w->key == key)
        return w;
  }
}

void put_wait(std::uint64_t* table, std::uint32_t mask, wait_record* w) noexcept {
  std::uint32_t i = home_of(w->key, mask);
  while (table[i] != 0) i = (i + 1) & mask;
  table[i] = tag_of(w->key) << 48 | bits(w);
}

/// Room in the table for one more record (it doubles at 3/4 load; the old
/// table is freed: only the owner reads it). False without memory.
bool room_for_one_more(thread_buffer& buf) noexcept {
  const std::uint32_t size = buf.wait_mask + 1;
  if ((buf.wait_used + 1) * 4 <= size * 3) return true;
  auto* table = new (std::nothrow) std::uint64_t[std::size_t{size} * 2]{};
  if (table == nullptr) return false;
  for (std::uint32_t i = 0; i < size; ++i)
    if (const std::uint64_t e = buf.waits[i]; e != 0)
      put_wait(table, size * 2 - 1, reinterpret_cast<wait_record*>(static_cast<std::uintptr_t>(e & address_bits)));
  if (buf.waits != buf.first_waits.data()) {
    delete[] buf.waits;
    buf.wait_bytes.fetch_sub(sizeof(std::uint64_t) * size, std::memory_order_relaxed);
  }
  buf.wait_bytes.fetch_add(sizeof(std::uint64_t) * size * 2, std::memory_order_relaxed);
  buf.waits = table;
  buf.wait_mask = size * 2 - 1;
  return true;
}

/// Where the next record goes: the newest chunk's next place (a chunk holds
/// 16 records, doubling up to 512, so a thread with few waits holds little).
/// The caller constructs it and publishes it. Null without memory.
wait_record* next_record(thread_buffer& buf) noexcept {
  wait_chunk* c = buf.wait_chunks.load(std::memory_order_relaxed);
  if (c == nullptr || c->used.load(std::memory_order_relaxed) == c->capacity) {
    const std::uint32_t capacity = c == nullptr ? 16 : std::min<std::uint32_t>(c->capacity * 2, 512);
    const std::size_t bytes = sizeof(wait_chunk) + sizeof(wait_record) * capacity;
    void* p = ::operator new(bytes, std::nothrow);
    if (p == nullptr) return nullptr;
    auto* fresh = new (p) wait_chunk{};
    fresh->next = c;
    fresh->capacity = capacity;
    buf.wait_bytes.fetch_add(bytes, std::memory_order_relaxed);
    buf.wait_chunks.store(fresh, std::memory_order_release); // readers walk from here
    c = fresh;
  }
  return c->records() + c->used.load(std::memory_order_relaxed);
}

/// The record of the wait `key` of block `block`, made at its first use in
/// this thread (its site registered under the profiler's lock, or found
/// there). Null when there is no memory or the profiler is gone; when the
/// registry refuses the site, a record whose site is invalid_site.
[[gnu::noinline, gnu::cold]] wait_record* make_wait(profiler_core& core, thread_buffer& buf, std::uint64_t key,
                                                    std::uint32_t block, const context& c, std::uint32_t first,
                                                    std::uint32_t joins) noexcept {
  std::uint32_t site = invalid_site;
  try {
    site = register_wait_site(core, block, c.joins + first, joins - first, c.wait_location, c.wait_type);
  } catch (...) { // no memory for the registry
    note_no_memory(core);
    return nullptr;
  }
  // A site refused (the registry is full) still gets a record, whose site
  // is invalid_site: the next wait with this key finds it without the lock,
  // and charge_waits and the readers pass it by.
  if (site == invalid_site && core.dead.load(std::memory_order_relaxed)) return nullptr;
  wait_record* w = room_for_one_more(buf) ? next_record(buf) : nullptr;
  if (w == nullptr) {
    note_no_memory(core);
    return nullptr;
  }
  new (w) wait_record{};
  w->cold.store(&no_cold, std::memory_order_relaxed);
  w->key = key;
  w->site = site;
  w->interval.store(core.interval.load(std::memory_order_relaxed), std::memory_order_relaxed);
  wait_chunk* chunk = buf.wait_chunks.load(std::memory_order_relaxed);
  chunk->used.store(chunk->used.load(std::memory_order_relaxed) + 1, std::memory_order_release); // published
  put_wait(buf.waits, buf.wait_mask, w);
  ++buf.wait_used;
  return w;
}

wait_cold* cold_of(thread_buffer& buf, wait_record& w) noexcept {
  wait_cold* c = w.cold.load(std::memory_order_relaxed);
  if (c == &no_cold) {
    void* p = buf.memory.allocate(sizeof(wait_cold), alignof(wait_cold));
    if (p == nullptr) return nullptr;
    c = new (p) wait_cold{&no_dir, nullptr};
    w.cold.store(c, std::memory_order_release);
  }
  return c;
}

/// A sample the inline page cannot count (another octave, or a full
/// counter): into the cold directory's pages.
[[gnu::noinline]] bool add_sample_cold(thread_buffer& buf, wait_record& w, std::uint64_t ns) noexcept {
  wait_cold* c = cold_of(buf, w);
  if (c == nullptr) return false;
  slot_dir* d = c->dir.load(std::memory_order_relaxed);
  if (d == &no_dir) {
    void* p = buf.memory.allocate(sizeof(slot_dir), alignof(slot_dir));
    if (p == nullptr) return false;
    d = new (p) slot_dir{};
    c->dir.store(d, std::memory_order_release); // readers follow it outside the seqlock
  }
  return add_sample_slow(buf, *d, ns);
}

void copy_page(const narrow_page& from, narrow_page& to) noexcept {
  for (unsigned i = 0; i < page_buckets; ++i)
    to.n[i].store(from.n[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
}

/// A sample the write path did not count: the record's first (its octave
/// becomes the inline page's), or one in another octave than the inline
/// page's whose page in the cold directory is missing, full or wide.
[[gnu::noinline]] bool add_sample_rarely(thread_buffer& buf, wait_record& w, std::uint64_t ns) noexcept {
  const unsigned b = latency_histogram::bucket_of(ns);
  if (w.octave.load(std::memory_order_relaxed) == 0) {
    w.octave.store(b / page_buckets + 1, std::memory_order_relaxed);
    w.page.n[b % page_buckets].store(1, std::memory_order_relaxed);
    return true;
  }
  return add_sample_cold(buf, w, ns);
}

/// One more wait of the record that resumed on another thread.
[[gnu::noinline]] bool count_migration(thread_buffer& buf, wait_record& w) noexcept {
  wait_cold* c = cold_of(buf, w);
  if (c == nullptr) return false;
  bump(c->migrations, 1);
  return true;
}

/// Moves a record to interval `now`, as begin_interval does a slot: its
/// values to the sealed copy (the pending sample with them), the cold
/// directory with them; the directory of the interval before (read long
/// since) is emptied for reuse.
[[gnu::noinline, gnu::cold]] bool begin_wait_interval(thread_buffer& buf, wait_record& w, std::uint32_t now) noexcept {
  wait_cold* c = cold_of(buf, w);
  if (c == nullptr) return false;
  wait_sealed* z = c->sealed.load(std::memory_order_relaxed);
  slot_dir* fresh = &no_dir;
  if (z == nullptr) {
    void* p = buf.memory.allocate(sizeof(wait_sealed), alignof(wait_sealed));
    if (p == nullptr) return false;
    z = new (p) wait_sealed{};
  } else if ((fresh = z->dir.load(std::memory_order_relaxed)) != &no_dir) {
    empty_directory(*fresh);
  }
  z->interval.store(w.interval.load(std::memory_order_relaxed), std::memory_order_relaxed);
  z->octave.store(w.octave.load(std::memory_order_relaxed), std::memory_order_relaxed);
  move_sample_stats(w, *z);
  move_value(c->migrations, z->migrations, 0);
  move_value(w.pending_ns, z->pending_ns, no_sample);
  copy_page(w.page, z->page);
  z->dir.store(c->dir.load(std::memory_order_relaxed), std::memory_order_relaxed);
  c->sealed.store(z, std::memory_order_release);
  c->dir.store(fresh, std::memory_order_release);
  w.octave.store(0, std::memory_order_relaxed);
  for (auto& n : w.page.n) n.store(0, std::memory_order_relaxed);
  w.interval.store(now, std::memory_order_relaxed);
  return true;
}

/// One wait of `ns` in its record: opened and closed like a slot (see
/// open_slot in modules/core.cppm for why the order matters to take_results).
/// The histogram counts the record's previous sample, as record() does a
/// slot's: a counter chosen by the sample just measured made the round trip
/// wait for the time stamp (docs/performance.md, "Waits": +12 ns became +6).
void add_wait(profiler_core& core, thread_buffer& buf, wait_record& w, std::uint64_t ns, bool migrated) noexcept {
  const std::uint32_t seq = w.seq.load(std::memory_order_relaxed);
  w.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (w.interval.load(std::memory_order_relaxed) != core.interval.load(std::memory_order_relaxed)) [[unlikely]]
    if (!begin_wait_interval(buf, w, core.interval.load(std::memory_order_relaxed))) {
      w.seq.store(seq + 2, std::memory_order_release);
      return note_no_memory(core);
    }
  count_sample(w, ns);
  if (migrated) [[unlikely]]
    if (!count_migration(buf, w)) note_no_memory(core);
  const std::uint64_t pending = w.pending_ns.load(std::memory_order_relaxed);
  w.pending_ns.store(ns, std::memory_order_relaxed);
  if (pending != no_sample) [[likely]] {
    // The counter: in the inline page, or in the cold directory's narrow
    // page of its octave, chosen without a branch (waits that straddle an
    // octave boundary would make one mispredict); anything else (the first
    // sample, a new octave, a full counter, a wide page) reads a counter
    // that is always full and goes the slow way.
    const unsigned b = latency_histogram::bucket_of(pending);
    const std::uint32_t octave = b / page_buckets + 1;
    const bool here = w.octave.load(std::memory_order_relaxed) == octave;
    const std::uint64_t e = w.cold.load(std::memory_order_relaxed)
                                ->dir.load(std::memory_order_relaxed)
                                ->pages[b / page_buckets % dir_entries]
                                .load(std::memory_order_relaxed);
    const bool there = (e >> 55) == std::uint64_t{octave} << 1;
    const auto in_dir = static_cast<std::uintptr_t>(e & page_address) + sizeof(std::uint32_t) * (b % page_buckets);
    auto at = there ? in_dir : reinterpret_cast<std::uintptr_t>(&always_full);
    at = here ? reinterpret_cast<std::uintptr_t>(&w.page.n[b % page_buckets]) : at;
    auto* counter = reinterpret_cast<std::atomic<std::uint32_t>*>(at);
    if (const std::uint32_t v = counter->load(std::memory_order_relaxed); v != UINT32_MAX) [[likely]]
      counter->store(v + 1, std::memory_order_relaxed);
    else if (!add_sample_rarely(buf, w, pending)) [[unlikely]]
      note_no_memory(core);
  }
  w.seq.store(seq + 2, std::memory_order_release);
}

/// The record of block `block`'s wait `key` in the calling thread's buffer
/// of `core` (made at its first use); null when there is none to be had.
[[gnu::always_inline]] inline wait_record* wait_of(profiler_core& core, std::uint64_t key, std::uint32_t block,
                                                   const context& c, std::uint32_t first, std::uint32_t joins,
                                                   thread_buffer*& buf) noexcept {
  buf = current_buffer(core);
  if (buf == nullptr) {
    note_no_memory(core);
    return nullptr;
  }
  if (wait_record* w = find_wait(*buf, key)) [[likely]]
    return w;
  return make_wait(core, *buf, key, block, c, first, joins);
}

/// Charges the wait to the flow's innermost block through the flow's memo
/// when the memo holds its record (see context::memo_record): the record the
/// key would find, since everything the key is made of is the same.
[[gnu::always_inline]] inline bool charge_remembered(context& c, const frame_entry& top, std::uint64_t ns,
                                                     bool migrated) noexcept {
  if (c.memo_buffer == 0 || c.memo_location != c.wait_location || c.memo_type != c.wait_type ||
      top.site != c.memo_site || top.join_depth != c.join_depth || top.core == nullptr || is_hole(top))
    return false;
  profiler_core& core = *top.core;
  const buffer_cache cached = last_buffer;
  // As charge_waits' own path: a dead profiler first, then this thread's buffer.
  if (core.dead.load(std::memory_order_relaxed) || cached.core_id != core.id || cached.buffer->serial != c.memo_buffer)
      [[unlikely]]
    return false;
  add_wait(core, *cached.buffer, *c.memo_record, ns, migrated);
  return true;
}

} // namespace

void charge_waits(context& c, std::uint64_t ns, bool migrated) noexcept {
  if (c.depth == 0) return;
  std::uint32_t d = c.depth;
  if (charge_remembered(c, c.frame(d - 1), ns, migrated) && --d == 0) return;
  const std::uint32_t joins = c.join_depth < max_joins ? c.join_depth : max_joins;
  const std::uint64_t leaf = await_hash(c);
  std::uint64_t h = leaf;
  std::uint32_t at = joins; // h covers joins[at..joins) and the await, built up block by block
  while (d-- > 0) {
    const frame_entry& f = c.frame(d);
    if (is_hole(f) || f.core == nullptr) continue;
    const std::uint32_t first = f.join_depth < joins ? f.join_depth : joins; // the joins made after it opened
    if (first > at) { // (a block moved in from a deeper join: start again)
      h = leaf;
      at = joins;
    }
    while (at > first) h = with_join(h, c.joins[--at]);
    profiler_core& core = *f.core;
    if (core.dead.load(std::memory_order_relaxed)) continue;
    thread_buffer* buf = nullptr;
    wait_record* w = wait_of(core, wait_key(h, f.site), f.site, c, first, joins, buf);
    if (w == nullptr || w->site == invalid_site) continue;
    add_wait(core, *buf, *w, ns, migrated);
    if (d + 1 == c.depth && c.join_depth == f.join_depth) { // the innermost block, no join since it opened
      c.memo_site = f.site;
      c.memo_location = c.wait_location;
      c.memo_type = c.wait_type;
      c.memo_record = w;
      c.memo_buffer = buf->serial;
    }
  }
}

std::uint32_t current_wait_site(context& c, profiler_core& core) noexcept {
  const std::uint32_t joins = c.join_depth < max_joins ? c.join_depth : max_joins;
  for (std::uint32_t d = c.depth; d-- > 0;) {
    const frame_entry& f = c.frame(d);
    if (is_hole(f) || f.core != &core) continue;
    const std::uint32_t first = f.join_depth < joins ? f.join_depth : joins;
    std::uint64_t h = await_hash(c);
    for (std::uint32_t at = joins; at > first;) h = with_join(h, c.joins[--at]);
    thread_buffer* buf = nullptr;
    const wait_record* w = wait_of(core, wait_key(h, f.site), f.site, c, first, joins, buf);
    return w == nullptr ? no_parent : w->site;
  }
  return no_parent;
}

} // namespace stichotrope::detail
