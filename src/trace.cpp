// Timelines for viewers (modules/trace.cppm): the Chrome Trace Event format
// (Perfetto, chrome://tracing) and speedscope's file format.
module;
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <tl/expected.hpp>

#include "json_writer.hpp"
module stichotrope;

namespace stichotrope {
using namespace detail::json;

namespace {

std::string micros(std::uint64_t ns) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%llu.%03llu", static_cast<unsigned long long>(ns / 1000),
                static_cast<unsigned long long>(ns % 1000));
  return buf;
}

const TimelineSite* site_of(const Timeline& t, std::uint32_t id) {
  return id < t.sites.size() ? &t.sites[id] : nullptr;
}

std::string track_label(const Timeline& t, int track) {
  for (const auto& [idx, name] : t.track_names)
    if (idx == track) return "track " + std::to_string(track) + ": " + name;
  return "track " + std::to_string(track);
}

std::string hex_id(std::uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
  return buf;
}

} // namespace

void write_chrome_trace(std::ostream& out, const Timeline& t) { out << to_chrome_trace(t) << '\n'; }

std::string to_chrome_trace(const Timeline& t) {
  json_writer w(-1);
  w.begin_object();
  w.key("displayTimeUnit"), w.value("ns");
  w.key("otherData");
  w.begin_object();
  w.key("profiler"), w.value(t.profiler_name);
  w.key("exporter"), w.value("stichotrope");
  w.key("dropped_events"), w.value(t.dropped());
  if (t.left_out != 0) w.key("left_out_events"), w.value(t.left_out);
  w.end_object();
  w.key("traceEvents");
  w.begin_array();
  auto meta = [&](const char* name, std::uint64_t tid, const std::string& value) {
    w.begin_object();
    w.key("name"), w.value(name);
    w.key("ph"), w.value("M");
    w.key("pid"), w.value(std::uint64_t{1});
    w.key("tid"), w.value(tid);
    w.key("args");
    w.begin_object();
    w.key("name"), w.value(value);
    w.end_object();
    w.end_object();
  };
  meta("process_name", 0, t.profiler_name);
  for (const auto& [idx, name] : t.track_names) meta("track_name", 0, track_label(t, idx));
  for (const auto& th : t.threads)
    meta("thread_name", th.thread_id,
         (th.thread_name.empty() ? "thread" : th.thread_name) + " (" + std::to_string(th.thread_id) + ")" +
             (th.exited ? ", exited" : ""));
  auto common = [&](const std::string& name, const std::string& cat, const char* ph, std::uint64_t ns,
                    std::uint64_t tid) {
    w.key("name"), w.value(name);
    w.key("cat"), w.value(cat);
    w.key("ph"), w.value(ph);
    w.key("ts");
    w.raw(micros(ns));
    w.key("pid"), w.value(std::uint64_t{1});
    w.key("tid"), w.value(tid);
  };
  // Where each suspension ended (by arrow), so that the time a flow waited
  // is a slice of its own, named for the await it waited on.
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> resumed; // arrow -> (ns, thread)
  for (const auto& th : t.threads)
    for (const auto& e : th.events)
      if (e.kind == timeline_kind::resume && e.arrow_id != 0) resumed[e.arrow_id] = {e.start_ns, th.thread_id};
  for (const auto& th : t.threads) {
    for (const auto& e : th.events) {
      if (e.kind == timeline_kind::suspend && e.flow_id != 0)
        if (auto r = resumed.find(e.arrow_id); r != resumed.end()) {
          const TimelineSite* s = e.site_id == no_parent ? nullptr : site_of(t, e.site_id);
          std::string name = "[wait] ";
          name += s == nullptr ? "flow suspended" : s->name;
          if (s != nullptr && !s->awaited.empty() && s->awaited != s->name) name += " " + s->awaited;
          w.begin_object();
          common(name, "wait", "b", e.start_ns, th.thread_id);
          w.key("id"), w.value(hex_id(e.flow_id));
          w.key("args");
          w.begin_object();
          if (s != nullptr) {
            w.key("file"), w.value(s->file);
            w.key("line"), w.value(std::uint64_t{s->line});
          }
          w.key("suspended_on"), w.value(th.thread_id);
          w.key("resumed_on"), w.value(r->second.second);
          w.end_object();
          w.end_object();
          w.begin_object();
          common(name, "wait", "e", r->second.first, r->second.second);
          w.key("id"), w.value(hex_id(e.flow_id));
          w.end_object();
        }
      if (e.kind == timeline_kind::block) {
        const TimelineSite* s = site_of(t, e.site_id);
        const std::string name = s ? s->name : "site " + std::to_string(e.site_id);
        const std::string cat = s ? track_label(t, s->track) : "unknown";
        auto args = [&] {
          w.key("args");
          w.begin_object();
          if (s) {
            w.key("file"), w.value(s->file);
            w.key("line"), w.value(std::uint64_t{s->line});
          }
          w.key("flow"), w.value(e.flow_id);
          w.end_object();
        };
        if (e.flow_id == 0) { // the thread's own flow: a complete slice on its thread
          w.begin_object();
          common(name, cat, "X", e.start_ns, th.thread_id);
          w.key("dur");
          w.raw(micros(e.end_ns - e.start_ns));
          args();
          w.end_object();
        } else { // a coroutine flow: one async span, whichever threads it ran on
          w.begin_object();
          common(name, cat, "b", e.start_ns, th.thread_id);
          w.key("id"), w.value(hex_id(e.flow_id));
          args();
          w.end_object();
          w.begin_object();
          common(name, cat, "e", e.end_ns, th.thread_id);
          w.key("id"), w.value(hex_id(e.flow_id));
          w.end_object();
        }
      } else {
        // A tiny slice to anchor the arrow, and the arrow itself.
        const bool suspend = e.kind == timeline_kind::suspend;
        const std::string name = std::string(suspend ? "suspend" : "resume") + " flow " + hex_id(e.flow_id);
        w.begin_object();
        common(name, "suspension", "X", e.start_ns, th.thread_id);
        w.key("dur");
        w.raw("0.001");
        w.end_object();
        w.begin_object();
        common("suspended", "suspension", suspend ? "s" : "f", e.start_ns, th.thread_id);
        w.key("id"), w.value(e.arrow_id);
        if (!suspend) w.key("bp"), w.value("e");
        w.end_object();
      }
    }
  }
  w.end_array();
  w.end_object();
  return std::move(w.str());
}

void write_speedscope(std::ostream& out, const Timeline& t) {
  json_writer w(-1);
  w.begin_object();
  w.key("$schema"), w.value("https://www.speedscope.app/file-format-schema.json");
  w.key("name"), w.value(t.profiler_name);
  w.key("exporter"), w.value("stichotrope");
  w.key("activeProfileIndex"), w.value(std::uint64_t{0});
  w.key("shared");
  w.begin_object();
  w.key("frames");
  w.begin_array();
  for (const auto& s : t.sites) {
    w.begin_object();
    w.key("name"), w.value(s.name);
    w.key("file"), w.value(s.file);
    w.key("line"), w.value(std::uint64_t{s.line});
    w.end_object();
  }
  w.end_array();
  w.end_object();
  // One profile per logical thread: each OS thread for the blocks of its own
  // flow, and each coroutine flow for its blocks wherever they ran (drawing
  // those by the thread that closed them would nest unrelated flows).
  struct lane {
    std::string name;
    std::vector<const TimelineEvent*> spans;
    std::set<std::uint64_t> threads;
  };
  std::vector<lane> lanes;
  std::map<std::uint64_t, std::size_t> flow_lane;
  for (const auto& th : t.threads) {
    lane own{(th.thread_name.empty() ? "thread" : th.thread_name) + " (" + std::to_string(th.thread_id) + ")", {}, {}};
    for (const auto& e : th.events) {
      if (e.kind != timeline_kind::block || e.site_id >= t.sites.size()) continue;
      if (e.flow_id == 0) {
        own.spans.push_back(&e);
        continue;
      }
      auto it = flow_lane.find(e.flow_id);
      if (it == flow_lane.end()) {
        it = flow_lane.emplace(e.flow_id, lanes.size()).first;
        lanes.push_back({"flow " + hex_id(e.flow_id), {}, {}});
      }
      lanes[it->second].spans.push_back(&e);
      lanes[it->second].threads.insert(th.thread_id);
    }
    if (!own.spans.empty()) lanes.push_back(std::move(own));
  }
  w.key("profiles");
  w.begin_array();
  for (auto& l : lanes) {
    auto& spans = l.spans;
    std::sort(spans.begin(), spans.end(), [](const TimelineEvent* a, const TimelineEvent* b) {
      return a->start_ns != b->start_ns ? a->start_ns < b->start_ns : a->end_ns > b->end_ns;
    });
    struct ev {
      bool open;
      std::uint32_t frame;
      std::uint64_t at;
    };
    std::vector<ev> events;
    std::vector<const TimelineEvent*> stack;
    std::uint64_t omitted = 0;
    auto pop_until = [&](std::uint64_t at) {
      while (!stack.empty() && stack.back()->end_ns <= at) {
        events.push_back({false, stack.back()->site_id, stack.back()->end_ns});
        stack.pop_back();
      }
    };
    for (const TimelineEvent* s : spans) {
      pop_until(s->start_ns);
      if (!stack.empty() && s->end_ns > stack.back()->end_ns) { // overlaps without nesting
        ++omitted;
        continue;
      }
      events.push_back({true, s->site_id, s->start_ns});
      stack.push_back(s);
    }
    pop_until(UINT64_MAX);
    const std::uint64_t first = events.empty() ? 0 : events.front().at;
    const std::uint64_t last = events.empty() ? 0 : events.back().at;
    std::string name = l.name;
    if (!l.threads.empty()) name += ", on " + std::to_string(l.threads.size()) + " thread(s)";
    if (omitted > 0) name += ", " + std::to_string(omitted) + " interleaved spans omitted";
    w.begin_object();
    w.key("type"), w.value("evented");
    w.key("name"), w.value(name);
    w.key("unit"), w.value("nanoseconds");
    w.key("startValue"), w.value(first);
    w.key("endValue"), w.value(last);
    w.key("events");
    w.begin_array();
    for (const auto& e : events) {
      w.begin_object();
      w.key("type"), w.value(e.open ? "O" : "C");
      w.key("frame"), w.value(std::uint64_t{e.frame});
      w.key("at"), w.value(e.at);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  out << w.str() << '\n';
}

expected<void> export_chrome_trace(const Timeline& timeline, const std::filesystem::path& file) {
  std::ostringstream os;
  write_chrome_trace(os, timeline);
  return write_file(file, os.str());
}

expected<void> export_speedscope(const Timeline& timeline, const std::filesystem::path& file) {
  std::ostringstream os;
  write_speedscope(os, timeline);
  return write_file(file, os.str());
}

} // namespace stichotrope
