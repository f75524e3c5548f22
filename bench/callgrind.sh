#!/usr/bin/env bash
# bench/callgrind.sh: instructions per malloc+free pair on the fast path,
# counted with valgrind --tool=callgrind, ebb against its peers.
#
#   bench/callgrind.sh [--check] [--quick] [-h]
#
# Builds bench/fastpath.c (cc -O2) into build/bench/fastpath, then for every
# allocator (ebb = build/libebb.so, mimalloc, jemalloc, tcmalloc: preloaded
# with LD_PRELOAD; glibc: nothing preloaded) and every workload (see
# bench/fastpath.c) runs the loop under callgrind at two iteration counts N1
# and N2 and reports
#
#     (Ir(N2) - Ir(N1)) / (N2 - N1)   = instructions per malloc+free pair,
#                                       the loop's own instructions included
#
# Only the loop is counted (--collect-atstart=no --toggle-collect='loop_*'),
# and the difference cancels one-time costs (allocator start-up, the first
# page, lazy symbol binding).  Each run is checked to have counted the
# allocator it was meant to: the allocation function (malloc, or aligned_alloc) and free the program calls must lie in
# the preloaded library (libc.so.6 for glibc), by dladdr, and callgrind's call
# records from the loop must show N calls to each of those two addresses and
# no call to anything else (see verify below).
#
# Prints a table (workload x allocator: instructions per pair and the ratio
# allocator/ebb, so > 1 means the peer executes more instructions than ebb) and
# writes bench/results/fastpath.csv; per-function detail of the N2 runs goes to
# bench/results/fastpath-detail.txt.  Missing peers are listed and skipped
# (apt-get install libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4).
#
# --check  exit non-zero unless ebb's count is <= mimalloc's for fixed16,
#          fixed16-keep, random and aligned (the fast-path claim); ebb and mimalloc
#          must then both be present.
# --quick  N1=20000 N2=120000 (a smoke test; the figures differ slightly).
#
# Environment: N1, N2 (iteration counts, default 200000 and 1200000),
# WORKLOADS (default "fixed16 fixed16-keep random random-pair random-mid aligned"), ALLOCATORS
# (default "ebb mimalloc jemalloc tcmalloc glibc"), EBB_LIB (default
# build/libebb.so), CC (default cc), VALGRIND (default valgrind).
# Any run that fails or does not verify makes the script exit 1.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

check=0
N1=${N1:-200000}
N2=${N2:-1200000}
while [ $# -gt 0 ]; do
  case $1 in
    --check) check=1 ;;
    --quick) N1=20000; N2=120000 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "callgrind.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! [[ $N1 =~ ^[0-9]+$ && $N2 =~ ^[0-9]+$ ]] || [ "$N2" -le "$N1" ]; then
  echo "callgrind.sh: need integers N2 > N1 (got N1=$N1 N2=$N2)" >&2; exit 2
fi

WORKLOADS=${WORKLOADS:-"fixed16 fixed16-keep random random-pair random-mid aligned"}
ALLOCATORS=${ALLOCATORS:-"ebb mimalloc jemalloc tcmalloc glibc"}
EBB_LIB=${EBB_LIB:-$REPO/build/libebb.so}
CC=${CC:-cc}
VALGRIND=${VALGRIND:-valgrind}
CHECK_WORKLOADS="fixed16 fixed16-keep random aligned"

resdir=$REPO/bench/results
tmpdir=$resdir/tmp/callgrind
csv=$resdir/fastpath.csv
detail=$resdir/fastpath-detail.txt
mkdir -p "$resdir" "$tmpdir" "$REPO/build/bench"
rm -f "$tmpdir"/*

command -v "$VALGRIND" >/dev/null || { echo "callgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }

# ---- build the loop program ------------------------------------------------
fp=$REPO/build/bench/fastpath
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -fno-builtin-malloc -fno-builtin-free \
      -o "$fp" bench/fastpath.c -ldl

# ---- locate the allocators ---------------------------------------------------
# find_lib PACKAGE SONAME: the library's path from dpkg, else from a glob.
find_lib() {
  local pkg=$1 so=$2 p
  if command -v dpkg >/dev/null; then
    p=$(dpkg -L "$pkg" 2>/dev/null | grep -m1 "/$so\$" || true)
    if [ -n "$p" ] && [ -e "$p" ]; then echo "$p"; return 0; fi
  fi
  for p in /usr/lib/*/"$so" /usr/lib64/"$so" /usr/lib/"$so" /lib/*/"$so" \
           /usr/local/lib/"$so"; do
    if [ -e "$p" ]; then echo "$p"; return 0; fi
  done
  return 1
}

declare -A LIB=()      # allocator -> library to preload ("" for glibc)
declare -A OBJ=()      # allocator -> object callgrind must attribute calls to
allocs=()
missing=()
for a in $ALLOCATORS; do
  lib=""
  case $a in
    ebb)      [ -e "$EBB_LIB" ] && lib=$EBB_LIB ;;
    mimalloc) lib=$(find_lib libmimalloc2.0 libmimalloc.so.2) || true ;;
    jemalloc) lib=$(find_lib libjemalloc2 libjemalloc.so.2) || true ;;
    tcmalloc) lib=$(find_lib libtcmalloc-minimal4 libtcmalloc_minimal.so.4) || true ;;
    glibc)    ;;
    *) echo "callgrind.sh: unknown allocator '$a'" >&2; exit 2 ;;
  esac
  if [ "$a" = glibc ]; then
    libc=$(ldd "$fp" | awk '$1 ~ /^libc\.so/ {print $3}')
    [ -n "$libc" ] || { echo "callgrind.sh: cannot find libc of $fp" >&2; exit 1; }
    LIB[$a]=""; OBJ[$a]=$(readlink -f "$libc"); allocs+=("$a")
  elif [ -n "$lib" ]; then
    LIB[$a]=$(readlink -f "$lib"); OBJ[$a]=${LIB[$a]}; allocs+=("$a")
  else
    missing+=("$a")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing (skipped): ${missing[*]}"
  for a in "${missing[@]}"; do
    case $a in
      ebb) echo "  ebb: $EBB_LIB not built (run make)" ;;
      *)   echo "  $a: apt-get install libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4" ;;
    esac
  done
fi
if [ "$check" = 1 ]; then
  for a in ebb mimalloc; do
    if [ -z "${OBJ[$a]+x}" ]; then
      echo "callgrind.sh --check: $a is missing; cannot check the fast-path claim" >&2
      exit 1
    fi
  done
fi
[ ${#allocs[@]} -gt 0 ] || { echo "callgrind.sh: no allocator to measure" >&2; exit 1; }

echo "valgrind: $("$VALGRIND" --version)   N1=$N1 N2=$N2"
for a in "${allocs[@]}"; do
  printf '  %-9s %s\n' "$a" "${LIB[$a]:-(no preload: ${OBJ[$a]})}"
done
echo

# ---- run -----------------------------------------------------------------------
# calls_from_loop FILE: one line per call target of the loop_* functions:
# "object<TAB>function<TAB>address<TAB>calls<TAB>inclusive Ir".  Needs
# --dump-instr=yes --compress-strings=no --compress-pos=no.
calls_from_loop() {
  awk '
    /^ob=/  { ob = substr($0, 4); next }
    /^fn=/  { inloop = (substr($0, 4) ~ /^loop_/); cob = ""; next }
    /^cob=/ { cob = substr($0, 5); next }
    /^cfn=/ { cfn = substr($0, 5); next }
    /^calls=/ {   # calls=<count> <target address> <target line>
      split(substr($0, 7), c, " "); n = c[1]; addr = tolower(c[2]); want = 1; next
    }
    want {        # the cost line after calls=: "<address> <line> <inclusive Ir>"
      if (inloop) {
        k = (cob != "" ? cob : ob) "\t" cfn "\t" addr
        calls[k] += n; cost[k] += $NF
      }
      want = 0; cob = ""
      next
    }
    END { for (k in calls) printf "%s\t%.0f\t%.0f\n", k, calls[k], cost[k] }
  ' "$1"
}

# Verification.  fastpath prints, after its loop, the address its calls to
# malloc and free bind to, the offset of that address in the object holding
# it, and the object (dlsym, dladdr):
#     where malloc 0x484cb70 0x10b70 /usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0
# A run counts only if (1) both objects are the allocator meant (the preloaded
# library, or libc.so.6 for glibc), (2) callgrind recorded at least N calls
# from the loop to each of the two functions, identified by address, and
# (3) the loop called nothing else but the dynamic linker's lazy-binding
# trampoline.  Callgrind writes a call target as its offset in the callee's
# object, or as the absolute address when it cannot place the code in an
# object: gperftools puts malloc and free in a section of their own
# (google_malloc) outside .text, so tcmalloc's show up in object "???".
# The allocation function each workload calls (free is the other).
alloc_fn() {
  case $1 in aligned) echo aligned_alloc ;; *) echo malloc ;; esac
}
verify() {   # verify ALLOC WORKLOAD N LOG CALLS -> prints the reason when not verified
  local a=$1 w=$2 n=$3 log=$4 calls=$5 name addr off obj got
  local -A match=()
  local fn; fn=$(alloc_fn "$w")
  for name in "$fn" free; do
    read -r addr off obj < <(awk -v f="$name" '$1 == "where" && $2 == f {print tolower($3), tolower($4), $5}' "$log")
    if [ -z "${addr:-}" ] || [ -z "${obj:-}" ]; then echo "fastpath printed no address for $name"; return; fi
    obj=$(readlink -f "$obj" 2>/dev/null || echo "$obj")
    if [ "$obj" != "${OBJ[$a]}" ]; then
      echo "the program's $name is in $obj, not in ${OBJ[$a]}"; return
    fi
    got=$(awk -F'\t' -v x="$addr" -v o="$off" -v ob="$obj" \
          '$3 == x || ($3 == o && $1 == ob) {s += $4} END {printf "%.0f", s}' <<<"$calls")
    if [ "$got" -lt "$n" ]; then
      echo "callgrind saw $got calls from the loop to $name ($addr, $obj+$off), expected $n"; return
    fi
    match[$name]="$addr $off"
  done
  got=$(awk -F'\t' -v ob="${OBJ[$a]}" -v m="${match[$fn]}" -v f="${match[free]}" '
        BEGIN { split(m, M, " "); split(f, F, " ") }
        $3 == M[1] || $3 == F[1] { next }
        $1 == ob && ($3 == M[2] || $3 == F[2]) { next }
        $1 ~ /\/ld-linux[^\/]*$/ { next }
        { printf "%s:%s@%s x%s ", $1, $2, $3, $4 }' <<<"$calls")
  if [ -n "$got" ]; then echo "the loop also called: $got"; fi
}

declare -A IR=()       # "alloc,workload,N" -> Ir of the loop
declare -A BAD=()      # "alloc,workload" -> reason it has no figure
failures=0
: > "$detail"
start_all=$(date +%s)

for a in "${allocs[@]}"; do
  for w in $WORKLOADS; do
    for n in "$N1" "$N2"; do
      out=$tmpdir/$a.$w.$n.out log=$tmpdir/$a.$w.$n.log
      if [ -n "${LIB[$a]}" ]; then envset=(env "LD_PRELOAD=${LIB[$a]}")
      else envset=(env -u LD_PRELOAD); fi
      rc=0
      "${envset[@]}" "$VALGRIND" --tool=callgrind --callgrind-out-file="$out" \
          --collect-atstart=no --toggle-collect='loop_*' \
          --dump-instr=yes --compress-strings=no --compress-pos=no \
          "$fp" "$w" "$n" >"$log" 2>&1 || rc=$?
      if [ $rc -ne 0 ] || ! [ -s "$out" ]; then
        BAD[$a,$w]="run failed (exit $rc)"
        echo "FAIL $a $w N=$n: exit $rc; log $log:" >&2
        tail -n 15 "$log" | sed 's/^/    | /' >&2
        failures=$((failures+1)); break
      fi
      ir=$(awk '/^summary:/ {print $2; exit}' "$out")
      calls=$(calls_from_loop "$out")
      why=$(verify "$a" "$w" "$n" "$log" "$calls")
      if [ -n "$why" ] || ! [[ $ir =~ ^[0-9]+$ ]]; then
        BAD[$a,$w]="not verified"
        echo "FAIL $a $w N=$n: not verified: ${why:-no summary in $out}" >&2
        failures=$((failures+1)); break
      fi
      IR[$a,$w,$n]=$ir
      if [ "$n" = "$N2" ]; then
        {
          echo "$a $w N=$n: loop Ir $ir; $(grep '^where' "$log" | tr '\n' ' ')"
          awk -F'\t' '{printf "    %-40s %-24s %-12s %9d calls %8.1f Ir/call\n", $1, $2, $3, $4, ($4 ? $5/$4 : 0)}' <<<"$calls" | sort
        } >> "$detail"
      fi
    done
    if [ -z "${BAD[$a,$w]+x}" ]; then
      printf '  %-9s %-13s %8.1f Ir/pair   verified\n' "$a" "$w" \
        "$(awk -v a="${IR[$a,$w,$N1]}" -v b="${IR[$a,$w,$N2]}" -v n1="$N1" -v n2="$N2" 'BEGIN {print (b-a)/(n2-n1)}')"
    fi
  done
done
echo "(callgrind runs took $(( $(date +%s) - start_all ))s)"
echo

# ---- report ---------------------------------------------------------------------
# diff ALLOC WORKLOAD: Ir(N2) - Ir(N1), or empty.
diff_ir() {
  local k2="$1,$2,$N2" k1="$1,$2,$N1"
  if [ -n "${IR[$k2]+x}" ] && [ -n "${IR[$k1]+x}" ]; then
    echo $(( ${IR[$k2]} - ${IR[$k1]} ))
  fi
}

echo "Instructions per malloc+free pair (loop included), callgrind, (Ir(N2)-Ir(N1))/(N2-N1)"
echo "with N1=$N1 N2=$N2; in brackets: allocator / ebb (> 1: more instructions than ebb)."
printf '%-14s' workload
for a in "${allocs[@]}"; do printf '%16s' "$a"; done
echo
echo "workload,allocator,ir_per_pair,ratio_to_ebb,n1,n2,ir_n1,ir_n2,library" > "$csv"
for w in $WORKLOADS; do
  printf '%-14s' "$w"
  e=$(diff_ir ebb "$w")
  for a in "${allocs[@]}"; do
    d=$(diff_ir "$a" "$w")
    if [ -z "$d" ]; then
      printf '%16s' "${BAD[$a,$w]:+FAIL}"
      echo "$w,$a,,,$N1,$N2,,,${LIB[$a]:-${OBJ[$a]}}" >> "$csv"
      continue
    fi
    per=$(awk -v d="$d" -v n1="$N1" -v n2="$N2" 'BEGIN {printf "%.1f", d/(n2-n1)}')
    ratio=""
    [ -n "$e" ] && [ "$e" -gt 0 ] && ratio=$(awk -v d="$d" -v e="$e" 'BEGIN {printf "%.2f", d/e}')
    if [ -n "$ratio" ]; then printf '%16s' "$per ($ratio)"; else printf '%16s' "$per"; fi
    echo "$w,$a,$per,$ratio,$N1,$N2,${IR[$a,$w,$N1]},${IR[$a,$w,$N2]},${LIB[$a]:-${OBJ[$a]}}" >> "$csv"
  done
  echo
done
echo
echo "Reference (FIELD-GUIDE, same kind of machine): fixed16 mimalloc 114 jemalloc 77 tcmalloc 77"
echo "glibc 139; fixed16-keep mimalloc 52 jemalloc 77 tcmalloc 76; random mimalloc 99 jemalloc 133"
echo "tcmalloc 114."
echo "Wrote $csv and $detail"

status=0
if [ "$failures" -gt 0 ]; then
  echo "$failures run(s) failed or did not verify (see above)" >&2
  status=1
fi
if [ "$check" = 1 ]; then
  echo
  echo "Fast-path check: ebb <= mimalloc in instructions per pair"
  for w in $CHECK_WORKLOADS; do
    e=$(diff_ir ebb "$w"); m=$(diff_ir mimalloc "$w")
    if [ -z "$e" ] || [ -z "$m" ]; then
      echo "  FAIL $w: no figure for ebb and/or mimalloc"; status=1
    elif [ "$e" -le "$m" ]; then
      printf '  ok   %-13s ebb %.1f <= mimalloc %.1f\n' "$w" \
        "$(awk -v d="$e" -v n="$((N2-N1))" 'BEGIN {print d/n}')" "$(awk -v d="$m" -v n="$((N2-N1))" 'BEGIN {print d/n}')"
    else
      printf '  FAIL %-13s ebb %.1f > mimalloc %.1f\n' "$w" \
        "$(awk -v d="$e" -v n="$((N2-N1))" 'BEGIN {print d/n}')" "$(awk -v d="$m" -v n="$((N2-N1))" 'BEGIN {print d/n}')"
      status=1
    fi
  done
fi
exit $status
