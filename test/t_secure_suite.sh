#!/usr/bin/env bash
# t_secure_suite: ebb's own C tests again, with the secure build
# (build/libebb-secure.so) preloaded in place of the libebb.so they link:
# its checked lists, guard pages, delayed reuse and filled frees must keep
# every behaviour the tests check (threads handing blocks across, purging,
# conformance, bad frees, TLS destructors, statistics).
set -u
cd "$(dirname "$0")/.."
lib=$PWD/build/libebb-secure.so
[ -f "$lib" ] || make -s "$lib" || exit 1
fail=0
# the preload takes: the secure library is mapped into a preloaded process
if ! LD_PRELOAD=$lib cat /proc/self/maps | grep -q 'libebb-secure\.so'; then
  echo "FAIL: LD_PRELOAD=$lib does not map it"
  exit 1
fi
for t in t_threads t_purge t_collect t_conformance t_badfree t_tls_exit t_stats api_conformance; do
  bin=build/test/$t
  if [ ! -x "$bin" ]; then
    echo "FAIL $t: $bin not built (make test builds it)"
    fail=1
    continue
  fi
  log=build/test-logs/secure-$t.log
  mkdir -p build/test-logs
  if LD_PRELOAD=$lib timeout 300 "$bin" >"$log" 2>&1; then
    echo "ok   $t"
  else
    echo "FAIL $t (exit $?): last lines of $log"
    tail -n 10 "$log" | sed 's/^/    | /'
    fail=1
  fi
done
[ $fail -eq 0 ] && echo "t_secure_suite: ok"
exit $fail
