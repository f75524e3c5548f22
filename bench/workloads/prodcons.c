/* prodcons: producer/consumer pairs; every free is remote.
 *
 * Models: pipelines of stages on their own threads (a parser feeding a
 * worker, a network thread feeding a handler), each stage pair joined by a
 * bounded queue, where the consumer frees what the producer allocated.  -t T
 * gives max(1, T/2) pairs: 2 threads each (an odd T is rounded down).
 * Producer i allocates blocks of 16 B..2 KiB, mostly small (75% 16..128 B,
 * 20% 128..512 B, 5% 512 B..2 KiB), writes them (stamp, a sequence number,
 * the rest filled with a byte of it) and sends them in batches of 32 to
 * consumer i through their own queue: a ring of at most 1024 blocks behind
 * a mutex, the producer waiting while it is full and the consumer while it
 * is empty.  The consumer takes all the queue holds at once, checks each
 * block (stamp, the next sequence number of the pair, a middle byte) and
 * frees it.  So only about 1024 blocks per pair are in flight: a few MiB in
 * all, and the peak RSS is mostly the allocator's own overhead.
 *
 * Measures: the remote-free path when the threads outnumber the cores (the
 * runner's prodcons-8+8 on 2 cores) and when they do not, with every free
 * remote and never a free by the allocating thread; and how much memory the
 * round trip of blocks between threads costs.  ops = malloc + free calls
 * (fixed total, split over the pairs).
 */

#define WL_NAME "prodcons"

#include "wl.h"

#define BASE_BLOCKS 36e6 /* sent at SCALE=1, all pairs together */
#define QCAP 1024        /* blocks a queue holds at most */
#define BATCH 32         /* blocks per push */
#define MAX_SIZE 2048

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    unsigned head, count;  /* ring[head .. head+count) holds blocks */
    int done;              /* the producer has pushed its last batch */
    void *ring[QCAP];
    char pad[64];
} queue_t;

static queue_t *g_q; /* one per pair */
static int g_pairs;

static void push(queue_t *q, void *const *batch, unsigned n)
{
    pthread_mutex_lock(&q->lock);
    while (q->count + n > QCAP)
        pthread_cond_wait(&q->not_full, &q->lock);
    for (unsigned i = 0; i < n; i++)
        q->ring[(q->head + q->count + i) % QCAP] = batch[i];
    if (q->count == 0)
        pthread_cond_signal(&q->not_empty);
    q->count += n;
    pthread_mutex_unlock(&q->lock);
}

static void finish(queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->done = 1;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

/* Moves every block in the queue to out[]; returns how many, 0 at the end. */
static unsigned pop_all(queue_t *q, void **out)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->done)
        pthread_cond_wait(&q->not_empty, &q->lock);
    unsigned n = q->count;
    for (unsigned i = 0; i < n; i++)
        out[i] = q->ring[(q->head + i) % QCAP];
    q->head = (q->head + n) % QCAP;
    q->count = 0;
    if (n)
        pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return n;
}

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    unsigned c = (unsigned)(r % 100);
    uint64_t u = r >> 32;
    if (c < 75)
        return 16 + (size_t)(u % 113);  /* 16..128 B */
    if (c < 95)
        return 129 + (size_t)(u % 384); /* 129..512 B */
    return 513 + (size_t)(u % 1536);    /* 513..2048 B */
}

/* The byte that fills block number seq. */
static unsigned char fill_of(uint64_t seq)
{
    return (unsigned char)(seq * 0x9E + 0x3C);
}

static void *producer(void *arg)
{
    wl_worker_t *w = arg;
    queue_t *q = &g_q[w->id];
    uint64_t rng = rng_seed((uint64_t)w->id);
    void *batch[BATCH];
    unsigned nb = 0;
    pthread_barrier_wait(&g_barrier);
    for (uint64_t seq = 0; seq < w->iters; seq++) {
        size_t n = pick_size(&rng);
        unsigned char *p = malloc(n);
        stamp(p, n);
        memcpy(p + 4, &seq, 8);
        memset(p + 12, fill_of(seq), n - 13);
        batch[nb++] = p;
        if (nb == BATCH) {
            push(q, batch, nb);
            nb = 0;
        }
    }
    if (nb)
        push(q, batch, nb);
    finish(q);
    w->ops = w->iters;
    return NULL;
}

static void *consumer(void *arg)
{
    wl_worker_t *w = arg;
    queue_t *q = &g_q[w->id - g_pairs];
    void **got = xmalloc_or_die(QCAP * sizeof(void *));
    uint64_t expect = 0;
    unsigned n;
    pthread_barrier_wait(&g_barrier);
    while ((n = pop_all(q, got)) != 0) {
        for (unsigned i = 0; i < n; i++) {
            unsigned char *p = got[i];
            size_t sz = check(p, MAX_SIZE);
            uint64_t seq;
            memcpy(&seq, p + 4, 8);
            if (seq != expect || p[12 + (sz - 13) / 2] != fill_of(seq))
                fail("block %p: damaged contents (sequence %llu, expected %llu)", (void *)p,
                     (unsigned long long)seq, (unsigned long long)expect);
            free(p);
            expect++;
        }
    }
    free(got);
    w->ops = expect;
    return NULL;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    g_pairs = g_threads / 2 > 0 ? g_threads / 2 : 1;
    uint64_t total = scaled(BASE_BLOCKS, (uint64_t)g_pairs);
    wl_workers(2 * g_pairs, 0);
    g_q = xmalloc_or_die((size_t)g_pairs * sizeof *g_q);
    for (int i = 0; i < g_pairs; i++) {
        queue_t *q = &g_q[i];
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->not_full, NULL);
        pthread_cond_init(&q->not_empty, NULL);
        q->head = q->count = 0;
        q->done = 0;
        g_workers[i].iters = share(total, g_pairs, i); /* producer i: blocks to send */
    }
    start_threads(g_tids + g_pairs, g_pairs, consumer, g_workers + g_pairs, sizeof *g_workers);
    start_threads(g_tids, g_pairs, producer, g_workers, sizeof *g_workers);
    uint64_t ops = wl_join();
    for (int i = 0; i < g_pairs; i++) {
        pthread_mutex_destroy(&g_q[i].lock);
        pthread_cond_destroy(&g_q[i].not_full);
        pthread_cond_destroy(&g_q[i].not_empty);
    }
    free(g_q);
    /* every block sent was freed, in order (the consumers checked that) */
    if (ops != 2 * total)
        fail("%llu operations, expected %llu", (unsigned long long)ops,
             (unsigned long long)(2 * total));
    return wl_done(ops);
}
