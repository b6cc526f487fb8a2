// The OpenTelemetry exporter: the optional stichotrope::otel target. For every
// profiler whose configuration names an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318, or `endpoint` in the
// file's [otel] table) a thread of its own, every export interval
// (OTEL_METRIC_EXPORT_INTERVAL, 60 s by default), takes the interval's
// results with take_results() and sends them as OTLP/HTTP metrics with delta
// temporality through opentelemetry-cpp's exporter (Debian's
// opentelemetry-cpp-dev); when timeline capture is on, the blocks and timed
// awaits that closed since the last export go out as spans, one trace per
// coroutine flow. The last interval is sent when the profiler ends. Linking
// the target is enough: this file registers itself with the library at
// start-up. A failed export is counted and named in results.diagnostics; the
// program's threads never wait for it. docs/telemetry.md.
#include <opentelemetry/common/key_value_iterable_view.h>
#include <opentelemetry/common/timestamp.h>
#include <opentelemetry/exporters/otlp/otlp_http_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_http_exporter_options.h>
#include <opentelemetry/exporters/otlp/otlp_http_metric_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_http_metric_exporter_options.h>
#include <opentelemetry/nostd/span.h>
#include <opentelemetry/sdk/common/global_log_handler.h>
#include <opentelemetry/sdk/instrumentationscope/instrumentation_scope.h>
#include <opentelemetry/sdk/metrics/export/metric_producer.h>
#include <opentelemetry/sdk/metrics/push_metric_exporter.h>
#include <opentelemetry/sdk/resource/resource.h>
#include <opentelemetry/sdk/trace/exporter.h>
#include <opentelemetry/sdk/trace/recordable.h>
#include <opentelemetry/trace/span_context.h>
#include <opentelemetry/trace/span_id.h>
#include <opentelemetry/trace/trace_id.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <optional>
#include <utility>
#include <vector>

#include <unistd.h>
import stichotrope;

namespace {

namespace otlp = opentelemetry::exporter::otlp;
namespace msdk = opentelemetry::sdk::metrics;
namespace tsdk = opentelemetry::sdk::trace;
namespace api = opentelemetry::trace;
using opentelemetry::common::SystemTimestamp;
using stichotrope::latency_histogram;

constexpr std::uint64_t default_interval_ms = 60'000; // the OpenTelemetry specification's default
constexpr std::uint64_t default_timeout_ms = 10'000;  // the same for OTEL_EXPORTER_OTLP_TIMEOUT

std::uint64_t splitmix(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

/// The resource: service.name and OTEL_RESOURCE_ATTRIBUTES as configured
/// (code > environment > file, already checked by the configuration), on
/// top of the SDK's defaults (telemetry.sdk.*).
opentelemetry::sdk::resource::Resource make_resource(const stichotrope::Config& c, const std::string& profiler) {
  opentelemetry::sdk::resource::ResourceAttributes attributes;
  if (c.resource_attributes) {
    std::string_view s = *c.resource_attributes;
    while (!s.empty()) {
      const auto comma = s.find(',');
      const std::string_view entry = s.substr(0, comma);
      if (const auto eq = entry.find('='); eq != std::string_view::npos)
        attributes.SetAttribute(trim(entry.substr(0, eq)), trim(entry.substr(eq + 1)));
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
  }
  if (c.service_name && !c.service_name->empty()) attributes.SetAttribute("service.name", *c.service_name);
  attributes.SetAttribute("stichotrope.profiler", profiler);
  return opentelemetry::sdk::resource::Resource::Create(attributes);
}

// ---------------------------------------------------------------- failures

namespace ilog = opentelemetry::sdk::common::internal_log;

/// opentelemetry-cpp built with async export (Debian's is) returns success
/// from Export() and tells of a failed request only through the SDK's
/// internal log. This handler, installed once, catches the exporters' error
/// reports while one of our exports is in progress (they run one at a time,
/// each followed by ForceFlush(), which waits for its request), so a failure
/// is counted and named in the profiler's diagnostics instead of printed;
/// every other message goes to the handler that was there before.
class failure_log final : public ilog::LogHandler {
public:
  explicit failure_log(opentelemetry::nostd::shared_ptr<ilog::LogHandler> previous) : previous_(std::move(previous)) {}

  void Handle(ilog::LogLevel level, const char* file, int line, const char* msg,
              const opentelemetry::sdk::common::AttributeMap& attributes) noexcept override {
    const std::string_view m = msg ? msg : "";
    if (level == ilog::LogLevel::Error && m.find("[OTLP") != std::string_view::npos) {
      // Counted when an export is in progress; otherwise it is the late
      // answer of one given up at its deadline (already counted as failed).
      std::lock_guard lock(mutex_);
      if (open_ && errors_++ == 0) reason_ = std::string(m);
      return;
    }
    if (previous_) previous_->Handle(level, file, line, msg, attributes);
  }

  /// Runs `send` as the only export in progress; the first error the
  /// exporters reported meanwhile, or nothing.
  template <class F>
  std::optional<std::string> watch(F&& send, std::string_view silent_failure) {
    std::lock_guard serial(serial_);
    {
      std::lock_guard lock(mutex_);
      open_ = true;
      errors_ = 0;
      reason_.clear();
    }
    const bool ok = send();
    std::lock_guard lock(mutex_);
    open_ = false;
    if (ok && errors_ == 0) return std::nullopt;
    return reason_.empty() ? std::string(silent_failure) : reason_;
  }

private:
  opentelemetry::nostd::shared_ptr<ilog::LogHandler> previous_;
  std::mutex serial_; // one export at a time, across profilers
  std::mutex mutex_;
  bool open_ = false;
  std::uint64_t errors_ = 0;
  std::string reason_;
};

failure_log& failures() {
  static failure_log* log = [] {
    auto* l = new failure_log(ilog::GlobalLogHandler::GetLogHandler()); // never freed: read by the SDK's threads
    ilog::GlobalLogHandler::SetLogHandler(opentelemetry::nostd::shared_ptr<ilog::LogHandler>(
        std::shared_ptr<ilog::LogHandler>(l, [](ilog::LogHandler*) {})));
    return l;
  }();
  return *log;
}

// ---------------------------------------------------------------- metrics

/// The explicit bounds of a data point, in seconds, and its counts: exactly
/// the log-linear buckets from the first to the last non-empty one. An
/// explicit bucket i holds (bounds[i-1], bounds[i]]; bucket b of the
/// histogram holds the integers [lower_bound(b), upper_bound(b)] of ns, so
/// the bounds are upper_bound(b) ns. Bounds are per data point in OTLP, so a
/// point pays only for the buckets its latencies fall in.
msdk::HistogramPointData histogram_point(const stichotrope::BlockResults& b) {
  msdk::HistogramPointData h;
  const auto& hist = b.histogram;
  if (!hist.counts.empty()) {
    if (hist.first > 0) { // (-inf, upper(first - 1)]: empty
      h.boundaries_.push_back(static_cast<double>(latency_histogram::upper_bound(hist.first - 1)) * 1e-9);
      h.counts_.push_back(0);
    }
    for (std::size_t i = 0; i < hist.counts.size(); ++i) {
      const unsigned bucket = hist.first + static_cast<unsigned>(i);
      h.counts_.push_back(hist.counts[i]);
      if (bucket + 1 < latency_histogram::bucket_count)
        h.boundaries_.push_back(static_cast<double>(latency_histogram::upper_bound(bucket)) * 1e-9);
    }
    if (h.counts_.size() == h.boundaries_.size()) h.counts_.push_back(0); // (upper(last), +inf): empty
  } else {
    h.counts_.push_back(0);
  }
  h.sum_ = static_cast<double>(b.total_time_ns) * 1e-9;
  h.min_ = static_cast<double>(b.min_time_ns) * 1e-9;
  h.max_ = static_cast<double>(b.max_time_ns) * 1e-9;
  h.count_ = b.hit_count;
  h.record_min_max_ = b.hit_count > 0;
  return h;
}

msdk::MetricData metric(std::string name, std::string description, std::string unit, msdk::InstrumentType type,
                        msdk::InstrumentValueType value_type, SystemTimestamp start, SystemTimestamp end) {
  msdk::MetricData m;
  m.instrument_descriptor =
      msdk::InstrumentDescriptor{std::move(name), std::move(description), std::move(unit), type, value_type};
  m.aggregation_temporality = msdk::AggregationTemporality::kDelta;
  m.start_ts = start;
  m.end_ts = end;
  return m;
}

/// One interval's results as OTLP metrics: per block (attributes profiler,
/// track, track_name, block, site) a duration histogram and counters of
/// self, active and suspended seconds, suspensions and abandoned blocks.
std::vector<msdk::MetricData> interval_metrics(const stichotrope::ProfilerResults& r, SystemTimestamp start,
                                               SystemTimestamp end) {
  using msdk::InstrumentType;
  using msdk::InstrumentValueType;
  std::vector<msdk::MetricData> out;
  out.push_back(metric("stichotrope.block.duration", "Wall time of each block, from open to close", "s",
                       InstrumentType::kHistogram, InstrumentValueType::kDouble, start, end));
  out.push_back(metric("stichotrope.block.self_time", "Wall time of blocks minus their child blocks", "s",
                       InstrumentType::kCounter, InstrumentValueType::kDouble, start, end));
  out.push_back(metric("stichotrope.block.active_time", "Time the block's flow was running", "s",
                       InstrumentType::kCounter, InstrumentValueType::kDouble, start, end));
  out.push_back(metric("stichotrope.block.suspended_time", "Time the block's coroutine was suspended inside it", "s",
                       InstrumentType::kCounter, InstrumentValueType::kDouble, start, end));
  out.push_back(metric("stichotrope.block.suspensions", "Suspensions inside blocks", "{suspension}",
                       InstrumentType::kCounter, InstrumentValueType::kLong, start, end));
  out.push_back(metric("stichotrope.block.abandoned", "Blocks destroyed with their suspended coroutine", "{block}",
                       InstrumentType::kCounter, InstrumentValueType::kLong, start, end));
  for (const auto& t : r.tracks) {
    for (const auto& b : t.blocks) {
      if (b.hit_count == 0 && b.abandoned == 0) continue;
      msdk::PointAttributes a;
      a.SetAttribute("profiler", r.profiler_name);
      a.SetAttribute("track", static_cast<std::int64_t>(t.track_idx));
      a.SetAttribute("track_name", t.track_name.value_or(""));
      a.SetAttribute("block", b.name);
      a.SetAttribute("site", b.file + ":" + std::to_string(b.line));
      auto add = [&](std::size_t i, msdk::PointType point) {
        out[i].point_data_attr_.push_back(msdk::PointDataAttributes{a, std::move(point)});
      };
      add(0, histogram_point(b));
      auto seconds = [](std::uint64_t ns) {
        msdk::SumPointData s;
        s.value_ = static_cast<double>(ns) * 1e-9;
        return s;
      };
      auto count = [](std::uint64_t n) {
        msdk::SumPointData s;
        s.value_ = static_cast<std::int64_t>(n);
        return s;
      };
      add(1, seconds(b.self_time_ns));
      add(2, seconds(b.active_time_ns()));
      add(3, seconds(b.suspended_time_ns));
      add(4, count(b.suspensions));
      add(5, count(b.abandoned));
    }
  }
  std::erase_if(out, [](const msdk::MetricData& m) { return m.point_data_attr_.empty(); }); // a quiet interval
  return out;
}

// ---------------------------------------------------------------- spans

/// A suspension or resumption of a flow with open blocks: an event of the
/// innermost span of that flow around it ("suspend" on the thread it left,
/// "resume" on the thread it came back on).
struct span_event {
  std::uint64_t t_ns = 0;
  bool resume = false;
  std::uint64_t thread_id = 0;
  unsigned age = 0;
  std::uint32_t wait_site = stichotrope::no_parent; // a suspension: the await it waits on (docs/coroutines.md)
};

/// A block event of the timeline waiting to become a span: it is sent once
/// its parent (the innermost block of the same flow that encloses it) is
/// known, or once it has waited `hold_ticks` exports without one (a root,
/// or a parent that stays open longer: then it is sent without a parent).
struct pending_span {
  std::uint64_t start_ns = 0, end_ns = 0; // timeline ns
  std::vector<span_event> marks;
  std::uint32_t site = 0;
  std::uint64_t flow = 0;
  std::uint64_t thread_id = 0;
  std::string thread_name;
  std::uint64_t arrival = 0; // order of arrival: an outer block closes after its inner ones
  std::uint64_t span_id = 0;
  unsigned age = 0;
};

constexpr unsigned hold_ticks = 2;
/// A mark is written before its span closes; one whose span has not come
/// in this many exports (a block open that long, or one read in the same
/// export as a mark on another thread that was read first) is dropped.
constexpr unsigned mark_ticks = 8;

struct span_group {
  std::vector<pending_span> pending;
  std::vector<span_event> marks; // not yet given to a span
};

struct export_counters {
  std::uint64_t attempts = 0, failures = 0;
};

// ---------------------------------------------------------------- a session

/// One profiler's export: its exporters, its thread and its interval.
class session {
public:
  session(stichotrope::Profiler& p, const stichotrope::Config& c)
      : settings_(settings_of(c)), profiler_(p), resource_(make_resource(c, p.name())),
        scope_(opentelemetry::sdk::instrumentationscope::InstrumentationScope::Create("stichotrope", "0.1.0")),
        interval_(std::chrono::milliseconds(c.export_interval_ms.value_or(default_interval_ms))),
        timeout_(export_timeout(p)) {
    std::string base = *c.otlp_endpoint;
    while (!base.empty() && base.back() == '/') base.pop_back();
    url_ = base;
    failures(); // installed before the first export can fail
    metrics_ = make_metrics(timeout_);
    spans_ = make_spans(timeout_);
    std::random_device rd;
    nonce_ = (std::uint64_t{rd()} << 32) ^ rd() ^ static_cast<std::uint64_t>(::getpid());
    // Timeline times are ns since the clock's calibration: the wall clock now
    // minus the timeline clock now maps them onto the epoch.
    const auto sys_now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    const auto tl_now = stichotrope::detail::ns_since_epoch();
    epoch_offset_ns_ = static_cast<std::int64_t>(sys_now) - static_cast<std::int64_t>(tl_now);
    interval_start_ = std::chrono::system_clock::now();
    thread_ = std::thread([this] { run(); });
  }

  /// The settings this session was made with (a reload that changes none
  /// of them keeps it).
  static std::tuple<std::optional<std::string>, std::optional<std::string>, std::optional<std::string>,
                    std::optional<std::uint64_t>>
  settings_of(const stichotrope::Config& c) {
    return {c.otlp_endpoint, c.service_name, c.resource_attributes, c.export_interval_ms};
  }
  const decltype(settings_of({})) settings_;

  /// Stops the thread, then sends what the last interval holds (the
  /// profiler is still whole: this runs first thing in ~Profiler). The
  /// whole of it takes at most the export timeout + 1 s, however the
  /// collector behaves: an export in progress on the thread gets a short
  /// grace, then its request is cancelled (its exporters shut down); the
  /// last interval goes out through fresh exporters whose requests share
  /// what remains of the timeout; their shutdown gets what is left and the
  /// second (docs/telemetry.md, "Ending").
  void finish() {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    const auto remaining = [&](std::chrono::steady_clock::time_point until) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(until - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration::zero()));
    };
    {
      std::unique_lock lock(mutex_);
      stopping_ = true;
      wake_.notify_all();
      const auto grace = std::min<std::chrono::milliseconds>(timeout_ / 4, std::chrono::milliseconds(250));
      if (!wake_.wait_for(lock, grace, [this] { return !exporting_; })) {
        lock.unlock();
        metrics_->Shutdown(std::chrono::milliseconds(1)); // cancels the request in progress
        spans_->Shutdown(std::chrono::milliseconds(1));
      }
    }
    thread_.join();
    metrics_ = make_metrics(std::max(remaining(deadline) / 2, std::chrono::milliseconds(1)));
    export_metrics();
    spans_ = make_spans(std::max(remaining(deadline), std::chrono::milliseconds(1)));
    export_spans(true);
    metrics_->Shutdown(remaining(deadline + std::chrono::seconds(1)));
    spans_->Shutdown(remaining(deadline + std::chrono::seconds(1)));
  }

  /// OTEL_EXPORTER_OTLP_TIMEOUT: milliseconds, as the specification says
  /// (the SDK would read the number as seconds); a bad value is reported
  /// and the default (10 s) used.
  static std::chrono::milliseconds export_timeout(stichotrope::Profiler& p) {
    const char* v = std::getenv("OTEL_EXPORTER_OTLP_TIMEOUT");
    std::uint64_t ms = default_timeout_ms;
    if (v != nullptr && *v != '\0') {
      const std::string_view text(v);
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
      if (ec != std::errc{} || end != text.data() + text.size() || ms == 0 || ms > 3'600'000) {
        stichotrope::detail::add_diagnostic(p, "otlp: OTEL_EXPORTER_OTLP_TIMEOUT='" + std::string(text) +
                                                   "' is not a timeout in milliseconds (1 to 3600000); 10000 is used");
        ms = default_timeout_ms;
      }
    }
    return std::chrono::milliseconds(ms);
  }

  /// Exporters whose requests each give up after `timeout` (the SDK reads
  /// OTEL_EXPORTER_OTLP_HEADERS and the rest of the environment).
  std::unique_ptr<msdk::PushMetricExporter> make_metrics(std::chrono::milliseconds timeout) const {
    otlp::OtlpHttpMetricExporterOptions mo;
    mo.url = url_ + "/v1/metrics";
    mo.content_type = otlp::HttpRequestContentType::kBinary;
    mo.aggregation_temporality = otlp::PreferredAggregationTemporality::kDelta;
    mo.timeout = timeout;
    return otlp::OtlpHttpMetricExporterFactory::Create(mo);
  }
  std::unique_ptr<tsdk::SpanExporter> make_spans(std::chrono::milliseconds timeout) const {
    otlp::OtlpHttpExporterOptions to;
    to.url = url_ + "/v1/traces";
    to.content_type = otlp::HttpRequestContentType::kBinary;
    to.timeout = timeout;
    return otlp::OtlpHttpExporterFactory::Create(to);
  }

  std::string no_answer() const {
    return "no answer within OTEL_EXPORTER_OTLP_TIMEOUT (" + std::to_string(timeout_.count()) + " ms)";
  }

private:
  void run() {
    stichotrope::set_thread_name("otlp-export");
    std::unique_lock lock(mutex_);
    for (;;) {
      if (wake_.wait_for(lock, interval_, [this] { return stopping_; })) return;
      exporting_ = true;
      lock.unlock();
      export_metrics();
      export_spans(false);
      lock.lock();
      exporting_ = false;
      wake_.notify_all(); // finish() may be waiting for this export
    }
  }

  void export_metrics() {
    const auto end = std::chrono::system_clock::now();
    const auto results = profiler_.take_results();
    const SystemTimestamp start_ts{interval_start_}, end_ts{end};
    interval_start_ = end; // the next interval begins where this one ended: no gap, no overlap
    auto data = interval_metrics(results, start_ts, end_ts);
    if (data.empty()) return; // nothing happened: a delta of zero needs no request
    msdk::ResourceMetrics rm;
    rm.resource_ = &resource_;
    rm.scope_metric_data_.push_back(msdk::ScopeMetrics{scope_.get(), std::move(data)});
    // (A request ends by its exporter's timeout: the flush's own bound is a
    // second more.)
    const auto failure = failures().watch(
        [&] {
          const bool sent = metrics_->Export(rm) == opentelemetry::sdk::common::ExportResult::kSuccess;
          return metrics_->ForceFlush(timeout_ + std::chrono::seconds(1)) && sent;
        },
        no_answer());
    count(metric_counters_, failure, "metrics", url_ + "/v1/metrics");
  }

  void count(export_counters& c, const std::optional<std::string>& failure, std::string_view what,
             const std::string& where) {
    ++c.attempts;
    if (!failure) return;
    ++c.failures;
    const std::string key = "otlp " + std::string(what) + ": ";
    stichotrope::detail::replace_diagnostic(profiler_, key,
                                            key + std::to_string(c.failures) + " of " + std::to_string(c.attempts) +
                                                " exports to " + where +
                                                " failed; their data is lost (first error: " + *failure + ")");
  }

  void export_spans(bool last) {
    if (!profiler_.is_timeline_on() && groups_.empty() && !last) return;
    const auto timeline = profiler_.get_timeline();
    if (timeline.threads.empty() && groups_.empty()) return;
    // New block events since the last export, by flow (a coroutine flow is
    // one group across threads; a thread's own flow is a group per thread).
    std::uint64_t dropped = 0;
    for (const auto& t : timeline.threads) {
      dropped += t.dropped;
      auto& mark = marks_[t.thread_id];
      std::uint64_t seen_at_end = 0; // events of this read that end at mark.end_ns
      for (const auto& e : t.events) {
        // Events are in the order the thread wrote them: nondecreasing end.
        if (e.end_ns < mark.end_ns) continue;
        if (e.end_ns == mark.end_ns) {
          if (++seen_at_end <= mark.at_end) continue; // taken by an earlier export
          mark.at_end = seen_at_end;
        } else {
          mark.end_ns = e.end_ns;
          mark.at_end = seen_at_end = 1;
        }
        const auto key =
            e.flow_id != 0 ? std::pair{std::uint64_t{1}, e.flow_id} : std::pair{std::uint64_t{0}, t.thread_id};
        if (e.kind != stichotrope::timeline_kind::block) {
          groups_[key].marks.push_back(
              span_event{e.start_ns, e.kind == stichotrope::timeline_kind::resume, t.thread_id, 0, e.site_id});
          continue;
        }
        pending_span s;
        s.start_ns = e.start_ns;
        s.end_ns = e.end_ns;
        s.site = e.site_id;
        s.flow = e.flow_id;
        s.thread_id = t.thread_id;
        s.thread_name = t.thread_name;
        s.arrival = arrivals_++;
        s.span_id = splitmix(nonce_ ^ s.arrival) | 1; // never 0 (invalid)
        groups_[key].pending.push_back(std::move(s));
      }
    }
    if (dropped > dropped_reported_) {
      dropped_reported_ = dropped;
      stichotrope::detail::replace_diagnostic(profiler_, "otlp traces: timeline",
                                              "otlp traces: timeline buffers dropped " + std::to_string(dropped) +
                                                  " events; those blocks are not sent as spans (STICHOTROPE_TIMELINE)");
    }
    std::vector<std::unique_ptr<tsdk::Recordable>> batch;
    for (auto it = groups_.begin(); it != groups_.end();) {
      resolve(it->first, it->second, timeline, last, batch);
      it = it->second.pending.empty() && it->second.marks.empty() ? groups_.erase(it) : std::next(it);
    }
    if (batch.empty()) return;
    const auto failure = failures().watch(
        [&] {
          const bool sent = spans_->Export(opentelemetry::nostd::span<std::unique_ptr<tsdk::Recordable>>(batch)) ==
                            opentelemetry::sdk::common::ExportResult::kSuccess;
          return spans_->ForceFlush(timeout_ + std::chrono::seconds(1)) && sent;
        },
        no_answer());
    count(span_counters_, failure, "traces", url_ + "/v1/traces");
  }

  api::TraceId trace_id(std::uint64_t high, std::uint64_t low) const {
    std::array<std::uint8_t, 16> b{};
    for (int i = 0; i < 8; ++i) {
      b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(high >> (56 - 8 * i));
      b[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(low >> (56 - 8 * i));
    }
    return api::TraceId(opentelemetry::nostd::span<const std::uint8_t, 16>(b.data(), 16));
  }
  static api::SpanId span_id(std::uint64_t v) {
    std::array<std::uint8_t, 8> b{};
    for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
    return api::SpanId(opentelemetry::nostd::span<const std::uint8_t, 8>(b.data(), 8));
  }

  /// A timeline time on the wall clock.
  SystemTimestamp wall(std::uint64_t timeline_ns) const {
    return SystemTimestamp(
        std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(static_cast<std::int64_t>(timeline_ns) + epoch_offset_ns_))));
  }

  /// Finds each pending span's parent by nesting, sends those whose place
  /// in the tree is settled and keeps the others for a later export.
  void resolve(std::pair<std::uint64_t, std::uint64_t> key, span_group& g, const stichotrope::Timeline& timeline,
               bool last, std::vector<std::unique_ptr<tsdk::Recordable>>& batch) {
    auto& v = g.pending;
    // Outer before inner: earlier start, then later end, then later arrival.
    std::sort(v.begin(), v.end(), [](const pending_span& a, const pending_span& b) {
      if (a.start_ns != b.start_ns) return a.start_ns < b.start_ns;
      if (a.end_ns != b.end_ns) return a.end_ns > b.end_ns;
      return a.arrival > b.arrival;
    });
    std::vector<std::ptrdiff_t> parent(v.size(), -1);
    std::vector<std::size_t> stack;
    for (std::size_t i = 0; i < v.size(); ++i) {
      while (!stack.empty() && v[stack.back()].end_ns < v[i].end_ns) stack.pop_back();
      if (!stack.empty()) parent[i] = static_cast<std::ptrdiff_t>(stack.back());
      stack.push_back(i);
    }
    // Each mark goes to the innermost span around it (the last in this
    // order that contains it).
    std::vector<span_event> unplaced;
    for (auto& m : g.marks) {
      std::ptrdiff_t at = -1;
      for (std::size_t i = 0; i < v.size(); ++i)
        if (v[i].start_ns <= m.t_ns && m.t_ns <= v[i].end_ns) at = static_cast<std::ptrdiff_t>(i);
      if (at >= 0)
        v[static_cast<std::size_t>(at)].marks.push_back(m);
      else if (!last && ++m.age < mark_ticks)
        unplaced.push_back(m);
    }
    g.marks = std::move(unplaced);
    // A root is settled once it has waited long enough (or at the end); the
    // others follow their root. Parents come before children in this order.
    std::vector<char> settled(v.size(), 0);
    std::vector<std::uint64_t> trace_low(v.size(), 0);
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (parent[i] < 0) {
        settled[i] = last || v[i].age >= hold_ticks;
        trace_low[i] = key.first == 1 ? key.second : splitmix(v[i].span_id);
      } else {
        settled[i] = settled[static_cast<std::size_t>(parent[i])];
        trace_low[i] = trace_low[static_cast<std::size_t>(parent[i])];
      }
    }
    std::vector<pending_span> keep;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!settled[i]) {
        ++v[i].age;
        keep.push_back(std::move(v[i]));
        continue;
      }
      auto& s = v[i];
      auto r = spans_->MakeRecordable();
      const auto high = key.first == 1 ? nonce_ : nonce_ ^ 0x5354494348ull; // thread flows apart from coroutine flows
      const api::SpanContext ctx(trace_id(high, trace_low[i]), span_id(s.span_id), api::TraceFlags{1}, false);
      r->SetIdentity(ctx, parent[i] < 0 ? api::SpanId() : span_id(v[static_cast<std::size_t>(parent[i])].span_id));
      const stichotrope::TimelineSite* site = s.site < timeline.sites.size() ? &timeline.sites[s.site] : nullptr;
      r->SetName(site ? site->name : "block");
      r->SetSpanKind(api::SpanKind::kInternal);
      r->SetStartTime(wall(s.start_ns));
      r->SetDuration(std::chrono::nanoseconds(s.end_ns - s.start_ns));
      if (site) {
        r->SetAttribute("stichotrope.track", static_cast<std::int64_t>(site->track));
        r->SetAttribute("code.filepath", site->file);
        r->SetAttribute("code.lineno", static_cast<std::int64_t>(site->line));
      }
      r->SetAttribute("stichotrope.profiler", profiler_.name());
      r->SetAttribute("stichotrope.flow", static_cast<std::int64_t>(s.flow));
      r->SetAttribute("thread.id", static_cast<std::int64_t>(s.thread_id));
      if (!s.thread_name.empty()) r->SetAttribute("thread.name", s.thread_name);
      std::sort(s.marks.begin(), s.marks.end(),
                [](const span_event& a, const span_event& b) { return a.t_ns < b.t_ns; });
      for (const auto& m : s.marks) {
        std::vector<std::pair<opentelemetry::nostd::string_view, opentelemetry::common::AttributeValue>> on{
            {"thread.id", static_cast<std::int64_t>(m.thread_id)}};
        // A suspension names the await it waits on (its wait site).
        const stichotrope::TimelineSite* await =
            !m.resume && m.wait_site < timeline.sites.size() ? &timeline.sites[m.wait_site] : nullptr;
        if (await != nullptr) {
          on.emplace_back("stichotrope.await", opentelemetry::nostd::string_view(await->name));
          on.emplace_back("stichotrope.awaited", opentelemetry::nostd::string_view(await->awaited));
          on.emplace_back("code.filepath", opentelemetry::nostd::string_view(await->file));
          on.emplace_back("code.lineno", static_cast<std::int64_t>(await->line));
        }
        r->AddEvent(m.resume ? "resume" : "suspend", wall(m.t_ns),
                    opentelemetry::common::KeyValueIterableView<decltype(on)>(on));
      }
      r->SetResource(resource_);
      r->SetInstrumentationScope(*scope_);
      batch.push_back(std::move(r));
    }
    v = std::move(keep);
  }

  stichotrope::Profiler& profiler_;
  opentelemetry::sdk::resource::Resource resource_;
  opentelemetry::nostd::unique_ptr<opentelemetry::sdk::instrumentationscope::InstrumentationScope> scope_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds timeout_; // of one export (OTEL_EXPORTER_OTLP_TIMEOUT)
  bool exporting_ = false;            // the thread is exporting (under mutex_)
  std::string url_;
  std::unique_ptr<msdk::PushMetricExporter> metrics_;
  std::unique_ptr<tsdk::SpanExporter> spans_;
  std::chrono::system_clock::time_point interval_start_;
  export_counters metric_counters_, span_counters_;

  struct mark {
    std::uint64_t end_ns = 0;
    std::uint64_t at_end = 0; // events already taken whose end is end_ns
  };
  std::map<std::uint64_t, mark> marks_; // by thread id
  std::map<std::pair<std::uint64_t, std::uint64_t>, span_group> groups_;
  std::uint64_t arrivals_ = 0;
  std::uint64_t dropped_reported_ = 0;
  std::uint64_t nonce_ = 0;
  std::int64_t epoch_offset_ns_ = 0;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

/// Never freed: profilers may end during static destruction.
struct exporter_state {
  std::mutex mutex;
  std::map<stichotrope::Profiler*, std::unique_ptr<session>> sessions;
};
exporter_state& state() {
  static exporter_state* s = new exporter_state;
  return *s;
}

std::unique_ptr<session> take(stichotrope::Profiler& p) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  auto it = s.sessions.find(&p);
  if (it == s.sessions.end()) return nullptr;
  auto found = std::move(it->second);
  s.sessions.erase(it);
  return found;
}

void configured(stichotrope::Profiler& p) {
  const auto config = p.config();
  {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    auto it = s.sessions.find(&p);
    if (it != s.sessions.end() && it->second->settings_ == session::settings_of(config)) return;
  }
  if (auto old = take(p)) old->finish(); // reconfigured: the old settings' last interval goes out with them
  if (!config.otlp_endpoint) return;
  try {
    auto fresh = std::make_unique<session>(p, config);
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.sessions.emplace(&p, std::move(fresh));
  } catch (const std::exception& e) {
    stichotrope::detail::add_diagnostic(p, std::string("otlp: export not started: ") + e.what());
  }
}

void ending(stichotrope::Profiler& p) {
  if (auto s = take(p)) s->finish();
}

const stichotrope::detail::exporter otel_exporter{&configured, &ending};
[[maybe_unused]] const bool registered = (stichotrope::detail::register_exporter(&otel_exporter), true);

} // namespace
