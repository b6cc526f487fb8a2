#!/usr/bin/env python3
"""SIGINT and SIGTERM write the configured outputs (docs/reliability.md,
"Signals"): the demo server is started with STICHOTROPE_OUTPUT and a live
load that would last 30 s, stopped with each signal once it serves, and
must end by that signal (as the default action would) with every file
written whole and holding its results.

    run.py path/to/async_server work_dir
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def main():
    server, work = sys.argv[1:3]
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = os.path.join(work, sig.name)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        env = dict(os.environ, STICHOTROPE_OUTPUT=f"{out}/{{name}}.json,{out}/{{name}}.csv,{out}/{{name}}.txt")
        started = time.monotonic()
        app = subprocess.Popen([server, "--live", "30", "--threads", "2", "--clients", "4", "--out", f"{out}/demo"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = app.stdout.readline()
        if "server on" not in first:
            app.kill()
            fail(f"{sig.name}: the server did not start: {first!r}")
        time.sleep(1.0)  # requests flow
        app.send_signal(sig)
        try:
            rc = app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            fail(f"{sig.name}: still running 20 s after the signal")
        took = time.monotonic() - started
        if took > 15:  # the load would have gone on for 30 s
            fail(f"{sig.name}: the server ended {took:.1f} s after it started, not at the signal")
        if rc != -sig:
            fail(f"{sig.name}: ended with status {rc}, not by the signal ({-sig}); stderr: {app.stderr.read()[-500:]}")
        with open(f"{out}/AsyncServer.json") as f:
            results = json.load(f)  # whole: it parses
        hits = {b["name"]: b["hit_count"] for t in results["tracks"] for b in t["blocks"]}
        if hits.get("handle_request", 0) == 0:
            fail(f"{sig.name}: AsyncServer.json holds no handled request: {hits}")
        with open(f"{out}/AsyncServer.csv") as f:
            if not f.readline().startswith("Track,Block Name,Hit Count"):
                fail(f"{sig.name}: AsyncServer.csv has no header")
        with open(f"{out}/AsyncServer.txt") as f:
            if "Profiler: AsyncServer" not in f.read():
                fail(f"{sig.name}: AsyncServer.txt is not the table")
        leftovers = [n for n in os.listdir(out) if n.startswith(".") or n.endswith(".tmp")]
        if leftovers:
            fail(f"{sig.name}: temporary files left: {leftovers}")
        print(f"{sig.name}: ended by the signal after {took:.1f} s; {hits['handle_request']} requests in "
              f"AsyncServer.json, .csv and .txt", flush=True)
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
