#!/usr/bin/env bash
# t_musl: ebb built with musl (make CC=musl-gcc: no kernel headers needed)
# and ebb's C tests linked statically against that libebb.a and run, each
# under a time limit: the static musl binaries that the README promises to
# serve.  Skipped where musl-gcc is missing (Debian: musl-tools; CI
# installs it).  Parts of tests that need glibc (mallinfo2, dlopen,
# __cxa_thread_atexit_impl, looking symbols up by name) say so and skip.
set -u
cd "$(dirname "$0")/.."
command -v musl-gcc >/dev/null || { echo "skipped: musl-gcc missing (apt-get install musl-tools)"; exit 77; }
out=build/musl
make -s BUILD=$out CC=musl-gcc $out/libebb.a >$out.log 2>&1 || { tail -20 $out.log; echo "FAIL: make CC=musl-gcc"; exit 1; }
mkdir -p $out/test
fail=0
# "name source [flags]": test/conformance.c is two tests, the standard names
# and the ebb_* API (as the Makefile builds it)
tests=()
for src in test/t_*.c test/unit_*.c test/api_*.c; do
  [ -e "$src" ] || continue # a pattern that matched no file
  tests+=("$(basename "$src" .c) $src")
done
tests+=("t_conformance test/conformance.c" "api_conformance test/conformance.c -DCONFORMANCE_EBB_API=1")
for t in "${tests[@]}"; do
  read -r name src flags <<<"$t"
  bin=$out/test/$name
  # $flags unquoted: none, or one word
  if ! musl-gcc -static -DEBB_TEST_STATIC -std=gnu11 -D_GNU_SOURCE -O1 -g -pthread -Wall -Wextra -Werror \
       -Iinclude -Isrc -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
       $flags "$src" -o "$bin" $out/libebb.a -lm >$out/test/$name.build.log 2>&1; then
    echo "FAIL $name: does not build with musl"; sed 's/^/    | /' $out/test/$name.build.log | head; fail=1; continue
  fi
  start=$(date +%s)
  if timeout 300 "$bin" >$out/test/$name.log 2>&1; then
    echo "ok   $name ($(( $(date +%s) - start ))s)"
  else
    echo "FAIL $name (exit $?)"; tail -n 15 $out/test/$name.log | sed 's/^/    | /'; fail=1
  fi
done
# static: no program interpreter, no shared library needed
if readelf -l $out/test/t_threads | grep -q INTERP || readelf -d $out/test/t_threads | grep -q NEEDED; then
  echo "FAIL: the musl test binaries are not static"; fail=1
fi
[ $fail -eq 0 ] && echo "t_musl: ok"
exit $fail
