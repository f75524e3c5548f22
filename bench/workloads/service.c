/* service: a long-running multithreaded service, sampled over time.
 *
 * Models: a request-serving process with an oversubscribed worker pool
 * (2*T threads) and a shared response cache.  Each request allocates a
 * body (1..16 KiB, written), 8..64 small temporaries (16..256 B), and a
 * response (100 B..64 KiB, log-distributed, written); it frees the
 * temporaries and the body and inserts the response into a shared cache of
 * 20000 entries guarded by 64 striped mutexes.  Inserting evicts (frees)
 * whatever entry was there, usually allocated by another thread.  About
 * once per second of a glibc run (6 requests in all at SCALE=1, at fixed
 * request numbers) a request builds a large working set of 32..96 MiB in
 * 1..64 KiB objects, and frees it 200 requests later.
 *
 * Work is fixed by count (requests are split evenly over the workers), so
 * ops is the same for every allocator.  A sampler thread prints
 * "sample t=SECONDS live=BYTES" every 100 ms, live being the bytes the
 * program holds (kept in per-worker atomic counters, summed by the
 * sampler), so RSS can be set against live memory over time.  The peak
 * of live memory comes when a big working set is complete, which the
 * 100 ms samples may miss: the worker that completes one reads the total
 * then, and the run ends with "peak_live=BYTES", the highest total seen.
 *
 * Measures: throughput of a realistic mix, cross-thread frees through the
 * cache, and above all RSS / live over time: memory held in per-thread
 * caches or arenas, and whether the big working sets are given back.
 * ops = malloc + free calls.
 */

#define WL_NAME "service"
#define WL_LIVE /* the workers count the bytes they hold */

#include "wl.h"

#define BASE_REQUESTS 3.3e6 /* at SCALE=1 (about 6 s with glibc at -t 2) */
#define BIG_PER_SCALE 6     /* big working sets at SCALE=1 (at least 1) */
#define BIG_HOLD 200        /* requests a big working set lives for */
#define CACHE 20000
#define STRIPES 64
#define MAX_TMP 64
#define SAMPLE_NS 100000000L

typedef struct {
    void *p;
    size_t n;
} entry_t;

static struct {
    pthread_mutex_t m;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
} g_stripe[STRIPES];
static entry_t g_cache[CACHE];
static uint64_t g_total, g_big_every;
static _Atomic int g_done;
static _Atomic int64_t g_peak_live;
static double g_t0;

static inline void live_add(wl_worker_t *w, int64_t d)
{
    atomic_fetch_add_explicit(&w->live, d, memory_order_relaxed);
}

static void note_live(void)
{
    int64_t now = wl_live(), peak = atomic_load(&g_peak_live);
    while (now > peak && !atomic_compare_exchange_weak(&g_peak_live, &peak, now))
        ;
}

static void *alloc_fill(wl_worker_t *w, size_t n, int c)
{
    unsigned char *p = malloc(n);
    stamp(p, n);
    if (n > 5)
        memset(p + 4, c, n - 5);
    live_add(w, (int64_t)n);
    w->ops++; /* service's workers count their mallocs only */
    return p;
}

static void free_checked(wl_worker_t *w, void *p, size_t n, int c)
{
    if (check(p, n) != n || (n > 5 && ((unsigned char *)p)[n / 2 + 2] != (unsigned char)c))
        fail("block %p: damaged contents", p);
    free(p);
    live_add(w, -(int64_t)n);
}

typedef struct {
    void **obj;
    size_t *size;
    size_t n, cap;
    uint64_t until; /* request index at which it is freed */
} bigset_t;

static void big_build(wl_worker_t *w, uint64_t *rng, bigset_t *b, uint64_t now)
{
    size_t target = ((size_t)32 << 20) + (size_t)(rng_next(rng) % ((size_t)64 << 20));
    size_t cap = target / 1024 + 1;
    b->obj = xmalloc_or_die(cap * sizeof(void *));
    b->size = xmalloc_or_die(cap * sizeof(size_t));
    live_add(w, (int64_t)(cap * (sizeof(void *) + sizeof(size_t))));
    w->ops += 2;
    b->cap = cap;
    b->n = 0;
    for (size_t got = 0; got < target && b->n < cap;) {
        size_t n = 1024 + (size_t)(rng_next(rng) % (64 * 1024 - 1024 + 1));
        b->obj[b->n] = alloc_fill(w, n, 0x3C);
        b->size[b->n++] = n;
        got += n;
    }
    b->until = now + BIG_HOLD;
    note_live();
}

static void big_free(wl_worker_t *w, bigset_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free_checked(w, b->obj[i], b->size[i], 0x3C);
    free(b->size);
    free(b->obj);
    live_add(w, -(int64_t)(b->cap * (sizeof(void *) + sizeof(size_t))));
    b->obj = NULL;
}

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    void *tmp[MAX_TMP];
    size_t tmpn[MAX_TMP];
    bigset_t big = { 0 };
    for (uint64_t j = 0; j < w->iters; j++) {
        uint64_t g = j * (uint64_t)g_nworkers + (uint64_t)w->id; /* global request number */
        if (big.obj && j >= big.until)
            big_free(w, &big);
        if (g % g_big_every == g_big_every / 2) {
            if (big.obj)
                big_free(w, &big);
            big_build(w, &rng, &big, j);
        }
        /* The request. */
        size_t nbody = rng_range(&rng, 1024, 16 * 1024);
        int c = (int)(g & 0x7F) + 1;
        void *body = alloc_fill(w, nbody, c);
        unsigned ntmp = (unsigned)rng_range(&rng, 8, MAX_TMP);
        for (unsigned i = 0; i < ntmp; i++) {
            tmpn[i] = rng_range(&rng, 16, 256);
            tmp[i] = malloc(tmpn[i]);
            stamp(tmp[i], tmpn[i]);
            live_add(w, (int64_t)tmpn[i]);
        }
        w->ops += ntmp;
        size_t nresp = rng_log(&rng, 6, 16);
        if (nresp < 100)
            nresp = 100;
        void *resp = alloc_fill(w, nresp, 0xC5);
        for (unsigned i = 0; i < ntmp; i++) {
            if (check(tmp[i], 256) != tmpn[i])
                fail("block %p: damaged contents", tmp[i]);
            free(tmp[i]);
            live_add(w, -(int64_t)tmpn[i]);
        }
        free_checked(w, body, nbody, c);
        /* Cache insert; evict the old entry. */
        size_t key = (size_t)(rng_next(&rng) % CACHE);
        pthread_mutex_t *m = &g_stripe[key % STRIPES].m;
        pthread_mutex_lock(m);
        entry_t old = g_cache[key];
        g_cache[key].p = resp;
        g_cache[key].n = nresp;
        pthread_mutex_unlock(m);
        if (old.p)
            free_checked(w, old.p, old.n, 0xC5);
    }
    if (big.obj)
        big_free(w, &big);
    return NULL;
}

static void print_sample(void)
{
    note_live();
    printf("sample t=%.3f live=%lld\n", now_sec() - g_t0, (long long)wl_live());
    fflush(stdout);
}

static void *sampler(void *arg)
{
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&g_done)) {
        print_sample();
        ts_add_ns(&next, SAMPLE_NS);
        sleep_until(&next);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    g_t0 = now_sec();
    int W = 2 * g_threads;
    g_total = scaled(BASE_REQUESTS, (uint64_t)W);
    uint64_t nbig = scaled(BIG_PER_SCALE, 1);
    g_big_every = g_total / nbig > 0 ? g_total / nbig : 1;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&g_stripe[i].m, NULL);
    wl_workers(W, g_total); /* requests to serve */
    pthread_t smp;
    int e = pthread_create(&smp, NULL, sampler, NULL);
    if (e)
        fail("pthread_create: %s", strerror(e));
    wl_start(worker);
    uint64_t mallocs = wl_join(); /* the workers count only their mallocs */
    atomic_store(&g_done, 1);
    join_threads(&smp, 1);
    print_sample();
    printf("peak_live=%lld\n", (long long)atomic_load(&g_peak_live));
    for (size_t k = 0; k < CACHE; k++)
        if (g_cache[k].p)
            free_checked(&g_workers[0], g_cache[k].p, g_cache[k].n, 0xC5);
    if (wl_live() != 0)
        fail("live bytes at the end: %lld", (long long)wl_live());
    return wl_done(2 * mallocs); /* every block allocated is freed */
}
