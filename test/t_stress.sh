#!/usr/bin/env bash
# t_stress: test/stress.c, a seeded random mix of every allocation call with
# every block's contents checked before it is freed or reallocated.
#  1. differential: one thread, a fixed number of operations: the digest of
#     everything read back must be the same under glibc, ebb and ebb's
#     secure build (same seed, same calls, same contents).
#  2. 16 threads handing blocks to each other, with forks, for a bounded
#     time under ebb, then 4 threads under the secure build with a decay
#     of 0 (the purger borrows remote lists and purges as soon as it can,
#     racing the threads that own and free those blocks; a link read from
#     a purged block is a crash there).
# STRESS_SEED picks the seed (default: the clock; printed, to rerun a
# failure); STRESS_SECONDS the time of step 2 (default 8).  A longer run:
#   STRESS_SECONDS=600 TESTS=t_stress.sh make test
set -u
cd "$(dirname "$0")/.."
bin=build/test-tools/stress
[ -x "$bin" ] || make -s "$bin" || exit 1
seed=${STRESS_SEED:-$(date +%s)}
secs=${STRESS_SECONDS:-8}
echo "seed $seed (rerun: STRESS_SEED=$seed bash test/t_stress.sh)"
fail=0

digest() { LD_PRELOAD=$1 "$bin" "$seed" 0 1 300000 | sed -n 's/.*digest=//p'; }
d_glibc=$(digest "")
d_ebb=$(digest "$PWD/build/libebb.so")
d_secure=$(digest "$PWD/build/libebb-secure.so")
echo "digests: glibc $d_glibc, ebb $d_ebb, ebb-secure $d_secure"
if [ -z "$d_glibc" ] || [ "$d_glibc" != "$d_ebb" ] || [ "$d_glibc" != "$d_secure" ]; then
  echo "FAIL: the one-thread runs differ (or one failed)"
  fail=1
fi

for run in "build/libebb.so 16 $secs 250" "build/libebb-secure.so 4 $(( (secs + 1) / 2 )) 0"; do
  set -- $run
  echo "== $1: $2 threads, $3 s, decay $4 ms"
  if ! EBB_DECAY_MS=$4 LD_PRELOAD=$PWD/$1 timeout $(( $3 + 60 )) "$bin" "$seed" "$3" "$2"; then
    echo "FAIL: $1 with $2 threads (seed $seed)"
    fail=1
  fi
done
[ $fail -eq 0 ] && echo "t_stress: ok"
exit $fail
