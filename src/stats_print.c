/* ebb's statistics as text, from one snapshot filled by ebb_stats_get:
 * the table a person reads, with a verdict (ebb_stats_print), one JSON
 * object (ebb_stats_json) and Prometheus text exposition format 0.0.4
 * (ebb_stats_prometheus).
 *
 * The table is printed at process exit and from the background thread, so
 * nothing here allocates or touches stdio: text is formatted in small pieces
 * with snprintf into a stack buffer and written with write(2).  Fractions
 * are printed with integer arithmetic, never with %f, so a program's
 * setlocale cannot turn "0.25" into "0,25" in the JSON.  The snapshot
 * (about 7 KiB) lives on the stack of the exported functions, once. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h> /* snprintf only */
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "stats_format.h"

/* ---- a sink: a caller's buffer (snprintf's contract) or a file descriptor */
typedef struct sink {
  char *buf;    /* the caller's buffer, or the staging buffer for fd */
  size_t cap;   /* its size */
  size_t total; /* bytes produced so far: what the whole text needs */
  size_t held;  /* fd: bytes staged in buf */
  int fd;       /* -1: buffer mode */
} sink_t;


static void sink_flush(sink_t *s) {
  if (s->fd >= 0 && s->held > 0) os_write_all(s->fd, s->buf, s->held);
  s->held = 0;
}

static void emit(sink_t *s, const char *p, size_t n) {
  if (s->fd >= 0) {
    if (s->held + n > s->cap) sink_flush(s);
    if (n > s->cap) {
      os_write_all(s->fd, p, n);
    } else {
      memcpy(s->buf + s->held, p, n);
      s->held += n;
    }
  } else if (s->cap > 0 && s->total < s->cap - 1) {
    size_t room = s->cap - 1 - s->total;
    memcpy(s->buf + s->total, p, n < room ? n : room);
  }
  s->total += n;
}

/* Append formatted text.  Each piece is short (at most one line of the
 * table); a longer one is cut, consistently for the length and the bytes. */
__attribute__((format(printf, 2, 3))) static void put(sink_t *s, const char *fmt, ...) {
  char line[320];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n <= 0) return;
  emit(s, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Write `text` in lines of at most `width` columns, broken at spaces but
 * never after a digit (a number stays with its unit): the first line starts
 * with `first`, the others with `indent`. */
static void put_wrapped(sink_t *s, const char *first, const char *indent, const char *text,
                        size_t width) {
  const char *lead = first;
  while (*text == ' ') text++;
  while (*text) {
    size_t room = width > strlen(lead) ? width - strlen(lead) : 1, n = strlen(text);
    if (n > room) {
      size_t cut = room;
      while (cut > 0 && (text[cut] != ' ' || (text[cut - 1] >= '0' && text[cut - 1] <= '9')))
        cut--;
      if (cut == 0) { /* one word longer than the line: break after it */
        cut = room;
        while (text[cut] && text[cut] != ' ') cut++;
      }
      n = cut;
    }
    emit(s, lead, strlen(lead));
    emit(s, text, n);
    emit(s, "\n", 1);
    text += n;
    while (*text == ' ') text++;
    lead = indent;
  }
}

static sink_t sink_buffer(char *buf, size_t size) {
  sink_t s = {buf, buf ? size : 0, 0, 0, -1};
  return s;
}

static size_t sink_finish(sink_t *s) {
  if (s->fd >= 0) {
    sink_flush(s);
  } else if (s->cap > 0) {
    s->buf[s->total < s->cap - 1 ? s->total : s->cap - 1] = '\0';
  }
  return s->total;
}

/* ---- numbers as text ------------------------------------------------------ */
static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

/* "512 B", "1.5 MiB": one decimal from KiB up. */
static const char *fmt_size(char out[24], unsigned long long v) {
  if (v < 1024) {
    snprintf(out, 24, "%llu B", v);
    return out;
  }
  unsigned u = 1;
  while (u < 6 && v >> (10 * (u + 1)) != 0) u++;
  unsigned long long unit = 1ull << (10 * u), whole = v >> (10 * u);
  double rest = (double)(v & (unit - 1)) / (double)unit;
  unsigned long long tenth = (unsigned long long)(rest * 10.0 + 0.5);
  if (tenth == 10) {
    whole++;
    tenth = 0;
    if (whole == 1024 && u < 6) {
      u++;
      whole = 1;
    }
  }
  snprintf(out, 24, "%llu.%llu %s", whole, tenth, units[u]);
  return out;
}

/* A block size exactly: "48 B", "1.25 KiB", "2 MiB" (classes above 128 B are
 * multiples of an eighth of a power of two, so three decimals are exact). */
static const char *fmt_block_size(char out[24], size_t v) {
  if (v == 0) return "huge";
  unsigned u = 0;
  while (u < 6 && v >> (10 * (u + 1)) != 0) u++;
  size_t unit = (size_t)1 << (10 * u), whole = v >> (10 * u), rest = v & (unit - 1);
  if (rest == 0) {
    snprintf(out, 24, "%zu %s", whole, units[u]);
  } else {
    unsigned long long thousandths = ((unsigned long long)rest * 1000 + unit / 2) / unit;
    char frac[8];
    snprintf(frac, sizeof frac, "%03llu", thousandths > 999 ? 999 : thousandths);
    size_t n = strlen(frac);
    while (n > 1 && frac[n - 1] == '0') frac[--n] = '\0';
    snprintf(out, 24, "%zu.%s %s", whole, frac, units[u]);
  }
  return out;
}

/* part / whole, 0 when whole is 0. */
static double ratio(unsigned long long part, unsigned long long whole) {
  return whole ? (double)part / (double)whole : 0.0;
}

/* "38.5%" (capped at 9999.9%). */
static const char *fmt_pct(char out[24], double r) {
  double pm = r * 1000.0 + 0.5;
  unsigned long long v = pm <= 0 ? 0 : pm >= 9999999.0 ? 9999999ull : (unsigned long long)pm;
  snprintf(out, 24, "%u.%u%%", (unsigned)(v / 10), (unsigned)(v % 10));
  return out;
}

/* free_resident_bytes / resident_bytes, within 0..1. */
static double fragmentation(const ebb_stats_t *st) {
  double f = ratio(st->free_resident_bytes, st->resident_bytes);
  return f > 1.0 ? 1.0 : f;
}

/* A number in 0..1 with four decimals, as JSON and Prometheus take it. */
static const char *fmt_unit_interval(char out[24], double r) {
  double x = r * 10000.0 + 0.5;
  unsigned long long v = x <= 0 ? 0 : x >= 10000.0 ? 10000ull : (unsigned long long)x;
  snprintf(out, 24, "%u.%04u", (unsigned)(v / 10000), (unsigned)(v % 10000));
  return out;
}

static bool class_in_use(const ebb_class_stats_t *c) {
  return c->pages || c->live_blocks || c->live_bytes || c->free_resident_bytes || c->allocs ||
         c->frees;
}

/* ---- the one-line summary ----------------------------------------------- */
static void write_line_summary(sink_t *s, const ebb_stats_t *st) {
  char a[24], b[24], c[24], d[24], p[24];
  put(s, "live %s, resident %s, free resident %s, rss %s, fragmentation %s",
      fmt_size(a, st->live_bytes), fmt_size(b, st->resident_bytes),
      fmt_size(c, st->free_resident_bytes), st->rss_bytes ? fmt_size(d, st->rss_bytes) : "unknown",
      fmt_pct(p, fragmentation(st)));
}

size_t stats_format_line(const ebb_stats_t *st, char *buf, size_t size) {
  sink_t s = sink_buffer(buf, size);
  put(&s, "ebb: ");
  write_line_summary(&s, st);
  return sink_finish(&s);
}

/* ---- JSON ------------------------------------------------------------------ */
static void write_json_fields(sink_t *s, const ebb_stats_t *st);
static void write_json(sink_t *s, const ebb_stats_t *st) {
  put(s, "{");
  write_json_fields(s, st);
}
static void write_json_fields(sink_t *s, const ebb_stats_t *st) {
  char f[24];
  put(s, "\"live_bytes\":%zu,\"huge_requested_bytes\":%zu,\"page_bytes\":%zu,", st->live_bytes,
      st->huge_requested_bytes, st->page_bytes);
  put(s, "\"resident_bytes\":%zu,\"free_resident_bytes\":%zu,\"retained_bytes\":%zu,",
      st->resident_bytes, st->free_resident_bytes, st->retained_bytes);
  put(s, "\"mapped_bytes\":%zu,\"rss_bytes\":%zu,\"memory_limit\":%zu,\"purged_bytes\":%llu,",
      st->mapped_bytes, st->rss_bytes, st->memory_limit, st->purged_bytes);
  put(s, "\"allocs\":%llu,\"frees\":%llu,\"remote_frees\":%llu,", st->allocs, st->frees,
      st->remote_frees);
  put(s, "\"mmap_calls\":%llu,\"munmap_calls\":%llu,\"purge_calls\":%llu,\"purge_passes\":%llu,",
      st->mmap_calls, st->munmap_calls, st->purge_calls, st->purge_passes);
  put(s, "\"threads\":%zu,\"segments\":%zu,\"huge_blocks\":%zu,\"fragmentation\":%s,", st->threads,
      st->segments, st->huge_blocks, fmt_unit_interval(f, fragmentation(st)));
  put(s, "\"classes\":[");
  bool first = true;
  for (unsigned i = 0; i < EBB_STATS_CLASSES; i++) {
    const ebb_class_stats_t *c = &st->classes[i];
    if (!class_in_use(c)) continue;
    put(s, "%s{\"class\":%u,\"block_size\":%zu,\"pages\":%zu,\"live_blocks\":%zu,",
        first ? "" : ",", i, c->block_size, c->pages, c->live_blocks);
    put(s, "\"live_bytes\":%zu,\"free_resident_bytes\":%zu,\"allocs\":%llu,\"frees\":%llu}",
        c->live_bytes, c->free_resident_bytes, c->allocs, c->frees);
    first = false;
  }
  put(s, "]}");
}

size_t stats_format_json(const ebb_stats_t *st, char *buf, size_t size) {
  sink_t s = sink_buffer(buf, size);
  write_json(&s, st);
  return sink_finish(&s);
}

size_t stats_format_periodic(const ebb_stats_t *st, bool json, long pid, unsigned long long unix_ms,
                             char *buf, size_t size) {
  sink_t s = sink_buffer(buf, size);
  if (json) {
    put(&s, "{\"unix_ms\":%llu,\"pid\":%ld,", unix_ms, pid);
    write_json_fields(&s, st);
  } else {
    put(&s, "ebb: pid=%ld unix_ms=%llu ", pid, unix_ms);
    write_line_summary(&s, st);
  }
  return sink_finish(&s);
}

/* ---- Prometheus text format 0.0.4 ---------------------------------------- */
static void prom_head(sink_t *s, const char *name, const char *type, const char *help) {
  put(s, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}
static void prom_gauge(sink_t *s, const char *name, const char *help, unsigned long long v) {
  prom_head(s, name, "gauge", help);
  put(s, "%s %llu\n", name, v);
}
static void prom_counter(sink_t *s, const char *name, const char *help, unsigned long long v) {
  prom_head(s, name, "counter", help);
  put(s, "%s %llu\n", name, v);
}

enum { CF_PAGES, CF_LIVE_BLOCKS, CF_LIVE_BYTES, CF_FREE_RESIDENT, CF_ALLOCS, CF_FREES };

/* One family with a sample per class in use, labelled by block size. */
static void prom_classes(sink_t *s, const ebb_stats_t *st, const char *name, const char *type,
                         const char *help, int field) {
  prom_head(s, name, type, help);
  for (unsigned i = 0; i < EBB_STATS_CLASSES; i++) {
    const ebb_class_stats_t *c = &st->classes[i];
    if (!class_in_use(c)) continue;
    unsigned long long v = 0;
    switch (field) {
    case CF_PAGES: v = c->pages; break;
    case CF_LIVE_BLOCKS: v = c->live_blocks; break;
    case CF_LIVE_BYTES: v = c->live_bytes; break;
    case CF_FREE_RESIDENT: v = c->free_resident_bytes; break;
    case CF_ALLOCS: v = c->allocs; break;
    default: v = c->frees; break;
    }
    if (i == 0) put(s, "%s{size=\"huge\"} %llu\n", name, v);
    else put(s, "%s{size=\"%zu\"} %llu\n", name, c->block_size, v);
  }
}

static void write_prometheus(sink_t *s, const ebb_stats_t *st) {
  char f[24];
  prom_gauge(s, "ebb_live_bytes", "Bytes in blocks handed out and not freed (usable size).",
             st->live_bytes);
  prom_gauge(s, "ebb_huge_requested_bytes", "Requested bytes of live huge blocks (own mappings: above 2 MiB, or grown by realloc).",
             st->huge_requested_bytes);
  prom_gauge(s, "ebb_page_bytes", "Bytes in pages that hold blocks.", st->page_bytes);
  prom_gauge(s, "ebb_resident_bytes", "ebb's estimate of its memory backed by RAM.",
             st->resident_bytes);
  prom_gauge(s, "ebb_free_resident_bytes",
             "Resident but free bytes: waiting for decay, or fragmentation.",
             st->free_resident_bytes);
  prom_gauge(s, "ebb_retained_bytes", "Bytes mapped but not resident: purged, or never written.",
             st->retained_bytes);
  prom_gauge(s, "ebb_mapped_bytes", "Address space ebb holds.", st->mapped_bytes);
  prom_gauge(s, "ebb_rss_bytes",
             "Resident set size of the whole process, from the OS (0: unknown).", st->rss_bytes);
  prom_gauge(s, "ebb_memory_limit_bytes", "The memory limit in effect (0: none).",
             st->memory_limit);
  prom_head(s, "ebb_fragmentation_ratio", "gauge",
            "Share of ebb's resident memory that is free (free_resident / resident).");
  put(s, "ebb_fragmentation_ratio %s\n", fmt_unit_interval(f, fragmentation(st)));
  prom_gauge(s, "ebb_threads", "Heaps of running threads.", st->threads);
  prom_gauge(s, "ebb_segments", "Segments (4 MiB) ebb holds.", st->segments);
  prom_gauge(s, "ebb_huge_blocks", "Live huge blocks.", st->huge_blocks);
  prom_counter(s, "ebb_allocs_total", "Allocations.", st->allocs);
  prom_counter(s, "ebb_frees_total", "Frees.", st->frees);
  prom_counter(s, "ebb_remote_frees_total", "Frees of blocks owned by another thread.",
               st->remote_frees);
  prom_counter(s, "ebb_purged_bytes_total", "Bytes given back to the OS.", st->purged_bytes);
  prom_head(s, "ebb_os_calls_total", "counter", "Calls into the OS, by call.");
  put(s, "ebb_os_calls_total{call=\"mmap\"} %llu\n", st->mmap_calls);
  put(s, "ebb_os_calls_total{call=\"munmap\"} %llu\n", st->munmap_calls);
  put(s, "ebb_os_calls_total{call=\"purge\"} %llu\n", st->purge_calls);
  prom_counter(s, "ebb_purge_passes_total", "Purge passes (decay, growth, limit or collect).",
               st->purge_passes);
  prom_classes(s, st, "ebb_class_pages", "gauge", "Pages of the size class in use.", CF_PAGES);
  prom_classes(s, st, "ebb_class_live_blocks", "gauge", "Live blocks of the size class.",
               CF_LIVE_BLOCKS);
  prom_classes(s, st, "ebb_class_live_bytes", "gauge", "Live bytes of the size class.",
               CF_LIVE_BYTES);
  prom_classes(s, st, "ebb_class_free_resident_bytes", "gauge",
               "Free but resident bytes in pages of the size class.", CF_FREE_RESIDENT);
  prom_classes(s, st, "ebb_class_allocs_total", "counter", "Allocations from the size class.",
               CF_ALLOCS);
  prom_classes(s, st, "ebb_class_frees_total", "counter", "Frees to the size class.", CF_FREES);
}

size_t stats_format_prometheus(const ebb_stats_t *st, char *buf, size_t size) {
  sink_t s = sink_buffer(buf, size);
  write_prometheus(&s, st);
  return sink_finish(&s);
}

/* ---- the table ------------------------------------------------------------ */
static void write_header(sink_t *s, const ebb_stats_t *st) {
  char a[24];
  put(s, "ebb %s statistics (pid %ld)\n", EBB_VERSION_STRING, (long)getpid());
  put(s, "memory\n");
  put(s, "  %-18s %12s   in blocks handed out and not freed\n", "live",
      fmt_size(a, st->live_bytes));
  put(s, "  %-18s %12s   ebb's estimate of its memory backed by RAM\n", "resident",
      fmt_size(a, st->resident_bytes));
  put(s, "  %-18s %12s   freed but still resident (waiting for decay, or fragmentation)\n",
      "free resident", fmt_size(a, st->free_resident_bytes));
  put(s, "  %-18s %12s   mapped, not resident: purged, or never written\n", "retained",
      fmt_size(a, st->retained_bytes));
  put(s, "  %-18s %12s   address space ebb holds\n", "mapped", fmt_size(a, st->mapped_bytes));
  put(s, "  %-18s %12s   the whole process, as the OS counts it\n", "process RSS",
      st->rss_bytes ? fmt_size(a, st->rss_bytes) : "unknown");
  put(s, "  %-18s %12s\n", "memory limit",
      st->memory_limit ? fmt_size(a, st->memory_limit) : "none");
  put(s, "  %-18s %12s   in pages that hold blocks\n", "page bytes", fmt_size(a, st->page_bytes));
  put(s, "  %-18s %12s   requested, of live huge blocks\n", "huge requested",
      fmt_size(a, st->huge_requested_bytes));
  put(s, "counts\n");
  put(s, "  %-14s %14llu   %-14s %14llu   %-14s %14llu\n", "allocs", st->allocs, "frees", st->frees,
      "remote frees", st->remote_frees);
  put(s, "  %-14s %14zu   %-14s %14zu   %-14s %14zu\n", "threads", st->threads, "segments",
      st->segments, "huge blocks", st->huge_blocks);
  put(s, "  %-14s %14llu   %-14s %14llu   %-14s %14llu\n", "mmap calls", st->mmap_calls,
      "munmap calls", st->munmap_calls, "purge calls", st->purge_calls);
  put(s, "  %-14s %14llu   %-14s %14s   (given back to the OS, ever)\n", "purge passes",
      st->purge_passes, "purged total", fmt_size(a, st->purged_bytes));
}

static void write_classes(sink_t *s, const ebb_stats_t *st) {
  char bs[24], lb[24], fr[24];
  put(s, "size classes in use\n");
  put(s, "  %5s %10s %8s %12s %12s %14s %14s %14s\n", "class", "block", "pages", "live blocks",
      "live bytes", "free resident", "allocs", "frees");
  unsigned shown = 0;
  for (unsigned i = 0; i < EBB_STATS_CLASSES; i++) {
    const ebb_class_stats_t *c = &st->classes[i];
    if (!class_in_use(c)) continue;
    put(s, "  %5u %10s %8zu %12zu %12s %14s %14llu %14llu\n", i,
        fmt_block_size(bs, i == 0 ? 0 : c->block_size), c->pages, c->live_blocks,
        fmt_size(lb, c->live_bytes), fmt_size(fr, c->free_resident_bytes), c->allocs, c->frees);
    shown++;
  }
  if (shown == 0) put(s, "  (none)\n");
}

/* The classes with the most free resident bytes, most first; returns how
 * many of `top` were filled (only classes holding some). */
static unsigned top_free_classes(const ebb_stats_t *st, unsigned top[3]) {
  unsigned n = 0;
  for (unsigned i = 0; i < EBB_STATS_CLASSES; i++) {
    size_t v = st->classes[i].free_resident_bytes;
    if (v == 0) continue;
    unsigned at = n < 3 ? n : 3;
    while (at > 0 && st->classes[top[at - 1]].free_resident_bytes < v) at--;
    if (at >= 3) continue;
    for (unsigned j = (n < 3 ? n : 2); j > at; j--) top[j] = top[j - 1];
    top[at] = i;
    if (n < 3) n++;
  }
  return n;
}

static const char *class_name(char out[24], const ebb_stats_t *st, unsigned i) {
  return fmt_block_size(out, i == 0 ? 0 : st->classes[i].block_size);
}

/* Below this much resident memory the verdict does not judge fragmentation:
 * a small program's one partly used page per class made "83.6%
 * fragmentation" of 1.9 MiB free in 2.3 MiB. */
#define EBB_VERDICT_SMALL_HEAP ((size_t)4 << 20)

/* The verdict.  Free resident memory is split three ways, because the
 * remedies differ: free blocks inside pages that still hold live blocks
 * (classes 1..: fragmentation, the program's allocation pattern), cached
 * huge mappings (class 0) and the rest (empty pages not yet purged, segment
 * headers), the last two going back to the OS by themselves with decay. */
static void write_verdict(sink_t *s, const ebb_stats_t *st) {
  char a[24], b[24], c[24], p[24], q[24];
  double frag = fragmentation(st);
  size_t in_pages = 0;
  unsigned worst = 0; /* the class (1..) with the most free blocks' bytes */
  for (unsigned i = 1; i < EBB_STATS_CLASSES; i++) {
    size_t v = st->classes[i].free_resident_bytes;
    in_pages += v;
    if (v > (worst ? st->classes[worst].free_resident_bytes : 0)) worst = i;
  }
  size_t cached = st->classes[0].free_resident_bytes;
  /* The denominator of the shares: the total, unless a snapshot taken while
   * threads run says less than its parts. */
  size_t free_total = st->free_resident_bytes;
  if (free_total < in_pages + cached) free_total = in_pages + cached;
  size_t elsewhere = free_total - in_pages - cached;
  size_t unexplained = st->rss_bytes > st->resident_bytes ? st->rss_bytes - st->resident_bytes : 0;

  put(s, "VERDICT\n");
  put(s, "  live %s = %s of ebb's resident %s; process RSS %s\n", fmt_size(a, st->live_bytes),
      fmt_pct(p, ratio(st->live_bytes, st->resident_bytes)), fmt_size(b, st->resident_bytes),
      st->rss_bytes ? fmt_size(c, st->rss_bytes) : "unknown");
  put(s, "  fragmentation share (free resident / resident): %s (%s free but resident)\n",
      fmt_pct(p, frag), fmt_size(a, st->free_resident_bytes));
  if (free_total > 0)
    put(s, "    free blocks in pages %s, cached huge mappings %s, empty pages and metadata %s\n",
        fmt_size(a, in_pages), fmt_size(b, cached), fmt_size(c, elsewhere));
  if (st->rss_bytes)
    put(s, "  RSS not explained by ebb: %s = %s of RSS (program code and data, stacks, other "
           "mappings)\n",
        fmt_size(a, unexplained), fmt_pct(p, ratio(unexplained, st->rss_bytes)));
  unsigned top[3];
  unsigned ntop = top_free_classes(st, top);
  if (ntop == 0) {
    put(s, "  no size class holds free resident memory\n");
  } else {
    put(s, "  size classes with the most free resident memory (share of all free resident):\n");
    for (unsigned k = 0; k < ntop; k++)
      put(s, "    %10s blocks %12s %8s%s\n", class_name(a, st, top[k]),
          fmt_size(b, st->classes[top[k]].free_resident_bytes),
          fmt_pct(p, ratio(st->classes[top[k]].free_resident_bytes, free_total)),
          top[k] == 0 ? "  (cached mappings)" : "");
  }

  /* With the heap profiler on: who holds it. */
  if (ebb_prof_rate() != 0) {
    char sites[1024];
    if (prof_top_sites(sites, sizeof sites, 3) > 0) {
      put(s, "  call sites holding the most live memory (heap profile estimates; ebb_prof_dump for all):\n");
      put(s, "%s", sites);
    }
  }

  /* The sentence, composed in a buffer and then wrapped. */
  long long decay = ebb_opt.decay_ms;
  char text[1024];
  sink_t whole = sink_buffer(text, sizeof text);
  sink_t *out = s;
  s = &whole;
  if (st->resident_bytes == 0) {
    put(s, "ebb holds no resident memory: all of the process's RSS is the program's own.");
  } else if (st->resident_bytes < EBB_VERDICT_SMALL_HEAP) {
    put(s, "ebb's heap is small (%s resident, %s of it free): each size class in use keeps a "
           "partly used page, so at this size the free share says nothing about fragmentation.",
        fmt_size(a, st->resident_bytes), fmt_size(b, st->free_resident_bytes));
  } else if (frag < 0.25) {
    put(s, "Most of ebb's resident memory is live (%s): if RSS keeps growing, the program holds "
           "more and more objects (a leak or an unbounded cache); it is not fragmentation.",
        fmt_pct(p, ratio(st->live_bytes, st->resident_bytes)));
  } else {
    put(s, "%s of ebb's resident memory (%s) is free but still resident: ", fmt_pct(p, frag),
        fmt_size(a, st->free_resident_bytes));
    bool blocks = in_pages >= cached + elsewhere;
    if (blocks) {
      put(s, "mostly free blocks in pages that also hold live ones: fragmentation");
      if (decay > 0)
        put(s, " (some of it may still go back to the OS once its decay of %lld ms has passed)",
            decay);
    } else if (decay < 0) {
      put(s, "mostly empty pages and cached huge mappings, kept because decay is off "
             "(decay_ms -1); malloc_trim(0) or ebb_collect(true) gives them back");
    } else if (decay == 0) {
      put(s, "mostly empty pages and cached huge mappings not given back yet (with decay_ms 0 "
             "that should not last)");
    } else {
      put(s, "mostly empty pages and cached huge mappings waiting for their decay of %lld ms: "
             "they go back to the OS by themselves (malloc_trim(0) gives them back at once)",
          decay);
    }
    /* Name the class where it matters: always for fragmentation, else when
     * free blocks in pages are a good part of the free memory. */
    if (worst && (blocks || ratio(in_pages, free_total) >= 0.25))
      put(s, "; the largest share %sis in size class %s (%s, %s of the free resident memory)",
          blocks ? "" : "of free blocks ", class_name(a, st, worst),
          fmt_size(b, st->classes[worst].free_resident_bytes),
          fmt_pct(q, ratio(st->classes[worst].free_resident_bytes, free_total)));
    put(s, ".");
  }
  if (st->rss_bytes && unexplained > st->resident_bytes)
    put(s, " Most of the RSS (%s) is outside ebb's heap: look at the program's own mappings "
           "(/proc/<pid>/smaps), not at malloc.",
        fmt_pct(p, ratio(unexplained, st->rss_bytes)));
  if (st->memory_limit && st->rss_bytes && ratio(st->rss_bytes, st->memory_limit) >= 0.9)
    put(s, " RSS is at %s of the memory limit (%s).",
        fmt_pct(p, ratio(st->rss_bytes, st->memory_limit)), fmt_size(a, st->memory_limit));
  sink_finish(&whole);
  put_wrapped(out, "  => ", "     ", text, 100);
}

void stats_write_table(const ebb_stats_t *st, int fd) {
  char stage[4096];
  sink_t s = {stage, sizeof stage, 0, 0, fd};
  write_header(&s, st);
  put(&s, "\n");
  write_classes(&s, st);
  put(&s, "\n");
  write_verdict(&s, st);
  sink_finish(&s);
}

/* ---- the exported functions ----------------------------------------------- */
EBB_EXPORT void ebb_stats_print(int fd) {
  int saved = errno;
  ebb_stats_t st;
  ebb_stats_get(&st);
  stats_write_table(&st, fd);
  errno = saved;
}

EBB_EXPORT size_t ebb_stats_json(char *buf, size_t size) {
  int saved = errno;
  ebb_stats_t st;
  ebb_stats_get(&st);
  size_t n = stats_format_json(&st, buf, size);
  errno = saved;
  return n;
}

EBB_EXPORT size_t ebb_stats_prometheus(char *buf, size_t size) {
  int saved = errno;
  ebb_stats_t st;
  ebb_stats_get(&st);
  size_t n = stats_format_prometheus(&st, buf, size);
  errno = saved;
  return n;
}
