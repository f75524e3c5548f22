/* Giving memory back: the decay purge, the background purger ("ebb-purge"),
 * purging inside allocator calls (background=0), malloc_trim(0) and
 * ebb_collect(true), the memory limit (explicit and from a cgroup), the hard
 * limit, fork and exit while the purger works, and memory stranded in idle
 * threads.
 *
 * Options are read once per process, so this is a driver: run with no
 * arguments, it re-executes itself (/proc/self/exe CASE [MODE]) once per case
 * with a clean environment (every inherited EBB_* variable removed, then the
 * case's own set; EBB_CGROUP_PATH points at an empty directory unless the
 * case is about the cgroup, so the machine's own limit plays no part), shows
 * what each case printed and fails if any case fails.  The cases (a burst is
 * ~256 MiB of 16 B..64 KiB blocks, every byte written, every 50th kept):
 *   burst_idle fall     burst, then no allocator call: RSS < 15% of the peak
 *                       within decay + 2.5 s; an ebb-purge thread exists
 *   burst_idle high     the same with decay -1: RSS stays > 75% for 1.5 s
 *   burst_idle late     decay 2 s: RSS stays > 75% for 1 s, then falls
 *   burst_calls         background=0: small malloc/free calls all along must
 *                       run the purge (RSS falls); no ebb-purge thread
 *   trim                decay -1: RSS stays high; malloc_trim(0), then
 *                       ebb_collect(true), drop it before returning; stats
 *   limit explicit|cgroup-v2|cgroup-v1
 *                       decay -1 and a limit (EBB_MEMORY_LIMIT, or a fake
 *                       cgroup's memory.max / memory.limit_in_bytes) 1.25x the
 *                       burst; our own mmap pushes RSS past 90% of it: ebb
 *                       must purge until RSS is below 90%
 *   hard_limit          96 MiB hard limit: ENOMEM before RSS passes it, from
 *                       malloc, calloc, realloc (block intact), posix_memalign,
 *                       aligned_alloc; small blocks at the limit; works again
 *   hard_untouched      512 MiB hard limit, 64 MiB blocks granted but not
 *                       written: at most 8 granted (the limit counts what
 *                       ebb committed, not RSS), then all written: RSS
 *                       under the limit
 *   fork_exit           decay 20 ms, 3 threads churning: 40 forked children
 *                       trim and _exit, 20 exit() right after a burst, one
 *                       waits for its own purger; all exit 0 in time
 *   stranded_idle       4 threads free 32 MiB each and block: RSS falls
 *   remote_late         decay 2 s; pages emptied by another thread's frees:
 *                       RSS stays high for 1 s, then falls
 *   growth              decay 10 s; a thread frees 64 MiB and waits: RSS
 *                       stays up; then main allocates 64 MiB: the free
 *                       slices go back as it grows (RSS < base + 96 MiB)
 *   stranded_pc         2 producers, 2 consumers (remote frees), 3 s: RSS
 *                       grows by at most 30 MiB after the first second
 *   big_idle            an owner sleeps after emptying one block of every
 *                       medium and large class, then while another thread
 *                       frees 48 MiB of its 16..512 KiB blocks, then of
 *                       its 16 B..1 KiB blocks: RSS falls
 *   successor           background=0, decay -1: a thread started after
 *                       two others exited takes over the first one's
 *                       segment (only clean free slices) by freeing into
 *                       it, then puts its next page on the resident free
 *                       run the second one left (reuse, not page faults)
 * A case can also be run by hand under any environment, e.g. to see a check
 * fail:   EBB_DECAY_MS=-1 build/test/t_purge burst_idle fall
 *
 * RSS is read from /proc/self/statm with open/read into a stack buffer, so
 * waiting for it to fall makes no call into ebb (no stdio, no malloc).
 * Timing on a shared machine is noisy: every wait polls against a generous
 * deadline and nothing asserts on speed. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "ebb.h"
#include "testutil.h"

#define KIB ((size_t)1 << 10)
#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define BURST_BYTES (256 * MIB)
#define KEEP_EVERY 50
#define POLL_MS 50
#define FALL_MARGIN_S 2.5 /* beyond the decay, to see RSS fall */
#define HIGH_WATCH_S 1.5  /* how long RSS must stay high when nothing may purge */
/* After a burst with 2% kept, RSS must fall below this share of its peak
 * (about 7% is reached).  Purging only the pages that emptied completely
 * leaves 25-30%: this needs the partly used pages purged as well. */
#define FALL_PCT 15
#define PURGER_NAME "ebb-purge"

static const char *g_case = "driver";

/* A failed check: one line naming the case, the line and what was seen. */
#define EXPECT(cond, ...)                                                        \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "t_purge %s: FAIL at %s:%d: ", g_case, __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                              \
      fputc('\n', stderr);                                                       \
      test_failures++;                                                           \
    }                                                                            \
  } while (0)

/* ---- measuring without calling the allocator --------------------------------- */
static size_t g_page_size;

/* The process's RSS in bytes (0 if unreadable): open, read, close. */
static size_t rss_now(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char *p = buf;
  while (*p >= '0' && *p <= '9') p++; /* total size */
  while (*p == ' ') p++;
  size_t pages = 0;
  while (*p >= '0' && *p <= '9') pages = pages * 10 + (size_t)(*p++ - '0');
  return pages * g_page_size;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static double mib(size_t bytes) { return (double)bytes / (double)MIB; }

/* How many threads of this process are named `name` (/proc/self/task/ * /comm),
 * read with getdents64 and stack buffers; -1 if the directory is unreadable. */
struct dirent64_raw {
  unsigned long long ino;
  long long off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};
static int threads_named(const char *name) {
  int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  int count = 0;
  char buf[4096] __attribute__((aligned(8)));
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      struct dirent64_raw *d = (struct dirent64_raw *)(buf + off);
      off += d->reclen;
      if (d->name[0] == '.') continue;
      char path[64], comm[32];
      snprintf(path, sizeof path, "%s/comm", d->name);
      int fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue; /* the thread just ended */
      ssize_t r = read(fd, comm, sizeof comm - 1);
      close(fd);
      if (r <= 0) continue;
      comm[r] = 0;
      if (comm[r - 1] == '\n') comm[r - 1] = 0;
      if (strcmp(comm, name) == 0) count++;
    }
  }
  close(dir);
  return count;
}

/* Sample RSS every POLL_MS until it is below `target` or `limit_s` have
 * passed since t0.  Between samples either sleep, or (work != NULL) call
 * work() every 2 ms.  Returns the last sample; *fell_at is the time from t0
 * to the first sample below target, or -1. */
static size_t wait_rss_below(size_t target, double t0, double limit_s, void (*work)(void),
                             double *fell_at) {
  *fell_at = -1;
  for (;;) {
    size_t rss = rss_now();
    double t = now_s() - t0;
    if (rss < target) {
      *fell_at = t;
      return rss;
    }
    if (t > limit_s) return rss;
    if (work == NULL) {
      sleep_ms(POLL_MS);
    } else {
      double next = now_s() + POLL_MS / 1000.0;
      while (now_s() < next) {
        work();
        sleep_ms(2);
      }
    }
  }
}

/* The smallest RSS seen while sampling for `secs` (no allocator calls). */
static size_t min_rss_during(double secs) {
  double end = now_s() + secs;
  size_t min = rss_now();
  while (now_s() < end) {
    sleep_ms(POLL_MS);
    size_t r = rss_now();
    if (r < min) min = r;
  }
  return min;
}

/* Wait (no allocator calls) until RSS stops moving: three samples 100 ms
 * apart within 1 MiB of each other, or `limit_s`.  The last sample. */
static size_t settle_rss(double limit_s) {
  double end = now_s() + limit_s;
  size_t a = rss_now(), b = a, c = a;
  do {
    sleep_ms(100);
    a = b;
    b = c;
    c = rss_now();
  } while (now_s() < end &&
           !((a > c ? a - c : c - a) < MIB && (b > c ? b - c : c - b) < MIB));
  return c;
}

/* ---- the burst ------------------------------------------------------------------ */
/* Sizes log-distributed from 2^lo to 2^hi - 1: an octave picked uniformly,
 * then a size within it. */
static size_t log_size(uint64_t *seed, unsigned lo, unsigned hi) {
  unsigned e = lo + (unsigned)(test_rand(seed) % (hi - lo));
  size_t base = (size_t)1 << e;
  return base + (size_t)(test_rand(seed) % base);
}

#define BURST_MAX 80000
static void *burst_ptr[BURST_MAX];
static size_t burst_n;

/* Allocate about `bytes` in blocks of 16 B..64 KiB, writing every byte.
 * Returns the RSS right after (the peak). */
static size_t burst_alloc(size_t bytes, uint64_t seed) {
  size_t total = 0;
  burst_n = 0;
  seed = seed * 0x9e3779b97f4a7c15ull + 1;
  while (total < bytes && burst_n < BURST_MAX) {
    size_t n = log_size(&seed, 4, 16);
    void *p = malloc(n);
    if (p == NULL) {
      EXPECT(p != NULL, "burst: malloc(%zu) failed after %.1f MiB", n, mib(total));
      break;
    }
    memset(p, (int)(burst_n % 251) + 1, n);
    burst_ptr[burst_n++] = p;
    total += n;
  }
  return rss_now();
}

/* Free every block but every keep-th (keep 0: all), scattered over the burst. */
static void burst_free(size_t keep) {
  for (size_t i = 0; i < burst_n; i++) {
    if (burst_ptr[i] == NULL || (keep && i % keep == 0)) continue;
    free(burst_ptr[i]);
    burst_ptr[i] = NULL;
  }
}

/* The survivors still hold what was written. */
static void burst_check_kept(void) {
  for (size_t i = 0; i < burst_n; i++) {
    unsigned char *p = burst_ptr[i];
    if (p == NULL) continue;
    unsigned char want = (unsigned char)((int)(i % 251) + 1);
    size_t n = malloc_usable_size(p);
    if (p[0] != want || p[n / 2] != want) {
      EXPECT(0, "kept block %zu lost its contents", i);
      return;
    }
  }
}

static ebb_stats_t g_st0, g_st1; /* big: static */

/* ---- case 1: burst, then idle ------------------------------------------------------ */
/* mode "fall": RSS must drop below a quarter of the peak within the decay
 * plus FALL_MARGIN_S, with no allocator call, and the purger thread must
 * exist.  Mode "high" (run with decay -1): RSS must stay above three
 * quarters of the peak for HIGH_WATCH_S.  Mode "late" (run with a decay of
 * a second or more): the decay is respected, RSS stays above three quarters
 * of the peak for the first half of the decay, then falls as in "fall". */
static void case_burst_idle(const char *mode) {
  bool high = strcmp(mode, "high") == 0, late = strcmp(mode, "late") == 0;
  long long decay = ebb_option_get("decay_ms");
  if (late) EXPECT(decay >= 1000, "mode late needs EBB_DECAY_MS >= 1000 (decay_ms is %lld)", decay);
  size_t base = rss_now();
  size_t peak = burst_alloc(BURST_BYTES, 1);
  burst_free(KEEP_EVERY);
  double t0 = now_s();
  /* From here until the measurement is done: no calls into ebb. */
  if (!high) {
    size_t early = 0;
    if (late) early = min_rss_during((double)decay / 2000.0);
    double fell_at, limit = (decay > 0 ? (double)decay / 1000.0 : 0) + FALL_MARGIN_S;
    size_t after = wait_rss_below(peak / 100 * FALL_PCT, t0, limit, NULL, &fell_at);
    int purgers = threads_named(PURGER_NAME);
    if (late)
      printf("burst_idle (decay %lld ms): peak %.1f MiB, lowest in the first %.1f s %.1f MiB (%.0f%%)\n",
             decay, mib(peak), (double)decay / 2000.0, mib(early), 100.0 * (double)early / (double)peak);
    printf("burst_idle (decay %lld ms): base %.1f MiB, peak %.1f MiB, after %.1f MiB (%.0f%%), "
           "fell below %d%% in %.2f s (deadline %.2f s); %d %s thread\n",
           decay, mib(base), mib(peak), mib(after), 100.0 * (double)after / (double)peak, FALL_PCT,
           fell_at, limit, purgers, PURGER_NAME);
    EXPECT(peak - base > BURST_BYTES / 2, "the burst raised RSS by only %.1f MiB", mib(peak - base));
    if (late)
      EXPECT(early > peak / 4 * 3, "RSS fell to %.1f MiB (peak %.1f MiB) within %.1f s of the frees, "
             "before the decay of %lld ms", mib(early), mib(peak), (double)decay / 2000.0, decay);
    EXPECT(fell_at >= 0, "RSS still %.1f MiB (peak %.1f MiB) %.2f s after the frees, with no "
           "allocator call; expected below %d%% of the peak", mib(after), mib(peak), limit, FALL_PCT);
    EXPECT(purgers == 1, "%d threads named %s (expected 1)", purgers, PURGER_NAME);
  } else {
    size_t low = min_rss_during(HIGH_WATCH_S);
    printf("burst_idle (decay %lld ms): base %.1f MiB, peak %.1f MiB, lowest in %.1f s %.1f MiB "
           "(%.0f%%): stays high\n",
           decay, mib(base), mib(peak), HIGH_WATCH_S, mib(low), 100.0 * (double)low / (double)peak);
    EXPECT(peak - base > BURST_BYTES / 2, "the burst raised RSS by only %.1f MiB", mib(peak - base));
    EXPECT(low > peak / 4 * 3, "RSS fell to %.1f MiB (peak %.1f MiB) although nothing should purge",
           mib(low), mib(peak));
  }
  burst_check_kept();
  burst_free(0);
}

/* ---- case 2: burst, then small calls (for background=0) ------------------------------ */
static uint64_t g_work_seed = 7;
static unsigned long g_work_calls;
static void small_calls(void) {
  void *p[8];
  for (int i = 0; i < 8; i++) {
    size_t n = log_size(&g_work_seed, 4, 10);
    p[i] = malloc(n);
    if (p[i]) memset(p[i], i, n);
  }
  for (int i = 0; i < 8; i++) free(p[i]);
  g_work_calls += 16;
}

static void case_burst_calls(void) {
  long long decay = ebb_option_get("decay_ms");
  long long background = ebb_option_get("background");
  size_t peak = burst_alloc(BURST_BYTES, 2);
  burst_free(KEEP_EVERY);
  double t0 = now_s(), fell_at, limit = (decay > 0 ? (double)decay / 1000.0 : 0) + FALL_MARGIN_S;
  size_t after = wait_rss_below(peak / 100 * FALL_PCT, t0, limit, small_calls, &fell_at);
  int purgers = threads_named(PURGER_NAME);
  ebb_stats_get(&g_st1);
  printf("burst_calls (background %lld, decay %lld ms): peak %.1f MiB, after %.1f MiB (%.0f%%), "
         "fell below %d%% in %.2f s (deadline %.2f s) during %lu small malloc/free calls; %llu purge "
         "passes in all; %d %s thread\n",
         background, decay, mib(peak), mib(after), 100.0 * (double)after / (double)peak, FALL_PCT,
         fell_at, limit, g_work_calls, g_st1.purge_passes, purgers, PURGER_NAME);
  EXPECT(fell_at >= 0, "RSS still %.1f MiB (peak %.1f MiB) %.2f s after the frees, with malloc/free "
         "called all along; expected below %d%% of the peak", mib(after), mib(peak), limit, FALL_PCT);
  if (background == 0) EXPECT(purgers == 0, "%d threads named %s with background=0", purgers, PURGER_NAME);
  burst_check_kept();
  burst_free(0);
}

/* ---- case 3: malloc_trim(0) and ebb_collect(true) with decay -1 ---------------------------- */
static void trim_round(int round, bool use_trim) {
  const char *how = use_trim ? "malloc_trim(0)" : "ebb_collect(true)";
  size_t peak = burst_alloc(BURST_BYTES, 10 + (uint64_t)round);
  burst_free(KEEP_EVERY);
  size_t low = min_rss_during(0.3);
  ebb_stats_get(&g_st0);
  double t = now_s();
  if (use_trim) malloc_trim(0);
  else ebb_collect(true);
  size_t after = rss_now(); /* synchronous: already down when the call returns */
  double took = now_s() - t;
  ebb_stats_get(&g_st1);
  unsigned long long purged = g_st1.purged_bytes - g_st0.purged_bytes;
  printf("trim round %d: peak %.1f MiB, %.1f MiB 0.3 s after the frees; %s took %.3f s, RSS right "
         "after %.1f MiB (%.0f%%); ebb: purged %.1f MiB, free resident %.1f -> %.1f MiB, live %.1f MiB\n",
         round, mib(peak), mib(low), how, took, mib(after), 100.0 * (double)after / (double)peak,
         mib((size_t)purged), mib(g_st0.free_resident_bytes), mib(g_st1.free_resident_bytes),
         mib(g_st1.live_bytes));
  if (round == 1) printf("burst peak bytes: %zu\n", peak);
  EXPECT(low > peak / 4 * 3, "decay -1 but RSS fell to %.1f MiB (peak %.1f MiB) before %s", mib(low),
         mib(peak), how);
  EXPECT(after < peak / 4, "RSS %.1f MiB right after %s (peak %.1f MiB); expected below 25%%",
         mib(after), how, mib(peak));
  EXPECT(g_st0.free_resident_bytes > BURST_BYTES / 2,
         "before %s ebb reports only %.1f MiB free resident", how, mib(g_st0.free_resident_bytes));
  EXPECT(g_st1.free_resident_bytes < BURST_BYTES / 16,
         "after %s ebb still reports %.1f MiB free resident", how, mib(g_st1.free_resident_bytes));
  EXPECT(purged >= (low - after) / 2, "purged_bytes grew by %.1f MiB for an RSS drop of %.1f MiB",
         mib((size_t)purged), mib(low > after ? low - after : 0));
  EXPECT(g_st1.purge_calls > g_st0.purge_calls, "purge_calls did not grow");
  burst_check_kept();
  burst_free(0);
}

static void case_trim(void) {
  EXPECT(ebb_option_get("decay_ms") == -1, "run with EBB_DECAY_MS=-1 (decay_ms is %lld)",
         ebb_option_get("decay_ms"));
  trim_round(1, true);
  trim_round(2, false);
}

/* ---- cases 4 and 5: the memory limit, explicit or from a cgroup ---------------------------- */
/* Decay -1: nothing purges on time.  The limit (T_PURGE_LIMIT, what the
 * driver set through EBB_MEMORY_LIMIT or a fake cgroup file) is 1.25 times
 * the burst's peak, so the burst and its frees stay below 90% of it and no
 * limit-driven pass can race the free loop.  Then RSS is pushed above 90% of
 * the limit with memory that is not ebb's (an anonymous mapping of our own,
 * written): the purger must see it and give back what ebb holds free,
 * whatever the decay, so that RSS ends below 90% of the limit.  Without the
 * limit (case trim, or a limit far away) it stays where it was. */
static void case_limit(const char *how) {
  const char *want_s = getenv("T_PURGE_LIMIT");
  size_t want = want_s ? (size_t)strtoull(want_s, NULL, 10) : 0;
  EXPECT(want > 0, "run with T_PURGE_LIMIT=<the limit in bytes>");
  if (want == 0) return;
  long long opt = ebb_option_get("memory_limit");
  ebb_stats_get(&g_st0);
  size_t limit = g_st0.memory_limit, target = want - want / 10;
  if (strcmp(how, "explicit") == 0)
    EXPECT(opt == (long long)want, "ebb_option_get(\"memory_limit\") = %lld, expected %zu", opt, want);
  else
    EXPECT(opt == 0, "ebb_option_get(\"memory_limit\") = %lld with only a cgroup limit", opt);
  EXPECT(limit == want, "ebb_stats_get().memory_limit = %zu, expected %zu", limit, want);
  size_t peak = burst_alloc(BURST_BYTES, 3);
  burst_free(KEEP_EVERY);
  size_t freed = settle_rss(2.0); /* what the frees left resident, once nothing moves */
  ebb_stats_get(&g_st0);
  /* Past 90% of the limit (by 16 MiB) with our own memory, written in
   * steps; the highest RSS seen is only reported (the purger may already
   * act before the last step). */
  size_t push = target + 16 * MIB > freed ? target + 16 * MIB - freed : 0;
  push = (push + 8 * MIB - 1) & ~(8 * MIB - 1);
  char *own = push ? mmap(NULL, push, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
  EXPECT(own != MAP_FAILED, "mmap(%zu) failed: %s", push, strerror(errno));
  if (own == MAP_FAILED) own = NULL;
  size_t pushed = freed;
  for (size_t off = 0; own && off < push; off += 8 * MIB) {
    memset(own + off, 0x5c, 8 * MIB);
    size_t r = rss_now();
    if (r > pushed) pushed = r;
  }
  double t0 = now_s(), fell_at;
  size_t after = wait_rss_below(target, t0, FALL_MARGIN_S, NULL, &fell_at);
  if (fell_at >= 0) { /* where it settles */
    sleep_ms(200);
    after = rss_now();
  }
  ebb_stats_get(&g_st1);
  unsigned long long purged = g_st1.purged_bytes - g_st0.purged_bytes;
  printf("limit (%s, %.1f MiB, decay %lld): burst peak %.1f MiB (%.0f%% of the limit), %.1f MiB once "
         "freed; %.1f MiB of our own memory took RSS up to %.1f MiB (%.0f%% of the limit); then "
         "%.1f MiB, below 90%% in %.2f s (deadline %.2f s); ebb purged %.1f MiB meanwhile, free "
         "resident %.1f -> %.1f MiB\n",
         how, mib(limit), ebb_option_get("decay_ms"), mib(peak), 100.0 * (double)peak / (double)want,
         mib(freed), mib(push), mib(pushed), 100.0 * (double)pushed / (double)want, mib(after),
         fell_at, FALL_MARGIN_S, mib((size_t)purged), mib(g_st0.free_resident_bytes),
         mib(g_st1.free_resident_bytes));
  EXPECT(peak - peak / 50 < target, "the burst alone (%.1f MiB) came near 90%% of the limit (%.1f MiB)",
         mib(peak), mib(target));
  EXPECT(fell_at >= 0, "RSS still %.1f MiB %.2f s after passing 90%% of the limit (%.1f MiB); ebb "
         "reports %.1f MiB free resident", mib(after), FALL_MARGIN_S, mib(want),
         mib(g_st1.free_resident_bytes));
  EXPECT(purged >= 16 * MIB, "near the limit ebb purged only %.1f MiB", mib((size_t)purged));
  EXPECT(g_st1.free_resident_bytes <= g_st0.free_resident_bytes / 2,
         "near the limit ebb still reports %.1f MiB free resident (%.1f MiB before)",
         mib(g_st1.free_resident_bytes), mib(g_st0.free_resident_bytes));
  if (own) munmap(own, push);
  burst_check_kept();
  burst_free(0);
}

/* ---- case 6b: the hard limit counts memory granted, not memory written ------------------------ */
static void case_hard_untouched(void) {
  size_t limit = (size_t)ebb_option_get("memory_limit");
  EXPECT(limit == 512 * MIB && ebb_option_get("hard_limit") == 1,
         "run with EBB_HARD_LIMIT=1 EBB_MEMORY_LIMIT=512M (memory_limit is %zu)", limit);
  enum { ASKED = 24 };
  void *blocks[ASKED];
  int granted = 0, refused_enomem = 0;
  for (int i = 0; i < ASKED; i++) {
    errno = 0;
    blocks[i] = malloc(opaque(64 * MIB)); /* not written yet */
    if (blocks[i]) granted++;
    else if (errno == ENOMEM) refused_enomem++;
  }
  EXPECT(granted <= 8, "%d blocks of 64 MiB granted under a 512 MiB hard limit", granted);
  EXPECT(granted >= 6, "only %d blocks of 64 MiB granted under a 512 MiB hard limit", granted);
  EXPECT(granted + refused_enomem == ASKED, "a refusal without ENOMEM");
  for (int i = 0; i < ASKED; i++)
    if (blocks[i]) memset(blocks[i], i + 1, 64 * MIB);
  size_t rss = rss_now();
  EXPECT(rss <= limit + 4 * MIB, "RSS %.1f MiB with every granted block written, limit %.1f MiB",
         mib(rss), mib(limit));
  for (int i = 0; i < ASKED; i++) free(blocks[i]);
  void *again = malloc(64 * MIB);
  EXPECT(again != NULL, "64 MiB after freeing everything was refused");
  free(again);
  printf("hard_untouched (512 MiB): %d of %d blocks of 64 MiB granted, RSS %.1f MiB written\n",
         granted, ASKED, mib(rss));
}

/* ---- case 6: the hard limit ------------------------------------------------------------------ */
#define HARD_MAX_BLOCKS 400
static void *g_held[HARD_MAX_BLOCKS];

static void case_hard_limit(void) {
  size_t limit = (size_t)ebb_option_get("memory_limit");
  EXPECT(ebb_option_get("hard_limit") == 1, "run with EBB_HARD_LIMIT=1");
  EXPECT(limit == 96 * MIB, "run with EBB_MEMORY_LIMIT=96M (memory_limit is %zu)", limit);
  if (limit == 0) limit = 96 * MIB;
  size_t slack = 4 * MIB, max_rss = rss_now();
  int n = 0, err = 0;
  bool got_null = false;
  /* 1 MiB blocks until refused (never more than 400 MiB in all). */
  while (n < HARD_MAX_BLOCKS) {
    errno = 0;
    void *p = malloc(MIB);
    if (p == NULL) {
      got_null = true;
      err = errno;
      break;
    }
    if (n == 0) fill_pattern(p, MIB, 77);
    else memset(p, n, MIB);
    g_held[n++] = p;
    size_t r = rss_now();
    if (r > max_rss) max_rss = r;
  }
  size_t at_limit = rss_now();
  EXPECT(got_null, "malloc(1 MiB) never failed: %d MiB taken, RSS %.1f MiB, limit %.1f MiB", n,
         mib(at_limit), mib(limit));
  EXPECT(err == ENOMEM, "malloc(1 MiB) at the limit: errno %d (%s), expected ENOMEM", err, strerror(err));
  EXPECT(max_rss <= limit + slack, "RSS reached %.1f MiB under a hard limit of %.1f MiB", mib(max_rss),
         mib(limit));

  /* Small blocks at the limit: they may come from pages already there, or
   * fail cleanly. */
  enum { SMALL = 20000 };
  static void *small[SMALL];
  int small_ok = 0, small_bad_errno = 0;
  for (int i = 0; i < SMALL; i++) {
    errno = 0;
    small[i] = malloc(64);
    if (small[i]) {
      memset(small[i], 0xab, 64);
      small_ok++;
    } else if (errno != ENOMEM) {
      small_bad_errno++;
    }
  }
  EXPECT(small_bad_errno == 0, "%d failed malloc(64) without ENOMEM", small_bad_errno);
  for (int i = 0; i < SMALL; i++) free(small[i]);

  /* Big requests are refused cleanly. */
  errno = 0;
  void *big = malloc(opaque(200 * MIB));
  int e_malloc = errno;
  EXPECT(big == NULL && e_malloc == ENOMEM, "malloc(200 MiB) at the limit: %p, errno %d", big, e_malloc);
  free(big);
  errno = 0;
  void *cbig = calloc(opaque(200), MIB);
  int e_calloc = errno;
  EXPECT(cbig == NULL && e_calloc == ENOMEM, "calloc(200, 1 MiB) at the limit: %p, errno %d", cbig,
         e_calloc);
  free(cbig);
  if (n > 0) {
    errno = 0;
    void *r = realloc(g_held[0], opaque(500 * MIB));
    int e_realloc = errno;
    EXPECT(r == NULL && e_realloc == ENOMEM, "realloc(1 MiB block, 500 MiB) at the limit: %p, errno %d",
           r, e_realloc);
    if (r) g_held[0] = r;
    EXPECT(check_pattern(g_held[0], MIB, 77), "the block realloc refused to grow lost its contents");
  }
  void *out = (void *)g_held; /* a value to see untouched */
  void *before = out;
  int rc = posix_memalign(&out, 4096, opaque(200 * MIB));
  EXPECT(rc == ENOMEM, "posix_memalign(4096, 200 MiB) at the limit returned %d", rc);
  if (rc != 0) EXPECT(out == before, "posix_memalign changed *out on failure");
  else free(out);
  errno = 0;
  void *al = aligned_alloc(64, opaque(200 * MIB));
  int e_al = errno;
  EXPECT(al == NULL && e_al == ENOMEM, "aligned_alloc(64, 200 MiB) at the limit: %p, errno %d", al, e_al);
  free(al);

  /* Free everything: allocation works again, and even a 48 MiB block
   * (mapping it first purges what was freed, whatever the decay). */
  for (int i = 0; i < n; i++) free(g_held[i]);
  errno = 0;
  void *again = malloc(MIB);
  EXPECT(again != NULL, "malloc(1 MiB) after freeing everything failed (errno %d)", errno);
  if (again) memset(again, 1, MIB);
  free(again);
  errno = 0;
  void *big2 = malloc(48 * MIB);
  int e_big2 = errno;
  EXPECT(big2 != NULL, "malloc(48 MiB) after freeing everything failed (errno %d), RSS %.1f MiB",
         e_big2, mib(rss_now()));
  if (big2) memset(big2, 2, 48 * MIB);
  size_t with_big = rss_now();
  EXPECT(with_big <= limit + slack, "RSS %.1f MiB holding 48 MiB, limit %.1f MiB", mib(with_big),
         mib(limit));
  free(big2);
  printf("hard_limit (%.0f MiB): %d x 1 MiB before ENOMEM, RSS at most %.1f MiB (%.1f at the limit); "
         "%d/%d small mallocs at the limit; 200 MiB malloc/calloc/aligned, 500 MiB realloc, "
         "posix_memalign refused; 48 MiB after freeing: %s, RSS %.1f MiB\n",
         mib(limit), n, mib(max_rss), mib(at_limit), small_ok, SMALL, big2 ? "ok" : "FAILED",
         mib(with_big));
}

/* ---- case 7: fork and exit while threads and the purger work ----------------------------------- */
static atomic_int g_stop;
static void *churn(void *arg) {
  uint64_t seed = (uintptr_t)arg;
  enum { N = 2000 };
  void **p = malloc(N * sizeof *p);
  while (!atomic_load(&g_stop)) {
    for (int i = 0; i < N; i++) {
      size_t n = log_size(&seed, 4, 15);
      p[i] = malloc(n);
      if (p[i]) memset(p[i], i, n < 256 ? n : 256);
    }
    for (int i = 0; i < N; i++) free(p[i]);
    sleep_ms(1); /* busy, but leave the forked children some CPU */
  }
  free(p);
  return NULL;
}

/* In a forked child: a few MiB allocated and freed, malloc_trim(0), then
 * allocated again; 0 if everything held its contents. */
static int child_trim_work(uint32_t seed) {
  enum { BIG = 48, SMALLN = 2000 };
  static void *big[BIG], *small[SMALLN];
  int bad = 0;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < BIG; i++) {
      big[i] = malloc(64 << 10);
      if (!big[i]) return 2;
      fill_pattern(big[i], 64 << 10, seed + (uint32_t)i);
    }
    for (int i = 0; i < SMALLN; i++) {
      small[i] = malloc(16 + (size_t)(i % 300));
      if (!small[i]) return 2;
      fill_pattern(small[i], 16, seed + (uint32_t)i);
    }
    for (int i = 0; i < BIG; i++) bad += !check_pattern(big[i], 64 << 10, seed + (uint32_t)i);
    for (int i = 0; i < SMALLN; i++) bad += !check_pattern(small[i], 16, seed + (uint32_t)i);
    for (int i = 0; i < BIG; i++) free(big[i]);
    for (int i = 0; i < SMALLN; i++) free(small[i]);
    if (round == 0) malloc_trim(0);
  }
  return bad ? 1 : 0;
}

/* Describe a child's end; true if it exited 0. */
static bool child_ok(int st, const char *what, int i) {
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
  if (WIFSIGNALED(st))
    EXPECT(0, "%s child %d killed by signal %d (%s)%s", what, i, WTERMSIG(st), strsignal(WTERMSIG(st)),
           WTERMSIG(st) == SIGALRM ? ": it did not finish in time (hang?)" : "");
  else
    EXPECT(0, "%s child %d exited with %d", what, i, WEXITSTATUS(st));
  return false;
}

static void case_fork_exit(void) {
  enum { THREADS = 3, TRIM_FORKS = 40, EXIT_FORKS = 20, CHILD_TIMEOUT_S = 10 };
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i * 7 + 3));
  sleep_ms(100); /* let the churn and the purger get going */
  double t0 = now_s();
  int ok_trim = 0, ok_exit = 0;
  fflush(NULL); /* children that exit() must not print the parent's buffered lines */
  for (int i = 0; i < TRIM_FORKS; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      EXPECT(pid >= 0, "fork failed: %s", strerror(errno));
      break;
    }
    if (pid == 0) {
      alarm(CHILD_TIMEOUT_S);
      _exit(child_trim_work((uint32_t)i));
    }
    ok_trim += child_ok(wait_child(pid), "trim", i);
  }
  double t1 = now_s();
  for (int i = 0; i < EXIT_FORKS; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      EXPECT(pid >= 0, "fork failed: %s", strerror(errno));
      break;
    }
    if (pid == 0) {
      alarm(CHILD_TIMEOUT_S);
      /* A burst and its frees start this child's own purger; exit while it
       * is (probably) in the middle of a pass. */
      burst_alloc(64 * MIB, 100 + (uint64_t)i);
      burst_free(0);
      exit(0);
    }
    ok_exit += child_ok(wait_child(pid), "exit", i);
  }
  double t2 = now_s();
  /* A child's own purger gives its memory back while it idles. */
  int fork_purge_ok = 0;
  pid_t pid = fork();
  if (pid == 0) {
    alarm(CHILD_TIMEOUT_S);
    size_t base = rss_now(); /* the parent's memory, inherited */
    size_t peak = burst_alloc(64 * MIB, 999);
    burst_free(0);
    double fell_at;
    size_t after = wait_rss_below(base + (peak - base) / 4, now_s(), 0.02 + FALL_MARGIN_S, NULL,
                                  &fell_at);
    int purgers = threads_named(PURGER_NAME);
    if (fell_at < 0 || purgers != 1) {
      fprintf(stderr, "t_purge fork_exit: FAIL: forked child: RSS at fork %.1f MiB, peak %.1f MiB, "
              "after %.1f MiB, %d %s thread (expected the child's own purger to give the burst "
              "back)\n", mib(base), mib(peak), mib(after), purgers, PURGER_NAME);
      _exit(1);
    }
    _exit(0);
  }
  if (pid > 0) fork_purge_ok = child_ok(wait_child(pid), "purger-after-fork", 0);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  printf("fork_exit (decay %lld ms, %d busy threads): %d/%d children forked mid-churn trimmed and "
         "exited 0 (%.2f s); %d/%d exited right after a 64 MiB burst (%.2f s); child's own purger: %s\n",
         ebb_option_get("decay_ms"), THREADS, ok_trim, TRIM_FORKS, t1 - t0, ok_exit, EXIT_FORKS,
         t2 - t1, fork_purge_ok ? "ok" : "FAILED");
}

/* ---- case 8: memory stranded in idle threads ------------------------------------------------------ */
/* stranded_idle: 4 workers allocate ~32 MiB each of small objects, free
 * them all, then wait, alive, on a condition variable: the main thread
 * makes no allocator call and RSS must fall. */
enum { WORKERS = 4 };
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_done, g_release;

static void *idle_worker(void *arg) {
  uint64_t seed = (uintptr_t)arg * 1000003u + 11;
  void *list = NULL; /* the objects, linked through their first word */
  size_t total = 0;
  while (total < 32 * MIB) {
    size_t n = log_size(&seed, 4, 10); /* 16 B .. 1 KiB */
    void **p = malloc(n);
    if (!p) break;
    memset(p, 0x3c, n);
    *p = list;
    list = p;
    total += n;
  }
  while (list) {
    void *next = *(void **)list;
    free(list);
    list = next;
  }
  pthread_mutex_lock(&g_mu);
  g_done++;
  pthread_cond_broadcast(&g_cv);
  while (!g_release) pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

static void case_stranded_idle(void) {
  long long decay = ebb_option_get("decay_ms");
  pthread_t t[WORKERS];
  size_t base = rss_now();
  for (int i = 0; i < WORKERS; i++) pthread_create(&t[i], NULL, idle_worker, (void *)(uintptr_t)(i + 1));
  /* The peak: sampled while the workers allocate, until all are done. */
  size_t peak = base;
  pthread_mutex_lock(&g_mu);
  while (g_done < WORKERS) {
    pthread_mutex_unlock(&g_mu);
    size_t r = rss_now();
    if (r > peak) peak = r;
    sleep_ms(5);
    pthread_mutex_lock(&g_mu);
  }
  pthread_mutex_unlock(&g_mu);
  size_t at_done = rss_now();
  if (at_done > peak) peak = at_done;
  double t0 = now_s(), fell_at, limit = (decay > 0 ? (double)decay / 1000.0 : 0) + 3.0;
  size_t after = wait_rss_below(base + (peak - base) / 4, t0, limit, NULL, &fell_at);
  int purgers = threads_named(PURGER_NAME);
  pthread_mutex_lock(&g_mu);
  g_release = 1;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
  printf("stranded_idle (%d idle threads, decay %lld ms): base %.1f MiB, peak %.1f MiB, %.1f MiB when "
         "all had freed, after %.1f MiB, fell in %.2f s (deadline %.2f s); %d %s thread\n",
         WORKERS, decay, mib(base), mib(peak), mib(at_done), mib(after), fell_at, limit, purgers,
         PURGER_NAME);
  EXPECT(peak - base > 64 * MIB, "the workers raised RSS by only %.1f MiB", mib(peak - base));
  EXPECT(fell_at >= 0, "RSS still %.1f MiB (base %.1f, peak %.1f MiB) %.2f s after %d threads freed "
         "everything and went idle", mib(after), mib(base), mib(peak), limit, WORKERS);
}

/* remote_late (run with a decay of a second or more): an owner thread
 * allocates 64 MiB of small objects and frees 15 of every 16 (its pages drop
 * to their sparse mark); a second thread frees the rest (remote frees empty
 * those pages); both then wait, alive.  The decay holds for memory emptied
 * by remote frees too: RSS stays above three quarters of its rise for the
 * first half of the decay, then falls. */
/* The hand-off both remote_late and big_idle use: an owner thread puts a
 * list of blocks (linked through their first word) in g_handoff_list and
 * reaches stage 1; handoff_freer frees them all from its own thread and
 * reaches stage 2; both then wait, alive, for stage 3 (the case releases
 * them once it has watched RSS). */
static void **g_handoff_list;
static int g_handoff_stage;

static void handoff_wait(int stage) { /* with g_mu held */
  while (g_handoff_stage < stage) pthread_cond_wait(&g_cv, &g_mu);
}

/* Announce `stage`, then wait, alive, until released. */
static void handoff_reach(int stage) {
  pthread_mutex_lock(&g_mu);
  g_handoff_stage = stage;
  pthread_cond_broadcast(&g_cv);
  handoff_wait(3);
  pthread_mutex_unlock(&g_mu);
}

static void handoff_await(int stage) {
  pthread_mutex_lock(&g_mu);
  handoff_wait(stage);
  pthread_mutex_unlock(&g_mu);
}

/* Chains: blocks linked through their first word. */
/* Allocate blocks of log_size(lo, hi), each filled with `fill`, onto
 * *chain until `bytes` (as requested) are held; returns the bytes. */
static size_t chain_fill(void ***chain, uint64_t *seed, unsigned lo, unsigned hi, size_t bytes,
                         int fill) {
  size_t total = 0;
  while (total < bytes) {
    size_t sz = log_size(seed, lo, hi);
    void **o = malloc(sz);
    if (!o) break;
    memset(o, fill, sz);
    *o = *chain;
    *chain = o;
    total += sz;
  }
  return total;
}

/* Keep every `every`-th block of the chain (the first among them), free
 * the others; returns the chain of the kept. */
static void **chain_keep_every(void **chain, size_t every) {
  void **keep = NULL;
  for (size_t i = 0; chain; i++) {
    void **next = *chain;
    if (i % every == 0) {
      *chain = keep;
      keep = chain;
    } else {
      free(chain);
    }
    chain = next;
  }
  return keep;
}

static void chain_free(void **chain) {
  while (chain) {
    void **next = *chain;
    free(chain);
    chain = next;
  }
}

static void *handoff_freer(void *arg) {
  (void)arg;
  handoff_await(1);
  chain_free(g_handoff_list);
  handoff_reach(2);
  return NULL;
}

static void handoff_release(void) {
  pthread_mutex_lock(&g_mu);
  g_handoff_stage = 3;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
}

static void *remote_owner(void *arg) {
  (void)arg;
  uint64_t seed = 4242;
  void **all = NULL; /* every object, linked */
  chain_fill(&all, &seed, 4, 10, 64 * MIB, 0x6d);
  g_handoff_list = chain_keep_every(all, 16);
  handoff_reach(1);
  return NULL;
}

static void case_remote_late(void) {
  long long decay = ebb_option_get("decay_ms");
  EXPECT(decay >= 1000, "run with EBB_DECAY_MS >= 1000 (decay_ms is %lld)", decay);
  size_t base = rss_now();
  pthread_t owner, freer;
  pthread_create(&owner, NULL, remote_owner, NULL);
  pthread_create(&freer, NULL, handoff_freer, NULL);
  handoff_await(2);
  /* Both threads idle; from here no allocator calls. */
  double t0 = now_s();
  size_t peak = rss_now();
  size_t early = min_rss_during((double)decay / 2000.0);
  double fell_at, limit = (double)decay / 1000.0 + FALL_MARGIN_S;
  size_t after = wait_rss_below(base + (peak - base) / 4, t0, limit, NULL, &fell_at);
  handoff_release();
  pthread_join(owner, NULL);
  pthread_join(freer, NULL);
  printf("remote_late (decay %lld ms): base %.1f MiB, %.1f MiB when all was freed, lowest in the first "
         "%.1f s %.1f MiB, after %.1f MiB, fell in %.2f s (deadline %.2f s)\n",
         decay, mib(base), mib(peak), (double)decay / 2000.0, mib(early), mib(after), fell_at, limit);
  EXPECT(peak - base > 32 * MIB, "the owner raised RSS by only %.1f MiB", mib(peak - base));
  EXPECT(early > base + (peak - base) / 4 * 3,
         "RSS fell to %.1f MiB (%.1f MiB when all was freed) within %.1f s, before the decay of %lld ms: "
         "pages emptied by another thread's frees were purged early", mib(early), mib(peak),
         (double)decay / 2000.0, decay);
  EXPECT(fell_at >= 0, "RSS still %.1f MiB %.2f s after the frees (base %.1f MiB)", mib(after), limit,
         mib(base));
}

/* growth (run with a decay of several seconds): a thread allocates 64 MiB
 * of small objects, frees all but one in 2048 (most of its pages empty into
 * free slices, still resident) and waits, alive.  Nothing allocates meanwhile, so nothing may
 * purge them before the decay.  Then the main thread allocates 64 MiB of
 * its own: its pages take clean slices while the other thread's free ones
 * wait, and ebb must give the old ones back then (free resident slices are
 * bounded by an eighth of those in use on growth), not after the decay: RSS
 * must settle below the two fills' sum by a wide margin, well within the
 * decay. */
static void *growth_owner(void *arg) {
  (void)arg;
  uint64_t seed = 99;
  void **all = NULL;
  chain_fill(&all, &seed, 4, 10, 64 * MIB, 0x47);
  /* One block in 2048 (about one a MiB) stays: every segment keeps a page
   * in use, so none empties into the pool, where the main thread would
   * take it, resident, with no purge needed. */
  void **kept = chain_keep_every(all, 2048);
  handoff_reach(1);
  chain_free(kept);
  return NULL;
}

static void case_growth(void) {
  long long decay = ebb_option_get("decay_ms");
  EXPECT(decay >= 5000, "run with EBB_DECAY_MS >= 5000 (decay_ms is %lld)", decay);
  size_t base = rss_now();
  pthread_t owner;
  pthread_create(&owner, NULL, growth_owner, NULL);
  handoff_await(1);
  size_t freed = min_rss_during(0.3); /* the owner's free slices: resident, waiting */
  double t0 = now_s();
  uint64_t seed = 100;
  void **mine = NULL;
  chain_fill(&mine, &seed, 4, 10, 64 * MIB, 0x48);
  double filled_in = now_s() - t0;
  /* The purger works beside the fill; give it a moment after (no allocator calls). */
  double fell_at, limit = 2.0;
  size_t want = base + 96 * MIB;
  size_t after = wait_rss_below(want, now_s(), limit, NULL, &fell_at);
  printf("growth (decay %lld ms): base %.1f MiB, %.1f MiB after the owner freed 64 MiB, %.1f MiB after "
         "main's 64 MiB fill (%.2f s), want below %.1f MiB, reached in %.2f s (deadline %.1f s)\n",
         decay, mib(base), mib(freed), mib(after), filled_in, mib(want), fell_at, limit);
  EXPECT(freed > base + 48 * MIB, "RSS fell to %.1f MiB (base %.1f) with nothing allocating, before the "
         "decay of %lld ms", mib(freed), mib(base), decay);
  EXPECT(fell_at >= 0, "RSS %.1f MiB after a 64 MiB fill beside 64 MiB of free slices (base %.1f MiB, "
         "want below %.1f): the free slices were not given back as the process grew", mib(after),
         mib(base), mib(want));
  chain_free(mine);
  handoff_release();
  pthread_join(owner, NULL);
}

/* exited_owner: a thread allocates 64 MiB of small blocks (16 B..1 KiB),
 * hands them over and exits; another thread frees all but one in 256 (about
 * one a 64 KiB page) into the exited thread's pages, and nothing allocates afterwards (a pool of
 * workers that shrank).  Those frees wait on the remote lists of pages no
 * thread owns; the purger must take them in and give the memory back
 * within the decay, with no allocator call and no thread reclaiming the
 * segments. */
static void *exiting_owner(void *arg) {
  (void)arg;
  uint64_t seed = 777;
  void **all = NULL;
  chain_fill(&all, &seed, 4, 10, 64 * MIB, 0x5e);
  g_handoff_list = all;
  return NULL; /* exits: its segments are abandoned with every block live */
}

static void case_exited_owner(void) {
  long long decay = ebb_option_get("decay_ms");
  size_t base = rss_now();
  pthread_t owner;
  pthread_create(&owner, NULL, exiting_owner, NULL);
  pthread_join(owner, NULL);
  void **kept = chain_keep_every(g_handoff_list, 256);
  /* From here no allocator calls until the check is done. */
  double t0 = now_s();
  size_t peak = rss_now();
  double fell_at, limit = (decay > 0 ? (double)decay / 1000.0 : 0) + FALL_MARGIN_S;
  size_t after = wait_rss_below(base + (peak - base) / 4, t0, limit, NULL, &fell_at);
  printf("exited_owner (decay %lld ms): base %.1f MiB, %.1f MiB after the frees, after %.1f MiB, "
         "fell in %.2f s (deadline %.2f s)\n", decay, mib(base), mib(peak), mib(after), fell_at, limit);
  EXPECT(peak - base > 32 * MIB, "the exited thread raised RSS by only %.1f MiB", mib(peak - base));
  EXPECT(fell_at >= 0,
         "RSS still %.1f MiB %.2f s after 255/256 of an exited thread's blocks were freed (base %.1f MiB)",
         mib(after), limit, mib(base));
  chain_free(kept);
}

/* big_idle: memory a sleeping owner holds without knowing it.
 * (1) own: the owner allocates and frees one block of every medium and
 *     large size class (8 KiB..2 MiB, each written), then sleeps: no empty
 *     page may stay with it as a class's current page.
 * (2) remote: the owner allocates 48 MiB of 16..512 KiB blocks and hands
 *     them all to a second thread, which frees them (remote frees), while
 *     the owner sleeps and never takes them in.
 * (3) small: the same with 48 MiB of 16 B..1 KiB blocks, too small to be
 *     purged one by one: the pages whose every block waits on its remote
 *     list go back whole (mimalloc-bench's larson, whose main thread
 *     allocates the first blocks and sleeps while the workers free them).
 * After each, with no allocator calls, RSS must fall below a quarter of its
 * rise within the decay plus FALL_MARGIN_S. */
enum { BIG_OWN, BIG_REMOTE, BIG_SMALL };
static const char *const big_what[] = {"own", "remote", "small"};

static void *big_owner(void *arg) {
  int mode = (int)(intptr_t)arg;
  if (mode == BIG_OWN) {
    char *held[64];
    size_t n = 0;
    for (size_t size = 8 * KIB + 1024; size <= 2 * MIB && n < 64; size += size / 8) {
      held[n] = malloc(size);
      if (held[n]) memset(held[n], 0x5b, size);
      n++;
    }
    while (n > 0) free(held[--n]);
  } else {
    uint64_t seed = 99;
    void **list = NULL;
    if (mode == BIG_REMOTE) chain_fill(&list, &seed, 14, 19, 48 * MIB, 0x5c);
    else chain_fill(&list, &seed, 4, 10, 48 * MIB, 0x5c);
    g_handoff_list = list;
  }
  handoff_reach(1);
  return NULL;
}

static void big_idle_part(int mode) {
  long long decay = ebb_option_get("decay_ms");
  bool remote = mode != BIG_OWN;
  size_t base = rss_now();
  g_handoff_stage = 0;
  g_handoff_list = NULL;
  pthread_t owner, freer;
  pthread_create(&owner, NULL, big_owner, (void *)(intptr_t)mode);
  if (remote) pthread_create(&freer, NULL, handoff_freer, NULL);
  handoff_await(remote ? 2 : 1);
  /* The threads sleep; from here no allocator calls. */
  double t0 = now_s(), fell_at, limit = (double)decay / 1000.0 + FALL_MARGIN_S;
  size_t peak = rss_now();
  size_t after = wait_rss_below(base + (peak - base) / 4, t0, limit, NULL, &fell_at);
  handoff_release();
  pthread_join(owner, NULL);
  if (remote) pthread_join(freer, NULL);
  const char *what = big_what[mode];
  printf("big_idle %s (decay %lld ms): base %.1f MiB, %.1f MiB when all was freed, after %.1f MiB, "
         "fell in %.2f s (deadline %.2f s)\n",
         what, decay, mib(base), mib(peak), mib(after), fell_at, limit);
  EXPECT(peak - base > 8 * MIB, "%s: the owner raised RSS by only %.1f MiB", what, mib(peak - base));
  EXPECT(fell_at >= 0,
         "%s: RSS still %.1f MiB %.2f s after the frees (base %.1f MiB, peak %.1f MiB): memory held "
         "by a sleeping owner was not given back",
         what, mib(after), limit, mib(base), mib(peak));
}

static void case_big_idle(void) {
  big_idle_part(BIG_OWN);
  big_idle_part(BIG_REMOTE);
  big_idle_part(BIG_SMALL);
}

/* medium_idle: 64 MiB of medium blocks (16-64 KiB) from the shared heap,
 * 7 of every 8 freed: they go to their pages' lists at once, where only
 * the purger's pass over the shared heap's idle classes reaches them.
 * Then the process sleeps: RSS must fall to about the kept eighth within
 * the decay and a margin. */
static void case_medium_idle(void) {
  long long decay = ebb_option_get("decay_ms");
  size_t base = rss_now();
  uint64_t seed = 777;
  void **all = NULL;
  chain_fill(&all, &seed, 14, 16, 64 * MIB, 0x4d); /* 16 KiB .. 64 KiB */
  void **keep = chain_keep_every(all, 8);
  size_t peak = rss_now();
  double t0 = now_s(), fell_at, limit = (decay > 0 ? (double)decay / 1000.0 : 0) + 2.0;
  size_t after = wait_rss_below(base + (peak - base) / 3, t0, limit, NULL, &fell_at);
  printf("medium_idle (decay %lld ms): base %.1f MiB, after the frees %.1f MiB, after %.1f MiB, fell "
         "in %.2f s (deadline %.2f s)\n",
         decay, mib(base), mib(peak), mib(after), fell_at, limit);
  chain_free(keep);
  EXPECT(peak - base > 48 * MIB, "RSS rose by only %.1f MiB", mib(peak - base));
  EXPECT(fell_at >= 0, "RSS still %.1f MiB %.2f s after the frees (base %.1f MiB, peak %.1f MiB): free "
         "medium blocks taken into the shared heap were not given back", mib(after), limit, mib(base),
         mib(peak));
}

/* medium_shared: a thread allocates 36 MiB of medium blocks (16-64 KiB),
 * frees 7 of every 8 (so no page of its empties) and stays alive; then the
 * main thread allocates 28 MiB.  Medium blocks come from one heap every
 * thread shares, so the second thread reuses the first one's free blocks:
 * ebb maps little more. */
static void *medium_first_thread(void *arg) {
  (void)arg;
  uint64_t seed = 31;
  void **list = NULL;
  chain_fill(&list, &seed, 14, 16, 36 * MIB, 0x4e);
  void **keep = chain_keep_every(list, 8);
  handoff_reach(1); /* alive until released */
  chain_free(keep);
  return NULL;
}

static void case_medium_shared(void) {
  static ebb_stats_t before, after;
  pthread_t first;
  pthread_create(&first, NULL, medium_first_thread, NULL);
  handoff_await(1);
  ebb_stats_get(&before);
  uint64_t seed = 32;
  void **list = NULL;
  size_t total = chain_fill(&list, &seed, 14, 16, 28 * MIB, 0x4f);
  ebb_stats_get(&after);
  printf("medium_shared: the second thread allocated %.1f MiB; ebb mapped %.1f MiB before it, %.1f MiB "
         "after\n", mib(total), mib(before.mapped_bytes), mib(after.mapped_bytes));
  chain_free(list);
  handoff_release();
  pthread_join(first, NULL);
  EXPECT(after.mapped_bytes < before.mapped_bytes + 8 * MIB,
         "ebb mapped %.1f MiB more for medium blocks while another thread's %.1f MiB were free",
         mib(after.mapped_bytes - before.mapped_bytes), mib(total));
}

/* medium_cache: each thread keeps the last medium block it freed of each
 * class up to 32 KiB, for its next allocation of that class.  A thread
 * fills its cache (one block of each such class, freed) and sleeps.  The
 * statistics must not count the cached blocks as live.  Then, in "idle"
 * mode, the purger must take them from the sleeping thread and give them
 * back to the shared heap, whose pages empty and are retired; in "collect"
 * mode (no purger thread), ebb_collect(true) must. */
static void *medium_cache_thread(void *arg) {
  (void)arg;
  void *blocks[16];
  for (int i = 0; i < 16; i++) {
    size_t kib = i < 8 ? 9 + (size_t)i : 18 + 2 * (size_t)(i - 8); /* 9..16, 18..32 KiB */
    blocks[i] = malloc(kib * KIB);
    if (blocks[i]) memset(blocks[i], 0x5a, kib * KIB);
  }
  for (int i = 0; i < 16; i++) free(blocks[i]);
  handoff_reach(1); /* alive, with a full cache, until released */
  return NULL;
}

static void medium_cache_classes(size_t *pages, size_t *live) {
  static ebb_stats_t st;
  ebb_stats_get(&st);
  *pages = *live = 0;
  for (unsigned c = 0; c < EBB_STATS_CLASSES; c++)
    if (st.classes[c].block_size > 8 * KIB && st.classes[c].block_size <= 32 * KIB) {
      *pages += st.classes[c].pages;
      *live += st.classes[c].live_blocks;
    }
}

static void case_medium_cache(const char *mode) {
  bool idle = strcmp(mode, "idle") == 0;
  if (idle) { /* a burst, so the purger thread starts */
    uint64_t seed = 99;
    void **all = NULL;
    chain_fill(&all, &seed, 6, 10, 24 * MIB, 0x61);
    chain_free(all);
  }
  pthread_t t;
  pthread_create(&t, NULL, medium_cache_thread, NULL);
  handoff_await(1);
  size_t pages, live;
  medium_cache_classes(&pages, &live);
  size_t pages_cached = pages, live_cached = live;
  double t0 = now_s(), waited = 0;
  if (idle) { /* no calls into ebb but the statistics' */
    double limit = (double)ebb_option_get("decay_ms") / 1000.0 + 2.0;
    while (pages != 0 && (waited = now_s() - t0) < limit) {
      usleep(20000);
      medium_cache_classes(&pages, &live);
    }
  } else {
    ebb_collect(true);
    medium_cache_classes(&pages, &live);
  }
  printf("medium_cache %s: with the thread's cache full, %zu pages and %zu live blocks of 9-32 KiB; "
         "%s, %zu pages (%.2f s)\n",
         mode, pages_cached, live_cached, idle ? "the thread asleep" : "after ebb_collect(true)", pages,
         waited);
  handoff_release();
  pthread_join(t, NULL);
  EXPECT(pages_cached > 0, "no page of 9-32 KiB blocks in use: the thread's frees were not cached");
  EXPECT(live_cached == 0, "%zu blocks in the thread's medium cache counted as live", live_cached);
  EXPECT(pages == 0, "%zu pages of 9-32 KiB blocks still in use: %s did not give back the thread's "
         "medium cache", pages, idle ? "the purger" : "ebb_collect(true)");
}

/* stranded_pc: 2 producers allocate, 2 consumers free what they receive
 * (every free a remote one); RSS must not keep growing. */
#define QCAP 1024
static void *g_q[QCAP];
static size_t g_qhead, g_qlen;
static pthread_cond_t g_q_nonempty = PTHREAD_COND_INITIALIZER, g_q_nonfull = PTHREAD_COND_INITIALIZER;
static atomic_int g_pc_stop;
static atomic_ullong g_pc_ops, g_pc_bad;

static void *producer(void *arg) {
  uint64_t seed = (uintptr_t)arg;
  while (!atomic_load(&g_pc_stop)) {
    size_t n = log_size(&seed, 4, 14); /* 16 B .. 16 KiB */
    unsigned char *p = malloc(n);
    if (!p) continue;
    memset(p, (int)(n & 0xff), n);
    memcpy(p, &n, sizeof n); /* the consumer checks the last byte */
    pthread_mutex_lock(&g_mu);
    while (g_qlen == QCAP && !atomic_load(&g_pc_stop)) pthread_cond_wait(&g_q_nonfull, &g_mu);
    if (g_qlen == QCAP) {
      pthread_mutex_unlock(&g_mu);
      free(p);
      break;
    }
    g_q[(g_qhead + g_qlen++) % QCAP] = p;
    pthread_cond_signal(&g_q_nonempty);
    pthread_mutex_unlock(&g_mu);
  }
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  unsigned long long ops = 0;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    while (g_qlen == 0 && !atomic_load(&g_pc_stop)) pthread_cond_wait(&g_q_nonempty, &g_mu);
    if (g_qlen == 0) {
      pthread_mutex_unlock(&g_mu);
      break;
    }
    unsigned char *p = g_q[g_qhead];
    g_qhead = (g_qhead + 1) % QCAP;
    g_qlen--;
    pthread_cond_signal(&g_q_nonfull);
    pthread_mutex_unlock(&g_mu);
    size_t n;
    memcpy(&n, p, sizeof n);
    if (n < 16 || n > malloc_usable_size(p) || p[n - 1] != (unsigned char)(n & 0xff))
      atomic_fetch_add(&g_pc_bad, 1);
    free(p);
    ops++;
  }
  atomic_fetch_add(&g_pc_ops, ops);
  return NULL;
}

static void case_stranded_pc(void) {
  enum { PAIRS = 2 };
#ifndef PC_SECONDS
#define PC_SECONDS 3.0
#endif
  const double run_s = PC_SECONDS;
  const size_t growth_max = 30 * MIB, runaway = 512 * MIB;
  pthread_t prod[PAIRS], cons[PAIRS];
  size_t base = rss_now();
  for (int i = 0; i < PAIRS; i++) {
    pthread_create(&prod[i], NULL, producer, (void *)(uintptr_t)(i * 31 + 5));
    pthread_create(&cons[i], NULL, consumer, NULL);
  }
  double t0 = now_s();
  size_t at1 = 0, max = 0, end = 0;
  bool runaway_seen = false;
  for (;;) {
    sleep_ms(100);
    double t = now_s() - t0;
    size_t r = rss_now();
    if (r > max) max = r;
    if (at1 == 0 && t >= 1.0) at1 = r;
    if (at1 && r > at1 + runaway) runaway_seen = true; /* stop before it hurts the machine */
    if (t >= run_s || runaway_seen) {
      end = r;
      break;
    }
  }
  atomic_store(&g_pc_stop, 1);
  pthread_mutex_lock(&g_mu);
  pthread_cond_broadcast(&g_q_nonempty);
  pthread_cond_broadcast(&g_q_nonfull);
  pthread_mutex_unlock(&g_mu);
  for (int i = 0; i < PAIRS; i++) pthread_join(prod[i], NULL);
  for (int i = 0; i < PAIRS; i++) pthread_join(cons[i], NULL);
  for (size_t i = 0; i < g_qlen; i++) free(g_q[(g_qhead + i) % QCAP]);
  g_qlen = 0;
  printf("stranded_pc (%d producers, %d consumers, %.0f s): %llu remote frees; RSS base %.1f MiB, "
         "at 1 s %.1f MiB, at the end %.1f MiB (growth %+.1f MiB, bound %.0f), max %.1f MiB\n",
         PAIRS, PAIRS, run_s, (unsigned long long)atomic_load(&g_pc_ops), mib(base), mib(at1), mib(end),
         mib(end) - mib(at1), mib(growth_max), mib(max));
  EXPECT(atomic_load(&g_pc_bad) == 0, "%llu objects arrived damaged",
         (unsigned long long)atomic_load(&g_pc_bad));
  EXPECT(atomic_load(&g_pc_ops) > 10000, "only %llu objects went through the queue",
         (unsigned long long)atomic_load(&g_pc_ops));
  EXPECT(!runaway_seen && end <= at1 + growth_max,
         "RSS grew from %.1f MiB at 1 s to %.1f MiB%s while the live set stayed bounded", mib(at1),
         mib(end), runaway_seen ? " (stopped early)" : "");
}

/* ---- the driver ----------------------------------------------------------------------------------- */
typedef struct {
  const char *name, *mode;
  const char *env[6]; /* "NAME=value"; NULL-terminated */
  bool own_cgroup;    /* the case sets EBB_CGROUP_PATH itself */
} case_t;

static char g_empty_dir[64], g_v2_dir[64], g_v1_dir[64];
static char g_last_output[16384];

/* Run one case in a fresh process; show its output; true if it passed. */
static bool run_case(const case_t *c) {
  int fds[2];
  if (pipe(fds) != 0) {
    perror("pipe");
    return false;
  }
  fflush(NULL);
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return false;
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[1]);
    /* A clean environment: no inherited EBB_* variables. */
    extern char **environ;
    for (;;) {
      char **e = environ;
      while (*e && strncmp(*e, "EBB_", 4) != 0) e++;
      if (*e == NULL) break;
      char name[256];
      size_t len = strcspn(*e, "=");
      if (len >= sizeof name) len = sizeof name - 1;
      memcpy(name, *e, len);
      name[len] = 0;
      unsetenv(name);
    }
    if (!c->own_cgroup) setenv("EBB_CGROUP_PATH", g_empty_dir, 1);
    for (int i = 0; c->env[i]; i++) putenv((char *)c->env[i]);
    char *argv[] = {"t_purge", (char *)c->name, (char *)(c->mode ? c->mode : ""), NULL};
    execv("/proc/self/exe", argv);
    perror("execv /proc/self/exe");
    _exit(127);
  }
  close(fds[1]);
  read_child_output(fds[0], g_last_output, sizeof g_last_output);
  int st = wait_child(pid);
  double secs = now_s() - t0;
  bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  printf("%s  %s%s%s", ok ? "PASS" : "FAIL", c->name, c->mode ? " " : "", c->mode ? c->mode : "");
  for (int i = 0; c->env[i]; i++) printf(" %s", c->env[i]);
  if (WIFSIGNALED(st)) printf("  (killed by signal %d)", WTERMSIG(st));
  else if (!ok) printf("  (exit %d)", WEXITSTATUS(st));
  printf("  [%.1f s]\n", secs);
  for (char *line = g_last_output; *line;) {
    char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    printf("    %.*s\n", (int)len, line);
    line += len + (nl != NULL);
  }
  return ok;
}

static bool write_file(const char *dir, const char *name, const char *text) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
  close(fd);
  return ok;
}

static void remove_dir(const char *dir) {
  static const char *files[] = {"memory.max", "memory.limit_in_bytes"};
  char path[128];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

static bool make_dir(char *buf, size_t cap, const char *tag) {
  const char *tmp = getenv("TMPDIR");
  snprintf(buf, cap, "%s/t_purge_%s_XXXXXX", tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp", tag);
  return mkdtemp(buf) != NULL;
}

/* successor: a thread started after others exited takes its next page from
 * an exited thread's resident free run before it touches clean slices of a
 * segment it already has (segment.c, reclaimed_resident_run).  `older`
 * allocates 64 blocks of 500 B and exits with them live: its segment's
 * free slices were never touched.  `emptied`, started while `older` ran (so
 * on a segment of its own), allocates 512 blocks of 1000 B, frees all but
 * one after `older` has exited, and exits: its segment has resident free
 * runs.  A new thread's first call frees one of `older`'s blocks, which
 * hands it `older`'s segment; its first block of 1000 B then needs a page,
 * and must get it on `emptied`'s resident slices, not on `older`'s clean
 * ones.  Purging is off (decay -1) and runs in allocator calls only
 * (background=0), so nothing else moves the segments. */
#define SUCCESSOR_OLD_SIZE 500
#define SUCCESSOR_SIZE 1000
#define SUCCESSOR_BLOCKS 512
static _Atomic int g_successor_step;
static void successor_wait(int step) {
  while (atomic_load(&g_successor_step) < step) sched_yield();
}
static void *successor_older(void *arg) {
  void **blocks = arg;
  for (int i = 0; i < 64; i++) {
    blocks[i] = malloc(SUCCESSOR_OLD_SIZE);
    if (blocks[i]) memset(blocks[i], 0x31, SUCCESSOR_OLD_SIZE);
  }
  atomic_store(&g_successor_step, 1);
  successor_wait(2); /* `emptied` has its segment: exit */
  return NULL;
}
static void *successor_emptied(void *arg) {
  void **kept = arg;
  void *blocks[SUCCESSOR_BLOCKS];
  for (int i = 0; i < SUCCESSOR_BLOCKS; i++) {
    blocks[i] = malloc(SUCCESSOR_SIZE);
    if (blocks[i]) memset(blocks[i], 0x32, SUCCESSOR_SIZE);
  }
  atomic_store(&g_successor_step, 2);
  successor_wait(3); /* `older` has exited */
  for (int i = 0; i < SUCCESSOR_BLOCKS - 1; i++) free(blocks[i]);
  *kept = blocks[SUCCESSOR_BLOCKS - 1];
  return NULL;
}
static void *g_successor_inherited;
static void *successor_new(void *arg) {
  void **got = arg;
  free(g_successor_inherited); /* the first call: takes `older`'s segment over */
  *got = malloc(SUCCESSOR_SIZE);
  if (*got) memset(*got, 0x33, SUCCESSOR_SIZE);
  return NULL;
}
static bool same_segment(const void *a, const void *b) {
  return (((uintptr_t)a ^ (uintptr_t)b) >> 22) == 0; /* EBB_SEGMENT_SHIFT: 4 MiB segments */
}
static void case_successor(void) {
  void *older_blocks[64] = {NULL}, *kept = NULL, *got = NULL;
  pthread_t older, emptied, successor;
  pthread_create(&older, NULL, successor_older, older_blocks);
  successor_wait(1);
  pthread_create(&emptied, NULL, successor_emptied, &kept);
  pthread_join(older, NULL);
  atomic_store(&g_successor_step, 3);
  pthread_join(emptied, NULL);
  g_successor_inherited = older_blocks[0];
  older_blocks[0] = NULL;
  pthread_create(&successor, NULL, successor_new, &got);
  pthread_join(successor, NULL);
  printf("successor: older's block %p, emptied's kept block %p, the new thread's block %p\n",
         older_blocks[1], kept, got);
  EXPECT(got != NULL && kept != NULL && older_blocks[1] != NULL, "an allocation failed");
  EXPECT(!same_segment(older_blocks[1], kept), "the two exited threads shared a segment");
  EXPECT(same_segment(got, kept),
         "the new thread's page is not on the resident free slices an exited thread left (its block "
         "is %s)", same_segment(got, older_blocks[1]) ? "on the clean slices of the segment it took over"
                                                       : "elsewhere");
  free(got);
  free(kept);
  for (int i = 1; i < 64; i++) free(older_blocks[i]);
}

static int driver(void) {
  if (!make_dir(g_empty_dir, sizeof g_empty_dir, "none") || !make_dir(g_v2_dir, sizeof g_v2_dir, "v2") ||
      !make_dir(g_v1_dir, sizeof g_v1_dir, "v1")) {
    perror("mkdtemp");
    return 1;
  }
  int failed = 0, total = 0;
  double t0 = now_s();

  static const case_t first[] = {
      {"burst_idle", "fall", {NULL}, false},
      {"burst_idle", "high", {"EBB_DECAY_MS=-1", NULL}, false},
      {"burst_idle", "late", {"EBB_DECAY_MS=2000", NULL}, false},
      {"burst_calls", NULL, {"EBB_BACKGROUND=0", NULL}, false},
      {"trim", NULL, {"EBB_DECAY_MS=-1", NULL}, false},
  };
  for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
    total++;
    failed += !run_case(&first[i]);
  }
  /* The limits: 1.25 times the burst's peak as the trim case saw it. */
  size_t peak = 0;
  const char *at = strstr(g_last_output, "burst peak bytes: ");
  if (at) peak = (size_t)strtoull(at + strlen("burst peak bytes: "), NULL, 10);
  if (peak < BURST_BYTES / 2) {
    fprintf(stderr, "t_purge: no burst peak from the trim case; using 280 MiB\n");
    peak = 280 * MIB;
  }
  size_t limit = peak + peak / 4;
  static char lim_env[64], lim_want[64], v2_env[96], v1_env[96], num[32];
  snprintf(num, sizeof num, "%zu\n", limit);
  snprintf(lim_env, sizeof lim_env, "EBB_MEMORY_LIMIT=%zu", limit);
  snprintf(lim_want, sizeof lim_want, "T_PURGE_LIMIT=%zu", limit);
  snprintf(v2_env, sizeof v2_env, "EBB_CGROUP_PATH=%s", g_v2_dir);
  snprintf(v1_env, sizeof v1_env, "EBB_CGROUP_PATH=%s", g_v1_dir);
  if (!write_file(g_v2_dir, "memory.max", num) || !write_file(g_v1_dir, "memory.limit_in_bytes", num)) {
    perror("writing the fake cgroup files");
    failed++;
  }
  const case_t rest[] = {
      {"limit", "explicit", {"EBB_DECAY_MS=-1", lim_env, lim_want, NULL}, false},
      {"limit", "cgroup-v2", {"EBB_DECAY_MS=-1", v2_env, lim_want, NULL}, true},
      {"limit", "cgroup-v1", {"EBB_DECAY_MS=-1", v1_env, lim_want, NULL}, true},
      {"hard_limit", NULL, {"EBB_HARD_LIMIT=1", "EBB_MEMORY_LIMIT=96M", NULL}, false},
      {"hard_untouched", NULL, {"EBB_HARD_LIMIT=1", "EBB_MEMORY_LIMIT=512M", NULL}, false},
      {"fork_exit", NULL, {"EBB_DECAY_MS=20", NULL}, false},
      {"stranded_idle", NULL, {NULL}, false},
      {"remote_late", NULL, {"EBB_DECAY_MS=2000", NULL}, false},
      {"growth", NULL, {"EBB_DECAY_MS=10000", NULL}, false},
      {"exited_owner", NULL, {NULL}, false},
      {"stranded_pc", NULL, {NULL}, false},
      {"big_idle", NULL, {NULL}, false},
      {"medium_idle", NULL, {NULL}, false},
      {"medium_shared", NULL, {NULL}, false},
      {"medium_cache", "idle", {NULL}, false},
      {"medium_cache", "collect", {"EBB_BACKGROUND=0", NULL}, false},
      {"successor", NULL, {"EBB_BACKGROUND=0", "EBB_DECAY_MS=-1", NULL}, false},
  };
  for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
    total++;
    failed += !run_case(&rest[i]);
  }
  remove_dir(g_empty_dir);
  remove_dir(g_v2_dir);
  remove_dir(g_v1_dir);
  printf("t_purge: %d of %d cases passed in %.1f s\n", total - failed, total, now_s() - t0);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  g_page_size = (size_t)sysconf(_SC_PAGESIZE);
  if (argc < 2) return driver();
  g_case = argv[1];
  const char *mode = argc > 2 ? argv[2] : "";
  alarm(120); /* a case that hangs is killed, and the driver says so */
  if (strcmp(g_case, "burst_idle") == 0) case_burst_idle(mode);
  else if (strcmp(g_case, "burst_calls") == 0) case_burst_calls();
  else if (strcmp(g_case, "trim") == 0) case_trim();
  else if (strcmp(g_case, "limit") == 0) case_limit(mode);
  else if (strcmp(g_case, "hard_limit") == 0) case_hard_limit();
  else if (strcmp(g_case, "hard_untouched") == 0) case_hard_untouched();
  else if (strcmp(g_case, "fork_exit") == 0) case_fork_exit();
  else if (strcmp(g_case, "stranded_idle") == 0) case_stranded_idle();
  else if (strcmp(g_case, "remote_late") == 0) case_remote_late();
  else if (strcmp(g_case, "growth") == 0) case_growth();
  else if (strcmp(g_case, "exited_owner") == 0) case_exited_owner();
  else if (strcmp(g_case, "stranded_pc") == 0) case_stranded_pc();
  else if (strcmp(g_case, "big_idle") == 0) case_big_idle();
  else if (strcmp(g_case, "medium_idle") == 0) case_medium_idle();
  else if (strcmp(g_case, "medium_shared") == 0) case_medium_shared();
  else if (strcmp(g_case, "medium_cache") == 0) case_medium_cache(mode);
  else if (strcmp(g_case, "successor") == 0) case_successor();
  else {
    fprintf(stderr, "t_purge: unknown case \"%s\"\n", g_case);
    return 2;
  }
  if (test_failures) {
    fprintf(stderr, "t_purge %s: %d checks failed\n", g_case, test_failures);
    return 1;
  }
  return 0;
}
