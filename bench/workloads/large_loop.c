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
#define LO_BITS 16 /* 64 KiB */
#define HI_BITS 23 /* .. 8 MiB */

static void *worker(void *arg)
{
    wl_big_replace_loop(arg, SLOTS, LO_BITS, HI_BITS);
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_REPLACEMENTS, worker);
}
