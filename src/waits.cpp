// Wait sites: what a flow's suspension is charged to (docs/coroutines.md,
// "Waits"). Registered once per (block, await chain) under the profiler's
// lock; threads then find them in their own table (src/coro.cpp).
module;
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>
module stichotrope;

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

std::string base_name(std::string_view path) {
  const auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

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
  // operation's initiation as its first template argument.
  for (int guard = 0; guard < 8; ++guard) {
    const std::string outer = without_template_arguments(initiation);
    if (!outer.ends_with("init_wrapper")) break;
    const auto open = initiation.rfind("init_wrapper<");
    if (open == std::string_view::npos) break;
    std::string_view inner = initiation.substr(open + 13);
    int level = 0;
    std::size_t stop = 0;
    for (; stop < inner.size(); ++stop) {
      const char ch = inner[stop];
      if (ch == '<' || ch == '(')
        ++level;
      else if ((ch == '>' || ch == ')') && level > 0)
        --level;
      else if (level == 0 && (ch == ',' || ch == '>'))
        break;
    }
    initiation = inner.substr(0, stop);
  }
  std::string name = without_template_arguments(initiation);
  const auto last = name.rfind("::");
  const std::size_t part = last == std::string::npos ? 0 : last + 2;
  if (name.compare(part, 9, "initiate_") == 0) name.erase(part, 9);
  return name;
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
    if (core.sites.size() >= max_sites) return invalid_site;
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

} // namespace stichotrope::detail
