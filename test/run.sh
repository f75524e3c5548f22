#!/usr/bin/env bash
# Runs every test: the binaries built from test/*.c (build/test/*) and the
# scripts test/*.sh.  A test passes when it exits 0; exit 77 means skipped
# (something it needs is missing; its last line says what).  Prints one line a
# test and, last, "N passed, N failed[, N skipped]".  TESTS="name1 name2" runs
# only those.
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

passed=0; failed=0; skipped=0; failed_names=()
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
  elif [ $rc -eq 77 ]; then
    skipped=$((skipped+1))
    printf 'SKIP  %-28s %6.1fs %s\n' "$name" "$secs" "$(tail -n 1 "$logdir/$name.log")"
  else
    failed=$((failed+1)); failed_names+=("$name")
    printf 'FAIL  %-28s %6.1fs (exit %d)\n' "$name" "$secs" "$rc"
    tail -n 30 "$logdir/$name.log" | sed 's/^/    | /'
  fi
done
echo
echo "$passed passed, $failed failed$([ $skipped -gt 0 ] && echo ", $skipped skipped")"
[ $failed -eq 0 ]
