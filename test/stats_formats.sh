#!/usr/bin/env bash
# The statistics' three text forms, read by real parsers: a small program
# (built here against build/libebb.so) allocates in 2 threads and, while
# they hold their blocks, writes ebb_stats_json() to one file,
# ebb_stats_prometheus() to another, and ebb_stats_print(1) to stdout.
#  - the JSON is parsed with python3's json module and its fields checked;
#  - the Prometheus text is parsed with the prometheus_client library's own
#    parser (Debian's python3-prometheus-client) and checked line by line
#    against the 0.0.4 grammar, which that lax parser does not enforce;
#  - the table must have its class rows and a VERDICT;
#  - EBB_SHOW_STATS=1 (and EBB_CONF=show_stats:1) print the table on stderr
#    at exit, and nothing is printed without it;
#  - EBB_SHOW_STATS_FILE puts it in a file instead ("%p": the pid), also
#    for ls, which closes stderr before it exits;
#  - EBB_STATS_INTERVAL prints lines with the pid and the Unix time in ms,
#    even for a program as small as sleep; with EBB_STATS_FILE, JSON lines
#    with "unix_ms" and "pid".
# Needs: cc, /usr/bin/python3 with python3-prometheus-client.
set -u
EBB_ROOT=${EBB_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LIB=$EBB_ROOT/build/libebb.so
PY=/usr/bin/python3 # Debian's python: the one python3-prometheus-client is for
if [ ! -f "$LIB" ]; then
  echo "FAIL: $LIB not built"
  exit 1
fi
if ! "$PY" -c 'import prometheus_client' 2>/dev/null; then
  echo "FAIL: $PY cannot import prometheus_client (apt-get install python3-prometheus-client)"
  exit 1
fi
tmp=$(mktemp -d /tmp/ebb_stats_formats.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

cat >"$tmp/prog.c" <<'EOF'
/* report JSON PROM: 2 threads allocate and wait while main writes the
 *   statistics; exit: allocate a little and return (for show_stats). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebb.h"

#define N 3000
static pthread_barrier_t ready, done;
static void *volatile escape[2]; /* the huge blocks are really used */

static void *worker(void *arg) {
  size_t id = (size_t)arg;
  void **keep = malloc(N * sizeof *keep);
  for (size_t i = 0; i < N; i++) {
    size_t n = i % 5 == 0 ? 48 : 16 + (i * 37 + id * 11) % 3000;
    keep[i] = malloc(n);
    memset(keep[i], 1, n);
  }
  size_t huge = ((size_t)3 << 20) + id * 4096;
  char *big = malloc(huge);
  memset(big, 2, huge);
  escape[id] = big;
  for (size_t i = 1; i < N; i += 3) { /* some free memory in the pages */
    if (i % 5 == 0) continue;           /* (keep every 48 B block) */
    free(keep[i]);
    keep[i] = NULL;
  }
  pthread_barrier_wait(&ready);
  pthread_barrier_wait(&done);
  for (size_t i = 0; i < N; i++) free(keep[i]);
  free(keep);
  free(big);
  return NULL;
}

static char json[1 << 20], prom[1 << 20];

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "exit") == 0) {
    void *p[100];
    for (int i = 0; i < 100; i++) p[i] = malloc(100 + (size_t)i * 10);
    for (int i = 0; i < 100; i += 2) free(p[i]);
    return 0;
  }
  if (argc != 4 || strcmp(argv[1], "report") != 0) return 2;
  FILE *fj = fopen(argv[2], "w"), *fp = fopen(argv[3], "w");
  if (!fj || !fp) return 3;
  pthread_barrier_init(&ready, NULL, 3);
  pthread_barrier_init(&done, NULL, 3);
  pthread_t t[2];
  for (size_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  pthread_barrier_wait(&ready);
  /* back to back, nothing allocating in between: the same numbers */
  size_t nj = ebb_stats_json(json, sizeof json);
  size_t np = ebb_stats_prometheus(prom, sizeof prom);
  ebb_stats_print(1);
  pthread_barrier_wait(&done);
  for (size_t i = 0; i < 2; i++) pthread_join(t[i], NULL);
  if (nj >= sizeof json || np >= sizeof prom || strlen(json) != nj || strlen(prom) != np)
    return 4;
  fputs(json, fj);
  fputc('\n', fj); /* a JSON line */
  fputs(prom, fp);
  return fclose(fj) || fclose(fp) ? 5 : 0;
}
EOF
# -fno-builtin-*: or the compiler may drop a malloc whose block is only
# written and freed (it did, for the huge blocks).
if ! ${CC:-cc} -std=gnu11 -O1 -pthread -Wall -Wextra -Werror -I"$EBB_ROOT/include" \
    -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
    "$tmp/prog.c" -o "$tmp/prog" -L"$EBB_ROOT/build" -Wl,-rpath,"$EBB_ROOT/build" -lebb; then
  echo "FAIL: cannot build the test program"
  exit 1
fi

# ---- the report ---------------------------------------------------------------
env -u EBB_SHOW_STATS -u EBB_CONF -u EBB_STATS_INTERVAL "$tmp/prog" report \
  "$tmp/stats.json" "$tmp/stats.prom" >"$tmp/table.txt" 2>"$tmp/report.err"
rc=$?
if [ $rc -ne 0 ]; then
  fail "the program exited with $rc"
  cat "$tmp/report.err"
  exit 1
fi
echo "--- ebb_stats_print(1):"
cat "$tmp/table.txt"

# ---- JSON -------------------------------------------------------------------------
echo "--- JSON ($(wc -c <"$tmp/stats.json") bytes)"
if ! "$PY" - "$tmp/stats.json" <<'EOF'; then
import json, sys
raw = open(sys.argv[1]).read()
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
check(raw.endswith('\n') and raw.count('\n') == 1, 'one JSON object on one line')
try:
    d = json.loads(raw)
except ValueError as e:
    print('FAIL: not JSON:', e)
    sys.exit(1)
fields = ['live_bytes', 'huge_requested_bytes', 'page_bytes', 'resident_bytes',
          'free_resident_bytes', 'retained_bytes', 'mapped_bytes', 'rss_bytes', 'memory_limit',
          'purged_bytes', 'allocs', 'frees', 'remote_frees', 'mmap_calls', 'munmap_calls',
          'purge_calls', 'purge_passes', 'threads', 'segments', 'huge_blocks', 'fragmentation',
          'classes']
for f in fields:
    check(f in d, 'field %s' % f)
for f in fields[:-2]:
    check(isinstance(d.get(f), int) and d.get(f, -1) >= 0, '%s is a count' % f)
if bad:
    print('FAIL:', '; '.join(bad))
    sys.exit(1)
check(d['live_bytes'] > 0, 'live_bytes > 0')
check(d['resident_bytes'] >= d['live_bytes'], 'resident_bytes >= live_bytes')
check(d['mapped_bytes'] >= d['resident_bytes'], 'mapped_bytes >= resident_bytes')
check(d['rss_bytes'] > 0, 'rss_bytes > 0')
check(d['threads'] >= 3, 'threads >= 3 (main and 2 workers)')
check(d['huge_blocks'] >= 2, 'huge_blocks >= 2')
check(d['allocs'] >= 2 * 3001, 'allocs >= what the workers did')
fr = d['fragmentation']
check(isinstance(fr, float) and 0 <= fr <= 1, 'fragmentation in 0..1')
if d['resident_bytes']:
    want = min(1.0, d['free_resident_bytes'] / d['resident_bytes'])
    check(abs(fr - want) < 1e-3, 'fragmentation %s = free_resident / resident (%.4f)' % (fr, want))
cls = d['classes']
check(isinstance(cls, list) and len(cls) > 0, 'classes non-empty')
cfields = ['class', 'block_size', 'pages', 'live_blocks', 'live_bytes', 'free_resident_bytes',
           'allocs', 'frees']
for c in cls:
    for f in cfields:
        check(isinstance(c.get(f), int), 'class %s: field %s' % (c.get('class'), f))
    check(any(c.get(f) for f in cfields[2:]), 'class %s listed but empty' % c.get('class'))
if not bad:
    idx = [c['class'] for c in cls]
    check(idx == sorted(set(idx)) and all(0 <= i < 122 for i in idx), 'class indexes ascending')
    check(sum(c['live_bytes'] for c in cls) == d['live_bytes'],
          "classes' live_bytes sum to live_bytes (threads were parked)")
    by_size = {c['block_size']: c for c in cls if c['class'] > 0}
    check(48 in by_size and by_size[48]['live_blocks'] >= 2 * 600, '48 B class holds >= 1200 blocks')
    huge = [c for c in cls if c['class'] == 0]
    check(len(huge) == 1 and huge[0]['block_size'] == 0 and huge[0]['live_blocks'] == d['huge_blocks'],
          'huge entry: class 0, block_size 0, live_blocks = huge_blocks')
if bad:
    print('FAIL:', '; '.join(bad))
    sys.exit(1)
print('JSON ok: live %d, resident %d, fragmentation %.4f, %d classes' %
      (d['live_bytes'], d['resident_bytes'], fr, len(cls)))
EOF
  fail "JSON"
fi

# ---- Prometheus ----------------------------------------------------------------------
echo "--- Prometheus text ($(wc -l <"$tmp/stats.prom") lines)"
if ! "$PY" - "$tmp/stats.prom" "$tmp/stats.json" <<'EOF'; then
import json, re, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
js = json.loads(open(sys.argv[2]).read())
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)

# 1. the 0.0.4 grammar, line by line (the parser below is lax)
NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r'^(%s)(\{%s(?:,%s)*\})? ([-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|NaN|Inf))$'
                    % (NAME, LABEL, LABEL))
check(text.endswith('\n'), 'text ends with a newline')
family, state, declared = None, 'sample', set()
for n, line in enumerate(text.split('\n')[:-1], 1):
    m = re.match(r'^# HELP (%s) (.+)$' % NAME, line)
    if m:
        check(state == 'sample', 'line %d: HELP where a TYPE was due' % n)
        check(m.group(1) not in declared, 'line %d: %s declared twice' % (n, m.group(1)))
        family = m.group(1)
        declared.add(family)
        state = 'type'
        continue
    m = re.match(r'^# TYPE (%s) (counter|gauge)$' % NAME, line)
    if m:
        check(state == 'type' and m.group(1) == family, 'line %d: TYPE without its HELP' % n)
        check((m.group(2) == 'counter') == family.endswith('_total'),
              'line %d: counters and only counters end in _total' % n)
        state = 'sample'
        continue
    m = SAMPLE.match(line)
    check(m is not None, 'line %d is not a sample: %r' % (n, line))
    if m:
        check(state == 'sample' and m.group(1) == family,
              'line %d: sample of %s outside its family %s' % (n, m.group(1), family))
    if len(bad) > 10:
        break
check(all(f.startswith('ebb_') for f in declared), 'metrics are named ebb_*')

# 2. the real parser
fams = {}
try:
    for f in text_string_to_metric_families(text):
        check(f.name not in fams, 'family %s twice' % f.name)
        fams[f.name] = f
        check(f.type in ('gauge', 'counter'), '%s: type %s (a stray sample?)' % (f.name, f.type))
        check(f.documentation != '', '%s: no HELP' % f.name)
        check(len(f.samples) > 0, '%s: no samples' % f.name)
except ValueError as e:
    check(False, 'prometheus_client cannot parse it: %s' % e)
def one(name, typ):
    f = fams.get(name)
    check(f is not None, 'no family %s' % name)
    if f is None:
        return None
    check(f.type == typ, '%s is a %s, want %s' % (name, f.type, typ))
    return f
gauges = ['ebb_live_bytes', 'ebb_resident_bytes', 'ebb_free_resident_bytes', 'ebb_retained_bytes',
          'ebb_mapped_bytes', 'ebb_rss_bytes', 'ebb_memory_limit_bytes', 'ebb_threads',
          'ebb_segments', 'ebb_huge_blocks']
counters = ['ebb_allocs', 'ebb_frees', 'ebb_remote_frees', 'ebb_purged_bytes', 'ebb_os_calls',
            'ebb_purge_passes']  # the parser drops _total from counter families
for g in gauges:
    f = one(g, 'gauge')
    if f:
        check(len(f.samples) == 1 and f.samples[0].name == g and f.samples[0].value >= 0,
              '%s: one sample' % g)
for c in counters:
    f = one(c, 'counter')
    if f:
        check(all(s.name == c + '_total' for s in f.samples), '%s: samples named %s_total' % (c, c))
live = fams.get('ebb_live_bytes')
if live:
    check(live.samples[0].value > 0, 'ebb_live_bytes > 0')
    check(live.samples[0].value == js['live_bytes'], 'ebb_live_bytes = JSON live_bytes')
allocs = fams.get('ebb_allocs')
if allocs:
    check(allocs.samples[0].value == js['allocs'], 'ebb_allocs_total = JSON allocs')
calls = fams.get('ebb_os_calls')
if calls:
    check(sorted(s.labels.get('call') for s in calls.samples) == ['mmap', 'munmap', 'purge'],
          'ebb_os_calls_total{call=mmap|munmap|purge}')
    check(dict((s.labels['call'], s.value) for s in calls.samples).get('mmap') == js['mmap_calls'],
          'mmap calls = JSON')
want_sizes = sorted('huge' if c['class'] == 0 else str(c['block_size']) for c in js['classes'])
for name, typ in [('ebb_class_live_bytes', 'gauge'), ('ebb_class_free_resident_bytes', 'gauge'),
                  ('ebb_class_pages', 'gauge'), ('ebb_class_allocs', 'counter')]:
    f = one(name, typ)
    if not f:
        continue
    sizes = [s.labels.get('size') for s in f.samples]
    check(all(s == 'huge' or (s or '').isdigit() for s in sizes), '%s: size labels' % name)
    check(len(sizes) == len(set(sizes)), '%s: a size twice' % name)
    check(sorted(sizes) == want_sizes, '%s: the classes of the JSON' % name)
    check('48' in sizes, '%s: the 48 B class' % name)
cl = fams.get('ebb_class_live_bytes')
if cl and live:
    check(sum(s.value for s in cl.samples) == live.samples[0].value,
          'ebb_class_live_bytes sum to ebb_live_bytes')
if bad:
    print('FAIL:', '\n  '.join(bad[:20]))
    sys.exit(1)
print('Prometheus ok: %d families, %d samples' % (len(fams), sum(len(f.samples) for f in fams.values())))
EOF
  fail "Prometheus text"
fi

# ---- the table ------------------------------------------------------------------------
grep -q '^VERDICT$' "$tmp/table.txt" || fail "the table has no VERDICT line"
grep -q '^  => ' "$tmp/table.txt" || fail "the verdict has no sentence"
grep -q '^size classes in use' "$tmp/table.txt" || fail "the table has no size class section"
grep -Eq '^ +[0-9]+ +48 B ' "$tmp/table.txt" || fail "the table has no row for the 48 B class"
grep -Eq '^ +0 +huge ' "$tmp/table.txt" || fail "the table has no row for huge blocks"
grep -Eq '^  live +[0-9.]+ (B|KiB|MiB|GiB)' "$tmp/table.txt" || fail "the table has no live bytes"
grep -q 'RSS not explained by ebb' "$tmp/table.txt" || fail "the verdict does not explain RSS"
[ -s "$tmp/report.err" ] && { fail "stderr not empty without show_stats:"; head -n 5 "$tmp/report.err"; }

# ---- show_stats at exit ----------------------------------------------------------------
for how in EBB_SHOW_STATS=1 EBB_CONF=show_stats:1; do
  env -u EBB_SHOW_STATS -u EBB_CONF -u EBB_STATS_INTERVAL "$how" "$tmp/prog" exit \
    >"$tmp/exit.out" 2>"$tmp/exit.err"
  rc=$?
  [ $rc -eq 0 ] || fail "$how: exit status $rc"
  if grep -q '^VERDICT$' "$tmp/exit.err" && grep -q '^size classes in use' "$tmp/exit.err"; then
    echo "$how: the table is on stderr at exit ($(wc -l <"$tmp/exit.err") lines)"
  else
    fail "$how: no statistics table on stderr at exit"
    head -n 5 "$tmp/exit.err"
  fi
  [ -s "$tmp/exit.out" ] && fail "$how: the table went to stdout"
done
env -u EBB_SHOW_STATS -u EBB_CONF -u EBB_STATS_INTERVAL "$tmp/prog" exit >"$tmp/exit.out" 2>"$tmp/exit.err"
[ -s "$tmp/exit.err" ] && fail "without show_stats, something was printed at exit: $(head -c 200 "$tmp/exit.err")"

# ---- stats_interval: periodic lines, each with its pid and Unix time ------------------
# (sleep allocates a few hundred bytes: the lines must come all the same)
env -u EBB_SHOW_STATS -u EBB_CONF -u EBB_STATS_FILE EBB_STATS_INTERVAL=200ms LD_PRELOAD="$LIB" \
  sleep 1.3 2>"$tmp/periodic.err"
python3 - "$tmp/periodic.err" text <<'PY' || fail "EBB_STATS_INTERVAL: periodic lines wrong (above)"
import re, sys, time
lines = [l for l in open(sys.argv[1]) if l.startswith("ebb: ")]
pat = re.compile(r"^ebb: pid=(\d+) unix_ms=(\d+) live [\d.]+ (B|KiB|MiB|GiB), resident ")
m = [pat.match(l) for l in lines]
ok = len(lines) >= 3 and all(m) and len({x.group(1) for x in m}) == 1
ts = [int(x.group(2)) for x in m] if all(m) else []
ok = ok and ts == sorted(ts) and abs(ts[-1] / 1000 - time.time()) < 60
print(f"EBB_STATS_INTERVAL=200ms, sleep 1.3: {len(lines)} lines, pid and unix_ms in each" if ok else lines)
sys.exit(0 if ok else 1)
PY
rm -f "$tmp/periodic.json"
env -u EBB_SHOW_STATS -u EBB_CONF EBB_STATS_INTERVAL=200ms EBB_STATS_FILE="$tmp/periodic.json" \
  LD_PRELOAD="$LIB" sleep 1.3 2>"$tmp/periodic.err"
python3 - "$tmp/periodic.json" <<'PY' || fail "EBB_STATS_FILE: JSON lines wrong (above)"
import json, sys, time
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = len(rows) >= 3 and all({"unix_ms", "pid", "live_bytes", "rss_bytes"} <= r.keys() for r in rows)
ok = ok and len({r["pid"] for r in rows}) == 1 and abs(rows[-1]["unix_ms"] / 1000 - time.time()) < 60
ok = ok and [r["unix_ms"] for r in rows] == sorted(r["unix_ms"] for r in rows)
print(f"EBB_STATS_FILE: {len(rows)} JSON lines, each with unix_ms and pid" if ok else rows[:2])
sys.exit(0 if ok else 1)
PY
[ -s "$tmp/periodic.err" ] && fail "EBB_STATS_FILE: something went to stderr: $(head -c 200 "$tmp/periodic.err")"

# ---- show_stats_file: the exit table to a file, %p the pid, stderr closed --------------
env -u EBB_SHOW_STATS -u EBB_CONF -u EBB_STATS_INTERVAL EBB_SHOW_STATS_FILE="$tmp/exit-table.%p" \
  "$tmp/prog" exit >"$tmp/exit.out" 2>"$tmp/exit.err"
table_files=("$tmp"/exit-table.[0-9]*)
if [ ${#table_files[@]} -eq 1 ] && [ -f "${table_files[0]}" ] && grep -q '^VERDICT$' "${table_files[0]}"; then
  echo "EBB_SHOW_STATS_FILE: the table is in ${table_files[0]##*/} ($(wc -l <"${table_files[0]}") lines)"
else
  fail "EBB_SHOW_STATS_FILE: no table in one file named by the pid (${table_files[*]})"
fi
[ -s "$tmp/exit.err" ] && fail "EBB_SHOW_STATS_FILE: something went to stderr: $(head -c 200 "$tmp/exit.err")"
# ls closes stderr before it exits: the table still reaches the file
env -u EBB_SHOW_STATS -u EBB_CONF EBB_SHOW_STATS_FILE="$tmp/ls-table" LD_PRELOAD="$LIB" \
  ls / >/dev/null 2>&1
grep -q '^VERDICT$' "$tmp/ls-table" 2>/dev/null && echo "EBB_SHOW_STATS_FILE with ls (stderr closed at exit): table written" \
  || fail "EBB_SHOW_STATS_FILE with ls: no table in the file"

if [ $failures -ne 0 ]; then
  echo "$failures failures"
  exit 1
fi
echo ok
