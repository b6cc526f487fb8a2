#!/usr/bin/env python3
"""Scrapes a stichotrope program with a real Prometheus server on loopback and
checks, through Prometheus's HTTP API, the hit counts the program recorded.
The endpoint needs a bearer token (STICHOTROPE_HTTP_TOKEN naming a file):
Prometheus sends it from the same file (`authorization: credentials_file`),
and a second job without it must be refused (up == 0).

    run.py TARGET_BINARY PROMETHEUS_BINARY WORK_DIR

Bounded: every wait has a deadline; the whole test takes ~5 s when it passes.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from loopback import free_port  # noqa: E402

DEADLINE_S = 60


def get(url, timeout=2, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
        return r.read().decode()


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def main():
    target, prometheus, work = sys.argv[1:4]
    if not os.path.exists(prometheus):
        fail(f"no Prometheus server at '{prometheus}': run ./setup.sh (Debian's 'prometheus' package)")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    start = time.monotonic()
    app_port, prom_port = free_port(), free_port()
    token_file = os.path.join(work, "token")
    token = "stichotrope-test-" + os.urandom(12).hex()
    with open(token_file, "w") as f:
        f.write(token + "\n")
    env = dict(os.environ, STICHOTROPE_PROMETHEUS=f"127.0.0.1:{app_port}", STICHOTROPE_HTTP_TOKEN=token_file)
    env.pop("STICHOTROPE_CONFIG", None)
    app = subprocess.Popen([target], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    prom = None
    try:
        line = app.stdout.readline()
        if line.strip() != "READY":
            fail(f"the target did not start (printed {line!r}, status {app.poll()})")

        # The endpoint itself, read directly: without the token (or with a
        # wrong one) 401, with it the exposition.
        for wrong in (None, token[:-1], token + "x", "x" * len(token)):
            try:
                get(f"http://127.0.0.1:{app_port}/metrics", token=wrong)
                fail(f"/metrics answered with the token {wrong!r}")
            except urllib.error.HTTPError as e:
                if e.code != 401 or "Bearer" not in e.headers.get("WWW-Authenticate", ""):
                    fail(f"/metrics with the token {wrong!r}: {e.code} {e.headers.get('WWW-Authenticate')}")
        text = get(f"http://127.0.0.1:{app_port}/metrics", token=token)
        count_lines = [l for l in text.splitlines() if l.startswith("stichotrope_block_duration_seconds_count{")]
        alpha = [l for l in count_lines if 'block="alpha"' in l]
        if len(alpha) != 1 or not alpha[0].endswith(" 1234"):
            fail(f"/metrics: expected one alpha count of 1234, got {alpha}")
        escaped = 'block="quote\\"back\\\\slash\\nline"'
        if not any(escaped in l and l.endswith(" 567") for l in count_lines):
            fail(f"/metrics: the escaped block name {escaped} with 567 hits is missing:\n" + "\n".join(count_lines))
        if 'track_name="Database \\"main\\""' not in text:
            fail("/metrics: the escaped track name is missing")
        print(f"/metrics served {len(text.splitlines())} lines", flush=True)

        # A real Prometheus server scrapes it every second.
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: stichotrope\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{app_port}']\n"
                    f"    authorization:\n      credentials_file: {token_file}\n"
                    "  - job_name: no_token\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{app_port}']\n")
        log = open(os.path.join(work, "prometheus.log"), "w")
        prom = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={work}/data",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{prom_port}/api/v1/query?query="

        def query(promql):
            return json.loads(get(api + urllib.parse.quote(promql)))["data"]["result"]

        wanted = {
            'stichotrope_block_duration_seconds_count{profiler="promtest",block="alpha"}': "1234",
            'stichotrope_block_duration_seconds_count{profiler="promtest",block="quote\\"back\\\\slash\\nline"}': "567",
            'stichotrope_block_duration_seconds_bucket{profiler="promtest",block="alpha",le="+Inf"}': "1234",
            'stichotrope_block_duration_seconds_count{track_name="Database \\"main\\""}': "567",
        }
        got = {}
        while time.monotonic() - start < DEADLINE_S and len(got) < len(wanted):
            if prom.poll() is not None:
                fail(f"prometheus exited with status {prom.returncode}; see {work}/prometheus.log")
            for q in wanted:
                if q in got:
                    continue
                try:
                    result = query(q)
                except OSError:
                    break  # not listening yet
                if result:
                    got[q] = result[0]["value"][1]
            time.sleep(0.5)
        for q, value in wanted.items():
            if q not in got:
                fail(f"no answer from Prometheus for {q} within {DEADLINE_S} s; see {work}/prometheus.log")
            if got[q] != value:
                fail(f"{q} = {got[q]}, expected {value}")
            print(f"PromQL {q} = {got[q]}", flush=True)
        up = query('up{job="stichotrope"}')
        if not up or up[0]["value"][1] != "1":
            fail(f"the scrape target is not up: {up}")
        refused = []
        while time.monotonic() - start < DEADLINE_S and not refused:  # its first scrape may come later
            refused = query('up{job="no_token"}')
            if not refused:
                time.sleep(0.5)
        if not refused or refused[0]["value"][1] != "0":
            fail(f"the scrape without the token was not refused: {refused}")
        print("Prometheus scraped with the token from its credentials_file; without it: up == 0", flush=True)
        print(f"PASS in {time.monotonic() - start:.1f} s", flush=True)
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()
        try:
            app.communicate("stop\n", timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()


if __name__ == "__main__":
    main()
