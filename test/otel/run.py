#!/usr/bin/python3
"""Runs a stichotrope program against an OTLP/HTTP receiver on loopback and
checks what arrived against the program's own results.

    run.py TARGET_BINARY WORK_DIR

The receiver decodes each request with the classes that Debian's
python3-opentelemetry-proto generated from the OTLP protocol definitions
(ExportMetricsServiceRequest, ExportTraceServiceRequest): no hand-made
parser. It runs under Debian's own Python (/usr/bin/python3), where that
package installs.

Checked: summed over every interval, the decoded data points equal the
program's totals (hits, histogram buckets, total/self/active/suspended time,
suspensions) — nothing lost, nothing counted twice — with delta temporality,
intervals that do not overlap, and several of them; the resource carries
OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; with the timeline on, every
block arrives as a span whose parent is its enclosing block and whose trace
is its flow. Then an unreachable collector: the program records the same,
ends on time and reports the failed exports in its diagnostics, and
nothing of the SDK's is printed.
Bounded: every wait has a deadline; ~5 s when it passes.
"""
import gzip
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

DEADLINE_S = 60
DELTA = 1  # AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from loopback import check, fail  # noqa: E402


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.metrics = []  # ExportMetricsServiceRequest, in arrival order
        self.traces = []
        self.bad = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        kinds = {
            "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                            metrics_service_pb2.ExportMetricsServiceResponse, "metrics"),
            "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest,
                           trace_service_pb2.ExportTraceServiceResponse, "traces"),
        }
        if self.path not in kinds:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request_type, response_type, where = kinds[self.path]
        ctype = self.headers.get("Content-Type", "")
        message = request_type()
        try:
            if ctype != "application/x-protobuf":
                raise ValueError(f"content type {ctype!r}")
            message.ParseFromString(body)
        except Exception as e:  # recorded, and the test fails on it
            with self.server.lock:
                self.server.bad.append(f"{self.path}: {e}")
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with self.server.lock:
            getattr(self.server, where).append(message)
        reply = response_type().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def attrs(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


def run_target(target, results, env, args=()):
    started = time.monotonic()
    p = subprocess.run([target, results, *args], env=env, capture_output=True, text=True, timeout=DEADLINE_S)
    took = time.monotonic() - started
    if p.returncode != 0:
        fail(f"target exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    check("ENDED" in p.stdout, f"target did not end its profiler:\n{p.stdout}")
    # The exporter's failures are counted and reported, never printed.
    for line in (p.stdout + p.stderr).splitlines():
        if not line.startswith("diagnostic: "):  # the target's own print of its diagnostics
            check("[OTLP" not in line and "[Error]" not in line, f"the SDK printed: {line}")
    return p.stdout, took


def blocks_of(results_file):
    with open(results_file) as f:
        r = json.load(f)
    out = {}
    for t in r["tracks"]:
        for b in t["blocks"]:
            if b["hit_count"] or b["abandoned"]:
                out[(t["track_idx"], b["name"], f'{b["file"]}:{b["line"]}')] = b
    return out


def check_metrics(receiver, expected, profiler="oteltest", min_intervals=3):
    check(receiver.metrics, "no metrics request arrived")
    sums = defaultdict(lambda: defaultdict(float))
    hist = defaultdict(lambda: defaultdict(int))
    intervals = set()
    resource = None
    for req in receiver.metrics:
        for rm in req.resource_metrics:
            resource = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                check(sm.scope.name == "stichotrope", f"scope {sm.scope.name!r}")
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    check(data.aggregation_temporality == DELTA, f"{m.name}: temporality {data.aggregation_temporality}")
                    for dp in data.data_points:
                        a = attrs(dp.attributes)
                        check(a["profiler"] == profiler, f"profiler label {a}")
                        key = (a["track"], a["block"], a["site"])
                        intervals.add((dp.start_time_unix_nano, dp.time_unix_nano))
                        if m.name == "stichotrope.block.duration":
                            check(kind == "histogram", f"{m.name} is a {kind}")
                            check(m.unit == "s", f"{m.name} unit {m.unit!r}")
                            s = sums[key]
                            s["hits"] += dp.count
                            s["total"] += dp.sum
                            s["points"] += 1
                            check(len(dp.bucket_counts) == len(dp.explicit_bounds) + 1, "bucket/bound counts")
                            check(sum(dp.bucket_counts) == dp.count, "bucket counts add up to the count")
                            bounds_ns = [round(b * 1e9) for b in dp.explicit_bounds]
                            for i, c in enumerate(dp.bucket_counts):
                                if c == 0:
                                    continue
                                check(i < len(bounds_ns), "a count in the open-ended bucket")
                                lower = 0 if i == 0 else bounds_ns[i - 1] + 1
                                hist[key][lower] += c
                            if key[0] == 1 and profiler == "oteltest":
                                check(a["track_name"] == 'Database "main"', f"track_name {a['track_name']!r}")
                        else:
                            check(kind == "sum" and data.is_monotonic, f"{m.name} is a monotonic sum")
                            v = dp.as_double if dp.WhichOneof("value") == "as_double" else dp.as_int
                            sums[key][m.name] += v
    check(resource is not None, "no resource")
    check(resource.get("service.name") == "otel-test", f"service.name {resource.get('service.name')!r}")
    check(resource.get("deployment.environment") == "ci" and resource.get("team") == "profiling",
          f"OTEL_RESOURCE_ATTRIBUTES not in the resource: {resource}")
    ordered = sorted(intervals)
    for (s0, e0), (s1, e1) in zip(ordered, ordered[1:]):
        check(s0 < e0 and (s1, e1) != (s0, e0) and s1 >= e0,
              f"intervals overlap: [{s0}, {e0}] and [{s1}, {e1}]")
    check(len(ordered) >= min_intervals, f"only {len(ordered)} intervals carried data (expected {min_intervals}+)")
    check(set(sums) == set(expected), f"blocks: sent {sorted(sums)} recorded {sorted(expected)}")
    for key, b in expected.items():
        s = sums[key]
        check(s["hits"] == b["hit_count"], f"{key}: {s['hits']} hits sent, {b['hit_count']} recorded")
        got_hist = {lower: c for lower, c in hist[key].items()}
        want_hist = {lower: c for lower, c in b["histogram"]}
        check(got_hist == want_hist, f"{key}: histogram sent {got_hist} recorded {want_hist}")
        tol = 1 + s["points"]  # one rounding to double per point
        for name, field, total in [
            ("duration", "total_time_ns", s["total"]),
            ("self", "self_time_ns", s["stichotrope.block.self_time"]),
            ("active", "active_time_ns", s["stichotrope.block.active_time"]),
            ("suspended", "suspended_time_ns", s["stichotrope.block.suspended_time"]),
        ]:
            check(abs(total * 1e9 - b[field]) <= tol, f"{key}: {name} {total * 1e9:.0f} ns sent, {b[field]} recorded")
        check(s["stichotrope.block.suspensions"] == b["suspensions"], f"{key}: suspensions")
        check(s["stichotrope.block.abandoned"] == b["abandoned"], f"{key}: abandoned")
    print(f"metrics ({profiler}): {len(receiver.metrics)} requests, {len(ordered)} intervals with data; "
          f"sums over intervals equal the results for {len(expected)} blocks "
          f"(hits {sum(b['hit_count'] for b in expected.values())})", flush=True)


def check_traces(receiver, expected, t0_ns, t1_ns):
    spans = []
    for req in receiver.traces:
        for rs in req.resource_spans:
            check(attrs(rs.resource.attributes).get("service.name") == "otel-test", "span resource")
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    by_name = defaultdict(list)
    for s in spans:
        by_name[s.name].append(s)
    want = defaultdict(int)
    for (track, name, site), b in expected.items():
        if name != "fixed":
            want[name] += b["hit_count"]
    want = dict(want)
    got = {name: len(v) for name, v in by_name.items() if name != "fixed"}
    check(got == want, f"spans per block: sent {got}, blocks recorded {want}")
    ids = {s.span_id: s for s in spans}
    check(len(ids) == len(spans), "span ids are unique")
    for s in spans:
        check(t0_ns <= s.start_time_unix_nano <= s.end_time_unix_nano <= t1_ns,
              f"span {s.name} [{s.start_time_unix_nano}, {s.end_time_unix_nano}] outside the run [{t0_ns}, {t1_ns}]")
    for s in by_name["outer"] + by_name["request"] + by_name["long"]:
        check(s.parent_span_id == b"", f"{s.name} has a parent")
    check(len({s.trace_id for s in by_name["outer"]}) == len(by_name["outer"]), "each outer block is a trace")
    check(len({s.trace_id for s in by_name["request"]}) == len(by_name["request"]), "each flow is a trace")
    threads_of_flow = defaultdict(set)
    for child, parent_name, least_ns in [("inner", "outer", 50_000), ("step", "request", 100_000),
                                         ("early", "long", 50_000)]:
        for s in by_name[child]:
            p = ids.get(s.parent_span_id)
            check(p is not None and p.name == parent_name, f"{child}'s parent is {p.name if p else None}")
            check(p.trace_id == s.trace_id, f"{child} is not in its parent's trace")
            check(p.start_time_unix_nano <= s.start_time_unix_nano and
                  s.end_time_unix_nano <= p.end_time_unix_nano, f"{child} is not inside its parent")
            check(s.end_time_unix_nano - s.start_time_unix_nano >= least_ns, f"{child} shorter than its spin")
            if child == "step":
                threads_of_flow[s.trace_id].add(attrs(s.attributes).get("thread.id"))
    for s in by_name["request"]:
        check(s.end_time_unix_nano - s.start_time_unix_nano >= 2_000_000, "request shorter than its timer")
        threads_of_flow[s.trace_id].add(attrs(s.attributes).get("thread.id"))
    # Suspensions inside a request (a pool hop, then a timer) are events of
    # its span, within it; no step spans a suspension.
    marks = defaultdict(int)
    for s in spans:
        for e in s.events:
            check(e.name in ("suspend", "resume"), f"event {e.name!r}")
            check(s.start_time_unix_nano <= e.time_unix_nano <= s.end_time_unix_nano, f"{e.name} outside {s.name}")
            marks[(s.name, e.name)] += 1
            if e.name == "suspend":  # names the await it waits on: one of the two in target.cpp
                ea = attrs(e.attributes)
                check(str(ea.get("code.filepath", "")).endswith("target.cpp") and
                      str(ea.get("stichotrope.await", "")).startswith("target.cpp:"),
                      f"suspend event without its await site: {ea}")
                marks[("await", ea.get("stichotrope.await"))] += 1
    check(not any(name not in ("request", "await") for name, _ in marks), f"suspensions outside requests: {dict(marks)}")
    check(len([k for k in marks if k[0] == "await"]) == 2, f"two await sites (the hop, the timer): {dict(marks)}")
    n = len(by_name["request"])
    check(marks[("request", "suspend")] >= 1.5 * n and marks[("request", "resume")] >= 1.5 * n,
          f"{n} requests (2 suspensions each) carry {dict(marks)}")
    hopped = sum(1 for v in threads_of_flow.values() if len(v) > 1)
    check(hopped > 0, "no flow's spans ran on more than one thread")
    print(f"traces: {len(spans)} spans in {len(receiver.traces)} requests; parents and flows as recorded "
          f"({hopped} of {len(by_name['request'])} flows spanned threads); "
          f"{marks[('request', 'suspend')]} suspend / {marks[('request', 'resume')]} resume events", flush=True)


def main():
    target, work = sys.argv[1:3]
    demo = sys.argv[3] if len(sys.argv) > 3 else None
    os.makedirs(work, exist_ok=True)
    receiver = Receiver()
    port = receiver.server_address[1]
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("OTEL_") and not k.startswith("STICHOTROPE_")}
    env = dict(base_env,
               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
               OTEL_METRIC_EXPORT_INTERVAL="150",
               OTEL_SERVICE_NAME="otel-test",
               OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci, team=profiling",
               STICHOTROPE_TIMELINE="65536")
    results = os.path.join(work, "results.json")
    t0 = time.time_ns()
    run_target(target, results, env)
    t1 = time.time_ns()
    receiver.shutdown()
    check(not receiver.bad, f"the receiver could not decode: {receiver.bad}")
    expected = blocks_of(results)
    check_metrics(receiver, expected)
    check_traces(receiver, expected, t0, t1)

    # Nobody listens: every export fails fast, is counted and reported, and
    # the program records and ends as before.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = dict(base_env, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed}", OTEL_METRIC_EXPORT_INTERVAL="100")
    results = os.path.join(work, "unreachable.json")
    out, took = run_target(target, results, env, ["unreachable"])
    lines = [l for l in out.splitlines() if l.startswith("diagnostic: otlp metrics: ")]
    check(lines, f"no export failure reported:\n{out}")
    failed = int(lines[0].split()[3])
    check(failed >= 2 and f"127.0.0.1:{closed}/v1/metrics" in lines[0], f"failures reported as {lines[0]!r}")
    b = blocks_of(results)
    hits = defaultdict(int)
    for k, v in b.items():
        hits[k[1]] += v["hit_count"]
    hits = dict(hits)
    check(hits == {"long": 1, "early": 1, "outer": 20, "inner": 60, "fixed": 400, "request": 12, "step": 24},
          f"hits {hits}")
    check(took < 20, f"the program took {took:.1f} s with an unreachable collector")
    print(f"unreachable collector: {lines[0][len('diagnostic: '):]}; recorded as usual, ended in {took:.2f} s",
          flush=True)

    # A collector that accepts connections and never answers: the profiler's
    # end (its last interval sent, the exporters shut down) takes at most
    # OTEL_EXPORTER_OTLP_TIMEOUT (milliseconds, as the specification reads
    # it) + 1 s, and nothing of the SDK's is printed.
    for timeout_ms in (1000, 2500):
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)  # accepted by the kernel, never read, never answered
        env = dict(base_env, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{hole.getsockname()[1]}",
                   OTEL_METRIC_EXPORT_INTERVAL="100", OTEL_EXPORTER_OTLP_TIMEOUT=str(timeout_ms),
                   STICHOTROPE_TIMELINE="4096")
        p = subprocess.Popen([target, os.path.join(work, "blackhole.json"), "unreachable"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killer = threading.Timer(DEADLINE_S, p.kill)
        killer.start()
        done_at = None
        for line in p.stdout:
            if line.strip() == "DONE":
                done_at = time.monotonic()
            if line.strip() == "ENDED":
                ended = time.monotonic() - done_at
        err = p.stderr.read()
        p.wait()
        killer.cancel()
        hole.close()
        check(p.returncode == 0 and done_at is not None, f"black hole: exit {p.returncode}\n{err}")
        check("[OTLP" not in err and "[Error]" not in err, f"the SDK printed: {err}")
        check(ended <= timeout_ms / 1000 + 1.0, f"black hole, timeout {timeout_ms} ms: the profiler took {ended:.2f} s "
                                                 f"to end (at most {timeout_ms / 1000 + 1.0:.1f} s)")
        print(f"black-holed collector, OTEL_EXPORTER_OTLP_TIMEOUT={timeout_ms}: the profiler ended in {ended:.2f} s",
              flush=True)

    if demo:
        # The demo's profiler is a global: its last interval is sent while the
        # process ends (static destruction), and must still arrive whole.
        receiver = Receiver()
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        env = dict(base_env, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_address[1]}",
                   OTEL_METRIC_EXPORT_INTERVAL="100", OTEL_SERVICE_NAME="otel-test",
                   OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci,team=profiling")
        out_dir = os.path.join(work, "demo")
        p = subprocess.run([demo, "--threads", "2", "--clients", "4", "--requests", "20", "--out", out_dir],
                           env=env, capture_output=True, text=True, timeout=DEADLINE_S)
        receiver.shutdown()
        if p.returncode != 0:
            fail(f"demo exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        check(not receiver.bad, f"the receiver could not decode: {receiver.bad}")
        check_metrics(receiver, blocks_of(os.path.join(out_dir, "async_server.json")), "AsyncServer", 1)
        spans = sum(len(ss.spans) for r in receiver.traces for rs in r.resource_spans for ss in rs.scope_spans)
        check(spans > 0, "the demo's timeline sent no spans")
        print(f"demo (a global profiler, sent at exit): metrics equal its results; {spans} spans", flush=True)
    print("PASS")


if __name__ == "__main__":
    main()
