#!/usr/bin/env bash
# make bench QUICK=1 as a test: every workload runs (tiny sizes) on every
# allocator present, and the table, CSV, JSON and charts are produced.
set -euo pipefail
cd "${EBB_ROOT:-$(dirname "$0")/..}"
out=build/bench-quick
rm -rf "$out"
python3 bench/runner.py --quick --out "$out" >"$out.log" 2>&1 || { tail -40 "$out.log"; exit 1; }
for f in results.txt results.csv results.json ratios.png; do
  [ -s "$out/$f" ] || { echo "missing $out/$f"; tail -20 "$out.log"; exit 1; }
done
python3 - "$out" <<'PY'
import csv, json, sys
out = sys.argv[1]
doc = json.load(open(f"{out}/results.json"))
allocs = list(doc["meta"]["allocators"])
rows = list(csv.DictReader(open(f"{out}/results.csv")))
names = {w["name"] for w in doc["workloads"]}
missing = [(w, a) for w in names for a in allocs
           if not any(r["workload"] == w and r["allocator"] == a for r in rows)]
assert not missing, f"no result for {missing[:5]}"
assert "ebb" in allocs
for w in ("service", "burst"):
    if w in names:
        assert any(r["workload"] == w and r["rss_over_live" if w == "service" else "rss_1s_kib"]
                   for r in rows), f"{w}: no memory metric"
print(f"{len(names)} workloads x {len(allocs)} allocators ({', '.join(allocs)}): ok")
PY
cat "$out/results.txt" | tail -8
