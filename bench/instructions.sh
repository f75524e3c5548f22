#!/usr/bin/env bash
# bench/instructions.sh: instructions executed by each C workload under two
# builds of the library (or any two malloc libraries), counted by
# valgrind --tool=callgrind.  Unlike wall or CPU time on this shared machine,
# the count of a single-threaded workload is the same run after run; use it
# to tell a 2% change from noise.
#
#   bench/instructions.sh [-s SCALE] [-w 'wl:threads ...'] OLD.so NEW.so
#
# Prints one line per workload: both counts and NEW/OLD.  Workloads whose
# threads share blocks (larson, xmalloc, mstress, the 2-thread runs) do not
# repeat exactly under valgrind's thread scheduling: their ratios move by a
# few percent between runs.  Needs build/bench (make -C bench or make bench).
set -euo pipefail
cd "$(dirname "$0")/.."

scale=0.02
workloads="tight_fixed:1 tight_random:1 sh8bench:1 alloc_test:1 realloc_grow:1 large:1 \
mstress:2 xmalloc:4 larson:2 cache_scratch:2 cache_thrash:2 service:2"
while getopts "s:w:" opt; do
  case $opt in
    s) scale=$OPTARG ;;
    w) workloads=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
old=$(readlink -f "$1"); new=$(readlink -f "$2")
for lib in "$old" "$new"; do [ -f "$lib" ] || { echo "no such library: $lib" >&2; exit 1; }; done
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }

count() {   # count LIB PROGRAM ARGS... -> instructions
  local lib=$1 log; shift
  log=$(mktemp)
  LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" \
    >/dev/null 2>"$log" || { tail -n 5 "$log" >&2; rm -f "$log"; return 1; }
  grep -o 'refs: *[0-9,]*' "$log" | tr -d ', ' | cut -d: -f2
  rm -f "$log"
}

echo "scale $scale; old $old; new $new"
printf '%-20s %16s %16s %8s\n' workload old new new/old
for wt in $workloads; do
  w=${wt%%:*}; t=${wt##*:}
  [ -x "build/bench/$w" ] || { echo "build/bench/$w missing (make bench builds it)" >&2; exit 1; }
  a=$(count "$old" "build/bench/$w" -t "$t" -s "$scale")
  b=$(count "$new" "build/bench/$w" -t "$t" -s "$scale")
  printf '%-20s %16s %16s %8.3f\n' "$w-${t}t" "$a" "$b" "$(echo "$b / $a" | bc -l)"
done
