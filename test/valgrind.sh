#!/usr/bin/env bash
# Runs t_threads (reduced: EBB_TEST_SCALE=small), t_tls_exit and
# t_conformance under valgrind's memcheck with ebb as the allocator; any
# memcheck error (invalid read/write, use of uninitialised values in ebb's
# code, bad syscall arguments...) or a test failure fails this script.
#
# Memcheck by default replaces malloc & co. in *every* object that exports
# them, which would silently put valgrind's allocator in place of ebb's.
# --soname-synonyms=somalloc=nouserintercepts limits that to libc and
# libstdc++, where symbol lookup never reaches (libebb.so comes first).  That
# ebb really runs is checked twice: t_threads prints that ebb_usable_size
# accepted a malloc pointer (it aborts on a foreign pointer), and valgrind's
# heap summary for every process must say "total heap usage: 0 allocs".
#
# Needs valgrind (Debian package valgrind); SKIPs (exit 0) if it is missing.
set -u
EBB_ROOT=${EBB_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
if ! command -v valgrind >/dev/null 2>&1; then
  echo "SKIP: valgrind is not installed (apt-get install valgrind)"
  exit 0
fi
bindir=$EBB_ROOT/build/test
tmp=$(mktemp -d /tmp/ebb_valgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
limit=${EBB_VALGRIND_TIMEOUT:-170}

# --run-libc-freeres=no: at exit valgrind has glibc free its own memory
# (__libc_freeres), in the main thread after the other threads are gone.
# t_tls_exit exits with two threads still allocating; when one of them
# died holding a shared heap's lock, freeres's free of a thread's TLS
# waited for that lock forever (seen in CI, and 2 in 14 runs beside a CPU
# hog).  No program calls freeres outside valgrind and mtrace.
VG=(valgrind --tool=memcheck --error-exitcode=99 --soname-synonyms=somalloc=nouserintercepts
    --fair-sched=yes --num-callers=30 --trace-children=no --run-libc-freeres=no)

# vg NAME BINARY [ARGS...]
vg() {
  local name=$1 bin=$2
  shift 2
  if [ ! -x "$bin" ]; then
    echo "FAIL: $bin is not built (make test-bins)"
    failures=$((failures + 1))
    return
  fi
  local logs=$tmp/$name
  mkdir -p "$logs"
  local t0 rc
  t0=$(date +%s.%N)
  # one log per process (%p): forked children write their own
  EBB_TEST_SCALE=small EBB_TEST_TIMEOUT=$((limit + 30)) \
    timeout -k 5 "$limit" "${VG[@]}" --log-file="$logs/vg.%p.log" "$bin" "$@" >"$logs/stdout" 2>"$logs/stderr"
  rc=$?
  local secs bad=0
  secs=$(echo "$(date +%s.%N) - $t0" | bc)
  # The main process's log: the one whose parent left no log.  (Forked
  # children, as system() makes, log the same command line, and the first
  # file by name was a child's once the PIDs passed 9999 into 10000.)
  local main_log="" log ppid
  for log in $(grep -l "Command: $bin" "$logs"/vg.*.log 2>/dev/null); do
    ppid=$(sed -n 's/^==[0-9]*== Parent PID: \([0-9]*\).*/\1/p' "$log" | head -n 1)
    if [ ! -e "$logs/vg.$ppid.log" ]; then main_log=$log; break; fi
  done
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: $name under valgrind: exit $rc$([ "$rc" -eq 99 ] && echo ' (memcheck errors)')$([ "$rc" -eq 124 ] && echo " (timed out after ${limit}s)")"
    bad=1
  fi
  # errors in any process, including forked children (a child that execs,
  # as system() does, leaves a log without a summary: that is fine)
  local errlogs
  errlogs=$(grep -l 'ERROR SUMMARY: [1-9]' "$logs"/vg.*.log 2>/dev/null)
  if [ -n "$errlogs" ]; then
    echo "FAIL: $name: memcheck reported errors:"
    bad=1
  fi
  # ebb, not valgrind's replacement, must have served every allocation
  local served
  served=$(grep -h 'total heap usage:' "$logs"/vg.*.log | grep -v 'total heap usage: 0 allocs, 0 frees' | head -n 3)
  if [ -n "$served" ]; then
    echo "FAIL: $name: valgrind's own malloc served allocations, so ebb was not in use:"
    echo "$served"
    bad=1
  fi
  if [ -z "$main_log" ] || ! grep -q 'total heap usage: 0 allocs' "$main_log"; then
    echo "FAIL: $name: no valgrind heap summary for the main process"
    bad=1
  fi
  if [ "$name" = t_threads ] && ! grep -q "malloc is ebb's" "$logs/stdout"; then
    echo "FAIL: t_threads did not confirm that malloc is ebb's"
    bad=1
  fi
  if [ $bad -ne 0 ]; then
    failures=$((failures + 1))
    echo "--- $name stdout (tail)"; tail -n 20 "$logs/stdout"
    echo "--- $name stderr (tail)"; tail -n 20 "$logs/stderr"
    for l in $errlogs ${main_log:-}; do
      echo "--- $(basename "$l")"; grep -v -e '^==[0-9]*== *$' -e 'set address range perms' "$l" | head -n 80
    done
  else
    printf 'ok    %-16s %6.1fs under valgrind (%d process(es), 0 errors, ebb served all allocations)\n' \
      "$name" "$secs" "$(ls "$logs"/vg.*.log | wc -l)"
  fi
}

vg t_threads "$bindir/t_threads"
vg t_tls_exit "$bindir/t_tls_exit"
if [ -f "$EBB_ROOT/test/conformance.c" ]; then
  vg t_conformance "$bindir/t_conformance"
else
  echo "note: test/conformance.c does not exist yet; not run"
fi

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "valgrind: all clean"
