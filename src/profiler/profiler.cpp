// The profiler's life: made (its configuration applied, the exporters
// told), switched (the global, profiler and track switches folded into one
// flag per track), its diagnostics, and its end (the exporters told, the
// configured outputs among them; its core kept as a tombstone for blocks
// that outlive it).
module;
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <source_location>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>
module stichotrope;
import :core_internal;

namespace stichotrope::detail {

namespace {
std::atomic<std::uint64_t> next_core_id{1};
} // namespace

profiler_core::profiler_core(std::string profiler_name)
    : id(next_core_id.fetch_add(1, std::memory_order_relaxed)), name(std::move(profiler_name)) {
  for (auto& e : track_enabled) e.store(true, std::memory_order_relaxed);
  for (auto& e : track_open) e.store(false, std::memory_order_relaxed); // opened once listed (switched())
}

} // namespace stichotrope::detail

namespace stichotrope {

namespace {
/// A list of cores under its own mutex; the two below are never freed
/// (profilers may end during static destruction).
struct core_list {
  std::mutex mutex;
  std::vector<detail::profiler_core*> cores;
};

/// The cores of live profilers, for the global switch: it is folded into
/// each core's track flags, so that a block checks one flag however it was
/// switched off (modules/profiler.cppm, Profiler::site_core). Lock order:
/// this mutex, then a core's switch_mutex.
core_list& switched() {
  static core_list* s = new core_list;
  return *s;
}

/// Recomputes a core's track flags from the three switches (its switch_mutex
/// held). A dead core stays closed.
void reopen_tracks(detail::profiler_core& core) noexcept {
  const bool on = !core.dead.load(std::memory_order_relaxed) &&
                  detail::global_enabled.load(std::memory_order_relaxed) &&
                  core.started.load(std::memory_order_relaxed);
  for (unsigned t = 0; t < unsigned{max_tracks}; ++t)
    core.track_open[t].store(on && core.track_enabled[t].load(std::memory_order_relaxed), std::memory_order_relaxed);
}
} // namespace

void set_global_enabled(bool enabled) noexcept {
  auto& s = switched();
  std::lock_guard lock(s.mutex);
  detail::global_enabled.store(enabled, std::memory_order_relaxed);
  for (detail::profiler_core* core : s.cores) {
    std::lock_guard core_lock(core->switch_mutex);
    reopen_tracks(*core);
  }
}

namespace {
/// Writes "stichotrope: <line>" to stderr the first time the process meets
/// that line: a program whose results are never written still says what of
/// its configuration was ignored, once, however many profilers it makes.
void report_once_on_stderr(const std::string& line) {
  static std::mutex* mutex = new std::mutex; // never destroyed: profilers may be made during static destruction
  static std::set<std::string>* said = new std::set<std::string>;
  std::lock_guard lock(*mutex);
  if (said->insert(line).second) std::cerr << "stichotrope: " << line << std::endl;
}

/// Puts a resolved configuration into effect (switches, names, timeline);
/// outputs and endpoints are kept for the exporters, which read them from
/// Profiler::config().
void apply_config(Profiler& p, detail::profiler_core& core, ResolvedConfig resolved) {
  const Config& c = resolved.config;
  if (c.enabled) set_global_enabled(*c.enabled);
  for (const auto& [track, on] : c.tracks_enabled) (void)p.set_track_enabled(track, on);
  for (const auto& [track, name] : c.track_names) (void)p.set_track_name(track, name);
  if (c.timeline_events) {
    if (*c.timeline_events == 0)
      p.stop_timeline();
    else
      p.start_timeline({*c.timeline_events, c.timeline_when_full.value_or(overflow_policy::keep_latest)});
  }
  if (c.outputs || c.otlp_endpoint) detail::write_outputs_on_signals(); // a server stopped by a signal loses nothing
  std::lock_guard lock(core.mutex);
  core.config = c;
  core.config_errors.clear();
  for (const auto& e : resolved.errors) {
    std::string line = "configuration: " + e.message + " (left out; the rest of the configuration applies)";
    report_once_on_stderr(line);
    core.config_errors.push_back(std::move(line));
  }
}

} // namespace

namespace {
/// Live profilers and the exporters linked into the program (never freed:
/// profilers may end during static destruction).
struct live_profilers {
  std::mutex mutex;
  std::vector<Profiler*> all;
  std::vector<const detail::exporter*> exporters;
};
live_profilers& live() {
  static live_profilers* l = new live_profilers{{}, {}, {&detail::outputs_exporter}};
  return *l;
}

void announce(Profiler& p) {
  auto& l = live();
  std::lock_guard lock(l.mutex);
  for (const auto* e : l.exporters)
    if (e->profiler_configured != nullptr) e->profiler_configured(p);
}
} // namespace

namespace detail {
void register_exporter(const exporter* e) {
  auto& l = live();
  std::lock_guard lock(l.mutex);
  l.exporters.push_back(e);
  if (e->profiler_configured != nullptr)
    for (Profiler* p : l.all) e->profiler_configured(*p);
}

void signal_exporters(bool ending) {
  auto& l = live();
  std::lock_guard lock(l.mutex); // no profiler ends meanwhile
  for (Profiler* p : l.all)
    for (const auto* e : l.exporters) {
      if (ending)
        e->profiler_ending(*p);
      else if (e->profiler_signalled != nullptr)
        e->profiler_signalled(*p);
    }
}

void add_diagnostic(Profiler& p, std::string message) {
  std::lock_guard lock(p.core_->mutex);
  add_diagnostic(*p.core_, std::move(message));
}

void replace_diagnostic(Profiler& p, std::string_view key, std::string message) {
  std::lock_guard lock(p.core_->mutex);
  auto& d = p.core_->diagnostics;
  const auto it = std::find_if(d.begin(), d.end(), [&](const std::string& m) { return m.starts_with(key); });
  if (it != d.end())
    *it = std::move(message);
  else
    d.push_back(std::move(message));
}
} // namespace detail

Profiler::Profiler(std::string name, Config config) {
  calibrate_clock();
  core_ = new detail::profiler_core(std::move(name)); // owned by the graveyard once the profiler is gone
  {
    auto& s = switched();
    std::lock_guard lock(s.mutex);
    s.cores.push_back(core_);
    std::lock_guard core_lock(core_->switch_mutex);
    reopen_tracks(*core_);
  }
  core_->code_config = config;
  apply_config(*this, *core_, resolve_config(config, core_->name));
  {
    auto& l = live();
    std::lock_guard lock(l.mutex);
    l.all.push_back(this);
  }
  announce(*this);
}

std::vector<Error> Profiler::reload_config() {
  Config code;
  {
    std::lock_guard lock(core_->mutex);
    code = core_->code_config;
  }
  auto resolved = resolve_config(code, core_->name);
  auto errors = resolved.errors;
  apply_config(*this, *core_, std::move(resolved));
  announce(*this);
  return errors;
}

Config Profiler::config() const {
  std::lock_guard lock(core_->mutex);
  return core_->config;
}

namespace {
/// Cores of destroyed profilers. A core is small once emptied, and it is never
/// freed: blocks, timed awaits and wrappers that outlive their profiler (on
/// any thread, at static destruction time) still read its `dead` flag and
/// then record nothing. Reachable from this never-destroyed list.
core_list& graveyard() {
  static core_list* g = new core_list;
  return *g;
}
} // namespace

Profiler::~Profiler() {
  detail::profiler_core& core = *core_;
  {
    auto& l = live();
    std::lock_guard lock(l.mutex);
    std::erase(l.all, this);
    for (const auto* e : l.exporters) e->profiler_ending(*this); // the configured outputs are written here
  }
  core.started.store(false, std::memory_order_relaxed);
  {
    auto& s = switched();
    std::lock_guard lock(s.mutex);
    std::erase(s.cores, core_);
    std::lock_guard core_lock(core.switch_mutex);
    core.dead.store(true, std::memory_order_relaxed); // start() after this reopens nothing
    reopen_tracks(core);
  }
  core.timeline_on.store(false, std::memory_order_relaxed);
  {
    std::lock_guard lock(core.mutex);
    core.dead.store(true, std::memory_order_relaxed);
    // Threads keep their own buffers until they next look one up or exit.
    std::vector<std::shared_ptr<detail::thread_buffer>>().swap(core.buffers);
    std::deque<detail::exited_thread>().swap(core.exited);
    core.exited_folded = {};
    core.unread.reset();
    std::vector<BlockResults>().swap(core.taken);
    std::deque<ThreadTimeline>().swap(core.exited_timelines);
    core.site_index.clear();
    // Sites stay: a thread that passed the switches just before this may
    // still compare a call site's name through its cache.
    std::vector<std::string>().swap(core.diagnostics);
    core.config = {};
    core.code_config = {};
    std::vector<std::string>().swap(core.config_errors);
    for (auto& n : core.track_names) n.reset();
  }
  auto& g = graveyard();
  std::lock_guard lock(g.mutex);
  try {
    g.cores.push_back(core_);
  } catch (...) {
    // Without memory to list it, the core is simply never freed (unlisted).
  }
}

namespace {
expected<void> check_track(int track) {
  if (static_cast<unsigned>(track) >= unsigned{max_tracks})
    return fail(errc::invalid_track,
                "track index " + std::to_string(track) + " is out of range [0, " + std::to_string(max_tracks) + ")");
  return {};
}
} // namespace

expected<void> Profiler::set_track_enabled(int track, bool enabled) {
  if (auto ok = check_track(track); !ok) return ok;
  std::lock_guard lock(core_->switch_mutex);
  core_->track_enabled[static_cast<unsigned>(track)].store(enabled, std::memory_order_relaxed);
  reopen_tracks(*core_);
  return {};
}

namespace {
void set_started(detail::profiler_core& core, bool started) noexcept {
  std::lock_guard lock(core.switch_mutex);
  if (core.dead.load(std::memory_order_relaxed)) return;
  core.started.store(started, std::memory_order_relaxed);
  reopen_tracks(core);
}
} // namespace

void Profiler::start() noexcept { set_started(*core_, true); }
void Profiler::stop() noexcept { set_started(*core_, false); }

expected<void> Profiler::set_track_name(int track, std::string name) {
  if (auto ok = check_track(track); !ok) return ok;
  if (name.empty()) return fail(errc::empty_name, "track " + std::to_string(track) + ": track name must not be empty");
  std::lock_guard lock(core_->mutex);
  core_->track_names[static_cast<unsigned>(track)] = std::move(name);
  return {};
}

std::optional<std::string> Profiler::track_name(int track) const {
  if (!valid_track(track)) return std::nullopt;
  std::lock_guard lock(core_->mutex);
  return core_->track_names[static_cast<unsigned>(track)];
}

expected<Site> Profiler::site(int track, std::string_view name, std::source_location loc) {
  if (auto ok = check_track(track); !ok) return tl::unexpected(ok.error());
  if (name.empty())
    return fail(errc::empty_name, "block at " + detail::where(loc.file_name(), loc.line()) + " on track " +
                                      std::to_string(track) + ": block name must not be empty");
  const std::string* registered = nullptr;
  const std::uint32_t id = detail::register_site(*core_, track, name, loc.file_name(), loc.line(), loc.column(),
                                                 loc.function_name(), &registered);
  if (id == detail::invalid_site)
    return fail(errc::too_many_sites,
                "more than " + std::to_string(max_sites) + " call sites in profiler '" + core_->name + "'");
  return Site{core_->id, id, track};
}

Site Profiler::site_or_invalid(int track, std::string_view name, const std::source_location& loc) {
  const std::string* registered = nullptr;
  const std::uint32_t id = detail::register_site(*core_, track, name, loc.file_name(), loc.line(), loc.column(),
                                                 loc.function_name(), &registered);
  return Site{id == detail::invalid_site ? 0 : core_->id, id, track}; // invalid: matches no profiler
}

void Profiler::note_invalid_track(int track, std::string_view name, const std::source_location& loc) {
  if (!is_global_enabled()) return; // switched off globally: nothing at all, not even a diagnostic
  const std::string* registered = nullptr;
  detail::register_site(*core_, track, name, loc.file_name(), loc.line(), loc.column(), loc.function_name(),
                        &registered); // records the diagnostic
}

void Profiler::record(int track, std::string_view name, std::chrono::nanoseconds duration, std::source_location loc) {
  if constexpr (instrumentation_compiled_in) {
    detail::profiler_core& core = *core_;
    const std::uint32_t id = named_site(core, track, name, loc, [&](detail::thread_buffer& buf) {
      return detail::site_for(buf, core, location_key(loc), track, name, loc.file_name(), loc.line(), loc.column(),
                              loc.function_name());
    });
    if (id == detail::invalid_site) return;
    const auto ns = duration.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(duration.count());
    detail::record(*core_, id, ns, 0, 0, no_parent);
  }
}

void Profiler::record(const Site& s, std::chrono::nanoseconds duration) {
  if constexpr (instrumentation_compiled_in) {
    if (!is_global_enabled() || !is_started() || s.core_id_ != core_->id || !s.valid() || !is_track_enabled(s.track_))
      return;
    const auto ns = duration.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(duration.count());
    detail::record(*core_, s.id_, ns, 0, 0, no_parent);
  }
}

std::string Profiler::to_string() const {
  const auto& core = *core_;
  std::lock_guard lock(core.mutex);
  const std::uint64_t gen = core.generation.load(std::memory_order_relaxed);
  std::vector<bool> used(max_tracks, false);
  for (const auto& s : core.sites) used[static_cast<unsigned>(s.track)] = true;
  std::size_t threads = core.exited.size() + core.exited_folded_count;
  for (const auto& b : core.buffers)
    if (b->generation.load(std::memory_order_acquire) == gen) ++threads;
  std::ostringstream os;
  os << "Profiler(name='" << core.name << "', tracks=" << std::count(used.begin(), used.end(), true)
     << ", threads=" << threads << ", started=" << (core.started.load() ? "True" : "False") << ")";
  return os.str();
}

} // namespace stichotrope
