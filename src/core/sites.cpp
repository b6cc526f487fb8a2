// The site registry: call sites and wait sites registered under the
// profiler's lock (register_site, src/core/waits.cpp for waits), published in a
// table read without it (find_link in modules/core.cppm), and each thread's
// cache of the sites it used (the hot lookup is site_for in core.cppm; a
// miss comes here).
module;
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <source_location>
#include <string>
#include <string_view>
#include <tuple>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {

std::string base_name(std::string_view path) {
  const auto slash = path.find_last_of('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string where(const char* file, std::uint32_t line) { return base_name(file) + ":" + std::to_string(line); }

void add_diagnostic(profiler_core& core, std::string message) {
  if (std::find(core.diagnostics.begin(), core.diagnostics.end(), message) == core.diagnostics.end())
    core.diagnostics.push_back(std::move(message));
}

namespace {
void insert_link(site_table& t, const site_link* l) {
  for (std::size_t i = link_hash(l->location, l->track, *l->name) & t.mask;; i = (i + 1) & t.mask)
    if (t.slots[i].load(std::memory_order_relaxed) == nullptr) {
      t.slots[i].store(l, std::memory_order_release);
      ++t.used;
      return;
    }
}

/// Makes a registered site findable without the lock (core.mutex held).
void publish_link(profiler_core& core, const void* location, int track, const std::string* name, std::uint32_t site) {
  if (location == nullptr) return;
  site_table* t = core.tables.empty() ? nullptr : core.tables.back().get();
  if (t != nullptr) // another thread may have published it since this one looked
    for (std::size_t i = link_hash(location, track, *name) & t->mask;; i = (i + 1) & t->mask) {
      const site_link* l = t->slots[i].load(std::memory_order_relaxed);
      if (l == nullptr) break;
      if (l->location == location && l->track == track && *l->name == *name) return;
    }
  if (t == nullptr || (t->used + 1) * 2 > t->mask + 1) {
    auto bigger = std::make_unique<site_table>(t == nullptr ? 256 : (t->mask + 1) * 2);
    if (t != nullptr)
      for (std::size_t i = 0; i <= t->mask; ++i)
        if (const site_link* l = t->slots[i].load(std::memory_order_relaxed)) insert_link(*bigger, l);
    t = bigger.get();
    core.tables.push_back(std::move(bigger));
    core.links.store(t, std::memory_order_release); // the old table stays: a reader may be probing it
  }
  insert_link(*t, &core.link_store.emplace_back(site_link{location, track, site, name}));
}
} // namespace

std::uint32_t register_site(profiler_core& core, int track, std::string_view name, const char* file, std::uint32_t line,
                            std::uint32_t column, const char* function, const std::string** registered_name,
                            const void* location) {
  std::lock_guard lock(core.mutex);
  if (core.dead.load(std::memory_order_relaxed)) return invalid_site; // its profiler is gone
  if (static_cast<unsigned>(track) >= unsigned{max_tracks}) {
    add_diagnostic(core, "block '" + std::string(name) + "' at " + where(file, line) + ": track index " +
                             std::to_string(track) + " is out of range [0, " + std::to_string(max_tracks) + ")");
    return invalid_site;
  }
  if (name.empty()) {
    add_diagnostic(core, "block at " + where(file, line) + " on track " + std::to_string(track) +
                             ": block name must not be empty");
    return invalid_site;
  }
  const auto key = std::make_tuple(track, name, std::string_view(file), line, column, std::string_view(function));
  if (auto it = core.site_index.find(key); it != core.site_index.end()) {
    *registered_name = &core.sites[it->second].name;
    publish_link(core, location, track, *registered_name, it->second);
    return it->second;
  }
  if (core.sites.size() >= max_sites) {
    add_diagnostic(core, "block '" + std::string(name) + "' at " + where(file, line) + ": more than " +
                             std::to_string(max_sites) + " call sites in one profiler");
    return invalid_site;
  }
  const auto id = static_cast<std::uint32_t>(core.sites.size());
  const site_info& s = core.sites.emplace_back(
      site_info{track, std::string(name), file, function, line, column, invalid_site, invalid_site, {}});
  core.site_index.emplace(std::make_tuple(track, std::string_view(s.name), std::string_view(s.file), line, column,
                                          std::string_view(s.function)),
                          id);
  *registered_name = &s.name;
  publish_link(core, location, track, &s.name, id);
  return id;
}

std::string default_track_name(std::string_view type, bool is_class, const std::source_location& loc) {
  if (is_class && !type.empty()) {
    std::string name(type);
    // "(lambda at /long/path/file.cpp:12:5)" reads better with the base name.
    if (const auto at = name.find(" at /"); at != std::string::npos) {
      const auto end = name.find(':', at);
      const auto slash = name.rfind('/', end);
      name.erase(at + 4, slash - (at + 4) + 1);
    }
    return name;
  }
  return "function@" + where(loc.file_name(), loc.line());
}

namespace {
using entry = thread_buffer::cache_entry;

// A table that keeps filling is replaced by one four times as large (up to
// site_cache_max). It starts empty: the entries refill from the profiler's
// table of sites; the old table stays in the arena, which frees everything
// with the buffer.
void note_cache_fill(thread_buffer& buf) noexcept {
  const std::uint32_t size = std::uint32_t{2} << (64 - buf.cache_shift);
  if (++buf.cache_fills < size || size >= site_cache_max) return;
  buf.cache_fills = 0;
  void* p = buf.memory.allocate(sizeof(entry) * size * 4, 64);
  if (p == nullptr) return; // the table stays as it is
  buf.cache = new (p) entry[size * 4];
  buf.cache_shift -= 2;
}

std::uint64_t hash_of(const entry& e) noexcept {
  const int track = static_cast<int>(e.shape & 0xFF);
  const std::size_t length = e.shape >> 8;
  if (length == thread_buffer::literal_length)
    return literal_hash(e.location, track, reinterpret_cast<const char*>(static_cast<std::uintptr_t>(e.head)));
  if (length <= 16) { // hashed by its length and key alone: the text itself is not read
    static constexpr char unread[16] = {};
    return cache_hash(e.location, track, std::string_view(unread, length), {e.head, e.tail});
  }
  const std::string_view name(reinterpret_cast<const char*>(static_cast<std::uintptr_t>(e.tail)), length);
  return cache_hash(e.location, track, name, key_of(name));
}

entry* empty_in(entry* bucket) noexcept {
  return bucket[0].location == nullptr ? &bucket[0] : bucket[1].location == nullptr ? &bucket[1] : nullptr;
}

// Puts `e` in one of its two buckets: an empty entry, else one whose site
// can move to an empty entry of its own other bucket, else the second entry
// of the first bucket (its site is looked up again at its next use).
void cache_put(thread_buffer& buf, std::uint64_t hash, const entry& e) noexcept {
  const std::uint32_t shift = buf.cache_shift;
  entry* const table = buf.cache;
  entry* const mine[2] = {table + (hash >> shift) * 2, table + second_bucket(hash, shift) * 2};
  entry* to = empty_in(mine[0]);
  if (to == nullptr) to = empty_in(mine[1]);
  for (std::size_t i = 0; to == nullptr && i < 4; ++i) {
    entry& occupant = mine[i / 2][i % 2];
    const std::uint64_t other = hash_of(occupant);
    const std::size_t first = other >> shift;
    const std::size_t bucket = table + first * 2 == mine[i / 2] ? second_bucket(other, shift) : first;
    if (entry* free = empty_in(table + bucket * 2)) {
      *free = occupant;
      to = &occupant;
    }
  }
  *(to != nullptr ? to : &mine[0][1]) = e;
  note_cache_fill(buf);
}
} // namespace

std::uint32_t site_for_miss(thread_buffer& buf, profiler_core& core, std::uint64_t hash, const void* location,
                            int track, std::string_view name, const char* literal, const char* file, std::uint32_t line,
                            std::uint32_t column, const char* function) {
  const entry* bucket = buf.cache + second_bucket(hash, buf.cache_shift) * 2;
  name_key k;
  if (literal != nullptr) {
    for (int i = 0; i < 2; ++i)
      if (holds_literal(bucket[i], location, track, literal)) return bucket[i].site;
    std::size_t length = 0; // a const array need not end in '\0'
    while (length < name.size() && literal[length] != '\0') ++length;
    name = name.substr(0, length);
  } else {
    k = key_of(name);
    for (int i = 0; i < 2; ++i)
      if (holds(bucket[i], location, track, name, k)) return bucket[i].site;
  }
  const std::string* registered = nullptr;
  std::uint32_t site = find_link(core, location, track, name, &registered); // no lock once registered
  if (site == invalid_site)
    site = register_site(core, track, name, file, line, column, function, &registered, location);
  if (site == invalid_site) return site;
  if (literal != nullptr) {
    cache_put(buf, hash,
              {location, reinterpret_cast<std::uintptr_t>(literal), 0, site,
               static_cast<std::uint32_t>(shape_of(track, thread_buffer::literal_length))});
  } else if (name.size() < thread_buffer::literal_length) { // longer names are not cached
    const std::uint64_t tail = name.size() <= 16 ? k.tail : reinterpret_cast<std::uintptr_t>(registered->data());
    cache_put(buf, hash, {location, k.head, tail, site, static_cast<std::uint32_t>(shape_of(track, name.size()))});
  }
  return site;
}

namespace testing {
site_cache_use site_cache_of_calling_thread() {
  site_cache_use out;
  const thread_buffer* buf = last_buffer.buffer;
  if (buf == nullptr) return out;
  out.size = std::uint32_t{2} << (64 - buf->cache_shift);
  out.max = site_cache_max;
  for (std::uint32_t i = 0; i < out.size; ++i) out.held += buf->cache[i].location != nullptr ? 1 : 0;
  return out;
}
bool cache_entry_holds(std::string_view registered, std::string_view name) {
  const std::string text(registered);
  const name_key k = key_of(text);
  const std::uint64_t tail = text.size() <= 16 ? k.tail : reinterpret_cast<std::uintptr_t>(text.data());
  static const int here = 0;
  const entry e{&here, k.head, tail, 0, static_cast<std::uint32_t>(shape_of(5, text.size()))};
  return holds(e, &here, 5, name, key_of(name));
}
} // namespace testing

} // namespace stichotrope::detail
