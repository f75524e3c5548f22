/* larson: server simulation with objects handed between threads.
 *
 * Models: a server whose worker threads replace entries of one shared table
 * (connections, sessions): an object is usually freed by a different thread
 * from the one that allocated it.  A shared array holds 10000 slots per
 * thread; each thread first fills its own slice, then repeatedly picks a
 * random slot from the WHOLE array, allocates a new block of random size
 * 16..1024 B, writes it, swaps it into the slot with an atomic exchange and
 * frees the block it took out (checking its stamp first).
 *
 * Measures: remote (cross-thread) frees at a high rate, and whether memory
 * freed by other threads is reused or piles up.  ops = malloc + free calls
 * (fixed total number of replacements, split over the threads).
 */

#define WL_NAME "larson"

#include "wl.h"

#define BASE_REPLACEMENTS 70e6 /* at SCALE=1, all threads together */
#define SLOTS_PER_THREAD 10000
#define MIN_SIZE 16
#define MAX_SIZE 1024

static _Atomic(void *) *g_slots;
static size_t g_nslots;

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    uint64_t ops = 0;
    /* Fill our own slice; nobody touches the table before the barrier. */
    size_t lo = (size_t)w->id * SLOTS_PER_THREAD;
    for (size_t i = lo; i < lo + SLOTS_PER_THREAD; i++) {
        size_t n = rng_range(&rng, MIN_SIZE, MAX_SIZE);
        void *p = malloc(n);
        stamp(p, n);
        atomic_store_explicit(&g_slots[i], p, memory_order_relaxed);
        ops++;
    }
    pthread_barrier_wait(&g_barrier);
    for (uint64_t i = 0; i < w->iters; i++) {
        uint64_t r = rng_next(&rng);
        size_t k = (size_t)(r % g_nslots);
        size_t n = MIN_SIZE + (size_t)((r >> 40) % (MAX_SIZE - MIN_SIZE + 1));
        void *p = malloc(n);
        stamp(p, n);
        void *old = atomic_exchange_explicit(&g_slots[k], p, memory_order_acq_rel);
        check(old, MAX_SIZE);
        free(old);
        ops += 2;
    }
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    wl_init(argc, argv, BASE_REPLACEMENTS);
    g_nslots = (size_t)g_nworkers * SLOTS_PER_THREAD;
    g_slots = calloc(g_nslots, sizeof *g_slots);
    if (!g_slots)
        fail("out of memory");
    wl_start(worker);
    uint64_t ops = wl_join();
    for (size_t i = 0; i < g_nslots; i++) {
        void *p = atomic_load_explicit(&g_slots[i], memory_order_relaxed);
        check(p, MAX_SIZE);
        free(p);
        ops++;
    }
    free(g_slots);
    return wl_done(ops);
}
