/* xmalloc: producer/consumer; one side only allocates, the other only frees.
 *
 * Models: pipelines and thread pools where messages are built by one thread
 * and consumed (and freed) by another.  max(1, T/2) producer threads
 * allocate blocks of random size 16..512 B, stamp them and push them in
 * batches of 64 pointers through a bounded, mutex-protected ring (64
 * batches) to max(1, T - T/2) consumer threads, which check and free them.
 * The ring bound keeps the live memory bounded.
 *
 * Measures: the remote-free path at full speed, in the case that is hardest
 * for allocators whose memory belongs to a thread (the consumers never
 * allocate, the producers never free), and whether freed memory finds its
 * way back to the producers.  ops = malloc + free calls (fixed total).
 */

#define WL_NAME "xmalloc"

#include "wl.h"

#define BASE_OBJECTS 30e6 /* objects at SCALE=1, all producers together */
#define BATCH 64
#define RING 64
#define MIN_SIZE 16
#define MAX_SIZE 512

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    void *ring[RING][BATCH];
    unsigned head, count;
    uint64_t taken, total; /* batches taken by consumers / to be made */
} q = { .lock = PTHREAD_MUTEX_INITIALIZER,
        .not_full = PTHREAD_COND_INITIALIZER,
        .not_empty = PTHREAD_COND_INITIALIZER };

static void push(void *const *batch)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == RING)
        pthread_cond_wait(&q.not_full, &q.lock);
    memcpy(q.ring[(q.head + q.count) % RING], batch, sizeof(void *) * BATCH);
    q.count++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* Returns 0 once every batch has been taken. */
static int pop(void **batch)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.taken < q.total)
        pthread_cond_wait(&q.not_empty, &q.lock);
    if (q.count == 0) {
        pthread_mutex_unlock(&q.lock);
        return 0;
    }
    memcpy(batch, q.ring[q.head], sizeof(void *) * BATCH);
    q.head = (q.head + 1) % RING;
    q.count--;
    if (++q.taken == q.total)
        pthread_cond_broadcast(&q.not_empty); /* wake the idle consumers */
    pthread_cond_signal(&q.not_full);
    pthread_mutex_unlock(&q.lock);
    return 1;
}

static void *producer(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    void *batch[BATCH];
    for (uint64_t b = 0; b < w->iters; b++) {
        for (int i = 0; i < BATCH; i++) {
            size_t n = rng_range(&rng, MIN_SIZE, MAX_SIZE);
            batch[i] = malloc(n);
            stamp(batch[i], n);
            ((char *)batch[i])[4] = (char)i;
        }
        push(batch);
    }
    w->ops = w->iters * BATCH;
    return NULL;
}

static void *consumer(void *arg)
{
    wl_worker_t *w = arg;
    void *batch[BATCH];
    uint64_t ops = 0;
    while (pop(batch)) {
        for (int i = 0; i < BATCH; i++) {
            check(batch[i], MAX_SIZE);
            if (((char *)batch[i])[4] != (char)i)
                fail("block %p: damaged contents", batch[i]);
            free(batch[i]);
        }
        ops += BATCH;
    }
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    int P = g_threads / 2 > 0 ? g_threads / 2 : 1;
    int C = g_threads - P > 0 ? g_threads - P : 1;
    uint64_t total = scaled(BASE_OBJECTS / BATCH, (uint64_t)P);
    q.total = total;
    wl_workers(P + C, 0); /* the producers' shares are set below */
    for (int i = 0; i < P; i++) /* producers: batches to make */
        g_workers[i].iters = share(total, P, i);
    start_threads(g_tids + P, C, consumer, g_workers + P, sizeof *g_workers);
    start_threads(g_tids, P, producer, g_workers, sizeof *g_workers);
    uint64_t ops = wl_join();
    if (ops != 2 * total * BATCH)
        fail("%llu operations, expected %llu", (unsigned long long)ops,
             (unsigned long long)(2 * total * BATCH));
    return wl_done(ops);
}
