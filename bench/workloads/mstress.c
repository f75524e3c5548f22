/* mstress: mixed lifetimes with growth and shrink phases.
 *
 * Models: a program whose working set swells and subsides (batch jobs,
 * caches being rebuilt, parsers building and dropping trees), with objects
 * of varied sizes: mostly small (8..256 B, 85%), some medium (256 B..64 KiB,
 * 14.5%), rarely large (64 KiB..1 MiB, 0.5%).  Each of T threads repeats a
 * cycle: grow its live set to N = 20000 objects (allocating, with one free
 * of a random live object for every three allocations), then shrink it to
 * N/10 by freeing random objects.  One in eight objects dropped while
 * shrinking is handed to the next thread through that thread's inbox (a
 * shared array of atomic slots) and freed there at the start of its next
 * cycle.  Objects are stamped, large ones touched on every page.
 *
 * Measures: speed under churn of mixed sizes and lifetimes, and whether the
 * memory of the shrink phases is reused in the next growth (peak RSS versus
 * the live peak).  ops = malloc + free calls (fixed number of cycles, split
 * over the threads).
 */

#define WL_NAME "mstress"

#include "wl.h"

#define BASE_CYCLES 1200 /* grow/shrink cycles at SCALE=1, all threads */
#define LIVE_MAX 20000
#define LIVE_MIN (LIVE_MAX / 10)
#define INBOX 1024
#define MAX_SIZE ((size_t)1 << 20)

static _Atomic(void *) *g_inbox; /* INBOX slots per thread */

static size_t pick_size(uint64_t *rng)
{
    unsigned r = (unsigned)(rng_next(rng) % 1000);
    if (r < 850)
        return rng_log(rng, 3, 8);  /* 8..255 B */
    if (r < 995)
        return rng_log(rng, 8, 16); /* 256 B..64 KiB */
    return rng_log(rng, 16, 20);    /* 64 KiB..1 MiB */
}

static void *new_object(uint64_t *rng)
{
    size_t n = pick_size(rng);
    unsigned char *p = malloc(n);
    stamp(p, n);
    for (size_t off = 4096; off < n - 1; off += 4096)
        p[off] = (unsigned char)(off >> 12);
    return p;
}

static void drop_object(void *p)
{
    size_t n = check(p, MAX_SIZE);
    const unsigned char *b = p;
    if (n > 4096 + 1 && b[4096] != 1)
        fail("block %p: damaged contents", p);
    free(p);
}

static void drain_inbox(int id)
{
    for (size_t i = 0; i < INBOX; i++) {
        void *p = atomic_exchange_explicit(&g_inbox[(size_t)id * INBOX + i], NULL,
                                           memory_order_acq_rel);
        if (p)
            drop_object(p);
    }
}

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    void **live = xmalloc_or_die(sizeof(void *) * LIVE_MAX);
    size_t n = 0;
    uint64_t mallocs = 1;
    _Atomic(void *) *next = g_inbox + (size_t)((w->id + 1) % g_nworkers) * INBOX;
    for (uint64_t c = 0; c < w->iters; c++) {
        drain_inbox(w->id);
        /* Grow to LIVE_MAX: three allocations for one free. */
        while (n < LIVE_MAX) {
            uint64_t r = rng_next(&rng);
            if ((r & 3) == 0 && n > 0) {
                size_t k = (size_t)((r >> 8) % n);
                drop_object(live[k]);
                live[k] = live[--n];
            } else {
                live[n++] = new_object(&rng);
                mallocs++;
            }
        }
        /* Shrink to LIVE_MIN; one in eight goes to the next thread. */
        while (n > LIVE_MIN) {
            uint64_t r = rng_next(&rng);
            size_t k = (size_t)((r >> 8) % n);
            void *p = live[k];
            live[k] = live[--n];
            if ((r & 7) == 0) {
                void *old = atomic_exchange_explicit(&next[(r >> 40) % INBOX], p,
                                                     memory_order_acq_rel);
                if (old) /* slot still full: that one is freed here */
                    drop_object(old);
            } else {
                drop_object(p);
            }
        }
    }
    pthread_barrier_wait(&g_barrier); /* all done: nobody hands over any more */
    drain_inbox(w->id);
    while (n > 0)
        drop_object(live[--n]);
    free(live);
    w->ops = 2 * mallocs; /* every block allocated is freed */
    return NULL;
}

int main(int argc, char **argv)
{
    wl_init(argc, argv, BASE_CYCLES);
    g_inbox = calloc((size_t)g_nworkers * INBOX, sizeof *g_inbox);
    if (!g_inbox)
        fail("out of memory");
    wl_start(worker);
    uint64_t ops = wl_join();
    free(g_inbox);
    return wl_done(ops);
}
