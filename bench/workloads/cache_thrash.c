/* cache_thrash: active false sharing.
 *
 * Models: threads that each allocate small private objects and write them
 * hard (counters, small per-request state), with no handing over.  Each
 * thread repeatedly allocates an 8-byte object, writes it 1000 times and
 * frees it.
 *
 * Measures: whether the allocator itself puts different threads' small
 * objects on one cache line (a shared heap or shared size-class pages do;
 * per-thread pages do not): if it does, every write bounces the line
 * between cores.  ops = malloc + free calls (fixed total of iterations,
 * split over the threads); the time is dominated by the writes.
 */

#define WL_NAME "cache_thrash"

#include "wl.h"

#define BASE_ITERS 10e6 /* allocate/write/free iterations at SCALE=1, all threads */

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    pthread_barrier_wait(&g_barrier);
    w->ops = hot_objects(w->iters); /* 8 B objects, each written 1000 times */
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_ITERS, worker);
}
