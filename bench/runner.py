#!/usr/bin/env python3
"""ebb's benchmark runner: every workload on every allocator, side by side.

Allocators are swapped by LD_PRELOAD into the same binaries: ebb
(build/libebb.so), glibc (nothing preloaded), and Debian's mimalloc,
jemalloc and tcmalloc.  Runs are interleaved (round by round, with the
allocator order rotated each round) so machine drift hits all alike, and
the median of the rounds is reported: wall time, CPU time (user + system)
and peak RSS, each also as a ratio to ebb, with geometric means at the end.

Results go to bench/results/ (quick runs to bench/results/quick/):
results.json, results.csv, timeseries-*.csv and PNG charts (gnuplot).

--extra "NAME=PATH ..." appends more preloadable allocators to the default
five; results.txt ends with a summary against Debian's four peers (glibc,
mimalloc, jemalloc, tcmalloc) and, apart, the extras.  --busy N runs N CPU
hogs (bench/tools/hog.c) beside every run; the burst-busy workload always
runs 4.

--classic DIR (make bench CLASSIC=DIR) also runs mimalloc-bench's programs
from a checkout of it built outside this repo, as its bench.sh runs them;
they are reported in a summary of their own, not in the criteria's.
"""
import argparse
import csv
import glob
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "bench"
NPROC = os.cpu_count() or 1
PAGE_KB = os.sysconf("SC_PAGESIZE") // 1024

PEERS = {
    "mimalloc": "libmimalloc.so.2",
    "jemalloc": "libjemalloc.so.2",
    "tcmalloc": "libtcmalloc_minimal.so.4",
}
APT_NAMES = {"mimalloc": "libmimalloc2.0", "jemalloc": "libjemalloc2",
             "tcmalloc": "libtcmalloc-minimal4"}
DEFAULT_ALLOCATORS = "ebb,glibc,mimalloc,jemalloc,tcmalloc"
# The peers the criteria are stated against; any other allocator is an extra.
DEBIAN_PEERS = ("glibc", "mimalloc", "jemalloc", "tcmalloc")
HOG_BOUND_S = 900  # a hog exits by itself after this, whatever happens to the runner
BURST_BUSY_HOGS = 4


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def find_system_lib(soname):
    for d in sorted(glob.glob("/usr/lib/*-linux-gnu")) + ["/usr/lib", "/lib"]:
        p = Path(d) / soname
        if p.exists():
            return p
    return None


class LibWithEnv(type(Path())):
    """A preload path with environment variables of its own (NAME=PATH:VAR=VALUE)."""
    env = None


def discover_allocators(wanted):
    """[(name, preload path or None)], and the names that are missing."""
    allocs, missing = [], []
    ebb = ROOT / "build" / "libebb.so"
    for name in wanted:
        if "=" in name:  # NAME=PATH[:VAR=VALUE...]: any preloadable library, e.g. an older ebb build
            name, path = name.split("=", 1)
            path, *settings = path.split(":")
            lib = LibWithEnv(Path(path).resolve())
            lib.env = dict(kv.split("=", 1) for kv in settings if "=" in kv)
            allocs.append((name, lib))
        elif name == "ebb":
            allocs.append(("ebb", ebb))
        elif name == "glibc":
            allocs.append(("glibc", None))
        else:
            lib = find_system_lib(PEERS[name])
            if lib:
                allocs.append((name, lib))
            else:
                missing.append(name)
    return allocs, missing


def preload_env(lib, extra=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib is not None:
        env["LD_PRELOAD"] = str(lib)
        env.update(getattr(lib, "env", None) or {})
    if extra:
        env.update(extra)
    return env


def check_preload_takes(allocs):
    """Run a tiny process per allocator and check that the preloaded
    library is mapped and serves malloc (dladdr of malloc names it)."""
    probe = BUILD / "probe_malloc"
    for name, lib in allocs:
        out = subprocess.run([str(probe)], env=preload_env(lib), capture_output=True,
                             text=True).stdout.strip()
        want = Path(lib).name if lib else "libc.so"
        if want not in out:
            raise SystemExit(f"bench: {name}: malloc resolves to {out!r}, not {want}")


# ---- running one process ----------------------------------------------------

def read_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def child_pid(pid):
    """The workload started by bench/tools/measure (its only child)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def run_process(cmd, env, sample_period=None, stdin_path=None, cwd=None, timeout=600):
    """Run cmd; return wall, cpu, peak RSS (KiB), stdout text and, with
    sample_period, [(t, rss_kb)] polled from /proc while it runs."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    fd, usage_file = tempfile.mkstemp(prefix="ebb-measure-")
    os.close(fd)
    t0 = time.perf_counter()
    # Through bench/tools/measure.c: see there why not the runner's own wait4.
    proc = subprocess.Popen([str(BUILD / "measure"), usage_file] + list(cmd), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin, cwd=cwd)
    out_chunks, err_chunks = [], []
    readers = [threading.Thread(target=lambda s=proc.stdout, o=out_chunks: o.append(s.read())),
               threading.Thread(target=lambda s=proc.stderr, o=err_chunks: o.append(s.read()))]
    for r in readers:
        r.start()
    samples = []
    status = rusage = None
    next_sample = 0.0
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter() - t0
        if now > timeout:
            proc.kill()
        if sample_period is not None and now >= next_sample:
            target = child_pid(proc.pid)
            rss = read_rss_kb(target) if target else None
            if rss is not None:
                samples.append((now, rss))
            next_sample = now + sample_period
        time.sleep(0.005 if sample_period is None else min(0.005, sample_period / 4))
    wall = time.perf_counter() - t0
    for r in readers:
        r.join()
    if stdin_path:
        stdin.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = b"".join(out_chunks).decode(errors="replace")
    err = b"".join(err_chunks).decode(errors="replace")
    usage = Path(usage_file).read_text().split()
    os.unlink(usage_file)
    if proc.returncode != 0 or len(usage) != 3:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {err.strip()[-500:]}")
    return {"wall": wall, "cpu": float(usage[1]) + float(usage[2]), "rss_kb": int(usage[0]),
            "stdout": out, "samples": samples}


class Hogs:
    """N busy CPU loops (bench/tools/hog) for the duration of a with block.
    Each dies with the runner (PR_SET_PDEATHSIG) or after HOG_BOUND_S."""

    def __init__(self, n):
        self.n, self.procs = n, []

    def __enter__(self):
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([str(BUILD / "hog"), str(HOG_BOUND_S)],
                                               stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []
        return False


# ---- workloads --------------------------------------------------------------

class Workload:
    """A named measurement.  run(lib) returns a dict with at least wall, cpu
    and rss_kb; `binding` says how the program reaches its allocator."""

    def __init__(self, name, title, run, binding="calls malloc through libc's symbols: "
                 "LD_PRELOAD replaces it", extra_cols=(), hogs=None, group="own"):
        self.name, self.title, self.run, self.binding = name, title, run, binding
        self.extra_cols = extra_cols
        self.hogs = hogs  # CPU hogs beside each run; None: the runner's --busy
        # "own": this repo's workloads and programs, which the criteria are
        # stated over; "classic": mimalloc-bench's programs (--classic).
        self.group = group


def c_workload(prog, threads, scale, sample=False, args=()):
    exe = BUILD / prog

    def run(lib):
        r = run_process([str(exe), "-t", str(threads), "-s", str(scale)] + list(args),
                        preload_env(lib), sample_period=0.05 if sample else None)
        m = re.search(r"^ops=(\d+)", r["stdout"], re.M)
        r["ops"] = int(m.group(1)) if m else None
        return r
    return run


def service_metrics(r):
    """Peak RSS over peak live bytes: the workload's own peak (read when a
    big working set is complete), else the highest of its samples."""
    live = [(float(t), int(b)) for t, b in re.findall(r"^sample t=([\d.]+) live=(\d+)",
                                                      r["stdout"], re.M)]
    r["live"] = live
    m = re.search(r"^peak_live=(\d+)", r["stdout"], re.M)
    peak_live = max([b for _, b in live] + ([int(m.group(1))] if m else []), default=0)
    peak_live_kb = peak_live / 1024
    r["rss_over_live"] = r["rss_kb"] / peak_live_kb if peak_live_kb else None
    return r


def burst_metrics(r):
    """RSS 1 s, 2 s and 10 s after the workload reports its frees done, and
    the free phase's length (from freeing_at to freed_at)."""
    m = re.search(r"^freed_at t=([\d.]+)", r["stdout"], re.M)
    freed = float(m.group(1)) if m else None
    r["freed_at"] = freed
    m = re.search(r"^freeing_at t=([\d.]+)", r["stdout"], re.M)
    if m and freed is not None:
        r["free_s"] = freed - float(m.group(1))

    def rss_at(t):
        best = None
        for ts, rss in r["samples"]:
            if ts <= t:
                best = rss
        return best
    if freed is not None:
        r["rss_1s_kb"] = rss_at(freed + 1.0)
        r["rss_2s_kb"] = rss_at(freed + 2.0)
        r["rss_10s_kb"] = rss_at(freed + 10.0) or (r["samples"][-1][1] if r["samples"] else None)
    return r


def pool_metrics(r):
    """thread_pool: the RSS the workload read itself after its quiet period
    (everything freed, no allocator call for 2 s), and its live bytes."""
    m = re.search(r"^idle_rss_kib=(\d+)", r["stdout"], re.M)
    r["idle_rss_kb"] = int(m.group(1)) if m else None
    r["live"] = [(float(t), int(b)) for t, b in
                 re.findall(r"^sample t=([\d.]+) live=(\d+)", r["stdout"], re.M)]
    return r


def trace_metrics(r):
    """trace_replay: the replay's own time (the traces are made before it)."""
    m = re.search(r"^replay_s=([\d.]+)", r["stdout"], re.M)
    r["replay_s"] = float(m.group(1)) if m else None
    return r


def generated(name, generator, scale):
    """An input file written once by bench/programs/GENERATOR."""
    path = BUILD / name
    if not path.exists():
        with open(path, "w") as f:
            subprocess.run([sys.executable, str(ROOT / "bench/programs" / generator), str(scale)],
                           stdout=f, check=True)
    return path


def program_workload(kind, quick):
    """Real programs from Debian, each run as the user would run it."""
    scale = 0.05 if quick else 1.0
    if kind == "python":
        py = shutil.which("python3")
        script = ROOT / "bench/programs/alloc_heavy.py"
        return lambda lib: run_process([py, str(script), str(scale)], preload_env(lib))
    if kind == "lua":
        script = ROOT / "bench/programs/alloc_heavy.lua"
        return lambda lib: run_process(["lua5.4", str(script), str(scale)], preload_env(lib))
    if kind == "sqlite":
        sql = generated(f"bench-{scale}.sql", "gen_sql.py", scale)
        return lambda lib: run_process(["sqlite3", ":memory:"], preload_env(lib), stdin_path=sql)
    if kind == "gcc":
        src = generated(f"big-{scale}.c", "gen_c.py", scale)
        obj = BUILD / "big.o"
        return lambda lib: run_process(["gcc", "-O2", "-c", str(src), "-o", str(obj)],
                                       preload_env(lib))
    raise ValueError(kind)


# mimalloc-bench's programs (github.com/daanx/mimalloc-bench), built outside
# this repo: --classic DIR names a checkout whose out/bench holds the
# binaries its cmake build makes (nothing of it is in this repo).  Each is
# run as its bench.sh runs it, with its thread count set to this machine's
# CPUs ("{n}", "{n2}" twice that, "{n16}" at most 16); the "N" variants are
# left out on one CPU, as bench.sh leaves them.  Four report their work
# instead of finishing it: their time is bench.sh's "relative time" for it.
# larson, xmalloc-test and glibc-thread run for a fixed time, so their CPU
# time is scaled alike; rptest does fixed work with sleeps between phases,
# so its CPU time is its own.
# name: (binary, argv after it, stdin file or None, how its time is reported)
CLASSIC = {
    "cfrac": ("cfrac", ["17545186520507317056371138836327483792789528"], None, None),
    "espresso": ("espresso", ["{src}/espresso/largest.espresso"], None, None),
    "barnes": ("barnes", [], "{src}/barnes/input", None),
    "larson": ("larson", ["5", "8", "1000", "5000", "100", "4141", "{n}"], None, "larson"),
    "larson-sized": ("larson-sized", ["5", "8", "1000", "5000", "100", "4141", "{n}"], None,
                     "larson"),
    "mstress": ("mstress", ["{n}", "50", "25"], None, None),
    "rptest": ("rptest", ["{n}", "0", "1", "2", "500", "1000", "100", "8", "16000"], None,
               "rptest"),
    "xmalloc-test": ("xmalloc-test", ["-w", "{n}", "-t", "5", "-s", "64"], None, "xmalloc"),
    "glibc-simple": ("glibc-simple", [], None, None),
    "glibc-thread": ("glibc-thread", ["{n}"], None, "glibc-thread"),
    "alloc-test1": ("alloc-test", ["1"], None, None),
    "alloc-testN": ("alloc-test", ["{n16}"], None, None),
    "sh6benchN": ("sh6bench", ["{n2}"], None, None),
    "sh8benchN": ("sh8bench", ["{n2}"], None, None),
    "cache-scratch1": ("cache-scratch", ["1", "1000", "1", "2000000", "{n}"], None, None),
    "cache-scratchN": ("cache-scratch", ["{n}", "1000", "1", "2000000", "{n}"], None, None),
    "cache-thrash1": ("cache-thrash", ["1", "1000", "1", "2000000", "{n}"], None, None),
    "cache-thrashN": ("cache-thrash", ["{n}", "1000", "1", "2000000", "{n}"], None, None),
    "malloc-large": ("malloc-large", [], None, None),
    "mleak10": ("mleak", ["5"], None, None),
    "mleak100": ("mleak", ["50"], None, None),
}
CLASSIC_FIXED_TIME = ("larson", "xmalloc", "glibc-thread")


def classic_time(kind, stdout):
    """bench.sh's relative time for the work a program reports."""
    pats = {"larson": r"relative time: ([\d.]+)s", "xmalloc": r"rtime: ([\d.]+)",
            "rptest": r"\.\.\.(\d+) memory ops", "glibc-thread": r"^(\d+)"}
    m = re.search(pats[kind], stdout, re.M)
    if not m:
        return None
    v = float(m.group(1))
    if kind == "rptest":
        return 2000000 / v if v else None
    if kind == "glibc-thread":
        return 1e9 / v if v else None
    return v


def classic_workload(root, name):
    exe, argv, stdin, timed = CLASSIC[name]
    binary = root / "out/bench" / exe
    src = root / "bench"
    fill = {"src": src, "n": NPROC, "n2": 2 * NPROC, "n16": min(NPROC, 16)}
    cmd = [str(binary)] + [a.format(**fill) for a in argv]

    def run(lib):
        r = run_process(cmd, preload_env(lib), stdin_path=stdin and stdin.format(**fill),
                        cwd=str(binary.parent))
        if timed:
            t = classic_time(timed, r["stdout"])
            if t is None:
                raise RuntimeError(f"{name}: no time in its output: {r['stdout'][-300:]!r}")
            if timed in CLASSIC_FIXED_TIME:
                r["cpu"] *= t / r["wall"]
            r["wall"] = t
        return r
    return binary, run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_workload(quick, shim):
    """redis-server on loopback under redis-benchmark (the client is not
    preloaded).  Time is the benchmark's wall time; CPU and peak RSS are the
    server's."""
    requests = 20000 if quick else 400000

    def run(lib):
        if lib is None:
            lib = shim  # redis links jemalloc: route its malloc to glibc's
        port = free_port()
        tmp = tempfile.mkdtemp(prefix="ebb-redis-")
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", tmp,
                                   "--protected-mode", "yes"],
                                  env=preload_env(lib), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                ping = subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                      capture_output=True, text=True)
                if ping.stdout.strip() == "PONG":
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError("redis-server did not start")
            maps = Path(f"/proc/{server.pid}/maps").read_text()
            t0 = time.perf_counter()
            bench = subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-n", str(requests),
                                    "-c", "50", "-P", "8", "-d", "256", "-r", "100000",
                                    "-t", "set,get,lpush,lpop,sadd,hset,mset", "--csv"],
                                   capture_output=True, text=True, timeout=600, check=True,
                                   env=preload_env(None))
            wall = time.perf_counter() - t0
            with open(f"/proc/{server.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            cpu = (int(fields[11]) + int(fields[12])) / tick
            hwm = 0
            with open(f"/proc/{server.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = int(line.split()[1])
            rps = [float(row[1]) for row in csv.reader(bench.stdout.splitlines()[1:]) if len(row) > 1]
            served_by = Path(lib).name if lib else "libjemalloc.so.2"
            if lib is not None and Path(lib).name not in maps:
                raise RuntimeError(f"redis-server did not map {lib}")
            return {"wall": wall, "cpu": cpu, "rss_kb": hwm, "samples": [],
                    "ops_per_s": statistics.mean(rps) if rps else None, "served_by": served_by}
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
            shutil.rmtree(tmp, ignore_errors=True)
    return run


def build_workloads(quick, only, classic=None):
    s = 0.02 if quick else 1.0
    n = NPROC
    W = []

    def wanted(name):
        return not only or any(re.fullmatch(o, name) for o in only)

    def add(name, title, run, **kw):
        if wanted(name):
            W.append(Workload(name, title, run, **kw))

    add("tight_fixed-1t", "malloc/free 16 and 32 B, 1 thread", c_workload("tight_fixed", 1, s))
    add(f"tight_fixed-{n}t", f"malloc/free 16 and 32 B, {n} threads", c_workload("tight_fixed", n, s))
    add("tight_random-1t", "malloc/free 8-1024 B, 1 thread", c_workload("tight_random", 1, s))
    add(f"tight_random-{n}t", f"malloc/free 8-1024 B, {n} threads", c_workload("tight_random", n, s))
    add(f"larson-{n}t", f"server simulation, {n} threads, most frees remote", c_workload("larson", n, s))
    add(f"tight_random-{4*n}t", f"malloc/free 8-1024 B, {4*n} threads (oversubscribed)",
        c_workload("tight_random", 4 * n, s))
    add(f"larson-{4*n}t", f"server simulation, {4*n} threads (oversubscribed)",
        c_workload("larson", 4 * n, s))
    add(f"xmalloc-{2*n}t", f"producer/consumer, {n} producers + {n} consumers",
        c_workload("xmalloc", 2 * n, s))
    add(f"prodcons-{n}+{n}", f"{n} producer/consumer pairs, bounded queues, every free remote",
        c_workload("prodcons", 2 * n, s))
    add(f"prodcons-{4*n}+{4*n}", f"{4*n} producer/consumer pairs (oversubscribed), every free remote",
        c_workload("prodcons", 8 * n, s))
    add("thread_churn", "rounds of 10 short-lived threads, one small object each",
        c_workload("thread_churn", 10, s))
    add("thread_task", "a long-lived thread beside a new thread per round, blocks swapped between them",
        c_workload("thread_churn", 2, s, args=("-m", "task")))
    add("thread_pool", "5000 short-lived threads, 32 at a time, on a 70 MiB shared pool; "
        "idle RSS after all is freed",
        lambda lib: pool_metrics(c_workload("thread_churn", 32, s, sample=True,
                                            args=("-m", "pool"))(lib)),
        extra_cols=("idle_rss_kb",))
    add(f"trace_replay-{n}t", f"generated allocation traces replayed, {n} threads, "
        "a quarter of the frees remote",
        lambda lib: trace_metrics(c_workload("trace_replay", n, s)(lib)),
        extra_cols=("replay_s",))
    add(f"trace_replay-{4*n}t", f"generated allocation traces replayed, {4*n} threads "
        "(oversubscribed)",
        lambda lib: trace_metrics(c_workload("trace_replay", 4 * n, s)(lib)),
        extra_cols=("replay_s",))
    add(f"cache_scratch-{n}t", "passive false sharing", c_workload("cache_scratch", n, s))
    add(f"cache_thrash-{n}t", "active false sharing", c_workload("cache_thrash", n, s))
    add(f"mstress-{n}t", "mixed lifetimes, growth and shrink phases", c_workload("mstress", n, s))
    add(f"sh8bench-{n}t", "arrays freed forward/reverse/interleaved", c_workload("sh8bench", n, s))
    add(f"alloc_test-{n}t", "random slots, log-distributed sizes", c_workload("alloc_test", n, s))
    add(f"realloc_grow-{n}t", "vectors and strings grown by realloc", c_workload("realloc_grow", n, s))
    add(f"large-{n}t", "64 KiB - 32 MiB objects", c_workload("large", n, s))
    add(f"large_loop-{n}t", "64 KiB - 8 MiB objects, 4 live per thread, every page written",
        c_workload("large_loop", n, s))
    add("tiny", "a small program: a few hundred objects, mostly arithmetic; its peak RSS",
        c_workload("tiny", 1, s))
    add("tiny-2t", "the small program on 2 threads", c_workload("tiny", 2, s))
    add("service", f"long-running service, {2*n} workers, shared cache evicted by others",
        lambda lib: service_metrics(c_workload("service", n, s, sample=True)(lib)),
        extra_cols=("rss_over_live",))
    add("burst", "1 GiB burst, 2% kept scattered, then asleep",
        lambda lib: burst_metrics(c_workload("burst", 1, s, sample=True)(lib)),
        extra_cols=("free_s", "rss_1s_kb", "rss_2s_kb", "rss_10s_kb"))
    # Quiet for 3 s, not 10: enough for its RSS 2 s after the last free.
    add("burst-busy", f"burst beside {BURST_BUSY_HOGS} CPU hogs (bench/tools/hog.c), 3 s asleep",
        lambda lib: burst_metrics(c_workload("burst", 1, s, sample=True,
                                             args=() if quick else ("-q", "3"))(lib)),
        extra_cols=("free_s", "rss_1s_kb", "rss_2s_kb"), hogs=BURST_BUSY_HOGS)
    add("redis", "redis-server under redis-benchmark (loopback)",
        redis_workload(quick, BUILD / "glibc_shim.so"),
        binding="links Debian's jemalloc but calls the unprefixed malloc family, so "
                "LD_PRELOAD replaces it; its 'glibc' run preloads bench/tools/glibc_shim.c, "
                "which routes the family to glibc's own functions")
    add("python3", "python3 allocation-heavy script", program_workload("python", quick),
        binding="python3 uses pymalloc for objects <= 512 B (arenas from mmap) and malloc "
                "for the rest: LD_PRELOAD replaces that malloc")
    add("lua5.4", "lua5.4 allocation-heavy script", program_workload("lua", quick))
    add("sqlite3", "sqlite3 on an in-memory database", program_workload("sqlite", quick))
    add("gcc", "gcc -O2 of a large generated file", program_workload("gcc", quick),
        binding="gcc and cc1 call malloc through libc's symbols; LD_PRELOAD is inherited by cc1")
    if classic and not quick:
        for name in CLASSIC:
            if name.endswith("N") and NPROC == 1:
                continue
            if not wanted(f"mb-{name}"):
                continue
            binary, run = classic_workload(classic, name)
            if not binary.exists():
                log(f"bench: no {binary}: skipping mb-{name}")
                continue
            add(f"mb-{name}", f"mimalloc-bench's {name}, as its bench.sh runs it"
                + (" (time: bench.sh's relative time for the work it reports)"
                   if CLASSIC[name][3] else ""), run, group="classic")
    return W


# ---- building ----------------------------------------------------------------

def build(cc):
    BUILD.mkdir(parents=True, exist_ok=True)
    flags = ["-std=gnu11", "-O2", "-g", "-pthread", "-fno-builtin-malloc", "-fno-builtin-free",
             "-fno-builtin-calloc", "-fno-builtin-realloc"]
    header = (ROOT / "bench/workloads/wl.h").stat().st_mtime
    for src in sorted((ROOT / "bench/workloads").glob("*.c")):
        exe = BUILD / src.stem
        if not exe.exists() or exe.stat().st_mtime < max(src.stat().st_mtime, header):
            subprocess.run([cc] + flags + [str(src), "-o", str(exe), "-lm"], check=True)
    for tool in ("measure", "hog"):
        subprocess.run([cc, "-O2", str(ROOT / f"bench/tools/{tool}.c"), "-o", str(BUILD / tool)],
                       check=True)
    shim = BUILD / "glibc_shim.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", str(ROOT / "bench/tools/glibc_shim.c"),
                    "-o", str(shim), "-ldl"], check=True)
    probe = BUILD / "probe_malloc"
    subprocess.run([cc, "-O2", "-x", "c", "-", "-o", str(probe), "-ldl"], check=True, text=True,
                   input='#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <stdio.h>\n'
                         '#include <stdlib.h>\nint main(void){Dl_info i; void *p = malloc(1);'
                         'void *f = dlsym(RTLD_DEFAULT, "malloc");'
                         'if (dladdr(f, &i)) puts(i.dli_fname); free(p); return 0;}\n')


# ---- reporting ---------------------------------------------------------------

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ratio(v, base):
    if v is None or not base:
        return "      -"
    return f"({v / base:5.2f})"


def summarise(workloads, allocs, results):
    """Medians per workload x allocator, and geometric means of ratios."""
    table = {}
    for w in workloads:
        for name, _ in allocs:
            runs = results.get((w.name, name), [])
            if not runs:
                continue
            row = {k: median([r.get(k) for r in runs])
                   for k in ("wall", "cpu", "rss_kb", "ops_per_s") + tuple(w.extra_cols)}
            row["runs"] = len(runs)
            table[(w.name, name)] = row
    return table


GROUP_TITLES = {"own": "this repo's workloads and programs",
                "classic": "mimalloc-bench's programs (--classic)"}


def print_tables(workloads, allocs, table, out):
    groups = [g for g in GROUP_TITLES if any(w.group == g for w in workloads)]
    geos = {g: {name: {"wall": [], "cpu": [], "rss_kb": []} for name, _ in allocs} for g in groups}
    for w in workloads:
        base = table.get((w.name, "ebb"))
        if not base:
            continue
        print(f"\n## {w.name}: {w.title}", file=out)
        print(f"   ({w.binding})", file=out)
        labels = {"rss_1s_kb": "RSS +1s", "rss_2s_kb": "RSS +2s", "rss_10s_kb": "RSS +10s",
                  "rss_over_live": "peak RSS/live", "free_s": "free phase s",
                  "idle_rss_kb": "idle RSS", "replay_s": "replay s"}
        extra_head = "".join(f" {labels.get(c, c):>14}" for c in w.extra_cols)
        print(f"   {'allocator':<10} {'wall s':>8} {'ratio':>7} {'cpu s':>8} {'ratio':>7}"
              f" {'peak RSS MiB':>13} {'ratio':>7}{extra_head}", file=out)
        for name, _ in allocs:
            row = table.get((w.name, name))
            if not row:
                continue
            extra = ""
            for c in w.extra_cols:
                v = row.get(c)
                extra += f" {('-' if v is None else (f'{v/1024:.1f} MiB' if c.endswith('_kb') else f'{v:.3f}' if c.endswith('_s') else f'{v:.2f}')):>14}"
            print(f"   {name:<10} {row['wall']:8.3f} {fmt_ratio(row['wall'], base['wall'])}"
                  f" {row['cpu']:8.3f} {fmt_ratio(row['cpu'], base['cpu'])}"
                  f" {row['rss_kb']/1024:13.1f} {fmt_ratio(row['rss_kb'], base['rss_kb'])}{extra}",
                  file=out)
            for k in ("wall", "cpu", "rss_kb"):
                if row[k] and base[k]:
                    geos[w.group][name][k].append(row[k] / base[k])
    gm = {}
    for group in groups:
        geo = geos[group]
        title = "" if groups == ["own"] else f", {GROUP_TITLES[group]}"
        print(f"\n## geometric mean of ratios to ebb (above 1: ebb is faster / smaller){title}",
              file=out)
        print(f"   {'allocator':<10} {'wall':>7} {'cpu':>7} {'peak RSS':>9}  workloads", file=out)
        for name, _ in allocs:
            g = geo[name]
            vals = {k: geomean(v) for k, v in g.items()}
            if group == "own":
                gm[name] = vals
            else:
                gm[f"{name} ({group})"] = vals
            if vals["wall"] is None:
                continue
            print(f"   {name:<10} {vals['wall']:7.2f} {vals['cpu']:7.2f} {vals['rss_kb']:9.2f}"
                  f"  {len(g['wall'])}", file=out)
    print_burst_busy(allocs, table, out)
    print_summary(workloads, allocs, table, out)
    return gm


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fmt(v, spec="5.2f"):
    """v formatted by spec, or a dash as wide."""
    if v is None:
        width = re.match(r"\d*", spec).group(0)
        return "-".rjust(int(width) if width else 1)
    return format(v, spec)


def print_burst_busy(allocs, table, out):
    """burst on a quiet machine against burst-busy (4 CPU hogs beside it):
    the free phase's length and the RSS 2 s after the last free."""
    rows = [(name, table.get(("burst", name)), table.get(("burst-busy", name)))
            for name, _ in allocs]
    rows = [(n, q, b) for n, q, b in rows if q and b]
    if not rows:
        return
    print(f"\n## burst: quiet machine vs {BURST_BUSY_HOGS} CPU hogs beside it (burst-busy);"
          " ratio = busy / quiet", file=out)
    print(f"   {'allocator':<10} {'free phase s':>12} {'busy':>8} {'ratio':>6}"
          f"   {'RSS +2s MiB':>11} {'busy':>8} {'ratio':>6}", file=out)
    for name, q, b in rows:
        fq, fb = q.get("free_s"), b.get("free_s")
        rq, rb = q.get("rss_2s_kb"), b.get("rss_2s_kb")
        print(f"   {name:<10} {_fmt(fq, '12.3f')} {_fmt(fb, '8.3f')} {_fmt(_ratio(fb, fq), '6.2f')}"
              f"   {_fmt(rq and rq / 1024, '11.1f')} {_fmt(rb and rb / 1024, '8.1f')}"
              f" {_fmt(_ratio(rb, rq), '6.2f')}", file=out)


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def print_summary(workloads, allocs, table, out):
    """ebb against Debian's four peers (the issue's criteria), then the
    extras apart: geometric means over the workloads that all of them ran."""
    names = [n for n, _ in allocs]
    peers = [p for p in DEBIAN_PEERS if p in names]
    extras = [n for n in names if n != "ebb" and n not in DEBIAN_PEERS]
    print("\n## summary", file=out)
    classic = [w for w in workloads if w.group == "classic"]
    workloads = [w for w in workloads if w.group == "own"]
    common = [w.name for w in workloads
              if peers and all((w.name, a) in table for a in ["ebb"] + peers)]
    if common:
        gt = {a: geomean([table[(w, a)]["wall"] for w in common]) for a in ["ebb"] + peers}
        gr = {a: geomean([table[(w, a)]["rss_kb"] for w in common]) for a in ["ebb"] + peers}
        fastest = min(peers, key=lambda a: gt[a])
        smallest = min(peers, key=lambda a: gr[a])
        print(f"   against Debian's peers ({', '.join(peers)}), over {len(common)} workloads:",
              file=out)
        label = f"ebb geomean wall / fastest peer's ({fastest}):"
        print(f"   {label:<52} {_fmt(_ratio(gt['ebb'], gt[fastest]))}   (criterion <= 0.90)",
              file=out)
        label = f"ebb geomean peak RSS / smallest peer's ({smallest}):"
        print(f"   {label:<52} {_fmt(_ratio(gr['ebb'], gr[smallest]))}   (criterion <= 0.95)",
              file=out)
        # What that criterion asks: the same mean were ebb's peak no larger
        # than the smallest Debian peer's on each workload (as it is where
        # it is smaller already).
        capped = geomean([min(table[(w, a)]["rss_kb"] for a in ["ebb"] + peers) for w in common])
        label = "  the same, were ebb nowhere above the best peer:"
        print(f"   {label:<52} {_fmt(_ratio(capped, gr[smallest]))}", file=out)
        over = []
        for w in common:
            e = table[(w, "ebb")]
            for key, what in (("wall", "wall"), ("rss_kb", "peak RSS")):
                best = min(peers, key=lambda a: table[(w, a)][key])
                r = _ratio(e[key], table[(w, best)][key])
                if r is not None and r > 1.5:
                    over.append(f"{w} {what} {r:.2f}x {best}")
        print(f"   workloads where ebb is above 1.5x the best peer (criterion: none): "
              f"{len(over)}", file=out)
        for o in over:
            print(f"     {o}", file=out)
    for x in extras:
        n, rt, rr = _against(table, workloads, x)
        if n:
            print(f"   extra {x}: ebb geomean wall / {x}'s {_fmt(rt)}, "
                  f"ebb geomean peak RSS / {x}'s {_fmt(rr)}  ({n} workloads)", file=out)
    if classic:
        print(f"   {GROUP_TITLES['classic']}, apart from the criteria:", file=out)
        for x in [n for n in names if n != "ebb"]:
            n, rt, rr = _against(table, classic, x)
            if n:
                print(f"     ebb geomean time / {x}'s {_fmt(rt)}, "
                      f"peak RSS / {x}'s {_fmt(rr)}  ({n} programs)", file=out)


def _against(table, workloads, x):
    """Over the workloads both ran: how many, and ebb's geometric mean wall
    time and peak RSS over x's."""
    common = [w.name for w in workloads if (w.name, "ebb") in table and (w.name, x) in table]
    rt = _ratio(geomean([table[(w, "ebb")]["wall"] for w in common]),
                geomean([table[(w, x)]["wall"] for w in common]))
    rr = _ratio(geomean([table[(w, "ebb")]["rss_kb"] for w in common]),
                geomean([table[(w, x)]["rss_kb"] for w in common]))
    return len(common), rt, rr


def write_files(outdir, workloads, allocs, table, results, gm, meta):
    outdir.mkdir(parents=True, exist_ok=True)
    with open(outdir / "results.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "allocator", "runs", "wall_s", "cpu_s", "peak_rss_kib",
                     "wall_ratio", "cpu_ratio", "rss_ratio", "ops_per_s", "rss_over_live",
                     "rss_1s_kib", "rss_10s_kib", "rss_2s_kib", "free_phase_s", "idle_rss_kib",
                     "replay_s"])
        for w in workloads:
            base = table.get((w.name, "ebb"))
            for name, _ in allocs:
                row = table.get((w.name, name))
                if not row or not base:
                    continue
                wr.writerow([w.name, name, row["runs"], f"{row['wall']:.4f}", f"{row['cpu']:.4f}",
                             row["rss_kb"],
                             f"{row['wall']/base['wall']:.4f}", f"{row['cpu']/base['cpu']:.4f}",
                             f"{row['rss_kb']/base['rss_kb']:.4f}",
                             row.get("ops_per_s") or "", row.get("rss_over_live") or "",
                             row.get("rss_1s_kb") or "", row.get("rss_10s_kb") or "",
                             row.get("rss_2s_kb") or "", row.get("free_s") or "",
                             row.get("idle_rss_kb") or "", row.get("replay_s") or ""])
    doc = {"meta": meta, "geomean_ratio_to_ebb": gm,
           "workloads": [{"name": w.name, "title": w.title, "binding": w.binding, "group": w.group,
                          "results": {name: table.get((w.name, name)) for name, _ in allocs}}
                         for w in workloads]}
    (outdir / "results.json").write_text(json.dumps(doc, indent=1))
    # RSS over time, from each allocator's last run of the sampled workloads
    for wname in TIMESERIES:
        runs = {name: results.get((wname, name)) for name, _ in allocs}
        if not any(runs.values()):
            continue
        with open(outdir / f"timeseries-{wname}.csv", "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["allocator", "t_s", "rss_mib", "live_mib"])
            for name, rs in runs.items():
                if not rs:
                    continue
                r = rs[-1]
                live = dict((round(t, 1), b) for t, b in r.get("live", []))
                for t, rss in r["samples"]:
                    lv = live.get(round(t, 1))
                    wr.writerow([name, f"{t:.3f}", f"{rss/1024:.1f}",
                                 "" if lv is None else f"{lv/2**20:.1f}"])


TIMESERIES = {"service": "service: RSS over time",
              "burst": "burst: RSS over time (frees done, then asleep)",
              "burst-busy": f"burst beside {BURST_BUSY_HOGS} CPU hogs: RSS over time",
              "thread_pool": "thread_pool: RSS over time (all freed, then asleep)"}


def charts(outdir, workloads, allocs, table, runs):
    if not shutil.which("gnuplot"):
        log("bench: gnuplot not found (apt-get install gnuplot-nox): no charts")
        return
    peers = [name for name, _ in allocs if name != "ebb"]
    dat = outdir / "ratios.dat"
    ratios = []
    with open(dat, "w") as f:
        f.write("workload " + " ".join(f"{p}_wall {p}_rss" for p in peers) + "\n")
        for w in workloads:
            base = table.get((w.name, "ebb"))
            if not base:
                continue
            vals = []
            for p in peers:
                row = table.get((w.name, p))
                vals += [f"{row['wall']/base['wall']:.4f}" if row else "NaN",
                         f"{row['rss_kb']/base['rss_kb']:.4f}" if row else "NaN"]
                if row:
                    ratios += [row['wall'] / base['wall'], row['rss_kb'] / base['rss_kb']]
            f.write(w.name + " " + " ".join(vals) + "\n")
    # The range from the data, in whole powers of two: every bar shows,
    # however far a peer is from ebb (a fixed 0.25-16 hid tcmalloc's 0.03
    # on large-2t).
    positive = [r for r in ratios if r > 0]
    y_low = 2.0 ** math.floor(math.log2(min(positive + [0.5])))
    y_high = 2.0 ** math.ceil(math.log2(max(positive + [2.0])))
    rounds_text = f"medians of {runs} rounds" if runs > 1 else "one round"
    script = f"""
set terminal pngcairo size 1400,900 font ",10" noenhanced
set output '{outdir}/ratios.png'
set multiplot layout 2,1 title "Peers relative to ebb (above 1: ebb is faster / smaller); {rounds_text}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 2
set yrange [{y_low}:{y_high}]
set grid ytics
set xtics rotate by -35 scale 0
set key outside right top
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black" front
set ylabel "wall time / ebb's"
plot {", ".join(f"'{dat}' using {2+2*i}:xtic(1) title '{p}'" for i, p in enumerate(peers))}
set ylabel "peak RSS / ebb's"
plot {", ".join(f"'{dat}' using {3+2*i}:xtic(1) title '{p}'" for i, p in enumerate(peers))}
unset multiplot
"""
    for wname, title in TIMESERIES.items():
        ts = outdir / f"timeseries-{wname}.csv"
        if not ts.exists():
            continue
        plots = []
        # service does a fixed amount of work, so its runs end at different
        # times: its x axis is the share of each run, one axis for all.
        share = wname == "service"
        xcol = "2"
        if share:
            ends = {}
            with open(ts) as f:
                for row in csv.DictReader(f):
                    ends[row["allocator"]] = max(ends.get(row["allocator"], 0.0), float(row["t_s"]))
        for name, _ in allocs:
            if share:
                xcol = f"($2*100/{max(ends.get(name, 1.0), 1e-9):.6f})"
            plots.append(f"'< grep ^{name}, {ts}' using {xcol}:3 with lines lw 2 title '{name}'")
        if wname in ("service", "thread_pool"):
            if share:
                xcol = f"($2*100/{max(ends.get('ebb', 1.0), 1e-9):.6f})"
            plots.append(f"'< grep ^ebb, {ts}' using {xcol}:4 with lines dt 2 lw 2 lc rgb 'gray20' "
                         f"title 'live bytes (ebb run)'")
        script += f"""
reset
set terminal pngcairo size 1100,600 font ",10" noenhanced
set output '{outdir}/rss-{wname}.png'
set datafile separator ","
set title "{title}"
set xlabel "{'share of the run (%): the runs do the same work in different times' if share else 'seconds'}"
set ylabel "RSS MiB"
set grid
set key outside right top
plot {", ".join(plots)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run (a smoke test)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 3; 1 with --quick)")
    ap.add_argument("--only", default="", help="comma-separated workload name regexes")
    ap.add_argument("--allocators", default=DEFAULT_ALLOCATORS,
                    help="comma-separated; NAME=PATH adds any preloadable library (e.g. ebb-base=/tmp/old/libebb.so),\n"
                         "NAME=PATH:VAR=VALUE:... with environment variables of its own\n"
                         "(e.g. prof=build/libebb.so:EBB_PROF=1)")
    ap.add_argument("--extra", default="",
                    help="NAME=PATH allocators (space- or comma-separated) appended to --allocators,\n"
                         "e.g. --extra 'mimalloc3=/opt/mi/libmimalloc.so sn=/opt/sn/libsnmallocshim.so'")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="run N CPU hogs (bench/tools/hog.c) beside every workload run\n"
                         f"(burst-busy always runs {BURST_BUSY_HOGS})")
    ap.add_argument("--classic", default=None, metavar="DIR",
                    help="also run mimalloc-bench's programs from DIR, a checkout of it built\n"
                         "outside this repo (its out/bench binaries); reported apart")
    ap.add_argument("--out", default=None, help="results folder")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the charts from the results folder's results.json")
    ap.add_argument("--summary", action="store_true",
                    help="only print the summary again from the results folder's results.json")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    outdir = Path(args.out) if args.out else ROOT / "bench/results" / ("quick" if args.quick else "")
    if args.replot or args.summary:
        doc = json.loads((outdir / "results.json").read_text())
        allocs = [(name, None) for name in doc["meta"]["allocators"]]
        workloads = [Workload(w["name"], w["title"], None, group=w.get("group", "own"))
                     for w in doc["workloads"]]
        table = {(w["name"], a): row for w in doc["workloads"]
                 for a, row in w["results"].items() if row}
        if args.summary:
            print_summary(workloads, allocs, table, sys.stdout)
        else:
            charts(outdir, workloads, allocs, table, doc["meta"].get("runs", 1))
        return
    wanted = [a for a in args.allocators.split(",") if a]
    for x in re.split(r"[\s,]+", args.extra.strip()):
        if not x:
            continue
        if "=" not in x or not x.split("=", 1)[0] or not x.split("=", 1)[1]:
            raise SystemExit(f"bench: --extra wants NAME=PATH, not {x!r}")
        if not Path(x.split("=", 1)[1].split(":")[0]).exists():
            raise SystemExit(f"bench: --extra {x}: no such file")
        wanted.append(x)
    names = [a.split("=", 1)[0] for a in wanted]
    if len(set(names)) != len(names):
        raise SystemExit(f"bench: an allocator name appears twice: {names}")
    if args.busy < 0:
        raise SystemExit("bench: --busy wants N >= 0")

    classic = Path(args.classic).resolve() if args.classic else None
    if classic and not (classic / "out/bench").is_dir():
        raise SystemExit(f"bench: --classic {args.classic}: no out/bench there "
                         "(build mimalloc-bench's benchmarks first)")
    if classic and args.quick:
        log("bench: --classic runs the programs at their own sizes: not with --quick")

    build(args.cc)
    allocs, missing = discover_allocators(wanted)
    for m in missing:
        log(f"bench: {m} is missing (apt-get install {APT_NAMES[m]}): running without it")
    if not any(n == "ebb" for n, _ in allocs):
        raise SystemExit("bench: ebb must be among the allocators (ratios are to ebb)")
    check_preload_takes(allocs)
    workloads = build_workloads(args.quick, [o for o in args.only.split(",") if o], classic)
    have = {w.name for w in workloads}
    for w in list(workloads):
        prog = {"redis": "redis-server", "lua5.4": "lua5.4", "sqlite3": "sqlite3", "gcc": "gcc"}.get(w.name)
        if prog and not shutil.which(prog):
            log(f"bench: {prog} not installed: skipping {w.name}")
            workloads.remove(w)
    if not workloads:
        raise SystemExit(f"bench: no workload matches {args.only!r} (have {sorted(have)})")

    results = {}
    total = runs * len(workloads) * len(allocs)
    done = 0
    t_start = time.time()
    for rnd in range(runs):
        for w in workloads:
            order = allocs[rnd % len(allocs):] + allocs[:rnd % len(allocs)]
            for name, lib in order:
                done += 1
                with Hogs(args.busy if w.hogs is None else w.hogs):
                    r = w.run(lib)
                results.setdefault((w.name, name), []).append(r)
                elapsed = time.time() - t_start
                eta = elapsed / done * (total - done)
                log(f"[{done:3d}/{total}] round {rnd+1}/{runs}  {w.name:<18} {name:<9}"
                    f" wall {r['wall']:7.3f}s  cpu {r['cpu']:7.3f}s  rss {r['rss_kb']/1024:8.1f} MiB"
                    f"   (eta {eta/60:4.1f} min)")

    table = summarise(workloads, allocs, results)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.machine(),
            "kernel": platform.release(), "cpus": NPROC,
            "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                               if l.startswith("model name")), "?"),
            "mem_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
            "runs": runs, "quick": args.quick, "busy_hogs": args.busy,
            "extras": [n for n, _ in allocs if n != "ebb" and n not in DEBIAN_PEERS],
            "allocators": {n: (str(l) if l else "glibc (nothing preloaded)") for n, l in allocs},
            "missing": missing}
    if classic:
        rev = subprocess.run(["git", "-C", str(classic), "rev-parse", "HEAD"],
                             capture_output=True, text=True)
        meta["classic"] = {"dir": str(classic),
                           "commit": rev.stdout.strip() if rev.returncode == 0 else None}
    import io
    buf = io.StringIO()
    print(f"# ebb benchmark  {meta['date']}  {meta['cpu_model']}, {NPROC} CPUs, "
          f"{meta['mem_gib']} GiB, kernel {meta['kernel']}", file=buf)
    print(f"# medians of {runs} interleaved run(s); ratio = allocator / ebb", file=buf)
    if args.busy:
        print(f"# busy machine: {args.busy} CPU hog(s) (bench/tools/hog.c) beside every run",
              file=buf)
    gm = print_tables(workloads, allocs, table, buf)
    text = buf.getvalue()
    print(text)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "results.txt").write_text(text)
    write_files(outdir, workloads, allocs, table, results, gm, meta)
    own = [w for w in workloads if w.group == "own"]
    charts(outdir, own or workloads, allocs, table, runs)  # the classic programs: their tables
    log(f"bench: wrote {outdir}/results.txt, results.csv, results.json, *.png")


if __name__ == "__main__":
    main()
