/* Segments: 4 MiB aligned units owned by one heap, cut into 64 KiB slices
 * that pages take in runs.  A 64-bit mask per segment says which slices are
 * in use, so finding a run is a few bit operations.  Runs whose memory is
 * still resident (freed, not yet purged) are taken first.
 *
 * Where segments come from, in order: the heap's one cached empty segment,
 * segments abandoned by exited threads (reclaimed with their live blocks),
 * the process-wide pool of empty segments, the OS.
 *
 * Normal segments are never unmapped: an empty one goes to the pool, and its
 * slices, like every free slice, are purged (MADV_DONTNEED) by the purger
 * once they have been free for the decay delay (purge.c), keeping only the
 * address range and its header page.  This is what lets a thread that frees
 * remotely read the page descriptor after its atomic push, whatever the
 * owner did meanwhile.  Every normal segment is on one list that the purger
 * and the statistics walk.
 *
 * A segment's lock guards its slice masks against the purger: the owner
 * takes it to take or give back a run of slices (once a page, not once a
 * block), the purger to claim free slices before its madvise, which runs
 * unlocked.  Free slices remember when they were freed in the `stamp` of
 * their descriptors. */
#include <errno.h>
#include <string.h>

#include "internal.h"

uint8_t ebb_segmap[EBB_SEGMAP_SIZE];
_Atomic size_t ebb_huge_bytes, ebb_huge_count, ebb_huge_usable_bytes, ebb_huge_requested_bytes;

/* Empty segments (their memory decays like any free slice), and segments of
 * exited threads. */
static ebb_lock_t pool_lock, abandoned_lock, huge_cache_lock; /* taken in this order around fork */
static ebb_segment_t *pool;
/* Oldest first: a thread that needs a page adopts the segment abandoned
 * longest ago, whose blocks other threads have had the most time to free
 * (newest first, thread_pool's threads adopted segments their predecessor
 * had just left full). */
static ebb_segment_t *abandoned_list, *abandoned_tail;

/* The abandoned list is doubly linked (next, prev), so that a thread
 * freeing into a segment on it can take that one out (under the lock). */
static void abandoned_push_back(ebb_segment_t *seg) {
  seg->next = NULL;
  seg->prev = abandoned_tail;
  if (abandoned_tail) abandoned_tail->next = seg;
  else abandoned_list = seg;
  abandoned_tail = seg;
  seg->abandoned_listed = 1;
}

static void abandoned_unlink(ebb_segment_t *seg) {
  if (seg->prev) seg->prev->next = seg->next;
  else abandoned_list = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  else abandoned_tail = seg->prev;
  seg->next = seg->prev = NULL;
  seg->abandoned_listed = 0;
}
_Atomic(ebb_segment_t *) ebb_all_segments;

#define ALL_SLICES (~(uint64_t)0)
#define HEADER_SLICES ((uint64_t)1)

static uint64_t run_mask(size_t first, size_t count) {
  uint64_t m = count >= 64 ? ALL_SLICES : (((uint64_t)1 << count) - 1);
  return m << first;
}

/* First index of `count` consecutive clear bits in `used`, or -1.  Runs
 * of length 2k start where runs of length k start k bits apart; the last
 * step adds the remainder (at most the current length, so runs overlap). */
int find_free_run(uint64_t used, size_t count) {
  uint64_t starts = ~used;
  size_t len = 1;
  while (len < count && starts) {
    size_t step = len <= count - len ? len : count - len;
    starts &= starts >> step;
    len += step;
  }
  return starts ? __builtin_ctzll(starts) : -1;
}

/* ---- heap segment lists (doubly linked through next/prev) ---------------- */
static void seg_list_push(ebb_segment_t **list, ebb_segment_t *seg) {
  seg->prev = NULL;
  seg->next = *list;
  if (*list) (*list)->prev = seg;
  *list = seg;
}

static void seg_list_remove(ebb_segment_t **list, ebb_segment_t *seg) {
  if (seg->prev) seg->prev->next = seg->next;
  else *list = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
}

static void heap_list_remove(ebb_heap_t *heap, ebb_segment_t *seg) {
  seg_list_remove(seg->in_full_list ? &heap->segments_full : &heap->segments, seg);
  seg->in_full_list = 0;
}

/* ---- the pool ------------------------------------------------------------ */
static void pool_push(ebb_segment_t *seg) {
  atomic_store_explicit(&seg->owner, NULL, memory_order_release);
  seg->prev = NULL;
  lock_acquire(&pool_lock);
  seg->next = pool;
  pool = seg;
  lock_release(&pool_lock);
  purge_notify();
}

static ebb_segment_t *pool_pop(void) {
  if (pool == NULL) return NULL; /* racy peek; the lock decides */
  lock_acquire(&pool_lock);
  ebb_segment_t *seg = pool; /* the most recently emptied: the warmest */
  if (seg) pool = seg->next;
  lock_release(&pool_lock);
  return seg;
}

static void stamp_slices(ebb_segment_t *seg, uint64_t mask, uint32_t now) {
  while (mask) {
    seg->pages[__builtin_ctzll(mask)].stamp = now;
    mask &= mask - 1;
  }
}

/* fresh: just mapped, so its descriptors are zero already; clearing them
 * would make the header's 16 KiB resident where a segment with a few pages
 * in use touches one or two of its OS pages. */
static void segment_reset_header(ebb_segment_t *seg, ebb_heap_t *heap, bool fresh) {
  lock_acquire(&seg->lock);
  if (!fresh) {
    uint32_t stamps[EBB_SLICES_PER_SEGMENT]; /* free slices keep their age, */
    uint8_t touched[EBB_SLICES_PER_SEGMENT];  /* and what they hold resident */
    for (size_t i = 0; i < EBB_SLICES_PER_SEGMENT; i++) {
      stamps[i] = seg->pages[i].stamp;
      touched[i] = seg->pages[i].touched;
    }
    memset(seg->pages, 0, sizeof seg->pages);
    for (size_t i = 0; i < EBB_SLICES_PER_SEGMENT; i++) {
      seg->pages[i].stamp = stamps[i];
      seg->pages[i].touched = touched[i];
    }
  }
  seg->used_slices = HEADER_SLICES;
  lock_release(&seg->lock);
  seg->next = seg->prev = NULL;
  seg->kind = EBB_SEGMENT_NORMAL;
  seg->in_full_list = 0;
  /* owner first: a freer that sees the cleared bits sees the new owner */
  atomic_store_explicit(&seg->owner, heap, memory_order_seq_cst);
  atomic_store_explicit(&seg->remote_full, 0, memory_order_seq_cst);
}

/* ---- committed memory: what the hard limit counts ----------------------------
 * Every mapping ebb holds, except the slices of normal segments that are
 * neither written since their last purge nor ever written: those hold no
 * memory and would need none until handed out again.  Kept from the dirty
 * masks' changes: a slice becomes dirty when a page takes it, clean when
 * the purger gives it back. */
static _Atomic size_t normal_mapped_bytes, normal_dirty_bytes;

static void dirty_bytes_add(uint64_t newly_dirty) {
  if (newly_dirty)
    atomic_fetch_add_explicit(&normal_dirty_bytes, (size_t)__builtin_popcountll(newly_dirty) * EBB_SLICE_SIZE,
                              memory_order_relaxed);
}

/* Free slices still resident (freed, not yet purged) and slices in use,
 * over all normal segments: the purger's pressure measure (purge.c). */
static _Atomic size_t free_resident_bytes, used_slice_bytes;

static void slice_bytes_add(_Atomic size_t *counter, uint64_t mask, bool add) {
  if (mask == 0) return;
  size_t bytes = (size_t)__builtin_popcountll(mask) * EBB_SLICE_SIZE;
  if (add) atomic_fetch_add_explicit(counter, bytes, memory_order_relaxed);
  else atomic_fetch_sub_explicit(counter, bytes, memory_order_relaxed);
}

size_t segments_free_resident_bytes(void) {
  return atomic_load_explicit(&free_resident_bytes, memory_order_relaxed);
}
size_t segments_used_bytes(void) { return atomic_load_explicit(&used_slice_bytes, memory_order_relaxed); }

void segment_free_ages(ebb_segment_t *seg, uint32_t now, size_t hist[EBB_AGE_BUCKETS]) {
  if (((seg->dirty_slices & ~seg->used_slices) & ~HEADER_SLICES) == 0) return; /* racy peek */
  lock_acquire(&seg->lock);
  for (uint64_t m = seg->dirty_slices & ~seg->used_slices & ~seg->purging_slices & ~HEADER_SLICES; m;
       m &= m - 1) {
    int32_t age = (int32_t)(now - seg->pages[__builtin_ctzll(m)].stamp);
    unsigned k = age <= 0 ? 0 : 32 - (unsigned)__builtin_clz((uint32_t)age);
    hist[k < EBB_AGE_BUCKETS ? k : EBB_AGE_BUCKETS - 1] += EBB_SLICE_SIZE;
  }
  lock_release(&seg->lock);
}

size_t segments_committed_bytes(void) {
  size_t mapped = atomic_load_explicit(&ebb_os_mapped_bytes, memory_order_relaxed);
  size_t normal = atomic_load_explicit(&normal_mapped_bytes, memory_order_relaxed);
  size_t dirty = atomic_load_explicit(&normal_dirty_bytes, memory_order_relaxed);
  return (mapped > normal ? mapped - normal : 0) + dirty;
}

/* The purger's part: claim the free dirty slices old enough (marked
 * purging), give them back unlocked, in one call with other segments'
 * (segment_purge_finish), then clear their dirty bits. */
size_t segment_purge_free(ebb_segment_t *seg, uint32_t now, long long decay_ms, bool force,
                          ebb_slice_purge_t *sp) {
  if (((seg->dirty_slices & ~seg->used_slices) & ~HEADER_SLICES) == 0) return 0; /* racy peek */
  lock_acquire(&seg->lock);
  uint64_t candidates = seg->dirty_slices & ~seg->used_slices & ~seg->purging_slices & ~HEADER_SLICES;
  uint64_t purge = 0;
  for (uint64_t m = candidates; m; m &= m - 1) {
    size_t i = (size_t)__builtin_ctzll(m);
    if (force || decay_reached(now, seg->pages[i].stamp, decay_ms))
      purge |= (uint64_t)1 << i;
  }
  seg->purging_slices |= purge;
  lock_release(&seg->lock);
  size_t left = (size_t)__builtin_popcountll(candidates & ~purge) * EBB_SLICE_SIZE;
  if (purge == 0) return left;
  /* Its runs (at most 32 of 64 slices) all in one batch, with room for them. */
  size_t runs = (size_t)__builtin_popcountll(purge & ~(purge << 1));
  if (sp->claims == EBB_PURGE_BATCH || runs > os_purge_batch_room(&sp->os)) segment_purge_finish(sp);
  for (uint64_t todo = purge; todo;) {
    size_t first = (size_t)__builtin_ctzll(todo);
    size_t end = first;
    while (end < 64 && (todo >> end) & 1) end++;
    os_purge_batch_add(&sp->os, slice_start(seg, first), (end - first) * EBB_SLICE_SIZE);
    todo &= ~run_mask(first, end - first);
  }
  sp->claim[sp->claims].seg = seg;
  sp->claim[sp->claims].slices = purge;
  sp->claims++;
  return left;
}

void segment_purge_finish(ebb_slice_purge_t *sp) {
  /* MADV_FREE (the madv_free option) keeps the contents: the slices are
   * then lazy, not fresh (one answer for the whole batch). */
  bool zeroed = os_purge_batch_flush(&sp->os);
  for (size_t k = 0; k < sp->claims; k++) {
    ebb_segment_t *seg = sp->claim[k].seg;
    uint64_t purge = sp->claim[k].slices;
    lock_acquire(&seg->lock);
    for (uint64_t m = purge; m; m &= m - 1) seg->pages[__builtin_ctzll(m)].touched = 0;
    seg->purging_slices &= ~purge;
    seg->dirty_slices &= ~purge;
    slice_bytes_add(&free_resident_bytes, purge, false);
    atomic_fetch_sub_explicit(&normal_dirty_bytes, (size_t)__builtin_popcountll(purge) * EBB_SLICE_SIZE,
                              memory_order_relaxed);
    if (!zeroed) seg->lazy_slices |= purge;
    lock_release(&seg->lock);
  }
  sp->claims = 0;
}

/* ---- residency a page inherited -------------------------------------------------
 * A page carves its slice from the start, one OS page at a time; what an
 * earlier page of the slice carved past that point stays resident though
 * no block is there (ebb_page_t.touched).  Once a one-slice page has held
 * its slice for the decay without carving that far, the rest goes back to
 * the OS.  The owner carves under the segment's lock and not while its
 * slice is being trimmed (page.c, page_extend), so no block is carved in
 * memory the madvise is taking, and the slice, marked purging, cannot be
 * taken by a new page meanwhile if the page is retired.
 * Trimming as the page is taken instead cost larson (mimalloc-bench) 1.5x
 * its time: most new pages carved that far again within milliseconds, and
 * faulted in what had just been given back. */
#define TRIM_MIN_BYTES ((size_t)8 << 10)

size_t segment_trim_stale(ebb_segment_t *seg, uint32_t now, long long decay_ms, bool force) {
  if (seg->kind != EBB_SEGMENT_NORMAL || decay_ms < 0) return 0;
  struct { uint8_t slice; uint32_t from, to; } trims[EBB_SLICES_PER_SEGMENT];
  size_t n = 0, left = 0;
  lock_acquire(&seg->lock);
  for (uint64_t m = seg->used_slices & ~seg->purging_slices & ~HEADER_SLICES; m; m &= m - 1) {
    size_t i = (size_t)__builtin_ctzll(m);
    ebb_page_t *page = &seg->pages[i];
    if (page->slice_count != 1 || page->capacity == 0 || page->detached) continue;
    size_t from = round_page(page_carved_bytes(page)), to = slice_touched_bytes(page);
    if (to > EBB_SLICE_SIZE - page_guard_size()) to = EBB_SLICE_SIZE - page_guard_size();
    if (to < from + TRIM_MIN_BYTES) continue;
    if (!force && !decay_reached(now, page->stamp, decay_ms)) {
      left += to - from;
      continue;
    }
    seg->purging_slices |= (uint64_t)1 << i;
    trims[n].slice = (uint8_t)i;
    trims[n].from = (uint32_t)from;
    trims[n].to = (uint32_t)to;
    n++;
  }
  lock_release(&seg->lock);
  if (n == 0) return left;
  ebb_purge_batch_t batch;
  os_purge_batch_init(&batch);
  for (size_t k = 0; k < n; k++)
    os_purge_batch_add(&batch, slice_start(seg, trims[k].slice) + trims[k].from, trims[k].to - trims[k].from);
  os_purge_batch_flush(&batch);
  lock_acquire(&seg->lock);
  for (size_t k = 0; k < n; k++) {
    seg->purging_slices &= ~((uint64_t)1 << trims[k].slice);
    seg->pages[trims[k].slice].touched = (uint8_t)(trims[k].from >> EBB_TOUCHED_UNIT_SHIFT);
  }
  lock_release(&seg->lock);
  return left;
}

/* ---- the secure build's guard pages ------------------------------------------
 * Two per segment, made when it is mapped and kept for its life (normal
 * segments are never unmapped): the last OS page of the header slice, below
 * the first page's first block, and the last OS page of the segment, which
 * ends whatever run holds slice 63.  Every run leaves its last OS page
 * unused (page_init, page_slices_for), so a short write past a page's last
 * block lands in no block, and at the segment's end it faults.
 * A guard for every page's run (its last OS page made inaccessible as the
 * run is taken) was tried first: runs change shape as slices are reused,
 * and opening and closing guards took 177,516 mprotect calls in mstress-2t,
 * 4.7x the normal build's time (large-2t 2.1x, trace_replay-2t 2.1x,
 * geomean of the 32 workloads 1.27x); these two guards cost a system call
 * per 2 MiB of segments mapped.  Huge blocks have none: a guard past each
 * (made as the block is, opened again before its mapping is cached) took
 * large-2t from 1.03x to 1.85x the normal build's time. */
#if EBB_SECURE
static void guard_segment(ebb_segment_t *seg) {
  size_t g = ebb_guard_size;
  if (g == 0) return;
  os_protect(slice_start(seg, 1) - g, g, false); /* refused (vm.max_map_count): no guard */
  os_protect((uint8_t *)seg + EBB_SEGMENT_SIZE - g, g, false);
}
#endif

static ebb_segment_t *segment_from_os(ebb_heap_t *heap) {
  if (!purge_limit_admit(EBB_SEGMENT_SIZE)) return NULL;
  /* Counted as a normal segment before it is mapped: a thread checking
   * the hard limit meanwhile must not see 4-8 MiB of mapping as committed. */
  atomic_fetch_add_explicit(&normal_mapped_bytes, EBB_SEGMENT_SIZE, memory_order_relaxed);
  ebb_segment_t *seg = os_map_aligned(EBB_SEGMENT_SIZE, EBB_SEGMENT_SIZE, 0);
  if (seg == NULL) {
    atomic_fetch_sub_explicit(&normal_mapped_bytes, EBB_SEGMENT_SIZE, memory_order_relaxed);
    return NULL;
  }
  seg->dirty_slices = HEADER_SLICES;
  dirty_bytes_add(HEADER_SLICES);
  seg->map_base = (uint8_t *)seg;
  seg->map_size = EBB_SEGMENT_SIZE;
#if EBB_SECURE
  guard_segment(seg);
#endif
  segment_reset_header(seg, heap, true);
  ebb_segment_t *head = atomic_load_explicit(&ebb_all_segments, memory_order_relaxed);
  do {
    seg->all_next = head;
  } while (!atomic_compare_exchange_weak_explicit(&ebb_all_segments, &head, seg,
                                                  memory_order_release, memory_order_relaxed));
  segmap_set((uintptr_t)seg, EBB_SEGMAP_SEGMENT);
  return seg;
}

/* ---- pages inside a segment ---------------------------------------------- */
/* Take slices [first, first+slices) for a page, if they are still free and
 * not being purged; NULL if not. */
static ebb_page_t *take_run(ebb_heap_t *heap, ebb_segment_t *seg, size_t first, size_t slices) {
  uint64_t mask = run_mask(first, slices);
  uint32_t now = os_clock_ms_coarse(); /* the page's stamp: read before the lock */
  lock_acquire(&seg->lock);
  if ((seg->used_slices | seg->purging_slices) & mask) {
    lock_release(&seg->lock);
    return NULL;
  }
  bool fresh = ((seg->dirty_slices | seg->lazy_slices) & mask) == 0;
  bool grows = (mask & ~seg->dirty_slices) != 0;
  slice_bytes_add(&free_resident_bytes, mask & seg->dirty_slices, false);
  slice_bytes_add(&used_slice_bytes, mask, true);
  seg->used_slices |= mask;
  dirty_bytes_add(mask & ~seg->dirty_slices);
  seg->dirty_slices |= mask;
  seg->lazy_slices &= ~mask;
  /* The descriptor is set up under the lock: the purger reads it there
   * (segment_trim_stale), and must see either a free slice or this page,
   * not the last one's carving. */
  ebb_page_t *page = &seg->pages[first];
  /* What the run may hold resident: a slice's own record when the page is
   * one slice; all of it for a longer run (whose carving is not tracked). */
  uint8_t touched = slices != 1 ? EBB_TOUCHED_FULL : fresh ? 0 : page->touched;
  memset(page, 0, sizeof *page);
  page->slice_count = (uint16_t)slices;
  page->is_zero = fresh;
  page->owner_thread = heap->thread_id;
  page->touched = touched;
  page->stamp = now; /* taken: when its inherited residency starts to decay */
  for (size_t i = 1; i < slices; i++) {
    seg->pages[first + i].head_delta = i * sizeof(ebb_page_t);
    seg->pages[first + i].slice_count = 0;
    seg->pages[first + i].touched = touched;
  }
  lock_release(&seg->lock);
  if (grows) purge_on_growth();
  if (seg->used_slices == ALL_SLICES && !seg->in_full_list) {
    seg_list_remove(&heap->segments, seg);
    seg_list_push(&heap->segments_full, seg);
    seg->in_full_list = 1;
  }
  return page;
}

static uint64_t slices_to_avoid(const ebb_segment_t *seg, bool dirty_only) {
  uint64_t avoid = seg->used_slices | seg->purging_slices;
  return dirty_only ? avoid | ~seg->dirty_slices | seg->lazy_slices : avoid;
}

/* A run of `slices` free slices in seg (not being purged), or NULL.  With
 * dirty_only, only a run whose memory is still resident (freed, not yet
 * purged): reusing it costs no page faults and leaves nothing to decay. */
static ebb_page_t *segment_try_take(ebb_heap_t *heap, ebb_segment_t *seg, size_t slices,
                                    bool dirty_only) {
  int first = find_free_run(slices_to_avoid(seg, dirty_only), slices); /* racy hint */
  if (first < 0) return NULL;
  ebb_page_t *page = take_run(heap, seg, (size_t)first, slices);
  if (page) return page;
  lock_acquire(&seg->lock); /* the purger claimed it meanwhile: look again */
  first = find_free_run(slices_to_avoid(seg, dirty_only), slices);
  lock_release(&seg->lock);
  return first < 0 ? NULL : take_run(heap, seg, (size_t)first, slices);
}

static ebb_segment_t *segment_reclaim(ebb_heap_t *heap);

/* A segment taken for `heap` onto its lists; a page from it if it has room. */
static ebb_page_t *segment_take_in(ebb_heap_t *heap, ebb_segment_t *seg, size_t slices) {
  if (seg->used_slices == ALL_SLICES) {
    seg_list_push(&heap->segments_full, seg);
    seg->in_full_list = 1;
    return NULL;
  }
  seg_list_push(&heap->segments, seg);
  return segment_try_take(heap, seg, slices, false);
}

/* A page of `slices` slices from a free run of the heap's own segments,
 * with dirty_only one whose memory is resident (NULL: none has room). */
static ebb_page_t *owned_run(ebb_heap_t *heap, size_t slices, bool dirty_only) {
  for (ebb_segment_t *seg = heap->segments; seg; seg = seg->next) {
    ebb_page_t *page = segment_try_take(heap, seg, slices, dirty_only);
    if (page) return page;
  }
  return NULL;
}

static ebb_page_t *reclaimed_resident_run(ebb_heap_t *heap, size_t slices);
static void segment_now_empty(ebb_heap_t *heap, ebb_segment_t *seg);
static void segment_take_abandoned(ebb_heap_t *heap, ebb_segment_t *seg);

ebb_page_t *segment_page_alloc_owned(ebb_heap_t *heap, size_t slices) {
  /* Resident free slices first: taking clean ones while dirty ones wait for
   * their decay would hold both.  An exited thread's segment with such a
   * run counts too. */
  ebb_page_t *page = owned_run(heap, slices, true);
  if (page == NULL && !heap->is_shared) page = reclaimed_resident_run(heap, slices);
  return page ? page : owned_run(heap, slices, false);
}

/* A page of `slices` slices from a segment the heap takes (cached,
 * abandoned, pooled; from the OS only with from_os, else NULL). */
static ebb_page_t *page_alloc_in_taken(ebb_heap_t *heap, size_t slices, bool from_os) {
  for (;;) {
    ebb_segment_t *seg = heap->cached_empty;
    if (seg) {
      heap->cached_empty = NULL;
    } else if (!heap->is_shared && (seg = segment_reclaim(heap)) != NULL) {
      /* reclaimed with its live pages; it may or may not have room */
    } else if ((seg = pool_pop()) != NULL) {
      segment_reset_header(seg, heap, false);
    } else if (!from_os || (seg = segment_from_os(heap)) == NULL) {
      return NULL;
    }
    ebb_page_t *page = segment_take_in(heap, seg, slices);
    if (page) return page;
  }
}

/* A page of `slices` slices from one of the heap's segments, else as
 * page_alloc_in_taken. */
static ebb_page_t *page_alloc_in(ebb_heap_t *heap, size_t slices, bool from_os) {
  ebb_page_t *page = segment_page_alloc_owned(heap, slices);
  return page ? page : page_alloc_in_taken(heap, slices, from_os);
}

/* ---- the medium group: one set of segments for every shared heap ----------
 * The shared heaps' pages all come from the segments of one holder, under
 * one lock, not from a set of segments per shared heap.  Per heap, a slice
 * freed by one class's page could be reused only by the classes of the same
 * heap (a quarter of them), and a segment with one live block stayed that
 * heap's: sh8bench, which goes through the medium classes in turn, touched
 * about 1.9 MiB in each of the four heaps' segments for under 2 MiB live
 * in all, and a small program using four medium sizes mapped four segments.
 * The lock is a leaf, taken inside a shared heap's (a page is taken or given
 * back once per several blocks): under it only slice masks and lists
 * change, and the OS is called outside it. */
/* Two holders, under the one lock: pages of many medium blocks and pages
 * of one large block do not share segments (segment_page_alloc). */
static ebb_heap_t medium_holder, large_holder; /* only their segment lists are used */
static ebb_lock_t medium_group_lock;

static void medium_group_lock_take(void) {
  lock_acquire(&medium_group_lock);
  if (!medium_holder.is_shared) {
    medium_holder.is_shared = large_holder.is_shared = true; /* each keeps one empty segment cached */
    medium_holder.thread_id = large_holder.thread_id = EBB_OWNER_SHARED; /* their pages' owner_thread */
  }
}

/* ---- lent pages: medium pages on a thread's own segments ----------------------
 * A shared heap's new medium page, when the group's segments have no
 * resident free run of its length, takes one of the allocating thread's
 * own segments before a clean run of the group's.  With the group's
 * segments apart, a thread's freed small pages and the group's freed
 * medium pages could not take each other's slices: sh8bench, whose threads
 * go through the small sizes and then the medium ones, each round, kept
 * both resident (about 2.4 MiB each a thread; 11.9 MiB peak against glibc's
 * 6.1).  mimalloc v3's pages all share its arenas' slices.  Taking the
 * thread's runs before the group's resident ones did as well for sh8bench,
 * but left the group's waiting for their decay: thread_task and
 * trace_replay-2t peaked 7-22% higher.
 *
 * The page stays the shared heap's (owner_thread EBB_OWNER_SHARED): the
 * segment's owner skips it wherever it walks its pages (page_is_lent), and
 * the shared heap frees it back like any of its pages, from any thread,
 * under the segment's lock only, and tells the owner (bit 0 of
 * remote_full, the header's, which no page has), which moves the segment
 * to the right list on its next slow path (segment_slices_returned).  An
 * exiting owner abandons the segment with the lent pages still in it;
 * whoever adopts it leaves them alone too.  Only
 * resident runs are lent: a clean run saves nothing over the group's. */
static ebb_heap_t *lender_heap(void) {
  ebb_heap_t *heap = ebb_tls_heap;
  if (heap == &ebb_empty_heap || !heap->is_live || heap->is_shared) return NULL;
  return heap->segments ? heap : NULL;
}

/* Before another segment is taken for the medium pages (pooled or
 * mapped), a medium page is cut shorter (fewer blocks, down to one) to fit
 * a free run of their own: runs of 2-8 slices often fit nowhere once
 * pages of other lengths have come and gone.  thread_task (every size from
 * 8 B to 50 KiB, 0.1% up to 512 KiB, a new thread a round) mapped a fifth
 * segment for them while theirs held 19 free slices, all resident, in runs
 * too short. */
/* A resident run of the other holder's, for a page of `holder` that would
 * otherwise take another segment (under the group's lock).  The page
 * stays in the other holder's segment, which stays that holder's: its run
 * comes back there (segment_page_free goes by the segment's owner).  Its
 * cached empty segment counts too; it goes onto its list to be used. */
static ebb_page_t *borrowed_run(ebb_heap_t *other, size_t slices, size_t min_slices) {
  ebb_page_t *page = owned_run(other, slices, true);
  if (page == NULL && min_slices != slices) page = owned_run(other, min_slices, true);
  ebb_segment_t *seg = other->cached_empty;
  if (page != NULL || seg == NULL) return page;
  other->cached_empty = NULL;
  seg_list_push(&other->segments, seg);
  page = segment_try_take(other, seg, slices, true);
  if (page == NULL && min_slices != slices) page = segment_try_take(other, seg, min_slices, true);
  if (page == NULL) { /* purged meanwhile: cached again, as it was */
    seg_list_remove(&other->segments, seg);
    other->cached_empty = seg;
  }
  return page;
}

static ebb_page_t *medium_page_alloc(size_t slices, size_t min_slices, bool one_block, bool may_lend) {
  ebb_heap_t *holder = one_block ? &large_holder : &medium_holder;
  ebb_heap_t *lender = may_lend && !one_block ? lender_heap() : NULL;
  ebb_page_t *page = NULL;
  medium_group_lock_take();
  /* Resident runs first, the group's then this thread's; clean ones last. */
  for (size_t len = slices;; len = min_slices) {
    page = owned_run(holder, len, true);
    if (page == NULL && lender) page = owned_run(lender, len, true); /* marked by segment_page_alloc */
    if (page == NULL) page = owned_run(holder, len, false);
    if (page != NULL || len == min_slices) break;
  }
  /* Then the holder's cached empty segment, the other holder's resident
   * runs, and only then a pooled segment (page_alloc_in_taken). */
  if (page == NULL && holder->cached_empty != NULL) page = page_alloc_in_taken(holder, slices, false);
  if (page == NULL) page = borrowed_run(one_block ? &medium_holder : &large_holder, slices, min_slices);
  if (page == NULL) page = page_alloc_in_taken(holder, slices, false);
  lock_release(&medium_group_lock);
  if (page) return page;
  ebb_segment_t *seg = segment_from_os(holder); /* mmap outside the lock */
  if (seg == NULL) return NULL;
  medium_group_lock_take();
  page = segment_take_in(holder, seg, slices);
  lock_release(&medium_group_lock);
  return page;
}

/* In the shared group, pages of one large block and pages of many medium
 * blocks come from separate segments.  A large block is written whole and
 * its run comes back whole, for the next large block; a medium page spans
 * up to 8 blocks but is touched one block at a time from its start.  In
 * the same segments, each took the other's freed runs (resident runs come
 * first): a 1 MiB block landed on the slices of medium pages, where only
 * their first blocks had been resident, and medium pages on the 1 MiB
 * block's old run, round after round, so both stayed resident: `tiny` (one
 * 1 MiB block and a few 16-64 KiB ones a round) went from 4.0 to 5.9 MiB
 * peak RSS when its large blocks moved into the group; taking large runs
 * from the segments' tops and medium ones from their bottoms got 5.1, as
 * the medium pages' spans reached the top. */
ebb_page_t *segment_page_alloc(ebb_heap_t *heap, size_t slices, size_t min_slices, bool one_block) {
  if (heap->is_shared) {
    /* The sampled heap's pages (sample.c) come from the group's alone. */
    ebb_page_t *page = medium_page_alloc(slices, min_slices, one_block, heap->thread_id == EBB_OWNER_SHARED);
    if (page != NULL) page->owner_thread = heap->thread_id; /* the sampled heap's mark */
    return page;
  }
  return page_alloc_in(heap, slices, true);
}

static void segment_now_empty(ebb_heap_t *heap, ebb_segment_t *seg) {
  heap_list_remove(heap, seg);
  if (heap->cached_empty == NULL && (heap->is_live || heap->is_shared)) {
    heap->cached_empty = seg;
  } else {
    pool_push(seg);
  }
}

/* Give a page's slices back: cleared (later frees there must fail the
 * check) and stamped with the time, so they are purged after the decay. */
static void segment_release_run(ebb_segment_t *seg, ebb_page_t *page, uint32_t now) {
  size_t first = page_index(seg, page);
  uint64_t mask = run_mask(first, page->slice_count);
  page_harvest_stats(page);
  lock_acquire(&seg->lock);
  page_descriptors_clear(seg, page); /* under the lock: see take_run */
  stamp_slices(seg, mask, now);
  seg->used_slices &= ~mask;
  slice_bytes_add(&free_resident_bytes, mask, true); /* a page's slices are all dirty */
  slice_bytes_add(&used_slice_bytes, mask, false);
  lock_release(&seg->lock);
}

/* Slices of seg, one of the heap's segments, came back (a page of its
 * own, or a lent page's run): a full segment has room again, an empty one
 * goes where empty ones go. */
void segment_slices_returned(ebb_heap_t *heap, ebb_segment_t *seg) {
  if (seg->in_full_list && seg->used_slices != ALL_SLICES) {
    seg_list_remove(&heap->segments_full, seg);
    seg_list_push(&heap->segments, seg);
    seg->in_full_list = 0;
  }
  if (seg->used_slices == HEADER_SLICES) segment_now_empty(heap, seg);
}

static void page_free_in(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page) {
  segment_release_run(seg, page, os_clock_ms());
  segment_slices_returned(heap, seg);
}

void segment_page_free(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page) {
  if (!heap->is_shared) {
    page_free_in(heap, seg, page);
    return;
  }
  /* A holder's segment stays its holder's while it has pages; a thread's
   * segment never becomes a holder's while a lent page is in it. */
  ebb_heap_t *seg_owner = atomic_load_explicit(&seg->owner, memory_order_acquire);
  if (seg_owner != &medium_holder && seg_owner != &large_holder) {
    /* A lent page: its run goes back, and the owner is told to put the
     * segment on the right list, when it next looks (never here, even
     * on the owner's own thread: this may run inside its walk of them,
     * from a purge pass that empties a medium cache). */
    segment_release_run(seg, page, os_clock_ms());
    if (atomic_fetch_or_explicit(&seg->remote_full, EBB_REMOTE_FULL_LENT, memory_order_seq_cst) == 0)
      segment_notify_remote(seg);
    return;
  }
  medium_group_lock_take(); /* the segment's owner is its holder, and stays */
  page_free_in(atomic_load_explicit(&seg->owner, memory_order_relaxed), seg, page);
  lock_release(&medium_group_lock);
}

/* A reclaimed segment onto the heap's lists: full, with room, or (empty)
 * to the pool, or kept as the heap's cached empty segment if keep_empty. */
static void segment_adopt(ebb_heap_t *heap, ebb_segment_t *seg, bool keep_empty) {
  if (seg->used_slices == HEADER_SLICES) {
    if (keep_empty && heap->cached_empty == NULL) heap->cached_empty = seg;
    else pool_push(seg);
  } else if (seg->used_slices == ALL_SLICES) {
    seg_list_push(&heap->segments_full, seg);
    seg->in_full_list = 1;
  } else {
    seg_list_push(&heap->segments, seg);
  }
}

/* Adopt every abandoned segment into `heap` (ebb_collect(true) and
 * malloc_trim): what exited threads' blocks left free can then be released
 * by the heap's own collect, instead of waiting for a thread that needs a
 * segment. */
void segments_reclaim_all(ebb_heap_t *heap) {
  ebb_segment_t *seg;
  while ((seg = segment_reclaim(heap)) != NULL) segment_adopt(heap, seg, false);
}

static void release_cached_empty(ebb_heap_t *heap) {
  if (heap->cached_empty) {
    pool_push(heap->cached_empty);
    heap->cached_empty = NULL;
  }
}

void segments_release_cached(ebb_heap_t *heap) {
  if (!heap->is_shared) {
    release_cached_empty(heap);
    return;
  }
  medium_group_lock_take();
  release_cached_empty(&medium_holder);
  release_cached_empty(&large_holder);
  lock_release(&medium_group_lock);
}

/* ---- abandonment: a thread exits, its segments go to the process ---------- */
void segments_abandon(ebb_heap_t *heap) {
  heap_reattach_all(heap); /* its sparse pages come back first */
  ebb_segment_t *lists[2] = {heap->segments, heap->segments_full};
  heap->segments = heap->segments_full = NULL;
  uint32_t now = os_clock_ms();
  for (int l = 0; l < 2; l++) {
    ebb_segment_t *seg = lists[l];
    while (seg) {
      ebb_segment_t *next = seg->next;
      seg->in_full_list = 0;
      FOR_EACH_PAGE(seg, page) {
        if (page_is_lent(page)) continue; /* the shared heap's */
        page_collect_all(page);
        page_mark_full(page, false);
        atomic_store_explicit(&page->in_full, 0, memory_order_relaxed);
        page->next = page->prev = NULL;
        page_set_owner_thread(page, 0);
        if (page_used(page) == 0) segment_release_run(seg, page, now);
      }
      if (seg->used_slices == HEADER_SLICES) {
        pool_push(seg);
      } else {
        atomic_store_explicit(&seg->owner, NULL, memory_order_release);
        seg->abandoned_stamp = now;
        seg->abandoned_by = heap->birth;
        seg->abandoned_purged = 0;
        lock_acquire(&abandoned_lock);
        abandoned_push_back(seg);
        lock_release(&abandoned_lock);
      }
      seg = next;
    }
  }
  segments_release_cached(heap);
  purge_notify();
}

/* Take an abandoned segment in: collect what other threads freed into it,
 * give back its empty pages, and queue the rest in this heap. */
static void segment_take_abandoned(ebb_heap_t *heap, ebb_segment_t *seg) {
  seg->next = seg->prev = NULL;
  atomic_store_explicit(&seg->owner, heap, memory_order_seq_cst); /* as in segment_reset_header */
  atomic_store_explicit(&seg->remote_full, 0, memory_order_seq_cst);
  uint32_t now = os_clock_ms();
  FOR_EACH_PAGE(seg, page) {
    if (page_is_lent(page)) continue;
    page_set_owner_thread(page, heap->thread_id);
    page_collect_all(page);
    if (page_used(page) == 0) {
      segment_release_run(seg, page, now);
    } else {
      page_enqueue(heap, page); /* puts it on the full list if it has no room */
    }
  }
}

/* Adopt the oldest abandoned segment. */
static ebb_segment_t *segment_reclaim(ebb_heap_t *heap) {
  if (abandoned_list == NULL) return NULL; /* racy peek; the lock decides */
  lock_acquire(&abandoned_lock);
  ebb_segment_t *seg = abandoned_list;
  if (seg) abandoned_unlink(seg);
  lock_release(&abandoned_lock);
  if (seg == NULL) return NULL;
  segment_take_abandoned(heap, seg);
  return seg;
}

/* A thread freeing into an exited thread's segment takes it over there and
 * then, so that this free and the next ones into it are its own, not
 * remote.  A worker that carries on its predecessor's work (larson, whose
 * threads hand their blocks to a new thread and exit; a pool worker
 * freeing what an exited one made) otherwise freed every inherited block
 * into its cache of other threads' blocks, allocated from that cache, and
 * freed those blocks there again: in mimalloc-bench's larson (2 threads)
 * 27-47% of all frees were remote, and ebb ran at half of tcmalloc's
 * throughput. */
bool segment_reclaim_on_free(ebb_heap_t *heap, ebb_segment_t *seg) {
  if (!seg->abandoned_listed) return false; /* racy peek; the lock decides */
  lock_acquire(&abandoned_lock);
  bool listed = seg->abandoned_listed;
  if (listed) abandoned_unlink(seg);
  lock_release(&abandoned_lock);
  if (!listed) return false;
  segment_take_abandoned(heap, seg);
  segment_adopt(heap, seg, true);
  return true;
}

/* A thread that has no resident free run of its own for a page takes in
 * an exited thread's segment that has one, and the page from there, before
 * it touches clean slices of its own: those runs are pages that emptied
 * after their thread exited (its successors freed the blocks), and left
 * there they waited for the decay while live threads faulted in new ones.
 * mimalloc-bench's larson (2 threads, each replaced by a new one every few
 * ms that inherits its blocks) took 1,541 clean runs in 5 s, purged 143 MiB
 * and peaked at 36 MiB for 7 MiB live.  Only a successor takes such a
 * segment this way: a thread whose heap came after the heap of the thread
 * that left it (heaps are numbered as threads take them).  A long-lived
 * thread beside short-lived ones (thread_task: main, and a new worker a
 * round) otherwise took each worker's segment from the next worker, which
 * mapped another: 18.7 -> 20.1 MiB, 21 runs each.  The rule compared
 * clocks first (the heap taken after the thread exited), but larson's
 * threads start their successor and then exit, so the successor's heap
 * is made first, and it was kept off its predecessor's runs whenever the
 * clock ticked between the two: numbering instead took larson from 32.0 to
 * 30.0 MiB, this repo's larson-2t from 20.9 to 17.1 and trace_replay-2t
 * from 74.6 to 66.4.  Of the first EBB_RECLAIM_LOOK abandoned segments;
 * the masks are a hint, read unlocked. */
#define EBB_RECLAIM_LOOK 8

static bool abandoned_before(const ebb_segment_t *seg, const ebb_heap_t *heap) {
  return (int32_t)(heap->birth - seg->abandoned_by) > 0;
}

static ebb_page_t *reclaimed_resident_run(ebb_heap_t *heap, size_t slices) {
  if (abandoned_list == NULL) return NULL; /* racy peek; the lock decides */
  lock_acquire(&abandoned_lock);
  ebb_segment_t *seg = abandoned_list, *found = NULL;
  for (int looked = 0; seg && looked < EBB_RECLAIM_LOOK && !found; seg = seg->next, looked++)
    if (abandoned_before(seg, heap) && find_free_run(slices_to_avoid(seg, true), slices) >= 0) found = seg;
  if (found) abandoned_unlink(found);
  lock_release(&abandoned_lock);
  if (found == NULL) return NULL;
  /* Its empty pages' runs come free; the run seen stays free (only its
   * residency may have been purged meanwhile), so it is not full. */
  segment_take_abandoned(heap, found);
  seg_list_push(&heap->segments, found); /* empty or not: a page goes in at once */
  ebb_page_t *page = segment_try_take(heap, found, slices, true);
  if (page == NULL) page = segment_try_take(heap, found, slices, false); /* purged meanwhile */
  if (page == NULL && found->used_slices == HEADER_SLICES) segment_now_empty(heap, found);
  return page;
}

bool segments_reclaim_for_class(ebb_heap_t *heap, unsigned cls) {
  for (int tries = 0; tries < 4; tries++) {
    ebb_segment_t *seg = segment_reclaim(heap);
    if (seg == NULL) return false;
    segment_adopt(heap, seg, true);
    if (heap->queues[cls].first != NULL) return true;
  }
  return false;
}

/* ---- abandoned segments between reclaims ---------------------------------------
 * A segment of an exited thread waits on the abandoned list until a thread
 * needs memory, and meanwhile other threads keep freeing blocks into it
 * (a pool of workers that shrank, thread-per-connection servers): without
 * this pass those frees waited on their pages' remote lists, and a process
 * whose threads had all exited held their memory for good.  The purger takes
 * the whole list (threads that want a segment meanwhile take another),
 * collects every page, gives back empty ones (their slices decay like any
 * free slice), and, once a segment has had no frees for the decay, purges
 * the free OS pages inside its pages that still hold live blocks. */
size_t segments_purge_abandoned(uint32_t now, long long decay_ms, bool force) {
  if (abandoned_list == NULL) return 0; /* racy peek; the lock decides */
  lock_acquire(&abandoned_lock);
  ebb_segment_t *list = abandoned_list;
  for (ebb_segment_t *seg = list; seg; seg = seg->next) seg->abandoned_listed = 0;
  abandoned_list = abandoned_tail = NULL;
  lock_release(&abandoned_lock);
  ebb_segment_t *keep = NULL, *keep_last = NULL;
  size_t left = 0;
  while (list) {
    ebb_segment_t *seg = list;
    list = seg->next;
    bool freed_into = false;
    FOR_EACH_PAGE(seg, page) {
      if (page_is_lent(page)) continue;
      if (atomic_load_explicit(&page->thread_free, memory_order_relaxed) != 0 ||
          atomic_load_explicit(&page->remote_holes, memory_order_relaxed) != 0) {
        page_collect_all(page);
        freed_into = true;
      }
      if (page_used(page) == 0) segment_release_run(seg, page, now);
    }
    if (seg->used_slices == HEADER_SLICES) {
      pool_push(seg);
      continue;
    }
    if (freed_into) {
      seg->abandoned_stamp = now;
      seg->abandoned_purged = 0;
    }
    if (!seg->abandoned_purged) {
      if (force || decay_reached(now, seg->abandoned_stamp, decay_ms)) {
        FOR_EACH_PAGE(seg, page) if (!page_is_lent(page)) page_purge_free_units(page);
        seg->abandoned_purged = 1;
      } else {
        left += EBB_SLICE_SIZE;
      }
    }
    seg->next = NULL;
    if (keep_last) keep_last->next = seg;
    else keep = seg;
    keep_last = seg;
  }
  if (keep) {
    lock_acquire(&abandoned_lock); /* older than any abandoned meanwhile: in front */
    keep_last->next = abandoned_list;
    if (abandoned_list) abandoned_list->prev = keep_last;
    else abandoned_tail = keep_last;
    abandoned_list = keep;
    for (ebb_segment_t *seg = keep, *prev = NULL; seg != keep_last->next; prev = seg, seg = seg->next) {
      seg->prev = prev;
      seg->abandoned_listed = 1;
    }
    lock_release(&abandoned_lock);
  }
  return left;
}

void segment_locks_prefork(void) {
  lock_acquire(&medium_group_lock);
  lock_acquire(&abandoned_lock);
  lock_acquire(&pool_lock);
  lock_acquire(&huge_cache_lock);
}

void segment_locks_postfork(bool child) {
  if (child) {
    lock_reset(&huge_cache_lock);
    lock_reset(&pool_lock);
    lock_reset(&abandoned_lock);
    lock_reset(&medium_group_lock);
    /* a thread that no longer exists may have held one */
    for (ebb_segment_t *seg = atomic_load(&ebb_all_segments); seg; seg = seg->all_next)
      lock_reset(&seg->lock);
  } else {
    lock_release(&huge_cache_lock);
    lock_release(&pool_lock);
    lock_release(&abandoned_lock);
    lock_release(&medium_group_lock);
  }
}

/* ---- huge blocks ------------------------------------------------------------ */
/* Layout: a segment header at the mapping's 4 MiB-aligned start, the block
 * at `offset` (a page, or the alignment).  Alignments of 4 MiB and more put
 * the block exactly one segment past the header ("shifted").
 *
 * Freed huge mappings (not shifted) stay mapped, resident, in a cache, and
 * the next huge allocation takes the best fit: a program that frees and
 * allocates multi-MiB buffers in turn pays neither the mapping nor the page
 * faults again (the faults were most of the time of such loops: 3.3M minor
 * faults for `large -t 2 -s 0.3` when the cache held 64 MiB, against 0.1M
 * for tcmalloc, which keeps every freed span).  A cached mapping larger than
 * what is asked is split on a 4 MiB boundary: the front serves the block,
 * the rest stays cached; a mapping
 * freed next to a cached one is merged with it, so splitting does not
 * fragment the cache.  Like free slices, cached mappings are kept for the
 * decay delay only: the purger unmaps them after it (at once with decay 0,
 * near the memory limit, or on ebb_collect(true)). */
/* Budget: with 256 MiB, realloc_grow (vectors grown to 1-64 MiB, 2
 * threads) took 8.3 s and 556k faults; with 512 MiB or more, 2.4 s and
 * 157k, at 580-616 MiB peak RSS against 424 (measured when realloc still
 * copied a growing block into a cached mapping; see huge_realloc).  The
 * decay, and the memory limit, bound what it holds when the program stops
 * reusing it. */
#define EBB_HUGE_CACHE_BYTES ((size_t)1 << 30)
#define EBB_HUGE_CACHE_SLOTS 64
static struct { uint8_t *base; size_t size; uint32_t stamp; } huge_cache[EBB_HUGE_CACHE_SLOTS];
static size_t huge_cache_count, huge_cache_bytes;

static size_t round_up(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }
#define EBB_HUGE_PAGE_SIZE ((size_t)2 << 20) /* a page-table page's reach (x86-64, arm64 with 4 KiB pages) */

/* Add a mapping, merging it with a cached neighbour; false if it does not
 * fit.  Called with the lock held. */
static bool huge_cache_insert_locked(uint8_t *base, size_t size, uint32_t stamp) {
  for (size_t i = 0; i < huge_cache_count; i++) {
    if (huge_cache[i].base + huge_cache[i].size == base) {
      huge_cache[i].size += size;
    } else if (base + size == huge_cache[i].base) {
      huge_cache[i].base = base;
      huge_cache[i].size += size;
    } else {
      continue;
    }
    if ((int32_t)(stamp - huge_cache[i].stamp) > 0) huge_cache[i].stamp = stamp;
    huge_cache_bytes += size;
    return true;
  }
  if (huge_cache_count == EBB_HUGE_CACHE_SLOTS) return false;
  huge_cache[huge_cache_count].base = base;
  huge_cache[huge_cache_count].size = size;
  huge_cache[huge_cache_count].stamp = stamp;
  huge_cache_count++;
  huge_cache_bytes += size;
  return true;
}

static bool huge_cache_put(uint8_t *base, size_t size) {
  if (ebb_opt.decay_ms == 0) return false;
  lock_acquire(&huge_cache_lock);
  bool fits = huge_cache_bytes + size <= EBB_HUGE_CACHE_BYTES &&
              huge_cache_insert_locked(base, size, os_clock_ms());
  lock_release(&huge_cache_lock);
  return fits;
}

/* A cached mapping for a block needing `size` bytes of mapping, or NULL.
 * Best fit, split if larger; if none is big enough, the largest grows
 * (with `grow`; else NULL).  *got is the mapping's size: `size`
 * rounded up to 4 MiB at most.  The pages past `size` are not purged: they
 * belong to the block (its usable size), and purging them cost a page fault
 * on each when the mapping served a larger block next (a loop of 64 KiB-8
 * MiB blocks, 2 threads: 1.09M faults and 8.2 s with the purge, 21k faults
 * and 0.22 s without, peak RSS 80 against 87 MiB). */
static uint8_t *huge_cache_take(size_t size, bool grow, size_t *got) {
  if (huge_cache_count == 0) return NULL; /* racy peek; the lock decides */
  lock_acquire(&huge_cache_lock);
  if (huge_cache_count == 0) { /* emptied meanwhile (the purger) */
    lock_release(&huge_cache_lock);
    return NULL;
  }
  size_t best = EBB_HUGE_CACHE_SLOTS, largest = 0;
  for (size_t i = 0; i < huge_cache_count; i++) {
    if (huge_cache[i].size >= size &&
        (best == EBB_HUGE_CACHE_SLOTS || huge_cache[i].size < huge_cache[best].size))
      best = i;
    if (huge_cache[i].size > huge_cache[largest].size) largest = i;
  }
  if (best == EBB_HUGE_CACHE_SLOTS) {
    if (!grow) {
      lock_release(&huge_cache_lock);
      return NULL;
    }
    best = largest;
  }
  uint8_t *base = huge_cache[best].base;
  size_t have = huge_cache[best].size;
  uint32_t stamp = huge_cache[best].stamp;
  huge_cache[best] = huge_cache[--huge_cache_count];
  huge_cache_bytes -= have;
  size_t keep = round_up(size, EBB_SEGMENT_SIZE);
  if (have > keep) { /* the rest stays cached: it starts on a segment boundary */
    if (!huge_cache_insert_locked(base + keep, have - keep, stamp)) {
      lock_release(&huge_cache_lock);
      os_unmap(base + keep, have - keep);
    } else {
      lock_release(&huge_cache_lock);
    }
    have = keep;
  } else {
    lock_release(&huge_cache_lock);
  }
  if (have < size) {
    /* Grow where it stands, or move its pages into a larger range (both
     * 4 MiB-aligned: the kernel moves whole page tables, and the pages
     * cost nothing on their next touch; moved to an address of another
     * offset in 2 MiB, each cost about 5 us then, half a fresh page's
     * fault, on this project's VMs).  Its resident pages serve the block
     * and only the rest is faulted in.  Mapping fresh memory instead left
     * the cache as it was, so every request larger than all its mappings
     * grew it: large_loop at 2 threads peaked at 89 MiB, 70 of them cached
     * at exit; grown, 58-65 MiB, at the same speed (tcmalloc: 58). */
    uint8_t *grown = purge_limit_admit(size - have)
                         ? os_remap_aligned(base, have, size, EBB_SEGMENT_SIZE, 0)
                         : NULL;
    if (grown == NULL) {
      if (!huge_cache_put(base, have)) os_unmap(base, have);
      return NULL;
    }
    base = grown;
    have = size;
  }
  *got = have;
  return base;
}

size_t huge_cache_decay(uint32_t now, long long decay_ms, bool force) {
  if (huge_cache_count == 0) return 0; /* racy peek */
  for (;;) {
    lock_acquire(&huge_cache_lock);
    size_t i = 0;
    while (i < huge_cache_count &&
           !(force || decay_reached(now, huge_cache[i].stamp, decay_ms)))
      i++;
    if (i == huge_cache_count) {
      size_t left = huge_cache_bytes;
      lock_release(&huge_cache_lock);
      return left;
    }
    uint8_t *base = huge_cache[i].base;
    size_t size = huge_cache[i].size;
    huge_cache[i] = huge_cache[--huge_cache_count];
    huge_cache_bytes -= size;
    lock_release(&huge_cache_lock);
    os_unmap(base, size);
  }
}

size_t huge_cache_bytes_held(void) { return huge_cache_bytes; }

void *huge_alloc(size_t size, size_t alignment, bool zero) {
  size_t offset, map_align;
  bool shifted = alignment >= EBB_SEGMENT_SIZE;
  if (shifted) {
    offset = EBB_SEGMENT_SIZE;
    map_align = alignment;
  } else {
    /* The block starts past the whole header: a pointer into the block's
     * first 4 MiB is looked up in the header's descriptors, which must be
     * ebb's (zero: rejected), never the user's bytes. */
    offset = round_up(sizeof(ebb_segment_t), alignment > ebb_os_page_size ? alignment
                                                                           : ebb_os_page_size);
    map_align = EBB_SEGMENT_SIZE;
  }
  if (size > EBB_MAX_REQUEST || size > EBB_MAX_REQUEST - offset) {
    errno = ENOMEM;
    return NULL;
  }
  /* At least one page past the header, even for size 0: a block address
   * must lie inside its own mapping (past its end may be another segment). */
  size_t total = offset + round_up(size ? size : 1, ebb_os_page_size);
  size_t need = total; /* the block's usable size is need - offset (ebb_good_size) */
  /* A block of 2 MiB or less (a large block grown by realloc, alloc.c)
   * takes a cached mapping too, a piece of up to 4 MiB kept resident for
   * it, into which its next growths go without a remap.  Mapping its own
   * instead left the cache to fill with the freed ones' mappings, which
   * only larger blocks could take: realloc_grow-2t peaked at 950 MiB, not
   * 190. */
  uint8_t *base = shifted ? NULL : huge_cache_take(need, true, &total);
  if (base != NULL) {
    memset(base, 0, sizeof(ebb_segment_t)); /* a fresh header */
    if (zero) memset(base + offset, 0, size);
  } else {
    /* shifted: the block (one segment past the base) is what must be aligned */
    if (!purge_limit_admit(total)) return NULL;
    base = os_map_aligned(total, map_align, shifted ? offset : 0);
    if (base == NULL) return NULL; /* fresh mappings read as zeros */
  }
  atomic_fetch_add_explicit(&ebb_huge_bytes, total, memory_order_relaxed);
  atomic_fetch_add_explicit(&ebb_huge_count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&ebb_huge_usable_bytes, need - offset, memory_order_relaxed);
  atomic_fetch_add_explicit(&ebb_stat_huge_allocs, 1, memory_order_relaxed);
  ebb_segment_t *seg = (ebb_segment_t *)base;
  seg->kind = EBB_SEGMENT_HUGE;
  seg->map_base = base;
  seg->map_size = total;
  seg->used_slices = ALL_SLICES;
  ebb_page_t *page = &seg->pages[0];
  page->start = base + offset;
  page_set_geometry(page, need - offset, 1);
  page->sparse_mark = 0;
  page->used_minus_one = 0; /* one block in use */
  page->purged = size;
  atomic_fetch_add_explicit(&ebb_huge_requested_bytes, size, memory_order_relaxed);
  page->capacity = 1;
  page->slice_count = 1;
  if (!shifted) {
    size_t slice = offset >> EBB_SLICE_SHIFT;
    if (slice) seg->pages[slice].head_delta = slice * sizeof(ebb_page_t);
    segmap_set((uintptr_t)base, EBB_SEGMAP_SEGMENT);
  } else {
    segmap_set((uintptr_t)page->start, EBB_SEGMAP_SHIFTED);
  }
  return page->start;
}

ebb_segment_t *huge_segment_of_shifted(const void *p) {
  return (ebb_segment_t *)(((uintptr_t)p & ~(uintptr_t)EBB_SEGMENT_MASK) - EBB_SEGMENT_SIZE);
}

void huge_free(ebb_segment_t *seg, ebb_page_t *page) {
  bool shifted = page->start == seg->map_base + EBB_SEGMENT_SIZE;
  segmap_set(shifted ? (uintptr_t)page->start : (uintptr_t)seg, EBB_SEGMAP_NONE);
  atomic_fetch_sub_explicit(&ebb_huge_bytes, seg->map_size, memory_order_relaxed);
  atomic_fetch_sub_explicit(&ebb_huge_count, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&ebb_huge_usable_bytes, page->block_size, memory_order_relaxed);
  atomic_fetch_sub_explicit(&ebb_huge_requested_bytes, page->purged, memory_order_relaxed);
  atomic_fetch_add_explicit(&ebb_stat_huge_frees, 1, memory_order_relaxed);
  if (shifted || !huge_cache_put(seg->map_base, seg->map_size))
    os_unmap(seg->map_base, seg->map_size);
  else
    purge_notify();
}

/* Grow or shrink a (not shifted) huge block by remapping its pages. */
void *huge_realloc(ebb_segment_t *seg, ebb_page_t *page, size_t size) {
  size_t offset = (size_t)(page->start - seg->map_base);
  if (size > EBB_MAX_REQUEST - offset) {
    errno = ENOMEM;
    return NULL;
  }
  size_t total = offset + round_up(size, ebb_os_page_size);
  /* Within its mapping (a cached one may be up to a segment larger than
   * the block), less than a segment short of its end: no remap. */
  if (total <= seg->map_size && seg->map_size - total < EBB_SEGMENT_SIZE) {
    size_t usable = total - offset;
    if (usable > page->block_size)
      atomic_fetch_add_explicit(&ebb_huge_usable_bytes, usable - page->block_size, memory_order_relaxed);
    else
      atomic_fetch_sub_explicit(&ebb_huge_usable_bytes, page->block_size - usable, memory_order_relaxed);
    page->block_size = usable;
    atomic_fetch_add_explicit(&ebb_huge_requested_bytes, size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ebb_huge_requested_bytes, page->purged, memory_order_relaxed);
    page->purged = size;
    return page->start;
  }
  /* Growing: a cached mapping at least as large as the growth is resident,
   * and its pages are moved onto the block's new end (page tables move;
   * nothing is copied or faulted in).  Growing into fresh pages instead
   * costs a fault a page (about 6 us on this project's VMs); copying the
   * block into a cached mapping that fits, as ebb did before, held the
   * block twice while it moved: realloc_grow (vectors grown by 1.5-2x up
   * to 64 MiB) peaked at 1.6-1.7x glibc's RSS that way. */
  size_t old_map_size = seg->map_size, spare_size = 0;
  /* The cached pages go at a 2 MiB boundary (the cache's mappings start on
   * one): moved to another offset in 2 MiB, each cost a hidden fault on its
   * next touch (see "Huge blocks" in README).  The gap before it is fresh. */
  size_t spare_at = round_up(old_map_size, EBB_HUGE_PAGE_SIZE);
  uint8_t *spare = total > spare_at ? huge_cache_take(total - spare_at, false, &spare_size) : NULL;
  if (spare != NULL) total = spare_at + spare_size; /* up to a segment more: the block's slack */
  size_t fresh = spare != NULL ? spare_at - old_map_size : total > old_map_size ? total - old_map_size : 0;
  uint8_t *old_base = seg->map_base;
  uint8_t *base = fresh == 0 || purge_limit_admit(fresh)
                      ? os_remap_aligned(old_base, old_map_size, total, EBB_SEGMENT_SIZE, 0)
                      : NULL;
  if (base == NULL) { /* the caller moves the block, or fails */
    if (spare != NULL && !huge_cache_put(spare, spare_size)) os_unmap(spare, spare_size);
    return NULL;
  }
  /* Refused, the spare is given up and the block's end stays fresh memory.
   * (mremap moves a range made of several mappings, as a grown block is,
   * only on recent kernels; elsewhere the next growth fails there and the
   * caller copies the block, as it did before.) */
  if (spare != NULL && !os_move_over(spare, spare_size, base + spare_at)) os_unmap(spare, spare_size);
  if (base != old_base) {
    segmap_set((uintptr_t)old_base, EBB_SEGMAP_NONE);
    segmap_set((uintptr_t)base, EBB_SEGMAP_SEGMENT);
  }
  seg = (ebb_segment_t *)base;
  page = &seg->pages[0];
  if (total > seg->map_size)
    atomic_fetch_add_explicit(&ebb_huge_bytes, total - seg->map_size, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&ebb_huge_bytes, seg->map_size - total, memory_order_relaxed);
  if (total - offset > page->block_size)
    atomic_fetch_add_explicit(&ebb_huge_usable_bytes, total - offset - page->block_size, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&ebb_huge_usable_bytes, page->block_size - (total - offset), memory_order_relaxed);
  seg->map_base = base;
  seg->map_size = total;
  page->start = base + offset;
  page->block_size = total - offset;
  atomic_fetch_add_explicit(&ebb_huge_requested_bytes, size, memory_order_relaxed);
  atomic_fetch_sub_explicit(&ebb_huge_requested_bytes, page->purged, memory_order_relaxed);
  page->purged = size;
  return page->start;
}
