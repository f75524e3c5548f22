/* tiny: a small program, where the allocator's fixed cost shows.
 *
 * Models: the many short, small processes of a system (shell tools, small
 * daemons, scripts' helpers) that allocate a handful of objects and spend
 * their time computing.  Each of T threads (default 1) runs rounds; a round
 * allocates 300 small objects (16..256 B), 4 medium ones (16..64 KiB) and
 * one of 1 MiB, writes them all, does some arithmetic over the small ones
 * (about 15 ms of CPU), and frees the big one, the medium ones and the
 * small ones of the round before except every fourth (those are freed
 * when their slot is reused, three rounds after they were made).  40 * SCALE rounds over all the threads, so most of the
 * time is the arithmetic and the allocator is called only about 1000 times
 * per round.
 *
 * Measures: the peak RSS of a process that holds well under 2 MiB: what
 * the allocator maps and touches up front (per process and per thread)
 * beyond what the program uses.  The time is there to make the process
 * last, so that an allocator's background work (a purging thread, timers)
 * shows too.  ops = malloc + free calls (fixed for a given -t/-s).
 */

#define WL_NAME "tiny"

#include "wl.h"

#define BASE_ROUNDS 40 /* at SCALE=1, all threads together */
#define SMALL 300
#define MEDIUM 4
#define BIG ((size_t)1 << 20)
#define MIX_PASSES 28000 /* arithmetic passes over the small objects per round */

static volatile uint64_t g_sink;

typedef struct {
    unsigned char *p;
    size_t n;
} obj_t;

static unsigned char *new_obj(size_t n, unsigned char fill)
{
    unsigned char *p = malloc(n);
    stamp(p, n);
    memset(p + 4, fill, n - 5);
    return p;
}

static void drop_obj(unsigned char *p, size_t n, unsigned char fill)
{
    if (check(p, BIG) != n || p[4] != fill || p[n / 2] != fill)
        fail("block %p: damaged contents", (void *)p);
    free(p);
}

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    obj_t small[3][SMALL]; /* the small objects of rounds r, r-1, r-2 (by r % 3) */
    memset(small, 0, sizeof small);
    uint64_t ops = 0, acc = 0;
    for (uint64_t r = 0; r < w->iters; r++) {
        obj_t *cur = small[r % 3], *prev = small[(r + 2) % 3];
        unsigned char f = (unsigned char)(r + 1);
        for (int i = 0; i < SMALL; i++) {
            if (cur[i].p) { /* kept from three rounds ago */
                drop_obj(cur[i].p, cur[i].n, (unsigned char)(f - 3));
                ops++;
            }
            cur[i].n = rng_range(&rng, 16, 256);
            cur[i].p = new_obj(cur[i].n, f);
        }
        ops += SMALL;
        unsigned char *med[MEDIUM];
        size_t medn[MEDIUM];
        for (int i = 0; i < MEDIUM; i++) {
            medn[i] = rng_range(&rng, 16384, 65536);
            med[i] = new_obj(medn[i], f);
        }
        unsigned char *big = new_obj(BIG, f);
        ops += MEDIUM + 1;
        /* The program's real work: arithmetic over its small objects. */
        for (int k = 0; k < MIX_PASSES; k++)
            for (int i = 0; i < SMALL; i++)
                acc = (acc ^ cur[i].p[4 + (k & 7)]) * 0x100000001B3ULL + (uint64_t)k;
        drop_obj(big, BIG, f);
        for (int i = 0; i < MEDIUM; i++)
            drop_obj(med[i], medn[i], f);
        ops += MEDIUM + 1;
        for (int i = 0; i < SMALL; i++) { /* last round's, but every fourth */
            if (prev[i].p && i % 4 != 0) {
                drop_obj(prev[i].p, prev[i].n, (unsigned char)(f - 1));
                prev[i].p = NULL;
                ops++;
            }
        }
    }
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < SMALL; i++) {
            if (small[j][i].p) {
                check(small[j][i].p, 256);
                free(small[j][i].p);
                ops++;
            }
        }
    }
    g_sink = acc; /* the arithmetic's result is kept */
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (!g_threads_given)
        g_threads = 1;
    wl_workers(g_threads, scaled(BASE_ROUNDS, (uint64_t)g_threads));
    wl_start(worker);
    return wl_done(wl_join());
}
