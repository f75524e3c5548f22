#!/usr/bin/env bash
# Runs every test: the binaries built from test/*.c (build/test/*) and the
# scripts test/*.sh.  A test passes when it exits 0.  Prints one line a test
# and, last, "N passed, N failed".  TESTS="name1 name2" runs only those.
set -u
cd "$(dirname "$0")/.."
export EBB_ROOT=$PWD
logdir=build/test-logs
mkdir -p "$logdir"
limit=${TEST_TIMEOUT:-600}

tests=()
for b in build/test/*; do
  [ -f "$b" ] && [ -x "$b" ] && tests+=("$b")
done
for s in test/*.sh; do
  [ "$s" = test/run.sh ] && continue
  tests+=("$s")
done

passed=0; failed=0; failed_names=()
for t in "${tests[@]}"; do
  name=$(basename "$t")
  if [ -n "${TESTS:-}" ] && ! [[ " $TESTS " == *" $name "* ]]; then continue; fi
  start=$(date +%s.%N)
  if [[ "$t" == *.sh ]]; then cmd=(bash "$t"); else cmd=("$t"); fi
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} timeout "$limit" "${cmd[@]}" >"$logdir/$name.log" 2>&1
  rc=$?
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  if [ $rc -eq 0 ]; then
    passed=$((passed+1)); printf 'PASS  %-28s %6.1fs\n' "$name" "$secs"
  else
    failed=$((failed+1)); failed_names+=("$name")
    printf 'FAIL  %-28s %6.1fs (exit %d)\n' "$name" "$secs" "$rc"
    tail -n 30 "$logdir/$name.log" | sed 's/^/    | /'
  fi
done
echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
