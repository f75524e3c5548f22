/* The ebb_* API and the generic paths behind the inline fast paths:
 * first allocation of a thread, sizes above 1 KiB, aligned requests, huge
 * blocks, frees from other threads, realloc, and every check of bad input. */
#include <errno.h>
#include <string.h>

#include "fastpath.h"

static void foreign_cache_close(ebb_heap_t *heap, unsigned cls);
#if EBB_SECURE
static void secure_check_link(const ebb_block_t *b);
#else
static inline void secure_check_link(const ebb_block_t *b) { (void)b; }
#endif
static void free_marked_owner(ebb_segment_t *seg, ebb_page_t *page, void *p, uintptr_t owner);

/* ---- allocation ---------------------------------------------------------- */
/* The thread's heap, made at its first allocation; NULL (errno as it was)
 * if the OS refused the memory for one.  The callers then take the block
 * from the shared heaps, as a thread whose heap went away at its exit
 * does: a heap is a 64 KiB mapping of its own, and a mapping can fail
 * where the segments still have room (RLIMIT_AS, vm.max_map_count, or a
 * transient refusal: qemu-user's emulated 16 KiB pages refused such a
 * mapping for a stretch of t_conformance's threads, and each of those
 * threads' mallocs failed). */
static ebb_heap_t *heap_for_alloc(void) {
  ebb_heap_t *heap = ebb_tls_heap;
  if (unlikely(heap == &ebb_empty_heap)) {
    int saved = errno;
    heap = heap_get_or_create();
    errno = saved;
  }
  return heap;
}

/* A block of a shared heap's page, freed, holds this mark in its second
 * word until it is handed out again (alloc_shared clears it), so a second
 * free of it is caught wherever the first one left it: in a thread's medium
 * cache (two threads freeing one 48 KiB block each kept it in theirs, and
 * both were handed it next), on its page's lists, or deferred.  Every class
 * but the 8-byte one: medium and large blocks, and the small ones young
 * threads take there (a double free on a young thread's page then would
 * loop its list, and no thread exit walks a shared page).  A store on each
 * allocation and a test on each free, beside a lock or a cache exchange. */
EBB_INLINE uintptr_t shared_freed_mark(const void *p) {
  return (uintptr_t)p ^ (uintptr_t)0x6562622d66726565ull; /* "ebb-free" */
}
EBB_INLINE bool shared_markable(unsigned cls) { return cls >= 2; } /* class 1: 8 B, one word */
EBB_INLINE void shared_mark_taken(void *block, unsigned cls) {
  if (shared_markable(cls)) ((uintptr_t *)block)[1] = 0;
}

/* A block of a medium or large class, from its shared heap (heap.c).  Zeroing, like
 * the caller's writes, happens after the lock is dropped.  A thread whose
 * heap went away at its exit gets blocks of every class here (see
 * thread_exited). */
static void *alloc_shared(size_t size, unsigned cls, bool zero) {
  bool medium_cached = cls > EBB_SMALL_CLASS_MAX && cls <= EBB_MEDIUM_CACHE_CLASS_MAX;
  if (medium_cached) { /* the thread's medium cache first */
    ebb_heap_t *own = ebb_tls_heap;        /* ebb_empty_heap's slots stay empty */
    _Atomic(ebb_block_t *) *cached = medium_cache_slot(own, cls);
    if (atomic_load_explicit(cached, memory_order_relaxed) != NULL) {
      ebb_block_t *block = atomic_exchange_explicit(cached, NULL, memory_order_acquire);
      if (block != NULL) { /* else the purger took it meanwhile */
        medium_cache_touch(own);
        own->stat_allocs[cls]++; /* its page counted it when it first went out */
        shared_mark_taken(block, cls);
        if (zero) memset(block, 0, size);
        return block;
      }
    }
  }
  ebb_init();
  /* A thread gets its heap here too, for the cache its frees fill. */
  if (medium_cached && ebb_tls_heap == &ebb_empty_heap && !ebb_heap_exited) heap_get_or_create();
  unsigned slot = shared_slot_of(cls);
  if (unlikely(shared_heap_held_here(slot))) {
    /* An allocation made under the lock: this thread's own heap serves
     * it; its frees go back there as they would. */
    ebb_heap_t *own = heap_for_alloc();
    if (own == NULL) errno = ENOMEM;
    return own ? page_alloc_slow(own, size, cls, zero) : NULL;
  }
  ebb_heap_t *heap = shared_heap_lock(slot);
  if (heap == NULL) return NULL;
  /* The class's first page serves without the slow path: its free list,
   * the frees since (collected), or its next block never handed out
   * (medium pages are carved one block at a time, so that memory is
   * touched only when used). */
  ebb_page_t *page = heap->queues[cls].first;
  ebb_block_t *block = NULL;
  bool is_zero = false;
  if (page != NULL) {
    if (page->free == NULL && page->local_free != NULL) page_collect(page);
    if (page->free != NULL) {
      is_zero = page->is_zero;
      block = page_pop(page);
    } else if (page->capacity < page->reserved && !page->purged && page->slice_count != 1) {
      /* Not a one-slice page (a small class, for young threads): its
       * carving is claimed under the segment's lock (page.c,
       * page_claim_carve), in the slow path. */
      is_zero = page->mem_fresh;
      block = page_carve_one(page);
    }
  }
  bool slow = block == NULL;
  if (slow) {
    block = page_alloc_slow(heap, size, cls, false);
    page = heap->queues[cls].first; /* the slow path puts the page it used first */
    is_zero = block != NULL && page->is_zero;
  }
  shared_heap_unlock(heap);
  /* A program whose frees are all of medium blocks may never empty a page
   * (which is what starts the purger otherwise). */
  if (slow) purge_start_if_due();
  if (block == NULL) return NULL;
  shared_mark_taken(block, cls);
  if (zero) block_zero(block, size, is_zero);
  return block;
}

/* A thread whose heap went away at its exit (heap.c), allocating in a
 * later destructor.  pthread runs destructors in rounds, and nothing runs
 * after the last: a heap made there was never handed back, so each such
 * thread leaked it and a 4 MiB segment (1000 threads: 3.9 GiB mapped, and
 * slower with every thread).  Such a thread's allocations, of any class,
 * come from the shared heaps instead, whose blocks any thread frees. */
EBB_INLINE bool thread_exited(void) { return unlikely(ebb_heap_exited); }

/* A young thread's first EBB_YOUNG_ALLOCS allocations (a thread started
 * once others have ended, never the first: heap.c), of any class, come
 * from the shared heaps too: a thread that allocates little then touches
 * no page of its own.  A short-lived thread given a page per class it used
 * left them nearly empty at its exit, its blocks still live in them, and
 * the frees into them waited on remote lists until another thread took the
 * segment over (thread_pool: 5000 threads, 384 blocks of 16 B-16 KiB each,
 * peaked at 188 MiB for about 70 live; tcmalloc, whose spans are shared,
 * 94).  A thread that keeps allocating pays a lock on each of them, then
 * has its own pages as before.  (While sampling, small classes take the
 * sampled path first, which uses the thread's pages.) */
EBB_INLINE bool heap_young_alloc(ebb_heap_t *heap) {
  if (likely(heap->young_left == 0)) return false;
  heap->young_left--;
  return true;
}

/* A block of a thread's own class: the class's first page serves without
 * the slow path's visit of the queue (sizes above EBB_SMALL_MAX have no
 * direct entry, and for any size the owner's frees since the fast path
 * emptied the list are taken in here: a loop over a few live blocks lives
 * on them).  Without a purger thread, the slow path's calls are what run
 * the purge passes: then it keeps them all. */
EBB_INLINE ebb_page_t *class_first_page_collected(ebb_heap_t *heap, unsigned cls) {
  ebb_page_t *page = heap->queues[cls].first;
  if (page != NULL && page->free == NULL && page->local_free != NULL &&
      !atomic_load_explicit(&ebb_purge_inline, memory_order_relaxed))
    page_collect(page);
  return page;
}

EBB_INLINE void *alloc_from_pages(ebb_heap_t *heap, size_t size, unsigned cls, bool zero) {
  ebb_page_t *page = class_first_page_collected(heap, cls);
  if (page == NULL || page->free == NULL) return page_alloc_slow(heap, size, cls, zero);
  return page_take(page, size, zero);
}

static EBB_NOINLINE void *alloc_small_sampled(ebb_heap_t *heap, size_t size, unsigned cls, bool zero);
static EBB_NOINLINE void *foreign_cache_refill(ebb_heap_t *heap, size_t size, unsigned cls, bool zero);

EBB_API_TEXT void *alloc_generic(size_t size, bool zero) {
  if (size > EBB_LARGE_MAX) {
    if (size > EBB_MAX_REQUEST) {
      errno = ENOMEM;
      return NULL;
    }
    ebb_init();
    if (sample_due(size)) return sample_alloc(size, size, 0, 0, zero);
    return huge_alloc(size, 0, zero);
  }
  unsigned cls = size_class_of(size);
  if (unlikely(atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed) != 0)) {
    if (cls < EBB_FOREIGN_CLASSES && !thread_exited()) {
      ebb_heap_t *heap = heap_for_alloc();
      if (heap != NULL) return alloc_small_sampled(heap, size, cls, zero);
    }
    if (sample_due(size)) return sample_alloc(size, size, cls, 0, zero);
  }
  if (class_is_shared(cls) || thread_exited()) return alloc_shared(size, cls, zero);
  ebb_heap_t *heap = heap_for_alloc();
  if (heap == NULL) return alloc_shared(size, cls, zero);
  heap_note_active(heap);
  /* The foreign cache: realloc comes here with blocks in it; the fast path
   * when it ran dry, to point direct[] back at the class's pages. */
  if (cls < EBB_FOREIGN_CLASSES && unlikely((heap->foreign_active >> cls) & 1)) {
    ebb_page_t *cache = &heap->foreign[cls];
    if (cache->free != NULL) return page_take(cache, size, zero);
    if (((heap->foreign_fed >> cls) & 1) && heap->young_left == 0)
      return foreign_cache_refill(heap, size, cls, zero);
    foreign_cache_close(heap, cls);
  }
  if (heap_young_alloc(heap)) return alloc_shared(size, cls, zero);
  void *block = alloc_from_pages(heap, size, cls, zero);
  /* Sampling stopped while direct[] named the empty page: name the page.
   * Or it started while the entry named a page (another thread turned it
   * on): above 1 KiB no sampled path points it at the empty page, and the
   * class's first page may keep serving here without the slow path. */
  if (size <= EBB_SMALL_MAX &&
      unlikely((heap->direct[direct_index(size)] == &ebb_empty_page) !=
               (atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed) != 0)))
    heap_direct_refresh(heap, cls);
  return block;
}

/* `alignment` is a power of two.  Up to 64 KiB it is met by a size class
 * whose size is a multiple of it (pages start on 64 KiB boundaries); beyond,
 * by a huge mapping. */
EBB_API_TEXT void *alloc_aligned(size_t alignment, size_t size, bool zero) {
  /* Every block above 8 B is 16-aligned: malloc's own path, no class search. */
  if (alignment <= 16) {
    if (alignment > 8 && size < 16) size = 16;
    return zero ? calloc_fast(1, size) : malloc_fast(size);
  }
  if (size > EBB_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  if (alignment <= EBB_MAX_CLASS_ALIGN && size <= EBB_LARGE_MAX) {
    size_t want = ((size ? size : 1) + alignment - 1) & ~(alignment - 1);
    if (want <= EBB_LARGE_MAX) {
      unsigned cls = size_class_of(want);
      while ((class_size(cls) & (alignment - 1)) != 0 && class_size(cls) <= EBB_MEDIUM_MAX) cls++;
      /* A small class's blocks sit at multiples of its size from a 64 KiB
       * boundary, so the class's current page serves as malloc's would:
       * this went to page_alloc_slow on every call (rptest's memalign(16),
       * a C++ or Rust type aligned to a cache line). */
      if (cls <= EBB_SMALL_CLASS_MAX) {
        void *block = direct_take(class_size(cls), size, zero);
        if (likely(block != NULL)) return block;
      }
      if (sample_due(size)) return sample_alloc(size, size, cls, 0, zero);
      if (class_is_shared(cls) || thread_exited()) return alloc_shared(size, cls, zero);
      ebb_heap_t *heap = heap_for_alloc();
      if (heap == NULL || heap_young_alloc(heap)) return alloc_shared(size, cls, zero);
      return page_alloc_slow(heap, size, cls, zero);
    }
  }
  ebb_init();
  if (sample_due(size)) return sample_alloc(size, size, 0, alignment, zero);
  return huge_alloc(size, alignment, zero);
}

/* ---- free ------------------------------------------------------------------ */
/* One block onto its page's remote list.  A block already at the head of
 * that list is being freed twice (another thread's repeated free): caught
 * here, before the list would loop. */
EBB_INLINE void free_remote(ebb_segment_t *seg, ebb_page_t *page, ebb_block_t *block) {
  if (unlikely(tf_list(atomic_load_explicit(&page->thread_free, memory_order_relaxed)) == block))
    ebb_fatal_pointer("free", block, "double free (block freed twice)");
  page_remote_push(seg, page, block, block, 1);
}

/* ---- the foreign cache --------------------------------------------------------
 * A small block freed by a thread that does not own its page used to go
 * back to the owner at once: one atomic exchange on the page's remote
 * list, a line the owner writes too, then the owner's slow path taking it
 * in, and the owner's next write to the block, which the freer's core held
 * last.  In larson-2t (half the frees remote) that was half of ebb's time
 * and the workload's own work the other half; tcmalloc, whose frees all go
 * to the freeing thread's cache, spent 5% in the allocator.  Now the freer
 * keeps the block for its own next allocation of that class: the block
 * still counts as used in its page (as in the medium cache), so the page's
 * counts need no update, and the fast path pops it from the heap's
 * foreign[cls], a free list shaped like a page, named by direct[] while it
 * holds blocks: no instruction is added to malloc.
 *
 * Each class holds at most EBB_FOREIGN_CLASS_BYTES (at least 2 blocks):
 * at most 132 KiB a thread.  When a class is full, or the thread calls
 * ebb_collect or exits, the list goes back to the pages, one atomic push
 * for each run of blocks of one page (a consumer that never allocates
 * what it frees returns them in batches).  Only the owner touches the
 * cache, so an idle thread keeps what it holds until it exits: bounded,
 * like tcmalloc's thread caches, unlike them never above 132 KiB. */
EBB_INLINE uint32_t foreign_cache_count(const ebb_page_t *cache) {
  return cache->capacity - (uint32_t)cache->used_minus_one;
}

/* Move the cache's pops into the statistics and restart its counters with
 * `keep` blocks in it. */
static void foreign_cache_rebase(ebb_heap_t *heap, unsigned cls, uint32_t keep) {
  ebb_page_t *cache = &heap->foreign[cls];
  heap->stat_allocs[cls] += cache->alloc_count;
  cache->alloc_count = 0;
  cache->capacity = keep;
  cache->used_minus_one = 0;
  heap->foreign_granted[cls] = 0;
}

static void foreign_cache_return(ebb_heap_t *heap, unsigned cls);

/* Close the cache: blocks still in it go back to their pages (a free
 * nested in a return, by pthread_create starting the purger, say, may
 * have put some there), its counters are reset, and direct[] names the
 * class's pages again. */
static void foreign_cache_shut(ebb_heap_t *heap, unsigned cls) {
  ebb_page_t *cache = &heap->foreign[cls];
  while (cache->free != NULL) foreign_cache_return(heap, cls);
  foreign_cache_rebase(heap, cls, 0);
  heap->foreign_active &= ~((uint64_t)1 << cls);
}
static EBB_NOINLINE void foreign_cache_close(ebb_heap_t *heap, unsigned cls) {
  foreign_cache_shut(heap, cls);
  heap_direct_refresh(heap, cls);
}

/* One block back to its page, as a free without the cache would do.
 * True if it went on the page's remote list (its owner counts it there). */
static bool foreign_block_return(ebb_heap_t *heap, ebb_block_t *block) {
  ebb_segment_t *seg = segment_of(block);
  ebb_page_t *page = page_of(seg, block);
  uintptr_t owner = page->owner_thread;
  if (owner == heap->thread_id) {
    free_local_in(heap, page, block);
    return false;
  }
  if (owner & (EBB_OWNER_DETACHED | EBB_OWNER_SHARED)) {
    free_marked_owner(seg, page, block, owner);
    return false;
  }
  free_remote(seg, page, block);
  return true;
}

/* Give class cls's cached blocks back to their pages (the cache stays
 * open).  Blocks of one page in a row go with one push; a list longer than
 * the count says has a block freed twice. */
static EBB_NOINLINE void foreign_cache_return(ebb_heap_t *heap, unsigned cls) {
  ebb_page_t *cache = &heap->foreign[cls];
  ebb_block_t *list = cache->free;
  uint32_t count = foreign_cache_count(cache), seen = 0;
  cache->free = NULL;
  foreign_cache_rebase(heap, cls, 0);
  /* a sampling grant not used: its bytes go back to the class's count */
  if (heap->prof_left[cls] > 0) heap->prof_left[cls] += (int64_t)count * (int64_t)cache->block_size;
  while (list != NULL) {
    /* Small pages are one slice: blocks of one page share the slice. */
    ebb_block_t *last = list;
    uint32_t n = 1;
    secure_check_link(list);
    while (secure_check_link(block_next(last)), block_next(last) != NULL && n <= count &&
           ((uintptr_t)block_next(last) >> EBB_SLICE_SHIFT) == ((uintptr_t)list >> EBB_SLICE_SHIFT)) {
      last = block_next(last);
      n++;
    }
    seen += n;
    if (unlikely(seen > count)) ebb_fatal_pointer("free", last, "double free (block freed twice)");
    ebb_block_t *rest = block_next(last);
    ebb_segment_t *seg = segment_of(list);
    ebb_page_t *page = page_of(seg, list);
    uintptr_t owner = page->owner_thread;
    if (owner != heap->thread_id && (owner & (EBB_OWNER_DETACHED | EBB_OWNER_SHARED)) == 0) {
      page_remote_push(seg, page, list, last, n);
      heap->stat_remote_frees -= n; /* the owner counts them when it takes them in */
    } else {
      block_set_next(last, NULL);
      while (list != NULL) {
        ebb_block_t *next = block_next(list);
        if (foreign_block_return(heap, list)) heap->stat_remote_frees--;
        list = next;
      }
    }
    list = rest;
  }
}

/* A list of `granted` blocks of `page`, cut off its free list, into class
 * cls's cache, which had run dry (opened if closed; direct[] is the
 * caller's).  They count as used in their page, as the cache's blocks do. */
static void foreign_cache_put(ebb_heap_t *heap, unsigned cls, ebb_page_t *page, ebb_block_t *first,
                              uint32_t granted) {
  ebb_page_t *cache = &heap->foreign[cls];
  uint64_t bit = (uint64_t)1 << cls;
  page->used_minus_one += (int32_t)granted;
  if (!(heap->foreign_active & bit)) { /* open it */
    foreign_cache_rebase(heap, cls, 0);
    cache->block_size = page->block_size;
    cache->class_idx = (uint8_t)cls;
    heap->foreign_active |= bit;
  } else if (unlikely(cache->capacity >= ((uint32_t)1 << 30))) {
    foreign_cache_rebase(heap, cls, 0); /* keep its counters from wrapping */
  }
  cache->free = first;
  cache->capacity += granted;
  heap->foreign_granted[cls] = granted; /* the cache had run dry: nothing older is in it */
}
/* A grant: up to `max` blocks (at least one; the page's list is not empty)
 * cut off the front of the page's free list in one piece, into the cache. */
static uint32_t foreign_cache_grant(ebb_heap_t *heap, unsigned cls, ebb_page_t *page, uint32_t max) {
  ebb_block_t *first = page->free, *last = first, *next;
#if EBB_SECURE
  if (unlikely(!page_is_block_start(page, first))) secure_check_popped(page, first);
#endif
  uint32_t granted = 1;
  while (granted < max && (next = block_next(last)) != NULL) {
#if EBB_SECURE
    if (unlikely(!page_is_block_start(page, next))) secure_check_popped(page, next);
#endif
    last = next;
    granted++;
  }
  page->free = block_next(last);
  block_set_next(last, NULL);
  foreign_cache_put(heap, cls, page, first, granted);
  return granted;
}

/* The cache of a class ran dry while other threads' blocks still come in
 * (heap->foreign_fed): this allocation comes from the class's pages, and
 * the cache is refilled from the same page, so that direct[] keeps naming
 * it.  Closing it instead, and opening it at the next foreign free, set
 * the class's direct[] entries (up to 64) twice per foreign block: in
 * larson-2t, where 40% of frees are another thread's, half of all mallocs
 * did that, and ebb ran 1.65x tcmalloc's time (callgrind at -s 0.02: 471
 * million instructions, against tcmalloc's 204).  Batches of up to half
 * the cache's limit, at most EBB_FOREIGN_REFILL blocks: the walk that cuts
 * them costs a few instructions a block, paid by the fast path's pops. */
#define EBB_FOREIGN_REFILL 32u
static EBB_NOINLINE void *foreign_cache_refill(ebb_heap_t *heap, size_t size, unsigned cls, bool zero) {
  uint64_t bit = (uint64_t)1 << cls;
  heap->foreign_fed &= ~bit;
  void *block = alloc_from_pages(heap, size, cls, zero);
  ebb_page_t *page = heap->queues[cls].first; /* the slow path puts the page it used first */
  ebb_page_t *cache = &heap->foreign[cls];
  /* Nothing to cut, or an allocation nested in the slow path
   * (pthread_create starting the purger) refilled or closed the cache. */
  if (block == NULL || page == NULL || page->free == NULL || cache->free != NULL ||
      !(heap->foreign_active & bit))
    return block;
  uint32_t max = EBB_FOREIGN_CLASS_BYTES / (uint32_t)page->block_size / 2;
  if (max > EBB_FOREIGN_REFILL) max = EBB_FOREIGN_REFILL;
  if (max == 0) max = 1;
  foreign_cache_grant(heap, cls, page, max);
  return block;
}

/* ---- sampling: counting the fast path's allocations ---------------------------
 * While the heap profiler samples (sample.c), an allocation of a class up to
 * 1 KiB is counted without an instruction on the fast path.  Each class has
 * a countdown of its own (heap->prof_left: the classes' Poisson processes
 * together are one over all the bytes), and the fast path is given, by the
 * class's direct[] entries, only blocks that cannot reach the next sample,
 * as grants cut off the class's page into its foreign cache, charged when
 * made (blocks still in it when the cache is emptied are given back to the
 * count: foreign_cache_return):
 * - while more than a whole page's bytes are left, the page's whole free
 *   list, in one piece (its length is known: no walk);
 * - nearer, its first blocks, up to the block before the sample.
 * Blocks this thread frees into the cache from other threads' pages are
 * charged as they come in (free_foreign); the owner's frees of granted
 * blocks go to their page, not the cache, so a grant hands out no more
 * than it was charged.  The allocation that finds the cache empty comes
 * here and is charged its block: if that crosses zero it is the sampled
 * one.  With a page 64 KiB and the rate 512 KiB, nine grants in ten are of
 * the first kind.  (The first kind was the page itself, named by direct[],
 * while its list could hand out no more than a page before the slow path
 * came back; the owner's frees now refill that list.)
 * Measured (make bench, 32 workloads, sampling on / off): the first design,
 * every allocation through alloc_generic (direct[] naming the empty page),
 * 1.14x geometric mean (tight loops 1.4-1.6x); grants alone, 1.14x
 * (larson-2t 1.55x with the foreign cache off, tight loops 1.2-1.35x);
 * this, 1.08x with glibc's backtrace() for the stacks, 1.01x with ebb's own
 * unwinder and a consumer's cache left to fill (README). */

/* The class's count: bytes to its next sample. */
EBB_INLINE int64_t sample_left(ebb_heap_t *heap, unsigned cls) {
  int64_t left = heap->prof_left[cls];
  if (left == 0) left = sample_distance(); /* the class's first use: start its count */
  return left;
}

static EBB_NOINLINE EBB_API_TEXT void *alloc_small_sampled(ebb_heap_t *heap, size_t size, unsigned cls, bool zero) {
  ebb_page_t *cache = &heap->foreign[cls];
  uint64_t bit = (uint64_t)1 << cls;
  if (cache->free != NULL && (heap->foreign_active & bit))
    return page_take(cache, size, zero); /* realloc or calloc's overflow path: already charged */
  int64_t block_size = (int64_t)class_size(cls);
  int64_t left = sample_left(heap, cls) - block_size;
  if (unlikely(left <= 0)) {
    left = sample_distance();
    if (sample_allowed()) {
      heap->prof_left[cls] = left;
      heap_direct_refresh(heap, cls); /* the next allocation comes back here */
      return sample_alloc(size, (size_t)block_size, cls, 0, zero);
    }
  }
  /* This allocation, from the class's first page (collected first if its
   * list ran dry). */
  ebb_page_t *page = class_first_page_collected(heap, cls);
  void *block;
  if (page == NULL || page->free == NULL) {
    block = page_alloc_slow(heap, size, cls, zero);
    page = heap->queues[cls].first; /* the slow path puts the page it used first */
    /* An allocation nested in it (pthread_create starting the purger) may
     * have made a grant of this class: it stands, with its count. */
    if (cache->free != NULL) {
      heap_direct_refresh(heap, cls);
      return block;
    }
    if (block == NULL || page == NULL) {
      heap->prof_left[cls] = left;
      heap_direct_refresh(heap, cls);
      return block;
    }
  } else {
    block = page_take(page, size, zero);
  }
  heap->prof_left[cls] = left;
  ebb_block_t *first = page->free;
  if (first == NULL) { /* nothing to give: the next allocation comes back */
    heap_direct_refresh(heap, cls);
    return block;
  }
  /* The page's whole list, if a whole page cannot reach the sample and the
   * list's length is known (nothing waits on local_free, and no hole is
   * left to carve again: it is capacity less used; the purger's holes not
   * yet taken in still count as used, purge.c), cut off in one piece,
   * without a walk.  It was the page
   * itself, named by direct[] until the slow path came back, which it did
   * within a page's bytes; since the owner's frees go onto `free`
   * (page_push_owned), a loop could take blocks from it for ever, uncounted. */
  if (left > (int64_t)page->reserved * block_size && page->local_free == NULL && page->purged == 0) {
    uint32_t whole = page->capacity - page_used(page);
    page->free = NULL;
    foreign_cache_put(heap, cls, page, first, whole);
    heap->prof_left[cls] = left - (int64_t)whole * block_size;
    heap_direct_refresh(heap, cls); /* names the cache */
    return block;
  }
  /* Else a grant: the first blocks of the page's list, up to the block
   * before the sample. */
  int64_t limit = left < (int64_t)EBB_SAMPLE_GRANT_BYTES ? left : (int64_t)EBB_SAMPLE_GRANT_BYTES;
  if (block_size >= limit) {
    heap_direct_refresh(heap, cls);
    return block;
  }
  uint32_t granted = foreign_cache_grant(heap, cls, page, (uint32_t)((limit - 1) / block_size));
  heap->prof_left[cls] = left - (int64_t)granted * block_size;
  heap_direct_refresh(heap, cls); /* names the cache */
  return block;
}

void foreign_cache_flush(ebb_heap_t *heap) {
  while (heap->foreign_active != 0)
    foreign_cache_close(heap, (unsigned)__builtin_ctzll(heap->foreign_active));
}

/* A small block of another thread's page (or an exited thread's), freed by
 * a thread with a heap: into its foreign cache. */
static EBB_NOINLINE void free_foreign(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page,
                                      ebb_block_t *block) {
  unsigned cls = page->class_idx;
  uint64_t bit = (uint64_t)1 << cls;
  ebb_page_t *cache = &heap->foreign[cls];
  if (unlikely(cache->free == block)) ebb_fatal_pointer("free", block, "double free (block freed twice)");
  /* Sampling on: the block is charged to the class's count now, as a
   * grant is, since the fast path will hand it out uncounted; one that
   * would reach the next sample goes back instead, so that the allocation
   * that crosses it comes to alloc_small_sampled. */
  if (unlikely(atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed) != 0)) {
    int64_t left = sample_left(heap, cls);
    if (left <= (int64_t)page->block_size) {
      heap->prof_left[cls] = left;
      heap_direct_refresh(heap, cls); /* sampling may have started since direct[] was set */
      free_remote(seg, page, block);
      return;
    }
    heap->prof_left[cls] = left - (int64_t)page->block_size;
  }
  if (heap->foreign_active & bit) {
    uint32_t limit = EBB_FOREIGN_CLASS_BYTES / (uint32_t)page->block_size;
    if (limit < 2) limit = 2;
    /* Room above a sampling grant, which must not make it look full.
     * Only the grant's own blocks: with room for any grant whenever
     * sampling is on, a consumer's cache never filled, so its frees never
     * went straight back (mstress-2t took 1.4x longer with sampling on,
     * at any rate). */
    limit += heap->foreign_granted[cls];
    if (foreign_cache_count(cache) >= limit) {
      /* Full twice in a row with no block reused: a consumer of this class
       * (it frees what others made and makes none).  Its frees go straight
       * back from now on: held here they reach the producers late and in
       * bursts (xmalloc-4t, whose consumers never allocate, ran about
       * 1.6x longer with all their frees held: 3 runs each). */
      bool idle = cache->alloc_count == 0;
      bool consumer = idle && (heap->foreign_overflowed & bit);
      if (idle) heap->foreign_overflowed |= bit;
      else heap->foreign_overflowed &= ~bit;
      foreign_cache_return(heap, cls);
      if (consumer) {
        heap->foreign_bypass |= bit;
        foreign_cache_close(heap, cls);
        free_remote(seg, page, block);
        return;
      }
    } else if (unlikely(cache->alloc_count >= ((uint32_t)1 << 30))) {
      /* A cache that never runs dry: keep its counters from wrapping. */
      foreign_cache_rebase(heap, cls, foreign_cache_count(cache));
    }
  }
  /* Open it (again: an allocation nested in the return above, by
   * pthread_create starting the purger, may have closed it). */
  if (!(heap->foreign_active & bit)) {
    cache->block_size = page->block_size;
    cache->class_idx = (uint8_t)cls;
    heap->foreign_active |= bit;
    heap_direct_refresh(heap, cls);
  }
  heap->stat_remote_frees++;
  heap->foreign_fed |= bit;
  block_set_next(block, cache->free);
  cache->free = block;
  cache->capacity++;
}

/* Find the page of a pointer handed to `call`, or report it and abort. */
static ebb_page_t *page_checked(const void *p, const char *call, ebb_segment_t **seg_out) {
  unsigned kind = segmap_get((uintptr_t)p);
  ebb_segment_t *seg;
  ebb_page_t *page;
  if (kind == EBB_SEGMAP_SHIFTED) {
    seg = huge_segment_of_shifted(p);
    page = &seg->pages[0];
  } else if (kind == EBB_SEGMAP_SEGMENT) {
    seg = segment_of(p);
    page = page_of(seg, p);
  } else {
    ebb_fatal_pointer(call, p, "pointer not allocated by ebb");
  }
  if (!page_is_block_start(page, p))
    ebb_fatal_pointer(call, p,
                      page->block_bound ? "pointer inside a block, not at its start"
                                        : "pointer not allocated by ebb, or already freed");
  *seg_out = seg;
  return page;
}

/* A block of a page this thread handed to the purger: the sparse path
 * (under the heap's sparse lock, never waiting), else one atomic push. */
static inline void free_detached_own(ebb_segment_t *seg, ebb_page_t *page, void *p) {
  if (!heap_free_sparse(ebb_tls_heap, page, p)) free_remote(seg, page, p);
}

/* A free that cannot wait for the shared heap's lock: onto the slot's
 * deferred stack (one atomic), for the next holder to take in.  Not the
 * page's remote list: the shared heaps' segments are one group (segment.c),
 * with no owner heap to tell of a full page's remote frees. */
static void shared_defer_free(unsigned slot, ebb_block_t *block) {
  ebb_block_t *old = atomic_load_explicit(&ebb_shared[slot].deferred, memory_order_relaxed);
  do {
    block_set_next(block, old);
  } while (!atomic_compare_exchange_weak_explicit(&ebb_shared[slot].deferred, &old, block,
                                                  memory_order_release, memory_order_relaxed));
}

/* The holder of a shared heap's lock takes in the frees deferred to it, as
 * their owner would.  A list longer than ebb's memory could hold blocks
 * (8 bytes each) has a cycle: a block freed twice. */
EBB_NOINLINE void shared_drain_deferred(ebb_heap_t *heap) {
  ebb_block_t *list =
      atomic_exchange_explicit(&ebb_shared[heap->shared_slot].deferred, NULL, memory_order_acquire);
  size_t bound = atomic_load_explicit(&ebb_os_mapped_bytes, memory_order_relaxed) / 8 + 1;
  for (size_t n = 0; list; n++) {
    if (unlikely(n > bound)) ebb_fatal_pointer("free", list, EBB_REASON_LIST_LOOP);
    ebb_block_t *next = block_next(list);
    secure_check_link(next); /* the secure build's: nothing in the normal one */
    ebb_segment_t *seg = segment_of(list);
    free_local_in(heap, page_of(seg, list), list);
    list = next;
  }
}

/* A medium block to its shared heap, without the thread's cache.  With
 * wait, under the heap's lock; without, only if the lock is free.  A
 * thread holding the lock (a free made under it), or finding it busy,
 * defers the block to the next holder. */
static void free_to_shared(ebb_page_t *page, ebb_block_t *block, bool wait) {
  unsigned slot = shared_slot_of(page->class_idx);
  ebb_heap_t *heap = shared_heap_held_here(slot) ? NULL
                     : wait                       ? shared_heap_lock(slot) /* it exists: it made the page */
                                                  : shared_heap_lock_existing(slot, false);
  if (heap == NULL) {
    shared_defer_free(slot, block);
    return;
  }
  free_local_in(heap, page, block); /* as its owner would: exact counts, and a
                                      * page that empties goes back at once */
  shared_heap_unlock(heap);
}

/* ---- the thread's medium cache ----------------------------------------------
 * Every medium allocation and free from the shared heaps costs the lock
 * and the cache lines of the lock, the page and the block, which the other
 * cores wrote last: in mstress at 2 threads that made ebb 6-10% slower than
 * with per-thread medium pages.  Each thread keeps the last block it freed
 * of each class up to 32 KiB (at most 300 KiB) and hands it out to its next
 * allocation of that class: a free and an allocation with no lock and no
 * line from another core.  The block still counts as used in its page, so
 * the statistics subtract what the caches hold.  An idle thread's cache is
 * emptied by the purger (one exchange a slot: the owner may be taking the
 * same block, and one of them gets it), an exiting thread's by the thread,
 * and every cache by ebb_collect(true). */
void medium_cache_flush(ebb_heap_t *heap, bool wait) {
  for (unsigned i = 0; i < EBB_MEDIUM_CACHE_CLASSES; i++) {
    if (atomic_load_explicit(&heap->medium_cache[i], memory_order_relaxed) == NULL) continue;
    ebb_block_t *block = atomic_exchange_explicit(&heap->medium_cache[i], NULL, memory_order_acquire);
    if (block == NULL) continue;
    ebb_segment_t *seg = segment_of(block);
    free_to_shared(page_of(seg, block), block, wait);
  }
}

/* A medium block freed by any thread: into this thread's cache if its
 * class's slot is empty, else to the shared heap. */
static EBB_NOINLINE void free_shared(ebb_page_t *page, void *p) {
  unsigned cls = page->class_idx;
  if (shared_markable(cls)) {
    /* One exchange, not a load then a store: two threads freeing the block
     * at once would both read it unmarked. */
    _Atomic(uintptr_t) *word = (_Atomic(uintptr_t) *)p + 1;
    if (unlikely(atomic_exchange_explicit(word, shared_freed_mark(p), memory_order_relaxed) ==
                 shared_freed_mark(p)))
      ebb_fatal_pointer("free", p, "double free (block freed twice)");
  }
  ebb_heap_t *own = ebb_tls_heap;
  if (cls > EBB_SMALL_CLASS_MAX && cls <= EBB_MEDIUM_CACHE_CLASS_MAX && own != &ebb_empty_heap) {
    _Atomic(ebb_block_t *) *cached = medium_cache_slot(own, cls);
    ebb_block_t *held = atomic_load_explicit(cached, memory_order_relaxed);
    if (held == NULL) { /* only this thread fills it: it stays empty till then */
      atomic_store_explicit(cached, (ebb_block_t *)p, memory_order_release);
      medium_cache_touch(own);
      return;
    }
    if (unlikely(held == p)) ebb_fatal_pointer("free", p, "double free (block freed twice)");
  }
  free_to_shared(page, p, true);
}

/* A block of a page with a marked owner: the shared heaps' pages, and
 * pages handed to the purger, this thread's (the sparse path) or another's
 * (one atomic push). */
static EBB_NOINLINE void free_marked_owner(ebb_segment_t *seg, ebb_page_t *page, void *p,
                                           uintptr_t owner) {
  if (owner == EBB_OWNER_SHARED) free_shared(page, p);
  else if (owner == EBB_OWNER_SAMPLED) sample_free(page, p);
  else if (owner == (ebb_thread_id() | EBB_OWNER_DETACHED)) free_detached_own(seg, page, p);
  else free_remote(seg, page, p);
}

/* A checked block whose page this thread does not own: a shared heap's
 * block, a page handed to the purger, a huge block (any thread unmaps it),
 * or another thread's page (one atomic push). */
void free_not_owned(ebb_segment_t *seg, ebb_page_t *page, void *p) {
  /* Thread ids are aligned: one test of the page descriptor (already in
   * cache) sends the marked owners aside.  The rare cases are tail calls,
   * so the common one (another thread's page) needs no stack frame. */
  uintptr_t owner = page->owner_thread;
  if (owner & (EBB_OWNER_DETACHED | EBB_OWNER_SHARED)) {
    free_marked_owner(seg, page, p, owner);
    return;
  }
  if (unlikely(seg->kind == EBB_SEGMENT_HUGE)) {
    if (unlikely(atomic_load_explicit(&ebb_sample_huge_live, memory_order_relaxed) != 0)) sample_forget_huge(p);
    huge_free(seg, page);
    return;
  }
  ebb_heap_t *heap = ebb_tls_heap;
  if (owner == 0) { /* a block of an exited thread's segment */
    /* A thread whose first call frees such a block (a fresh worker of a
     * pool handed its predecessors' blocks) gets its heap here: the block
     * has no owner to go back to soon, and the thread is likely to
     * allocate next (thread_pool: 5.9 s and 220 MiB peak before, 4.5 s and
     * 167 MiB after, two rounds).  Not for a live owner's block: xmalloc-4t,
     * whose consumers only free what live threads make, ran 1.13-1.27x
     * longer with them given heaps (medians of 8 and 6 runs), though their
     * frees go straight back once they are seen not to allocate. */
    if (unlikely(heap == &ebb_empty_heap) && page->class_idx < EBB_FOREIGN_CLASSES && !ebb_heap_exited) {
      int saved = errno; /* free leaves errno as it was */
      heap = heap_get_or_create();
      errno = saved;
      if (heap == NULL) heap = &ebb_empty_heap;
    }
    /* A thread with no segment of its own takes the segment over
     * (segment.c, segment_reclaim_on_free), and the free is its own.  Not
     * while the thread is young: a thread that lives for one allocation
     * then took a segment in and gave it back at its exit, a walk of every
     * page each way (thread_churn 26% slower). */
    if (heap->is_live && heap->young_left == 0 && heap->segments == NULL && heap->segments_full == NULL &&
        segment_reclaim_on_free(heap, seg)) {
      free_local(page, p);
      return;
    }
  }
  /* Into this thread's foreign cache, but not a consumer's (bypass), nor
   * a block of a quiet owner's page (internal.h, ebb_heap_t.quiet) or an
   * exited thread's: that block goes back to its page, else a block this
   * thread allocated from the cache stayed the other's, and so did each of
   * its later frees. */
  if (page->class_idx < EBB_FOREIGN_CLASSES && heap->is_live &&
      !((heap->foreign_bypass >> page->class_idx) & 1)) {
    heap_note_active(heap);
    ebb_heap_t *owner_heap = atomic_load_explicit(&seg->owner, memory_order_relaxed);
    if (owner_heap != NULL && !atomic_load_explicit(&owner_heap->quiet, memory_order_relaxed)) {
      free_foreign(heap, seg, page, p);
      return;
    }
  }
  free_remote(seg, page, p);
}

void free_generic(void *p, const char *call, size_t checked_size) {
  if (p == NULL) return;
  ebb_segment_t *seg;
  ebb_page_t *page = page_checked(p, call, &seg);
  if (checked_size > page->block_size)
    ebb_fatal_pointer(call, p, "size given is larger than the block");
#if EBB_SECURE
  secure_fill_freed(page, p);
#endif
  if (page->owner_thread == ebb_thread_id()) free_local(page, p);
  else free_not_owned(seg, page, p);
}

#if EBB_SECURE
/* ---- the secure build's list checks (EBB_SECURE; fastpath.h) ------------------ */
/* A link read from a list of blocks of many pages (the foreign cache, the
 * deferred frees) must be a block of one of ebb's pages, or the list was
 * overwritten. */
static void secure_check_link(const ebb_block_t *b) {
  if (b == NULL) return;
  if (segmap_get((uintptr_t)b) != EBB_SEGMAP_SEGMENT ||
      !page_is_block_start(page_of(segment_of(b), b), b))
    ebb_fatal_pointer("free", b, EBB_REASON_BAD_LINK);
}

/* Is p on `list`, a list of `page`'s blocks (or, with page NULL, of any
 * pages')?  Every link is checked before it is followed, and a list longer
 * than `bound` is reported as looping. */
static bool list_holds(const ebb_page_t *page, const ebb_block_t *list, const void *p, uint32_t bound) {
  for (uint32_t n = 0; list != NULL; n++, list = block_next(list)) {
    if (page ? !page_is_block_start(page, list) : (secure_check_link(list), false))
      ebb_fatal_pointer("free", list, EBB_REASON_BAD_LINK);
    if (n > bound) ebb_fatal_pointer("free", list, EBB_REASON_LIST_LOOP);
    if (list == p) return true;
  }
  return false;
}

/* The lists of p's page this thread may read: the page's own (the caller
 * owns them: its owner, or the holder of its shared heap's lock), and this
 * thread's foreign and medium caches. */
static bool block_is_free_here(ebb_page_t *page, const void *p) {
  /* A hole (its unit given back to the OS; it reads as zeros): free until
   * carved again. */
  uint64_t holes = page->purged | atomic_load_explicit(&page->remote_holes, memory_order_relaxed);
  if (holes != 0 && page->slice_count == 1) {
    size_t i = (size_t)((const uint8_t *)p - page->start) / page->block_size;
    if (holes & block_units(i, page->block_size, page_unit_size(page))) return true;
  }
  uint32_t bound = page->capacity + 1;
  if (list_holds(page, page->free, p, bound) || list_holds(page, page->local_free, p, bound)) return true;
  ebb_heap_t *heap = ebb_tls_heap;
  uintptr_t owner = page->owner_thread;
  if (owner == ebb_thread_id() && heap != &ebb_empty_heap) {
    /* the remote list: taken whole, looked at (every link checked), and
     * put back */
    uintptr_t word = atomic_exchange_explicit(&page->thread_free, 0, memory_order_acquire);
    ebb_block_t *list = tf_list(word);
    if (list != NULL) {
      bool found = false;
      ebb_block_t *last = list;
      for (uint32_t n = 1;; n++) {
        if (!page_is_block_start(page, last)) ebb_fatal_pointer("free", last, EBB_REASON_BAD_LINK);
        if (last == p) found = true;
        if (block_next(last) == NULL) break;
        if (n >= tf_count(word)) ebb_fatal_pointer("free", last, EBB_REASON_LIST_LOOP);
        last = block_next(last);
      }
      page_remote_push(segment_of(page), page, list, last, tf_count(word));
      if (found) return true;
    }
  }
  unsigned cls = page->class_idx;
  if (cls < EBB_FOREIGN_CLASSES && ((heap->foreign_active >> cls) & 1) &&
      list_holds(NULL, heap->foreign[cls].free, p, heap->foreign[cls].capacity + 1))
    return true;
  if (cls > EBB_SMALL_CLASS_MAX && cls <= EBB_MEDIUM_CACHE_CLASS_MAX &&
      atomic_load_explicit(medium_cache_slot(heap, cls), memory_order_relaxed) == p)
    return true;
  return false;
}

/* A block being freed whose link word looks like a free list's: reported
 * if it is on one, else pushed as free_local would. */
void secure_free_checked(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block) {
  if (block_is_free_here(page, block)) ebb_fatal_pointer("free", block, "double free (block freed twice)");
  block_set_next(block, page->local_free);
  page->local_free = block;
  if (unlikely(--page->used_minus_one < 0)) page_after_local_free(heap, page);
}

/* page_pop out of line, for malloc_fast's failed check: the check again,
 * which reports a bad link and passes a foreign cache's good block. */
void *secure_pop_checked(ebb_page_t *page) { return page_pop(page); }

/* A popped block that is no block of its page: an overwritten link,
 * unless the page is a foreign cache, whose blocks come from many pages
 * (then it must be a block of its class in one of ebb's pages). */
void secure_check_popped(ebb_page_t *page, ebb_block_t *block) {
  if (page->start == NULL && page->block_size != 0 && segmap_get((uintptr_t)block) == EBB_SEGMAP_SEGMENT) {
    ebb_page_t *real = page_of(segment_of(block), block);
    if (real->class_idx == page->class_idx && page_is_block_start(real, block)) return;
  }
  ebb_fatal_pointer("malloc", block, EBB_REASON_BAD_LINK);
}

#endif

size_t usable_size_checked(const void *p, const char *call) {
  if (p == NULL) return 0;
  ebb_segment_t *seg;
  ebb_page_t *page = page_checked(p, call, &seg);
#if EBB_SECURE
  /* realloc or malloc_usable_size of a block already freed */
  if (seg->kind == EBB_SEGMENT_NORMAL && page->owner_thread == ebb_thread_id() && /* lists it may read */
      secure_suspicious(page, p) && block_is_free_here(page, p))
    ebb_fatal_pointer(call, p, "pointer already freed");
#endif
  return page->block_size;
}

/* ---- realloc --------------------------------------------------------------- */
EBB_API_TEXT void *realloc_generic(void *p, size_t size, size_t alignment, const char *call) {
  if (p == NULL) return alignment ? alloc_aligned(alignment, size, false) : alloc_generic(size, false);
  size_t usable = usable_size_checked(p, call); /* checks p */
  if (size == 0 && alignment == 0) {            /* glibc frees and returns NULL */
    free_generic(p, call, 0);
    return NULL;
  }
  if (size > EBB_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  bool aligned = alignment == 0 || ((uintptr_t)p & (alignment - 1)) == 0;
  /* Fits, and not so much smaller that keeping the block wastes memory. */
  if (aligned && size <= usable && (size >= usable / 2 || usable <= 128)) return p;
  /* A huge block: above 2 MiB, or a large block grown by realloc (below),
   * so never one of 128 KiB or less: a small block's growth skips this. */
  bool maybe_huge = size > EBB_LARGE_MAX || (size > usable && usable > EBB_MEDIUM_MAX);
  if (aligned && maybe_huge && segmap_get((uintptr_t)p) == EBB_SEGMAP_SEGMENT) {
    ebb_segment_t *seg = segment_of(p);
    if (seg->kind == EBB_SEGMENT_HUGE) {
      void *q = huge_realloc(seg, &seg->pages[0], size);
      if (q != NULL) {
        if (unlikely(atomic_load_explicit(&ebb_sample_huge_live, memory_order_relaxed) != 0))
          sample_moved_huge(p, q, size);
        return q;
      }
      if (size <= usable) return p;
      /* mremap refused (the mapping may span two kernel areas once cached
       * neighbours were merged): copy, as for any other block. */
    }
  }
  /* A large block grown again is taken to be a growing array (a vector, a
   * hash table, a buffer doubled as it fills): it moves to a mapping of its
   * own, which the next growths extend with mremap (in place, or moving
   * page tables), not into a larger class's run with a copy, leaving each
   * old run free but resident behind it.  sqlite3 grows two tables from
   * 64 KiB to 2 MiB by doubling: their old runs held 2.2 MiB of the large
   * blocks' segments at its peak.  Not in the secure build (a huge block
   * ends at its mapping's end, with no guard after it), nor while the heap
   * profiler samples (huge_alloc draws no sample); and if the mapping is
   * refused (the hard limit, the kernel's count of mappings), the classes
   * serve the block after all. */
  bool growing_large = !EBB_SECURE && alignment == 0 && size > usable && usable > EBB_MEDIUM_MAX &&
                       size <= EBB_LARGE_MAX &&
                       atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed) == 0;
  void *q = NULL;
  if (growing_large) {
    int saved = errno;
    q = huge_alloc(size, 0, false);
    if (q == NULL) errno = saved;
  }
  if (q == NULL) q = alignment ? alloc_aligned(alignment, size, false) : alloc_generic(size, false);
  if (q == NULL) return NULL;
  memcpy(q, p, size < usable ? size : usable);
  free_generic(p, call, 0);
  return q;
}

/* ---- the ebb_* API ----------------------------------------------------------- */
static bool is_power_of_two(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

EBB_EXPORT const char *ebb_version(void) { return EBB_VERSION_STRING; }

EBB_EXPORT void *ebb_malloc(size_t size) { return malloc_fast(size); }

EBB_EXPORT void *ebb_calloc(size_t count, size_t size) { return calloc_fast(count, size); }

EBB_EXPORT void ebb_free(void *p) { free_fast(p, "free", 0); }

EBB_EXPORT void ebb_free_sized(void *p, size_t size) {
  if (p == NULL) return;
  free_fast(p, "ebb_free_sized", size);
}

EBB_EXPORT void *ebb_realloc(void *p, size_t size) { return realloc_generic(p, size, 0, "realloc"); }

EBB_EXPORT void *ebb_reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc_generic(p, total, 0, "reallocarray");
}

EBB_EXPORT void *ebb_realloc_aligned(void *p, size_t alignment, size_t size) {
  if (!is_power_of_two(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return realloc_generic(p, size, alignment > 8 ? alignment : 0, "ebb_realloc_aligned");
}

EBB_EXPORT void *ebb_aligned_alloc(size_t alignment, size_t size) {
  if (!is_power_of_two(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(alignment, size, false);
}

EBB_EXPORT void *ebb_calloc_aligned(size_t alignment, size_t size) {
  if (!is_power_of_two(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(alignment, size, true);
}

EBB_EXPORT int ebb_posix_memalign(void **out, size_t alignment, size_t size) {
  if (!is_power_of_two(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = alloc_aligned(alignment, size, false);
  errno = saved;
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

EBB_EXPORT void *ebb_memalign(size_t alignment, size_t size) {
  if (!is_power_of_two(alignment)) {
    /* glibc rounds a non-power-of-two alignment up */
    if (alignment > ((size_t)1 << (sizeof(size_t) * 8 - 1))) {
      errno = EINVAL;
      return NULL;
    }
    size_t a = 1;
    while (a < alignment) a <<= 1;
    alignment = a;
  }
  return alloc_aligned(alignment, size, false);
}

EBB_EXPORT size_t ebb_usable_size(const void *p) { return usable_size_checked(p, "malloc_usable_size"); }

EBB_EXPORT size_t ebb_good_size(size_t size) {
  if (size <= EBB_LARGE_MAX) return class_size(size_class_of(size));
  if (size > EBB_MAX_REQUEST) return 0;
  ebb_init();
  return round_page(size);
}

EBB_EXPORT void ebb_collect(bool force) {
  /* The thread's medium cache, or with force every thread's, first: what
   * they hold goes back to the shared heaps, collected next. */
  if (force) {
    for (ebb_heap_t *h = atomic_load_explicit(&ebb_all_heaps, memory_order_acquire); h; h = h->all_next)
      medium_cache_flush(h, true);
  } else {
    medium_cache_flush(ebb_tls_heap, true);
  }
  foreign_cache_flush(ebb_tls_heap); /* only the thread's own: the owner pops it plainly */
  for (unsigned slot = 0; slot < EBB_SHARED_HEAPS; slot++) {
    ebb_heap_t *shared = shared_heap_lock_existing(slot, force);
    if (shared) {
      heap_collect(shared, force);
      shared_heap_unlock(shared);
    }
  }
  ebb_heap_t *heap = force && !thread_exited() ? heap_for_alloc() : ebb_tls_heap;
  if (heap == NULL || heap == &ebb_empty_heap) return;
  if (force) segments_reclaim_all(heap);
  heap_collect(heap, force);
  if (force) purge_all_now(); /* every free slice, sparse page and cached huge mapping */
  else purge_notify();
}
