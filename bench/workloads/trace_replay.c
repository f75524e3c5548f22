/* trace_replay: threads replaying generated allocation traces.
 *
 * Models: a real program's allocation stream, as a replay of recorded
 * traces does: sizes mostly small, some medium, rarely large; lifetimes
 * mostly short, some long; and part of the blocks freed by a thread other
 * than the one that allocated them.  Each of T threads first generates its
 * own trace, seeded by its index: 1.2 M * SCALE allocations over all the
 * threads, sizes 80% 16..512 B, 19.7% 1..64 KiB and 0.3% 64 KiB..1 MiB
 * (log-uniform within each; above 8 KiB rounded to 128 B), lifetimes
 * counted in the thread's later allocations: 70% 1..16, 25% 16..1024, 4.5%
 * 1024..65536 (log-uniform), 0.5% to the end of the trace.  When a block's
 * life ends, the trace frees it, or (25% of the time, with T > 1) hands it
 * to a random other thread, which frees it the next time it looks in its
 * inbox (a lock-free stack, every 64 events, and every 50 us once its own
 * replay is done, until all are).  The traces are packed 4-byte
 * events in memory from mmap, not from the allocator measured, and are
 * made before the replay starts (the program prints gen_s= and replay_s=,
 * the seconds each took; the trace memory, 8 B per allocation, is in the
 * peak RSS of every allocator alike).  Then all threads replay their trace
 * 6 times, each pass ending with the thread freeing its own survivors.
 * Blocks are stamped, their slot and a fill byte written, and every 4 KiB
 * page touched; all is checked before the free.
 *
 * Measures: speed and memory on a mixed, realistic stream, including the
 * remote frees of a quarter of the blocks, without the benchmark's own
 * decisions (random numbers, bookkeeping) in the timed loop.  ops = malloc
 * + free calls (fixed for a given -t/-s).
 */

#define WL_NAME "trace_replay"

#include "wl.h"

#include <sys/mman.h>

#define BASE_ALLOCS 1.2e6 /* in the traces at SCALE=1, all threads together */
#define PASSES 6          /* replays of each trace */
#define MAX_SLOTS 65536   /* live blocks a thread can have (16-bit slots) */
#define MAX_SIZE ((size_t)1 << 20)
#define SEND_PCT 25
#define INBOX_EVERY 64    /* events between looks into the inbox */

/* Events, 32 bits: the operation in the top 2 bits, the slot in the low 16;
   ALLOC has the size code in bits 16..29, SEND the receiving thread. */
enum { EV_ALLOC = 0, EV_FREE = 1, EV_SEND = 2 };
#define EV(op, mid, slot) (((uint32_t)(op) << 30) | ((uint32_t)(mid) << 16) | (uint32_t)(slot))

static uint32_t size_code(size_t n)
{
    return n < 8192 ? (uint32_t)n : 8192 + (uint32_t)(n >> 7);
}

static size_t code_size(uint32_t c)
{
    return c < 8192 ? c : (size_t)(c - 8192) << 7;
}

typedef struct {
    uint32_t *ev;        /* the trace */
    size_t nev, ev_bytes;
    uint32_t nslots;     /* slots it uses */
} trace_t;

typedef struct {
    _Atomic(void *) head; /* blocks sent to the thread, linked through byte 4 */
    char pad[56];
} inbox_t;

static trace_t *g_trace;
static inbox_t *g_inbox;
static pthread_barrier_t g_ready; /* all traces made / all replays done */
static _Atomic int g_finished;    /* threads done with their replay */
static double g_t0, g_t_gen, g_t_end;

static void *map(size_t bytes)
{
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap(%zu): %s", bytes, strerror(errno));
    return p;
}

/* ---- the traces ---------------------------------------------------------------- */

static size_t pick_size(uint64_t *rng)
{
    unsigned r = (unsigned)(rng_next(rng) % 1000);
    size_t n;
    if (r < 800)
        n = rng_log(rng, 4, 9);    /* 16..511 B */
    else if (r < 997)
        n = rng_log(rng, 10, 16);  /* 1..64 KiB */
    else
        n = rng_log(rng, 16, 20);  /* 64 KiB..1 MiB */
    return code_size(size_code(n));
}

/* In allocations of the thread; 0: until the end of the trace. */
static uint64_t pick_life(uint64_t *rng)
{
    unsigned r = (unsigned)(rng_next(rng) % 1000);
    if (r < 700)
        return rng_range(rng, 1, 16);
    if (r < 950)
        return rng_log(rng, 4, 10);
    if (r < 995)
        return rng_log(rng, 10, 16);
    return 0;
}

static void make_trace(trace_t *tr, int self, int T, uint64_t allocs)
{
    uint64_t rng = rng_seed((uint64_t)self + 4242);
    tr->ev_bytes = (2 * allocs + 1) * sizeof(uint32_t);
    tr->ev = map(tr->ev_bytes);
    /* expiring[s]: the slots whose block dies at allocation s (slot + 1,
       chained through next[]); free slots on a stack. */
    uint32_t *expiring = map(allocs * sizeof(uint32_t));
    uint32_t *next = map(MAX_SLOTS * sizeof(uint32_t));
    uint32_t *spare = map(MAX_SLOTS * sizeof(uint32_t));
    uint32_t nspare = 0, nslots = 0;
    size_t ne = 0;
    for (uint64_t s = 0; s < allocs; s++) {
        uint32_t slot;
        if (nspare)
            slot = spare[--nspare];
        else if (nslots < MAX_SLOTS)
            slot = nslots++;
        else
            fail("trace of thread %d: more than %d blocks live", self, MAX_SLOTS);
        tr->ev[ne++] = EV(EV_ALLOC, size_code(pick_size(&rng)), slot);
        uint64_t life = pick_life(&rng);
        if (life && s + life < allocs) {
            next[slot] = expiring[s + life];
            expiring[s + life] = slot + 1;
        }
        for (uint32_t x = expiring[s]; x; x = next[x - 1]) {
            uint32_t dead = x - 1;
            if (T > 1 && rng_next(&rng) % 100 < SEND_PCT) {
                uint32_t to = (uint32_t)(((uint64_t)self + 1 + rng_next(&rng) % (uint64_t)(T - 1)) % (uint64_t)T);
                tr->ev[ne++] = EV(EV_SEND, to, dead);
            } else {
                tr->ev[ne++] = EV(EV_FREE, 0, dead);
            }
            spare[nspare++] = dead;
        }
    }
    munmap(expiring, allocs * sizeof(uint32_t));
    munmap(next, MAX_SLOTS * sizeof(uint32_t));
    munmap(spare, MAX_SLOTS * sizeof(uint32_t));
    tr->nev = ne;
    tr->nslots = nslots;
}

/* ---- the replay ---------------------------------------------------------------- */

static unsigned char fill_of(size_t n)
{
    return (unsigned char)(n * 7 + 1);
}

static void *new_block(size_t n, uint32_t slot)
{
    unsigned char *p = malloc(n);
    stamp(p, n);
    memcpy(p + 4, &slot, 4);
    p[12] = fill_of(n);
    for (size_t off = 4096; off < n - 1; off += 4096)
        p[off] = (unsigned char)(fill_of(n) + (off >> 12));
    return p;
}

/* Checks what does not depend on the slot; returns the size. */
static size_t check_block(const unsigned char *p)
{
    size_t n = check(p, MAX_SIZE);
    size_t last = (n - 2) / 4096 * 4096;
    if (p[12] != fill_of(n) ||
        (last >= 4096 && p[last] != (unsigned char)(fill_of(n) + (last >> 12))))
        fail("block %p: damaged contents", (const void *)p);
    return n;
}

static void check_slot(const unsigned char *p, uint32_t slot)
{
    uint32_t s;
    memcpy(&s, p + 4, 4);
    if (s != slot)
        fail("block %p: slot %u written, %u expected", (const void *)p, s, slot);
}

static void send(int to, unsigned char *p)
{
    _Atomic(void *) *h = &g_inbox[to].head;
    void *old = atomic_load_explicit(h, memory_order_relaxed);
    do
        memcpy(p + 4, &old, sizeof old);
    while (!atomic_compare_exchange_weak_explicit(h, &old, p, memory_order_release,
                                                  memory_order_relaxed));
}

/* Frees all the blocks in the thread's inbox; returns how many. */
static uint64_t drain(int self)
{
    if (!atomic_load_explicit(&g_inbox[self].head, memory_order_relaxed))
        return 0;
    unsigned char *p = atomic_exchange_explicit(&g_inbox[self].head, NULL, memory_order_acquire);
    uint64_t n = 0;
    while (p) {
        unsigned char *nx;
        memcpy(&nx, p + 4, sizeof nx);
        check_block(p);
        free(p);
        n++;
        p = nx;
    }
    return n;
}

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    int self = w->id;
    trace_t *tr = &g_trace[self];
    make_trace(tr, self, g_nworkers, w->iters);
    unsigned char **slot = map(tr->nslots * sizeof *slot);
    if (pthread_barrier_wait(&g_ready) == PTHREAD_BARRIER_SERIAL_THREAD)
        g_t_gen = now_sec();
    pthread_barrier_wait(&g_barrier); /* g_t_gen is set */
    uint64_t ops = 0;
    const uint32_t *ev = tr->ev;
    for (int pass = 0; pass < PASSES; pass++) {
        for (size_t i = 0; i < tr->nev; i++) {
            uint32_t e = ev[i], k = e & 0xFFFF;
            switch (e >> 30) {
            case EV_ALLOC:
                slot[k] = new_block(code_size((e >> 16) & 0x3FFF), k);
                ops++;
                break;
            case EV_FREE:
                check_slot(slot[k], k);
                check_block(slot[k]);
                free(slot[k]);
                slot[k] = NULL;
                ops++;
                break;
            default:
                check_slot(slot[k], k);
                check_block(slot[k]);
                send((int)((e >> 16) & 0x3FFF), slot[k]);
                slot[k] = NULL;
                break;
            }
            if (i % INBOX_EVERY == 0)
                ops += drain(self);
        }
        for (uint32_t k = 0; k < tr->nslots; k++) { /* this pass's survivors */
            if (slot[k]) {
                check_slot(slot[k], k);
                check_block(slot[k]);
                free(slot[k]);
                slot[k] = NULL;
                ops++;
            }
        }
    }
    /* Done: keep freeing what the others send until they are done too. */
    atomic_fetch_add_explicit(&g_finished, 1, memory_order_release);
    while (atomic_load_explicit(&g_finished, memory_order_acquire) < g_nworkers) {
        ops += drain(self);
        struct timespec pause = { 0, 50000 };
        nanosleep(&pause, NULL);
    }
    ops += drain(self); /* nothing is sent any more */
    if (pthread_barrier_wait(&g_ready) == PTHREAD_BARRIER_SERIAL_THREAD)
        g_t_end = now_sec();
    munmap(slot, tr->nslots * sizeof *slot);
    munmap(tr->ev, tr->ev_bytes);
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    g_t0 = now_sec();
    wl_init(argc, argv, BASE_ALLOCS); /* iters: the allocations in each trace */
    int T = g_nworkers;
    if (T > 4096)
        fail("at most 4096 threads");
    g_trace = map((size_t)T * sizeof *g_trace);
    g_inbox = map((size_t)T * sizeof *g_inbox);
    pthread_barrier_init(&g_ready, NULL, (unsigned)T);
    uint64_t allocs = 0;
    for (int i = 0; i < T; i++)
        allocs += g_workers[i].iters;
    wl_start(worker);
    uint64_t ops = wl_join();
    if (ops != 2 * PASSES * allocs)
        fail("%llu operations, expected %llu", (unsigned long long)ops,
             (unsigned long long)(2 * PASSES * allocs));
    printf("gen_s=%.3f\nreplay_s=%.3f\n", g_t_gen - g_t0, g_t_end - g_t_gen);
    return wl_done(ops);
}
