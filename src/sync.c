/* A small test-and-test-and-set lock for the rare paths (the segment pool,
 * abandoned segments, the heap pool, a segment's slice masks, sparse pages).  No pthread mutex: these locks
 * are also taken before main and around fork, and must never allocate. */
#include <sched.h>

#include "internal.h"

void lock_acquire(ebb_lock_t *l) {
  for (unsigned spins = 0;; spins++) {
    if (lock_try(l)) return;
    if (spins >= 64) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
    else __builtin_ia32_pause();
#endif
  }
}
