/* large_loop: large blocks replaced in a loop, a few live at a time.
 *
 * Models: code that allocates a big buffer per request or per frame
 * (decompression and I/O buffers, images, serialisation scratch space),
 * fills it, uses it and drops it, over and over.  Each of T threads keeps
 * 4 slots; it fills them, then repeatedly frees a random slot's block and
 * allocates a new one of log-uniform size 64 KiB..8 MiB, writing one byte
 * in every 4 KiB page of it.  Before a block is freed its first, middle and
 * last page bytes are checked.  Like `large`, but with smaller blocks, fewer
 * of them live and many more replacements.
 *
 * Measures: whether freed large spans are reused by the next allocation
 * (warm pages) or given back and faulted in again (kernel time, page
 * faults), and the RSS kept to make that reuse possible.  ops = malloc +
 * free calls (fixed total of replacements, split over the threads).
 */

#define WL_NAME "large_loop"

#include "wl.h"

#define BASE_REPLACEMENTS 3000 /* at SCALE=1, all threads */
#define SLOTS 4
#define PAGE 4096
#define LO_BITS 16 /* 64 KiB */
#define HI_BITS 23 /* .. 8 MiB */

static void *new_block(uint64_t *rng, size_t *np)
{
    size_t n = rng_log(rng, LO_BITS, HI_BITS);
    unsigned char *p = malloc(n);
    stamp(p, n);
    unsigned char t = tag_of(p, n);
    for (size_t off = PAGE; off < n - 1; off += PAGE)
        p[off] = (unsigned char)(t + (off >> 12));
    *np = n;
    return p;
}

static void drop_block(unsigned char *p, size_t n)
{
    if (check(p, (size_t)1 << HI_BITS) != n)
        fail("block %p: size field damaged", (void *)p);
    unsigned char t = tag_of(p, n);
    size_t pages = (n - 2) / PAGE; /* pages written beyond the first */
    size_t mid = (pages / 2 + 1) * PAGE, last = pages * PAGE;
    if (pages > 0 && (p[mid] != (unsigned char)(t + (mid >> 12)) ||
                      p[last] != (unsigned char)(t + (last >> 12))))
        fail("block %p: damaged contents", (void *)p);
    free(p);
}

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    unsigned char *slot[SLOTS];
    size_t size[SLOTS];
    pthread_barrier_wait(&g_barrier);
    for (int i = 0; i < SLOTS; i++)
        slot[i] = new_block(&rng, &size[i]);
    for (uint64_t i = 0; i < w->iters; i++) {
        unsigned k = (unsigned)(rng_next(&rng) % SLOTS);
        drop_block(slot[k], size[k]);
        slot[k] = new_block(&rng, &size[k]);
    }
    for (int i = 0; i < SLOTS; i++)
        drop_block(slot[i], size[i]);
    w->ops = 2 * (SLOTS + w->iters);
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_REPLACEMENTS, worker);
}
