/* thread_churn: short-lived threads, in two modes.
 *
 * -m churn (the default) models a program that starts a small thread for
 * each little task (a callback, a timer, a request handed off): rounds of
 * T threads (default 10, started together and joined together); each thread
 * allocates one object of 16..256 B, stamps it, swaps it with an atomic
 * exchange into a random slot of a shared array of 768 slots, checks and
 * frees the object it took out (if any), and exits.  1800 * SCALE rounds.
 * The live data stays under 200 KiB, so the time is thread start and exit
 * and what the allocator does when a thread first calls it and when it
 * ends.
 *
 * -m pool models a server that hands work to fresh threads, T at a time
 * (default 32), all working on one shared pool of about 70 MiB: 30000 slots
 * of blocks of log-distributed size 16 B..16 KiB, behind a mutex.  Each of
 * 5000 * SCALE threads takes 384 blocks out of random slots (skipping the
 * slots other threads have emptied and not yet refilled), checks
 * and frees them, allocates as many new ones (stamped, the first 64 bytes
 * and one byte per 4 KiB page written) and puts them back in the slots it
 * emptied.  So nearly every block is freed by a thread other than the one
 * that allocated it, usually one that has already exited.  Then main frees
 * the whole pool and prints "freed_at t=SECONDS", and sleeps for 2 s * SCALE
 * (at least 0.5 s) without any allocator call, printing "sample t=SECONDS
 * live=BYTES rss_kib=KIB" every 0.1 s (also printed between batches while
 * the threads run) from /proc/self/statm, and last "idle_rss_kib=KIB": what
 * is still resident after the sleep.
 *
 * -m task models a long-lived thread (an event loop, main) that starts a
 * worker for each task and keeps working beside it: rounds of T threads
 * (default 2): main and T-1 new ones each make 20000 allocations of mostly
 * small blocks (8..512 B, every size alike, so ~40 classes, some seldom
 * used; 1% up to 50 KiB, 0.1% up to 512 KiB; stamped and written whole),
 * keep the last 2048 in a ring (a new block frees the one
 * in its ring slot) and swap every fourth into a random slot of a shared
 * array of 1000 (freeing what comes out); the new threads free their ring
 * at the end of the round (and exit, main does not).  60 * SCALE rounds;
 * the live data stays under 3 MiB.
 *
 * Measures: the cost of a thread's first and last allocator calls (its
 * heap or cache set up and torn down), and whether memory held by threads
 * that have exited, or freed into their heaps afterwards, is reused and in
 * the end given back (-m task: reused by the next task's thread, not only
 * by the long-lived one).  ops = malloc + free calls (fixed for a given
 * -t/-s).
 */

#define WL_NAME "thread_churn"
#define WL_OPTS "m:"
#define WL_OPTS_USAGE " [-m churn|pool|task]"

#include "wl.h"

enum { MODE_CHURN, MODE_POOL, MODE_TASK };
static int g_mode = MODE_CHURN;

static int wl_option(int c, const char *arg)
{
    if (c != 'm')
        return 0;
    if (strcmp(arg, "churn") == 0)
        g_mode = MODE_CHURN;
    else if (strcmp(arg, "pool") == 0)
        g_mode = MODE_POOL;
    else if (strcmp(arg, "task") == 0)
        g_mode = MODE_TASK;
    else
        return 0;
    return 1;
}

static double g_t0;

/* ---- -m churn ---------------------------------------------------------------- */

#define CHURN_ROUNDS 1800 /* at SCALE=1 */
#define CHURN_THREADS 10  /* per round, unless -t */
#define CHURN_SLOTS 768
#define CHURN_MIN 16
#define CHURN_MAX 256

static _Atomic(void *) g_churn_slot[CHURN_SLOTS];

/* Writes the owner's number after the size stamp (blocks are >= 16 B). */
static void mark(void *p, uint32_t who)
{
    memcpy((char *)p + 4, &who, 4);
}

static uint32_t mark_of(const void *p)
{
    uint32_t who;
    memcpy(&who, (const char *)p + 4, 4);
    return who;
}

static void *churn_thread(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t who = w->iters; /* this thread's number over all the rounds */
    uint64_t rng = rng_seed(who);
    size_t n = rng_range(&rng, CHURN_MIN, CHURN_MAX);
    void *p = malloc(n);
    stamp(p, n);
    mark(p, (uint32_t)who);
    size_t k = (size_t)(rng_next(&rng) % CHURN_SLOTS);
    void *old = atomic_exchange_explicit(&g_churn_slot[k], p, memory_order_acq_rel);
    w->ops++;
    if (old) {
        size_t m = check(old, CHURN_MAX);
        uint32_t o = mark_of(old);
        uint64_t r2 = rng_seed(o); /* the owner's size, again */
        if (rng_range(&r2, CHURN_MIN, CHURN_MAX) != m)
            fail("block %p: damaged contents", old);
        free(old);
        w->ops++;
    }
    return NULL;
}

static uint64_t run_churn(void)
{
    int T = g_threads_given ? g_threads : CHURN_THREADS;
    uint64_t rounds = scaled(CHURN_ROUNDS, 1);
    wl_workers(T, 0);
    for (uint64_t r = 0; r < rounds; r++) {
        for (int i = 0; i < T; i++)
            g_workers[i].iters = r * (uint64_t)T + (uint64_t)i;
        wl_start(churn_thread);
        join_threads(g_tids, T);
    }
    uint64_t ops = 0;
    for (int i = 0; i < T; i++)
        ops += g_workers[i].ops;
    for (size_t k = 0; k < CHURN_SLOTS; k++) {
        void *p = atomic_load_explicit(&g_churn_slot[k], memory_order_relaxed);
        if (p) {
            check(p, CHURN_MAX);
            free(p);
            ops++;
        }
    }
    return ops;
}

/* ---- -m pool ------------------------------------------------------------------ */

#define POOL_THREADS_TOTAL 5000 /* at SCALE=1 */
#define POOL_THREADS 32         /* at a time, unless -t */
#define POOL_SLOTS 30000        /* x ~2.4 KiB on average: ~70 MiB */
#define POOL_TAKE 384           /* slots a thread picks */
#define POOL_MAX ((size_t)1 << 14)
#define BASE_SLEEP 2.0          /* seconds of quiet at SCALE=1 */
#define TICK_NS 100000000L

static struct {
    pthread_mutex_t lock;
    void *slot[POOL_SLOTS];
} g_pool = { .lock = PTHREAD_MUTEX_INITIALIZER };
static _Atomic int64_t g_pool_live; /* bytes in the pool and in threads' hands */
static int g_take;                  /* POOL_TAKE, less if T threads would empty half the pool */

static size_t pool_size(uint64_t *rng)
{
    return rng_log(rng, 4, 14); /* 16 B .. 16 KiB */
}

/* A new block for slot k: stamped, its first 64 bytes and one byte per
   page written. */
static void *pool_new(uint64_t *rng, size_t k)
{
    size_t n = pool_size(rng);
    unsigned char *p = malloc(n);
    stamp(p, n);
    size_t head = n - 1 < 64 ? n - 1 : 64;
    memset(p + 4, (int)(k & 0xFF), head - 4);
    for (size_t off = 4096; off < n - 1; off += 4096)
        p[off] = (unsigned char)(k + (off >> 12));
    atomic_fetch_add_explicit(&g_pool_live, (int64_t)n, memory_order_relaxed);
    return p;
}

/* Checks the block of slot k and frees it; returns its size. */
static void pool_drop(unsigned char *p, size_t k)
{
    size_t n = check(p, POOL_MAX);
    if (p[4] != (unsigned char)(k & 0xFF))
        fail("block %p: damaged contents", (void *)p);
    size_t last = (n - 2) / 4096 * 4096;
    if (last >= 4096 && p[last] != (unsigned char)(k + (last >> 12)))
        fail("block %p: damaged page byte", (void *)p);
    free(p);
    atomic_fetch_sub_explicit(&g_pool_live, (int64_t)n, memory_order_relaxed);
}

static void *pool_thread(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed(w->iters + 1000); /* iters: the thread's number */
    void *taken[POOL_TAKE];
    uint32_t idx[POOL_TAKE];
    int m = 0;
    pthread_mutex_lock(&g_pool.lock);
    while (m < g_take) { /* the other threads hold at most half the slots */
        size_t k = (size_t)(rng_next(&rng) % POOL_SLOTS);
        if (g_pool.slot[k]) { /* empty: a thread (maybe us) has its block */
            taken[m] = g_pool.slot[k];
            idx[m++] = (uint32_t)k;
            g_pool.slot[k] = NULL;
        }
    }
    pthread_mutex_unlock(&g_pool.lock);
    for (int j = 0; j < m; j++)
        pool_drop(taken[j], idx[j]);
    for (int j = 0; j < m; j++)
        taken[j] = pool_new(&rng, idx[j]);
    pthread_mutex_lock(&g_pool.lock);
    for (int j = 0; j < m; j++) /* only we put a block back into these */
        g_pool.slot[idx[j]] = taken[j];
    pthread_mutex_unlock(&g_pool.lock);
    w->ops += 2 * (uint64_t)m;
    return NULL;
}

static uint64_t g_last_rss;

static void emit_sample(void)
{
    char buf[128], *p = buf;
    int64_t live = atomic_load_explicit(&g_pool_live, memory_order_relaxed);
    g_last_rss = rss_kib_now();
    p = put_str(p, "sample t=");
    p = put_secs(p, now_sec() - g_t0);
    p = put_str(p, " live=");
    p = put_u64(p, live > 0 ? (uint64_t)live : 0);
    p = put_str(p, " rss_kib=");
    p = put_u64(p, g_last_rss);
    *p++ = '\n';
    put_line(buf, (size_t)(p - buf));
}

static uint64_t run_pool(void)
{
    int T = g_threads_given ? g_threads : POOL_THREADS;
    uint64_t total = scaled(POOL_THREADS_TOTAL, 1);
    g_take = POOL_SLOTS / 2 / T < POOL_TAKE ? POOL_SLOTS / 2 / T : POOL_TAKE;
    double quiet = BASE_SLEEP * g_scale;
    if (quiet < 0.5)
        quiet = 0.5;
    uint64_t ops = 0;
    uint64_t rng = rng_seed(999);
    for (size_t k = 0; k < POOL_SLOTS; k++)
        g_pool.slot[k] = pool_new(&rng, k);
    ops += POOL_SLOTS;
    wl_workers(T, 0);
    emit_sample();
    double next = now_sec() + 0.1;
    for (uint64_t started = 0; started < total;) {
        int n = total - started < (uint64_t)T ? (int)(total - started) : T;
        for (int i = 0; i < n; i++)
            g_workers[i].iters = started + (uint64_t)i;
        start_threads(g_tids, n, pool_thread, g_workers, sizeof *g_workers);
        join_threads(g_tids, n);
        started += (uint64_t)n;
        if (now_sec() >= next) {
            emit_sample();
            next += 0.1;
        }
    }
    for (int i = 0; i < T; i++)
        ops += g_workers[i].ops;
    for (size_t k = 0; k < POOL_SLOTS; k++) {
        pool_drop(g_pool.slot[k], k);
        g_pool.slot[k] = NULL;
    }
    ops += POOL_SLOTS;
    if (atomic_load_explicit(&g_pool_live, memory_order_relaxed) != 0)
        fail("%lld bytes still counted live after freeing the pool",
             (long long)atomic_load_explicit(&g_pool_live, memory_order_relaxed));
    put_time_line("freed_at", now_sec() - g_t0);
    emit_sample();

    /* The quiet period: no allocator calls anywhere in the process. */
    wl_quiet_period(quiet, TICK_NS, emit_sample);
    char buf[64], *p = buf;
    p = put_str(p, "idle_rss_kib=");
    p = put_u64(p, g_last_rss);
    *p++ = '\n';
    put_line(buf, (size_t)(p - buf));
    return ops;
}

/* ---- -m task ------------------------------------------------------------------ */

#define TASK_ROUNDS 60   /* at SCALE=1 */
#define TASK_THREADS 2   /* main and one new thread a round, unless -t */
#define TASK_ALLOCS 20000
#define TASK_RING 2048
#define TASK_SLOTS 1000
#define TASK_MAX ((size_t)512 << 10)

static _Atomic(void *) g_task_slot[TASK_SLOTS];

static size_t task_size(uint64_t *rng)
{
    size_t n = rng_range(rng, 8, 512);
    unsigned r = (unsigned)(rng_next(rng) % 1000);
    if (r == 0)
        n *= 1000; /* 0.1%: up to 512 KiB */
    else if (r < 11)
        n *= 100;  /* 1%: up to 50 KiB */
    return n;
}

static void task_drop(void *p)
{
    size_t n = check(p, TASK_MAX);
    const unsigned char *b = p;
    if (n > 8 && b[n / 2] != (unsigned char)n)
        fail("block %p: damaged contents", p);
    free(p);
}

/* One round's work on this thread; ring[] is its own (kept by main). */
static uint64_t task_work(uint64_t *rng, void **ring)
{
    uint64_t ops = 0;
    for (int i = 0; i < TASK_ALLOCS; i++) {
        size_t n = task_size(rng);
        unsigned char *p = malloc(n);
        stamp(p, n);
        if (n > 8)
            memset(p + 4, (int)(unsigned char)n, n - 5);
        ops++;
        void *old;
        uint64_t r = rng_next(rng);
        if (r % 4 == 0) {
            old = atomic_exchange_explicit(&g_task_slot[(r >> 8) % TASK_SLOTS], p, memory_order_acq_rel);
        } else {
            size_t k = (size_t)((r >> 8) % TASK_RING);
            old = ring[k];
            ring[k] = p;
        }
        if (old) {
            task_drop(old);
            ops++;
        }
    }
    return ops;
}

static uint64_t task_free_ring(void **ring)
{
    uint64_t ops = 0;
    for (size_t k = 0; k < TASK_RING; k++)
        if (ring[k]) {
            task_drop(ring[k]);
            ring[k] = NULL;
            ops++;
        }
    return ops;
}

static void *task_thread(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed(w->iters + 7);
    void **ring = calloc(TASK_RING, sizeof *ring);
    if (!ring)
        fail("out of memory");
    w->ops += task_work(&rng, ring);
    w->ops += task_free_ring(ring);
    free(ring);
    w->ops += 2;
    return NULL;
}

static uint64_t run_task(void)
{
    int T = g_threads_given ? g_threads : TASK_THREADS;
    if (T < 2)
        T = 2;
    uint64_t rounds = scaled(TASK_ROUNDS, 1);
    uint64_t rng = rng_seed(4242), ops = 0;
    void **ring = calloc(TASK_RING, sizeof *ring);
    if (!ring)
        fail("out of memory");
    wl_workers(T - 1, 0);
    for (uint64_t r = 0; r < rounds; r++) {
        for (int i = 0; i < T - 1; i++)
            g_workers[i].iters = r * (uint64_t)T + (uint64_t)i;
        wl_start(task_thread);
        ops += task_work(&rng, ring);
        ops += task_free_ring(ring);
        join_threads(g_tids, T - 1);
    }
    for (int i = 0; i < T - 1; i++)
        ops += g_workers[i].ops;
    free(ring);
    for (size_t k = 0; k < TASK_SLOTS; k++) {
        void *p = atomic_load_explicit(&g_task_slot[k], memory_order_relaxed);
        if (p) {
            task_drop(p);
            ops++;
        }
    }
    return ops + 2;
}

int main(int argc, char **argv)
{
    g_t0 = now_sec();
    parse_args(argc, argv);
    uint64_t ops = g_mode == MODE_POOL ? run_pool() : g_mode == MODE_TASK ? run_task() : run_churn();
    wl_put_ops(ops);
    wl_free_workers();
    return 0;
}
