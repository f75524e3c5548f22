/* wl.h: what the benchmark workloads in this folder have in common.
 *
 * A workload is one C file that defines WL_NAME (its name, used in messages)
 * and then includes this header before anything else:
 *
 *     #define WL_NAME "tight_fixed"
 *     #include "wl.h"
 *
 * (burst and service also define WL_LIVE, cache_scratch WL_WORKER_EXTRA: see
 * wl_worker_t below.)
 *
 * The header brings in the system headers (with _GNU_SOURCE) and only holds
 * static (nearly all inline) functions, macros and file-scope statics, so
 * each workload is still compiled on its own, as one file, with no library
 * of ours:
 *
 *     cc -std=gnu11 -O2 -g -pthread -fno-builtin-malloc -fno-builtin-free \
 *        -fno-builtin-calloc -fno-builtin-realloc NAME.c -o NAME -lm
 *
 * In here: the command line (-t THREADS, -s SCALE, and a workload's own
 * options), failure reports, the per-thread random generator, timing,
 * output with write(2) and the RSS read from /proc/self/statm (for phases
 * without allocator calls), block stamps and their checks, thread
 * start and join, and the usual shape of main(): n worker threads, each with
 * its share of the work, whose allocator calls are summed into "ops=N", the
 * last line of stdout.  Also the hot-object loop that cache_thrash and
 * cache_scratch both run.
 */

#ifndef WL_H
#define WL_H

#ifndef WL_NAME
#error "define WL_NAME before including wl.h"
#endif

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- command line -------------------------------------------------------- */

static int g_threads;         /* -t: worker threads (default: online CPUs)   */
static int g_threads_given;   /* whether -t was on the command line          */
static double g_scale = 1.0;  /* -s: multiplier of the amount of work        */

/* A workload with options of its own defines, before including wl.h,
   WL_OPTS (their getopt letters, e.g. "m:") and WL_OPTS_USAGE (e.g.
   " [-m churn|pool]"), and then defines wl_option(): called with each such
   option letter and its argument, it returns 0 if the argument is bad. */
#ifdef WL_OPTS
#define WL_HAS_OPTS 1
static int wl_option(int c, const char *arg);
#else
#define WL_OPTS ""
#define WL_OPTS_USAGE ""
#endif

static inline void usage(void) __attribute__((noreturn));
static inline void usage(void)
{
    fprintf(stderr, "usage: " WL_NAME " [-t THREADS] [-s SCALE]" WL_OPTS_USAGE "\n");
    exit(2);
}

static inline void parse_args(int argc, char **argv)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    g_threads = n > 0 ? (int)n : 1;
    int c;
    while ((c = getopt(argc, argv, "t:s:" WL_OPTS)) != -1) {
        char *end;
        switch (c) {
        case 't':
            errno = 0;
            n = strtol(optarg, &end, 10);
            if (errno || *end || n < 1 || n > 4096)
                usage();
            g_threads = (int)n;
            g_threads_given = 1;
            break;
        case 's':
            errno = 0;
            g_scale = strtod(optarg, &end);
            if (errno || *end || !(g_scale > 0) || !isfinite(g_scale))
                usage();
            break;
        default:
#ifdef WL_HAS_OPTS
            if (c != '?' && c != ':' && wl_option(c, optarg))
                break;
#endif
            usage();
        }
    }
    if (optind != argc)
        usage();
}

/* ---- failures -------------------------------------------------------------- */

/* Report a failed check and stop at once (other threads may still run). */
static inline void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (len < 0)
        len = 0;
    if (len > (int)sizeof buf - 2)
        len = (int)sizeof buf - 2;
    buf[len++] = '\n';
    static const char pre[] = WL_NAME ": FAILED: ";
    if (write(2, pre, sizeof pre - 1) < 0 || write(2, buf, (size_t)len) < 0)
        _exit(1);
    _exit(1);
}

static inline void *xmalloc_or_die(size_t n)
{
    void *p = malloc(n);
    if (!p)
        fail("malloc(%zu) returned NULL", n);
    return p;
}

/* ---- random numbers ---------------------------------------------------------- */

/* xorshift64* seeded through splitmix64: deterministic per thread. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t rng_seed(uint64_t id)
{
    uint64_t z = id * 0x9E3779B97F4A7C15ULL + 0x1234567ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 0x9E3779B97F4A7C15ULL;
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* Roughly log-uniform in [2^lo_bits, 2^hi_bits): a random power-of-two
   bucket, then uniform inside it. */
static inline size_t rng_log(uint64_t *s, unsigned lo_bits, unsigned hi_bits)
{
    uint64_t r = rng_next(s);
    unsigned k = lo_bits + (unsigned)(r % (hi_bits - lo_bits));
    size_t base = (size_t)1 << k;
    return base + (size_t)((r >> 32) & (base - 1));
}

/* ---- time ------------------------------------------------------------------- */

static inline double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void ts_add_ns(struct timespec *ts, long ns)
{
    ts->tv_nsec += ns;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_nsec -= 1000000000L;
        ts->tv_sec++;
    }
}

/* Sleep until the CLOCK_MONOTONIC time *ts. */
static inline void sleep_until(const struct timespec *ts)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ts, NULL) == EINTR)
        ;
}

/* ---- output and RSS without the allocator ---------------------------------------- */

/* For what a workload prints while it must not call the allocator (stdio
   may allocate): text built in a stack buffer and written with write(2). */
static inline char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static inline char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Seconds with three decimals. */
static inline char *put_secs(char *p, double t)
{
    uint64_t ms = t > 0 ? (uint64_t)(t * 1000.0 + 0.5) : 0;
    p = put_u64(p, ms / 1000);
    *p++ = '.';
    *p++ = (char)('0' + ms / 100 % 10);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    return p;
}

static inline void put_line(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t k = write(1, buf, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        buf += k;
        len -= (size_t)k;
    }
}

/* Writes "LABEL t=SECONDS" (e.g. "freed_at t=1.234") as one line. */
static inline void put_time_line(const char *label, double t)
{
    char buf[96], *p = buf;
    p = put_str(p, label);
    p = put_str(p, " t=");
    p = put_secs(p, t);
    *p++ = '\n';
    put_line(buf, (size_t)(p - buf));
}

/* The process's resident set in KiB, from /proc/self/statm read with
   open(2)/read(2) (no stdio, so no allocator call); 0 if unreadable. */
static inline uint64_t rss_kib_now(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0)
        return 0;
    buf[k] = 0;
    const char *q = buf;
    while (*q && *q != ' ') /* skip the size field */
        q++;
    uint64_t pages = 0;
    while (*q == ' ')
        q++;
    while (*q >= '0' && *q <= '9')
        pages = pages * 10 + (uint64_t)(*q++ - '0');
    long pg = sysconf(_SC_PAGESIZE);
    return pages * (uint64_t)(pg > 0 ? pg : 4096) / 1024;
}

/* ---- amount of work ------------------------------------------------------------ */

/* base * SCALE, at least `min`. */
static inline uint64_t scaled(double base, uint64_t min)
{
    double v = base * g_scale;
    return v < (double)min ? min : (uint64_t)(v + 0.5);
}

/* Thread i's share of `total` units split over n threads. */
static inline uint64_t share(uint64_t total, int n, int i)
{
    return total / (uint64_t)n + ((uint64_t)i < total % (uint64_t)n ? 1 : 0);
}

/* ---- block stamps ---------------------------------------------------------------- */

/* Block stamp: the block's size in its first 4 bytes and an address- and
   size-dependent tag in its last byte; checked before the block is freed.
   Also checks the ABI alignment (16 for blocks of 16 bytes and more). */
static inline uint8_t tag_of(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p;
    return (uint8_t)((a >> 4) ^ (a >> 12) ^ n ^ (n >> 8) ^ 0x5A);
}

static inline void stamp(void *p, size_t n)
{
    if (!p)
        fail("malloc(%zu) returned NULL", n);
    if (((uintptr_t)p & (n >= 16 ? 15 : 7)) != 0)
        fail("malloc(%zu) returned misaligned %p", n, p);
    uint32_t v = (uint32_t)n;
    memcpy(p, &v, 4);
    ((uint8_t *)p)[n - 1] = tag_of(p, n);
}

/* Returns the stamped size; fails if the stamp is damaged. */
static inline size_t check(const void *p, size_t max)
{
    uint32_t v;
    memcpy(&v, p, 4);
    if (v < 5 || v > max || ((const uint8_t *)p)[v - 1] != tag_of(p, v))
        fail("block %p: damaged stamp (size field %u)", p, v);
    return v;
}

/* ---- threads ------------------------------------------------------------------- */

/* Starts fn on n threads; thread i gets (char *)args + i * argsz. */
static inline void start_threads(pthread_t *th, int n, void *(*fn)(void *), void *args, size_t argsz)
{
    for (int i = 0; i < n; i++) {
        int e = pthread_create(&th[i], NULL, fn, (char *)args + (size_t)i * argsz);
        if (e)
            fail("pthread_create: %s", strerror(e));
    }
}

static inline void join_threads(pthread_t *th, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

/* ---- the workers and main() ------------------------------------------------------ */

/* One worker thread's record.  The padding keeps neighbouring workers'
   counters off each other's cache line.  A workload that defines WL_LIVE
   before including wl.h also gets a counter of the bytes each worker holds
   (and wl_live()); one that defines WL_WORKER_EXTRA gets those fields too.
   Only the workloads that need them have them: the record's size decides
   where main()'s later blocks land, and cache_scratch measures just that. */
typedef struct {
#ifdef WL_LIVE
    _Atomic int64_t live; /* bytes the worker holds now                      */
#endif
    int id;               /* 0..n-1; seeds the thread's generator            */
    uint64_t iters;       /* its share of the work: iterations, rounds, ...  */
#ifdef WL_WORKER_EXTRA
    WL_WORKER_EXTRA
#endif
    uint64_t ops;         /* allocator calls it made, summed by wl_join()    */
    char pad[64];
} wl_worker_t;

static int g_nworkers;             /* set by wl_workers()                     */
static wl_worker_t *g_workers;     /* g_nworkers records                      */
static pthread_t *g_tids;          /* and their threads                       */
static pthread_barrier_t g_barrier; /* for the g_nworkers workers             */

/* n workers with ids 0..n-1, worker i to do share(total, n, i) units of the
   work, and g_barrier for the n of them. */
static inline void wl_workers(int n, uint64_t total)
{
    g_nworkers = n;
    g_workers = calloc((size_t)n, sizeof *g_workers);
    g_tids = calloc((size_t)n, sizeof *g_tids);
    if (!g_workers || !g_tids)
        fail("out of memory");
    pthread_barrier_init(&g_barrier, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        g_workers[i].id = i;
        g_workers[i].iters = share(total, n, i);
    }
}

/* The usual start of main(): the command line, then one worker per thread
   (-t), sharing base * SCALE units of work (at least one each). */
static inline void wl_init(int argc, char **argv, double base)
{
    parse_args(argc, argv);
    wl_workers(g_threads, scaled(base, (uint64_t)g_threads));
}

/* Runs fn(&g_workers[i]) on every worker's thread. */
static inline void wl_start(void *(*fn)(void *))
{
    start_threads(g_tids, g_nworkers, fn, g_workers, sizeof *g_workers);
}

/* Waits for every worker; returns the sum of their ops. */
static inline uint64_t wl_join(void)
{
    join_threads(g_tids, g_nworkers);
    uint64_t ops = 0;
    for (int i = 0; i < g_nworkers; i++)
        ops += g_workers[i].ops;
    return ops;
}

#ifdef WL_LIVE
/* The bytes all the workers hold now, from their live counters. */
static inline int64_t wl_live(void)
{
    int64_t s = 0;
    for (int i = 0; i < g_nworkers; i++)
        s += atomic_load_explicit(&g_workers[i].live, memory_order_relaxed);
    return s;
}
#endif

static inline void wl_free_workers(void)
{
    free(g_workers);
    free(g_tids);
}

/* The end of main(): the last line of stdout, "ops=N"; returns main's 0. */
static inline int wl_done(uint64_t ops)
{
    printf("ops=%llu\n", (unsigned long long)ops);
    wl_free_workers();
    return 0;
}

/* The whole main() of a workload whose threads only need their share of
   base * SCALE units of work: they all run fn, and ops is the sum of theirs. */
static inline int wl_main(int argc, char **argv, double base, void *(*fn)(void *))
{
    wl_init(argc, argv, base);
    wl_start(fn);
    return wl_done(wl_join());
}

/* ---- the hot object of cache_thrash and cache_scratch --------------------------- */

#define HOT_OBJ 8       /* bytes in the object */
#define HOT_WRITES 1000 /* writes to it (a multiple of HOT_OBJ) */

/* n times: allocate a HOT_OBJ-byte object, write it HOT_WRITES times, check
   it and free it.  Returns the allocator calls made.  Kept out of line and
   cache-line aligned: the speed of the write loop depends on where its code
   lands, and this way that does not depend on the code around the call. */
static uint64_t hot_objects(uint64_t n) __attribute__((unused, noinline, aligned(64)));
static uint64_t hot_objects(uint64_t n)
{
    uint64_t ops = 0;
    for (uint64_t i = 0; i < n; i++) {
        volatile unsigned char *p = malloc(HOT_OBJ);
        if (!p)
            fail("malloc(%d) returned NULL", HOT_OBJ);
        if ((uintptr_t)p & 7)
            fail("malloc(%d) returned misaligned %p", HOT_OBJ, (void *)p);
        for (int j = 0; j < HOT_OBJ; j++)
            p[j] = 0;
        for (int j = 0; j < HOT_WRITES; j++)
            p[j & (HOT_OBJ - 1)] += 1;
        if (p[0] != (unsigned char)(HOT_WRITES / HOT_OBJ) ||
            p[HOT_OBJ - 1] != (unsigned char)(HOT_WRITES / HOT_OBJ))
            fail("block %p: damaged contents", (void *)p);
        free((void *)p);
        ops += 2;
    }
    return ops;
}

/* ---- shared by several workloads ------------------------------------------------- */

/* Big blocks (large, large_loop): log-uniform 2^lo_bits..2^hi_bits bytes,
 * stamped, one byte written in every 4 KiB page after the first; checked
 * (stamp, a middle and the last page) and freed by wl_big_drop. */
#define WL_BIG_PAGE 4096
static inline void *wl_big_new(uint64_t *rng, unsigned lo_bits, unsigned hi_bits, size_t *np)
{
    size_t n = rng_log(rng, lo_bits, hi_bits);
    unsigned char *p = malloc(n);
    stamp(p, n);
    unsigned char t = tag_of(p, n);
    for (size_t off = WL_BIG_PAGE; off < n - 1; off += WL_BIG_PAGE)
        p[off] = (unsigned char)(t + (off >> 12));
    *np = n;
    return p;
}

static inline void wl_big_drop(unsigned char *p, size_t n, unsigned hi_bits)
{
    if (check(p, (size_t)1 << hi_bits) != n)
        fail("block %p: size field damaged", (void *)p);
    unsigned char t = tag_of(p, n);
    size_t pages = (n - 2) / WL_BIG_PAGE; /* pages written beyond the first */
    size_t mid = (pages / 2 + 1) * WL_BIG_PAGE, last = pages * WL_BIG_PAGE;
    if (pages > 0 && (p[mid] != (unsigned char)(t + (mid >> 12)) ||
                      p[last] != (unsigned char)(t + (last >> 12))))
        fail("block %p: damaged contents", (void *)p);
    free(p);
}

/* T threads each keep `slots` big blocks and replace a random one
 * w->iters times (large, large_loop). */
static inline void wl_big_replace_loop(wl_worker_t *w, unsigned slots, unsigned lo_bits,
                                       unsigned hi_bits)
{
    uint64_t rng = rng_seed((uint64_t)w->id);
    unsigned char *slot[16];
    size_t size[16];
    if (slots > 16)
        fail("at most 16 slots");
    pthread_barrier_wait(&g_barrier);
    for (unsigned i = 0; i < slots; i++)
        slot[i] = wl_big_new(&rng, lo_bits, hi_bits, &size[i]);
    for (uint64_t i = 0; i < w->iters; i++) {
        unsigned k = (unsigned)(rng_next(&rng) % slots);
        wl_big_drop(slot[k], size[k], hi_bits);
        slot[k] = wl_big_new(&rng, lo_bits, hi_bits, &size[k]);
    }
    for (unsigned i = 0; i < slots; i++)
        wl_big_drop(slot[i], size[i], hi_bits);
    w->ops = 2 * (slots + w->iters);
}

/* A quiet period of `secs` with no allocator calls, calling sample()
 * every tick_ns (burst, thread_churn). */
static inline void wl_quiet_period(double secs, long tick_ns, void (*sample)(void))
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long steps = (long)(secs * 1e9 / (double)tick_ns + 0.5);
    for (long k = 0; k < steps; k++) {
        ts_add_ns(&t, tick_ns);
        sleep_until(&t);
        sample();
    }
}

/* The closing "ops=N" line through write(2) (burst, thread_churn: stdio
 * may allocate, and those two sample RSS with no allocator calls). */
static inline void wl_put_ops(uint64_t ops)
{
    char buf[64], *p = buf;
    p = put_str(p, "ops=");
    p = put_u64(p, ops);
    *p++ = '\n';
    put_line(buf, (size_t)(p - buf));
}

#endif /* WL_H */
