/* Giving memory back: decay, sparse pages, the background purger, and the
 * memory limit.
 *
 * What ebb holds free, and how it goes back to the OS:
 *  - free slices of segments (pages that emptied, empty segments in the
 *    pool): each slice remembers when it was freed; once it has been free
 *    for decay_ms, the purger madvises it (segment.c: segment_purge_free);
 *  - sparse pages: a page that was full and is now down to an eighth of its
 *    blocks is handed by its owner to the purger (the owner's free path
 *    traps once, page.c).  After decay_ms the purger gives back every purge
 *    unit (an OS page, or 1/64 of a bigger page) that holds no live block.
 *    The owner takes the page back when it needs one of that class;
 *  - cached huge mappings: unmapped after decay_ms;
 *  - and, as the process grows, free slices beyond an eighth of the slices
 *    in use, oldest first, before their decay (the pressure purge below).
 *
 * The purger runs on a background thread, started the first time ebb holds
 * more than a few MiB and something is freed, so an idle process gives its
 * memory back without calling ebb; with background=0 (or if the thread
 * cannot be made) the same pass runs from the allocator's slow paths.  The
 * thread sleeps on a futex while there is nothing to purge.  Around fork,
 * the pass's lock is held, so no pass is half done in the child, which
 * starts its own purger when it needs one.
 *
 * Near the memory limit (90% of it, by the process's RSS) every pass
 * ignores the decay, and mapping more memory first purges everything free;
 * with hard_limit, a mapping that would pass the limit fails with ENOMEM. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

_Atomic(ebb_heap_t *) ebb_all_heaps;

static ebb_lock_t purger_lock; /* held by a pass, and by whoever takes all sparse pages back */
enum { PURGER_NONE, PURGER_STARTING, PURGER_RUNNING, PURGER_INLINE };
static _Atomic int purger_state;
static _Atomic uint32_t purger_seq; /* futex word: bumped to wake the purger */
static _Atomic int purger_idle; /* asleep with nothing to do */
static _Atomic uint32_t last_inline_pass;
_Atomic bool ebb_purge_inline; /* no purger thread: passes run from the slow paths */
static size_t memory_limit;         /* in effect: the option, else the cgroup's */

/* Asleep with nothing to do, the purger still looks this often: remote
 * frees into a sleeping owner's pages do not wake it (that would cost the
 * remote free path a check), and segment_purge_remote finds them. */
#define PURGER_IDLE_LOOK_MS 1000

/* The purger starts once ebb has mapped this much: small programs never get
 * a thread. */
#define PURGER_START_MAPPED ((size_t)8 << 20)

/* ---- purge units of a page ------------------------------------------------- */
size_t page_unit_size(const ebb_page_t *page) {
  size_t span = (size_t)page->slice_count * EBB_SLICE_SIZE;
  size_t unit = span / 64;
  if (unit < ebb_os_page_size) unit = ebb_os_page_size;
  return round_page(unit);
}

/* A page is worth handing to the purger when sparse only if it has at
 * least 8 blocks and more than one purge unit: it traps at 1/8 used. */
uint16_t page_sparse_mark(const ebb_page_t *page) {
  if (page->reserved < 8) return 0;
  if (page_unit_size(page) >= (size_t)page->slice_count * EBB_SLICE_SIZE) return 0; /* one unit */
  return (uint16_t)(page->reserved / 8);
}

/* Plan the purge of the units of the page that no live block touches: mark
 * them purged and take their free blocks off the free list (they become
 * holes, see page_recarve).  Returns the units to give back, for
 * page_purge_apply; the caller owns the page's lists. */
uint64_t page_purge_plan(ebb_page_t *page) {
  if (page->reserved <= 1 || page->start == NULL) return 0;
  page_collect_all(page);
  size_t span = (size_t)page->slice_count * EBB_SLICE_SIZE;
  size_t unit = page_unit_size(page), units = span / unit;
  if (units <= 1) return 0;
  size_t bs = page->block_size, cap = page->capacity;
  uint64_t free_bits[EBB_SLICE_SIZE / 8 / 64] = {0}; /* one bit a block: up to 8192 */
  if (cap > sizeof free_bits * 8) return 0;
  /* Every link is checked before its bit is set: a block of this page,
   * carved, and met once (a second meeting is a cycle: a block freed
   * twice), so a corrupted list is reported, never followed for ever. */
  for (ebb_block_t *b = page->free; b; b = block_next(b)) {
    size_t i = (size_t)((uint8_t *)b - page->start) / bs;
    if (unlikely(!page_is_block_start(page, b) || i >= cap))
      ebb_fatal_pointer("free", b, EBB_REASON_BAD_LINK);
    if (unlikely((free_bits[i / 64] >> (i % 64)) & 1)) ebb_fatal_pointer("free", b, EBB_REASON_LIST_LOOP);
    free_bits[i / 64] |= (uint64_t)1 << (i % 64);
  }
  /* Units touched by a live block: carved, not free, and not a hole. */
  uint64_t all_units = units >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << units) - 1);
  uint64_t live = 0;
  for (size_t i = 0; i < cap; i++) {
    if ((free_bits[i / 64] >> (i % 64)) & 1) continue;
    uint64_t touched = block_units(i, bs, unit);
    if (touched & page->purged) continue; /* a hole: free */
    live |= touched;
  }
  uint64_t purge = all_units & ~live & ~page->purged;
  if (purge == 0) return 0;
  page->purged |= purge;
  /* The free list again, in address order, without the blocks in purged units. */
  ebb_block_t *head = NULL, *tail = NULL;
  for (size_t i = 0; i < cap; i++) {
    if (!((free_bits[i / 64] >> (i % 64)) & 1)) continue;
    uint64_t touched = block_units(i, bs, unit);
    if (touched & page->purged) continue;
    ebb_block_t *b = (ebb_block_t *)(page->start + i * bs);
    if (tail) block_set_next(tail, b);
    else head = b;
    tail = b;
  }
  if (tail) block_set_next(tail, NULL);
  page->free = head;
  page->is_zero = 0;
  return purge;
}

/* Give back the units planned, into `batch`; no lock needed, as long as
 * nothing carves the page's holes or retires the page before the batch is
 * flushed. */
size_t page_purge_apply(ebb_page_t *page, uint64_t purge, ebb_purge_batch_t *batch) {
  size_t span = (size_t)page->slice_count * EBB_SLICE_SIZE;
  size_t unit = page_unit_size(page), units = span / unit, bytes = 0;
  for (uint64_t todo = purge; todo;) {
    size_t first = (size_t)__builtin_ctzll(todo), end = first;
    while (end < units && (todo >> end) & 1) end++;
    os_purge_batch_add(batch, page->start + first * unit, (end - first) * unit);
    bytes += (end - first) * unit;
    todo &= end >= 64 ? 0 : ~(uint64_t)0 << end;
  }
  return bytes;
}

size_t page_purge_free_units(ebb_page_t *page) {
  uint64_t purge = page_purge_plan(page);
  if (purge == 0) return 0;
  ebb_purge_batch_t batch;
  os_purge_batch_init(&batch);
  size_t bytes = page_purge_apply(page, purge, &batch);
  os_purge_batch_flush(&batch);
  return bytes;
}

/* ---- sparse pages ------------------------------------------------------------ */
/* The owner hands a sparse page over: out of its queue, its frees (the
 * owner's too) now take the atomic path. */
void heap_detach_sparse(ebb_heap_t *heap, ebb_page_t *page) {
  page_unqueue(heap, page);
  page_harvest_stats(page);
  page->detached = DETACHED_DIRTY;
  page->stamp = os_clock_ms();
  page_set_owner_thread(page, heap->thread_id | EBB_OWNER_DETACHED);
  lock_acquire(&heap->sparse_lock);
  page_queue_push(&heap->sparse[page->class_idx], page);
  lock_release(&heap->sparse_lock);
  purge_notify();
}

static void reattach(ebb_heap_t *heap, ebb_page_t *page) {
  page->detached = 0;
  page->next = page->prev = NULL;
  page_set_owner_thread(page, heap->thread_id);
  page_collect(page);
}

/* Back in the owner's hands for good: an empty page to its segment, any
 * other (a remote free raced in a block) to its class queue. */
static void take_back(ebb_heap_t *heap, ebb_page_t *page) {
  reattach(heap, page);
  if (page_used(page) == 0) segment_page_free(heap, segment_of(page), page);
  else page_enqueue(heap, page);
}

/* Empty sparse pages go back to their segments; they are the owner's to
 * free.  Called with sparse_lock held; releases it. */
static void retire_sparse_empty_locked(ebb_heap_t *heap) {
  ebb_page_t *list = heap->sparse_empty.first;
  heap->sparse_empty.first = heap->sparse_empty.last = NULL;
  lock_release(&heap->sparse_lock);
  while (list) {
    ebb_page_t *next = list->next;
    take_back(heap, list);
    list = next;
  }
}

/* heap_free_sparse's other cases (internal.h), with sparse_lock held: the
 * purger is working on the page, the block was freed twice, or (used is
 * 1) the page empties and goes back to its segment at once instead of
 * waiting for the purger. */
bool heap_free_sparse_rare(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block) {
  if (page->detached & DETACHED_BUSY) {
    lock_release(&heap->sparse_lock);
    return false;
  }
  if (page_used(page) == 0) {
    lock_release(&heap->sparse_lock);
    ebb_fatal_pointer("free", block, "double free (block freed twice)");
  }
  block_set_next(block, page->local_free);
  page->local_free = block;
  page->used_minus_one--;
  page_queue_remove(&heap->sparse[page->class_idx], page);
  lock_release(&heap->sparse_lock);
  take_back(heap, page);
  purge_notify();
  return true;
}

/* A page of class cls back from the purger, collected (NULL if none, or if
 * the purger is busy with this heap: never wait on the allocation path). */
ebb_page_t *heap_reattach_sparse(ebb_heap_t *heap, unsigned cls) {
  if (heap->sparse[cls].first == NULL && heap->sparse_empty.first == NULL) return NULL; /* racy peek */
  if (!lock_try(&heap->sparse_lock)) return NULL;
  ebb_page_t *page = heap->sparse[cls].last; /* the most recently detached: warmest */
  if (page) page_queue_remove(&heap->sparse[cls], page);
  retire_sparse_empty_locked(heap);
  if (page) reattach(heap, page);
  return page;
}

/* Every sparse page back (thread exit, ebb_collect(true)). */
void heap_reattach_all(ebb_heap_t *heap) {
  lock_acquire(&purger_lock);
  lock_acquire(&heap->sparse_lock);
  ebb_page_queue_t all = {NULL, NULL};
  for (unsigned c = 0; c < EBB_CLASS_COUNT; c++) {
    ebb_page_t *page;
    while ((page = heap->sparse[c].first) != NULL) {
      page_queue_remove(&heap->sparse[c], page);
      page_queue_push(&all, page);
    }
  }
  retire_sparse_empty_locked(heap);
  lock_release(&purger_lock);
  ebb_page_t *page;
  while ((page = all.first) != NULL) {
    page_queue_remove(&all, page);
    take_back(heap, page);
  }
}

/* One class's sparse pages of one heap: collect what was freed into them,
 * purge those whose last free is older than the decay.  Returns the bytes
 * waiting for their decay. */
static size_t purge_sparse_class(ebb_heap_t *heap, unsigned cls, uint32_t now, long long decay_ms,
                                 bool force) {
  lock_acquire(&heap->sparse_lock);
  ebb_page_queue_t work = heap->sparse[cls];
  heap->sparse[cls].first = heap->sparse[cls].last = NULL;
  for (ebb_page_t *p = work.first; p; p = p->next) p->detached |= DETACHED_BUSY;
  lock_release(&heap->sparse_lock);
  ebb_page_queue_t keep = {NULL, NULL}, empty = {NULL, NULL};
  size_t left = 0;
  ebb_page_t *page;
  ebb_purge_batch_t batch; /* the class's pages in one call: all stay busy till it is flushed */
  os_purge_batch_init(&batch);
  while ((page = work.first) != NULL) {
    page_queue_remove(&work, page);
    /* BUSY stays set until the page is back on a list: until then the
     * owner's frees take the atomic path and it cannot retire the page. */
    uint8_t state = page->detached & 3;
    if (atomic_load_explicit(&page->thread_free, memory_order_relaxed) != 0) {
      page_collect_all(page);
      if (state == DETACHED_PURGED) state = DETACHED_FRESH;
    }
    if (state == DETACHED_FRESH) { /* freed into: its decay starts now */
      page->stamp = now;
      state = DETACHED_DIRTY;
    }
    if (state == DETACHED_DIRTY && (force || decay_reached(now, page->stamp, decay_ms))) {
      uint64_t units = page_purge_plan(page);
      if (units) page_purge_apply(page, units, &batch);
      state = DETACHED_PURGED; /* clean until something is freed into it */
    } else if (state == DETACHED_DIRTY) {
      left += (size_t)page->slice_count * EBB_SLICE_SIZE;
    }
    /* Empty and purged: for the owner to give back to its segment. */
    bool retire = page_used(page) == 0 && state == DETACHED_PURGED;
    page->detached = state | DETACHED_BUSY;
    page_queue_push(retire ? &empty : &keep, page);
  }
  os_purge_batch_flush(&batch);
  lock_acquire(&heap->sparse_lock);
  for (ebb_page_t *p = keep.first; p; p = p->next) p->detached &= (uint8_t)~DETACHED_BUSY;
  for (ebb_page_t *p = empty.first; p; p = p->next) p->detached &= (uint8_t)~DETACHED_BUSY;
  while ((page = keep.first) != NULL) {
    page_queue_remove(&keep, page);
    page_queue_push(&heap->sparse[cls], page);
  }
  while ((page = empty.first) != NULL) {
    page_queue_remove(&empty, page);
    page_queue_push(&heap->sparse_empty, page);
  }
  lock_release(&heap->sparse_lock);
  return left;
}

/* ---- remote frees waiting for an idle owner -----------------------------------
 * Blocks that other threads free into a page wait on its remote list until
 * the owner takes them in, and an owner that sleeps (a worker parked in
 * epoll) never does.  The purger cannot touch the owner's lists, but it can
 * borrow the remote list (one exchange), give back the OS pages inside each
 * block (the first, holding the link, stays), mark the block and push the
 * list back.  The borrowed blocks still count as used, so the owner cannot
 * retire the page meanwhile.  Blocks of medium and large classes (above
 * 8 KiB, and two OS pages or more) are purged inside; small pages' OS pages
 * holding only listed blocks, whole (purge_remote_small).  Decay: a medium
 * page's list is borrowed once the purger has seen it waiting, unmarked,
 * for decay_ms (64 ms steps); a small page's once it has not changed for
 * decay_ms. */
#define REMOTE_PURGED_MAGIC ((uintptr_t)0x6562622d72707267) /* "ebb-rprg" */
#define REMOTE_SEEN_UNIT_SHIFT 6                              /* 64 ms */

static bool remote_block_purged(const ebb_block_t *block) {
  return ((const volatile uintptr_t *)block)[1] == (REMOTE_PURGED_MAGIC ^ (uintptr_t)block);
}

static void purge_remote_list(ebb_page_t *page, ebb_block_t *list, uint32_t count,
                              ebb_block_t **last) {
  size_t bs = page->block_size, os_page = ebb_os_page_size;
  uint32_t n = 0;
  ebb_purge_batch_t batch; /* flushed before the list goes back */
  os_purge_batch_init(&batch);
  for (ebb_block_t *b = list;; b = block_next(b)) {
    if (unlikely(++n > count)) ebb_fatal_pointer("free", b, EBB_REASON_LIST_LOOP);
    if (!remote_block_purged(b)) {
      uintptr_t from = ((uintptr_t)b + os_page) & ~(uintptr_t)(os_page - 1);
      uintptr_t to = ((uintptr_t)b + bs) & ~(uintptr_t)(os_page - 1);
      if (to > from) os_purge_batch_add(&batch, (void *)from, to - from);
      ((uintptr_t *)b)[1] = REMOTE_PURGED_MAGIC ^ (uintptr_t)b;
    }
    if (block_next(b) == NULL) {
      *last = b;
      os_purge_batch_flush(&batch);
      return;
    }
  }
}

/* Small blocks are too small to purge one by one, but the OS pages that
 * hold only blocks on the remote list hold nothing live.  In
 * mimalloc-bench's larson the main thread allocates the first blocks and
 * sleeps till the end, while the workers free and replace them all: its
 * pages, about 7 MiB, had every block they handed out on their remote
 * lists (a few never handed out sat on its own).  The purger borrows a
 * page's list (an exchange: the blocks on it are its alone) and gives back
 * each purge unit whose every block is on it; the others, with blocks on
 * the owner's lists, live, or holes the owner may be carving again, are
 * not its to judge.  The rest of the list goes back with its own count;
 * the units go to page->remote_holes, set after the madvise, their blocks
 * still counted as used.  The owner takes them in (page.c,
 * page_take_remote_holes: marked purged, their blocks off the used count
 * in the same step) whenever it takes in remote frees or looks for holes,
 * before or after the rest of the list comes back: either way the used
 * count stays true to the blocks on its lists, which the sampled path's
 * whole-list grant relies on (alloc.c). */
static bool page_remote_purgeable(const ebb_page_t *page, uintptr_t word) {
  return page->class_idx <= EBB_SMALL_CLASS_MAX && page->slice_count == 1 && tf_list(word) != NULL &&
         (size_t)tf_count(word) * page->block_size >= 2 * ebb_os_page_size &&
         !(page->owner_thread & (EBB_OWNER_DETACHED | EBB_OWNER_SHARED));
}

/* The borrowed list `word` of a small page: give back the units only its
 * blocks touch, put the rest back, and watch the word put back (unchanged
 * at a later look: nothing new).  The page's fields are written before
 * the holes and the list go back: after that, the owner may retire it. */
static void purge_remote_small(ebb_segment_t *seg, ebb_page_t *page, uintptr_t word) {
  ebb_block_t *list = tf_list(word), *last = NULL;
  uint32_t count = tf_count(word), reserved = page->reserved;
  size_t bs = page->block_size, unit = page_unit_size(page);
  size_t units = EBB_SLICE_SIZE / unit; /* at most 64: page_unit_size */
  uint64_t mine[EBB_SLICE_SIZE / 8 / 64] = {0}; /* one bit a block */
  _Static_assert(EBB_SLICE_SIZE / 8 <= sizeof mine * 8, "a one-slice page has at most this many blocks");
  bool purgeable = page_remote_purgeable(page, word);
  /* Every link checked: a block of this page, met once (a second meeting
   * is a block freed twice), at most `count` of them. */
  uint32_t n = 0;
  for (ebb_block_t *b = list; b; b = block_next(b)) {
    size_t i = (size_t)((uint8_t *)b - page->start) / bs;
    if (unlikely(!page_is_block_start(page, b))) ebb_fatal_pointer("free", b, EBB_REASON_BAD_LINK);
    if (unlikely(++n > count)) ebb_fatal_pointer("free", b, EBB_REASON_LIST_LOOP);
    if (purgeable) {
      if (unlikely(i >= reserved)) ebb_fatal_pointer("free", b, EBB_REASON_BAD_LINK);
      if (unlikely((mine[i / 64] >> (i % 64)) & 1)) ebb_fatal_pointer("free", b, EBB_REASON_LIST_LOOP);
      mine[i / 64] |= (uint64_t)1 << (i % 64);
    }
    last = b;
  }
  /* The units whose every overlapping block is on the list. */
  uint64_t purge = 0;
  for (size_t u = 0; purgeable && u < units; u++) {
    size_t lo, hi;
    unit_blocks(u, unit, bs, reserved, &lo, &hi);
    if (lo >= hi) break; /* past the last block */
    size_t i = lo;
    while (i < hi && ((mine[i / 64] >> (i % 64)) & 1)) i++;
    if (i == hi) purge |= (uint64_t)1 << u;
  }
  if (purge != 0) {
    /* The list without the blocks touching a purged unit (holes now), in
     * its own order (the secure build's carving shuffle stays); before the
     * madvise, which takes their links with it. */
    ebb_block_t *head = NULL, *tail = NULL;
    uint32_t kept = 0;
    for (ebb_block_t *b = list, *next; b; b = next) {
      next = block_next(b);
      if (block_units((size_t)((uint8_t *)b - page->start) / bs, bs, unit) & purge) continue;
      if (tail) block_set_next(tail, b);
      else head = b;
      tail = b;
      kept++;
    }
    if (tail) block_set_next(tail, NULL);
    ebb_purge_batch_t batch;
    os_purge_batch_init(&batch);
    page_purge_apply(page, purge, &batch);
    os_purge_batch_flush(&batch);
    list = head;
    last = tail;
    count = kept;
  }
  page->remote_watch = (uintptr_t)list | ((uintptr_t)count << EBB_TF_COUNT_SHIFT);
  page->remote_seen = 0;
  if (purge != 0) {
    /* After the madvise (see page_take_remote_holes); sequentially
     * consistent against the owner's move of the page to its full list,
     * which reads remote_holes after setting in_full (page.c), as
     * page_remote_pushed reads in_full after this. */
    atomic_fetch_or_explicit(&page->remote_holes, purge, memory_order_seq_cst);
  }
  if (list != NULL) page_remote_push(seg, page, list, last, count);
  else page_remote_pushed(seg, page); /* all holes: a full page's owner must look */
}

/* Returns the bytes waiting for their decay. */
static size_t segment_purge_remote(ebb_segment_t *seg, uint32_t now, long long decay_ms, bool force) {
  if (seg->kind != EBB_SEGMENT_NORMAL) return 0;
  uint8_t heads[EBB_SLICES_PER_SEGMENT];
  size_t n = 0;
  lock_acquire(&seg->lock); /* the runs stay as they are while listed */
  FOR_EACH_PAGE(seg, page) {
    uintptr_t word = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    if (word == 0) {
      if (page->remote_seen) page->remote_seen = 0; /* taken in: a later list waits anew */
      if (page->remote_watch) page->remote_watch = 0;
    } else if ((page->class_idx > EBB_SMALL_CLASS_MAX && page->block_size >= 2 * ebb_os_page_size) ||
               page_remote_purgeable(page, word))
      heads[n++] = (uint8_t)(page - seg->pages);
  }
  lock_release(&seg->lock);
  unsigned now_units = now >> REMOTE_SEEN_UNIT_SHIFT;
  long long decay_units = decay_ms < 0 ? -1 : (decay_ms + 63) >> REMOTE_SEEN_UNIT_SHIFT;
  if (decay_units > 120) decay_units = 120; /* the mark wraps at 128 steps */
  size_t left = 0;
  for (size_t k = 0; k < n; k++) {
    ebb_page_t *page = &seg->pages[heads[k]];
    uintptr_t seen = atomic_load_explicit(&page->thread_free, memory_order_acquire);
    ebb_block_t *head = tf_list(seen);
    if (head == NULL) continue; /* taken in */
    if (page->class_idx <= EBB_SMALL_CLASS_MAX) {
      /* A small page's decay runs from its list's last change: a list
       * still growing has an owner or freers at work, whose blocks would
       * be purged and faulted in again. */
      if (seen != page->remote_watch) {
        page->remote_watch = seen;
        page->remote_seen = (uint8_t)((now_units & 127) + 1);
      } else if (page->remote_seen == 0) {
        continue; /* as the purger put it back: nothing new */
      }
      unsigned age = (now_units - (page->remote_seen - 1u)) & 127;
      if (!force && (decay_units < 0 || (long long)age < decay_units)) {
        /* The passes go on for it only if its owner has made no call past
         * its fast paths since the last pass (idle, or quiet): kept awake
         * for every busy thread's lists, the purger took the workers'
         * cores (trace_replay-2t's peak 64.6 -> 67.9 MiB, medians of 7).
         * A busy owner's lists wait for the purger's once-a-second look. */
        ebb_heap_t *owner = atomic_load_explicit(&seg->owner, memory_order_acquire);
        if (decay_units >= 0 && owner != NULL &&
            (owner->idle_passes > 0 || atomic_load_explicit(&owner->quiet, memory_order_relaxed)))
          left += page->block_size;
        continue;
      }
      uintptr_t word = atomic_exchange_explicit(&page->thread_free, 0, memory_order_acquire);
      if (tf_list(word) == NULL) continue;
      purge_remote_small(seg, page, word);
      continue;
    }
    if (remote_block_purged(head)) continue; /* nothing new */
    if (!force) {
      if (decay_units < 0) continue;
      if (page->remote_seen == 0) page->remote_seen = (uint8_t)((now_units & 127) + 1);
      unsigned age = (now_units - (page->remote_seen - 1u)) & 127;
      if ((long long)age < decay_units) {
        left += page->block_size;
        continue;
      }
    }
    uintptr_t word = atomic_exchange_explicit(&page->thread_free, 0, memory_order_acquire);
    ebb_block_t *list = tf_list(word);
    if (list == NULL) continue;
    /* Borrowed: the page keeps these blocks counted as used, so its
     * geometry cannot change until they are pushed back. */
    ebb_block_t *last;
    purge_remote_list(page, list, tf_count(word), &last);
    page->remote_seen = 0;
    page_remote_push(seg, page, list, last, tf_count(word));
  }
  return left;
}

/* ---- the shared heap's idle classes -------------------------------------------
 * Blocks freed into the shared heap's pages stay on their page's lists,
 * resident, until some thread allocates that class again.  Once none has
 * for decay_ms, the purger gives back the OS pages no live block touches,
 * and retires pages left empty.  It never waits for the heap's lock (if
 * busy, next tick), and never makes a system call under it: under the lock
 * it plans each page's purge (marks the units, takes their blocks off the
 * free list) and marks the page busy, so that nothing carves its holes or
 * new blocks and nothing retires it; the madvise calls run unlocked, and
 * then the marks come off.
 * Before, threads freeing medium blocks of the heap's other classes waited
 * behind the purger's madvise calls. */
#define SHARED_PURGE_BATCH 64

static size_t purge_shared_idle(uint32_t now, long long decay_ms, bool force) {
  size_t left = 0;
  for (unsigned c = 1; c < EBB_CLASS_COUNT; c++) {
    unsigned slot = shared_slot_of(c);
    if (c <= EBB_SMALL_CLASS_MAX) {
      /* Small pages are here only from threads past their exit (alloc.c):
       * a racy peek first, so the usual pass takes no lock for them. */
      ebb_heap_t *peek = atomic_load_explicit(&ebb_shared[slot].heap, memory_order_acquire);
      if (peek == NULL || peek->queues[c].first == NULL) continue;
    }
    ebb_heap_t *heap = shared_heap_lock_existing(slot, false);
    if (heap == NULL) continue;
    if (atomic_load_explicit(&heap->remote_pending, memory_order_relaxed) != 0)
      heap_handle_remote_full(heap); /* full pages freed into: back in their queues */
    bool idle = force || decay_reached(now, heap->class_used_at[c], decay_ms);
    ebb_page_t *planned[SHARED_PURGE_BATCH];
    uint64_t units[SHARED_PURGE_BATCH];
    size_t n = 0;
    ebb_page_t *next;
    for (ebb_page_t *page = heap->queues[c].first; page; page = next) {
      next = page->next;
      if (!idle) {
        if (page->free || page->local_free ||
            atomic_load_explicit(&page->thread_free, memory_order_relaxed))
          left += page->block_size;
        continue;
      }
      if (page->detached) continue;
      if (page_used(page) == 0) {
        page_unqueue(heap, page);
        segment_page_free(heap, segment_of(page), page);
        continue;
      }
      if (n == SHARED_PURGE_BATCH) {
        left += page->block_size; /* next pass */
        continue;
      }
      uint64_t plan = page_purge_plan(page);
      if (plan == 0) continue;
      page->detached = DETACHED_BUSY;
      planned[n] = page;
      units[n++] = plan;
    }
    shared_heap_unlock(heap);
    if (n == 0) continue;
    /* The marks come off without the lock: the purger holds its pass's
     * lock, which fork's handler takes after the shared heaps' (waiting
     * for one here could deadlock with it).  A thread that still sees the
     * mark only skips the page; one that sees it gone finds the madvise
     * done.  A page that emptied meanwhile retires at the next pass. */
    ebb_purge_batch_t batch;
    os_purge_batch_init(&batch);
    for (size_t i = 0; i < n; i++) page_purge_apply(planned[i], units[i], &batch);
    os_purge_batch_flush(&batch);
    for (size_t i = 0; i < n; i++) __atomic_store_n(&planned[i]->detached, 0, __ATOMIC_RELEASE);
  }
  return left;
}

/* ---- quiet threads ---------------------------------------------------------------
 * A live thread with no call past its fast paths for four passes is quiet
 * (internal.h, ebb_heap_t.quiet).  One pass marked threads of an
 * oversubscribed producer/consumer program quiet while they waited for a
 * core (prodcons-8+8 10% slower). */
static void heaps_mark_quiet(void) {
  for (ebb_heap_t *heap = atomic_load_explicit(&ebb_all_heaps, memory_order_acquire); heap;
       heap = heap->all_next) {
    if (atomic_load_explicit(&heap->active, memory_order_relaxed)) {
      atomic_store_explicit(&heap->active, 0, memory_order_relaxed);
      heap->idle_passes = 0;
    } else if (heap->idle_passes < 4) {
      heap->idle_passes++;
    } else if (heap->is_live && !atomic_load_explicit(&heap->quiet, memory_order_relaxed)) {
      atomic_store_explicit(&heap->quiet, 1, memory_order_relaxed);
    }
  }
}

/* ---- threads' medium caches -----------------------------------------------------
 * A thread that has not used its medium cache since the last pass (a tick
 * ago) is idle: its cached blocks go back to the shared heaps, without
 * waiting for their locks, so the shared heap's idle classes can be purged.
 * Returns what active threads still cache, so the passes go on. */
static size_t medium_caches_idle(bool force) {
  size_t left = 0;
  for (ebb_heap_t *heap = atomic_load_explicit(&ebb_all_heaps, memory_order_acquire); heap;
       heap = heap->all_next) {
    uint32_t ops = atomic_load_explicit(&heap->medium_cache_ops, memory_order_relaxed);
    bool idle = force || ops == heap->medium_cache_seen;
    heap->medium_cache_seen = ops;
    for (unsigned i = 0; i < EBB_MEDIUM_CACHE_CLASSES; i++)
      if (atomic_load_explicit(&heap->medium_cache[i], memory_order_relaxed) != NULL) {
        if (idle) {
          medium_cache_flush(heap, false);
          break;
        }
        left += class_size(EBB_SMALL_CLASS_MAX + 1 + i);
      }
  }
  return left;
}

/* One pass over everything ebb holds free.  Returns the bytes still
 * waiting for their decay (0: nothing left to do). */
static size_t purge_pass(uint32_t now, long long decay_ms, bool force) {
  atomic_fetch_add_explicit(&ebb_stat_purge_passes, 1, memory_order_relaxed);
  size_t left = 0;
  for (ebb_heap_t *heap = atomic_load_explicit(&ebb_all_heaps, memory_order_acquire); heap;
       heap = heap->all_next)
    for (unsigned c = 1; c < EBB_CLASS_COUNT; c++)
      if (heap->sparse[c].first != NULL) /* racy peek */
        left += purge_sparse_class(heap, c, now, decay_ms, force);
  /* Abandoned segments first: the pages they give back are free slices
   * that the walk below purges in the same pass (ebb_collect(true) must
   * not leave them for the next one). */
  left += segments_purge_abandoned(now, decay_ms, force);
  /* The free slices first, in one walk and as few calls as the batch
   * takes: what it claims, no page can take till it is flushed. */
  ebb_slice_purge_t slices;
  segment_purge_init(&slices);
  for (ebb_segment_t *seg = atomic_load_explicit(&ebb_all_segments, memory_order_acquire); seg;
       seg = seg->all_next)
    left += segment_purge_free(seg, now, decay_ms, force, &slices);
  segment_purge_finish(&slices);
  for (ebb_segment_t *seg = atomic_load_explicit(&ebb_all_segments, memory_order_acquire); seg;
       seg = seg->all_next)
    left += segment_purge_remote(seg, now, decay_ms, force) + segment_trim_stale(seg, now, decay_ms, force);
  heaps_mark_quiet();
  left += medium_caches_idle(force);
  left += purge_shared_idle(now, decay_ms, force);
  left += huge_cache_decay(now, decay_ms, force);
  return left;
}

/* ---- growth while free memory waits: the pressure purge -----------------------
 * The decay alone lets a process hold, at its peak, nearly every slice
 * freed in the last decay_ms beside the ones it uses: a free slice belongs
 * to one owner's segment (a thread's heap, the medium or the large holder),
 * and another owner that grows meanwhile takes clean slices.  In
 * trace_replay-8t that was 52-165 MiB of the 234-261 MiB in segments.  So
 * when a page takes clean slices (the process grows) while more free slices
 * wait resident than an eighth of those in use (and 4 MiB), the purger
 * gives back the ones free the longest, down to three quarters of that
 * bound, but none freed less than PRESSURE_MIN_AGE_MS ago: a program that
 * frees and allocates in waves takes those again at once (with no floor,
 * mstress-2t purged 23 GB and ran 6x as long).  Only growth triggers it: a
 * process that stops allocating keeps its free memory for the decay. */
#define PRESSURE_SHARE 8                     /* free resident over used slices: 1/8 */
#define PRESSURE_FLOOR ((size_t)4 << 20)     /* never below this much */
#define PRESSURE_MIN_AGE_MS 32

static _Atomic int pressure_wanted;

static size_t pressure_bound(void) {
  size_t bound = segments_used_bytes() / PRESSURE_SHARE;
  return bound < PRESSURE_FLOOR ? PRESSURE_FLOOR : bound;
}

static bool pressure_over(void) {
  if (ebb_opt.decay_ms < 0) return false; /* never purge on time: nor on growth */
  size_t free_resident = segments_free_resident_bytes();
  return free_resident > PRESSURE_FLOOR && free_resident > pressure_bound();
}

/* From take_run, outside the segment's lock: one flag and one wake an
 * episode (a purger that is mid-pass sees the flag on its next turn). */
void purge_on_growth(void) {
  if (atomic_load_explicit(&pressure_wanted, memory_order_relaxed) || !pressure_over()) return;
  if (atomic_exchange(&pressure_wanted, 1)) return;
  if (atomic_load_explicit(&purger_state, memory_order_relaxed) != PURGER_RUNNING) return; /* inline: purge_notify */
  atomic_fetch_add(&purger_seq, 1);
  os_futex_wake(&purger_seq, 1);
}

/* Under purger_lock.  The free slices' ages, bucketed by powers of two,
 * give the cutoff that purges about the excess, oldest first. */
static void purge_pressure(uint32_t now) {
  atomic_store_explicit(&pressure_wanted, 0, memory_order_relaxed);
  if (!pressure_over()) return;
  size_t free_resident = segments_free_resident_bytes(), target = pressure_bound() / 4 * 3;
  size_t ages[EBB_AGE_BUCKETS] = {0};
  for (ebb_segment_t *seg = atomic_load_explicit(&ebb_all_segments, memory_order_acquire); seg;
       seg = seg->all_next)
    segment_free_ages(seg, now, ages);
  size_t excess = free_resident > target ? free_resident - target : 0, oldest = 0;
  long long cutoff = 0;
  for (int k = EBB_AGE_BUCKETS - 1; k >= 0; k--) {
    oldest += ages[k];
    if (oldest >= excess) {
      cutoff = k == 0 ? 0 : 1LL << (k - 1);
      break;
    }
  }
  if (cutoff < PRESSURE_MIN_AGE_MS) cutoff = PRESSURE_MIN_AGE_MS;
  atomic_fetch_add_explicit(&ebb_stat_purge_passes, 1, memory_order_relaxed);
  ebb_slice_purge_t slices;
  segment_purge_init(&slices);
  for (ebb_segment_t *seg = atomic_load_explicit(&ebb_all_segments, memory_order_acquire); seg;
       seg = seg->all_next)
    segment_purge_free(seg, now, cutoff, false, &slices);
  segment_purge_finish(&slices);
}

/* ---- the memory limit -------------------------------------------------------- */
size_t purge_memory_limit(void) {
  return ebb_opt.memory_limit ? ebb_opt.memory_limit : memory_limit;
}

static bool near_limit(size_t extra) {
  size_t limit = purge_memory_limit();
  if (limit == 0) return false;
  return os_rss_bytes() + extra > limit - limit / 10;
}

void purge_all_now(void) {
  lock_acquire(&purger_lock);
  purge_pass(os_clock_ms(), ebb_opt.decay_ms, true);
  lock_release(&purger_lock);
}

/* The soft limit steers by the process's RSS: near it, everything free is
 * purged whatever the decay.  The hard limit counts what ebb has committed
 * (segments_committed_bytes), not RSS: memory handed out but not yet written is
 * not resident, and a limit read from RSS granted 24 blocks of 64 MiB
 * under a 512 MiB limit, 1.5 GiB once written. */
bool purge_limit_admit(size_t bytes) {
  size_t limit = purge_memory_limit();
  if (limit == 0) return true;
  bool hard = ebb_opt.hard_limit;
  bool over_hard = hard && segments_committed_bytes() + bytes > limit;
  if (!over_hard && !near_limit(bytes)) return true;
  purge_all_now(); /* near the limit: the decay no longer matters */
  if (hard && segments_committed_bytes() + bytes > limit) {
    errno = ENOMEM;
    return false;
  }
  return true;
}

/* ---- the background thread --------------------------------------------------- */
static long long tick_ms(long long decay_ms) {
  long long tick = decay_ms <= 0 ? 100 : decay_ms / 4;
  if (tick < 5) tick = 5;
  if (tick > 1000) tick = 1000;
  long long interval = ebb_opt.stats_interval_ms;
  if (interval > 0 && interval < tick) tick = interval;
  interval = ebb_opt.prof_interval_ms;
  if (interval > 0 && interval < tick) tick = interval;
  return tick;
}

/* Does time alone give the purger something to do (purging on a decay,
 * watching a limit, printing stats)? */
static bool timed_work(void) {
  return ebb_opt.decay_ms >= 0 || purge_memory_limit() != 0 || ebb_opt.stats_interval_ms > 0 ||
         ebb_opt.prof_interval_ms > 0;
}

/* The container's limit can change at run time (and so can cgroup_path):
 * read it again at most once a second. */
static void refresh_limit(uint32_t now) {
  static uint32_t last;
  if ((uint32_t)(now - last) < 1000) return;
  last = now;
  memory_limit = os_cgroup_memory_limit(ebb_opt.cgroup_path);
}

static size_t run_pass(uint32_t now) {
  refresh_limit(now);
  long long decay_ms = ebb_opt.decay_ms;
  bool force = near_limit(0);
  lock_acquire(&purger_lock);
  if (!force && atomic_load_explicit(&pressure_wanted, memory_order_relaxed)) purge_pressure(now);
  size_t left = purge_pass(now, decay_ms, force);
  lock_release(&purger_lock);
  if (decay_ms < 0 && !force) left = 0; /* nothing will decay: no reason to wake */
  return left;
}

static void *purger_main(void *arg) {
  (void)arg;
  prctl(PR_SET_NAME, "ebb-purge", 0, 0, 0);
  uint32_t last_pass = os_clock_ms();
  for (;;) {
    uint32_t seq = atomic_load(&purger_seq);
    uint32_t now = os_clock_ms();
    long long since = (long long)(uint32_t)(now - last_pass);
    if (atomic_load_explicit(&pressure_wanted, memory_order_relaxed) && since < tick_ms(ebb_opt.decay_ms)) {
      /* woken for the pressure alone: the decay's pass keeps its tick */
      lock_acquire(&purger_lock);
      purge_pressure(now);
      lock_release(&purger_lock);
      os_futex_wait(&purger_seq, seq, (uint32_t)(tick_ms(ebb_opt.decay_ms) - since));
      continue;
    }
    last_pass = now;
    size_t left = run_pass(now);
    stats_periodic(now);
    prof_periodic(now); /* the heap profile's interval dumps, under no lock */
    long long tick = tick_ms(ebb_opt.decay_ms);
    bool watch = purge_memory_limit() != 0 || ebb_opt.stats_interval_ms > 0 || ebb_opt.prof_interval_ms > 0;
    if (left == 0 && !watch) {
      /* Idle: say so, then look once more (a free that did not see the
       * flag was published before this look), then sleep until woken, or
       * for PURGER_IDLE_LOOK_MS. */
      atomic_store(&purger_idle, 1);
      atomic_thread_fence(memory_order_seq_cst);
      if (run_pass(os_clock_ms()) == 0) {
        os_futex_wait(&purger_seq, seq, PURGER_IDLE_LOOK_MS);
        atomic_store(&purger_idle, 0);
        continue;
      }
      atomic_store(&purger_idle, 0);
    }
    os_futex_wait(&purger_seq, seq, tick);
  }
  return NULL;
}

static void purger_start(void) {
  int expected = PURGER_NONE;
  if (!atomic_compare_exchange_strong(&purger_state, &expected, PURGER_STARTING)) return;
  pthread_attr_t attr;
  pthread_t thread;
  sigset_t all, old;
  int rc = pthread_attr_init(&attr);
  if (rc == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)256 << 10);
    /* The thread takes no signals meant for the program. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, &attr, purger_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
  }
  if (rc != 0) {
    if (ebb_opt.verbose) ebb_note("no background purger thread (%s); purging during calls", strerror(rc));
    atomic_store(&purger_state, PURGER_INLINE);
    atomic_store(&ebb_purge_inline, true);
    return;
  }
  atomic_store(&purger_state, PURGER_RUNNING);
}

/* Something became free.  Wake the purger if it sleeps; start it if it is
 * time; without one, run a pass now and then from here. */
void purge_notify(void) {
  atomic_thread_fence(memory_order_seq_cst); /* what was freed is visible before the look */
  if (atomic_load_explicit(&purger_idle, memory_order_relaxed)) {
    if (atomic_exchange(&purger_idle, 0)) {
      atomic_fetch_add(&purger_seq, 1);
      os_futex_wake(&purger_seq, 1);
    }
    return;
  }
  int state = atomic_load_explicit(&purger_state, memory_order_relaxed);
  if (state == PURGER_RUNNING || state == PURGER_STARTING) return;
  if (state == PURGER_NONE) {
    if (!ebb_opt.background) {
      atomic_store(&purger_state, PURGER_INLINE);
      atomic_store(&ebb_purge_inline, true);
    } else if (timed_work() &&
               (atomic_load_explicit(&ebb_os_mapped_bytes, memory_order_relaxed) >= PURGER_START_MAPPED ||
                ebb_opt.stats_interval_ms > 0 || ebb_opt.prof_interval_ms > 0 ||
                purge_memory_limit() != 0)) {
      purger_start();
      return;
    } else {
      return;
    }
  }
  /* PURGER_INLINE: a pass at most once a tick, never waiting for another,
   * and never from a caller holding one of ebb's locks: the pass takes
   * them too (a medium page given back under the group's lock emptied a
   * segment, and the pass, flushing idle medium caches, waited for that
   * lock: seen with EBB_BACKGROUND=0 and the heap profiler's frees). */
  if (ebb_locks_held != 0) return;
  if (atomic_load_explicit(&pressure_wanted, memory_order_relaxed) && lock_try(&purger_lock)) {
    purge_pressure(os_clock_ms());
    lock_release(&purger_lock);
  }
  uint32_t now = os_clock_ms();
  uint32_t last = atomic_load_explicit(&last_inline_pass, memory_order_relaxed);
  if ((long long)(uint32_t)(now - last) < tick_ms(ebb_opt.decay_ms)) return;
  if (!lock_try(&purger_lock)) return;
  atomic_store_explicit(&last_inline_pass, now, memory_order_relaxed);
  purge_pass(now, ebb_opt.decay_ms, near_limit(0));
  stats_periodic(now);
  lock_release(&purger_lock);
  /* After the lock: a dump takes the sampler's lock, which fork's handlers
   * take before the purger's. */
  prof_periodic(now);
}

/* Start the purger if it is time, without waking it: the shared heap's
 * slow path frees nothing, and waking an idle purger on each call would
 * run a pass per call.  Asleep, the purger still looks once a second. */
void purge_start_if_due(void) {
  int state = atomic_load_explicit(&purger_state, memory_order_relaxed);
  if (state == PURGER_RUNNING || state == PURGER_STARTING) return;
  purge_notify();
}

/* ---- init and fork ----------------------------------------------------------- */
void purge_init(void) {
  memory_limit = os_cgroup_memory_limit(ebb_opt.cgroup_path);
  if (ebb_opt.verbose) {
    size_t limit = purge_memory_limit();
    if (limit) ebb_note("memory limit %zu bytes (%s)%s", limit,
                        ebb_opt.memory_limit ? "memory_limit option" : "cgroup",
                        ebb_opt.hard_limit ? ", hard" : "");
    else ebb_note("no memory limit");
  }
}

void purge_prefork(void) { lock_acquire(&purger_lock); }

void purge_postfork(bool child) {
  if (!child) {
    lock_release(&purger_lock);
    return;
  }
  /* Only this thread lives on: no purger, and no lock holder but us. */
  lock_reset(&purger_lock);
  atomic_store(&purger_idle, 0);
  atomic_store(&pressure_wanted, 0);
  int state = atomic_load(&purger_state);
  if (state == PURGER_RUNNING || state == PURGER_STARTING) atomic_store(&purger_state, PURGER_NONE);
  for (ebb_heap_t *heap = atomic_load(&ebb_all_heaps); heap; heap = heap->all_next)
    lock_reset(&heap->sparse_lock);
}
