#!/usr/bin/env python3
"""The endpoint as a guest under slow, idle and many clients (issue 22, item 2;
docs/reliability.md "The endpoint as a guest"), on loopback, bounded in time:

    slow.py TARGET_BINARY WORK_DIR

While 1,000 idle keep-alive connections are held (each one the server closes
for idleness is opened again at once), Debian's slowhttptest holds 256
slowloris connections, 8 sockets stall in the middle of a request head, and
16 clients poll /api/results 10 times a second, a /metrics scrape every 50 ms
must answer within 50 ms at p99; the target's thread count must not grow and
its memory must stay within the stated bound. Idle and stalled connections
must be closed after the stated 10 s of silence (checked within 8-20 s).
Then 16 clients ask for /api/trace at once (about 10 MB each) and read
nothing for 2 s: the target's memory must stay within the stated bound
(64 MiB of large bodies in flight, the rest answered 503 with Retry-After, plus
one trace being built at a time). Then wrk loads /api/results while the
target times its own blocks: the recording cost with and without the load is
reported (and must stay within 4x: readers never block recorders).
"""
import csv
import http.client
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time

IDLE = 1000
SLOWLORIS = 256
STALLED = 8
POLLERS = 16
POLL_HZ = 10
LOAD_S = 14            # long enough to see the first wave of idle closes
IDLE_TIMEOUT_S = 10    # src/http_server.cpp, idle_timeout_s
SCRAPE_P99_MS = 50
MEMORY_BOUND_MB = 96   # 4,096 connections x 16 KiB + bodies in flight
DOWNLOADS = 16
BODY_BUDGET_MB = 64    # src/http_server.cpp, body_budget
DEADLINE_S = 110


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from loopback import check, fail, free_port  # noqa: E402

def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) // 1024


class IdleHolder(threading.Thread):
    """Holds IDLE keep-alive connections, each after one answered request;
    one the server closes is opened again. Also holds STALLED sockets that
    sent half a request head and then nothing. Records when each closed."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.idle_closed_after = []     # seconds from the last byte received to the close
        self.stalled_closed_after = []
        self.reopened = 0
        self.errors = []

    def open(self, stalled=False):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if stalled:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        else:
            s.sendall(f"GET /api/profilers HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, {"stalled": stalled, "last": time.monotonic(), "answered": False})

    def open_all(self):
        for _ in range(IDLE):
            self.open()
        for _ in range(STALLED):
            self.open(stalled=True)

    def run(self):
        while not self.stop.is_set():
            for key, _ in self.sel.select(timeout=0.2):
                s, d = key.fileobj, key.data
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                now = time.monotonic()
                if data:
                    d["last"], d["answered"] = now, True
                    continue
                self.sel.unregister(s)
                s.close()
                (self.stalled_closed_after if d["stalled"] else self.idle_closed_after).append(now - d["last"])
                if not d["stalled"]:
                    if not d["answered"]:
                        self.errors.append("an idle connection was closed before its answer")
                    try:
                        self.open()
                        self.reopened += 1
                    except OSError as e:
                        self.errors.append(repr(e))

    def count(self):
        return len(self.sel.get_map())


def poller(port, stop, out):
    """One keep-alive client polling /api/results POLL_HZ times a second."""
    n, errors = 0, []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        t = time.monotonic()
        try:
            conn.request("GET", "/api/results")
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or not body.startswith(b"{"):
                errors.append(f"status {r.status}")
            n += 1
        except (OSError, http.client.HTTPException) as e:
            conn.close()  # closed for idleness between polls cannot happen at 10 Hz; report it
            errors.append(repr(e))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stop.wait(max(0.0, 1.0 / POLL_HZ - (time.monotonic() - t)))
    out.put((n, errors))


def pollers(port, stop, out):
    threads = [threading.Thread(target=poller, args=(port, stop, out)) for _ in range(POLLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def scrape_ms(conn):
    t = time.perf_counter()
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t) * 1000
    check(r.status == 200 and b"stichotrope_block_duration_seconds" in body, f"/metrics: {r.status}")
    return ms


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def download(port, results):
    """Asks for a trace, reads nothing for 2 s, then reads it all."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET /api/trace HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        time.sleep(2)
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    results.append((int(head.split(b" ", 2)[1]), len(body), b"Retry-After" in head))


def downloads(app, port):
    """DOWNLOADS clients ask for /api/trace at once; the target's memory is
    sampled until all are done. Returns (statuses, the largest body in MB,
    RSS growth in MB)."""
    _, rss0 = proc_status(app.pid)
    results, peak = [], rss0
    clients = [threading.Thread(target=download, args=(port, results)) for _ in range(DOWNLOADS)]
    for t in clients:
        t.start()
    while any(t.is_alive() for t in clients):
        peak = max(peak, proc_status(app.pid)[1])
        time.sleep(0.05)
    return results, max(size for _, size, _ in results) / 2**20, peak - rss0


def measure(app):
    app.stdin.write("measure\n")
    app.stdin.flush()
    line = app.stdout.readline().split()
    check(len(line) == 2 and line[0] == "NS", f"measure: {line}")
    return float(line[1])


def main():
    target, work = sys.argv[1], sys.argv[2]
    for tool in ("slowhttptest", "wrk"):
        check(shutil.which(tool), f"{tool} is not installed (setup.sh installs it)")
    os.makedirs(work, exist_ok=True)
    raise_fd_limit()
    port = free_port()
    env = dict(os.environ, STICHOTROPE_HTTP=f"127.0.0.1:{port}", HTTP_TARGET_EVENTS="100000")
    env.pop("STICHOTROPE_PROMETHEUS", None)
    app = subprocess.Popen([target], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    threading.Timer(DEADLINE_S, lambda: (app.kill(), fail("deadline reached"))).start()
    check(app.stdout.readline().strip() == "READY", "target did not start")

    ns_quiet = measure(app)
    scrape = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    quiet = [scrape_ms(scrape) for _ in range(40)]
    threads0, rss0 = proc_status(app.pid)

    holder = IdleHolder(port)
    holder.open_all()
    holder.start()
    slow = subprocess.Popen(["slowhttptest", "-c", str(SLOWLORIS), "-H", "-i", "5", "-r", str(SLOWLORIS),
                             "-l", str(LOAD_S + 2), "-p", "3", "-g", "-o", os.path.join(work, "slowloris"),
                             "-u", f"http://127.0.0.1:{port}/api/profilers"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = multiprocessing.Event()
    out = multiprocessing.Queue()
    polling = multiprocessing.Process(target=pollers, args=(port, stop, out))
    polling.start()
    time.sleep(2)  # slowhttptest connects 256 a second

    loaded, threads_max, rss_max, held_min = [], 0, 0, IDLE + STALLED
    end = time.monotonic() + LOAD_S
    while time.monotonic() < end:
        t = time.monotonic()
        loaded.append(scrape_ms(scrape))
        if len(loaded) % 10 == 0:
            th, rss = proc_status(app.pid)
            threads_max, rss_max = max(threads_max, th), max(rss_max, rss)
            held_min = min(held_min, holder.count())
        time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))

    stop.set()
    polled, poll_errors = 0, []
    for _ in range(POLLERS):
        n, errors = out.get(timeout=20)
        polled += n
        poll_errors += errors
    polling.join()
    slow.wait(timeout=30)
    with open(os.path.join(work, "slowloris.csv")) as f:
        rows = list(csv.DictReader(f))
    connected = max(int(r["Connected"]) for r in rows)
    unavailable = [r["Seconds"] for r in rows if int(r["Seconds"]) >= 2 and int(r["Service Available"]) == 0]

    # Stalled heads were closed for silence; let any late ones be seen.
    deadline = time.monotonic() + 2 * IDLE_TIMEOUT_S
    while len(holder.stalled_closed_after) < STALLED and time.monotonic() < deadline:
        time.sleep(0.2)
    holder.stop.set()
    holder.join()

    p50, p99 = percentile(loaded, 0.5), percentile(loaded, 0.99)
    print(f"/metrics quiet: p50 {percentile(quiet, 0.5):.2f} ms, p99 {percentile(quiet, 0.99):.2f} ms "
          f"({len(quiet)} scrapes)", flush=True)
    print(f"/metrics under load: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(loaded):.2f} ms "
          f"({len(loaded)} scrapes over {LOAD_S} s)", flush=True)
    print(f"load held: {IDLE} idle keep-alive (fewest held {held_min}, {holder.reopened} opened again after the "
          f"server closed them), {connected} slowloris connected (slowhttptest), {STALLED} stalled heads, "
          f"{POLLERS} clients polling /api/results at {POLL_HZ}/s ({polled} answers)", flush=True)
    print(f"target: threads {threads0} quiet, at most {threads_max} under load; RSS {rss0} MB quiet, "
          f"at most {rss_max} MB under load", flush=True)
    idle_after = sorted(holder.idle_closed_after)
    if idle_after:
        print(f"idle connections closed after {idle_after[0]:.1f}-{idle_after[-1]:.1f} s of silence; stalled "
              f"heads after {min(holder.stalled_closed_after, default=0):.1f}-"
              f"{max(holder.stalled_closed_after, default=0):.1f} s", flush=True)

    check(not holder.errors, f"idle connections: {holder.errors[:5]}")
    check(not poll_errors, f"pollers: {poll_errors[:5]}")
    check(polled >= POLLERS * POLL_HZ * LOAD_S // 2, f"pollers answered only {polled} times")
    check(connected >= SLOWLORIS * 9 // 10, f"slowhttptest connected only {connected}")
    check(not unavailable, f"slowhttptest found the service unavailable at seconds {unavailable}")
    check(held_min >= IDLE * 9 // 10, f"only {held_min} idle connections held at one point")
    check(p99 <= SCRAPE_P99_MS, f"/metrics p99 {p99:.1f} ms under load (at most {SCRAPE_P99_MS})")
    check(threads_max <= threads0, f"threads grew under load: {threads0} -> {threads_max}")
    check(rss_max - rss0 <= MEMORY_BOUND_MB, f"RSS grew by {rss_max - rss0} MB under load")
    check(len(idle_after) >= IDLE // 2, f"only {len(idle_after)} idle connections were closed for idleness")
    check(all(IDLE_TIMEOUT_S - 2 <= s <= 2 * IDLE_TIMEOUT_S for s in idle_after),
          f"idle closes after {idle_after[0]:.1f}-{idle_after[-1]:.1f} s (stated: {IDLE_TIMEOUT_S} s)")
    check(len(holder.stalled_closed_after) == STALLED and
          all(IDLE_TIMEOUT_S - 2 <= s <= 2 * IDLE_TIMEOUT_S for s in holder.stalled_closed_after),
          f"stalled heads closed after {holder.stalled_closed_after} s (stated: {IDLE_TIMEOUT_S} s)")

    # Many large answers at once: bounded memory.
    results, largest_mb, grew_mb = downloads(app, port)
    served = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    # The budget, one body past it, one being built (its growth and the
    # timeline's copy: about the body's size again), malloc's slack.
    bound_mb = BODY_BUDGET_MB + 4 * largest_mb + 32
    print(f"{DOWNLOADS} trace downloads at once: {len(served)} served ({largest_mb:.1f} MB each at most), "
          f"{len(refused)} answered 503; RSS grew {grew_mb} MB (bound {bound_mb:.0f} MB)", flush=True)
    check(len(served) + len(refused) == DOWNLOADS and served and all(r[2] for r in refused),
          f"downloads: {[(r[0], r[1]) for r in results]}")
    check(largest_mb > 4, f"traces of {largest_mb:.1f} MB do not test the bound")
    check(grew_mb <= bound_mb, f"RSS grew {grew_mb} MB during {DOWNLOADS} downloads (bound {bound_mb:.0f} MB)")

    # Recording cost on the application's threads while wrk loads the endpoint.
    wrk = subprocess.Popen(["wrk", "-t", "2", "-c", "16", "-d", "6s", f"http://127.0.0.1:{port}/api/results"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    ns_loaded = measure(app)
    wrk_out = wrk.communicate(timeout=30)[0]
    rate = next((l.split()[1] for l in wrk_out.splitlines() if l.startswith("Requests/sec")), "?")
    print(f"recording cost on the main thread: {ns_quiet:.1f} ns per block quiet, {ns_loaded:.1f} ns while wrk "
          f"reads /api/results at {rate} requests/s (2 threads, 16 connections)", flush=True)
    check(ns_loaded <= 4 * ns_quiet, f"recording under load {ns_loaded:.1f} ns vs {ns_quiet:.1f} ns quiet")

    app.stdin.write("done\n")
    app.stdin.close()
    check(app.wait(timeout=20) == 0, "target failed")
    print("PASS: slow, idle and polling clients cost the endpoint nothing it did not state", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
