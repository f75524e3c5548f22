/* alloc_test: a large random working set with random replacement.
 *
 * Models: a long-lived data structure (a cache, an in-memory index) whose
 * entries are replaced at random.  Each of T threads fills its own array
 * of 65536 slots with blocks of log-distributed size 8 B..8 KiB, then
 * repeatedly frees a random slot's block (checking its stamp) and puts a
 * new random-size block there.  No sharing between threads.
 *
 * Measures: malloc/free speed when the working set (about 80 MB per
 * thread) is far bigger than the caches, so the allocator's own metadata
 * misses too; and fragmentation at a steady state (peak RSS versus the
 * live bytes).  ops = malloc + free calls (fixed total of replacements,
 * split over the threads).
 */

#define WL_NAME "alloc_test"

#include "wl.h"

#define BASE_REPLACEMENTS 24e6 /* at SCALE=1, all threads */
#define SLOTS (1 << 16)
#define MAX_SIZE 8192

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    void **slot = xmalloc_or_die(sizeof(void *) * SLOTS);
    uint64_t ops = 1;
    for (size_t i = 0; i < SLOTS; i++) {
        size_t n = rng_log(&rng, 3, 13);
        slot[i] = malloc(n);
        stamp(slot[i], n);
    }
    ops += SLOTS;
    pthread_barrier_wait(&g_barrier);
    for (uint64_t i = 0; i < w->iters; i++) {
        size_t k = (size_t)(rng_next(&rng) % SLOTS);
        size_t n = rng_log(&rng, 3, 13);
        check(slot[k], MAX_SIZE);
        free(slot[k]);
        slot[k] = malloc(n);
        stamp(slot[k], n);
    }
    ops += 2 * w->iters;
    for (size_t i = 0; i < SLOTS; i++) {
        check(slot[i], MAX_SIZE);
        free(slot[i]);
    }
    ops += SLOTS;
    free(slot);
    w->ops = ops + 1;
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_REPLACEMENTS, worker);
}
