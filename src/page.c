/* Pages: carving blocks, collecting frees, and the per-class queues.
 *
 * Each heap keeps, per size class, a queue of pages that may have free
 * blocks; the first is the one malloc's fast path uses (heap->direct points
 * at it for sizes up to 1 KiB).  A page found with nothing to give goes to
 * the heap's full list, and comes back when a block on it is freed: by the
 * owner (its free path sees the full bias in `used_minus_one`) or by another thread
 * (its push sees page->in_full and flags the page in its segment; the first
 * flag raises the heap's remote_pending).
 *
 * The in_full handshake is Dekker-style: the owner sets in_full, then reads
 * thread_free; a remote freer pushes onto thread_free, then reads in_full
 * (all sequentially consistent).  At least one of them sees the other, so a
 * full page with remote frees is never forgotten.
 *
 * A page that leaves the full list is "armed": its free path traps once
 * more when only an eighth of its blocks are left in use, and the page, now
 * sparse, is handed to the purger (purge.c), which gives back its OS pages
 * that hold no live block.  Blocks in purged units are off every list
 * ("holes") until the page runs dry and they are carved again. */
#include <errno.h>
#include <string.h>

#include "internal.h"


void page_set_geometry(ebb_page_t *page, size_t block_size, uint32_t reserved) {
  page->block_size = block_size;
  page->reserved = reserved;
  if (reserved == 1) { /* only offset 0 is a block */
    page->block_magic = 1;
    page->block_bound = 1;
    return;
  }
  uint64_t magic = UINT64_MAX / block_size + 1;
  uint64_t step = (uint64_t)block_size * magic; /* wraps to e = d*magic - 2^64 */
  if (step == 0) {
    /* A power of two: with magic 2^64/d + 1, offset k*d + r gives
     * r*2^64/d + offset, below reserved*d exactly for the blocks; with
     * 2^64/d alone any multiple of d passed, the span's end or a pointer
     * far outside it (the secure build's link checks need the bound). */
    page->block_magic = magic + 1;
    page->block_bound = (uint64_t)reserved * block_size;
    return;
  }
  page->block_magic = magic;
  page->block_bound = (uint64_t)(reserved - 1) * step + 1;
}

/* Make every descriptor of a retired page reject pointers (see
 * page_is_block_start), so a stray free into free slices is caught. */
void page_descriptors_clear(ebb_segment_t *seg, ebb_page_t *page) {
  size_t first = page_index(seg, page);
  for (size_t i = 1; i < page->slice_count; i++) seg->pages[first + i].head_delta = 0;
  page->block_bound = 0;
  page->block_magic = 0;
  page->start = NULL;
  page->free = page->local_free = NULL;
  page->used_minus_one = -1;
  page->quiet = 0;
  page->sparse_at = 0;
  page->purged = 0;
  page->detached = 0;
  /* A shared heap's page keeps its mark on the freed run: on a thread's
   * segment (a lent page), the owner walks its pages unlocked and must
   * never see the run as a page of its own (segment.c, lent pages).
   * Taking the run clears it. */
  if (page->owner_thread != EBB_OWNER_SHARED) page->owner_thread = 0;
}

/* Move the page's allocation count into the statistics: the owner's heap,
 * or the process-wide counters when another thread (the purger, a thread
 * exiting) does it. */
static ebb_heap_t *owner_heap_here(const ebb_page_t *page) {
  ebb_heap_t *heap = ebb_tls_heap;
  return heap != &ebb_empty_heap && page->owner_thread == heap->thread_id ? heap : NULL;
}

void page_harvest_stats(ebb_page_t *page) {
  uint32_t n = page->alloc_count;
  if (n == 0) return;
  page->alloc_count = 0;
  ebb_heap_t *heap = owner_heap_here(page);
  if (heap) heap->stat_allocs[page->class_idx] += n;
  else atomic_fetch_add_explicit(&ebb_stat_retired_allocs[page->class_idx], n, memory_order_relaxed);
}

/* Remote frees are counted here, when they are taken in, rather than by
 * each remote freer: that keeps the remote free path to its one push. */
static void count_remote_frees(const ebb_page_t *page, uint32_t n) {
  ebb_heap_t *heap = owner_heap_here(page);
  if (heap) heap->stat_remote_frees += n;
  else atomic_fetch_add_explicit(&ebb_stat_retired_remote_frees, n, memory_order_relaxed);
}

void page_init(ebb_segment_t *seg, ebb_page_t *page, unsigned cls, size_t block_size,
               bool zero) {
  size_t bytes = (size_t)page->slice_count * EBB_SLICE_SIZE - page_guard_size();
  page->start = slice_start(seg, page_index(seg, page));
  page->class_idx = (uint8_t)cls;
  page->capacity = 0;
  page->used_minus_one = -1;
  page->quiet = 0;
  page->sparse_at = 0;
  page->purged = 0;
  atomic_store_explicit(&page->remote_holes, 0, memory_order_relaxed);
  page->remote_watch = 0;
  page->mem_fresh = zero;
  page_set_geometry(page, block_size, (uint32_t)(bytes / block_size));
  page->sparse_mark = page_sparse_mark(page);
}

void page_take_remote_holes(ebb_page_t *page) {
  if (atomic_load_explicit(&page->remote_holes, memory_order_relaxed) == 0) return;
  /* Acquire: the purger's madvise is done before its bits are set. */
  uint64_t units = atomic_exchange_explicit(&page->remote_holes, 0, memory_order_acquire);
  size_t unit = page_unit_size(page), bs = page->block_size;
  uint32_t blocks = 0;
  size_t next_idx = 0; /* blocks below this are counted */
  for (uint64_t todo = units; todo; todo &= todo - 1) {
    size_t lo, hi;
    unit_blocks((size_t)__builtin_ctzll(todo), unit, bs, page->reserved, &lo, &hi);
    if (lo < next_idx) lo = next_idx;
    if (hi > lo) blocks += (uint32_t)(hi - lo);
    if (hi > next_idx) next_idx = hi;
  }
  /* Every such block was on the purger's list: freed, and counted used. */
  if (unlikely(blocks > page_used(page))) ebb_fatal_pointer("free", page->start, "double free (block freed twice)");
  count_remote_frees(page, blocks);
  page->used_minus_one -= (int32_t)blocks;
  page->purged |= units;
}

/* Put the blocks of purged units (holes) back on the free list, in address
 * order.  They read as zeros, but the units may also hold other bytes. */
void page_recarve(ebb_page_t *page) {
  if (page->detached & DETACHED_BUSY) return; /* the purger's madvise may be on its way */
  page_take_remote_holes(page);
  uint64_t purged = page->purged;
  if (purged == 0) return;
  size_t unit = page_unit_size(page), bs = page->block_size;
  ebb_block_t *head = NULL, *last = NULL;
  size_t next_idx = 0; /* blocks below this are done */
  while (purged) {
    size_t lo, hi;
    unit_blocks((size_t)__builtin_ctzll(purged), unit, bs, page->capacity, &lo, &hi);
    purged &= purged - 1;
    if (lo < next_idx) lo = next_idx;
    for (size_t i = lo; i < hi; i++) {
      ebb_block_t *b = (ebb_block_t *)(page->start + i * bs);
      if (last) block_set_next(last, b);
      else head = b;
      last = b;
    }
    if (hi > next_idx) next_idx = hi;
  }
  if (last) {
    block_set_next(last, page->free);
    page->free = head;
  }
  page->purged = 0;
  page->is_zero = 0;
}

/* The blocks [capacity, capacity + count) of a one-slice page are about to
 * be carved: claimed under the segment's lock, unless the purger is giving
 * back the residency the slice inherited (segment_trim_stale), which it
 * plans under that lock from the capacity it reads there.  Longer pages
 * are never trimmed. */
static bool page_claim_carve(ebb_page_t *page, size_t count) {
  if (page->slice_count != 1) {
    page->capacity += (uint32_t)count;
    return true;
  }
  ebb_segment_t *seg = segment_of(page);
  size_t slice = page_index(seg, page);
  lock_acquire(&seg->lock);
  bool trimming = (seg->purging_slices >> slice) & 1;
  if (!trimming) {
    page->capacity += (uint32_t)count;
    uint8_t units = (uint8_t)(round_page(page_carved_bytes(page)) >> EBB_TOUCHED_UNIT_SHIFT);
    if (units > page->touched) page->touched = units;
  }
  lock_release(&seg->lock);
  return !trimming;
}

/* Carve more blocks onto the (empty) free list, in address order (the
 * secure build: shuffled within runs of a few blocks).  False: nothing
 * carved, the slice is being trimmed (a page with blocks carved already;
 * never a new one, which the purger leaves alone). */
static bool page_extend(ebb_page_t *page) {
  if (page->detached & DETACHED_BUSY) return false; /* being purged: nothing carved till it is done */
  if (page_has_holes(page)) { /* holes first: carving past them would lose them */
    page_recarve(page);
    if (page->free) return true;
  }
  size_t avail = page->reserved - page->capacity;
  /* One OS page a time (at least one block).  Carving writes a link into
   * every block, so it touches what it carves; a class used for a few
   * dozen blocks must not touch 16 KiB (measured: the tiny workload's 17
   * small classes held 20 KiB each at 16 KiB extensions, for 40 KiB of
   * live blocks in all). */
  size_t count = ebb_os_page_size / page->block_size;
  if (count == 0) count = 1;
  if (count > avail) count = avail;
  size_t bs = page->block_size;
  uint8_t *first = page->start + (size_t)page->capacity * bs;
  if (!page_claim_carve(page, count)) return false;
#if EBB_SECURE
  /* The secure build carves in a random order within each run of
   * EBB_SECURE_SHUFFLE blocks (a random permutation of each, the runs in
   * address order), so the block after a given one is not predictably its
   * neighbour in memory: an overflow cannot aim at the next block handed
   * out.  Not over the whole OS page: a random start and stride there (a
   * stride drawn per process) took lua 1.07-2.19x the normal build's time
   * from run to run (its collector walks objects in the order it made
   * them) and tight_random-1t 1.64x; runs of 8, 1.14x and 1.23x (README). */
  uint64_t r = (uint64_t)ebb_list_secret ^ (uint64_t)(uintptr_t)first;
  ebb_block_t *head = NULL, *last = NULL;
  for (size_t run = 0; run < count; run += EBB_SECURE_SHUFFLE) {
    size_t n = count - run < EBB_SECURE_SHUFFLE ? count - run : EBB_SECURE_SHUFFLE;
    uint8_t order[EBB_SECURE_SHUFFLE];
    r += 0x9e3779b97f4a7c15ull; /* splitmix64: a word of randomness a run */
    uint64_t z = r;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (size_t i = 0; i < n; i++) order[i] = (uint8_t)i;
    for (size_t i = n - 1; i > 0; i--, z >>= 6) { /* Fisher-Yates, 6 bits a pick (bias < 1/8) */
      size_t j = (size_t)(z & 63) % (i + 1);
      uint8_t t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
      ebb_block_t *b = (ebb_block_t *)(first + (run + order[i]) * bs);
      if (last) block_set_next(last, b);
      else head = b;
      last = b;
    }
  }
  block_set_next(last, NULL);
  page->free = head;
#else
  uint8_t *p = first;
  for (size_t i = 1; i < count; i++, p += bs) block_set_next((ebb_block_t *)p, (ebb_block_t *)(p + bs));
  block_set_next((ebb_block_t *)p, NULL);
  page->free = (ebb_block_t *)first;
#endif
  page->is_zero = page->mem_fresh;
  return true;
}

/* Move the owner's and other threads' frees onto the free list. */
/* The allocation count cannot wrap: blocks reach `free` only in the slow
 * path, at most a page's worth between two takings-in of frees, and each
 * taking-in moves a count past half its range into the statistics. */
static inline void harvest_before_wrap(ebb_page_t *page) {
  if (unlikely(page->alloc_count >= ((uint32_t)1 << 31))) page_harvest_stats(page);
}

/* Take in other threads' frees and the owner's without walking any list
 * (their blocks are cold: the remote ones in other cores' caches).  An
 * empty free list takes the remote list as it is, its length read from the
 * word; a free list with blocks moves to local_free if that is empty, and
 * the remote list takes its place.  With both lists holding blocks, the
 * remote list waits: the slow path comes back when `free` runs dry.  Then
 * local_free becomes the free list if it is still empty.  Walking
 * local_free to join the lists was 5-11% of mstress-2t's time (perf:
 * mostly pages taken back from the purger, which hold long lists). */
void page_collect(ebb_page_t *page) {
  if (atomic_load_explicit(&page->thread_free, memory_order_relaxed) != 0 &&
      (page->free == NULL || page->local_free == NULL)) {
    uintptr_t word = atomic_exchange_explicit(&page->thread_free, 0, memory_order_acquire);
    ebb_block_t *list = tf_list(word);
    if (list != NULL) {
      uint32_t count = tf_count(word);
      if (count > page_used(page)) ebb_fatal_pointer("free", list, "double free (block freed twice)");
      count_remote_frees(page, count);
      harvest_before_wrap(page);
      if (page->free != NULL) page->local_free = page->free; /* it was empty */
      page->free = list;
      page->used_minus_one -= (int32_t)count;
      page->is_zero = 0;
      page_take_remote_holes(page); /* the purger's, if it held some of these blocks */
    }
  }
  if (page->free == NULL && page->local_free != NULL) {
    harvest_before_wrap(page);
    page->free = page->local_free;
    page->local_free = NULL;
    page->is_zero = 0;
  }
}

/* Join local_free in front of the free list (walks local_free, at most
 * as many blocks as were ever carved). */
static void join_local_free(ebb_page_t *page) {
  if (page->local_free == NULL) return;
  harvest_before_wrap(page);
  ebb_block_t *tail = page->local_free;
  for (uint32_t n = 1; block_next(tail) != NULL; n++) {
    if (unlikely(n >= page->capacity)) ebb_fatal_pointer("free", tail, EBB_REASON_LIST_LOOP);
    tail = block_next(tail);
  }
  block_set_next(tail, page->free);
  page->free = page->local_free;
  page->local_free = NULL;
  page->is_zero = 0;
}

/* Every free block onto `free`, for those that need them all in one list
 * (purging, collecting a whole heap): the remote frees that waited, and
 * those that arrived by the second look, go in too. */
void page_collect_all(ebb_page_t *page) {
  page_take_remote_holes(page);
  page_collect(page);
  join_local_free(page);
  if (atomic_load_explicit(&page->thread_free, memory_order_relaxed) != 0) {
    page_collect(page); /* local_free is empty: the remote list is taken */
    join_local_free(page);
  }
}

/* ---- queues -------------------------------------------------------------- */
static int16_t direct_last[EBB_SMALL_CLASS_MAX + 1];

/* Each small class's last direct[] entry, worked out once
 * (page_tables_init); its first is the entry after the class below's last
 * (class 0's is set so that class 1 starts at 0).  The slow path of the
 * classes above 1 KiB switches pages often (few blocks a page): in
 * alloc_test under callgrind, computing the entries from the class sizes
 * on each call made it 77 instructions a call on average, 43 with this. */
void page_tables_init(void) {
  direct_last[0] = -1;
  for (unsigned cls = 1; cls <= EBB_SMALL_CLASS_MAX; cls++)
    direct_last[cls] = (int16_t)direct_index(class_size(cls));
}

/* The caller (heap_direct_refresh) has seen that they name another page. */
static void heap_direct_set(ebb_heap_t *heap, unsigned cls, ebb_page_t *target) {
  size_t last = (size_t)direct_last[cls], first = (size_t)(direct_last[cls - 1] + 1);
  /* A class has 1 to 128 entries, so this runs on every slow path that
   * switches pages: four stores a turn (paired into vector stores) instead
   * of one. */
  ebb_page_t **entry = &heap->direct[first];
  size_t n = last - first + 1, i = 0;
  for (; i + 4 <= n; i += 4) {
    entry[i] = target;
    entry[i + 1] = target;
    entry[i + 2] = target;
    entry[i + 3] = target;
  }
  for (; i < n; i++) entry[i] = target;
}

/* The page direct[] names for cls is quiet (internal.h, used_minus_one):
 * counted one higher, so that the free that empties it takes no call.  A
 * loop that mallocs and frees one block of a class with nothing else
 * live emptied the page on every free, and that call was a quarter of
 * the loop's time (tight_fixed-1t, README).  Only a real page of this
 * heap's own, never the empty page or the foreign cache, and only with a
 * purger thread (heap_direct_refresh); taken off before the page stops
 * being named, and so before it is retired or detached, and at the
 * thread's exit (heap_quiet_release). */
void heap_quiet_release(ebb_heap_t *heap) {
  for (uint64_t q = heap->quiet_classes; q != 0; q &= q - 1)
    page_set_quiet(heap->direct[direct_last[__builtin_ctzll(q)]], false);
  heap->quiet_classes = 0;
}

/* The fast path reads heap->direct[]; keep it pointing at each small class's
 * first page (or the shared empty page), or at its foreign cache while
 * that is in use. */
void heap_direct_refresh(ebb_heap_t *heap, unsigned cls) {
  if (cls > EBB_SMALL_CLASS_MAX || heap->is_shared) return; /* a shared heap's is never read */
  ebb_page_t *first = heap->queues[cls].first;
  ebb_page_t *target = first ? first : &ebb_empty_page;
  if ((heap->foreign_active >> cls) & 1) target = &heap->foreign[cls];
  /* Sampling on: the fast path pops only what alloc_small_sampled (alloc.c)
   * has checked cannot hold the class's next sample; until it has, the
   * class's allocations go there. */
  else if (unlikely(atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed) != 0)) target = &ebb_empty_page;
  ebb_page_t *named = heap->direct[direct_last[cls]];
  if (named == target) return; /* all the class's entries are set together */
  uint64_t bit = (uint64_t)1 << cls;
  if (heap->quiet_classes & bit) page_set_quiet(named, false);
  /* Not without a purger thread: then the free that empties a page is
   * also what runs the purge passes of a program that only mallocs and
   * frees (t_purge burst_calls).  (If the thread could not be started,
   * pages made quiet before stay so until their class changes page.)  Nor
   * once the thread is leaving: segments_abandon takes its sparse pages
   * back into their queues after heap_quiet_release, and a page left
   * quiet would be counted one higher again by the thread adopting it. */
  if (target == first && heap->is_live && ebb_opt.background &&
      !atomic_load_explicit(&ebb_purge_inline, memory_order_relaxed)) {
    page_set_quiet(target, true);
    heap->quiet_classes |= bit;
  } else {
    heap->quiet_classes &= ~bit;
  }
  heap_direct_set(heap, cls, target);
}

static void list_remove(ebb_page_queue_t *q, ebb_page_t *page) {
  if (page->prev) page->prev->next = page->next;
  else q->first = page->next;
  if (page->next) page->next->prev = page->prev;
  else q->last = page->prev;
  page->next = page->prev = NULL;
}

static void list_push_back(ebb_page_queue_t *q, ebb_page_t *page) {
  page->next = NULL;
  page->prev = q->last;
  if (q->last) q->last->next = page;
  else q->first = page;
  q->last = page;
}

void page_queue_push(ebb_page_queue_t *q, ebb_page_t *page) { list_push_back(q, page); }
void page_queue_remove(ebb_page_queue_t *q, ebb_page_t *page) { list_remove(q, page); }

static void list_push_front(ebb_page_queue_t *q, ebb_page_t *page) {
  page->prev = NULL;
  page->next = q->first;
  if (q->first) q->first->prev = page;
  else q->last = page;
  q->first = page;
}

static void queue_remove(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_page_queue_t *q = &heap->queues[page->class_idx];
  bool was_first = q->first == page;
  list_remove(q, page);
  if (was_first) heap_direct_refresh(heap, page->class_idx);
}

static void queue_push_front(ebb_heap_t *heap, ebb_page_t *page) {
  list_push_front(&heap->queues[page->class_idx], page);
  heap_direct_refresh(heap, page->class_idx);
}

static void queue_push_back(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_page_queue_t *q = &heap->queues[page->class_idx];
  bool was_empty = q->first == NULL;
  list_push_back(q, page);
  if (was_empty) heap_direct_refresh(heap, page->class_idx);
}

static void page_unfull(ebb_heap_t *heap, ebb_page_t *page) {
  list_remove(&heap->full, page);
  page_mark_full(page, false);
  atomic_store_explicit(&page->in_full, 0, memory_order_relaxed);
  queue_push_back(heap, page);
  page_arm_sparse(page); /* it was full: trap again when it runs sparse */
}

/* Move a page with nothing to give to the full list.  Returns false (and
 * leaves the page first in its queue) if a remote free arrived meanwhile.
 * direct[] is the caller's to refresh: the slow path does it once, after
 * choosing its page. */
static bool page_to_full_unrefreshed(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_page_queue_t *q = &heap->queues[page->class_idx];
  list_remove(q, page);
  list_push_back(&heap->full, page);
  page_mark_full(page, true);
  atomic_store_explicit(&page->in_full, 1, memory_order_seq_cst);
  /* Holes the purger made count too: it tells a full page's owner, but
   * may have read in_full before this store. */
  if (atomic_load_explicit(&page->thread_free, memory_order_seq_cst) != 0 ||
      atomic_load_explicit(&page->remote_holes, memory_order_seq_cst) != 0) {
    list_remove(&heap->full, page);
    page_mark_full(page, false);
    atomic_store_explicit(&page->in_full, 0, memory_order_relaxed);
    list_push_front(q, page);
    return false;
  }
  return true;
}
static bool page_to_full(ebb_heap_t *heap, ebb_page_t *page) {
  bool full = page_to_full_unrefreshed(heap, page);
  heap_direct_refresh(heap, page->class_idx);
  return full;
}

static bool page_has_room(const ebb_page_t *page) {
  return page->free || page->local_free || page->capacity < page->reserved;
}

void page_enqueue(ebb_heap_t *heap, ebb_page_t *page) {
  page_mark_full(page, false);
  atomic_store_explicit(&page->in_full, 0, memory_order_relaxed);
  queue_push_back(heap, page);
  if (!page_has_room(page)) page_to_full(heap, page);
}

void page_enqueue_front(ebb_heap_t *heap, ebb_page_t *page) {
  page_mark_full(page, false);
  atomic_store_explicit(&page->in_full, 0, memory_order_relaxed);
  queue_push_front(heap, page);
}

void page_unqueue(ebb_heap_t *heap, ebb_page_t *page) {
  if (atomic_load_explicit(&page->in_full, memory_order_relaxed)) {
    list_remove(&heap->full, page);
    page_mark_full(page, false);
    atomic_store_explicit(&page->in_full, 0, memory_order_relaxed);
  } else {
    queue_remove(heap, page);
  }
}

/* An empty page goes back to its segment, where its slices decay like any
 * free memory, except a small class's current page in a thread's heap: a
 * malloc/free loop would otherwise give it back and take it again on every
 * call.  A medium or large one (512 KiB or more) is not kept: a thread that
 * goes idle must not sit on one per size class, and its blocks are big
 * enough for the round trip through the segment not to matter.  Nor is a
 * shared heap's: its small classes serve young threads (alloc.c), and once
 * they have pages of their own nothing would take it back. */
static bool page_kept_when_empty(const ebb_heap_t *heap, const ebb_page_t *page) {
  return page->class_idx <= EBB_SMALL_CLASS_MAX && heap->queues[page->class_idx].first == page &&
         !heap->is_shared;
}

/* A shared heap's medium pages grow with their class's use: the first
 * page of a class holds one block, each next one twice as many as the
 * last, up to the full page (about 8 blocks), and each page the class
 * gives back halves the next.  A class with a block or two live at a time
 * (most classes of most programs) then touches one block's memory, at the
 * start of a short run, where another class's block was before; with
 * 8-block pages every class's block sat at its own offset in a long run,
 * each run taken where another class's had been, so the touched memory
 * spread: tiny (4 blocks of 16-64 KiB a round, from 16 classes) held
 * about 1 MiB resident in the medium pages for 160 KiB live. */
static uint8_t *medium_ramp_of(ebb_heap_t *heap, unsigned cls) {
  bool ramped = heap->is_shared && cls > EBB_SMALL_CLASS_MAX && cls <= EBB_MEDIUM_CLASS_MAX;
  return ramped ? &heap->medium_ramp[cls - EBB_SMALL_CLASS_MAX - 1] : NULL;
}

/* Slices for the next page of cls: `full` unless the class is ramped. */
static size_t medium_page_slices(ebb_heap_t *heap, unsigned cls, size_t block_size, size_t full) {
  uint8_t *ramp = medium_ramp_of(heap, cls);
  if (ramp == NULL) return full;
  size_t slices = page_slices_min(((size_t)1 << *ramp) * block_size);
  if (*ramp < 3) (*ramp)++;
  return slices < full ? slices : full;
}

static void medium_ramp_down(ebb_heap_t *heap, unsigned cls) {
  uint8_t *ramp = medium_ramp_of(heap, cls);
  if (ramp != NULL && *ramp > 0) (*ramp)--;
}

static bool page_retire(ebb_heap_t *heap, ebb_page_t *page) {
  if (page_kept_when_empty(heap, page)) {
    heap->empty_current |= (uint64_t)1 << page->class_idx;
    return false;
  }
  if (page->detached) return false; /* a shared page being purged: the purger retires it */
  medium_ramp_down(heap, page->class_idx);
  page_unqueue(heap, page);
  segment_page_free(heap, segment_of(page), page);
  return true;
}

/* The owner's free path lands here when the decremented count went
 * negative: the page was on the full list, or dropped to its sparse mark,
 * or is now empty, or the count went below empty (a block freed twice). */
static EBB_NOINLINE void page_after_local_free_rare(ebb_heap_t *heap, ebb_page_t *page);
static EBB_NOINLINE void page_after_full_free(ebb_heap_t *heap, ebb_page_t *page);

/* Without a purger thread, decay runs from these calls (every 64th, and
 * at most once a tick): the allocation slow path, and the free that
 * empties a page.  The second, since the owner's frees went onto `free`:
 * a loop over a few blocks then never runs its list dry, and with only the
 * slow path counting, a 270 MiB burst freed beside such a loop stayed
 * resident (t_purge burst_calls). */
static EBB_NOINLINE void purge_inline_count(ebb_heap_t *heap) {
  if ((++heap->slow_calls & 63) == 0) purge_notify();
}
static inline void purge_inline_tick(ebb_heap_t *heap) {
  if (unlikely(atomic_load_explicit(&ebb_purge_inline, memory_order_relaxed))) purge_inline_count(heap);
}

void page_after_local_free(ebb_heap_t *heap, ebb_page_t *page) {
  /* The common case first: the class's current small page is empty again
   * (a malloc/free loop); it stays, marked for the retire check.  (The
   * tick last, as a tail call: no stack frame on this path.) */
  if (page->used_minus_one == -1 && !page->quiet && page_kept_when_empty(heap, page)) {
    heap->empty_current |= (uint64_t)1 << page->class_idx;
    purge_inline_tick(heap);
    return;
  }
  if (page_marked_full(page)) page_after_full_free(heap, page);
  else page_after_local_free_rare(heap, page);
}

/* A full page with a block free again (pages that fill and drain by turns):
 * back to its queue, rearmed; nothing more unless that leaves it at its
 * sparse mark or empty.  A full page cannot go below empty. */
static EBB_NOINLINE void page_after_full_free(ebb_heap_t *heap, ebb_page_t *page) {
  page_unfull(heap, page);
  if (page->used_minus_one < 0) page_after_local_free_rare(heap, page);
}

static EBB_NOINLINE void page_after_local_free_rare(ebb_heap_t *heap, ebb_page_t *page) {
  purge_inline_tick(heap);
  uint32_t used = page_used(page);
  if (used == UINT32_MAX) {
    page->used_minus_one++;
    ebb_fatal_pointer("free", page_last_owned_free(page), "double free (block freed twice)");
  }
  if (page_marked_full(page)) page_unfull(heap, page);
  if (page->sparse_at) {
    if (used > page->sparse_at) return;
    page_disarm_sparse(page);
    if (used > 0 && heap->queues[page->class_idx].first != page) {
      heap_detach_sparse(heap, page);
      return;
    }
  }
  if (used == 0 && page_retire(heap, page)) purge_notify();
}

/* ---- the allocation slow path -------------------------------------------- */

/* An empty current page is kept so that a malloc/free loop does not give
 * it back and take it again on every call; but a program that goes through
 * many classes in turn (builds an array of one size, frees it, moves to the
 * next) left one fully carved empty page per class, 64 KiB each, all
 * resident: sh8bench held 19 MiB for about 2 MiB live (glibc: 6 MiB).  So
 * the slow path, every EBB_RETIRE_TICKS calls, retires the current pages
 * that were empty at the check before and still are: a page idle for
 * 16-32 slow paths of other classes goes back to its segment, where the
 * next class's page reuses its (resident) slices.  A loop on one class
 * takes no slow path, so its page stays. */
#define EBB_RETIRE_TICKS 16u

/* An empty current page whose slice holds at most this much resident
 * (internal.h, ebb_page_t.touched) is not retired by that check. */
#define EBB_EMPTY_KEEP_BYTES ((size_t)16 << 10)

/* `advance`: a check of the periodic kind, which starts a new generation
 * (the pages empty now are retired at the next such check if still
 * empty).  The check before a new page only retires what the last one
 * saw empty and still is: were it to start generations too, a loop's
 * page in one class could go back between two new pages of another. */
static EBB_NOINLINE void heap_retire_empty_current(ebb_heap_t *heap, unsigned wanted, bool advance) {
  /* Quiet current pages raise nothing when they empty: looked at here,
   * by the count alone (one higher: 0 is empty, unless a sparse trap is
   * armed, which the checks below sort out). */
  uint64_t emptied = heap->empty_current;
  for (uint64_t q = heap->quiet_classes; q != 0; q &= q - 1) {
    unsigned cls = (unsigned)__builtin_ctzll(q);
    const ebb_page_t *page = heap->queues[cls].first;
    if (page != NULL && page->used_minus_one == 0) emptied |= (uint64_t)1 << cls;
  }
  uint64_t aging = heap->empty_current_aging;
  if (advance) {
    heap->empty_current_aging = emptied;
    heap->empty_current = 0;
  } else {
    aging &= emptied;
  }
  while (aging) {
    unsigned cls = (unsigned)__builtin_ctzll(aging);
    aging &= aging - 1;
    if (cls == wanted) continue; /* about to be used again */
    ebb_page_t *page = heap->queues[cls].first;
    if (page == NULL || page->detached || page->sparse_at || page_used(page) != 0) continue;
    /* One whose slice holds little resident stays for the class's next
     * use.  Retired, a class used now and then (espresso, mimalloc-bench:
     * 70 classes, most with a few blocks live at a time) took a new page
     * at each return, often on a slice an earlier page of another class
     * had carved in full, and kept that slice resident under a page of a
     * few blocks: 65,297 such retirements in a 4 s run, and 3.1 MiB of
     * segments resident for a peak of 443 KiB live (glibc's heap: 728
     * KiB).  With this, 123 retirements, and peak RSS 5.2 -> 3.7 MiB. */
    if (page->slice_count == 1 && slice_touched_bytes(page) <= EBB_EMPTY_KEEP_BYTES) {
      heap->empty_current_aging &= ~((uint64_t)1 << cls);
      continue;
    }
    /* Blocks other threads freed wait on it: not empty after all. */
    if (atomic_load_explicit(&page->thread_free, memory_order_relaxed) != 0) continue;
    heap->empty_current_aging &= ~((uint64_t)1 << cls);
    page_unqueue(heap, page);
    segment_page_free(heap, segment_of(page), page);
  }
}

/* How many pages with free blocks the slow path compares before choosing. */
#define EBB_PAGE_CANDIDATES 4

/* Of two candidates, is `page` (with `used` blocks in use) the better
 * current page than `best`?  Packing first: the fullest page that is not
 * mostly used, so that the emptier ones drain and are retired.  When all
 * are mostly used, the one with the most free blocks. */
EBB_INLINE bool page_better_candidate(const ebb_page_t *page, uint32_t used, const ebb_page_t *best,
                                      uint32_t best_used) {
  bool mostly = page_mostly_used(page, used), best_mostly = page_mostly_used(best, best_used);
  if (mostly != best_mostly) return !mostly;
  return mostly ? used < best_used : used > best_used;
}

void *page_alloc_slow(ebb_heap_t *heap, size_t size, unsigned cls, bool zero) {
  if (atomic_load_explicit(&heap->remote_pending, memory_order_relaxed) != 0)
    heap_handle_remote_full(heap);
  heap_note_active(heap);
  purge_inline_tick(heap);
  if (heap->is_shared) heap->class_used_at[cls] = os_clock_ms_coarse();
  /* The thread allocates this class after all: its foreign frees of it
   * are worth keeping again (alloc.c). */
  if (cls < EBB_FOREIGN_CLASSES) heap->foreign_bypass &= ~((uint64_t)1 << cls);
  /* Quiet pages (heap_direct_refresh) raise no bit: the check looks at
   * their counts, every 4th time here, and before a new page (below). */
  if ((heap->empty_current | heap->empty_current_aging | heap->quiet_classes) != 0) {
    uint32_t tick = ++heap->retire_tick;
    if (tick % EBB_RETIRE_TICKS == 0 &&
        ((heap->empty_current | heap->empty_current_aging) != 0 || tick % (4 * EBB_RETIRE_TICKS) == 0))
      heap_retire_empty_current(heap, cls, true);
  }
  ebb_page_queue_t *q = &heap->queues[cls];
  /* Visit pages from the front, collecting each: pages with nothing go to
   * the full list, empty ones back to their segment, and of the first few
   * with free blocks the fullest not mostly used is taken (packing: the
   * emptier ones drain and are retired; page_better_candidate).  The
   * others visited go to the back of the queue, so every page is collected
   * in turn, not only the first few forever. */
  ebb_page_t *best = NULL, *visited[EBB_PAGE_CANDIDATES];
  uint32_t best_used = 0;
  size_t candidates = 0;
  ebb_page_t *page = q->first;
  while (page && candidates < EBB_PAGE_CANDIDATES) {
    ebb_page_t *next = page->next;
    /* Collected without walking a list (page_collect); remote frees left
     * waiting still count in its rank (their number is in the word), and
     * if they empty the page it is collected whole. */
    page_collect(page);
    uint32_t pending = tf_count(atomic_load_explicit(&page->thread_free, memory_order_relaxed));
    if (pending != 0 && pending == page_used(page)) {
      page_collect_all(page);
      pending = tf_count(atomic_load_explicit(&page->thread_free, memory_order_relaxed));
    }
    if (page->free == NULL) {
      if (page_has_holes(page)) page_recarve(page);
      if (page->free == NULL && page->capacity < page->reserved && !page_extend(page)) {
        page = next; /* its slice is being trimmed: passed over this time */
        continue;
      }
      if (page->free == NULL) {
        if (!page_to_full_unrefreshed(heap, page)) continue; /* a remote free raced in: collect it */
        page = next;
        continue;
      }
    }
    uint32_t used = page_used(page) - pending;
    if (used == 0 && pending == 0 && (best != NULL || next != NULL) && !page->detached) {
      queue_remove(heap, page); /* empty, and another page can serve */
      segment_page_free(heap, segment_of(page), page);
    } else {
      visited[candidates++] = page;
      if (best == NULL || page_better_candidate(page, used, best, best_used)) {
        best = page;
        best_used = used;
      }
    }
    page = next;
  }
  if (best) {
    /* Reorder with plain list operations; the fast path's direct[] entries
     * (left as they were by the pages moved to the full list above) are
     * rewritten once, below, if they do not name the first page. */
    for (size_t i = 0; i < candidates; i++) {
      if (visited[i] == best) continue;
      list_remove(q, visited[i]);
      list_push_back(q, visited[i]);
    }
    if (best != q->first) {
      list_remove(q, best);
      list_push_front(q, best);
    }
    heap_direct_refresh(heap, cls);
    return page_take(best, size, zero);
  }
  /* A sparse page of this class the purger holds comes back before a new
   * page is taken: its free blocks are the ones to reuse. */
  if ((page = heap_reattach_sparse(heap, cls)) != NULL) {
    if (page->free == NULL) page_recarve(page);
    if (page->free == NULL && page->capacity < page->reserved) page_extend(page);
    if (page->free != NULL) {
      page_enqueue_front(heap, page);
      return page_take(page, size, zero);
    }
    page_enqueue(heap, page); /* nothing free after all (cannot happen: it was sparse) */
  }
  /* A new page: from a free run of the heap's own segments; else pages of
   * exited threads with room in this class come before a new segment: a
   * thread that lives for a few allocations (a pool that grows and
   * shrinks, a thread per connection) otherwise opens a page per class it
   * uses, and each page one of its blocks outlives it stays.  Only then:
   * a thread that kept adopting exited threads' segments while its own had
   * room held them all (a few live blocks each) and left none for the next
   * short-lived thread, which mapped a new one (mimalloc-bench's mstress,
   * a thread per round beside main: 44 segments mapped for under 10 MiB
   * live). */
  /* Another class's quiet current page, empty at the check before and
   * still, goes back first: its slices may serve this page. */
  if (heap->quiet_classes != 0) heap_retire_empty_current(heap, cls, false);
  size_t block_size = class_size(cls);
  size_t slices = medium_page_slices(heap, cls, block_size, page_slices_for(block_size));
  page = NULL;
  if (!heap->is_shared) {
    page = segment_page_alloc_owned(heap, slices);
    if (page == NULL && segments_reclaim_for_class(heap, cls)) return page_alloc_slow(heap, size, cls, zero);
  }
  if (page == NULL) page = segment_page_alloc(heap, slices, page_slices_min(block_size), cls > EBB_MEDIUM_CLASS_MAX);
  if (page == NULL) {
    heap_direct_refresh(heap, cls); /* the scan may have moved the first page to the full list */
    errno = ENOMEM;
    return NULL;
  }
  page_init(segment_of(page), page, cls, block_size, page->is_zero);
  /* No sparse trap in the shared heap: its idle classes are purged whole
   * (purge.c), and an active class reuses its free blocks. */
  if (heap->is_shared) page->sparse_mark = 0;
  page_extend(page); /* a new page: never refused */
  queue_push_front(heap, page);
  return page_take(page, size, zero);
}

/* Some remote free hit a page on this heap's full list: the masks of its
 * segments say which pages.  The flag is cleared first, so a flag raised
 * while the segments are read calls for another look. */
void heap_handle_remote_full(ebb_heap_t *heap) {
  atomic_exchange_explicit(&heap->remote_pending, 0, memory_order_seq_cst);
  ebb_segment_t *lists[2] = {heap->segments_full, heap->segments};
  for (int l = 0; l < 2; l++) {
    for (ebb_segment_t *seg = lists[l], *next; seg; seg = next) {
      next = seg->next; /* the segment may change lists below */
      if (atomic_load_explicit(&seg->remote_full, memory_order_relaxed) == 0) continue;
      uint64_t pages = atomic_exchange_explicit(&seg->remote_full, 0, memory_order_seq_cst);
      if (pages & EBB_REMOTE_FULL_LENT) { /* slot 0 is the header, never a page */
        pages &= ~EBB_REMOTE_FULL_LENT;
        segment_slices_returned(heap, seg);
      }
      while (pages) {
        ebb_page_t *page = &seg->pages[__builtin_ctzll(pages)];
        pages &= pages - 1;
        if (atomic_load_explicit(&page->in_full, memory_order_relaxed) &&
            (atomic_load_explicit(&page->thread_free, memory_order_seq_cst) != 0 ||
             atomic_load_explicit(&page->remote_holes, memory_order_relaxed) != 0))
          page_unfull(heap, page);
      }
    }
  }
}

/* One page of heap_collect: taken in whole; empty, back to its segment. */
static void heap_collect_page(ebb_heap_t *heap, ebb_page_t *page, bool force) {
  if (page->detached) return; /* the purger's */
  page_collect_all(page);
  if (page_used(page) == 0) {
    page_unqueue(heap, page);
    segment_page_free(heap, segment_of(page), page);
    return;
  }
  if (atomic_load_explicit(&page->in_full, memory_order_relaxed) && page->free)
    page_unfull(heap, page);
  if (force) page_purge_free_units(page);
}

/* A shared heap's pages, found through its queues and full list: its
 * segments are the medium group's, shared with the other shared heaps. */
static void heap_collect_shared(ebb_heap_t *heap, bool force) {
  /* every class: small ones too, from threads past their exit (alloc.c) */
  for (unsigned cls = 1; cls < EBB_CLASS_COUNT; cls++) {
    ebb_page_t *next;
    for (ebb_page_t *page = heap->queues[cls].first; page; page = next) {
      next = page->next;
      heap_collect_page(heap, page, force);
    }
  }
  ebb_page_t *next;
  for (ebb_page_t *page = heap->full.first; page; page = next) {
    next = page->next;
    heap_collect_page(heap, page, force);
  }
  if (force) segments_release_cached(heap);
}

/* Collect every page of the heap; give empty pages back to their segments
 * (and so empty segments to the pool).  force: first take back the pages
 * handed to the purger, give back the free OS pages inside pages still in
 * use, and release the cached segment. */
void heap_collect(ebb_heap_t *heap, bool force) {
  if (heap->is_shared) {
    heap_collect_shared(heap, force);
    return;
  }
  if (force) heap_reattach_all(heap);
  ebb_segment_t *lists[2] = {heap->segments_full, heap->segments};
  for (int l = 0; l < 2; l++) {
    ebb_segment_t *seg = lists[l];
    while (seg) {
      ebb_segment_t *next = seg->next;
      FOR_EACH_PAGE(seg, page) if (!page_is_lent(page)) heap_collect_page(heap, page, force);
      seg = next;
    }
  }
  if (force) segments_release_cached(heap);
}
