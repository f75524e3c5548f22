#!/usr/bin/env bash
# bench/interleave.sh: time one C workload under several malloc libraries,
# runs interleaved (A B A B ...), so a slow episode of this shared machine
# hits every library alike.  Prints, per library, the minimum, lower
# quartile and median of wall and CPU (user + system) time.
#
#   bench/interleave.sh [-n RUNS] [-t THREADS] [-s SCALE] WORKLOAD LIB.so...
#
# Needs build/bench (make bench).  Example, the build before issue 4 against
# this one:  bench/interleave.sh -n 21 -t 2 mstress OLD/libebb.so build/libebb.so
set -euo pipefail
cd "$(dirname "$0")/.."

runs=11 threads=2 scale=1
while getopts "n:t:s:" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    t) threads=$OPTARG ;;
    s) scale=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
workload=$1; shift
[ -x "build/bench/$workload" ] || { echo "no build/bench/$workload (make bench)" >&2; exit 1; }
for lib in "$@"; do [ -f "$lib" ] || { echo "no such library: $lib" >&2; exit 1; }; done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$runs"); do
  for lib in "$@"; do
    /usr/bin/time -f "$lib %e %U %S" -a -o "$out" env LD_PRELOAD="$lib" \
      "build/bench/$workload" -t "$threads" -s "$scale" >/dev/null
  done
done
python3 - "$out" "$@" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def q(v, f): return v[int(f * (len(v) - 1))]
print("%-40s %27s | %27s" % ("library", "wall s: min   q1  median", "CPU s: min   q1  median"))
for lib in sys.argv[2:]:
    r = [(float(a[1]), float(a[2]) + float(a[3])) for a in rows if a[0] == lib]
    w = sorted(x[0] for x in r); c = sorted(x[1] for x in r)
    print("%-40s %11.3f %6.3f %6.3f | %11.3f %6.3f %6.3f   (%d runs)"
          % (lib[-40:], w[0], q(w, .25), q(w, .5), c[0], q(c, .25), q(c, .5), len(r)))
PY
