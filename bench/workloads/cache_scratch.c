/* cache_scratch: passive false sharing.
 *
 * Models: objects allocated by one thread and handed to workers, which free
 * them and then allocate their own small scratch objects.  The main thread
 * allocates T 8-byte objects back to back (so they likely share cache
 * lines) and hands one to each thread.  Each thread frees its object, then
 * repeatedly allocates an 8-byte object, writes it 1000 times and frees it.
 *
 * Measures: whether an allocator hands a thread memory that shares a cache
 * line with another thread's hot object after a remote free (if it reuses
 * the freed block locally, every write bounces the line between cores).
 * ops = malloc + free calls (fixed total of iterations, split over the
 * threads); the time is dominated by the writes, so it shows the false
 * sharing directly.
 */

#define WL_NAME "cache_scratch"
#define WL_WORKER_EXTRA void *handed; /* the block main allocated for it */

#include "wl.h"

#define BASE_ITERS 3e6 /* allocate/write/free iterations at SCALE=1, all threads */

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    pthread_barrier_wait(&g_barrier);
    volatile unsigned char *h = w->handed;
    if (h[0] != (unsigned char)(w->id * 3 + 1) || h[HOT_OBJ - 1] != 0x77)
        fail("handed block %p: damaged contents", w->handed);
    free(w->handed);
    w->ops = 1 + hot_objects(w->iters); /* 8 B objects, each written 1000 times */
    return NULL;
}

int main(int argc, char **argv)
{
    wl_init(argc, argv, BASE_ITERS);
    for (int i = 0; i < g_nworkers; i++) {
        unsigned char *p = malloc(HOT_OBJ); /* back to back in the main thread */
        if (!p)
            fail("malloc(%d) returned NULL", HOT_OBJ);
        memset(p, 0x77, HOT_OBJ);
        p[0] = (unsigned char)(i * 3 + 1);
        g_workers[i].handed = p;
    }
    wl_start(worker);
    uint64_t handed = (uint64_t)g_nworkers; /* the handed-over mallocs */
    return wl_done(handed + wl_join());
}
