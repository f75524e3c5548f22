/* Thread heaps: one per thread, reached through one thread-local pointer.
 *
 * Until a thread first allocates, its pointer names a shared empty heap
 * whose every direct entry is an empty page, so the fast path needs no
 * "initialised?" test: the first malloc simply misses into the slow path,
 * which creates the real heap.  A pthread key's destructor hands the heap's
 * segments to the process when the thread exits; heap structs themselves are
 * recycled, never unmapped (a remote freer may still read a stale owner). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

ebb_page_t ebb_empty_page;
ebb_heap_t ebb_empty_heap = {.direct = {[0 ... EBB_DIRECT_COUNT - 1] = &ebb_empty_page}};
__thread ebb_heap_t *ebb_tls_heap = &ebb_empty_heap;
__thread bool ebb_heap_exited;

static ebb_lock_t heap_pool_lock;
static ebb_heap_t *heap_pool;     /* recycled heaps */
static uint8_t *heap_chunk;       /* carving area for new heaps */
static size_t heap_chunk_left;

static pthread_key_t heap_key;
static _Atomic int init_state; /* 0 none, 1 running, 2 done */
static _Atomic(pthread_t) init_thread;
static _Atomic uint32_t heaps_born; /* heaps handed to threads, ever (wraps) */
static _Atomic uint32_t heaps_exited; /* threads that had a heap and ended (saturates) */

static void heap_thread_exit(void *arg);

/* ---- the shared heap ---------------------------------------------------------
 * Medium and large blocks (above 8 KiB, up to 2 MiB) come from heaps that
 * every thread shares, under a lock, not from each thread's own heap.  Per
 * thread, every medium class in use kept a partly used page (about 8
 * blocks) and free slices the other threads could not take: in the
 * service workload, 4 workers over 25 medium classes held about 100 MiB
 * free but resident that way, a third of the RSS.  Shared, any thread
 * reuses any free medium block and slice.  Large blocks joined them for
 * the same reason: in threads' segments, trace_replay-8t peaked at 297 MiB
 * against 222 shared.  The lock covers a list pop (the
 * caller zeroes or writes the block after it), or the slow path; a free
 * takes it too and does what an owner's free does, so counts stay exact
 * and a page that empties goes back to its segment at once.  The heap's
 * pages are marked EBB_OWNER_SHARED, which no thread's id is, so the free
 * path tells them apart with one test.  jemalloc's arenas and
 * tcmalloc's central lists also serve their larger classes under a lock.
 *
 * There are EBB_SHARED_HEAPS of them, each with its own lock, and a class
 * belongs to one (shared_slot_of): threads allocating different medium
 * sizes seldom wait for each other, and every block of a class is still
 * reusable by every thread.  Empty segments still go to the process-wide
 * pool, so memory moves between them too. */
ebb_shared_slot_t ebb_shared[EBB_SHARED_HEAPS];
__thread uint8_t ebb_shared_held;
_Static_assert(EBB_SHARED_HEAPS <= 8, "one bit each in ebb_shared_held");

static ebb_heap_t *heap_new(bool *fresh);
static void heap_reset(ebb_heap_t *heap, bool fresh, bool shared);

/* First use of shared heap `slot`, whose lock the caller holds (with its
 * held bit set). */
EBB_NOINLINE ebb_heap_t *shared_heap_create_locked(unsigned slot) {
  bool fresh;
  ebb_heap_t *heap = heap_new(&fresh);
  if (heap == NULL) {
    ebb_shared_held &= (uint8_t)~(1u << slot);
    lock_release(&ebb_shared[slot].lock);
    errno = ENOMEM;
    return NULL;
  }
  heap_reset(heap, fresh, true);
  heap->is_shared = true;
  heap->shared_slot = (uint8_t)slot;
  heap->thread_id = EBB_OWNER_SHARED; /* its pages' owner_thread */
  atomic_store_explicit(&ebb_shared[slot].heap, heap, memory_order_release);
  return heap;
}

/* The sampled heap (sample.c): a shared heap of its own, whose pages carry
 * EBB_OWNER_SAMPLED.  Its lock guards the sampler's tables too; it is
 * taken only for a sampled allocation or the free of a sampled block. */
ebb_lock_t ebb_sampled_lock;
static ebb_heap_t *sampled_heap;

ebb_heap_t *sampled_heap_get_locked(void) {
  if (sampled_heap != NULL) return sampled_heap;
  bool fresh;
  ebb_heap_t *heap = heap_new(&fresh);
  if (heap == NULL) return NULL;
  heap_reset(heap, fresh, true);
  heap->is_shared = true;
  heap->shared_slot = EBB_SHARED_HEAPS; /* none: it never takes a slot's lock */
  heap->thread_id = EBB_OWNER_SAMPLED;  /* its pages' owner_thread */
  sampled_heap = heap;
  return heap;
}

ebb_heap_t *shared_heap_lock_existing(unsigned slot, bool wait) {
  if (atomic_load_explicit(&ebb_shared[slot].heap, memory_order_acquire) == NULL) return NULL;
  if (wait) {
    if (shared_heap_held_here(slot)) return NULL;
    return shared_heap_lock(slot);
  }
  if (!lock_try(&ebb_shared[slot].lock)) return NULL;
  ebb_shared_held |= (uint8_t)(1u << slot);
  ebb_heap_t *heap = atomic_load_explicit(&ebb_shared[slot].heap, memory_order_relaxed);
  if (atomic_load_explicit(&ebb_shared[slot].deferred, memory_order_relaxed) != NULL)
    shared_drain_deferred(heap);
  return heap;
}

/* Around fork, ebb's locks are held so that the child gets consistent
 * structures.  Order: stdio's list lock first (glibc's, where it exists),
 * then the shared heaps (whose slow path may purge everything near the
 * memory limit), the purger's pass, the heap pool, then segment.c's.
 * glibc's fork takes the stdio list lock after the prepare handlers and
 * waits for it there: a thread holding it in fflush(NULL) waits for a FILE
 * that a thread in getline holds while it waits for ebb's lock, which the
 * forking thread held: a deadlock (threads doing getline, fflush(NULL) and
 * fork by turns hung).  Taken first, the list lock is only waited for while
 * ebb's locks are free; it is recursive, so fork takes it again without
 * waiting.  glibc's own malloc takes its locks after it too.
 * A fork from a signal handler that interrupted this thread inside ebb,
 * holding one of its locks, takes none: waiting would never end; the child
 * resets them all (its state is as the interrupted call left it, enough to
 * exec or _exit, which is what such children do). */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));
static bool have_stdio_list_lock(void) { return _IO_list_lock && _IO_list_unlock && _IO_list_resetlock; }
/* Forks of this thread that took no locks and have not returned: a fork
 * from a signal handler that interrupted another fork's handlers must not
 * make the outer fork's parent handler skip its releases. */
static __thread uint32_t forks_without_locks;

static void prefork(void) {
  if (ebb_locks_held != 0) {
    forks_without_locks++;
    return;
  }
  if (have_stdio_list_lock()) _IO_list_lock();
  for (unsigned i = 0; i < EBB_SHARED_HEAPS; i++) lock_acquire(&ebb_shared[i].lock);
  lock_acquire(&ebb_sampled_lock);
  purge_prefork();
  lock_acquire(&heap_pool_lock);
  segment_locks_prefork();
}
static void postfork_parent(void) {
  if (forks_without_locks != 0) {
    forks_without_locks--;
    return;
  }
  segment_locks_postfork(false);
  lock_release(&heap_pool_lock);
  purge_postfork(false);
  lock_release(&ebb_sampled_lock);
  for (unsigned i = EBB_SHARED_HEAPS; i-- > 0;) lock_release(&ebb_shared[i].lock);
  /* fork dropped its own hold (if it took one) before this handler */
  if (have_stdio_list_lock()) _IO_list_unlock();
}
static void postfork_child(void) {
  segment_locks_postfork(true);
  lock_reset(&heap_pool_lock);
  purge_postfork(true);
  lock_reset(&ebb_sampled_lock);
  for (unsigned i = 0; i < EBB_SHARED_HEAPS; i++) lock_reset(&ebb_shared[i].lock);
  ebb_shared_held = 0;
  ebb_locks_held = 0;
  bool took = forks_without_locks == 0;
  if (!took) forks_without_locks--;
  /* glibc resets the list lock in a child of a threaded process, and not
   * in one of a single thread: reset, it is free either way. */
  if (took && have_stdio_list_lock()) _IO_list_resetlock();
}

/* Once per process.  pthread_atfork may itself call malloc: a recursive
 * call from the initialising thread goes on without waiting. */
void ebb_init(void) {
  if (atomic_load_explicit(&init_state, memory_order_acquire) == 2) return;
  int expected = 0;
  if (atomic_compare_exchange_strong(&init_state, &expected, 1)) {
    atomic_store(&init_thread, pthread_self());
    page_tables_init();
    os_init();
    options_init();
    purge_init();
    prof_init();
    pthread_key_create(&heap_key, heap_thread_exit);
    pthread_atfork(prefork, postfork_parent, postfork_child);
    atomic_store_explicit(&init_state, 2, memory_order_release);
    return;
  }
  if (pthread_equal(atomic_load(&init_thread), pthread_self())) return;
  while (atomic_load_explicit(&init_state, memory_order_acquire) != 2) sched_yield();
}

/* A heap from the pool, or a new one carved from fresh (zero) memory
 * (*fresh). */
static ebb_heap_t *heap_new(bool *fresh) {
  lock_acquire(&heap_pool_lock);
  ebb_heap_t *heap = heap_pool;
  *fresh = heap == NULL;
  if (heap) {
    heap_pool = heap->pool_next;
  } else {
    size_t size = (sizeof(ebb_heap_t) + 63) & ~(size_t)63;
    if (heap_chunk_left < size) {
      size_t chunk = (size_t)64 << 10;
      uint8_t *mem = os_map(chunk);
      if (mem == NULL) {
        lock_release(&heap_pool_lock);
        return NULL;
      }
      heap_chunk = mem;
      heap_chunk_left = chunk;
    }
    heap = (ebb_heap_t *)heap_chunk;
    heap_chunk += size;
    heap_chunk_left -= size;
    /* fresh (zero) memory: publish it to the purger and the statistics */
    heap->all_next = atomic_load_explicit(&ebb_all_heaps, memory_order_relaxed);
    atomic_store_explicit(&ebb_all_heaps, heap, memory_order_release);
  }
  lock_release(&heap_pool_lock);
  return heap;
}

/* A heap carved from fresh memory is zero already: clearing it would make
 * all of its 23 KiB resident, where a thread that uses a few classes
 * touches the direct table and a few lines.  A shared heap has no use for
 * the direct table (only a thread's own heap is read by the fast path),
 * so its 8.4 KiB stay untouched too. */
static void heap_reset(ebb_heap_t *heap, bool fresh, bool shared) {
  if (!fresh) memset(heap, 0, offsetof(ebb_heap_t, all_next)); /* the rest outlives threads */
  atomic_store_explicit(&heap->active, 1, memory_order_relaxed); /* a new thread is not quiet */
  atomic_store_explicit(&heap->quiet, 0, memory_order_relaxed);
  if (!shared)
    for (size_t i = 0; i < EBB_DIRECT_COUNT; i++) heap->direct[i] = &ebb_empty_page;
}

ebb_heap_t *heap_get_or_create(void) {
  ebb_heap_t *heap = ebb_tls_heap;
  if (heap != &ebb_empty_heap) return heap;
  ebb_init();
  bool fresh;
  heap = heap_new(&fresh);
  if (heap == NULL) return NULL;
  heap_reset(heap, fresh, false);
  heap->is_live = true;
  /* Only once threads have been seen to come and go (a pool that grows
   * and shrinks, a thread per task or connection): a program with a fixed
   * set of threads would pay for its early blocks a page per class twice,
   * in the shared heaps and in its own (tight_random-1t: 2.0 -> 2.2 MiB,
   * xmalloc-4t 5.0 -> 5.4).  Never the first thread (main, as a rule). */
  heap->young_left = atomic_load_explicit(&heaps_exited, memory_order_relaxed) >= EBB_YOUNG_AFTER_EXITS &&
                             !pthread_equal(atomic_load(&init_thread), pthread_self())
                         ? EBB_YOUNG_ALLOCS
                         : 0;
  heap->thread_id = ebb_thread_id();
  heap->birth = atomic_fetch_add_explicit(&heaps_born, 1, memory_order_relaxed) + 1;
  /* Set the thread pointer first: pthread_setspecific may allocate. */
  ebb_tls_heap = heap;
  pthread_setspecific(heap_key, heap);
  /* Periodic statistics were asked for: the purger prints them, and a
   * program that frees little might never start it otherwise.  After the
   * heap is in place: pthread_create allocates, from this heap. */
  if (ebb_opt.stats_interval_ms > 0 || ebb_opt.prof_interval_ms > 0) purge_start_if_due();
  return heap;
}

static void heap_thread_exit(void *arg) {
  ebb_heap_t *heap = arg;
  if (heap == NULL || heap == &ebb_empty_heap) return;
  /* Start the purger now if the segments this thread leaves will need it:
   * pthread_create allocates, and this heap still serves it.  Started
   * after the heap went away, its allocation opened a shared heap and a
   * segment for one 288-byte block. */
  purge_start_if_due();
  /* First, while the thread pointer still names the heap: a block of a
   * page this thread handed to the purger goes back through its heap. */
  foreign_cache_flush(heap);
  /* Later destructors may still allocate: they get a fresh heap. */
  ebb_tls_heap = &ebb_empty_heap;
  ebb_heap_exited = true;
  heap->is_live = false;
  if (atomic_load_explicit(&heaps_exited, memory_order_relaxed) < EBB_YOUNG_AFTER_EXITS)
    atomic_fetch_add_explicit(&heaps_exited, 1, memory_order_relaxed);
  medium_cache_flush(heap, true);
  heap_quiet_release(heap); /* its pages' counts as any other thread reads them */
  segments_abandon(heap);
  stats_retire_heap(heap);
  lock_acquire(&heap_pool_lock);
  heap->pool_next = heap_pool;
  heap_pool = heap;
  lock_release(&heap_pool_lock);
}
