#!/usr/bin/env bash
# t_aarch64: ebb cross-built for arm64 (make CC=aarch64-linux-gnu-gcc) and
# a subset of its C tests run under qemu-user with 4, 16 and 64 KiB pages
# (qemu-aarch64 -p: the page size the guest is told, as an arm64 kernel
# built for it would), ebb linked into each test.  ebb reads the page size
# at run time; this shows its geometry, purging and checks hold at each.
# Skipped where the cross compiler or qemu is missing (Debian:
# gcc-aarch64-linux-gnu, qemu-user; CI installs them).  Also run:
# test/stress.c's one-thread sequence (every allocation call, patterns
# checked before each free), whose digest must equal the same seed's run
# on the host under glibc.  t_stats checks that ebb's RSS reading follows
# the memory touched at every page size (/proc here is the host's, in 4
# KiB pages; ebb reads VmRSS, in kB).  Left out: t_purge (a minute
# natively, and qemu's own memory moves the RSS it watches), and tests whose
# children must die with exactly one line on stderr (qemu adds its own
# line about the signal, and asserted once in its fork path).
#
# AARCH64_TESTS="unit_internal ..." picks the tests; AARCH64_PAGES="4096
# 16384 65536" the page sizes.
set -u
cd "$(dirname "$0")/.."
cc=aarch64-linux-gnu-gcc
command -v $cc >/dev/null || { echo "skipped: $cc missing (apt-get install gcc-aarch64-linux-gnu)"; exit 77; }
command -v qemu-aarch64 >/dev/null || { echo "skipped: qemu-aarch64 missing (apt-get install qemu-user)"; exit 77; }
sysroot=/usr/aarch64-linux-gnu
out=build/aarch64
tests=${AARCH64_TESTS:-unit_internal t_conformance t_stats}
pages=${AARCH64_PAGES:-4096 16384 65536}
mkdir -p $out/test
make -s BUILD=$out CC=$cc $out/libebb.a >$out.log 2>&1 || { tail -20 $out.log; echo "FAIL: make CC=$cc"; exit 1; }
# A test's source and flags: test/conformance.c is two tests, the standard
# names and the ebb_* API (as the Makefile builds it).
source_and_flags() {
  case $1 in
    t_conformance) echo "test/conformance.c" ;;
    api_conformance) echo "test/conformance.c -DCONFORMANCE_EBB_API=1" ;;
    *) echo "test/$1.c" ;;
  esac
}
fail=0
for name in $tests; do
  # unquoted: the source and its flags as separate words
  if ! $cc -DEBB_TEST_STATIC -std=gnu11 -D_GNU_SOURCE -O1 -g -pthread -Wall -Wextra -Werror -Iinclude -Isrc \
       -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
       $(source_and_flags "$name") -o $out/test/$name $out/libebb.a -lm -ldl >$out/test/$name.build.log 2>&1; then
    echo "FAIL $name: does not build for aarch64"; sed 's/^/    | /' $out/test/$name.build.log | head; fail=1
  fi
done
$cc -std=gnu11 -D_GNU_SOURCE -O1 -g -pthread -Iinclude -fno-builtin-malloc -fno-builtin-free \
  -fno-builtin-calloc -fno-builtin-realloc test/stress.c -o $out/test/stress $out/libebb.a -lm \
  >$out/test/stress.build.log 2>&1 || { echo "FAIL stress: does not build"; fail=1; }
make -s build/test-tools/stress >/dev/null 2>&1 || { echo "FAIL: host build of stress"; fail=1; }
[ $fail -eq 0 ] || exit 1
seed=20261205
host_digest=$(build/test-tools/stress $seed 0 1 100000 | sed -n 's/.*digest=//p')
for page in $pages; do
  digest=$(qemu-aarch64 -L $sysroot -p $page $out/test/stress $seed 0 1 100000 2>&1 | sed -n 's/.*digest=//p')
  if [ -n "$host_digest" ] && [ "$digest" = "$host_digest" ]; then
    echo "ok   stress (one thread, 100000 calls), $((page / 1024)) KiB pages: digest $digest as on the host"
  else
    echo "FAIL stress, $((page / 1024)) KiB pages: digest '$digest', host glibc '$host_digest'"; fail=1
  fi
done
for page in $pages; do
  for name in $tests; do
    start=$(date +%s)
    log=$out/test/$name.p$page.log
    if timeout 600 qemu-aarch64 -L $sysroot -p $page $out/test/$name >$log 2>&1; then
      echo "ok   $name, $((page / 1024)) KiB pages ($(( $(date +%s) - start ))s)"
    else
      echo "FAIL $name, $((page / 1024)) KiB pages (exit $?)"; tail -n 15 $log | sed 's/^/    | /'; fail=1
    fi
  done
done
[ $fail -eq 0 ] && echo "t_aarch64: ok"
exit $fail
