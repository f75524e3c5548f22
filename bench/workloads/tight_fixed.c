/* tight_fixed: the pure allocation fast path.
 *
 * Models: code that allocates and immediately frees a small, fixed-size
 * object in a hot loop (glibc-simple / glibc-thread style).  Each of T
 * threads repeatedly does malloc(32)+write+free and malloc(16)+write+free;
 * every 4096 iterations two blocks are held live together and checked for
 * overlap.  No sharing between threads.
 *
 * Measures: the cost of a malloc+free pair on a thread's own heap when the
 * block is reused at once (the page often empties on every free), and how
 * that scales with threads.  ops = malloc + free calls (fixed total work,
 * split over the threads).
 */

#define WL_NAME "tight_fixed"

#include "wl.h"

/* Iterations of the loop body (one 32 B pair and one 16 B pair) at SCALE=1,
   split over the threads. */
#define BASE_ITERS 400e6

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t ops = 0;
    pthread_barrier_wait(&g_barrier);
    for (uint64_t i = 0; i < w->iters; i++) {
        volatile char *p = malloc(32);
        if (!p)
            fail("malloc(32) returned NULL");
        *p = (char)i;
        free((void *)p);
        volatile char *q = malloc(16);
        if (!q)
            fail("malloc(16) returned NULL");
        *q = (char)i;
        free((void *)q);
        ops += 4;
        if ((i & 4095) == 0) {
            /* Cheap integrity check: two live blocks must not overlap. */
            unsigned char *a = malloc(32), *b = malloc(16);
            stamp(a, 32);
            stamp(b, 16);
            memset(a + 4, 0xA1, 27);
            memset(b + 4, 0xB2, 11);
            if (a[30] != 0xA1 || b[14] != 0xB2)
                fail("blocks %p and %p overlap", (void *)a, (void *)b);
            check(a, 32);
            check(b, 16);
            free(a);
            free(b);
            ops += 4;
        }
    }
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_ITERS, worker);
}
