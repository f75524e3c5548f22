/* The allocator's lock (internal.h has the inline fast paths).  Not a
 * pthread mutex: it is taken before main, around fork and inside malloc, and
 * must never allocate.
 *
 * A waiter spins a little (a holder on another core usually lets go within
 * a few hundred cycles), then marks the lock "contended" (2) and sleeps on
 * it as a futex; whoever drops a lock marked 2 wakes one sleeper.  The woken
 * thread takes the lock as contended again, so a drop after it wakes the
 * next one: no sleeper is forgotten.  No sched_yield loop: on a busy host
 * yielding gives the CPU to anyone but the descheduled holder, and the
 * waiter burns its share meanwhile. */
#include "internal.h"

#define LOCK_SPINS 100

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

__thread uint32_t ebb_locks_held;

void lock_acquire_contended(ebb_lock_t *l) {
  for (unsigned spins = 0; spins < LOCK_SPINS; spins++) {
    cpu_relax();
    if (lock_try(l)) return; /* counted by lock_try */
  }
  locks_held_add(1); /* before it can be ours: see internal.h */
  while (atomic_exchange_explicit(&l->held, 2, memory_order_acquire) != 0)
    os_futex_wait(&l->held, 2, -1);
}

void lock_wake(ebb_lock_t *l) { os_futex_wake(&l->held, 1); }
