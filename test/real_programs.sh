#!/usr/bin/env bash
# Real programs with ebb preloaded (LD_PRELOAD=build/libebb.so): each one's
# output (stdout, stderr and exit status) must be byte-for-byte what it is
# without ebb.  Programs: /bin/true, ls, bash, python3 (allocation-heavy
# script, with and without pymalloc, with threads), sort (a generated ~60 MB
# file, one thread and --parallel=2), gcc -O2 (a generated C file and one of
# our tests; objects and executables compared), xz -T2 and zstd -T2.
# Also proves ebb is really in use (python finds malloc inside libebb.so's
# mapping; ld.so did not refuse to preload it).
# Needs: python3, gcc, xz-utils (zstd optional); each part is skipped with a
# note if its program is missing.
set -u
EBB_ROOT=${EBB_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LIB=${EBB_LIB:-$EBB_ROOT/build/libebb.so}  # EBB_LIB: another build to try
if [ ! -f "$LIB" ]; then
  echo "FAIL: $LIB not built"
  exit 1
fi
export LC_ALL=C
tmp=$(mktemp -d /tmp/ebb_real.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
per_cmd_timeout=${EBB_REAL_TIMEOUT:-60}

note() { printf '%s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

# same NAME CMD...: run CMD (through bash -c if it is one string with shell
# syntax) without and with ebb; stdout, stderr and exit status must match.
same() {
  local name=$1
  shift
  local t0 t1 t2 rc_ref rc_ebb
  t0=$(date +%s.%N)
  timeout "$per_cmd_timeout" env -u LD_PRELOAD "$@" >"$tmp/$name.out.ref" 2>"$tmp/$name.err.ref"
  rc_ref=$?
  t1=$(date +%s.%N)
  timeout "$per_cmd_timeout" env LD_PRELOAD="$LIB" "$@" >"$tmp/$name.out.ebb" 2>"$tmp/$name.err.ebb"
  rc_ebb=$?
  t2=$(date +%s.%N)
  local ok=1
  if grep -q 'cannot be preloaded' "$tmp/$name.err.ebb"; then
    fail "$name: ld.so did not preload $LIB:"
    head -n 3 "$tmp/$name.err.ebb"
    return
  fi
  if [ "$rc_ebb" -ne "$rc_ref" ]; then
    fail "$name: exit status $rc_ebb with ebb, $rc_ref without$([ "$rc_ebb" -eq 124 ] && echo ' (timed out)')"
    ok=0
  fi
  if ! cmp -s "$tmp/$name.out.ref" "$tmp/$name.out.ebb"; then
    fail "$name: stdout differs with ebb ($(wc -c <"$tmp/$name.out.ebb") bytes vs $(wc -c <"$tmp/$name.out.ref"))"
    diff "$tmp/$name.out.ref" "$tmp/$name.out.ebb" 2>/dev/null | head -n 10
    ok=0
  fi
  if ! cmp -s "$tmp/$name.err.ref" "$tmp/$name.err.ebb"; then
    fail "$name: stderr differs with ebb"
    diff "$tmp/$name.err.ref" "$tmp/$name.err.ebb" | head -n 10
    ok=0
  fi
  if [ "$rc_ref" -ne 0 ]; then
    fail "$name: fails even without ebb (exit $rc_ref):"
    head -n 5 "$tmp/$name.err.ref"
    ok=0
  fi
  [ $ok -eq 1 ] && printf 'ok    %-24s glibc %5.1fs   ebb %5.1fs\n' "$name" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
}

# ---- is ebb really in use? ----------------------------------------------
maps=$(LD_PRELOAD="$LIB" cat /proc/self/maps 2>"$tmp/maps.err")
if ! grep -q ' /.*/libebb\.so$' <<<"$maps"; then
  fail "LD_PRELOAD=$LIB cat /proc/self/maps does not map libebb.so:"
  head -n 3 "$tmp/maps.err"
  echo "$failures failure(s)"
  exit 1
fi
note "ok    libebb.so is mapped in a preloaded process"

# ---- trivial programs -----------------------------------------------------
same true /bin/true
same ls ls -la --time-style=full-iso /usr/lib
same bash bash -c 'declare -A a; for i in $(seq 1 20000); do a[k$i]=$i$i; s+=$i; done
  for i in $(seq 1 2 20000); do unset "a[k$i]"; done; echo ${#a[@]} ${#s}; echo "${a[k20000]}"'

# ---- python ---------------------------------------------------------------
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ]; then
  note "SKIP  python3: not installed (apt-get install python3)"
else
  cat >"$tmp/alloc.py" <<'EOF'
# Allocation-heavy, deterministic; prints digests.  With EBB_TEST_EXPECT=1 it also
# asserts that malloc resolves into libebb.so (and with 0 that it does not).
import gc, hashlib, json, os, random, sys, threading

def check_allocator():
    want = os.environ.get("EBB_TEST_EXPECT")
    paths = [l.split()[-1] for l in open("/proc/self/maps") if l.rstrip().endswith("/libebb.so")]
    mapped = bool(paths)
    if want == "0":
        if mapped:
            sys.exit("libebb.so is mapped without LD_PRELOAD")
        return
    if not mapped:
        sys.exit("libebb.so is not mapped")
    # python's own malloc calls must reach ebb: ebb_usable_size accepts the
    # pointer (it aborts on a pointer that ebb did not hand out)
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    ebb = ctypes.CDLL(paths[0])  # the preloaded one, already loaded
    ebb.ebb_usable_size.restype = ctypes.c_size_t
    ebb.ebb_usable_size.argtypes = [ctypes.c_void_p]
    for n in (24, 5000, 300000, 5000000):
        p = libc.malloc(n)
        if not p or ebb.ebb_usable_size(p) < n:
            sys.exit("malloc(%d) in python did not come from ebb" % n)
        libc.free(p)

def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]

def dicts(rng, n):
    d = {}
    for i in range(n):
        d["key%d_%d" % (i, rng.randrange(1 << 30))] = (i, str(i) * (i % 7), [i] * (i % 5))
    for k in list(d)[::2]:
        del d[k]
    for i in range(n // 2):
        d[i] = {"a": i, "b": [i, i + 1], "c": "x" * (i % 50)}
    return sorted((str(k), v) for k, v in d.items())[:: max(1, n // 1000)]

def lists(rng, n):
    a = [rng.random() for _ in range(n)]
    b = [str(x) for x in a]
    a.sort(); b.sort()
    nested = [[j for j in range(i % 100)] for i in range(n // 10)]
    flat = [x for l in nested for x in l]
    return (a[::1000], b[::1000], len(flat), sum(flat))

def strings(rng, n):
    s = ""
    for i in range(n):
        s += "line %d %s\n" % (i, "y" * (i % 30))   # grows in place: realloc
    words = s.split()
    t = "-".join(words).replace("line", "LINE").upper()
    ba = bytearray()
    for i in range(n):
        ba.extend(b"%d," % i)
    parts = [s[i:i + rng.randrange(1, 5000)] for i in range(0, len(s), 3000)]
    return (len(s), len(t), hashlib.sha256(t.encode()).hexdigest(), len(ba), sum(map(len, parts)))

def bigints():
    f = 1
    for i in range(2, 8000):
        f *= i
    p = 3 ** 150000
    q = pow(7, 10 ** 5, 10 ** 300 + 7)
    return (hex(f)[-64:], f.bit_length(), hex(p)[:64], p.bit_length(), q % 1000003)

def cycles(n):
    class Node:
        __slots__ = ("next", "data")
    total = 0
    for r in range(5):
        nodes = [Node() for _ in range(n)]
        for i, nd in enumerate(nodes):
            nd.next = nodes[(i * 7 + 1) % n]
            nd.data = [i] * (i % 10)
        total += sum(len(nd.data) for nd in nodes)
        del nodes
        total += gc.collect() > 0
    return total

def jsonwork(rng, n):
    obj = [{"id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 13)] * (i % 4),
            "v": rng.random()} for i in range(n)]
    s = json.dumps(obj, sort_keys=True)
    back = json.loads(s)
    return (len(s), hashlib.sha256(s.encode()).hexdigest()[:16], back[-1]["name"])

def worker(idx, n, out):
    rng = random.Random(1000 + idx)
    out[idx] = digest((dicts(rng, n), lists(rng, n), strings(rng, n // 2)))

def main():
    check_allocator()
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rng = random.Random(12345)
    n = 60000 * scale
    print("dicts", digest(dicts(rng, n)))
    print("lists", digest(lists(rng, n)))
    print("strings", digest(strings(rng, n)))
    print("bigints", digest(bigints()))
    print("cycles", cycles(20000 * scale))
    print("json", digest(jsonwork(rng, n // 2)))
    out = [None] * 4
    ts = [threading.Thread(target=worker, args=(i, n // 3, out)) for i in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("threads", out)

main()
EOF
  # EBB_TEST_EXPECT differs between the two runs only through the environment
  pyrun() { PYTHONHASHSEED=0 PYTHONMALLOC=$1 EBB_TEST_EXPECT=$([ -n "${LD_PRELOAD:-}" ] && echo 1 || echo 0) "$PY" "$tmp/alloc.py" 1; }
  export -f pyrun
  export PY tmp
  same python-malloc bash -c 'pyrun malloc'
  same python-pymalloc bash -c 'pyrun pymalloc'
fi

# ---- sort -------------------------------------------------------------------
# ~60 MB, deterministic (mawk's srand(1)/rand()); both runs sort the same file
awk 'BEGIN { srand(1); a = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (i = 0; i < 2000000; i++) {
    w = ""; l = 3 + int(rand() * 12);
    for (j = 0; j < l; j++) w = w substr(a, 1 + int(rand() * 52), 1);
    printf "%s %d %.6f\n", w, int(rand() * 1000000000), rand() } }' >"$tmp/big.txt"
note "      generated $(($(wc -c <"$tmp/big.txt") / 1000000)) MB for sort"
same sort-1 bash -c "sort -S 200M --parallel=1 '$tmp/big.txt' | sha256sum"
same sort-parallel2 bash -c "sort -S 200M --parallel=2 -t' ' -k2,2n -k1,1 '$tmp/big.txt' | sha256sum"
same sort-smallbuf bash -c "sort -S 8M --parallel=2 -T '$tmp' -k3,3 '$tmp/big.txt' | sha256sum"

# ---- gcc --------------------------------------------------------------------
if ! command -v gcc >/dev/null; then
  note "SKIP  gcc: not installed (apt-get install gcc)"
else
  awk 'BEGIN {
    print "#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>";
    print "struct s { int a; double b; char name[16]; struct s *next; };";
    for (f = 0; f < 250; f++) {
      printf "static unsigned f%d(unsigned x, struct s *p) {\n  unsigned r = x * %d + 1;\n", f, f * 2 + 3;
      printf "  for (int i = 0; i < (int)(x %% 17); i++) {\n    switch ((r + i) %% 12) {\n";
      for (c = 0; c < 12; c++)
        printf "    case %d: r = (r << %d) ^ (r >> 3) ^ %du; if (p) p->a += (int)r; break;\n", c, c % 7 + 1, f * 31 + c;
      printf "    }\n  }\n";
      if (f > 0) printf "  if (x & 1) r += f%d(x / 2, p);\n", f - 1;
      printf "  snprintf(p->name, sizeof p->name, \"f%d\");\n  p->b += r * 0.5;\n  return r ^ (unsigned)strlen(p->name);\n}\n", f;
    }
    print "int main(void) {\n  struct s st = {0, 0, \"\", 0};\n  unsigned acc = 0;";
    for (f = 0; f < 250; f++) printf "  acc += f%d(%du, &st);\n", f, f * 7919 + 13;
    print "  printf(\"%u %d %.1f %s\\n\", acc, st.a, st.b, st.name);\n  return 0;\n}";
  }' >"$tmp/gen.c"
  # compile + link; the object, the executable and its output must match
  gccrun() {
    local d=$tmp/gcc-$([ -n "${LD_PRELOAD:-}" ] && echo ebb || echo ref)
    mkdir -p "$d" &&
      gcc -O2 -c "$tmp/gen.c" -o "$d/gen.o" &&
      gcc -O2 "$d/gen.o" -o "$d/gen" &&
      gcc -std=gnu11 -D_GNU_SOURCE -O2 -g -pthread -Wall -Wextra -I"$EBB_ROOT/include" \
        -c "$EBB_ROOT/test/t_threads.c" -o "$d/t_threads.o" &&
      sha256sum <"$d/gen.o" && sha256sum <"$d/gen" && sha256sum <"$d/t_threads.o" &&
      env -u LD_PRELOAD "$d/gen"
  }
  export -f gccrun
  export EBB_ROOT
  same gcc bash -c gccrun
fi

# ---- threaded compressors ---------------------------------------------------------
head -c 8000000 "$tmp/big.txt" >"$tmp/xzin"
if command -v xz >/dev/null; then
  same xz-T2 bash -c "xz -T2 -1 -c '$tmp/xzin' >'$tmp/xzin.\$\$.xz' && sha256sum <'$tmp/xzin.\$\$.xz' &&
    xz -T2 -dc '$tmp/xzin.\$\$.xz' | cmp - '$tmp/xzin' && echo roundtrip-ok"
else
  note "SKIP  xz -T2: xz not installed (apt-get install xz-utils)"
fi
if command -v zstd >/dev/null; then
  same zstd-T2 bash -c "zstd -q -T2 -5 -c '$tmp/xzin' | tee '$tmp/zin.\$\$.zst' | sha256sum &&
    zstd -q -dc '$tmp/zin.\$\$.zst' | cmp - '$tmp/xzin' && echo roundtrip-ok"
else
  note "SKIP  zstd -T2: zstd not installed (optional: apt-get install zstd)"
fi

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all real programs gave the same output with ebb"
