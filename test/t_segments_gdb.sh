#!/usr/bin/env bash
# bench/tools/segments.py, the gdb commands that show where ebb's memory
# is: a program (built here, build/libebb.so preloaded) allocates and
# writes 2000 blocks of 100 B, 24 of 20 KiB and 2 of 512 KiB, frees every
# other small one, and stops itself (SIGTRAP) under gdb, which then runs
# ebb-segments, ebb-pages and ebb-page-list.  Checks:
#  - both commands run (no Python error), and every segment line's slice
#    map has 64 slices, a header first;
#  - ebb-pages counts the blocks held: about 1000 x 112 B in small pages,
#    24 x 20 KiB in medium pages, 2 x 512 KiB in large ones (blocks are
#    rounded up to their class), each within the resident bytes it shows;
#  - the total resident in segments covers those blocks;
#  - ebb-page-list lists the pages of the 100 B blocks' class (112 B) with
#    about 1000 blocks in use between them, none in use beyond what it
#    carved, nor carved beyond what fits, and, for "medium", only the
#    medium holder's pages, 24 blocks of 20 KiB in all.
# Needs: cc, gdb, python3 in gdb.
set -u
EBB_ROOT=${EBB_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LIB=$EBB_ROOT/build/libebb.so
TOOL=$EBB_ROOT/bench/tools/segments.py
[ -f "$LIB" ] || { echo "FAIL: $LIB not built"; exit 1; }
command -v gdb >/dev/null || { echo "FAIL: gdb not installed (apt-get install gdb)"; exit 1; }
tmp=$(mktemp -d /tmp/ebb_segments_gdb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

cat >"$tmp/prog.c" <<'EOF'
#include <signal.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  static void *small[2000], *medium[24], *large[2];
  for (int i = 0; i < 2000; i++) memset(small[i] = malloc(100), 1, 100);
  for (int i = 0; i < 24; i++) memset(medium[i] = malloc(20 << 10), 2, 20 << 10);
  for (int i = 0; i < 2; i++) memset(large[i] = malloc(512 << 10), 3, 512 << 10);
  for (int i = 0; i < 2000; i += 2) free(small[i]);
  raise(SIGTRAP); /* gdb looks here */
  return 0;
}
EOF
cc -O1 -o "$tmp/prog" "$tmp/prog.c" || { echo "FAIL: cannot build the program"; exit 1; }

gdb -nx -batch -ex "set disable-randomization off" -ex "set environment LD_PRELOAD=$LIB" -ex run \
    -ex "source $TOOL" -ex ebb-segments -ex ebb-pages -ex "echo ==list-all\n" -ex ebb-page-list \
    -ex "echo ==list-medium\n" -ex "ebb-page-list medium" -ex kill "$tmp/prog" >"$tmp/out" 2>&1
if grep -qE "Python Exception|Error occurred|Undefined command|No symbol" "$tmp/out"; then
  fail "the commands failed:"
  grep -E "Python Exception|Error|Undefined|No symbol" "$tmp/out" | head -5
fi

/usr/bin/python3 - "$tmp/out" <<'EOF' || failures=$((failures + 1))
import re, sys
out = open(sys.argv[1]).read()
bad = []
maps = re.findall(r"^0x[0-9a-f]+ +\S+ +resident +\d+ KiB +free slices +\d+ KiB +(\S+)$", out, re.M)
if not maps:
    bad.append("no segment line")
for m in maps:
    if len(m) != 64 or m[0] != "H" or set(m[1:]) - set("Uud."):
        bad.append("slice map %r: not 64 slices with a header first" % m)
total = re.search(r"^total: (\d+) KiB resident in segments, (\d+) KiB of it in free slices$", out, re.M)
rows = {(w, k): (int(p), int(s), int(u), int(r)) for w, k, p, s, u, r in
        re.findall(r"^(\S+) +(small|medium|large|lent \S+) +(\d+) +(\d+) +(\d+) +(\d+) +\d+%$", out, re.M)}
used = {}
for (who, kind), (pages, slices, u, r) in rows.items():
    if u > r:
        bad.append("%s %s: %d KiB used but %d KiB resident" % (who, kind, u, r))
    used[kind.split()[-1]] = used.get(kind.split()[-1], 0) + u
want = {"small": 1000 * 112 >> 10, "medium": 24 * 20, "large": 2 * 512}
for kind, kib in want.items():
    got = used.get(kind, 0)
    if not kib <= got <= kib + kib // 4 + 64:
        bad.append("%s blocks: %d KiB counted, want about %d" % (kind, got, kib))
if not total:
    bad.append("no total line")
elif int(total.group(1)) < sum(want.values()):
    bad.append("total resident %s KiB below the %d KiB of blocks" % (total.group(1), sum(want.values())))
line = re.compile(r"^(\S+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +[\d.]+ +(\d+) *(\S*)$", re.M)
def listed(part):
    text = out.split("==" + part + "\n", 1)[1] if "==" + part + "\n" in out else ""
    text = text.split("\n==", 1)[0]
    return [(o, int(b), int(u), int(c), int(f)) for o, _, _, b, u, c, f, _, _ in line.findall(text)]
every, medium = listed("list-all"), listed("list-medium")
if not every:
    bad.append("ebb-page-list printed no page")
for o, b, u, c, f in every:
    if u > c or c > f:
        bad.append("ebb-page-list: %s page of %d B blocks: %d used, %d carved, %d fit" % (o, b, u, c, f))
small_used = sum(u for o, b, u, c, f in every if b == 112)
if not 1000 <= small_used <= 1010:
    bad.append("ebb-page-list: %d blocks of 112 B in use, want 1000" % small_used)
if not medium or any(o != "medium" for o, *_ in medium):
    bad.append("ebb-page-list medium: %r" % medium[:3])
elif sum(u * b for o, b, u, c, f in medium if b == 20 << 10) != 24 * (20 << 10):
    bad.append("ebb-page-list medium: not 24 blocks of 20 KiB")
for b in bad:
    print("FAIL: " + b)
if not bad:
    print("segments.py: %d segments, pages %s" % (len(maps), used))
sys.exit(1 if bad else 0)
EOF

if [ $failures -ne 0 ]; then
  echo "--- gdb output"; tail -n 40 "$tmp/out"
  exit 1
fi
echo "PASS"
