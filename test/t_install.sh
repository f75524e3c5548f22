#!/usr/bin/env bash
# t_install: `make install` into a scratch PREFIX: the versioned library
# with its soname link and development link (both builds), the archives,
# ebb.h and ebb.pc; a program built with `pkg-config --cflags --libs ebb`
# runs with no further step and allocates from the installed ebb; the
# README's `cc app.c -Lbuild -Wl,-rpath,$PWD/build -lebb` runs too;
# `make uninstall` leaves nothing behind.  (LDCONFIG= : the test must not
# touch the machine's loader cache.)
set -u
cd "$(dirname "$0")/.."
command -v pkg-config >/dev/null || { echo "skipped: pkg-config missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

make -s install PREFIX="$prefix" LDCONFIG= >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
for lib in libebb libebb-secure; do
  check "$lib.so.$version installed" "[ -f $prefix/lib/$lib.so.$version ] && [ ! -L $prefix/lib/$lib.so.$version ]"
  check "$lib.so.0 -> $lib.so.$version" "[ \"\$(readlink $prefix/lib/$lib.so.0)\" = $lib.so.$version ]"
  check "$lib.so -> $lib.so.0" "[ \"\$(readlink $prefix/lib/$lib.so)\" = $lib.so.0 ]"
  check "$lib soname $lib.so.0" "readelf -d $prefix/lib/$lib.so.$version | grep -q 'SONAME.*\[$lib.so.0\]'"
  check "$lib.a installed" "[ -f $prefix/lib/$lib.a ]"
done
check "ebb.h, ebb.pc installed" "[ -f $prefix/include/ebb.h ] && [ -f $prefix/lib/pkgconfig/ebb.pc ]"

cat >"$tmp/app.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ebb.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  void *p = malloc(100);
  Dl_info info;
  if (!p || !dladdr((void *)malloc, &info) || !info.dli_fname) return 1;
  printf("ebb %s, malloc from %s\n", ebb_version(), info.dli_fname);
  free(p);
  return 0;
}
C
flags=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs ebb)
check "built with pkg-config ($flags)" "cc $tmp/app.c $flags -ldl -o $tmp/app"
out=$(env -u LD_LIBRARY_PATH "$tmp/app" 2>&1)
check "runs with no further step: $out" "[[ \"\$out\" == *'malloc from $prefix/lib/libebb.so.0'* ]]"
check "the README's link line" "cc -Iinclude $tmp/app.c -Lbuild -Wl,-rpath,$PWD/build -lebb -ldl -o $tmp/app2 && $tmp/app2 | grep -q 'malloc from $PWD/build/libebb.so.0'"

make -s uninstall PREFIX="$prefix" >/dev/null 2>&1
left=$(find "$prefix" -type f -o -type l | wc -l)
check "uninstall leaves no file ($left)" "[ $left = 0 ]"
[ $fail -eq 0 ] && echo "t_install: ok"
exit $fail
