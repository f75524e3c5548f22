/* The heap profiler's outputs: which call sites hold the memory.
 *
 * sample.c samples allocations and keeps, per call site, estimates of the
 * blocks and bytes it has live and has allocated in all.  This file turns
 * them into files a person and the usual tools read:
 *
 * - the gperftools heap-profile text format ("heap profile: ..."), one line
 *   per site with its live and total estimates and its return addresses,
 *   then the process's mappings (/proc/self/maps) under MAPPED_LIBRARIES,
 *   which is how google-pprof (Debian's google-perftools) symbolises them:
 *   `google-pprof --text PROGRAM FILE`, `--svg`, and `--base OLD` for what
 *   grew between two dumps.  The header says "heapprofile", so pprof takes
 *   the numbers as they are: they are scaled already, per sample (each by
 *   its own size's probability), which is exact where pprof's own scaling
 *   of a line by its mean size is not;
 * - collapsed stacks ("outer;...;inner bytes"), for flame graph tools,
 *   named with dladdr (a function the program does not export shows as
 *   module+offset; `google-pprof --collapsed` names every one).
 *
 * Dumps are made on demand (ebb_prof_dump), every prof_interval by the
 * purger thread, and at exit to prof_file.  Nothing here allocates: the
 * text goes through a stack buffer to write(2). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h> /* snprintf only, with integer formats: no allocation */
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define PROF_DEFAULT_RATE ((size_t)512 << 10)
#define PROF_DEFAULT_FILE "ebb.%p.heap"

/* ---- a buffered writer on a file descriptor ---------------------------------- */
typedef struct {
  int fd;
  size_t len;
  bool failed;
  char buf[4096];
} out_t;

static void out_flush(out_t *o) {
  if (o->len == 0) return;
  size_t off = 0;
  while (off < o->len) {
    ssize_t n = write(o->fd, o->buf + off, o->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      o->failed = true;
      break;
    }
    off += (size_t)n;
  }
  o->len = 0;
}

static void out_put(out_t *o, const char *s, size_t n) {
  while (n > 0) {
    if (o->len == sizeof o->buf) out_flush(o);
    size_t k = sizeof o->buf - o->len;
    if (k > n) k = n;
    memcpy(o->buf + o->len, s, k);
    o->len += k;
    s += k;
    n -= k;
  }
}

__attribute__((format(printf, 2, 3))) static void out_fmt(out_t *o, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0) out_put(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static unsigned long long round_est(double v) { return v <= 0 ? 0 : (unsigned long long)(v + 0.5); }

/* ---- the pprof heap profile ---------------------------------------------------- */
static void write_pprof(out_t *o, const ebb_sample_site_t *sites, size_t n) {
  double lc = 0, lb = 0, ac = 0, ab = 0;
  for (size_t i = 0; i < n; i++) {
    lc += sites[i].live_count;
    lb += sites[i].live_bytes;
    ac += sites[i].alloc_count;
    ab += sites[i].alloc_bytes;
  }
  out_fmt(o, "heap profile: %6llu: %8llu [%6llu: %8llu] @ heapprofile\n", round_est(lc),
          round_est(lb), round_est(ac), round_est(ab));
  for (size_t i = 0; i < n; i++) {
    const ebb_sample_site_t *s = &sites[i];
    if (s->depth == 0) continue;
    out_fmt(o, "%6llu: %8llu [%6llu: %8llu] @", round_est(s->live_count), round_est(s->live_bytes),
            round_est(s->alloc_count), round_est(s->alloc_bytes));
    for (uint32_t f = 0; f < s->depth; f++) out_fmt(o, " 0x%016llx", (unsigned long long)s->frames[f]);
    out_put(o, "\n", 1);
  }
  out_put(o, "\nMAPPED_LIBRARIES:\n", 19);
  int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (maps >= 0) {
    char chunk[4096];
    for (;;) {
      ssize_t got = read(maps, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      out_put(o, chunk, (size_t)got);
    }
    close(maps);
  }
}

/* ---- names, for the collapsed stacks and the verdict ---------------------------- */
static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* The frame's function as dladdr knows it, else its object and offset.
 * A return address points after the call: pc - 1 is inside it. */
static void frame_name(uintptr_t pc, char *out, size_t size, bool with_offset) {
  Dl_info info;
  if (dladdr((void *)(pc - 1), &info) != 0) {
    if (info.dli_sname != NULL && info.dli_saddr != NULL) {
      if (with_offset)
        snprintf(out, size, "%s+0x%llx", info.dli_sname, (unsigned long long)(pc - (uintptr_t)info.dli_saddr));
      else
        snprintf(out, size, "%s", info.dli_sname);
      return;
    }
    if (info.dli_fname != NULL && info.dli_fname[0] != 0) {
      snprintf(out, size, "%s+0x%llx", base_name(info.dli_fname),
               (unsigned long long)(pc - (uintptr_t)info.dli_fbase));
      return;
    }
  }
  snprintf(out, size, "0x%llx", (unsigned long long)pc);
}

static void write_collapsed(out_t *o, const ebb_sample_site_t *sites, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const ebb_sample_site_t *s = &sites[i];
    unsigned long long bytes = round_est(s->live_bytes);
    if (bytes == 0 || s->depth == 0) continue;
    for (uint32_t f = s->depth; f-- > 0;) {
      char name[256];
      frame_name(s->frames[f], name, sizeof name, false);
      for (char *c = name; *c; c++)
        if (*c == ';' || *c == ' ') *c = '_'; /* the format's separators */
      out_put(o, name, strlen(name));
      if (f > 0) out_put(o, ";", 1);
    }
    out_fmt(o, " %llu\n", bytes);
  }
}

/* ---- dumps -------------------------------------------------------------------- */
static int write_file(const char *path, bool collapsed, const ebb_sample_site_t *sites, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  out_t o;
  o.fd = fd;
  o.len = 0;
  o.failed = false;
  if (collapsed) write_collapsed(&o, sites, n);
  else write_pprof(&o, sites, n);
  out_flush(&o);
  int saved = errno;
  if (close(fd) != 0 && !o.failed) o.failed = true;
  errno = saved;
  return o.failed ? -1 : 0;
}

static int dump_to(const char *path, bool collapsed) {
  if (path == NULL || path[0] == 0) {
    errno = EINVAL;
    return -1;
  }
  int saved = errno;
  ebb_sample_site_t *sites;
  size_t map_size;
  size_t n = sample_sites(&sites, &map_size);
  int rc = write_file(path, collapsed, sites, n);
  if (sites) os_unmap(sites, map_size);
  if (rc == 0) errno = saved;
  return rc;
}

/* ---- switching it on and off -------------------------------------------------- */
/* The calling thread's fast-path table, pointed at the empty page (on) or
 * back at its pages (off) now; other threads' follow at their next slow
 * path of each class. */
static void refresh_own_table(void) {
  ebb_heap_t *heap = ebb_tls_heap;
  if (heap == &ebb_empty_heap) return;
  for (unsigned cls = 1; cls <= EBB_SMALL_CLASS_MAX; cls++)
    heap_direct_refresh(heap, cls);
}

static _Atomic bool prof_ever; /* sampling was on at some point: dump at exit */

static void prof_set_rate(size_t rate) {
  if (rate != 0) atomic_store_explicit(&prof_ever, true, memory_order_relaxed);
  atomic_store_explicit(&ebb_sample_rate, rate, memory_order_relaxed);
  refresh_own_table();
}

void prof_init(void) {
  if (ebb_opt.prof) prof_set_rate(ebb_opt.prof_rate ? ebb_opt.prof_rate : PROF_DEFAULT_RATE);
}

void prof_options_changed(void) {
  size_t rate = ebb_opt.prof ? (ebb_opt.prof_rate ? ebb_opt.prof_rate : PROF_DEFAULT_RATE) : 0;
  if (rate != atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed)) prof_set_rate(rate);
  if (ebb_opt.prof_interval_ms > 0) purge_start_if_due();
}

static const char *prof_file_pattern(void) {
  return ebb_opt.prof_file[0] ? ebb_opt.prof_file : PROF_DEFAULT_FILE;
}

/* The pprof file and its collapsed companion (path + ".collapsed"). */
static int dump_pair(const char *path) {
  if (dump_to(path, false) != 0) return -1;
  char companion[EBB_PATH_MAX + 64];
  int k = snprintf(companion, sizeof companion, "%s.collapsed", path);
  if (k < 0 || (size_t)k >= sizeof companion) return 0;
  int saved = errno;
  dump_to(companion, true);
  errno = saved;
  return 0;
}

void prof_periodic(uint32_t now) {
  static bool started;
  static uint32_t last;
  static unsigned seq;
  long long interval = ebb_opt.prof_interval_ms;
  if (interval <= 0 || !atomic_load_explicit(&prof_ever, memory_order_relaxed)) return;
  /* an inline pass run from inside the sampler (a sampled block's page
   * given back) must not wait for the lock its thread holds */
  if (sample_lock_held_here()) return;
  if (!started) { /* the first tick starts the clock */
    started = true;
    last = now;
    return;
  }
  if ((long long)(uint32_t)(now - last) < interval) return;
  last = now;
  char base[EBB_PATH_MAX + 32], path[EBB_PATH_MAX + 64];
  if (!path_with_pid(prof_file_pattern(), base, sizeof base)) return;
  snprintf(path, sizeof path, "%s.%04u", base, seq++);
  dump_pair(path);
}

/* At exit, when the profile was asked for by option (EBB_PROF or
 * EBB_PROF_FILE): a program that only called ebb_prof_start and
 * ebb_prof_dump gets no file it did not name. */
void prof_at_exit(void) {
  if (!atomic_load_explicit(&prof_ever, memory_order_relaxed)) return;
  if (!ebb_opt.prof && ebb_opt.prof_file[0] == 0) return;
  char path[EBB_PATH_MAX + 32];
  if (!path_with_pid(prof_file_pattern(), path, sizeof path)) return;
  dump_pair(path);
}

__attribute__((destructor)) static void prof_destructor(void) { prof_at_exit(); }

/* ---- the verdict's call sites ---------------------------------------------------- */
static const char *fmt_bytes(char out[24], double v) {
  if (v >= 1024.0 * 1024 * 1024) snprintf(out, 24, "%llu.%01llu GiB", (unsigned long long)(v / (1 << 30)),
                                         (unsigned long long)(v * 10 / (1 << 30)) % 10);
  else if (v >= 1024.0 * 1024) snprintf(out, 24, "%llu.%01llu MiB", (unsigned long long)(v / (1 << 20)),
                                       (unsigned long long)(v * 10 / (1 << 20)) % 10);
  else snprintf(out, 24, "%llu KiB", (unsigned long long)(v / 1024));
  return out;
}

size_t prof_top_sites(char *buf, size_t size, unsigned n) {
  if (size == 0) return 0;
  buf[0] = 0;
  ebb_sample_site_t *sites;
  size_t map_size;
  size_t count = sample_sites(&sites, &map_size);
  double total = 0;
  for (size_t i = 0; i < count; i++) total += sites[i].live_bytes;
  size_t len = 0;
  unsigned written = 0;
  for (unsigned k = 0; k < n && total > 0; k++) {
    size_t best = count;
    for (size_t i = 0; i < count; i++)
      if (sites[i].depth > 0 && sites[i].live_bytes >= 1.0 &&
          (best == count || sites[i].live_bytes > sites[best].live_bytes))
        best = i;
    if (best == count) break;
    ebb_sample_site_t *s = &sites[best];
    char where[200], caller[200] = "", b[24];
    frame_name(s->frames[0], where, sizeof where, true);
    if (s->depth > 1) frame_name(s->frames[1], caller, sizeof caller, true);
    int w = snprintf(buf + len, size - len, "    %9s %5.1f%%  %s%s%s\n", fmt_bytes(b, s->live_bytes),
                     100.0 * s->live_bytes / total, where, caller[0] ? "  <- " : "", caller);
    if (w < 0 || (size_t)w >= size - len) break;
    len += (size_t)w;
    written++;
    s->live_bytes = 0; /* taken */
  }
  if (sites) os_unmap(sites, map_size);
  return written;
}

/* ---- the API -------------------------------------------------------------------- */
EBB_EXPORT int ebb_prof_start(size_t rate) {
  ebb_init();
  prof_set_rate(rate ? rate : PROF_DEFAULT_RATE);
  return 0;
}

EBB_EXPORT void ebb_prof_stop(void) {
  ebb_init();
  prof_set_rate(0);
}

EBB_EXPORT size_t ebb_prof_rate(void) { return atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed); }

EBB_EXPORT int ebb_prof_dump(const char *path) {
  ebb_init();
  char full[EBB_PATH_MAX + 32];
  if (path == NULL) {
    if (!path_with_pid(prof_file_pattern(), full, sizeof full)) {
      errno = ENAMETOOLONG;
      return -1;
    }
    path = full;
  }
  return dump_to(path, false);
}

EBB_EXPORT int ebb_prof_dump_collapsed(const char *path) {
  ebb_init();
  return dump_to(path, true);
}
