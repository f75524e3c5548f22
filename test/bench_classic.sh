#!/usr/bin/env bash
# make bench CLASSIC=DIR: mimalloc-bench's programs are found in DIR/out/bench,
# run there with bench.sh's arguments and inputs, timed as bench.sh times
# them (the relative time of the work some of them report; CPU time scaled
# alike only for those that run for a fixed time), skipped when missing, and
# reported apart from the criteria's workloads.  Stand-in programs check
# what they are given and print what the real ones print, so the test needs
# no copy of mimalloc-bench.
set -euo pipefail
cd "${EBB_ROOT:-$(dirname "$0")/..}"
make -s all
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin="$tmp/mb/out/bench"
src="$tmp/mb/bench"
mkdir -p "$bin" "$src/espresso" "$src/barnes"
echo "barnes-input" >"$src/barnes/input"
n=$(python3 -c 'import os; print(os.cpu_count() or 1)')
# stub NAME EXPECTED-ARGS BODY: fails unless run in out/bench with those arguments
stub() {
  printf '#!/bin/sh\n[ "$(pwd)" = "%s" ] || { echo "%s: run in $(pwd)" >&2; exit 1; }\n' "$bin" "$1" >"$bin/$1"
  printf '[ "$*" = "%s" ] || { echo "%s: arguments: $*" >&2; exit 1; }\n%s\n' "$2" "$1" "$3" >>"$bin/$1"
  chmod +x "$bin/$1"
}
busy='i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done'
stub larson "5 8 1000 5000 100 4141 $n" "$busy; echo \"Throughput =  4000000 operations per second, relative time: 10.000s.\""
stub rptest "$n 0 1 2 500 1000 100 8 16000" "$busy; echo \"crt $n threads ........200000 memory ops/CPU second (1MiB peak)\""
stub xmalloc-test "-w $n -t 5 -s 64" 'echo "rtime: 1.250, free/sec: 80.000 M"'
stub glibc-thread "$n" 'echo "500000000 iterations"'
stub espresso "$src/espresso/largest.espresso" 'true'
stub barnes "" '[ "$(cat)" = "barnes-input" ] || { echo "barnes: no input on stdin" >&2; exit 1; }'
out="$tmp/out"
python3 bench/runner.py --classic "$tmp/mb" --only 'mb-.*' --allocators ebb,glibc --runs 1 \
  --out "$out" >"$tmp/log" 2>&1 || { tail -30 "$tmp/log"; exit 1; }
grep -q "no $bin/cfrac: skipping mb-cfrac" "$tmp/log" || { echo "missing cfrac not reported"; exit 1; }
python3 - "$out" <<'PY'
import json, sys
doc = json.load(open(f"{sys.argv[1]}/results.json"))
w = {x["name"]: x for x in doc["workloads"]}
want = {"mb-larson", "mb-rptest", "mb-xmalloc-test", "mb-glibc-thread", "mb-espresso", "mb-barnes"}
assert set(w) == want, sorted(w)
assert all(x["group"] == "classic" for x in w.values())
for name, t in (("mb-larson", 10.0), ("mb-rptest", 10.0), ("mb-xmalloc-test", 1.25),
                ("mb-glibc-thread", 2.0)):
    for a in ("ebb", "glibc"):
        got = w[name]["results"][a]["wall"]
        assert abs(got - t) < 1e-9, f"{name} {a}: time {got}, want {t}"
for a in ("ebb", "glibc"):
    # larson runs for a fixed time: its CPU time scales with its relative
    # time (a busy stand-in: about 10 s); rptest does fixed work: its own
    cpu_l, cpu_r = w["mb-larson"]["results"][a]["cpu"], w["mb-rptest"]["results"][a]["cpu"]
    assert cpu_l > 5, f"larson {a}: cpu {cpu_l} not scaled"
    assert cpu_r < 3, f"rptest {a}: cpu {cpu_r} scaled"
assert doc["meta"]["classic"]["dir"].endswith("/mb")
print("classic programs: found, run, timed as bench.sh times them: ok")
PY
python3 bench/runner.py --summary --out "$out" >"$tmp/summary"
grep -q "mimalloc-bench's programs (--classic), apart from the criteria" "$tmp/summary" \
  || { echo "no summary of their own"; cat "$tmp/summary"; exit 1; }
if grep -q "against Debian's peers" "$tmp/summary" "$out/results.txt"; then
  echo "the criteria's summary counted the classic programs"; exit 1
fi
