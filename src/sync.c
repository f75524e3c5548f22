/* A small test-and-test-and-set lock for the rare paths (the segment pool,
 * abandoned segments, the heap pool, a segment's slice masks, sparse pages).  No pthread mutex: these locks
 * are also taken before main and around fork, and must never allocate. */
#include <sched.h>

#include "internal.h"

void lock_acquire(ebb_lock_t *l) {
  for (unsigned spins = 0;; spins++) {
    if (!atomic_load_explicit(&l->held, memory_order_relaxed) &&
        !atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
      return;
    if (spins >= 64) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
    else __builtin_ia32_pause();
#endif
  }
}

bool lock_try(ebb_lock_t *l) {
  return !atomic_load_explicit(&l->held, memory_order_relaxed) &&
         !atomic_exchange_explicit(&l->held, 1, memory_order_acquire);
}

void lock_release(ebb_lock_t *l) { atomic_store_explicit(&l->held, 0, memory_order_release); }
