/* burst: a burst of allocation, then a quiet period with little kept.
 *
 * Models: a process that builds a big transient data set (a load spike, a
 * batch import, a cache warm-up), drops almost all of it, then sits idle
 * without calling the allocator (a server between requests, a daemon
 * asleep).  T threads together allocate about 1 GiB * SCALE in objects of
 * log-distributed size 16 B..64 KiB, writing every byte; then each frees
 * all its objects except every 50th (the 2% survivors are spread across
 * all the memory, so no large region is completely empty).  The program
 * prints "freeing_at t=SECONDS" (when the last thread finished allocating
 * and the frees began) and "freed_at t=SECONDS" when all frees are done
 * (so the free phase lasts the difference), then sleeps for
 * 10 s * SCALE (at least 0.2 s; plus 0.5 s of margin when that is at least
 * 1 s), or the seconds given with -q, without any allocator call: the threads wait on a barrier and the
 * main thread prints "sample t=.. live=.." lines every 0.1 s with write(2)
 * from a stack buffer.  Then the survivors are freed and the program exits.
 *
 * Measures: how much memory an allocator gives back to the OS after a
 * burst when the program goes quiet (RSS 1 s and 10 s after the frees,
 * read by the runner), i.e. whether returning memory depends on later
 * allocator calls, on a background thread, or happens at free time.
 * ops = malloc + free calls.
 */

#define WL_NAME "burst"
#define WL_LIVE /* the workers count the bytes they hold */
#define WL_OPTS "q:"
#define WL_OPTS_USAGE " [-q QUIET_SECONDS]"

#include "wl.h"

static double g_quiet = -1; /* -q: the quiet period's length; < 0: from SCALE */

static int wl_option(int c, const char *arg)
{
    char *end;
    errno = 0;
    g_quiet = strtod(arg, &end);
    return c == 'q' && !errno && !*end && g_quiet >= 0.1 && g_quiet <= 3600;
}

#define BASE_BYTES ((double)(1ull << 30)) /* allocated at SCALE=1, all threads */
#define BASE_SLEEP 10.0                     /* seconds of quiet at SCALE=1 */
#define KEEP_EVERY 50
#define TICK_NS 100000000L

static pthread_barrier_t g_release; /* the workers and main */
static _Atomic int g_nfreed;
static _Atomic uint64_t g_freeing_ns; /* when the frees started, after g_t0 */
static double g_t0;

static void emit_sample(void)
{
    char buf[96], *p = buf;
    int64_t live = wl_live();
    p = put_str(p, "sample t=");
    p = put_secs(p, now_sec() - g_t0);
    p = put_str(p, " live=");
    p = put_u64(p, live > 0 ? (uint64_t)live : 0);
    *p++ = '\n';
    put_line(buf, (size_t)(p - buf));
}

/* ---- the workers ---- */

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    /* Count the objects first (w->iters bytes' worth), with a copy of the
       generator. */
    uint64_t r2 = rng;
    size_t count = 0;
    for (uint64_t got = 0; got < w->iters; count++)
        got += rng_log(&r2, 4, 16);
    void **obj = xmalloc_or_die((count ? count : 1) * sizeof(void *));
    uint64_t ops = 1;
    for (size_t i = 0; i < count; i++) {
        size_t n = rng_log(&rng, 4, 16); /* 16 B .. 64 KiB */
        unsigned char *p = malloc(n);
        stamp(p, n);
        memset(p + 4, (int)(i & 0xFF), n - 5);
        obj[i] = p;
        atomic_fetch_add_explicit(&w->live, (int64_t)n, memory_order_relaxed);
    }
    ops += count;
    if (pthread_barrier_wait(&g_barrier) == PTHREAD_BARRIER_SERIAL_THREAD) /* all allocated */
        atomic_store_explicit(&g_freeing_ns, (uint64_t)((now_sec() - g_t0) * 1e9),
                              memory_order_relaxed);
    for (size_t i = 0; i < count; i++) {
        if (i % KEEP_EVERY == 0)
            continue;
        size_t n = check(obj[i], 65536);
        if (((unsigned char *)obj[i])[n / 2 + 2] != (unsigned char)(i & 0xFF))
            fail("block %p: damaged contents", obj[i]);
        free(obj[i]);
        ops++;
        atomic_fetch_sub_explicit(&w->live, (int64_t)n, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&g_nfreed, 1, memory_order_release);
    /* Quiet period: no allocator calls until the main thread lets us go. */
    pthread_barrier_wait(&g_release);
    for (size_t i = 0; i < count; i += KEEP_EVERY) {
        size_t n = check(obj[i], 65536);
        free(obj[i]);
        ops++;
        atomic_fetch_sub_explicit(&w->live, (int64_t)n, memory_order_relaxed);
    }
    free(obj);
    ops++;
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    g_t0 = now_sec();
    parse_args(argc, argv);
    int T = g_threads;
    uint64_t total = scaled(BASE_BYTES, 1 << 20);
    double quiet = BASE_SLEEP * g_scale;
    if (quiet < 0.2)
        quiet = 0.2;
    else if (quiet >= 1.0)
        quiet += 0.5;
    if (g_quiet > 0)
        quiet = g_quiet;
    wl_workers(T, total); /* bytes to allocate */
    pthread_barrier_init(&g_release, NULL, (unsigned)T + 1);
    wl_start(worker);

    /* Sample every 0.1 s while the burst runs; poll for its end every 1 ms. */
    struct timespec tick, next;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    next = tick;
    emit_sample();
    ts_add_ns(&next, TICK_NS);
    while (atomic_load_explicit(&g_nfreed, memory_order_acquire) < T) {
        ts_add_ns(&tick, 1000000L);
        sleep_until(&tick);
        if (tick.tv_sec > next.tv_sec || (tick.tv_sec == next.tv_sec && tick.tv_nsec >= next.tv_nsec)) {
            emit_sample();
            ts_add_ns(&next, TICK_NS);
        }
    }
    double freed = now_sec() - g_t0;
    put_time_line("freeing_at",
                  (double)atomic_load_explicit(&g_freeing_ns, memory_order_relaxed) * 1e-9);
    put_time_line("freed_at", freed);
    emit_sample();

    /* The quiet period: no allocator calls anywhere in the process. */
    wl_quiet_period(quiet, TICK_NS, emit_sample);
    pthread_barrier_wait(&g_release);
    uint64_t ops = wl_join();
    emit_sample();
    wl_put_ops(ops);
    wl_free_workers();
    return 0;
}
