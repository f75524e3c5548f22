/* large: big blocks, a few live at a time.
 *
 * Models: programs that allocate large buffers (images, I/O buffers,
 * matrices, arena chunks) of very different sizes and replace them often.
 * Each of T threads keeps 8 slots; it fills them, then repeatedly frees a
 * random slot's block and allocates a new one of log-uniform size
 * 64 KiB..32 MiB, writing one byte in every 4 KiB page of it (so every page
 * is faulted in).  Before a block is freed its first, middle and last page
 * bytes are checked.
 *
 * Measures: the large-object path: mapping/unmapping, page faults, how
 * eagerly memory is returned and re-faulted (kernel time), and the RSS
 * kept around.  ops = malloc + free calls (fixed total of replacements,
 * split over the threads).
 */

#define WL_NAME "large"

#include "wl.h"

#define BASE_REPLACEMENTS 20000 /* at SCALE=1, all threads */
#define SLOTS 8
static void *worker(void *arg)
{
    wl_big_replace_loop(arg, SLOTS, 16, 25); /* 64 KiB .. 32 MiB */
    return NULL;
}

int main(int argc, char **argv)
{
    return wl_main(argc, argv, BASE_REPLACEMENTS, worker);
}
