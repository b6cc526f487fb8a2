#!/usr/bin/env python3
"""Runs stichotrope's benchmarks and prints the performance table of docs/performance.md:
each ratio measured in one run, its target beside it, PASS or MISS.

It is a report, not a test: the test suite never fails on speed, and this
script exits 0 whatever it measures (non-zero only if a benchmark cannot run).

    python3 benchmarks/report.py            # build both bench presets, run, report
    python3 benchmarks/report.py --quick    # one short repetition (a smoke run)
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def sh(*cmd):
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.stdout.write(done.stdout)
        raise SystemExit(f"report.py: '{' '.join(cmd)}' failed with status {done.returncode}")


def importer(preset):
    """Installs the preset's build into a scratch prefix and builds benchmarks/
    on its own against it with find_package: the code an importer compiles."""
    stage = os.path.join(ROOT, "build", preset, "stage")
    build = os.path.join(ROOT, "build", f"{preset}-importer")
    sh("cmake", "--install", os.path.join("build", preset), "--prefix", stage)
    sh("cmake", "-S", "benchmarks", "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
       "-DCMAKE_CXX_COMPILER=clang++-19", "-DCMAKE_CXX_COMPILER_CLANG_SCAN_DEPS=clang-scan-deps-19",
       f"-DCMAKE_PREFIX_PATH={stage}")
    sh("cmake", "--build", build)
    return build


def run(build, binary, quick, interleave=False, shuffle=False):
    """`binary`'s benchmarks: medians of 5 repetitions (one run each when
    quick). With `interleave`, the repetitions of all its benchmarks run in
    a random order (quick: 3 of them, shorter), so a row that subtracts one
    benchmark from another compares the same stretch of the machine's
    speed: this VM drifts by 30 % between phases of a few seconds. With
    `shuffle`, the same for a binary whose benchmarks set their own
    repetitions (repeat_bench)."""
    path = os.path.join(build, binary)
    out = os.path.join(build, f"{binary}.json")
    args = [path, f"--benchmark_out={out}", "--benchmark_out_format=json"]
    if interleave:
        args += [f"--benchmark_repetitions={3 if quick else 6}", "--benchmark_enable_random_interleaving=true",
                 "--benchmark_report_aggregates_only=true", f"--benchmark_min_time={0.05 if quick else 0.1}"]
    else:
        args += ["--benchmark_min_time=0.05"] if quick else [
            "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true"]
    if shuffle:  # its benchmarks set their own repetitions; run them all in a random order
        args += ["--benchmark_enable_random_interleaving=true"]
    sh(*args)
    with open(out) as f:
        data = json.load(f)
    results = {}
    aggregated = interleave or not quick
    for b in data["benchmarks"]:
        agg = b.get("aggregate_name")
        if agg:  # by its own name too: repeat_bench's benchmarks read their min and median
            results[b["name"]] = b
        if agg == "median" or (agg is None and not aggregated):
            results[b["run_name"]] = b
    return results, data["context"]


def run_fresh(build, binary, quick):
    """Each benchmark of `binary` in a process of its own, 5 times (once
    when quick): the median real time of each, in a result shaped like
    run()'s."""
    path = os.path.join(build, binary)
    out = os.path.join(build, f"{binary}.json")
    listed = subprocess.run([path, "--benchmark_list_tests=true"], stdout=subprocess.PIPE, text=True, check=True)
    times, last = {}, {}
    for _ in range(1 if quick else 5):
        for name in listed.stdout.split():
            sh(path, f"--benchmark_filter=^{re.escape(name)}$", f"--benchmark_out={out}",
               "--benchmark_out_format=json")
            with open(out) as f:
                for b in json.load(f)["benchmarks"]:
                    times.setdefault(b["run_name"], []).append(b["real_time"])
                    last[b["run_name"]] = b
    for name, b in last.items():
        b["real_time"] = statistics.median(times[name])
    return last


def instructions(binary, function):
    """The instructions of one benchmark function of `binary` (llvm-objdump),
    with addresses, branch targets and rip-relative offsets left out, so that
    two functions compare by their code alone."""
    done = subprocess.run(["llvm-objdump-19", "-d", "-C", "--no-show-raw-insn", "--no-leading-addr", binary],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit(f"report.py: llvm-objdump-19 failed on {binary}: {done.stdout[-500:]}")
    header = f"<(anonymous namespace)::{function}(benchmark::State&)>:"
    code, inside = [], False
    for line in done.stdout.splitlines():
        if line.strip().endswith(header):
            inside = True
            continue
        if inside:
            if not line.strip() or line.strip().endswith(">:"):
                break
            text = re.sub(r"\s*#.*$", "", line.strip())
            text = re.sub(r"<[^>]*>", "", text)
            text = re.sub(r"-?0x[0-9a-f]+\(%rip\)", "X(%rip)", text)
            text = re.sub(r"^(j\w+|call\w*)\s+\S+", r"\1", text)
            code.append(" ".join(text.split()))
    if not code:
        raise SystemExit(f"report.py: no function {function} in {binary}")
    while code and code[-1].startswith(("nop", "int3", "data16")):
        code.pop()
    return code


def ns(results, name, field="cpu_time"):
    b = results[name]
    return b[field] * UNIT_NS[b["time_unit"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one short repetition per benchmark")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already built")
    opts = parser.parse_args()

    if not opts.no_build:
        sh("cmake", "--workflow", "--preset", "bench")
        sh("cmake", "--workflow", "--preset", "bench-compiled-out")
        built, built_out = importer("bench"), importer("bench-compiled-out")
    else:
        built, built_out = (os.path.join(ROOT, "build", f"{p}-importer") for p in ("bench", "bench-compiled-out"))

    block, context = run(built, "block_bench", opts.quick)
    coro, _ = run(built, "coro_bench", opts.quick)
    res, _ = run(built, "results_bench", opts.quick)
    scale, _ = run(built, "scale_bench", opts.quick)
    waits, _ = run(built, "waits_bench", opts.quick, interleave=True)
    spawn = os.path.exists(os.path.join(built, "spawn_bench"))
    if spawn:
        spawned = run_fresh(built, "spawn_bench", opts.quick)
        spawned_plain = run_fresh(built, "spawn_bench_plain", opts.quick)
    reps, _ = run(built, "repeat_bench", opts.quick, shuffle=True)
    flavours = os.path.exists(os.path.join(built, "asio_timer_bench"))
    if flavours:
        timers, _ = run(built, "asio_timer_bench", opts.quick)
    out, _ = run(built_out, "block_bench", opts.quick)

    floor = ns(block, "baseline_two_timestamps")
    loop = ns(block, "baseline_empty_loop")
    rows = []

    def row(case, measured, ratio, target, ok):
        rows.append((case, measured, ratio, target, ok if isinstance(ok, str) else ("PASS" if ok else "MISS")))

    # docs/performance.md and the design: <= 1.15 x the two timestamp reads a block needs.
    r = ns(block, "block_explicit_site") / floor
    row("empty block, site seen, Site handle", f"{ns(block, 'block_explicit_site'):.2f} ns", f"{r:.2f} x 2 timestamps",
        "<= 1.15", r <= 1.15)
    r = ns(block, "block_site_seen") / floor
    row("empty block, site seen, source_location + literal", f"{ns(block, 'block_site_seen'):.2f} ns",
        f"{r:.2f} x 2 timestamps", "<= 1.15", r <= 1.15)
    # Not a target: how much this machine overlaps memory work with the
    # timestamp reads (benchmarks/block_bench.cpp), to read the two rows above by.
    r = ns(block, "probe_two_timestamps_32_stores") / floor
    row("probe: 2 timestamps + 32 load-add-stores (the machine)", f"{ns(block, 'probe_two_timestamps_32_stores'):.2f} ns",
        f"{r:.2f} x 2 timestamps", "-", "info")
    d = ns(block, "block_globally_disabled")
    r = d / loop
    row("empty block, globally disabled", f"{d:.2f} ns", f"{r:.2f} x empty loop", "<= 1 ns, <= 2",
        d <= 1.0 and r <= 2.0)
    fn = ns(block, "baseline_function")
    for how in ("global", "stopped", "track"):
        costs = []
        for form in ("literal", "string", "site", "tracked"):
            v = ns(block, f"disabled_{how}_{form}") - (fn if form == "tracked" else 0.0)
            costs.append((form, v))
        worst = max(v for _, v in costs)
        label = {"global": "global switch off", "stopped": "profiler stopped", "track": "track disabled"}[how]
        # The ratio to the empty loop (the benchmark's own iteration) says how
        # much of the figure is the machine's speed of the moment.
        row(f"disabled ({label}): literal / string / Site / track()", " / ".join(f"{v:.2f}" for _, v in costs) + " ns",
            f"{worst / loop:.2f} x empty loop (worst)", "<= 1 ns each", worst <= 1.0)
    # Compiled out, a block is no code at all: the benchmark's function is
    # compared with the empty loop's instruction by instruction (its time is
    # shown; a timed comparison of two sub-ns loops only measures the VM).
    out_binary = os.path.join(built_out, "block_bench")
    same = instructions(out_binary, "block_explicit_site") == instructions(out_binary, "baseline_empty_loop")
    c = ns(out, "block_explicit_site")
    base = ns(out, "baseline_empty_loop")
    row("empty block, compiled out", f"{c:.3f} ns (empty loop {base:.3f})",
        "same instructions as the empty loop" if same else "differs from the empty loop", "identical", same)
    for kind in ("distinct", "shared"):
        per = {n: ns(block, f"threads_{kind}_site{'s' if kind == 'distinct' else ''}/threads:{n}") for n in (1, 2, 4, 8)}
        worst = max(per.values()) / per[1]
        row(f"{kind} sites, 1..8 threads, per-thread cost", " / ".join(f"{per[n]:.1f}" for n in per) + " ns",
            f"{worst:.2f} x 1 thread (worst)", "flat (<= 1.25)", worst <= 1.25)
    g = ns(res, "get_results_64_threads_x_1000_sites/real_time", "real_time") / 1e6
    row("get_results(), 64 threads x 1,000 sites, recording on", f"{g:.2f} ms", "-", "< 5 ms", g < 5.0)
    r = ns(res, "recorder_during_get_results") / ns(res, "recorder_alone")
    row("recorder while get_results() loops", f"{ns(res, 'recorder_during_get_results'):.2f} ns",
        f"{r:.2f} x alone", "never blocked (<= 1.25)", r <= 1.25)
    big = scale["get_results_128_threads_x_5000_sites/min_time:0.500/real_time"]
    g = ns(scale, "get_results_128_threads_x_5000_sites/min_time:0.500/real_time", "real_time") / 1e6
    row("get_results(), 128 threads x 5,000 sites", f"{g:.1f} ms", "-", "<= 50 ms", g <= 50.0)
    t = ns(scale, "take_results_128_threads_x_5000_sites/iterations:5/real_time", "real_time") / 1e6
    row("take_results(), 128 threads x 5,000 sites", f"{t:.1f} ms", "-", "-", "info")
    row("memory per (thread, site), 4 octaves, held by the profiler", f"{big['bytes_per_thread_site']:.0f} B",
        f"{big['rss_bytes_per_thread_site']:.0f} B of RSS", "<= 320 B", big["bytes_per_thread_site"] <= 320)
    row("128 threads x 5,000 sites, live", f"{big['live_rss_mb']:.0f} MB RSS",
        f"{big['live_profiler_mb']:.0f} MB held", "<= 250 MB", big["live_rss_mb"] <= 250)
    ex = scale["after_exit_128_threads_x_5000_sites/min_time:0.500/real_time"]
    row("... after those threads exit (RSS just before: "
        f"{ex['before_exit_rss_mb']:.0f} MB, after take_results() intervals)", f"{ex['exited_rss_mb']:.0f} MB RSS",
        f"{ex['exited_profiler_mb']:.0f} MB held", "no growth", ex["exited_rss_mb"] <= ex["before_exit_rss_mb"])
    empty = ns(coro, "empty_block")
    for case, plain, wrapped in (("ready", "ready_await", "ready_await_wrapped"),
                                 ("suspend/resume round trip", "round_trip_await", "round_trip_await_wrapped")):
        added = (ns(coro, wrapped) - ns(coro, plain)) / empty
        row(f"wrapped co_await, {case}", f"+{ns(coro, wrapped) - ns(coro, plain):.2f} ns",
            f"{added:.2f} x empty block", "<= 2", added <= 2.0)
    # Waits (docs/coroutines.md): a flow's round trip with one block open
    # charges one wait; with none, nothing. The difference is the attribution.
    none, one_open, four = (ns(waits, f"flow_round_trip_{k}") for k in ("no_block", "one_block", "four_blocks"))
    row("suspend/resume round trip in a flow, wait charged to 1 open block", f"+{one_open - none:.2f} ns",
        f"{one_open:.2f} vs {none:.2f} ns with no block", "<= +5 ns", one_open - none <= 5.0)
    row("... charged to 4 open blocks", f"+{four - none:.2f} ns", f"{(four - none) / 4:.2f} ns a block", "-", "info")
    ready = ns(waits, "ready_await_in_task") - ns(waits, "ready_await_plain")
    row("co_await that does not suspend, in a task vs no hooks", f"+{ready:.2f} ns", "-", "<= +1 ns", ready <= 1.0)
    mem = waits["memory_per_await_site/iterations:3"]
    row("memory per (thread, await site), 1,000 sites", f"{mem['bytes_per_thread_await_site']:.0f} B",
        f"{mem['registry_bytes_per_await_site']:.0f} B registry (per profiler)", "<= 128 B",
        mem["bytes_per_thread_await_site"] <= 128)
    if spawn:
        for n in (10_000, 100_000):
            name = f"start_coroutines/{n}/iterations:1/manual_time"
            with_, plain = ns(spawned, name, "real_time") / 1e6, ns(spawned_plain, name, "real_time") / 1e6
            row(f"starting {n:,} Asio coroutines alive at once (a block each; a fresh process each run)", f"{with_:.1f} ms",
                f"{with_ / plain:.2f} x plain Asio ({plain:.1f} ms); peak RSS {spawned[name]['peak_rss_mb']:.0f} vs "
                f"{spawned_plain[name]['peak_rss_mb']:.0f} MB", "<= 1.5 x" if n == 100_000 else "-",
                with_ / plain <= 1.5 if n == 100_000 else "info")
    for case, label, batch in (("spin_10us", "10 us spin", 100), ("copy_64k", "64 KiB copy", 1000)):
        # The same protocol for both tools: runs of `batch` calls (about 1 ms),
        # the fastest of 300 (docs/repetition.md, "Against Google Benchmark: two protocols").
        gb = ns(reps, f"gb_batched_{case}/iterations:{batch}/repeats:300/real_time_min", "real_time")
        rep = reps[f"repeat_batched_{case}/iterations:1/repeats:300/real_time_min"]
        median = reps[f"repeat_batched_{case}/iterations:1/repeats:300/real_time_median"]["median_ns"]
        r = rep["min_ns"] / gb
        row(f"repeat vs Google Benchmark, {label}: fastest of 300 runs of {batch:,} calls",
            f"{rep['min_ns']:.0f} vs {gb:.0f} ns", f"{r:.3f} x (repeat's median run {median:.0f} ns)",
            "within 3 %", abs(r - 1.0) <= 0.03)
    for case, label in (("spin_10us", "10 us spin"), ("copy_64k", "64 KiB copy")):
        # Each tool's usual protocol: repeat's single runs (the fastest that
        # is not an outlier; the median of 5 repeat() calls) against Google
        # Benchmark's fastest batch mean, which carries the machine's
        # interruptions: a different quantity, reported without a target.
        gb = ns(reps, f"gb_{case}/repeats:20/real_time_min", "real_time")
        rep = reps[f"repeat_{case}/iterations:1/repeats:5/real_time_median"]
        r = rep["min_without_outliers_ns"] / gb
        row(f"... {label}, each tool's usual protocol: single runs (repeat's fastest without outliers) vs "
            "Google Benchmark's fastest batch mean", f"{rep['min_without_outliers_ns']:.0f} vs {gb:.0f} ns",
            f"{r:.3f} x (repeat's fastest of all {rep['min_ns']:.0f} ns, median {rep['median_ns']:.0f} ns)", "-", "info")
    if flavours:
        s, b = ns(timers, "standalone_round_trip_one_block"), ns(timers, "boost_round_trip_one_block")
        row("Asio awaited timer round trip, a block open: Boost.Asio vs standalone", f"{b:.1f} vs {s:.1f} ns",
            f"{b / s:.3f} x", "within 5 %", abs(b / s - 1.0) <= 0.05)
        s0, b0 = ns(timers, "standalone_round_trip_no_block"), ns(timers, "boost_round_trip_no_block")
        row("... no block open", f"{b0:.1f} vs {s0:.1f} ns", f"{b0 / s0:.3f} x", "-", "info")
    many, one = ns(block, "block_many_named_sites"), ns(block, "block_one_named_site")
    row("one thread alternating among 1,000 hot named sites", f"{many:.2f} ns", f"{many / one:.2f} x one hot site",
        "<= 1.3", many / one <= 1.3)
    many_long, one_long = ns(block, "block_many_long_named_sites"), ns(block, "block_one_long_named_site")
    row("... 1,000 names of 25 bytes that differ in the middle", f"{many_long:.2f} ns",
        f"{many_long / one_long:.2f} x one of them", "-", "info")
    h = ns(block, "block_many_site_handles")
    row("the same 1,000 sites by Site handle (no lookup)", f"{h:.2f} ns",
        f"{h / ns(block, 'block_explicit_site'):.2f} x one site", "-", "info")
    first = ns(block, "block_first_use/iterations:50000")
    row("first use of a call site", f"{first:.0f} ns", "-", "-", "info")
    t = ns(block, "tracked_function") - ns(block, "baseline_function")
    row("track()-wrapped function, added", f"+{t:.2f} ns", f"{t / floor:.2f} x 2 timestamps", "-", "info")
    tl = ns(block, "block_timeline_on")
    row("empty block, timeline capture on (keep_latest)", f"{tl:.2f} ns",
        f"{tl / ns(block, 'block_explicit_site'):.2f} x capture off", "-", "info")

    print(f"stichotrope performance report ({'quick' if opts.quick else 'medians of 5'}; "
          f"{context.get('num_cpus')} CPUs at {context.get('mhz_per_cpu')} MHz; "
          f"floor = two timestamp reads = {floor:.2f} ns, empty loop = {loop:.3f} ns)\n")
    widths = [max(len(str(r[i])) for r in rows + [("case", "measured", "ratio", "target", "")]) for i in range(5)]
    header = ("case", "measured", "ratio", "target", "")
    for r in [header] + rows:
        print("  ".join(str(v).ljust(widths[i]) for i, v in enumerate(r)).rstrip())
    print(f"\n{sum(1 for r in rows if r[4] == 'PASS')} PASS, {sum(1 for r in rows if r[4] == 'MISS')} MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
