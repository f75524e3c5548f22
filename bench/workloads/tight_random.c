/* tight_random: small random sizes with a tiny working set.
 *
 * Models: short-lived small objects of mixed sizes (strings, nodes, small
 * buffers) with a handful live at once.  Each of T threads keeps a window
 * of 100 live slots and repeatedly frees a random slot's block and
 * allocates a new one of a random size in 8..1024 B.  No sharing.
 *
 * Measures: the fast path across many size classes (the per-class free
 * lists all stay warm but are visited in random order).  ops = malloc +
 * free calls (fixed total, split over the threads).
 */

#define WL_NAME "tight_random"

#include "wl.h"

#define BASE_REPLACEMENTS 500e6 /* slot replacements at SCALE=1, all threads */
#define WINDOW 100
#define MIN_SIZE 8
#define MAX_SIZE 1024

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    void *slot[WINDOW];
    uint64_t ops = 0;
    pthread_barrier_wait(&g_barrier);
    for (int i = 0; i < WINDOW; i++) {
        size_t n = rng_range(&rng, MIN_SIZE, MAX_SIZE);
        slot[i] = malloc(n);
        stamp(slot[i], n);
        ops++;
    }
    for (uint64_t i = 0; i < w->iters; i++) {
        uint64_t r = rng_next(&rng);
        unsigned k = (unsigned)(r % WINDOW);
        size_t n = MIN_SIZE + (size_t)((r >> 32) % (MAX_SIZE - MIN_SIZE + 1));
        check(slot[k], MAX_SIZE);
        free(slot[k]);
        slot[k] = malloc(n);
        stamp(slot[k], n);
        ops += 2;
    }
    for (int i = 0; i < WINDOW; i++) {
        check(slot[i], MAX_SIZE);
        free(slot[i]);
        ops++;
    }
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_REPLACEMENTS, worker);
}
