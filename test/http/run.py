#!/usr/bin/env python3
"""Reads and controls a recording program through its HTTP endpoint, from
several client threads at once, while the program records on three threads
(so that the sanitizer builds see serving and recording together).

    run.py TARGET_BINARY

Checked: every read is well-formed (the results JSON, per-thread results,
the timeline window, folded stacks, /metrics); controls are POST only, need
the control header, reject bad parameters with 400 and an error message,
and do what they say (a track switched off stops growing, clear empties,
stop stops); requests for another host are refused; an unknown profiler is
404. Bounded: ~4 s.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

DEADLINE_S = 60


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from loopback import check, fail, free_port  # noqa: E402

class Client:
    def __init__(self, base):
        self.base = base

    def request(self, path, method="GET", headers=None):
        req = urllib.request.Request(self.base + path, method=method, data=b"" if method == "POST" else None,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path):
        status, headers, body = self.request(path)
        check(status == 200, f"GET {path}: {status} {body[:200]}")
        check(headers.get("Content-Type", "").startswith("application/json"), f"{path}: {headers.get('Content-Type')}")
        return json.loads(body)

    def control(self, path, expect=200):
        status, _, body = self.request(path, "POST", {"X-Stichotrope-Control": "1"})
        check(status == expect, f"POST {path}: {status} (expected {expect}) {body[:200]}")
        return json.loads(body)


def hits(results, track, name):
    for t in results["tracks"]:
        if t["track_idx"] == track:
            for b in t["blocks"]:
                if b["name"] == name:
                    return b["hit_count"]
    return 0


def readers(client, stop, errors):
    paths = ["/api/results", "/api/results?threads=1", "/api/timeline?seconds=1", "/api/profilers"]
    n = 0
    while not stop.is_set():
        try:
            for p in paths:
                data = client.json(p)
                check(isinstance(data, dict), p)
            status, _, body = client.request("/api/folded?weight=active")
            check(status == 200, "folded")
            status, _, body = client.request("/metrics")
            check(status == 200 and b"stichotrope_block_duration_seconds" in body, "metrics")
            n += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
            return
    errors.append(n)


def raw_status(port, head):
    """Sends one request as written (bytes), returns the status code (0: no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


# Host values a DNS-rebinding page or a confused proxy could send: each must
# get 403 on every route, a read and a control alike (docs/reliability.md).
HOSTILE_HOSTS = [
    "127.0.0.1.evil.example", "127.evil.example", "127.0.0.1.nip.io", "127.0.0.1evil", "127.0.0.1:80.evil",
    "[::1]evil", "[::1].evil.example", "[::1]:80evil", "[::1]:", "[::1", "::1.evil", "[::2]", "[::ffff:127.0.0.1]x",
    "localhost.evil.example", "localhost.", "localhost:", "localhost:http", "localhostx", "xlocalhost",
    "evil.localhost.example", "evil.example", "attacker.example:{port}", "", " ", "127.0.0.1:{port} evil", "127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "127.0.0.1.",
    "127.0.0.256", "127.0.0.1:999999", "127.0.0.1:-1", "127.0.0.1:+80", "10.0.0.1", "192.168.1.1", "0.0.0.0",
    "128.0.0.1", "127.0.0.1@evil.example", "evil.example#127.0.0.1", "127.0.0.1/evil", "user@127.0.0.1",
    "127.0.0.1%00.evil.example",
]
# (Whitespace around a field value is not part of it: RFC 9110 5.5.)
FRIENDLY_HOSTS = [" 127.0.0.1 ", "127.0.0.1", "127.0.0.1:{port}", "127.5.6.7:{port}", "localhost", "LocalHost:{port}",
                  "[::1]:{port}", "[::1]", "::1"]


def host_table(port):
    for route in ("/", "/api/results", "/metrics"):
        for host in HOSTILE_HOSTS:
            h = host.format(port=port)
            status = raw_status(port, f"GET {route} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n".encode())
            check(status in (400, 403), f"GET {route} with Host {h!r}: {status}")
    for host in HOSTILE_HOSTS:
        h = host.format(port=port)
        status = raw_status(port, f"POST /api/stop HTTP/1.1\r\nHost: {h}\r\nX-Stichotrope-Control: 1\r\n"
                                  f"Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
        check(status in (400, 403), f"POST /api/stop with Host {h!r}: {status}")
    for host in FRIENDLY_HOSTS:
        h = host.format(port=port)
        status = raw_status(port, f"GET /metrics HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n".encode())
        check(status == 200, f"GET /metrics with Host {h!r}: {status}")
    # No Host at all, two of them, and an absolute-form target naming another host.
    for head in (b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
                 f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n"
                 f"Connection: close\r\n\r\n".encode(),
                 f"GET http://evil.example/metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Connection: close\r\n\r\n".encode()):
        status = raw_status(port, head)
        check(status in (400, 403), f"{head!r}: {status}")
    print(f"Host check: {len(HOSTILE_HOSTS)} hostile values x 4 requests refused, "
          f"{len(FRIENDLY_HOSTS)} loopback forms answered", flush=True)


def start_target(target, env_extra):
    """The target with the given endpoint settings: (process, its first line)."""
    env = dict(os.environ, **env_extra)
    env.pop("STICHOTROPE_PROMETHEUS", None)
    app = subprocess.Popen([target], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    return app, app.stdout.readline().strip()


def auth_cases(target):
    """Tokens (STICHOTROPE_HTTP_TOKEN) and addresses beyond loopback."""
    port = free_port()
    secret = "s3cret-" + os.urandom(8).hex()
    refusals = [
        ({"STICHOTROPE_HTTP": f"0.0.0.0:{port}"}, "an address other than loopback needs a token"),
        ({"STICHOTROPE_HTTP": f"127.0.0.1:{port}", "STICHOTROPE_HTTP_TOKEN": "short-" + secret[:6]},
         "shorter than 16 characters"),
        ({"STICHOTROPE_HTTP": f"127.0.0.1:{port}", "STICHOTROPE_HTTP_TOKEN": "/nonexistent/stichotrope-token"},
         "cannot read the token file /nonexistent/stichotrope-token"),
    ]
    for env, why in refusals:
        app, line = start_target(target, env)
        err = app.communicate("done\n", timeout=20)[1]
        check(line != "READY" and app.returncode == 1 and why in err, f"{env}: {line!r} {app.returncode} {err!r}")
        check(secret[:6] not in err, f"the token leaked into a diagnostic: {err!r}")
        with socket.socket() as s:
            check(s.connect_ex(("127.0.0.1", port)) != 0, f"{env}: something listens on {port}")
    # Beyond loopback with a token: every request needs it; the Host check
    # is for loopback (the token is what a rebinding page cannot send).
    app, line = start_target(target, {"STICHOTROPE_HTTP": f"0.0.0.0:{port}", "STICHOTROPE_HTTP_TOKEN": secret})
    check(line == "READY", f"0.0.0.0 with a token: {line!r} {app.stderr.read() if app.poll() is not None else ''}")
    c = Client(f"http://127.0.0.1:{port}")
    for path in ("/metrics", "/", "/api/results"):
        status, headers, _ = c.request(path)
        check(status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer"), f"{path}: {status}")
        status, _, _ = c.request(path, headers={"Authorization": f"Bearer {secret}x"})
        check(status == 401, f"{path} with a longer token: {status}")
        status, _, _ = c.request(path, headers={"Authorization": f"Basic {secret}"})
        check(status == 401, f"{path} with another scheme: {status}")
        status, _, _ = c.request(path, headers={"Authorization": f"Bearer {secret}", "Host": "profiler.example"})
        check(status == 200, f"{path} with the token: {status}")
    status, _, _ = c.request("/api/stop", "POST", {"X-Stichotrope-Control": "1"})
    check(status == 401, f"a control without the token: {status}")
    app.communicate("done\n", timeout=20)
    check(app.returncode == 0, "target failed")
    print("Tokens: beyond loopback refused without one, too short or unreadable refused (not echoed); "
          "with one, every request needs it", flush=True)


def main():
    target = sys.argv[1]
    auth_cases(target)
    port = free_port()
    env = dict(os.environ, STICHOTROPE_HTTP=f"127.0.0.1:{port}")
    env.pop("STICHOTROPE_PROMETHEUS", None)
    app = subprocess.Popen([target], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    threading.Timer(DEADLINE_S, lambda: (app.kill(), fail("deadline reached"))).start()
    check(app.stdout.readline().strip() == "READY", "target did not start")
    c = Client(f"http://127.0.0.1:{port}")

    # The page and its files are served from the process.
    for path, kind in [("/", "text/html"), ("/live.js", "text/javascript"), ("/live.css", "text/css")]:
        status, headers, body = c.request(path)
        check(status == 200 and headers.get("Content-Type", "").startswith(kind) and len(body) > 100, path)

    # Readers hammer the API while the controls below run.
    stop = threading.Event()
    results = []
    pool = [threading.Thread(target=readers, args=(c, stop, results)) for _ in range(3)]
    for t in pool:
        t.start()

    state = c.json("/api/profilers")["profilers"][0]
    check(state["name"] == "httptest" and state["started"] and state["timeline"], f"state {state}")
    check({t["track"]: t["name"] for t in state["tracks"]} == {0: "Outer", 1: "Inner", 2: 'Leaf "quoted"'},
          f"tracks {state['tracks']}")
    # Track 3 has blocks but no name: the results list it, the switches only
    # once it is switched off (the page joins the two).
    check(3 not in [t["track"] for t in state["tracks"]], "an unnamed, enabled track among the switches")
    s3 = c.control("/api/track?track=3&enabled=0")
    check([(t["name"], t["enabled"]) for t in s3["tracks"] if t["track"] == 3] == [(None, False)], f"track 3: {s3}")
    c.control("/api/track?track=3&enabled=1")
    r = c.json("/api/results")
    check(r["profiler_name"] == "httptest" and hits(r, 0, "outer") > 0, "results")
    per = c.json("/api/results?threads=1")["threads"]
    check(sorted(t["thread_name"] for t in per if t["results"]["tracks"])[:3] == ["worker-0", "worker-1", "worker-2"],
          f"per-thread names {[t['thread_name'] for t in per]}")
    tl = c.json("/api/timeline?seconds=2&limit=100")
    check(tl["on"] and tl["threads"] and all(len(t["events"]) <= 100 for t in tl["threads"]), "timeline limit")
    for t in tl["threads"]:
        for e in t["events"]:
            check(len(e) == 6 and e[1] <= e[2] and tl["now_ns"] - e[2] <= 2_000_000_000 + 10**8, f"event {e}")

    # Controls: POST only, with the header, parameters checked.
    for path in ["/api/start", "/api/stop", "/api/clear", "/api/track?track=1&enabled=0", "/api/capture?on=0"]:
        status, headers, _ = c.request(path)
        check(status == 405 and headers.get("Allow") == "POST", f"GET {path}: {status}")
        status, _, _ = c.request(path, "POST")
        check(status == 403, f"POST {path} without the header: {status}")
    for path in ["/api/track?track=abc&enabled=0", "/api/track?track=1&enabled=2", "/api/track?track=999&enabled=0",
                 "/api/capture?on=maybe"]:
        err = c.control(path, 400)
        check(err.get("error"), f"{path}: no error message")
    for path in ["/api/timeline?seconds=0", "/api/timeline?seconds=x", "/api/timeline?limit=0"]:
        status, _, body = c.request(path)
        check(status == 400 and json.loads(body).get("error"), f"{path}: {status}")
    status, _, _ = c.request("/api/results?profiler=nobody")
    check(status == 404, f"unknown profiler: {status}")
    status, _, _ = c.request("/api/results", headers={"Host": f"attacker.example:{port}"})
    check(status == 403, f"a foreign Host header: {status}")
    host_table(port)

    # A control without a body is answered at once (not after a read timeout).
    t = time.monotonic()
    status = raw_status(port, f"POST /api/capture?on=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                              f"X-Stichotrope-Control: 1\r\nConnection: close\r\n\r\n".encode())
    check(status == 200 and time.monotonic() - t < 2, f"a bodyless POST: {status} in {time.monotonic() - t:.1f} s")
    # A trace is capped and says what it left out.
    status, headers, body = c.request("/api/trace?limit=50")
    trace = json.loads(body)
    complete = [e for e in trace["traceEvents"] if e.get("ph") in ("X", "B")]
    check(status == 200 and 0 < len(complete) <= 50, f"trace limit: {status} {len(complete)} events")
    check(trace["otherData"].get("left_out_events", 0) > 0 and
          headers.get("X-Stichotrope-Left-Out-Events") == str(trace["otherData"]["left_out_events"]),
          f"trace marker: {trace['otherData']} {headers.get('X-Stichotrope-Left-Out-Events')}")
    for bad in ("/api/trace?limit=0", "/api/trace?limit=1000001", "/api/trace?limit=x"):
        status, _, _ = c.request(bad)
        check(status == 400, f"{bad}: {status}")

    # A track switched off stops growing; the others go on.
    s = c.control("/api/track?track=2&enabled=0")
    check([t["enabled"] for t in s["tracks"] if t["track"] == 2] == [False], "track 2 still on")
    time.sleep(0.2)  # blocks open at the switch close meanwhile
    a = c.json("/api/results")
    time.sleep(0.4)
    b = c.json("/api/results")
    check(hits(a, 2, "leaf") == hits(b, 2, "leaf"), f"leaf grew while off: {hits(a, 2, 'leaf')} -> {hits(b, 2, 'leaf')}")
    check(hits(b, 1, "inner") > hits(a, 1, "inner"), "inner stopped growing")
    c.control("/api/track?track=2&enabled=1")

    # Clear, stop, start, timeline off and on.
    c.control("/api/clear")
    time.sleep(0.1)
    check(hits(c.json("/api/results"), 0, "outer") < hits(b, 0, "outer"), "clear did not clear")
    s = c.control("/api/stop")
    check(not s["started"], "stop")
    time.sleep(0.1)
    a = c.json("/api/results")
    time.sleep(0.3)
    b = c.json("/api/results")
    check(hits(a, 1, "inner") == hits(b, 1, "inner"), "recording went on while stopped")
    check(c.control("/api/start")["started"], "start")
    check(not c.control("/api/capture?on=0")["timeline"], "timeline off")
    check(c.control("/api/capture?on=1")["timeline"], "timeline on")
    time.sleep(0.5)

    stop.set()
    for t in pool:
        t.join()
    errors = [e for e in results if not isinstance(e, int)]
    check(not errors, f"readers failed: {errors}")
    app.stdin.write("done\n")
    app.stdin.close()
    check(app.wait(timeout=20) == 0, "target failed")
    print(f"PASS: {sum(results)} rounds of reads by 3 clients while recording; controls checked", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
