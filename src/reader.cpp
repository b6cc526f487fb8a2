module;
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>
module stichotrope;

namespace stichotrope {
namespace {

using json = nlohmann::json;

/// Reads typed fields and reports the first problem with its JSON path.
class reader {
public:
  explicit reader(std::string_view source) : source_(source) {}

  const json* field(const json& obj, const char* key, const std::string& path, bool required) {
    if (!obj.is_object()) return fail_at(path, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) return required ? fail_at(path + "." + key, "is missing") : nullptr;
    return &*it;
  }
  bool u64(const json& obj, const char* key, const std::string& path, std::uint64_t& out, bool required = true) {
    const json* v = field(obj, key, path, required);
    if (v == nullptr) return ok_;
    if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<std::int64_t>() >= 0)) {
      fail_at(path + "." + key, "expected an unsigned integer (got " + std::string(v->type_name()) + ")");
      return false;
    }
    out = v->get<std::uint64_t>();
    return true;
  }
  bool u32(const json& obj, const char* key, const std::string& path, std::uint32_t& out, bool required = true) {
    std::uint64_t v = out;
    if (!u64(obj, key, path, v, required)) return false;
    if (v > UINT32_MAX) {
      fail_at(path + "." + key, "is too large");
      return false;
    }
    out = static_cast<std::uint32_t>(v);
    return true;
  }
  bool num(const json& obj, const char* key, const std::string& path, double& out, bool required = true) {
    const json* v = field(obj, key, path, required);
    if (v == nullptr) return ok_;
    if (!v->is_number()) {
      fail_at(path + "." + key, "expected a number (got " + std::string(v->type_name()) + ")");
      return false;
    }
    out = v->get<double>();
    return true;
  }
  bool str(const json& obj, const char* key, const std::string& path, std::string& out, bool required = true) {
    const json* v = field(obj, key, path, required);
    if (v == nullptr) return ok_;
    if (!v->is_string()) {
      fail_at(path + "." + key, "expected a string (got " + std::string(v->type_name()) + ")");
      return false;
    }
    out = v->get<std::string>();
    return true;
  }
  const json* array(const json& obj, const char* key, const std::string& path, bool required = true) {
    const json* v = field(obj, key, path, required);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) return fail_at(path + "." + key, "expected an array (got " + std::string(v->type_name()) + ")");
    return v;
  }
  std::nullptr_t fail_at(const std::string& path, const std::string& what) {
    if (ok_) error_ = std::string(source_) + ": " + path + " " + what;
    ok_ = false;
    return nullptr;
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

private:
  std::string_view source_;
  bool ok_ = true;
  std::string error_;
};

/// An optional sparse histogram: [lower bound in ns, count] pairs.
bool read_histogram(reader& r, const json& j, const std::string& path, latency_histogram& h) {
  if (const json* hist = r.array(j, "histogram", path, false)) {
    for (std::size_t i = 0; i < hist->size(); ++i) {
      const json& pair = (*hist)[i];
      const std::string hp = path + ".histogram[" + std::to_string(i) + "]";
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() || !pair[1].is_number_unsigned())
        return r.fail_at(hp, "expected [lower bound, count] as unsigned integers"), false;
      h.add(pair[0].get<std::uint64_t>(), pair[1].get<std::uint64_t>());
    }
    return true;
  }
  return r.ok();
}

bool read_block(reader& r, const json& j, const std::string& path, BlockResults& b, std::uint32_t fallback_id) {
  b.site_id = fallback_id;
  std::uint64_t ignored = 0;
  if (!r.str(j, "name", path, b.name) || !r.str(j, "file", path, b.file) || !r.u32(j, "line", path, b.line) ||
      !r.u64(j, "hit_count", path, b.hit_count) || !r.u64(j, "total_time_ns", path, b.total_time_ns) ||
      !r.u64(j, "min_time_ns", path, b.min_time_ns) || !r.u64(j, "max_time_ns", path, b.max_time_ns))
    return false;
  if (const json* avg = r.field(j, "avg_time_ns", path, true); avg == nullptr || !avg->is_number())
    return avg == nullptr ? false : (r.fail_at(path + ".avg_time_ns", "expected a number"), false);
  // Extensions: optional, so that the seed's own files read too.
  if (!r.u32(j, "site_id", path, b.site_id, false) || !r.str(j, "function", path, b.function, false) ||
      !r.u32(j, "column", path, b.column, false) || !r.u64(j, "self_time_ns", path, b.self_time_ns, false) ||
      !r.u64(j, "bytes", path, b.bytes, false) || !r.u64(j, "suspended_time_ns", path, b.suspended_time_ns, false) ||
      !r.u64(j, "suspensions", path, b.suspensions, false) || !r.u64(j, "migrations", path, b.migrations, false) ||
      !r.u64(j, "abandoned", path, b.abandoned, false) ||
      !r.u64(j, "other_callers_hits", path, b.other_callers_hits, false) || !r.u64(j, "p50_ns", path, ignored, false))
    return false;
  if (j.find("self_time_ns") == j.end()) b.self_time_ns = b.total_time_ns;
  if (b.hit_count > 0 && b.min_time_ns > b.max_time_ns) return r.fail_at(path, "has min_time_ns > max_time_ns"), false;
  if (const json* callers = r.array(j, "callers", path, false)) {
    for (std::size_t i = 0; i < callers->size(); ++i) {
      const std::string cp = path + ".callers[" + std::to_string(i) + "]";
      const json& c = (*callers)[i];
      caller_stats s;
      const json* parent = r.field(c, "parent_site_id", cp, true);
      if (parent == nullptr) return false;
      if (parent->is_null())
        s.parent_site_id = no_parent;
      else if (!r.u32(c, "parent_site_id", cp, s.parent_site_id))
        return false;
      if (!r.u64(c, "hit_count", cp, s.hit_count) || !r.u64(c, "total_time_ns", cp, s.total_time_ns)) return false;
      b.callers.push_back(s);
    }
    std::sort(b.callers.begin(), b.callers.end(),
              [](const caller_stats& x, const caller_stats& y) { return x.parent_site_id < y.parent_site_id; });
  } else if (!r.ok()) {
    return false;
  }
  if (!read_histogram(r, j, path, b.histogram)) return false;
  if (const json* waits = r.array(j, "waits", path, false)) {
    for (std::size_t i = 0; i < waits->size(); ++i) {
      const std::string wp = path + ".waits[" + std::to_string(i) + "]";
      const json& x = (*waits)[i];
      WaitResults w;
      if (!x.is_object()) return r.fail_at(wp, "expected an object"), false;
      const json* parent = r.field(x, "parent_site_id", wp, true);
      if (parent == nullptr) return false;
      if (parent->is_null())
        w.parent_site_id = no_parent;
      else if (!r.u32(x, "parent_site_id", wp, w.parent_site_id))
        return false;
      if (!r.u32(x, "site_id", wp, w.site_id) || !r.str(x, "name", wp, w.name) || !r.str(x, "file", wp, w.file) ||
          !r.u32(x, "line", wp, w.line) || !r.u32(x, "column", wp, w.column) || !r.str(x, "function", wp, w.function) ||
          !r.str(x, "awaited", wp, w.awaited) || !r.u64(x, "count", wp, w.count) ||
          !r.u64(x, "total_time_ns", wp, w.total_time_ns) || !r.u64(x, "min_time_ns", wp, w.min_time_ns) ||
          !r.u64(x, "max_time_ns", wp, w.max_time_ns) || !r.u64(x, "migrations", wp, w.migrations, false) ||
          !read_histogram(r, x, wp, w.histogram))
        return false;
      if (w.count > 0 && w.min_time_ns > w.max_time_ns) return r.fail_at(wp, "has min_time_ns > max_time_ns"), false;
      b.waits.push_back(std::move(w));
    }
    std::sort(b.waits.begin(), b.waits.end(),
              [](const WaitResults& x, const WaitResults& y) { return x.site_id < y.site_id; });
    for (std::size_t i = 1; i < b.waits.size(); ++i)
      if (b.waits[i].site_id == b.waits[i - 1].site_id)
        return r.fail_at(path + ".waits", "has site_id " + std::to_string(b.waits[i].site_id) + " twice"), false;
  } else if (!r.ok()) {
    return false;
  }
  return true;
}

/// One of Profiler::repeat's results (src/report.cpp writes them).
bool read_repetition(reader& r, const json& j, const std::string& path, RepetitionResults& x) {
  std::uint64_t track = 0;
  if (!r.str(j, "name", path, x.name) || !r.u64(j, "track", path, track) ||
      !r.str(j, "stopped_by", path, x.stopped_by) || !r.u64(j, "runs", path, x.runs))
    return false;
  if (track >= static_cast<std::uint64_t>(max_tracks)) return r.fail_at(path + ".track", "is out of range"), false;
  x.track = static_cast<int>(track);
  for (auto [key, v] :
       {std::pair{"min_ns", &x.min_ns}, std::pair{"max_ns", &x.max_ns}, std::pair{"median_ns", &x.median_ns},
        std::pair{"p90_ns", &x.p90_ns}, std::pair{"p99_ns", &x.p99_ns},
        std::pair{"median_ci_low_ns", &x.median_ci_low_ns}, std::pair{"median_ci_high_ns", &x.median_ci_high_ns},
        std::pair{"bytes_fastest", &x.bytes_fastest}, std::pair{"bytes_total", &x.bytes_total},
        std::pair{"max_page_faults", &x.max_page_faults}, std::pair{"max_context_switches", &x.max_context_switches}})
    if (!r.u64(j, key, path, *v)) return false;
  // Calls per run: written since batches exist; older files ran one call.
  if (!r.u64(j, "batch", path, x.batch, false)) return false;
  if (x.batch == 0) return r.fail_at(path + ".batch", "must be at least 1"), false;
  // Written since the figure exists; older files have the runs it comes from.
  const bool has_min_without_outliers = j.contains("min_without_outliers_ns");
  if (!r.u64(j, "min_without_outliers_ns", path, x.min_without_outliers_ns, false)) return false;
  for (auto [key, v] :
       {std::pair{"mean_ns", &x.mean_ns}, std::pair{"stddev_ns", &x.stddev_ns},
        std::pair{"mean_ci_low_ns", &x.mean_ci_low_ns}, std::pair{"mean_ci_high_ns", &x.mean_ci_high_ns},
        std::pair{"median_ci_level", &x.median_ci_level},
        std::pair{"mean_without_outliers_ns", &x.mean_without_outliers_ns},
        std::pair{"best_bytes_per_second", &x.best_bytes_per_second},
        std::pair{"mean_bytes_per_second", &x.mean_bytes_per_second},
        std::pair{"page_faults_per_run", &x.page_faults_per_run},
        std::pair{"context_switches_per_run", &x.context_switches_per_run}})
    if (!r.num(j, key, path, *v)) return false;
  const json* outliers = r.array(j, "outliers", path);
  if (outliers == nullptr) return false;
  for (std::size_t i = 0; i < outliers->size(); ++i) {
    const json& o = (*outliers)[i];
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
      return r.fail_at(path + ".outliers[" + std::to_string(i) + "]", "expected [run, ns] as unsigned integers"), false;
    x.outliers.emplace_back(o[0].get<std::uint64_t>(), o[1].get<std::uint64_t>());
  }
  const json* samples = r.array(j, "samples_ns", path);
  if (samples == nullptr) return false;
  for (std::size_t i = 0; i < samples->size(); ++i) {
    if (!(*samples)[i].is_number_unsigned())
      return r.fail_at(path + ".samples_ns[" + std::to_string(i) + "]", "expected an unsigned integer"), false;
    x.samples_ns.push_back((*samples)[i].get<std::uint64_t>());
  }
  if (x.samples_ns.size() != x.runs)
    return r.fail_at(path,
                     "has " + std::to_string(x.samples_ns.size()) + " samples for " + std::to_string(x.runs) + " runs"),
           false;
  if (!has_min_without_outliers) {
    std::vector<bool> outlier(x.samples_ns.size());
    for (const auto& o : x.outliers)
      if (o.first < outlier.size()) outlier[o.first] = true;
    x.min_without_outliers_ns = x.min_ns;
    bool any = false;
    for (std::size_t i = 0; i < x.samples_ns.size(); ++i) {
      if (outlier[i]) continue;
      x.min_without_outliers_ns = any ? std::min(x.min_without_outliers_ns, x.samples_ns[i]) : x.samples_ns[i];
      any = true;
    }
  }
  return true;
}

} // namespace

expected<ProfilerResults> read_results_json(std::string_view text, std::string_view source) {
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return fail(errc::invalid_input,
                std::string(source) + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const std::exception& e) {
    return fail(errc::invalid_input, std::string(source) + ": cannot read: " + e.what());
  }
  reader r(source);
  ProfilerResults out;
  if (!doc.is_object()) return fail(errc::invalid_input, std::string(source) + ": expected a results object");
  if (!r.str(doc, "profiler_name", "$", out.profiler_name)) return fail(errc::invalid_input, r.error());
  const json* tracks = r.array(doc, "tracks", "$");
  if (tracks == nullptr) return fail(errc::invalid_input, r.error());
  std::uint32_t next_id = 0;
  for (std::size_t ti = 0; ti < tracks->size(); ++ti) {
    const std::string tp = "$.tracks[" + std::to_string(ti) + "]";
    const json& tj = (*tracks)[ti];
    TrackResults t;
    std::uint64_t idx = 0;
    if (!r.u64(tj, "track_idx", tp, idx)) return fail(errc::invalid_input, r.error());
    if (idx >= static_cast<std::uint64_t>(max_tracks))
      return fail(errc::invalid_input, std::string(source) + ": " + tp + ".track_idx is out of range [0, 256)");
    t.track_idx = static_cast<int>(idx);
    if (const json* name = r.field(tj, "track_name", tp, false); name != nullptr && !name->is_null()) {
      if (!name->is_string())
        return fail(errc::invalid_input, std::string(source) + ": " + tp + ".track_name expected a string or null");
      t.track_name = name->get<std::string>();
    }
    if (const json* en = r.field(tj, "enabled", tp, false); en != nullptr) {
      if (!en->is_boolean())
        return fail(errc::invalid_input, std::string(source) + ": " + tp + ".enabled expected a boolean");
      t.enabled = en->get<bool>();
    }
    const json* blocks = r.array(tj, "blocks", tp);
    if (blocks == nullptr) return fail(errc::invalid_input, r.error());
    for (std::size_t bi = 0; bi < blocks->size(); ++bi) {
      BlockResults b;
      if (!read_block(r, (*blocks)[bi], tp + ".blocks[" + std::to_string(bi) + "]", b, next_id++))
        return fail(errc::invalid_input, r.error());
      t.blocks.push_back(std::move(b));
    }
    out.tracks.push_back(std::move(t));
  }
  std::sort(out.tracks.begin(), out.tracks.end(),
            [](const TrackResults& a, const TrackResults& b) { return a.track_idx < b.track_idx; });
  for (std::size_t i = 1; i < out.tracks.size(); ++i)
    if (out.tracks[i].track_idx == out.tracks[i - 1].track_idx)
      return fail(errc::invalid_input,
                  std::string(source) + ": track " + std::to_string(out.tracks[i].track_idx) + " appears twice");
  std::string clock;
  if (!r.str(doc, "clock_source", "$", clock, false)) return fail(errc::invalid_input, r.error());
  out.clock = clock == "tsc" ? clock_source::tsc : clock_source::steady_clock;
  if (const json* diags = r.array(doc, "diagnostics", "$", false)) {
    for (const auto& d : *diags)
      if (d.is_string()) out.diagnostics.push_back(d.get<std::string>());
  } else if (!r.ok()) {
    return fail(errc::invalid_input, r.error());
  }
  if (const json* reps = r.array(doc, "repetitions", "$", false)) {
    for (std::size_t i = 0; i < reps->size(); ++i) {
      RepetitionResults x;
      if (!read_repetition(r, (*reps)[i], "$.repetitions[" + std::to_string(i) + "]", x))
        return fail(errc::invalid_input, r.error());
      out.repetitions.push_back(std::move(x));
    }
  } else if (!r.ok()) {
    return fail(errc::invalid_input, r.error());
  }
  return out;
}

expected<ProfilerResults> load_results_json(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(errc::io_error, "cannot open '" + file.string() + "' for reading");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(errc::io_error, "cannot read '" + file.string() + "'");
  return read_results_json(text.str(), file.string());
}

ProfilerResults merge_results(const std::vector<ProfilerResults>& inputs) {
  ProfilerResults out;
  std::map<std::tuple<int, std::string, std::string, std::uint32_t>, std::pair<int, std::size_t>>
      where;                                         // -> track, block
  std::map<std::string, std::uint32_t> wait_key_ids; // a wait's place -> its merged id
  std::uint32_t next_id = 0;
  for (std::size_t n = 0; n < inputs.size(); ++n) {
    const auto& in = inputs[n];
    if (n == 0)
      out.profiler_name = in.profiler_name, out.clock = in.clock;
    else if (in.profiler_name != out.profiler_name && out.profiler_name.find(in.profiler_name) == std::string::npos)
      out.profiler_name += "+" + in.profiler_name;
    std::map<std::uint32_t, std::uint32_t> ids; // this input's site ids -> merged ids
    for (const auto& t : in.tracks)
      for (const auto& b : t.blocks) {
        const auto key = std::make_tuple(t.track_idx, b.name, b.file, b.line);
        if (auto it = where.find(key); it != where.end()) {
          ids[b.site_id] = out.find_track(it->second.first)->blocks[it->second.second].site_id;
        } else {
          ids[b.site_id] = next_id++;
        }
      }
    for (const auto& t : in.tracks) {
      auto tit = std::find_if(out.tracks.begin(), out.tracks.end(),
                              [&](const TrackResults& x) { return x.track_idx == t.track_idx; });
      if (tit == out.tracks.end()) {
        out.tracks.push_back(TrackResults{t.track_idx, t.track_name, t.enabled, {}});
        tit = std::prev(out.tracks.end());
      }
      if (!tit->track_name) tit->track_name = t.track_name;
      for (const auto& b : t.blocks) {
        BlockResults copy = b;
        copy.site_id = ids[b.site_id];
        for (auto& c : copy.callers)
          if (c.parent_site_id != no_parent) {
            auto m = ids.find(c.parent_site_id);
            c.parent_site_id = m != ids.end() ? m->second : no_parent;
          }
        std::sort(copy.callers.begin(), copy.callers.end(),
                  [](const caller_stats& x, const caller_stats& y) { return x.parent_site_id < y.parent_site_id; });
        // Waits are matched by their place (path, what was awaited, column)
        // and numbered in the merged results, parents first.
        std::map<std::uint32_t, std::uint32_t> wait_ids;
        for (auto& w : copy.waits) {
          const std::string wkey = b.wait_path(w) + '\n' + w.awaited + '\n' + std::to_string(w.column);
          auto [it, fresh] = wait_key_ids.try_emplace(wkey, 0);
          if (fresh) it->second = next_id++;
          wait_ids[w.site_id] = it->second;
        }
        for (auto& w : copy.waits) {
          w.site_id = wait_ids[w.site_id];
          if (w.parent_site_id != no_parent) {
            auto m = wait_ids.find(w.parent_site_id);
            w.parent_site_id = m != wait_ids.end() ? m->second : no_parent;
          }
        }
        std::sort(copy.waits.begin(), copy.waits.end(),
                  [](const WaitResults& x, const WaitResults& y) { return x.site_id < y.site_id; });
        const auto key = std::make_tuple(t.track_idx, b.name, b.file, b.line);
        if (auto it = where.find(key); it != where.end()) {
          BlockResults& target = tit->blocks[it->second.second]; // the key holds the track
          copy.site_id = target.site_id;
          target.merge(copy);
        } else {
          where[key] = {t.track_idx, tit->blocks.size()};
          tit->blocks.push_back(std::move(copy));
        }
      }
    }
    for (const auto& d : in.diagnostics)
      if (std::find(out.diagnostics.begin(), out.diagnostics.end(), d) == out.diagnostics.end())
        out.diagnostics.push_back(d);
    out.repetitions.insert(out.repetitions.end(), in.repetitions.begin(), in.repetitions.end());
  }
  std::sort(out.tracks.begin(), out.tracks.end(),
            [](const TrackResults& a, const TrackResults& b) { return a.track_idx < b.track_idx; });
  for (auto& t : out.tracks)
    std::sort(t.blocks.begin(), t.blocks.end(),
              [](const BlockResults& a, const BlockResults& b) { return a.site_id < b.site_id; });
  return out;
}

namespace {
double change(double base, double now) { return base == 0 ? 0.0 : (now - base) / base * 100.0; }
} // namespace

Comparison compare_results(const ProfilerResults& base, const ProfilerResults& current, double threshold_pct) {
  Comparison out;
  out.threshold_pct = threshold_pct;
  // Key: track, name, ordinal among same-named blocks of the track.
  using key_t = std::tuple<int, std::string, int>;
  auto index = [](const ProfilerResults& r) {
    std::map<key_t, const BlockResults*> m;
    for (const auto& t : r.tracks) {
      std::map<std::string, int> seen;
      for (const auto& b : t.blocks) m[{t.track_idx, b.name, seen[b.name]++}] = &b;
    }
    return m;
  };
  const auto a = index(base), b = index(current);
  std::map<key_t, BlockComparison> rows;
  for (const auto& [k, blk] : a) {
    auto& row = rows[k];
    row.track_idx = std::get<0>(k), row.name = std::get<1>(k), row.in_base = true;
    row.base_hits = blk->hit_count, row.base_mean_ns = blk->avg_time_ns(), row.base_p99_ns = blk->percentiles().p99_ns;
    row.base_active_ns = blk->active_time_ns(), row.base_suspended_ns = blk->suspended_time_ns;
  }
  for (const auto& [k, blk] : b) {
    auto& row = rows[k];
    row.track_idx = std::get<0>(k), row.name = std::get<1>(k), row.in_current = true;
    row.current_hits = blk->hit_count, row.current_mean_ns = blk->avg_time_ns();
    row.current_p99_ns = blk->percentiles().p99_ns;
    row.current_active_ns = blk->active_time_ns(), row.current_suspended_ns = blk->suspended_time_ns;
  }
  // Waits of each block, matched by their path and what was awaited.
  auto waits_of = [](const BlockResults& blk) {
    std::map<std::string, std::uint64_t> m;
    for (const auto& w : blk.waits)
      m[blk.wait_path(w) + (w.awaited.empty() || w.awaited == w.name ? "" : " " + w.awaited)] += w.total_time_ns;
    return m;
  };
  for (auto& [k, row] : rows) {
    if (row.in_base && row.in_current) {
      std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> both;
      for (const auto& [path, ns] : waits_of(*a.at(k))) both[path].first = ns;
      for (const auto& [path, ns] : waits_of(*b.at(k))) both[path].second = ns;
      for (const auto& [path, v] : both)
        row.waits.push_back(
            {path, v.first, v.second, change(static_cast<double>(v.first), static_cast<double>(v.second))});
    }
    row.mean_change_pct = change(row.base_mean_ns, row.current_mean_ns);
    row.p99_change_pct = change(static_cast<double>(row.base_p99_ns), static_cast<double>(row.current_p99_ns));
    row.active_change_pct = change(static_cast<double>(row.base_active_ns), static_cast<double>(row.current_active_ns));
    row.suspended_change_pct =
        change(static_cast<double>(row.base_suspended_ns), static_cast<double>(row.current_suspended_ns));
    row.regression = row.in_base && row.in_current && row.base_hits > 0 && row.current_hits > 0 &&
                     (row.mean_change_pct > threshold_pct || row.p99_change_pct > threshold_pct);
    out.blocks.push_back(row);
  }
  return out;
}

std::string to_text(const Comparison& c) {
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "%-6s %-32s %12s %12s %9s %12s %9s %12s %9s %12s %9s\n", "track", "block", "hits",
                "mean", "change", "p99", "change", "active", "change", "suspended", "change");
  os << line;
  int regressions = 0;
  for (const auto& b : c.blocks) {
    if (!b.in_base || !b.in_current) {
      os << (b.in_base ? "  gone  " : "  new   ") << b.track_idx << ' ' << b.name << '\n';
      continue;
    }
    auto pct = [](double v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%+.1f%%", v);
      return std::string(buf);
    };
    std::snprintf(line, sizeof line, "%-6d %-32s %12llu %12s %9s %12s %9s %12s %9s %12s %9s%s\n", b.track_idx,
                  b.name.c_str(), static_cast<unsigned long long>(b.current_hits),
                  format_time_ns(static_cast<std::uint64_t>(b.current_mean_ns)).c_str(), pct(b.mean_change_pct).c_str(),
                  format_time_ns(b.current_p99_ns).c_str(), pct(b.p99_change_pct).c_str(),
                  format_time_ns(b.current_active_ns).c_str(), pct(b.active_change_pct).c_str(),
                  format_time_ns(b.current_suspended_ns).c_str(), pct(b.suspended_change_pct).c_str(),
                  b.regression ? "  << REGRESSION" : "");
    os << line;
    for (const auto& w : b.waits) {
      std::snprintf(line, sizeof line, "         waited on %-60s %12s %9s\n", w.path.c_str(),
                    format_time_ns(w.current_ns).c_str(), w.base_ns == 0 ? "new" : pct(w.change_pct).c_str());
      os << line;
    }
    regressions += b.regression ? 1 : 0;
  }
  std::snprintf(line, sizeof line, "%d regression(s) over %.1f%% (mean or p99)\n", regressions, c.threshold_pct);
  os << line;
  return os.str();
}

} // namespace stichotrope
