#!/usr/bin/env bash
# make bench CLASSIC=DIR: mimalloc-bench's programs are found in DIR/out/bench,
# run with bench.sh's arguments, timed as bench.sh times them (the relative
# time of the fixed-time programs' reported work), skipped when missing, and
# reported apart from the criteria's workloads.  Stand-in programs print
# what the real ones print, so the test needs no copy of mimalloc-bench.
set -euo pipefail
cd "${EBB_ROOT:-$(dirname "$0")/..}"
make -s all
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin="$tmp/mb/out/bench"
mkdir -p "$bin" "$tmp/mb/bench/espresso"
stub() { printf '#!/bin/sh\n%s\n' "$2" >"$bin/$1"; chmod +x "$bin/$1"; }
stub larson 'echo "Throughput =  4000000 operations per second, relative time: 0.250s."'
stub rptest 'echo "crt 2 threads ........4000000 memory ops/CPU second (1MiB peak)"'
stub glibc-thread 'echo "500000000 iterations"'
# espresso gets its input's path, as bench.sh gives it
stub espresso '[ "$1" = "'"$tmp"'/mb/bench/espresso/largest.espresso" ] || { echo "espresso: $1" >&2; exit 1; }'
out="$tmp/out"
python3 bench/runner.py --classic "$tmp/mb" --only 'mb-.*' --allocators ebb,glibc --runs 1 \
  --out "$out" >"$tmp/log" 2>&1 || { tail -30 "$tmp/log"; exit 1; }
grep -q "no $bin/cfrac: skipping mb-cfrac" "$tmp/log" || { echo "missing cfrac not reported"; exit 1; }
python3 - "$out" <<'PY'
import json, sys
doc = json.load(open(f"{sys.argv[1]}/results.json"))
w = {x["name"]: x for x in doc["workloads"]}
assert set(w) == {"mb-larson", "mb-rptest", "mb-glibc-thread", "mb-espresso"}, sorted(w)
assert all(x["group"] == "classic" for x in w.values())
for name, t in (("mb-larson", 0.25), ("mb-rptest", 0.5), ("mb-glibc-thread", 2.0)):
    for a in ("ebb", "glibc"):
        got = w[name]["results"][a]["wall"]
        assert abs(got - t) < 1e-9, f"{name} {a}: time {got}, want {t}"
print("classic programs: found, run, timed as bench.sh times them: ok")
PY
grep -q "mimalloc-bench's programs (--classic), not in the criteria above" "$out/results.txt" \
  || { echo "no summary of their own"; tail -12 "$out/results.txt"; exit 1; }
if grep -q "against Debian's peers" "$out/results.txt"; then
  echo "the criteria's summary counted the classic programs"; exit 1
fi
