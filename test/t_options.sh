#!/usr/bin/env bash
# Options from the environment, end to end: a tiny program linked with
# build/libebb.so prints ebb_option_get for every option; it is run with a
# clean environment (env -i) plus the EBB_* variables under test.  Checks:
# every EBB_* variable is honoured; EBB_CONF works (':' or '=', white space)
# and a variable named on its own wins over it; a bad value prints exactly
# one warning line naming the variable and the text, and the program still
# runs, exits 0 and gets the default; unknown EBB_* variables and unknown
# names inside EBB_CONF warn once each; EBB_TEST_* and EBB_ROOT are left
# alone; ebb_option_set works and never prints.
set -u
EBB_ROOT=${EBB_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
lib=$EBB_ROOT/build/libebb.so
if [ ! -f "$lib" ]; then
  echo "FAIL: $lib not built (make)"
  exit 1
fi
tmp=$(mktemp -d /tmp/ebb_t_options.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

# ---- the probe ---------------------------------------------------------------
cat >"$tmp/probe.c" <<'EOF'
/* Prints "name=value" (ebb_option_get) for each argument; an argument
 * "set:name=value" calls ebb_option_set and prints "set name rc". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ebb.h"

int main(int argc, char **argv) {
  char *p = malloc(100);
  if (p == NULL) return 2;
  memset(p, 1, 100);
  if (ebb_usable_size(p) < 100) return 3; /* aborts unless p is ebb's */
  free(p);
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "set:", 4) == 0) {
      char *name = argv[i] + 4, *eq = strchr(name, '=');
      if (eq == NULL) return 4;
      *eq = 0;
      printf("set %s %d\n", name, ebb_option_set(name, eq + 1));
      continue;
    }
    errno = 0;
    long long v = ebb_option_get(argv[i]);
    printf("%s=%lld%s\n", argv[i], v, v == -1 && errno == EINVAL ? " EINVAL" : "");
  }
  return 0;
}
EOF
probe=$tmp/probe
if ! ${CC:-cc} -std=gnu11 -O1 -Wall -Wextra -Werror -I"$EBB_ROOT/include" "$tmp/probe.c" -o "$probe" \
     -L"$EBB_ROOT/build" -Wl,-rpath,"$EBB_ROOT/build" -lebb; then
  echo "FAIL: could not build the probe"
  exit 1
fi

names=(decay_ms stats_interval memory_limit madv_free hard_limit background show_stats verbose
       stats_file show_stats_file cgroup_path)
declare -A default=([decay_ms]=250 [stats_interval]=0 [memory_limit]=0 [madv_free]=0
                    [hard_limit]=0 [background]=1 [show_stats]=0 [verbose]=0 [stats_file]=0
                    [show_stats_file]=0 [cgroup_path]=0)

# run DESC [VAR=value...] [-- extra probe arguments]: the probe with only
# these variables (and PATH); sets $out, $err, $rc
run() {
  desc=$1
  shift
  local vars=() extra=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; extra=("$@"); break; fi
    vars+=("$1")
    shift
  done
  env -i PATH="$PATH" "${vars[@]}" "$probe" "${names[@]}" "${extra[@]}" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  if [ $rc -ne 0 ]; then
    fail "$desc: probe exited $rc; stderr:"
    sed 's/^/    /' "$tmp/err" | head -n 5
  fi
}

# value NAME WANT: the last run printed NAME=WANT
value() {
  local got
  got=$(grep -m1 "^$1=" <<<"$out" | cut -d= -f2-)
  [ "$got" = "$2" ] || fail "$desc: $1 is '$got', want '$2'"
}

# defaults_except NAME...: every other option has its default
defaults_except() {
  local n skip
  for n in "${names[@]}"; do
    skip=0
    for s in "$@"; do [ "$n" = "$s" ] && skip=1; done
    [ $skip -eq 1 ] || value "$n" "${default[$n]}"
  done
}

# no_warnings: stderr holds no warning
no_warnings() {
  if grep -q 'warning' <<<"$err"; then
    fail "$desc: unexpected warning:"
    sed 's/^/    /' <<<"$err" | head -n 5
  fi
}

# no_option_warnings: no warning about an option or variable (verbose runs:
# ebb may report other things, such as the limit found, as warning lines)
no_option_warnings() {
  if grep -q '^ebb: warning: .*EBB_' <<<"$err"; then
    fail "$desc: unexpected warning:"
    sed 's/^/    /' <<<"$err" | head -n 5
  fi
}

# warnings N TEXT...: stderr is exactly N lines, each an ebb warning, and
# holds every TEXT (fixed strings)
warnings() {
  local want=$1 lines t
  shift
  lines=$(grep -c '' "$tmp/err")
  if [ "$lines" -ne "$want" ]; then
    fail "$desc: $lines line(s) on stderr, want $want:"
    sed 's/^/    /' "$tmp/err" | head -n 5
    return
  fi
  if grep -qv '^ebb: warning: ' "$tmp/err"; then
    fail "$desc: a stderr line is not an ebb warning:"
    sed 's/^/    /' "$tmp/err" | head -n 5
  fi
  for t in "$@"; do
    grep -qF -- "$t" "$tmp/err" || fail "$desc: the warning does not contain '$t': $err"
  done
}

# ---- defaults ------------------------------------------------------------------
run "no variables"
defaults_except
warnings 0
run "unknown names" -- no_such_option ""
value no_such_option "-1 EINVAL"

# ---- each variable on its own --------------------------------------------------
printf 'max\n' >"$tmp/limit"
# var value option expected
while read -r var val opt want; do
  [ -n "$var" ] || continue
  [ "$val" = "@tmp" ] && val=$tmp/limit
  run "$var=$val" "$var=$val"
  value "$opt" "$want"
  defaults_except "$opt"
  if [ "$var" = EBB_VERBOSE ]; then no_option_warnings; else no_warnings; fi
done <<EOF
EBB_DECAY_MS 100 decay_ms 100
EBB_DECAY_MS 10s decay_ms 10000
EBB_DECAY_MS 250ms decay_ms 250
EBB_DECAY_MS 1m decay_ms 60000
EBB_DECAY_MS 0 decay_ms 0
EBB_DECAY_MS -1 decay_ms -1
EBB_STATS_INTERVAL 1m stats_interval 60000
EBB_STATS_INTERVAL 30s stats_interval 30000
EBB_MEMORY_LIMIT 512M memory_limit 536870912
EBB_MEMORY_LIMIT 2G memory_limit 2147483648
EBB_MEMORY_LIMIT 64k memory_limit 65536
EBB_MEMORY_LIMIT 1024 memory_limit 1024
EBB_MEMORY_LIMIT 3GiB memory_limit 3221225472
EBB_MADV_FREE 1 madv_free 1
EBB_MADV_FREE yes madv_free 1
EBB_HARD_LIMIT on hard_limit 1
EBB_HARD_LIMIT true hard_limit 1
EBB_BACKGROUND 0 background 0
EBB_BACKGROUND off background 0
EBB_BACKGROUND no background 0
EBB_SHOW_STATS 1 show_stats 1
EBB_VERBOSE 1 verbose 1
EBB_STATS_FILE @tmp stats_file 1
EBB_SHOW_STATS_FILE @tmp show_stats_file 1
EBB_CGROUP_PATH @tmp cgroup_path 1
EOF
# verbose lists the options in effect
run "EBB_VERBOSE=1 lists options" EBB_VERBOSE=1 EBB_DECAY_MS=1234
grep -q 'decay_ms=1234' <<<"$err" || fail "$desc: no 'decay_ms=1234' on stderr: $err"
no_option_warnings
# the setuid-style secure mode is not tested (needs privileges)

# ---- EBB_CONF ------------------------------------------------------------------
run "EBB_CONF" "EBB_CONF= decay_ms : 100 , madv_free=1,memory_limit = 2G ,stats_interval:10s,,"
value decay_ms 100
value madv_free 1
value memory_limit 2147483648
value stats_interval 10000
defaults_except decay_ms madv_free memory_limit stats_interval
no_warnings
run "EBB_CONF strings" "EBB_CONF=stats_file:$tmp/stats.json,cgroup_path=$tmp/limit"
value stats_file 1
value cgroup_path 1
no_warnings
run "variable wins over EBB_CONF" EBB_CONF=decay_ms:100,background=0 EBB_DECAY_MS=300
value decay_ms 300
value background 0
no_warnings
run "EBB_CONF later pair wins" EBB_CONF=decay_ms:100,decay_ms:200
value decay_ms 200
no_warnings

# ---- bad values: one warning line, the default, exit 0 -------------------------
long=$(printf 'x%.0s' $(seq 1 300))
while read -r var val opt; do
  [ -n "$var" ] || continue
  [ "$val" = "@long" ] && val=/$long
  run "$var=$val" "$var=$val"
  defaults_except
  warnings 1 "$var" "\"${val:0:40}"
done <<EOF
EBB_DECAY_MS abc decay_ms
EBB_DECAY_MS -2 decay_ms
EBB_DECAY_MS 1h decay_ms
EBB_STATS_INTERVAL 5x stats_interval
EBB_STATS_INTERVAL -1 stats_interval
EBB_MEMORY_LIMIT 12Q memory_limit
EBB_MEMORY_LIMIT 99999999999T memory_limit
EBB_MEMORY_LIMIT 18446744073709551616 memory_limit
EBB_MEMORY_LIMIT -5 memory_limit
EBB_MEMORY_LIMIT 1.5G memory_limit
EBB_MADV_FREE maybe madv_free
EBB_HARD_LIMIT 2 hard_limit
EBB_BACKGROUND nope background
EBB_SHOW_STATS yess show_stats
EBB_VERBOSE x verbose
EBB_STATS_FILE @long stats_file
EBB_SHOW_STATS_FILE @long show_stats_file
EBB_CGROUP_PATH @long cgroup_path
EOF
run "empty value" EBB_DECAY_MS=
defaults_except
warnings 1 EBB_DECAY_MS
run "warning names the value used" EBB_DECAY_MS=abc
warnings 1 EBB_DECAY_MS '"abc"' 250
run "newline in a bad value" "EBB_DECAY_MS=1
2"
defaults_except
warnings 1 EBB_DECAY_MS

# ---- unknown variables and names -----------------------------------------------
run "EBB_FOO" EBB_FOO=1
defaults_except
warnings 1 EBB_FOO
run "EBB_decay_ms" EBB_decay_ms=5
defaults_except
warnings 1 EBB_decay_ms EBB_DECAY_MS
run "EBB_ alone" EBB_=1
warnings 1 EBB_
run "unknown name in EBB_CONF" EBB_CONF=decay_ms:100,bogus:1
value decay_ms 100
defaults_except decay_ms
warnings 1 EBB_CONF bogus
run "bad value in EBB_CONF" EBB_CONF=decay_ms=abc,verbose:0
defaults_except
warnings 1 EBB_CONF decay_ms '"abc"'
run "pair without a value in EBB_CONF" EBB_CONF=decay_ms
defaults_except
warnings 1 EBB_CONF decay_ms
run "bad EBB_CONF value, variable set" EBB_CONF=decay_ms:abc EBB_DECAY_MS=300
value decay_ms 300
warnings 1 EBB_CONF '"abc"' '300 ms'
run "two problems, one warning each" EBB_FOO=1 EBB_DECAY_MS=abc EBB_CONF=bogus:1
defaults_except
warnings 3 EBB_FOO EBB_DECAY_MS bogus
run "test and build variables are left alone" EBB_TEST_ANYTHING=1 EBB_ROOT=/x EBB_TEST_SCALE=small
defaults_except
warnings 0

# ---- ebb_option_set ------------------------------------------------------------
run "ebb_option_set" EBB_DECAY_MS=300 -- set:decay_ms=5s decay_ms set:decay_ms=abc \
  set:memory_limit=99999999999T set:nothing=1 set:madv_free=on
grep -qx 'set decay_ms 0' <<<"$out" || fail "$desc: set decay_ms=5s did not return 0: $out"
grep -qx 'decay_ms=5000' <<<"$out" || fail "$desc: decay_ms is not 5000 after the set: $out"
grep -qx 'set decay_ms 22' <<<"$out" || fail "$desc: set decay_ms=abc did not return EINVAL: $out"
grep -qx 'set memory_limit 22' <<<"$out" || fail "$desc: set memory_limit=99999999999T did not return EINVAL: $out"
grep -qx 'set nothing 22' <<<"$out" || fail "$desc: set of an unknown name did not return EINVAL: $out"
grep -qx 'set madv_free 0' <<<"$out" || fail "$desc: set madv_free=on did not return 0: $out"
warnings 0

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo ok
