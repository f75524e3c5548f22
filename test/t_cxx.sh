#!/usr/bin/env bash
# t_cxx: C++'s operator new and delete come from ebb (src/cxx_new.c), by
# preloading libebb.so into a C++ program, by linking it with libebb.so and
# with libebb.a (test/cxx_ops.cc: every operator bound to ebb, the
# alignments, the new_handler loop and std::bad_alloc, nothrow forms,
# containers under threads); a sized delete larger than its block and an
# aligned delete of a pointer without that alignment are reported with one
# line naming the operator and the pointer.  The same program without ebb
# must pass too (the test checks itself against libstdc++).
set -u
cd "$(dirname "$0")/.."
tools=build/test-tools
if [ ! -x $tools/cxx_ops ]; then
  echo "skipped: $tools/cxx_ops not built (no C++ compiler, or CXX_OPERATORS=0)"
  exit 77
fi
fail=0
check() { # NAME CMD...: must exit 0
  local name=$1; shift
  if out=$("$@" 2>&1); then echo "ok   $name: $(echo "$out" | head -1)"
  else echo "FAIL $name:"; echo "$out" | tail -5 | sed 's/^/    | /'; fail=1; fi
}
check "without ebb (libstdc++'s operators)" $tools/cxx_ops
check "preloaded" env LD_PRELOAD="$PWD/build/libebb.so" $tools/cxx_ops --expect-ebb
check "linked with libebb.so" $tools/cxx_ops-linked --expect-ebb
check "linked with libebb.a" $tools/cxx_ops-static --expect-ebb
check "secure build preloaded" env LD_PRELOAD="$PWD/build/libebb-secure.so" $tools/cxx_ops --expect-ebb

for bad in "--bad-sized-delete:size given is larger" "--bad-aligned-delete:alignment"; do
  arg=${bad%%:*}; want=${bad#*:}
  err=$(LD_PRELOAD="$PWD/build/libebb.so" $tools/cxx_ops "$arg" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | grep -c '^ebb: ')
  if [ $rc -eq 134 ] && [ "$lines" = 1 ] && [[ "$err" == *"operator delete("*"$want"* ]]; then
    echo "ok   $arg: $err"
  else
    echo "FAIL $arg: exit $rc, stderr: $err"; fail=1
  fi
done
[ $fail -eq 0 ] && echo "t_cxx: ok"
exit $fail
