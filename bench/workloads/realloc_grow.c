/* realloc_grow: dynamic arrays and strings growing by realloc.
 *
 * Models: growable vectors (doubling buffers, readers slurping a file) and
 * strings built by small appends (string builders, log lines, JSON output).
 * Each of T threads, in each round:
 *  - grows 3 vectors at once, round-robin, from 16 B by a factor 1.5..2.0
 *    per realloc until each reaches its target size (log-uniform 1..64 MiB),
 *    touching one byte per 4 KiB page of each newly added part; then frees
 *    them;
 *  - grows 256 strings at once, picking a random unfinished one each step,
 *    by realloc to +1..+64 bytes and appending that many bytes, until each
 *    reaches its target length (log-uniform 64 B..64 KiB); each string is
 *    freed when it is done.
 * After every realloc the old contents are checked (first byte, the byte
 * before the old end, a page-stride byte).
 *
 * Measures: realloc in place versus move (and mremap for large blocks),
 * the cost of growing through many size classes, and page-fault/copy
 * costs for big buffers.  ops = malloc + realloc + free calls (fixed number
 * of rounds, split over the threads).
 */

#define WL_NAME "realloc_grow"

#include "wl.h"

#define BASE_ROUNDS 260 /* at SCALE=1, all threads */
#define NVEC 3
#define NSTR 256
#define PAGE 4096

static inline unsigned char page_val(size_t off, unsigned v)
{
    return (unsigned char)((off >> 12) * 29 + v * 7 + 1);
}

static uint64_t grow_vectors(uint64_t *rng, unsigned salt)
{
    unsigned char *p[NVEC];
    size_t cap[NVEC], target[NVEC];
    uint64_t ops = 0;
    int active = NVEC;
    for (int v = 0; v < NVEC; v++) {
        cap[v] = 16;
        target[v] = rng_log(rng, 20, 26);
        p[v] = malloc(cap[v]);
        if (!p[v])
            fail("malloc(16) returned NULL");
        p[v][0] = page_val(0, salt + (unsigned)v);
        ops++;
    }
    while (active > 0) {
        for (int v = 0; v < NVEC; v++) {
            if (cap[v] >= target[v])
                continue;
            size_t old = cap[v];
            size_t n = old + old * (50 + (size_t)(rng_next(rng) % 51)) / 100;
            if (n >= target[v]) {
                n = target[v];
                active--;
            }
            unsigned char *q = realloc(p[v], n);
            ops++;
            if (!q)
                fail("realloc(%zu) returned NULL", n);
            if (((uintptr_t)q & 15) != 0)
                fail("realloc(%zu) returned misaligned %p", n, (void *)q);
            unsigned vs = salt + (unsigned)v;
            size_t last = (old - 1) & ~(size_t)(PAGE - 1);
            size_t mid = ((size_t)(rng_next(rng) % old)) & ~(size_t)(PAGE - 1);
            if (q[0] != page_val(0, vs) || q[last] != page_val(last, vs) ||
                q[mid] != page_val(mid, vs))
                fail("realloc(%zu -> %zu): contents not preserved", old, n);
            for (size_t off = (old + PAGE - 1) & ~(size_t)(PAGE - 1); off < n; off += PAGE)
                q[off] = page_val(off, vs);
            p[v] = q;
            cap[v] = n;
        }
    }
    for (int v = 0; v < NVEC; v++) {
        free(p[v]);
        ops++;
    }
    return ops;
}

static uint64_t grow_strings(uint64_t *rng)
{
    char *s[NSTR];
    size_t len[NSTR], target[NSTR];
    int act[NSTR];
    uint64_t ops = 0;
    int nact = NSTR;
    for (int i = 0; i < NSTR; i++) {
        s[i] = malloc(1);
        if (!s[i])
            fail("malloc(1) returned NULL");
        s[i][0] = 0;
        len[i] = 0;
        target[i] = rng_log(rng, 6, 16);
        act[i] = i;
        ops++;
    }
    while (nact > 0) {
        uint64_t r = rng_next(rng);
        int a = (int)(r % (uint64_t)nact);
        int i = act[a];
        size_t add = 1 + (size_t)((r >> 32) % 64);
        char *q = realloc(s[i], len[i] + add + 1);
        ops++;
        if (!q)
            fail("realloc(%zu) returned NULL", len[i] + add + 1);
        char c = (char)('A' + i % 26);
        if (q[len[i]] != 0 || (len[i] > 0 && (q[0] != c || q[len[i] - 1] != c)))
            fail("string realloc to %zu: contents not preserved", len[i] + add + 1);
        memset(q + len[i], c, add);
        len[i] += add;
        q[len[i]] = 0;
        s[i] = q;
        if (len[i] >= target[i]) {
            if (q[len[i] / 2] != c)
                fail("string %p: damaged contents", (void *)q);
            free(q);
            ops++;
            act[a] = act[--nact];
        }
    }
    return ops;
}

static void *worker(void *arg)
{
    wl_worker_t *w = arg;
    uint64_t rng = rng_seed((uint64_t)w->id);
    uint64_t ops = 0;
    pthread_barrier_wait(&g_barrier);
    for (uint64_t r = 0; r < w->iters; r++) {
        ops += grow_vectors(&rng, (unsigned)(r * 3 + (uint64_t)w->id));
        ops += grow_strings(&rng);
    }
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_ROUNDS, worker);
}
