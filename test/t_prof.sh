#!/usr/bin/env bash
# t_prof: the heap profiler (src/sample.c, src/prof.c), read back with the
# tool users have, Debian's google-pprof (package google-perftools).
# test/prof_sites.c leaks steadily from leak_site, fragments from
# fragment_site and churns from churn_site, and asks for a dump halfway
# and at the end; it prints what leak_site really holds.  Checked:
# - google-pprof --text: leak_site first, its bytes within 20% of the truth
#   (EBB_PROF=1 at 32 KiB: ~1300 samples, a standard error near 3%);
# - google-pprof --base (the second dump against the first): leak_site
#   first, with what it leaked in between, within 20%;
# - google-pprof --svg (graphviz) makes a graph naming leak_site;
# - the exit dump (EBB_PROF_FILE, %p) and its collapsed stacks;
# - ebb linked in statically and started with ebb_prof_start() at run
#   time: ebb's own frames are dropped there too;
# - EBB_PROF_INTERVAL writes numbered dumps; the statistics verdict names
#   leak_site; with profiling off, no file is written;
# - ebb's own C tests pass with sampling on.
set -u
cd "$(dirname "$0")/.."
tools=build/test-tools
if ! command -v google-pprof >/dev/null 2>&1; then
  echo "skipped: google-pprof not installed (Debian package google-perftools)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# within PCT of TRUTH_BYTES? (VALUE in MiB, as pprof prints "MB")
within() { # VALUE_MB TRUTH_BYTES PCT
  awk -v v="$1" -v t="$2" -v p="$3" 'BEGIN { e = v * 1048576; d = (e - t) / t; if (d < 0) d = -d; exit !(d <= p / 100) }'
}
# the first row of a --text report: "flat name"
first_row() { awk '/^Total:/ { getline; print $1, $6; exit }'; }

run_case() { # NAME PROGRAM PREFIX [args...] with env set by the caller
  local name=$1 prog=$2 prefix=$3; shift 3
  local out
  if ! out=$("$prog" "$prefix" "$@" 2>"$tmp/$name.err"); then
    bad "$name: the program failed: $(tail -3 "$tmp/$name.err")"
    return 1
  fi
  echo "$out" > "$tmp/$name.out"
}
truth() { # OUT_FILE PHASE: leak_site's bytes at the end of that phase
  awk -v ph="phase $2:" 'index($0, ph) == 1 { print $4 }' "$1"
}

check_profile() { # NAME PROGRAM PREFIX
  local name=$1 prog=$2 prefix=$3
  local t1 t2 row flat fn
  t1=$(truth "$tmp/$name.out" 1); t2=$(truth "$tmp/$name.out" 2)
  row=$(google-pprof --text "$prog" "$prefix.2.heap" 2>/dev/null | first_row)
  flat=${row%% *}; fn=${row#* }
  if [ "$fn" = leak_site ] && within "$flat" "$t2" 20; then
    ok "$name --text: leak_site first, $flat MiB (truth $(awk -v t="$t2" 'BEGIN{printf "%.1f", t/1048576}') MiB)"
  else
    bad "$name --text: first row '$row', truth $t2 bytes"
    google-pprof --text "$prog" "$prefix.2.heap" 2>&1 | head -8 | sed 's/^/    | /'
  fi
  row=$(google-pprof --text --base="$prefix.1.heap" "$prog" "$prefix.2.heap" 2>/dev/null | first_row)
  flat=${row%% *}; fn=${row#* }
  if [ "$fn" = leak_site ] && within "$flat" "$((t2 - t1))" 20; then
    ok "$name --base: leak_site grew $flat MiB (truth $(awk -v t="$((t2 - t1))" 'BEGIN{printf "%.1f", t/1048576}') MiB)"
  else
    bad "$name --base: first row '$row', truth $((t2 - t1)) bytes"
  fi
}

# 1. preloaded, EBB_PROF=1, exit dump to a %p path
EBB_PROF=1 EBB_PROF_RATE=32k EBB_PROF_FILE="$tmp/exit.%p.heap" LD_PRELOAD="$PWD/build/libebb.so" \
  run_case preload $tools/prof_sites "$tmp/pre" && check_profile preload $tools/prof_sites "$tmp/pre"

# 1b. small blocks: 17 bytes in a 32-byte class, estimated from the bytes
# the class charges to its countdown (read from the request, twice the truth)
EBB_PROF=1 EBB_PROF_RATE=4k EBB_PROF_FILE="$tmp/sm-exit.heap" LD_PRELOAD="$PWD/build/libebb.so" \
  run_case small $tools/prof_sites "$tmp/sm" --small && check_profile small $tools/prof_sites "$tmp/sm"

exitfile=$(ls "$tmp"/exit.*.heap 2>/dev/null | head -1)
if [ -n "$exitfile" ] && head -1 "$exitfile" | grep -q '^heap profile:' && grep -q '^MAPPED_LIBRARIES:' "$exitfile"; then
  ok "exit dump $(basename "$exitfile")"
else
  bad "no exit dump at $tmp/exit.PID.heap"
fi
top=$(sort -k2 -n -r -t' ' <(awk '{ print $1, $NF }' "$exitfile.collapsed" 2>/dev/null) | head -1)
if [[ "$top" == *";leak_site "* ]]; then ok "collapsed stacks: largest is ...;leak_site"
else bad "collapsed stacks: largest line '$top'"; fi

# 2. an SVG call graph (graphviz)
if command -v dot >/dev/null 2>&1; then
  if google-pprof --svg $tools/prof_sites "$tmp/pre.2.heap" > "$tmp/g.svg" 2>/dev/null &&
     grep -q '<svg' "$tmp/g.svg" && grep -q 'leak_site' "$tmp/g.svg"; then
    ok "--svg: $(wc -c < "$tmp/g.svg") bytes, names leak_site"
  else
    bad "--svg did not make a graph naming leak_site"
  fi
else
  echo "note --svg not checked: graphviz (dot) not installed"
fi

# 3. linked statically, started at run time by the API
run_case static $tools/prof_sites-static "$tmp/st" --start && check_profile static $tools/prof_sites-static "$tmp/st"

# 4. interval dumps, and the verdict naming the site
EBB_PROF=1 EBB_PROF_RATE=32k EBB_PROF_INTERVAL=20ms EBB_PROF_FILE="$tmp/iv.heap" \
  EBB_SHOW_STATS_FILE="$tmp/stats.txt" LD_PRELOAD="$PWD/build/libebb.so" \
  run_case interval $tools/prof_sites "$tmp/iv"
if ls "$tmp"/iv.heap.0000 >/dev/null 2>&1; then ok "EBB_PROF_INTERVAL: $(ls "$tmp"/iv.heap.0* | wc -l) numbered dumps"
else
  # the program may end before the purger's first tick on a slow machine:
  # then the exit dump must still be there
  if [ -f "$tmp/iv.heap" ]; then ok "EBB_PROF_INTERVAL: the run ended before the first interval; exit dump written"
  else bad "EBB_PROF_INTERVAL: no dump"; fi
fi
if grep -A4 'call sites holding the most' "$tmp/stats.txt" 2>/dev/null | grep -q leak_site; then
  ok "verdict names leak_site"
else
  bad "verdict does not name leak_site"; sed -n '/VERDICT/,$p' "$tmp/stats.txt" 2>/dev/null | sed 's/^/    | /'
fi

# 5. off: nothing sampled, no file
(cd "$tmp" && LD_PRELOAD="$OLDPWD/build/libebb.so" "$OLDPWD/$tools/prof_sites" "$tmp/off" >/dev/null)
if ls "$tmp"/ebb.*.heap >/dev/null 2>&1 || ! grep -q '^heap profile:      0:' "$tmp/off.2.heap"; then
  bad "profiling off: a file was written or samples were taken"
else
  ok "off: an empty profile on request, no exit file"
fi

# 6. ebb's own tests with sampling on: at 4 KiB nearly every page hands
# out grants and many blocks come from the sampled heap; at 256 KiB most
# classes pop their pages directly between samples
for t in "t_conformance 4k" "t_stats 4k" "t_collect 4k" "t_threads 256k"; do
  name=${t% *}; rate=${t#* }
  if EBB_PROF=1 EBB_PROF_RATE=$rate EBB_PROF_FILE="$tmp/suite.heap" timeout 300 build/test/$name > "$tmp/$name.log" 2>&1; then
    ok "$name with EBB_PROF_RATE=$rate"
  else
    bad "$name with EBB_PROF_RATE=$rate:"; tail -5 "$tmp/$name.log" | sed 's/^/    | /'
  fi
done

# 7. no background thread: purge passes and interval dumps run inside
# allocator calls, some of them inside the sampler's lock (a sampled
# block's page given back); they must not wait for it
if EBB_BACKGROUND=0 EBB_PROF=1 EBB_PROF_RATE=4k EBB_PROF_INTERVAL=1ms EBB_PROF_FILE="$tmp/inline.heap" \
   timeout 300 build/test/t_conformance > "$tmp/inline.log" 2>&1; then
  ok "t_conformance with EBB_BACKGROUND=0 and interval dumps ($(ls "$tmp"/inline.heap.0* 2>/dev/null | wc -l) dumps)"
else
  bad "t_conformance with EBB_BACKGROUND=0 and interval dumps:"; tail -5 "$tmp/inline.log" | sed 's/^/    | /'
fi

[ $fail -eq 0 ] && echo "t_prof: ok"
exit $fail
