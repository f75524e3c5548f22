#!/usr/bin/env python3
"""Runs the same wrk load against ebb-demo once per allocator and writes
build/demo/ (ignored by git; `make demo-publish` copies it to demo/results/,
which the README shows): <name>.csv (RSS every second, during the load and idle after
it), table.md (requests/s, latency, peak and final RSS, ratios to ebb),
rss.png (RSS over time, one line per allocator) and run.log.

Allocators: the `ebb` binary (built with `--features ebb`: the crate is the
global allocator), and the system binary with nothing preloaded (glibc) or
with Debian's jemalloc, mimalloc, tcmalloc, or build/libebb.so preloaded.

Called by demo/run.sh after it has built both binaries; see demo/README.md.
"""
import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEMO = Path(__file__).resolve().parent
ROOT = DEMO.parent
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
BIN = {"system": DEMO / "target" / "ebb-demo-system", "ebb": DEMO / "target" / "ebb-demo-ebb"}

# The machine is 2 cores; a service's allocators behave differently on a big
# one.  These settings stand in for a 32-core machine, one per allocator whose
# behaviour depends on the core count (see README "Rust service demo").
BIG_MACHINE_GLIBC = "glibc.malloc.arena_max=256"   # glibc's default is 8 arenas per core
BIG_MACHINE_JEMALLOC = "narenas:128"               # jemalloc's default is 4 arenas per core

# name: (binary, environment, preloaded library, note for the table)
ALLOCATORS = {
    "glibc": ("system", {"GLIBC_TUNABLES": BIG_MACHINE_GLIBC}, None,
              f"GLIBC_TUNABLES={BIG_MACHINE_GLIBC}"),
    "ebb": ("ebb", {}, None, "crate `ebb::Ebb` as #[global_allocator]"),
    "jemalloc": ("system", {"MALLOC_CONF": BIG_MACHINE_JEMALLOC}, LIBDIR / "libjemalloc.so.2",
                 f"5.3.0, MALLOC_CONF={BIG_MACHINE_JEMALLOC}"),
    "mimalloc": ("system", {}, LIBDIR / "libmimalloc.so.2", "2.0.9"),
    "tcmalloc": ("system", {}, LIBDIR / "libtcmalloc_minimal.so.4", "gperftools 2.10"),
    "glibc-2core": ("system", {}, None, "glibc 2.36, default arenas (16 on 2 cores)"),
    "ebb-preload": ("system", {}, ROOT / "build" / "libebb.so", "LD_PRELOAD=build/libebb.so"),
    # An experiment: idle tokio workers call ebb::collect(false) (--collect-idle-ms).
    "ebb-collect-idle": ("ebb", {}, None, "crate; a tokio worker about to park calls ebb::collect(false) (≤ every 10 ms)"),
}
DEFAULT_ORDER = ["glibc", "ebb", "jemalloc", "mimalloc", "tcmalloc", "glibc-2core", "ebb-preload",
                 "ebb-collect-idle"]


def log(msg, logfile=None):
    print(msg, file=sys.stderr, flush=True)
    if logfile:
        logfile.write(msg + "\n")
        logfile.flush()


def proc_status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """User + system CPU time of the process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def http_get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


def cache_mib(port):
    """The service's own count of cached bytes (its live data, roughly)."""
    try:
        return json.loads(http_get(port, "/stats", timeout=0.8))["cache_bytes"] / 2**20
    except Exception:
        return None


def run_one(name, args, logfile, tag=None):
    """One load run against allocator `name`; its files are <tag>.* (the
    name, or name.rN when there are several rounds)."""
    tag = tag or name
    binary, extra_env, preload, _ = ALLOCATORS[name]
    env = dict(os.environ, **extra_env)
    if preload:
        env["LD_PRELOAD"] = str(preload)
    cmd = [str(BIN[binary]), "--port", str(args.port), "--workers", str(args.workers),
           "--cache-mb", str(args.cache_mb)]
    if name == "ebb-collect-idle":
        cmd += ["--collect-idle-ms", "10"]
    server_log = open(args.out / f"{tag}.server.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=server_log, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            http_get(args.port, "/stats", timeout=0.5)
            break
        except Exception:
            if server.poll() is not None:
                raise SystemExit(f"{name}: server exited at start ({server.returncode}), see {server_log.name}")
            time.sleep(0.1)

    phase_seconds = max(1, args.duration // args.phases)
    wrk_cmd = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", f"{args.duration}s",
               "--timeout", "10s", "-s", str(DEMO / "load.lua"), f"http://127.0.0.1:{args.port}",
               "--", str(phase_seconds), str(args.key_space), str(args.report_every)]
    cpu_at_start = cpu_seconds(server.pid)
    start = time.monotonic()
    wrk = subprocess.Popen(wrk_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []   # (seconds, rss MiB, cache MiB, state)
    crashed = None
    load_end = None
    tick = 0
    while True:
        state = "load" if wrk.poll() is None else "idle"
        if state == "idle" and load_end is None:
            load_end = time.monotonic() - start
            cpu_during_load = (cpu_seconds(server.pid) or 0) - (cpu_at_start or 0)
            end_of_load_cache = cache_mib(args.port)
            try:   # ebb's own view (live, resident, free) when the load stops
                (args.out / f"{tag}.metrics-end-of-load.txt").write_text(http_get(args.port, "/metrics"))
            except Exception:
                pass
        if state == "idle" and time.monotonic() - start >= load_end + args.idle:
            break
        rss = proc_status_kib(server.pid, "VmRSS")
        if server.poll() is not None or rss is None:
            crashed = f"server exited with {server.returncode} at {time.monotonic() - start:.0f}s"
            break
        samples.append((round(time.monotonic() - start, 2), rss / 1024, cache_mib(args.port), state))
        tick += 1
        time.sleep(max(0.0, start + tick - time.monotonic()))

    wrk_out = wrk.communicate()[0]
    peak_kib = proc_status_kib(server.pid, "VmHWM")
    metrics = None
    if not crashed:
        try:
            metrics = http_get(args.port, "/metrics")
        except Exception as e:
            metrics = f"# /metrics failed: {e}\n"
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    server_log.close()
    if metrics:
        (args.out / f"{tag}.metrics.txt").write_text(metrics)

    with open(args.out / f"{tag}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "rss_mib", "cache_mib", "state"])
        for t, rss, cache, st in samples:
            w.writerow([t, f"{rss:.1f}", "" if cache is None else f"{cache:.1f}", st])

    result = {"name": name, "crashed": crashed, "load_seconds": load_end}
    m = re.search(r"^RESULT (.*)$", wrk_out, re.M)
    if m:
        fields = dict(kv.split("=") for kv in m.group(1).split())
        result.update({k: int(v) for k, v in fields.items()})
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        if load_end is not None and result["requests"]:
            result["cpu_us_per_request"] = cpu_during_load * 1e6 / result["requests"]
    else:
        log(f"{name}: no RESULT line from wrk:\n{wrk_out}", logfile)
    load_rss = [rss for _, rss, _, st in samples if st == "load"]
    result["peak_mib"] = (peak_kib / 1024) if peak_kib else max(load_rss, default=0)
    result["end_of_load_mib"] = load_rss[-1] if load_rss else None
    result["final_mib"] = samples[-1][1] if samples else None
    result["end_of_load_cache_mib"] = end_of_load_cache if load_end is not None else None
    result["final_cache_mib"] = next((c for _, _, c, _ in reversed(samples) if c is not None), None)
    log(f"{name}: {json.dumps(result)}", logfile)
    log(wrk_out.strip(), logfile)
    return result


def median(values):
    v = sorted(values)
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def combine(name, runs):
    """One allocator's rounds as one result: the median of every measured
    figure over the rounds that did not crash (their count in "rounds")."""
    ok = [r for r in runs if not r["crashed"] and "rps" in r]
    if not ok:
        return dict(runs[0], rounds=0)
    out = {"name": name, "crashed": None, "rounds": len(ok), "runs": runs}
    for k in ok[0]:
        if k in ("name", "crashed"):
            continue
        vals = [r[k] for r in ok if isinstance(r.get(k), (int, float))]
        out[k] = median(vals) if vals else ok[0][k]
    return out


def ratio(value, base):
    return f"{value / base:.2f}x" if value and base else "-"


def write_table(results, args):
    ebb = next((r for r in results if r["name"] == "ebb" and not r["crashed"]), None)
    lines = [
        f"Load: wrk, {args.connections} connections, {args.duration} s "
        f"({args.phases} phases: small bodies, then large), then {args.idle} s idle; "
        f"server: {args.workers} tokio workers, cache budget {args.cache_mb} MiB; {os.cpu_count()} cores.",
        "",
        "glibc and jemalloc run with settings that stand in for a 32-core machine (their arena counts "
        "follow the core count); mimalloc, tcmalloc and ebb have no such setting. "
        "Peak RSS is the kernel's high-water mark (VmHWM); \"cached\" is what the service's cache holds "
        "by its own count (record capacities + 64 B each), the floor RSS could get down to.",
        "" if args.runs == 1 else
        f"Each figure is the median of {args.runs} interleaved rounds (the allocators' order rotated "
        "each round); server CPU is the server process's user + system time over the load.",
        "",
        "| allocator | settings | requests/s | p50 ms | p99 ms | server CPU µs/request | peak RSS MiB | "
        "RSS end of load | RSS after idle | cached MiB (end of load / after idle) | "
        "req/s vs ebb | peak vs ebb | after idle vs ebb |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        note = ALLOCATORS[r["name"]][3] if r["name"] in ALLOCATORS else "preloaded (--extra)"
        if r["crashed"] or "rps" not in r:
            lines.append(f"| {r['name']} | {note} | {r['crashed'] or 'no wrk result'} | | | | | | | | | | |")
            continue
        b = ebb or {}
        cache = f"{r['end_of_load_cache_mib'] or 0:.0f} / {r['final_cache_mib'] or 0:.0f}"
        lines.append(
            f"| {r['name']} | {note} | {r['rps']:.0f} | {r['p50_us'] / 1000:.1f} | {r['p99_us'] / 1000:.1f} "
            f"| {r.get('cpu_us_per_request', 0):.0f} | {r['peak_mib']:.0f} | {r['end_of_load_mib']:.0f} | {r['final_mib']:.0f} | {cache} "
            f"| {ratio(r['rps'], b.get('rps'))} | {ratio(r['peak_mib'], b.get('peak_mib'))} "
            f"| {ratio(r['final_mib'], b.get('final_mib'))} |")
    text = "\n".join(lines) + "\n"
    (args.out / "table.md").write_text(text)
    return text


# Line styles: the extra rows are dashed in their allocator's colour.
LINE_STYLE = {
    "glibc": "lc rgb '#7b3294' lw 2",
    "ebb": "lc rgb '#1a9641' lw 3",
    "jemalloc": "lc rgb '#2c7bb6' lw 2",
    "mimalloc": "lc rgb '#e66101' lw 2",
    "tcmalloc": "lc rgb '#8c510a' lw 2",
    "glibc-2core": "lc rgb '#7b3294' lw 2 dt 2",
    "ebb-preload": "lc rgb '#1a9641' lw 2 dt 2",
    "ebb-collect-idle": "lc rgb '#a6d96a' lw 2 dt 4",
}


def write_chart(results, args):
    if not shutil.which("gnuplot"):
        log("gnuplot not found (apt-get install gnuplot-nox): no chart")
        return
    names = [r["name"] for r in results if (args.out / f"{r['name']}.csv").exists()]
    load_end = max((r["load_seconds"] or 0) for r in results)
    plots = [f"'{args.out / (n + '.csv')}' using 1:2 with lines {LINE_STYLE.get(n, 'lw 2')} title '{n}'"
             for n in names]
    # What the service itself holds (its cache), from the first run: the floor
    # an allocator could get down to.
    plots.append(f"'{args.out / (names[0] + '.csv')}' using 1:3 with lines lw 2 dt 3 lc rgb 'black' "
                 f"title 'cached data'")
    phase_lines = "".join(
        f"set arrow from {args.duration * i / args.phases},graph 0 to {args.duration * i / args.phases},graph 1 "
        f"nohead dt 3 lc rgb 'gray40'\n"
        f"set label 'phase {'AB'[i % 2]}' at {args.duration * i / args.phases},graph 0.03 offset 0.5,0 tc rgb 'gray40'\n"
        for i in range(1, args.phases))
    script = f"""
set terminal pngcairo size 1400,700 font ",11" noenhanced
set output '{args.out / "rss.png"}'
set datafile separator ','
set key outside right top box
set grid
set title "ebb-demo: server RSS, {args.workers} tokio workers, {args.connections} connections; load until {load_end:.0f} s, then idle"
set xlabel 'seconds'
set ylabel 'RSS (MiB)'
set xrange [0:{load_end + args.idle + 1:.0f}]
set yrange [0:*]
set label 'phase A' at 0,graph 0.03 offset 0.5,0 tc rgb 'gray40'
{phase_lines}set arrow from {load_end:.1f},graph 0 to {load_end:.1f},graph 1 nohead dt 2 lw 1 lc rgb 'gray20'
set label 'load stops' at {load_end:.1f},graph 0.97 offset 0.5,0
plot {', '.join(plots)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=60, help="seconds of load per allocator (60)")
    p.add_argument("--idle", type=int, default=20, help="seconds sampled idle after the load (20)")
    p.add_argument("--phases", type=int, default=2, help="size-mix phases during the load (2)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=8, help="tokio worker threads (8)")
    p.add_argument("--cache-mb", type=int, default=64, help="the cache's byte budget (64)")
    p.add_argument("--key-space", type=int, default=50000)
    p.add_argument("--report-every", type=int, default=20000,
                   help="one /report (16-64 MiB working set) per this many requests (20000)")
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--runs", type=int, default=1,
                   help="interleaved rounds; the table shows each figure's median (1)")
    p.add_argument("--extra", default="",
                   help='more allocators preloaded into the system binary: "NAME=PATH ..." '
                        "(a hand-built mimalloc v3 or snmalloc)")
    p.add_argument("--only", help="comma-separated allocators (default: " + ",".join(DEFAULT_ORDER) + ")")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "demo",
                   help="results folder (build/demo, ignored by git; `make demo-publish` copies "
                        "it to demo/results/, the copy the README shows)")
    p.add_argument("--redraw", action="store_true",
                   help="rewrite table.md and rss.png from the results.json and CSVs of an earlier run")
    args = p.parse_args()
    if args.redraw:
        saved = json.loads((args.out / "results.json").read_text())
        for k in ("duration", "idle", "phases", "workers", "connections", "cache_mb", "runs"):
            setattr(args, k, saved["args"].get(k, getattr(args, k)))
        write_table(saved["results"], args)
        write_chart(saved["results"], args)
        return 0

    names = args.only.split(",") if args.only else list(DEFAULT_ORDER)
    for spec in args.extra.split():
        name, _, path = spec.partition("=")
        if not name or not path:
            raise SystemExit(f"--extra: expected NAME=PATH, got {spec!r}")
        ALLOCATORS[name] = ("system", {}, Path(path).resolve(), f"LD_PRELOAD={path}")
        if name not in names:   # also named in --only: run it once
            names.append(name)
    for n in names:
        if n not in ALLOCATORS:
            raise SystemExit(f"unknown allocator {n}; known: {', '.join(ALLOCATORS)}")
    runnable = []
    for n in names:
        binary, _, preload, _ = ALLOCATORS[n]
        if not BIN[binary].exists():
            log(f"skipping {n}: {BIN[binary]} not built")
        elif preload and not preload.exists():
            log(f"skipping {n}: {preload} missing")
        else:
            runnable.append(n)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "run.log", "w") as logfile:
        log(f"demo: {' '.join(sys.argv[1:]) or '(defaults)'}; allocators {', '.join(runnable)}", logfile)
        rounds = {n: [] for n in runnable}
        for k in range(args.runs):
            shift = k % len(runnable) if runnable else 0
            for n in runnable[shift:] + runnable[:shift]:
                tag = n if args.runs == 1 else f"{n}.r{k + 1}"
                rounds[n].append(run_one(n, args, logfile, tag))
                if args.runs > 1 and k == 0:   # the chart draws the first round
                    shutil.copyfile(args.out / f"{tag}.csv", args.out / f"{n}.csv")
                time.sleep(2)
        results = [combine(n, rounds[n]) if args.runs > 1 else rounds[n][0] for n in runnable]
        table = write_table(results, args)
        log(table, logfile)
    run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (args.out / "results.json").write_text(json.dumps({"args": run_args, "results": results}, indent=1) + "\n")
    if results:
        write_chart(results, args)
    log(f"wrote {args.out}/table.md, rss.png, <allocator>.csv")
    return 1 if any(r["crashed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
