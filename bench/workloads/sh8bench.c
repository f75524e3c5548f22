/* sh8bench: arrays of same-size blocks freed in different orders.
 *
 * Models: code that builds many objects of one type at a time and tears
 * them down in bulk (sh6bench/sh8bench style).  Each of T threads, in each
 * round, steps through block sizes 8..1024 B (step 8), then 1 KiB..16 KiB
 * (step 512 B); for each size it allocates an array of blocks (2000 small,
 * fewer for big sizes, at most about 1 MiB per array), stamps them, and
 * frees them in one of three orders (forward, reverse, or interleaved:
 * even indices forward then odd indices backward), chosen by round and
 * size.  Every fifth block outlives its array and is freed only after the
 * next size's array has been allocated, so lifetimes overlap across sizes.
 *
 * Measures: bulk allocation and bulk freeing within a size class, the cost
 * of freeing in an order unlike the allocation order, and reuse across
 * size classes.  ops = malloc + free calls (fixed number of rounds, split
 * over the threads).
 */

#define WL_NAME "sh8bench"

#include "wl.h"

#define BASE_ROUNDS 600 /* rounds at SCALE=1, all threads */
#define MAX_BLOCKS 2000
#define ARRAY_BYTES ((size_t)1 << 20)
#define MAX_SIZE (16 * 1024)

static size_t next_size(size_t s)
{
    return s < 1024 ? s + 8 : s + 512;
}

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    void **blk = xmalloc_or_die(sizeof(void *) * MAX_BLOCKS);
    void **keep = xmalloc_or_die(sizeof(void *) * MAX_BLOCKS);
    void **kept = xmalloc_or_die(sizeof(void *) * MAX_BLOCKS);
    size_t nkept = 0;
    uint64_t ops = 0;
    pthread_barrier_wait(&g_barrier);
    for (uint64_t r = 0; r < w->iters; r++) {
        unsigned step = 0;
        for (size_t s = 8; s <= MAX_SIZE; s = next_size(s), step++) {
            size_t nb = ARRAY_BYTES / s;
            if (nb > MAX_BLOCKS)
                nb = MAX_BLOCKS;
            for (size_t i = 0; i < nb; i++) {
                blk[i] = malloc(s);
                stamp(blk[i], s);
            }
            ops += nb;
            /* The previous size's survivors die now. */
            for (size_t i = 0; i < nkept; i++) {
                check(kept[i], MAX_SIZE);
                free(kept[i]);
            }
            ops += nkept;
            /* Every fifth block survives until the next size. */
            size_t nkeep = 0;
            for (size_t i = 0; i < nb; i += 5) {
                keep[nkeep++] = blk[i];
                blk[i] = NULL;
            }
            switch ((r + step + (uint64_t)w->id) % 3) {
            case 0: /* forward */
                for (size_t i = 0; i < nb; i++)
                    if (blk[i]) {
                        check(blk[i], s);
                        free(blk[i]);
                    }
                break;
            case 1: /* reverse */
                for (size_t i = nb; i-- > 0;)
                    if (blk[i]) {
                        check(blk[i], s);
                        free(blk[i]);
                    }
                break;
            default: /* interleaved: evens forward, then odds backward */
                for (size_t i = 0; i < nb; i += 2)
                    if (blk[i]) {
                        check(blk[i], s);
                        free(blk[i]);
                    }
                for (size_t i = (nb & ~(size_t)1) + 1; i >= 2;) {
                    i -= 2;
                    if (i < nb && blk[i]) {
                        check(blk[i], s);
                        free(blk[i]);
                    }
                }
                break;
            }
            ops += nb - nkeep;
            void **t = kept;
            kept = keep;
            keep = t;
            nkept = nkeep;
        }
    }
    for (size_t i = 0; i < nkept; i++) {
        check(kept[i], MAX_SIZE);
        free(kept[i]);
    }
    ops += nkept;
    free(blk);
    free(keep);
    free(kept);
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_ROUNDS, worker);
}
