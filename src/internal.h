/* ebb internal types and constants, shared by every source file.
 *
 * The shape of memory:
 *   segment  4 MiB, aligned to 4 MiB, owned by one heap.  Its first
 *            64 KiB slice holds the segment header and one page descriptor per
 *            slice; masking a pointer finds its segment.
 *   slice    64 KiB, the unit segments hand out.
 *   page     a span of slices holding blocks of one size class:
 *            small  (<= 8 KiB)   1 slice
 *            medium (<= 128 KiB) up to about 8 blocks, 1..8 slices (page_slices_for;
 *                                fewer in a class's first pages and where only a
 *                                shorter run is free)
 *            large  (<= 2 MiB)   enough slices for one block
 *            medium and large pages belong to the heaps all threads share
 *   huge     more than 2 MiB (or alignment above 64 KiB): its own mapping,
 *            with a one-page segment header in front, unmapped on free.
 */
#ifndef EBB_INTERNAL_H
#define EBB_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ebb.h"

#if defined(__GNUC__)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define EBB_NOINLINE __attribute__((noinline))
#define EBB_INLINE static inline __attribute__((always_inline))
/* Every exported function, and each internal one a sampled allocation
 * passes through (EBB_API_TEXT), sits in one section: the sampler drops
 * the frames there from the stacks it records (sample.c), so a profile
 * starts at the program's call, whether ebb is a shared library or linked
 * into the program. */
#define EBB_API_TEXT __attribute__((section("ebb_api_text")))
#define EBB_EXPORT __attribute__((visibility("default"))) EBB_API_TEXT
#define EBB_COLD __attribute__((cold))
#else
#error "ebb needs gcc or clang"
#endif

/* ---- geometry ------------------------------------------------------------ */
#define EBB_SEGMENT_SHIFT 22
#define EBB_SEGMENT_SIZE ((size_t)1 << EBB_SEGMENT_SHIFT)
#define EBB_SEGMENT_MASK (EBB_SEGMENT_SIZE - 1)
#define EBB_SLICE_SHIFT 16
#define EBB_SLICE_SIZE ((size_t)1 << EBB_SLICE_SHIFT)
#define EBB_SLICES_PER_SEGMENT (EBB_SEGMENT_SIZE / EBB_SLICE_SIZE) /* 64 */
#define EBB_MEDIUM_PAGE_SLICES 8

#define EBB_SMALL_MAX ((size_t)8 << 10)    /* blocks in 1-slice pages */
#define EBB_MEDIUM_MAX ((size_t)128 << 10) /* blocks in pages of 2..8 slices */
#define EBB_LARGE_MAX ((size_t)2 << 20)    /* one block a page */
/* Alignments up to a slice come from size classes: pages start on a slice
 * boundary, so a class whose size is a multiple of A has A-aligned blocks. */
#define EBB_MAX_CLASS_ALIGN EBB_SLICE_SIZE

/* Requests above this fail with ENOMEM before any arithmetic can overflow:
 * ebb maps nothing above 2^48 (the segment map's reach, and the user address
 * space of x86-64 and arm64), so no larger block could ever exist. */
#define EBB_MAX_REQUEST (((size_t)1 << 48) - 2 * EBB_SEGMENT_SIZE)

/* ---- size classes -------------------------------------------------------- */
/* Class 1 is 8 B; classes 2..9 step by 16 up to 128 B, because every block
 * above 8 B must be 16-aligned (max_align_t on x86-64 and arm64, and code
 * such as hashbrown's SIMD table loads relies on it).  Above 128 B, 8 classes
 * per doubling up to EBB_LARGE_MAX: at most 12.5% rounding waste. */
#define EBB_CLASS_COUNT 122 /* index 0 unused; class 121 is 2 MiB */
#define EBB_DIRECT_MAX 1024 /* sizes with a direct[] entry each */
/* heap->direct[] is indexed by the request size itself up to
 * EBB_DIRECT_MAX: 8 KiB of the table, and two instructions fewer on every
 * such malloc than indexing by words.  Sizes above, up to EBB_SMALL_MAX, have the
 * entries after those, indexed by (size - 1) >> 7: every class boundary
 * there is a multiple of 128 B (steps of 128, 256, 512 B), so each entry
 * names one class, and a class has 1 to 8 entries.  Through alloc_generic
 * instead (the class computed, the thread's state tested, its queue's
 * first page) these sizes took about 80 instructions a malloc: a third of
 * this repo's alloc_test's mallocs (8 B - 8 KiB). */
#define EBB_DIRECT_MID_SHIFT 7
#define EBB_DIRECT_MID_BASE (EBB_DIRECT_MAX + 1 - (EBB_DIRECT_MAX >> EBB_DIRECT_MID_SHIFT))
#define EBB_DIRECT_COUNT (EBB_DIRECT_MID_BASE + ((EBB_SMALL_MAX - 1) >> EBB_DIRECT_MID_SHIFT) + 1)

_Static_assert(EBB_LARGE_MAX == (size_t)1 << 21 && EBB_CLASS_COUNT == 9 + (21 - 7) * 8 + 1,
               "classes: 9 up to 128 B, then 8 per doubling to 2 MiB");

EBB_INLINE unsigned size_class_of(size_t size) {
  if (size <= 8) return 1;
  if (size <= 128) return 1u + (unsigned)((size + 15) >> 4);
  size_t s = size - 1;
  unsigned b = 63u - (unsigned)__builtin_clzll(s); /* 2^b <= s < 2^(b+1) */
  return 9u + (b - 7u) * 8u + (unsigned)((s >> (b - 3u)) & 7u) + 1u;
}

EBB_INLINE size_t class_size(unsigned c) {
  if (c == 1) return 8;
  if (c <= 9) return (size_t)(c - 1) * 16;
  unsigned k = c - 10u, b = 7u + k / 8u, i = k % 8u;
  return ((size_t)1 << b) + (size_t)(i + 1u) * ((size_t)1 << (b - 3u));
}

/* The direct[] entry the fast path reads for `size` (at most EBB_SMALL_MAX). */
EBB_INLINE size_t direct_index(size_t size) {
  return size <= EBB_DIRECT_MAX ? size : EBB_DIRECT_MID_BASE + ((size - 1) >> EBB_DIRECT_MID_SHIFT);
}

/* The secure build leaves the last OS page of every page's run unused (a
 * guard page at a segment's end, segment.c): an OS page when pages are 16
 * KiB or less, nothing with 64 KiB pages (it would take a whole slice).  0
 * in the normal build. */
#ifndef EBB_SECURE
#define EBB_SECURE 0
#endif
#if EBB_SECURE
extern size_t ebb_guard_size; /* os.c */
#endif
EBB_INLINE size_t page_guard_size(void) {
#if EBB_SECURE
  return ebb_guard_size;
#else
  return 0;
#endif
}
/* The fewest slices a page of blocks of this size can have: one block's. */
EBB_INLINE size_t page_slices_min(size_t block_size) {
  return (block_size + page_guard_size() + EBB_SLICE_SIZE - 1) / EBB_SLICE_SIZE;
}
/* Slices in a full page of blocks of this size.  A medium page holds about
 * 8 blocks, at most EBB_MEDIUM_PAGE_SLICES: every thread keeps a partly used
 * page per class it uses, and a 512 KiB page of 16 KiB blocks could hold
 * 496 KiB free per thread and class. */
EBB_INLINE size_t page_slices_for(size_t block_size) {
  if (block_size <= EBB_SMALL_MAX) return 1;
  if (block_size <= EBB_MEDIUM_MAX) { /* 8 blocks' room holds a guard page too */
    size_t slices = (8 * block_size + EBB_SLICE_SIZE - 1) / EBB_SLICE_SIZE;
    return slices < EBB_MEDIUM_PAGE_SLICES ? slices : EBB_MEDIUM_PAGE_SLICES;
  }
  return page_slices_min(block_size);
}

/* The last class whose pages are one slice (blocks up to EBB_SMALL_MAX). */
#define EBB_SMALL_CLASS_MAX 57u /* class_size(57) == 8 KiB, checked in unit_internal */
/* The last medium class (blocks up to EBB_MEDIUM_MAX, several a page);
 * the classes above it are large (one block a page). */
#define EBB_MEDIUM_CLASS_MAX 89u /* class_size(89) == 128 KiB, checked in unit_internal */
/* Medium and large classes (blocks above EBB_SMALL_MAX) come from the
 * shared heaps (heap.c), not the thread's own: every thread reuses their
 * free blocks and slices. */
EBB_INLINE bool class_is_shared(unsigned cls) {
  return cls > EBB_SMALL_CLASS_MAX && cls < EBB_CLASS_COUNT;
}
#define EBB_YOUNG_ALLOCS 1024u /* a new thread's allocations from the shared heaps (alloc.c) */
#define EBB_YOUNG_AFTER_EXITS 4u /* ... once this many threads have ended (heap.c) */
/* Medium classes up to this one (32 KiB) have a slot in each thread's
 * medium cache (alloc.c): at most 300 KiB a thread. */
#define EBB_MEDIUM_CACHE_CLASS_MAX 73u /* class_size(73) == 32 KiB, checked in unit_internal */
#define EBB_MEDIUM_CACHE_CLASSES (EBB_MEDIUM_CACHE_CLASS_MAX - EBB_SMALL_CLASS_MAX)
/* Classes up to EBB_DIRECT_MAX (a direct[] entry a size): each has a
 * foreign cache in every thread heap (alloc.c). */
#define EBB_FOREIGN_CLASSES 34u /* classes 1..33; class_size(33) == 1 KiB, checked in unit_internal */
/* What one class's foreign cache holds at most (at least 2 blocks). */
#define EBB_FOREIGN_CLASS_BYTES 4096u
/* While sampling (alloc.c, alloc_small_sampled), a class's foreign cache
 * also holds grants of up to this much. */
#define EBB_SAMPLE_GRANT_BYTES (64u << 10)

/* ---- blocks, pages, segments, heaps ------------------------------------- */
typedef struct ebb_block { struct ebb_block *next; } ebb_block_t;

/* The secure build (EBB_SECURE=1, build/libebb-secure.*) stores each free
 * block's link encoded with a per-process secret and the link's own
 * address, and checks every block it pops, so that a link overwritten by a
 * use after free or an overflow is reported instead of followed (it
 * decodes to an address that is no block of the page).  The link's own
 * address in the key lets whole lists move between a page's lists without
 * being re-encoded.  In the normal build both helpers are plain loads and
 * stores: their cost on the fast path is in README ("Heap integrity"). */
extern uintptr_t ebb_list_secret; /* os.c: from the kernel's AT_RANDOM bytes */
EBB_INLINE ebb_block_t *block_next(const ebb_block_t *b) {
#if EBB_SECURE
  return (ebb_block_t *)((uintptr_t)b->next ^ (uintptr_t)b ^ ebb_list_secret);
#else
  return b->next;
#endif
}
EBB_INLINE void block_set_next(ebb_block_t *b, const ebb_block_t *next) {
#if EBB_SECURE
  b->next = (ebb_block_t *)((uintptr_t)next ^ (uintptr_t)b ^ ebb_list_secret);
#else
  b->next = (ebb_block_t *)next;
#endif
}

struct ebb_heap;

/* `used_minus_one` is the number of blocks handed out and not yet known to
 * be freed, minus one (so -1 when the page is empty); remote frees are
 * subtracted when the owner collects them.  While the page sits on its
 * heap's full list, a large negative bias is added (page_used() takes it
 * off; a page has at most 8192 blocks).  The owner's free path thus sees "needs
 * attention" (page now empty, page was full, or a block freed twice) in the
 * sign of the decremented value: one `sub` and one branch.  A page that
 * the heap's direct[] names (its class's current page, `quiet`) is counted
 * one higher, so a free that empties it raises nothing: the loop that
 * mallocs and frees one block of a class with nothing else live paid a
 * call on every free (page.c, heap_direct_refresh). */
#define EBB_USED_FULL_BIAS (-((int32_t)1 << 30))

/* Four cache lines, one per kind of writer, so that a thread freeing into
 * another thread's page only reads lines that page's owner does not keep
 * writing.  With two lines (the fields of lines 0 and 1 together) every
 * remote free missed on a line the owner had just written: in `service`
 * the load of the descriptor took 75% of free()'s samples (README,
 * "Design"). */
typedef struct ebb_page {
  /* line 0, the owner's: written by its every malloc and free */
  ebb_block_t *free;        /* blocks ready to hand out */
  ebb_block_t *local_free;  /* frees waiting for the next collect: the secure build's
                               owner frees (page_push_owned), sparse pages' frees */
  int32_t used_minus_one;   /* see above */
  uint32_t alloc_count;     /* blocks handed out since the last harvest (stats) */
  uint32_t capacity;        /* blocks carved from the page so far */
  uint32_t reserved;        /* blocks that fit */
  struct ebb_page *next, *prev;       /* in a class queue, the full list or a sparse list */
  uint16_t sparse_at;       /* armed: the free path traps when used drops to this */
  uint16_t sparse_mark;     /* what sparse_at is armed to (set by page_init; 0: never) */
  uint8_t is_zero;          /* blocks on `free` are known to be zero */
  uint8_t quiet;            /* 1 while its heap's direct[] names it: counted one higher (below) */
  uint8_t pad0_[64 - 54];
  /* line 1, read by every free, written when the page is set up or changes hands */
  uint8_t *start;           /* first block */
  uint64_t block_magic;     /* see page_is_block_start */
  uint64_t block_bound;
  uint64_t head_delta;      /* bytes back to the span's head descriptor */
  /* Thread id of the owner, whose frees need no atomics; 0 for pages of
   * exited threads and huge blocks, whose frees take the atomic path;
   * EBB_OWNER_SHARED for the shared heaps' pages, freed under their lock;
   * the owner's id | EBB_OWNER_DETACHED for a page the owner handed to the
   * purger (its frees take the sparse path).
   * Changed only by the owner (or, for a page with none, by the thread
   * adopting it), so a thread never sees its own id here unless the page is
   * its own. */
  uintptr_t owner_thread;
  size_t block_size;
  uint16_t slice_count;     /* span length (head descriptor only) */
  uint8_t class_idx;
  uint8_t mem_fresh;        /* the page's memory came zeroed from the OS */
  uint8_t detached;         /* on its heap's sparse list, in the purger's hands */
  uint8_t pad1_[64 - 53];
  /* line 2, written by other threads' frees */
  _Atomic uintptr_t thread_free;      /* frees from other threads: a list and its length (tf_*) */
  _Atomic uint8_t in_full;  /* on the full list; read by remote freers */
  uint8_t pad2_[64 - 9];
  /* line 3, the purger's and cold */
  uint64_t purged;          /* bit u: purge unit u given back to the OS (see purge.c);
                               a huge block: the size requested */
  uint32_t stamp;           /* ms clock: when taken or detached (head), or freed (free slice) */
  uint8_t remote_seen;      /* the purger's: when it saw remote frees waiting (purge.c) */
  /* 4 KiB units (whole OS pages) from the slice's start that may be resident: raised by
   * carving (one-slice pages), kept while the slice is free, cleared when
   * it is purged, full for the slices of longer runs.  A new page on the
   * slice inherits it: what its slice holds, not what it carved itself
   * (page.c, heap_retire_empty_current). */
  uint8_t touched;
  uint8_t pad3a_[2];
  /* Units the purger gave back while it held the blocks of a small page's
   * remote list (purge.c, purge_remote_small): holes still counted as used,
   * until the owner takes them in (page_take_remote_holes). */
  _Atomic uint64_t remote_holes;
  /* The purger's: the remote word it watches for the decay, and the one it
   * last put back (unchanged since: nothing new to look at). */
  uintptr_t remote_watch;
  uint8_t pad3_[64 - 32];
} ebb_page_t;

_Static_assert(sizeof(ebb_page_t) == 256, "page descriptor is four cache lines");
#define EBB_TOUCHED_UNIT_SHIFT 12
#define EBB_TOUCHED_FULL ((uint8_t)(EBB_SLICE_SIZE >> EBB_TOUCHED_UNIT_SHIFT))
/* A slice descriptor's `touched`, in bytes (whole OS pages). */
EBB_INLINE size_t slice_touched_bytes(const ebb_page_t *desc) {
  return (size_t)desc->touched << EBB_TOUCHED_UNIT_SHIFT;
}
/* Bytes from its slice's start that a one-slice page has carved. */
EBB_INLINE size_t page_carved_bytes(const ebb_page_t *page) {
  return ((uintptr_t)page->start & (EBB_SLICE_SIZE - 1)) + (size_t)page->capacity * page->block_size;
}
_Static_assert(offsetof(ebb_page_t, start) == 64 && offsetof(ebb_page_t, thread_free) == 128 &&
                   offsetof(ebb_page_t, purged) == 192,
               "one line per kind of writer");

enum { EBB_SEGMENT_NORMAL = 1, EBB_SEGMENT_HUGE = 2 };
/* Thread ids are aligned addresses: bit 0 is free to mark a detached page,
 * and 2 is no thread's id. */
#define EBB_OWNER_DETACHED ((uintptr_t)1)
#define EBB_OWNER_SHARED ((uintptr_t)2)
/* The sampled heap's pages (sample.c): marked like a shared heap's, so the
 * free path's one test sends them aside, and told apart there. */
#define EBB_OWNER_SAMPLED ((uintptr_t)6)

/* A shared heap's page on a thread's segment, or the freed run of one
 * (segment.c, lent pages): never the segment owner's to walk. */
EBB_INLINE bool page_is_lent(const ebb_page_t *page) { return page->owner_thread == EBB_OWNER_SHARED; }

/* A lock for the allocator's own structures (sync.c): 0 free, 1 held, 2
 * held and a waiter may sleep on it (a futex word). */
typedef struct { _Atomic uint32_t held; } ebb_lock_t;

typedef struct ebb_segment {
  _Atomic(struct ebb_heap *) owner; /* its heap; NULL: abandoned, pooled or huge */
  /* Slice masks, bit i for slice i (bit 0: the header).  used: in a page
   * (written by the owner only); dirty: written since last purged; lazy:
   * purged with MADV_FREE (may not read as zero); purging: being purged by
   * the purger right now (not to be taken).  dirty, lazy and purging, and
   * any change of used, are under `lock`. */
  uint64_t used_slices;
  uint64_t dirty_slices;
  uint64_t lazy_slices;
  uint64_t purging_slices;
  size_t map_size;                  /* huge: length of the whole mapping */
  uint8_t *map_base;                /* huge: start of the whole mapping */
  struct ebb_segment *next, *prev;  /* in a heap's list, the pool, or abandoned */
  struct ebb_segment *all_next;     /* every normal segment ever mapped */
  /* bit i: a remote free hit full page i; bit 0 (the header's slice): a
   * lent page's run came back (segment.c).  The freer that sets the first
   * bit raises its owner's remote_pending flag. */
  _Atomic uint64_t remote_full;
  ebb_lock_t lock;
  uint8_t kind;
  uint8_t in_full_list;             /* heap: in `segments_full` (no free slice) */
  /* Abandoned (no owner): the purger's.  When it last took in frees to the
   * segment's pages, and whether it has purged their free memory since. */
  uint8_t abandoned_purged;
  /* On the abandoned list itself (under abandoned_lock): a thread freeing
   * into it may adopt it there and then (segment_reclaim_on_free); not
   * while the purger has the list out. */
  uint8_t abandoned_listed;
  uint32_t abandoned_stamp;
  uint32_t abandoned_by;            /* the birth number of the heap whose thread left it */
  uint8_t pad_[128 - 104];
  ebb_page_t pages[EBB_SLICES_PER_SEGMENT];
} ebb_segment_t;

_Static_assert(offsetof(ebb_segment_t, pages) == 128, "pages start on a cache line");
_Static_assert(sizeof(ebb_segment_t) <= EBB_SLICE_SIZE, "header fits its slice");

typedef struct ebb_page_queue { ebb_page_t *first, *last; } ebb_page_queue_t;

typedef struct ebb_heap {
  ebb_page_t *direct[EBB_DIRECT_COUNT]; /* direct_index(size) -> page to allocate from */
  ebb_page_queue_t queues[EBB_CLASS_COUNT];
  ebb_page_queue_t full;                /* pages with no free block */
  ebb_segment_t *segments;              /* owned, with at least one free slice */
  ebb_segment_t *segments_full;         /* owned, every slice in use */
  ebb_segment_t *cached_empty;          /* one empty segment kept for reuse */
  /* Some owned segment's remote_full went from 0 to not 0: the owner
   * looks at its segments' masks.  A flag, not a list of segments: a
   * segment on a list could be given away and pushed again, by a freer
   * that read the old owner, while still linked there (a cycle: seen as
   * larson-8t looping for good in heap_handle_remote_full). */
  _Atomic uint32_t remote_pending;
  bool is_live;                         /* belongs to a running thread */
  bool is_shared;                       /* a shared heap of medium and large blocks (heap.c) */
  uint8_t shared_slot;                  /* which one */
  /* A young thread's allocations still to come from the shared heaps
   * (alloc.c, EBB_YOUNG_ALLOCS); 0: it has pages of its own. */
  uint32_t young_left;
  /* Which heap handed to a thread this is, counting from 1 (wraps): it
   * takes in the resident free runs of segments left by threads that took
   * their heaps before it (segment.c, reclaimed_resident_run). */
  uint32_t birth;
  /* The shared heap's: when each class last took the slow path (ms, the
   * coarse clock), so the purger can tell a class nobody allocates any more. */
  uint32_t class_used_at[EBB_CLASS_COUNT];
  /* The shared heap's: log2 of the blocks the next page of each medium
   * class gets (0: one, up to 3: a full page; page.c, medium_page_slices). */
  uint8_t medium_ramp[EBB_MEDIUM_CLASS_MAX - EBB_SMALL_CLASS_MAX];
  uintptr_t thread_id;                  /* ebb_thread_id() of that thread */
  struct ebb_heap *pool_next;
  uint32_t slow_calls;                  /* slow paths and emptying frees (inline purging) */
  /* Small classes whose current page went empty (bit = class): kept for a
   * malloc/free loop, retired if still empty two checks later (page.c). */
  uint64_t empty_current, empty_current_aging;
  uint64_t quiet_classes;   /* small classes whose direct[] page is quiet (page.c) */
  uint32_t retire_tick;                 /* slow-path calls, for those checks */
  /* The foreign cache (alloc.c): small blocks this thread freed into other
   * threads' pages, for its own next allocations of their class.  foreign[c]
   * is no page of any segment, only a free list the fast path can pop:
   * while bit c of foreign_active is set, class c's direct[] entries name
   * it (page.c keeps them so).  Its used_minus_one counts pops and its
   * capacity pushes since it was last empty; only the owner touches it. */
  uint64_t foreign_active;
  /* Bit c: class c's cache filled up with nothing popped since it last
   * did (overflowed); then filled up that way twice in a row, so this
   * thread frees the class but does not allocate it (bypass: its frees go
   * straight back, until its slow path serves the class). */
  uint64_t foreign_overflowed, foreign_bypass;
  /* Bit c: a block of class c came into the cache from another thread's
   * page since the cache last ran dry (free_foreign sets it); a cache that
   * runs dry with it set is refilled from this thread's pages, one that
   * runs dry without it closes (alloc.c, foreign_cache_refill). */
  uint64_t foreign_fed;
  ebb_page_t foreign[EBB_FOREIGN_CLASSES];
  /* Sampling on (sample.c): bytes to the next sample, per foreign-cache
   * class (0: not drawn yet); the cache then holds the grants (alloc.c). */
  int64_t prof_left[EBB_FOREIGN_CLASSES];
  /* Blocks granted into class c's foreign cache (by a refill, or by the
   * sampler) since it last ran dry: room above the cache's limit, which its
   * foreign frees alone must fill before it counts as full (else a
   * consumer is never seen as one). */
  uint32_t foreign_granted[EBB_FOREIGN_CLASSES];
  /* statistics, written by the owner */
  uint64_t stat_allocs[EBB_CLASS_COUNT];
  uint64_t stat_remote_frees;
  /* From here on, read by the purger at any time: not cleared on reuse. */
  struct ebb_heap *all_next;            /* every heap ever made */
  /* Sparse pages: mostly free pages the owner handed to the purger (their
   * owner_thread is 0).  The lists are under sparse_lock; a page the
   * purger is working on is off its list. */
  ebb_lock_t sparse_lock;
  ebb_page_queue_t sparse[EBB_CLASS_COUNT];
  ebb_page_queue_t sparse_empty;        /* every block free: to be retired */
  /* The thread's medium cache (alloc.c): a block it freed, one a class,
   * for its next allocation of that class.  Only the owner puts blocks in;
   * the owner, the purger (from an idle thread) and ebb_collect take them
   * out, each with one exchange.  Empty once the thread has exited. */
  _Atomic(ebb_block_t *) medium_cache[EBB_MEDIUM_CACHE_CLASSES];
  _Atomic uint32_t medium_cache_ops;    /* bumped by the owner: the purger's idle test */
  uint32_t medium_cache_seen;           /* the purger's: the count at its last pass */
  /* active: the owner went past its fast paths (heap_note_active) since
   * the purger's last pass, which clears it.  A live thread with no such
   * call for four passes (the decay) is quiet (set by the purger, cleared by the
   * owner's next such call): other threads' frees into its pages then go
   * straight back to them (their remote lists), not into the freer's
   * foreign cache.  Held there, a block the freer then allocated stayed
   * another thread's, so each of its later frees was remote too, for
   * good: in mimalloc-bench's larson, whose main thread allocates every
   * block and then sleeps while the workers replace them, 21-47% of all
   * frees went that way, and the foreign caches' refills and switches took
   * a fifth of the time.  Both on a line of their own, read by every such
   * free and written at most once a pass: on the medium cache's line, and
   * a count bumped on every call, made larson-2t 16% slower. */
  _Alignas(64) _Atomic uint8_t active;
  _Atomic uint8_t quiet;
  uint8_t idle_passes; /* the purger's: passes since `active` was last seen set */
} ebb_heap_t;

/* The owner went past its fast paths: it is not quiet (ebb_heap_t.quiet).
 * Written only when the purger has cleared `active` or marked it quiet. */
EBB_INLINE void heap_note_active(ebb_heap_t *heap) {
  if (unlikely(!atomic_load_explicit(&heap->active, memory_order_relaxed) ||
               atomic_load_explicit(&heap->quiet, memory_order_relaxed))) {
    atomic_store_explicit(&heap->active, 1, memory_order_relaxed);
    atomic_store_explicit(&heap->quiet, 0, memory_order_relaxed);
  }
}

/* ---- global state -------------------------------------------------------- */
extern ebb_page_t ebb_empty_page;
extern ebb_heap_t ebb_empty_heap;
extern __thread ebb_heap_t *ebb_tls_heap;

/* One byte per 4 MiB of address space below 2^48 (64 MiB of zero pages,
 * touched only where ebb maps): tells ebb's pointers from others' without
 * touching memory that may not be mapped. */
#define EBB_ADDRESS_BITS 48
#define EBB_SEGMAP_SIZE ((size_t)1 << (EBB_ADDRESS_BITS - EBB_SEGMENT_SHIFT))
enum {
  EBB_SEGMAP_NONE = 0,
  EBB_SEGMAP_SEGMENT = 1, /* a segment (normal or huge) starts here */
  EBB_SEGMAP_SHIFTED = 2, /* a huge block aligned to >= 4 MiB starts here; its
                             header is one segment below */
};
/* Written with __atomic stores, read plainly (one byte) on the free path. */
extern uint8_t ebb_segmap[EBB_SEGMAP_SIZE];

EBB_INLINE unsigned segmap_get(uintptr_t addr) {
  uintptr_t unit = addr >> EBB_SEGMENT_SHIFT;
  if (unlikely(unit >= EBB_SEGMAP_SIZE)) return EBB_SEGMAP_NONE;
  return ebb_segmap[unit];
}
EBB_INLINE void segmap_set(uintptr_t addr, unsigned value) {
  __atomic_store_n(&ebb_segmap[addr >> EBB_SEGMENT_SHIFT], (uint8_t)value, __ATOMIC_RELEASE);
}

/* A number unique to the running thread, cheap to read: the thread pointer
 * (the TCB address) where the architecture has a register for it. */
EBB_INLINE uintptr_t ebb_thread_id(void) {
#if defined(__x86_64__)
  uintptr_t tp;
  __asm__("mov %%fs:0, %0" : "=r"(tp));
  return tp;
#elif defined(__aarch64__)
  uintptr_t tp;
  __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
  return tp;
#else
  return (uintptr_t)&ebb_tls_heap;
#endif
}

EBB_INLINE ebb_segment_t *segment_of(const void *p) {
  return (ebb_segment_t *)((uintptr_t)p & ~(uintptr_t)EBB_SEGMENT_MASK);
}
/* The head descriptor of the page holding p (p inside a normal segment):
 * slice i's descriptor sits at byte 128 + 256*i of the segment. */
EBB_INLINE ebb_page_t *page_of(ebb_segment_t *seg, const void *p) {
  _Static_assert(sizeof(ebb_page_t) == (1u << (EBB_SLICE_SHIFT - 8)), "descriptor size");
  uintptr_t at = ((uintptr_t)p >> 8) & ((EBB_SLICES_PER_SEGMENT - 1) * sizeof(ebb_page_t));
  ebb_page_t *page = (ebb_page_t *)((uint8_t *)seg->pages + at);
  return (ebb_page_t *)((uint8_t *)page - page->head_delta);
}

/* Is p the start of a block handed out from `page`?  One multiply: with
 * magic = ceil(2^64 / block_size), an offset below 2^32 is a multiple of
 * block_size exactly when offset*magic (mod 2^64) is small; for the k-th
 * block it is k*e with e = block_size*magic - 2^64, so a bound on it also
 * rejects blocks past the page's last.  Power-of-two sizes (e = 0) use
 * magic 2^64/block_size + 1 instead, which leaves the offset itself for
 * the blocks and a large value for any other (page_set_geometry).  An
 * offset past 2^32 (a pointer far from the page, as a corrupted link may
 * be) passes only by a chance of about bound/2^64.  A zeroed or retired
 * descriptor has bound 0 and rejects everything. */
EBB_INLINE bool page_is_block_start(const ebb_page_t *page, const void *p) {
  uint64_t offset = (uint64_t)((uintptr_t)p - (uintptr_t)page->start);
  return offset * page->block_magic < page->block_bound;
}

/* page->thread_free holds the list of blocks other threads freed and, in
 * its top 16 bits, how many: the owner takes the count with the list,
 * without walking it.  The list's blocks were written last by other cores:
 * walking them to count cost 38% of larson-8t's time (perf).  A page holds
 * at most 8192 blocks; the count saturates, which only blocks freed twice
 * can reach, and is then reported as a double free. */
#define EBB_TF_COUNT_SHIFT 48
#define EBB_TF_COUNT_MAX 0xFFFFu
EBB_INLINE ebb_block_t *tf_list(uintptr_t word) {
  return (ebb_block_t *)(word & (((uintptr_t)1 << EBB_TF_COUNT_SHIFT) - 1));
}
EBB_INLINE uint32_t tf_count(uintptr_t word) { return (uint32_t)(word >> EBB_TF_COUNT_SHIFT); }

/* The first remote free into a full page of seg since its owner last
 * looked: raise the owner's flag (an abandoned segment has no owner; its
 * next owner collects every page anyway).  A stale owner only looks in
 * vain. */
EBB_INLINE void segment_notify_remote(ebb_segment_t *seg) {
  ebb_heap_t *owner = atomic_load_explicit(&seg->owner, memory_order_seq_cst);
  if (owner == NULL) return;
  if (atomic_load_explicit(&owner->remote_pending, memory_order_seq_cst) == 0)
    atomic_store_explicit(&owner->remote_pending, 1, memory_order_seq_cst);
}

/* Something was pushed onto the page's remote list, or the purger made
 * holes of its blocks.  If the page sits on its owner's full list, tell the
 * owner where to look.  Safe after the push: segments and heaps are never
 * unmapped. */
EBB_INLINE void page_remote_pushed(ebb_segment_t *seg, ebb_page_t *page) {
  if (unlikely(atomic_load_explicit(&page->in_full, memory_order_seq_cst))) {
    uint64_t bit = (uint64_t)1 << (size_t)(page - seg->pages);
    if (!(atomic_load_explicit(&seg->remote_full, memory_order_seq_cst) & bit) &&
        atomic_fetch_or_explicit(&seg->remote_full, bit, memory_order_seq_cst) == 0)
      segment_notify_remote(seg);
  }
}

/* Push `count` blocks first..last (linked) onto the page's remote list: a
 * remote free (one block), or the purger returning a list it borrowed. */
EBB_INLINE void page_remote_push(ebb_segment_t *seg, ebb_page_t *page, ebb_block_t *first,
                                 ebb_block_t *last, uint32_t count) {
  uintptr_t old = atomic_load_explicit(&page->thread_free, memory_order_relaxed), word;
  do {
    block_set_next(last, tf_list(old));
    uint32_t n = tf_count(old) + count;
    word = (uintptr_t)first | ((uintptr_t)(n < EBB_TF_COUNT_MAX ? n : EBB_TF_COUNT_MAX) << EBB_TF_COUNT_SHIFT);
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &old, word,
                                                  memory_order_seq_cst, memory_order_relaxed));
  page_remote_pushed(seg, page);
}

/* Holes the purger made in the page (remote_holes) become the owner's:
 * marked purged, their blocks off the used count.  Any thread that owns the
 * page's lists calls it (page.c). */
void page_take_remote_holes(ebb_page_t *page);
/* Free blocks not on any list: holes of the owner's, or the purger's not yet
 * taken in. */
EBB_INLINE bool page_has_holes(const ebb_page_t *page) {
  return page->purged != 0 || atomic_load_explicit(&page->remote_holes, memory_order_relaxed) != 0;
}

EBB_INLINE void page_set_owner_thread(ebb_page_t *page, uintptr_t id) {
  __atomic_store_n(&page->owner_thread, id, __ATOMIC_RELEASE);
}
EBB_INLINE size_t page_index(ebb_segment_t *seg, ebb_page_t *page) {
  return (size_t)(page - seg->pages);
}
EBB_INLINE uint8_t *slice_start(ebb_segment_t *seg, size_t i) {
  return (uint8_t *)seg + i * EBB_SLICE_SIZE;
}
/* Blocks handed out.  While armed (sparse_at > 0) the count is kept
 * sparse_at lower, so its sign says "dropped to sparse_at"; while quiet,
 * one higher. */
EBB_INLINE uint32_t page_used(const ebb_page_t *page) {
  int64_t v = page->used_minus_one;
  if (v < EBB_USED_FULL_BIAS / 2) v -= EBB_USED_FULL_BIAS;
  return (uint32_t)(v + 1 + page->sparse_at - page->quiet);
}
EBB_INLINE bool page_marked_full(const ebb_page_t *page) {
  return page->used_minus_one < EBB_USED_FULL_BIAS / 2;
}
EBB_INLINE void page_mark_full(ebb_page_t *page, bool full) {
  if (full != page_marked_full(page))
    page->used_minus_one += full ? EBB_USED_FULL_BIAS : -EBB_USED_FULL_BIAS;
}
/* Count the page one higher while direct[] names it (page.c,
 * heap_direct_refresh); never twice, or the count stays one too high. */
EBB_INLINE void page_set_quiet(ebb_page_t *page, bool quiet) {
  if (quiet != (bool)page->quiet) {
    page->used_minus_one += quiet ? 1 : -1;
    page->quiet = quiet;
  }
}
/* Hand out the first block of the page's (non-empty) free list. */
#if EBB_SECURE
void secure_check_popped(ebb_page_t *page, ebb_block_t *block); /* alloc.c */
/* The fast paths' rare cases, as tail calls: a popped block that failed the
 * block-start test (a foreign cache's, or a bad link: reported), and a
 * freed block to look for on the lists before it is pushed. */
void *secure_pop_checked(ebb_page_t *page);
void secure_free_checked(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block);
/* Freed memory is filled after the link word, up to EBB_SECURE_FILL bytes
 * (whole blocks up to 64 B, most blocks by count; the first cache line of
 * larger ones, where headers and pointers sit), so a use after free reads
 * a pattern, not the old contents.  With 256 B (and a stack frame on the
 * fast paths) tight_random took 2.2x the normal build's time; 1.4x now.
 * Plain word stores: a call to memset, or the `rep stos` the compiler
 * makes of the loop unless told not to, cost more than the rest of a small
 * free (tight_fixed ran 3.7x longer with it). */
#define EBB_SECURE_FILL 64u
/* Blocks carved in a random order among each other (page.c, page_extend). */
#define EBB_SECURE_SHUFFLE 8u
typedef uint64_t ebb_fill16_t __attribute__((vector_size(16), aligned(8)));
EBB_INLINE void secure_fill_freed(const ebb_page_t *page, void *p) {
  size_t n = page->block_size;
  uint64_t *word = (uint64_t *)p;
  if (n >= EBB_SECURE_FILL) {
    /* bytes 8-63 in four 16-byte stores (the last two overlap): the word
     * loop took seven stores and fourteen more instructions */
    const ebb_fill16_t pattern = {0xdfdfdfdfdfdfdfdfull, 0xdfdfdfdfdfdfdfdfull};
    *(ebb_fill16_t *)(word + 1) = pattern;
    *(ebb_fill16_t *)(word + 3) = pattern;
    *(ebb_fill16_t *)(word + 5) = pattern;
    *(ebb_fill16_t *)(word + 6) = pattern;
    return;
  }
  for (size_t i = 1; i < n / 8; i++) {
    word[i] = 0xdfdfdfdfdfdfdfdfull;
    __asm__ volatile("" : : "r"(word) : "memory"); /* no memset, no rep stos */
  }
}
#endif
/* The link of a block being handed out.  The secure build clears it, so
 * that only a block on a free list holds a valid encoded link. */
EBB_INLINE ebb_block_t *block_take_next(ebb_block_t *block) {
  ebb_block_t *next = block_next(block);
#if EBB_SECURE
  block->next = NULL;
#endif
  return next;
}
EBB_INLINE ebb_block_t *page_pop(ebb_page_t *page) {
  ebb_block_t *block = page->free;
#if EBB_SECURE
  if (unlikely(!page_is_block_start(page, block))) secure_check_popped(page, block);
#endif
  page->free = block_take_next(block);
  page->used_minus_one++;
  page->alloc_count++;
  return block;
}
/* The owner's free of a block of its page.  In the normal build it goes
 * on `free` itself, so the next malloc of the class takes the block freed
 * last, whose lines this core just touched: popping `free` while the
 * owner's frees waited on local_free took blocks freed long before, cold
 * (in the Rust service demo, the load of the popped block's link took 91%
 * of ebb_malloc's samples, and the server's CPU per request was 11% higher;
 * README, "Free lists").  The secure build delays reuse instead: its frees
 * wait on local_free until `free` runs dry. */
EBB_INLINE void page_push_owned(ebb_page_t *page, ebb_block_t *block) {
#if EBB_SECURE
  block_set_next(block, page->local_free);
  page->local_free = block;
#else
  block_set_next(block, page->free);
  page->free = block;
  page->is_zero = 0;
#endif
}
/* The block page_push_owned pushed last. */
EBB_INLINE ebb_block_t *page_last_owned_free(const ebb_page_t *page) {
#if EBB_SECURE
  return page->local_free;
#else
  return page->free;
#endif
}
/* Zero a block for calloc: fresh memory (is_zero) has only its link set. */
EBB_INLINE void block_zero(ebb_block_t *block, size_t size, bool is_zero) {
  if (is_zero) block->next = NULL;
  else __builtin_memset(block, 0, size);
}
EBB_INLINE void *page_take(ebb_page_t *page, size_t size, bool zero) {
  bool is_zero = page->is_zero;
  ebb_block_t *block = page_pop(page);
  if (zero) block_zero(block, size, is_zero);
  return block;
}
/* Hand out the page's next block never carved (its free lists empty and
 * no purged holes): nothing is written to it, so only its user touches it. */
EBB_INLINE ebb_block_t *page_carve_one(ebb_page_t *page) {
  ebb_block_t *block = (ebb_block_t *)(page->start + (size_t)page->capacity * page->block_size);
  page->capacity++;
  page->used_minus_one++;
  page->alloc_count++;
  return block;
}
void page_set_geometry(ebb_page_t *page, size_t block_size, uint32_t reserved);
void page_descriptors_clear(ebb_segment_t *seg, ebb_page_t *page);

/* Visit the head descriptor of every page in use.  Free slices may hold
 * stale descriptors, so they advance by one; a page advances by its span
 * (read before the body, which may free the page). */
#define FOR_EACH_PAGE(seg, page)                                                  \
  for (size_t i_ = 1, n_ = 1; i_ < EBB_SLICES_PER_SEGMENT; i_ += n_)              \
    if (!(((seg)->used_slices >> i_) & 1)) {                                      \
      n_ = 1;                                                                     \
    } else                                                                        \
      for (ebb_page_t *page = &(seg)->pages[i_];                                  \
           page && ((n_ = page->slice_count ? page->slice_count : 1), 1); page = NULL)

/* ---- os.c: the OS layer -------------------------------------------------- */
extern size_t ebb_os_page_size;
EBB_INLINE size_t round_page(size_t n) { return (n + ebb_os_page_size - 1) & ~(ebb_os_page_size - 1); }
extern _Atomic size_t ebb_os_mapped_bytes; /* address space ebb holds */
extern _Atomic size_t ebb_huge_bytes, ebb_huge_count;
void os_init(void);
void *os_map(size_t size);                 /* NULL + ENOMEM on failure */
void *os_map_aligned(size_t size, size_t alignment, size_t offset);
void os_unmap(void *p, size_t size);
/* Ranges to give back, gathered for one system call.  Every madvise that
 * takes resident pages waits for the other CPUs running this process to
 * drop their TLB entries (an IPI each): beside busy CPUs that wait, not the
 * bytes, was the purge's cost (README, "At 00559a4: fewer purge calls").  A
 * batch goes to the kernel as one process_madvise, one flush for all its
 * ranges, where the kernel takes it (6.13 and later take MADV_DONTNEED for
 * the process itself; 6.15 the self pidfd), and as one madvise per range
 * elsewhere.  Its ranges must stay the caller's (not reused, not unmapped)
 * until it is flushed. */
#define EBB_PURGE_BATCH 64
typedef struct {
  struct { void *base; size_t len; } range[EBB_PURGE_BATCH]; /* laid out as struct iovec */
  size_t count;
  bool kept_contents; /* some range went by MADV_FREE: may not read as zero */
} ebb_purge_batch_t;
extern _Atomic int ebb_os_vector_purge_refused; /* the kernel refused process_madvise: madvise per range */
/* Add a range (flushing first if the batch is full). */
void os_purge_batch_add(ebb_purge_batch_t *batch, void *p, size_t size);
/* Give back every range added; true if all of them now read as zero. */
bool os_purge_batch_flush(ebb_purge_batch_t *batch);
EBB_INLINE void os_purge_batch_init(ebb_purge_batch_t *batch) {
  batch->count = 0;
  batch->kept_contents = false;
}
EBB_INLINE size_t os_purge_batch_room(const ebb_purge_batch_t *batch) { return EBB_PURGE_BATCH - batch->count; }
void os_futex_wait(_Atomic uint32_t *word, uint32_t expected, long long timeout_ms); /* -1: no timeout */
void os_futex_wake(_Atomic uint32_t *word, int count);
void os_write_all(int fd, const char *buf, size_t n); /* write(2) until done; never allocates */
size_t os_rss_bytes(void);                  /* the process's RSS from /proc, 0 if unknown */
uint32_t os_clock_ms(void);                 /* a monotonic millisecond clock (wraps) */
uint32_t os_clock_ms_coarse(void);          /* the same, to a few ms, and cheaper to read */
uint64_t os_unix_ms(void);                  /* wall clock: ms since the Unix epoch */
/* Has memory stamped `stamp` been free for decay_ms at `now`?  Never for a
 * negative decay; a stamp taken after `now` (freed while a pass runs) is not
 * old, it is young: the difference is signed. */
EBB_INLINE bool decay_reached(uint32_t now, uint32_t stamp, long long decay_ms) {
  return decay_ms >= 0 && (long long)(int32_t)(now - stamp) >= decay_ms;
}
extern _Atomic uint64_t ebb_stat_mmap_calls, ebb_stat_munmap_calls, ebb_stat_purge_calls,
    ebb_stat_purged_bytes, ebb_stat_purge_passes;
#if EBB_SECURE
bool os_protect(void *p, size_t size, bool accessible);
#endif
void *os_remap_aligned(void *old, size_t old_size, size_t new_size, size_t alignment, size_t offset);
bool os_move_over(void *src, size_t size, void *dest);
EBB_COLD void ebb_fatal_pointer(const char *call, const void *p, const char *reason)
    __attribute__((noreturn));
/* A free list walk met more blocks than its page can hold (a cycle: a block
 * freed twice), or a link that is not a block of the list's page: report
 * the block reached, never walk on for ever or follow the link. */
#define EBB_REASON_LIST_LOOP "double free (a free list loops back on itself)"
#define EBB_REASON_BAD_LINK "heap corruption (a freed block's link was overwritten)"
void ebb_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ebb_note(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* "ebb: ..." (verbose) */

/* ---- sync.c: the allocator's lock -----------------------------------------
 * Waiters spin briefly, then sleep on a futex: a holder that is descheduled
 * (a busy host, a CPU-throttled container) never has waiters burning the
 * CPU it needs.  Taking a free lock is one compare-exchange, dropping it one
 * exchange; only a drop that finds a sleeper makes a system call. */
void lock_acquire_contended(ebb_lock_t *l);
void lock_wake(ebb_lock_t *l);
/* How many of ebb's locks this thread holds or is taking: a fork from a
 * signal handler that interrupted ebb must not wait for a lock its own
 * thread holds (heap.c).  Counted before a lock is taken and after it is
 * dropped, so that a handler never sees 0 while its thread holds one
 * (the signal fences keep the compiler from moving the count across). */
extern __thread uint32_t ebb_locks_held;
EBB_INLINE void locks_held_add(int32_t n) {
  atomic_signal_fence(memory_order_seq_cst);
  ebb_locks_held += (uint32_t)n;
  atomic_signal_fence(memory_order_seq_cst);
}
EBB_INLINE bool lock_try(ebb_lock_t *l) {
  uint32_t expected = 0;
  if (atomic_load_explicit(&l->held, memory_order_relaxed) != 0) return false;
  locks_held_add(1);
  if (atomic_compare_exchange_strong_explicit(&l->held, &expected, 1, memory_order_acquire,
                                              memory_order_relaxed))
    return true;
  locks_held_add(-1);
  return false;
}
/* Without lock_try's first look: for a lock whose line is usually in
 * another core's cache, where a look then a compare-exchange fetch it twice. */
EBB_INLINE void lock_acquire_blind(ebb_lock_t *l) {
  uint32_t expected = 0;
  locks_held_add(1);
  if (unlikely(!atomic_compare_exchange_strong_explicit(&l->held, &expected, 1, memory_order_acquire,
                                                        memory_order_relaxed))) {
    locks_held_add(-1);
    lock_acquire_contended(l); /* counts it */
  }
}
EBB_INLINE void lock_acquire(ebb_lock_t *l) {
  if (unlikely(!lock_try(l))) lock_acquire_contended(l);
}
EBB_INLINE void lock_release(ebb_lock_t *l) {
  if (unlikely(atomic_exchange_explicit(&l->held, 0, memory_order_release) == 2)) lock_wake(l);
  locks_held_add(-1);
}
/* In a fork child: no other thread is left to hold it. */
EBB_INLINE void lock_reset(ebb_lock_t *l) { atomic_store(&l->held, 0); }

/* ---- segment.c: segments, spans, the pool, abandonment ------------------- */
int find_free_run(uint64_t used, size_t count); /* first run of `count` clear bits, or -1 */
ebb_page_t *segment_page_alloc(ebb_heap_t *heap, size_t slices, size_t min_slices, bool one_block);
/* A thread with no segment of its own freeing a block of an abandoned
 * segment adopts the segment (false: it is not on the abandoned list, e.g.
 * in the purger's hands). */
bool segment_reclaim_on_free(ebb_heap_t *heap, ebb_segment_t *seg);
/* A page from a free run of the heap's own segments only (NULL: none has room). */
ebb_page_t *segment_page_alloc_owned(ebb_heap_t *heap, size_t slices);
void segment_page_free(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page);
#define EBB_REMOTE_FULL_LENT ((uint64_t)1)
void segment_slices_returned(ebb_heap_t *heap, ebb_segment_t *seg);
void *huge_alloc(size_t size, size_t alignment, bool zero);
void huge_free(ebb_segment_t *seg, ebb_page_t *page);
void *huge_realloc(ebb_segment_t *seg, ebb_page_t *page, size_t size);
ebb_segment_t *huge_segment_of_shifted(const void *p);
void segments_abandon(ebb_heap_t *heap);
void segments_release_cached(ebb_heap_t *heap);
void segments_reclaim_all(ebb_heap_t *heap);
/* Adopt abandoned segments until one brings a page of class cls with room
 * (at most a few); true if the heap's queue for cls now has a page. */
bool segments_reclaim_for_class(ebb_heap_t *heap, unsigned cls);
/* The purger's pass over abandoned segments: take in what other threads
 * freed to their pages, give back pages left empty, and once nothing was
 * freed there for decay_ms, the OS pages no live block touches.  Returns
 * the bytes waiting for their decay. */
size_t segments_purge_abandoned(uint32_t now, long long decay_ms, bool force);
void segment_locks_prefork(void);
void segment_locks_postfork(bool child);
extern _Atomic(ebb_segment_t *) ebb_all_segments; /* every normal segment, newest first */
/* Memory ebb holds that may be resident: every mapping, less the normal
 * segments' slices purged or never written (the hard limit's measure). */
size_t segments_committed_bytes(void);
/* Free slices still resident, and slices in use, over all normal segments. */
size_t segments_free_resident_bytes(void);
size_t segments_used_bytes(void);
/* Add seg's free resident slices to hist by age: hist[k] holds those freed
 * 2^(k-1) to 2^k ms ago (hist[0]: this millisecond; the last, all older). */
#define EBB_AGE_BUCKETS 16
void segment_free_ages(ebb_segment_t *seg, uint32_t now, size_t hist[EBB_AGE_BUCKETS]);
/* Free slices of several segments claimed for one purge call: claimed
 * (marked purging, so no page takes them) by segment_purge_free, given
 * back and released by segment_purge_finish, which the walk calls at its
 * end and segment_purge_free whenever the batch is full. */
typedef struct {
  ebb_purge_batch_t os;
  struct { ebb_segment_t *seg; uint64_t slices; } claim[EBB_PURGE_BATCH];
  size_t claims;
} ebb_slice_purge_t;
EBB_INLINE void segment_purge_init(ebb_slice_purge_t *sp) {
  os_purge_batch_init(&sp->os);
  sp->claims = 0;
}
/* Claim `seg`'s free slices that were freed at least decay_ms ago (all of
 * them if force) into sp.  Returns the bytes still free and dirty (work
 * left). */
size_t segment_purge_free(ebb_segment_t *seg, uint32_t now, long long decay_ms, bool force,
                          ebb_slice_purge_t *sp);
void segment_purge_finish(ebb_slice_purge_t *sp);
/* Give back what `seg`'s one-slice pages hold resident past their carving,
 * inherited from earlier pages of their slices, once they have held the
 * slice for decay_ms (at once if force).  Returns the bytes still waiting. */
size_t segment_trim_stale(ebb_segment_t *seg, uint32_t now, long long decay_ms, bool force);
/* Unmap cached huge mappings older than decay_ms (all if force); returns
 * the bytes still cached. */
size_t huge_cache_decay(uint32_t now, long long decay_ms, bool force);
size_t huge_cache_bytes_held(void);
extern _Atomic size_t ebb_huge_usable_bytes, ebb_huge_requested_bytes;

/* ---- page.c: carving, collecting, queues --------------------------------- */
void *page_alloc_slow(ebb_heap_t *heap, size_t size, unsigned cls, bool zero);
void page_collect(ebb_page_t *page);
void page_collect_all(ebb_page_t *page); /* page_collect, then nothing left on local_free */
void page_init(ebb_segment_t *seg, ebb_page_t *page, unsigned cls, size_t block_size,
               bool zero);
void page_after_local_free(ebb_heap_t *heap, ebb_page_t *page);
void page_after_collect(ebb_heap_t *heap, ebb_page_t *page);
void page_enqueue(ebb_heap_t *heap, ebb_page_t *page);
void page_unqueue(ebb_heap_t *heap, ebb_page_t *page);
void heap_handle_remote_full(ebb_heap_t *heap);
void heap_collect(ebb_heap_t *heap, bool force);
void page_harvest_stats(ebb_page_t *page);
void page_recarve(ebb_page_t *page);
void page_queue_push(ebb_page_queue_t *q, ebb_page_t *page);
void page_queue_remove(ebb_page_queue_t *q, ebb_page_t *page);
void page_enqueue_front(ebb_heap_t *heap, ebb_page_t *page);
/* Point class cls's direct[] entries where the fast path should look: the
 * foreign cache while its bit is set, else the class's first page. */
void heap_direct_refresh(ebb_heap_t *heap, unsigned cls);
/* Take the quiet count off the pages direct[] names (internal.h,
 * used_minus_one): the thread is leaving them. */
void heap_quiet_release(ebb_heap_t *heap);
/* Once, first in ebb_init: the tables heap_direct_refresh reads. */
void page_tables_init(void);

/* A page with fewer than a 32nd of its blocks free, or with at most two
 * that are at most an eighth, is mostly used: it is packed already, and
 * taken as the current page it would serve a few allocations before the
 * slow path came back.  Taking the fullest page whatever its free count
 * did that in mimalloc-bench's alloc-test (random frees over every page of
 * a class; 5.1 million mallocs): 291,000 slow paths, 12,700 with the
 * 32nd.  An eighth alone: 11,400, but larson-2t's peak RSS 17 -> 21 MiB,
 * its pages at 7/8 used passed over for emptier ones.  The two blocks are
 * for pages of few big blocks (16 of 4 KiB, 8 of 8 KiB), whose 32nd is
 * zero: in this repo's alloc_test (sizes up to 8 KiB, random frees) they
 * took the slow path for a block or two at a time, 630,000 slow paths in
 * 2.5 million mallocs, about 450 instructions each.  The eighth keeps
 * pages of under 8 blocks (large pages, and medium pages while their class
 * ramps up) choosing the fullest as before; a medium page of 8-14 blocks
 * with one free now counts as mostly used too. */
EBB_INLINE bool page_mostly_used(const ebb_page_t *page, uint32_t used) {
  uint32_t free_blocks = page->reserved - used;
  return free_blocks < page->reserved / 32 || (free_blocks <= 2 && free_blocks * 8 <= page->reserved);
}

/* ---- purge.c: decay, sparse pages, the background purger, the limit ------ */
/* The span a purge unit covers in `page`, and how many units it has. */
size_t page_unit_size(const ebb_page_t *page);
/* The purge units (bit u: unit u) that block i of a page touches. */
EBB_INLINE uint64_t block_units(size_t i, size_t block_size, size_t unit) {
  size_t first = i * block_size / unit, last = ((i + 1) * block_size - 1) / unit;
  return (last >= 63 ? ~(uint64_t)0 : (((uint64_t)1 << (last + 1)) - 1)) & ~(((uint64_t)1 << first) - 1);
}
/* The blocks [*lo, *hi) that purge unit u touches, below `cap`. */
EBB_INLINE void unit_blocks(size_t u, size_t unit, size_t block_size, size_t cap, size_t *lo, size_t *hi) {
  *lo = u * unit / block_size;
  *hi = ((u + 1) * unit + block_size - 1) / block_size;
  if (*hi > cap) *hi = cap;
}
/* Give back the OS pages of `page` that hold no live block.  The caller
 * owns the page's free lists (its owner, or the purger for a sparse page). */
size_t page_purge_free_units(ebb_page_t *page);
/* The same in two steps: plan (under whatever guards the page's lists:
 * marks the units purged, takes their blocks off the free list) and apply
 * (the ranges into a batch, flushed while the page is still marked busy:
 * the madvise calls need no lock then). */
uint64_t page_purge_plan(ebb_page_t *page);
size_t page_purge_apply(ebb_page_t *page, uint64_t units, ebb_purge_batch_t *batch);
/* Arm the sparse trap (a page that was full): one store and one subtract. */
EBB_INLINE void page_arm_sparse(ebb_page_t *page) {
  if (page->sparse_at != 0 || page->sparse_mark == 0) return;
  page->sparse_at = page->sparse_mark;
  page->used_minus_one -= page->sparse_mark;
}
EBB_INLINE void page_disarm_sparse(ebb_page_t *page) {
  page->used_minus_one += page->sparse_at;
  page->sparse_at = 0;
}
uint16_t page_sparse_mark(const ebb_page_t *page);
void heap_detach_sparse(ebb_heap_t *heap, ebb_page_t *page);
ebb_page_t *heap_reattach_sparse(ebb_heap_t *heap, unsigned cls);
/* page->detached: on a sparse list, DIRTY (free memory not purged; stamped
 * when detached), PURGED, or FRESH: purged, then freed into, not yet
 * stamped.  Frees into a DIRTY page keep its stamp (its decay runs from the
 * detach); the purger stamps a FRESH page when it sees it, so the owner's
 * frees never read the clock.  The purger adds BUSY while it works on the
 * page off the list. */
enum { DETACHED_DIRTY = 1, DETACHED_PURGED = 2, DETACHED_FRESH = 3, DETACHED_BUSY = 4 };
bool heap_free_sparse_rare(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block);
/* The owner frees a block of its own sparse page: under the heap's sparse
 * lock (never waiting: false sends the caller down the atomic path), so the
 * count stays exact.  Inline: a program that frees most of what it
 * allocated frees the last eighth of many pages this way. */
EBB_INLINE bool heap_free_sparse(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block) {
  if (!lock_try(&heap->sparse_lock)) return false;
  /* Detached, the page is neither full nor armed: used is used_minus_one + 1. */
  int32_t used_minus_one = page->used_minus_one;
  if (unlikely((page->detached & DETACHED_BUSY) || used_minus_one <= 0))
    return heap_free_sparse_rare(heap, page, block); /* busy, freed twice, or now empty */
  block_set_next(block, page->local_free);
  page->local_free = block;
  page->used_minus_one = used_minus_one - 1;
  if (page->detached == DETACHED_PURGED) page->detached = DETACHED_FRESH;
  lock_release(&heap->sparse_lock);
  return true;
}
void heap_reattach_all(ebb_heap_t *heap);
void purge_notify(void);           /* something became free: the purger may have work */
void purge_on_growth(void);        /* clean slices were taken: purge if too many wait resident */
void purge_start_if_due(void);     /* start the purger once ebb maps enough; never wakes it */
extern _Atomic bool ebb_purge_inline; /* no purger thread: the slow paths call purge_notify */
void purge_all_now(void);          /* ebb_collect(true): everything free, whatever the decay */
/* Before mapping `bytes` more: purge eagerly near the memory limit; false
 * (errno ENOMEM) if a hard limit forbids it. */
bool purge_limit_admit(size_t bytes);
size_t purge_memory_limit(void);
void purge_init(void);
void purge_prefork(void);
void purge_postfork(bool child);
extern _Atomic(ebb_heap_t *) ebb_all_heaps;

/* ---- stats.c ------------------------------------------------------------- */
extern _Atomic uint64_t ebb_stat_retired_allocs[EBB_CLASS_COUNT];
extern _Atomic uint64_t ebb_stat_retired_remote_frees, ebb_stat_huge_allocs, ebb_stat_huge_frees;
void stats_retire_heap(ebb_heap_t *heap); /* a heap's counters outlive its thread */
void stats_periodic(uint32_t now);        /* EBB_STATS_INTERVAL, from the purger */
/* The path with each "%p" replaced by the process id (a program and the
 * programs it runs each get their own file); false if it does not fit. */
bool path_with_pid(const char *pattern, char *out, size_t size);

/* ---- heap.c: thread heaps, and the shared heaps of medium and large blocks */
ebb_heap_t *heap_get_or_create(void);
/* This thread's heap went away at its exit: a free in a later destructor
 * does not make it a new one, and its allocations come from the shared
 * heaps (alloc.c, thread_exited). */
extern __thread bool ebb_heap_exited;
/* The shared heaps of medium and large blocks: a class belongs to one. */
#define EBB_SHARED_HEAPS 4
EBB_INLINE unsigned shared_slot_of(unsigned cls) { return cls % EBB_SHARED_HEAPS; }
typedef struct {
  ebb_lock_t lock;
  _Atomic(ebb_heap_t *) heap; /* made once, under the lock */
  /* Blocks freed while the lock could not be waited for (a free made under
   * it, or the purger's): pushed here, taken in by the next holder. */
  _Atomic(ebb_block_t *) deferred;
  char pad_[64 - 3 * sizeof(uintptr_t)];
} ebb_shared_slot_t;
extern ebb_shared_slot_t ebb_shared[EBB_SHARED_HEAPS];
/* Bit i: this thread holds shared heap i's lock.  Thread-local, so the
 * check costs no shared cache line. */
extern __thread uint8_t ebb_shared_held;
EBB_INLINE bool shared_heap_held_here(unsigned slot) { return (ebb_shared_held >> slot) & 1; }
ebb_heap_t *shared_heap_create_locked(unsigned slot);
/* Shared heap `slot`, locked (created on first use); NULL with errno ENOMEM if
 * it cannot be made.  The caller first checks shared_heap_held_here: an
 * allocation or free made while this thread holds it (pthread_create
 * starting the purger, say) must not wait for itself.  Inline: every
 * medium and large allocation and free takes it. */
void shared_drain_deferred(ebb_heap_t *heap); /* alloc.c */
EBB_INLINE ebb_heap_t *shared_heap_lock(unsigned slot) {
  lock_acquire_blind(&ebb_shared[slot].lock);
  ebb_shared_held |= (uint8_t)(1u << slot);
  ebb_heap_t *heap = atomic_load_explicit(&ebb_shared[slot].heap, memory_order_relaxed);
  if (unlikely(heap == NULL)) return shared_heap_create_locked(slot);
  if (unlikely(atomic_load_explicit(&ebb_shared[slot].deferred, memory_order_relaxed) != NULL))
    shared_drain_deferred(heap);
  return heap;
}
EBB_INLINE void shared_heap_unlock(ebb_heap_t *heap) {
  unsigned slot = heap->shared_slot;
  ebb_shared_held &= (uint8_t)~(1u << slot);
  lock_release(&ebb_shared[slot].lock);
}
/* The shared heap locked if it exists (and, without wait, if its lock is
 * free), else NULL. */
ebb_heap_t *shared_heap_lock_existing(unsigned slot, bool wait);
/* The sampled heap (sample.c), made on first use; the caller holds
 * ebb_sampled_lock, which guards it and the sampler's tables.  NULL if no
 * memory. */
extern ebb_lock_t ebb_sampled_lock;
ebb_heap_t *sampled_heap_get_locked(void);
void ebb_init(void);

/* ---- alloc.c: the slow paths behind fastpath.h --------------------------- */
EBB_INLINE _Atomic(ebb_block_t *) *medium_cache_slot(ebb_heap_t *heap, unsigned cls) {
  return &heap->medium_cache[cls - EBB_SMALL_CLASS_MAX - 1];
}
/* Give the blocks in `heap`'s medium cache back to the shared heaps; with
 * wait, under their locks (never while holding the purger's), else without
 * waiting (a busy heap gets them as other threads' frees). */
void medium_cache_flush(ebb_heap_t *heap, bool wait);
/* Give the blocks in the calling thread's foreign cache back to their
 * pages.  Only the owner may: the fast path pops that cache with plain
 * loads and stores. */
void foreign_cache_flush(ebb_heap_t *heap);
/* The owner used its cache (only it writes the count). */
EBB_INLINE void medium_cache_touch(ebb_heap_t *heap) {
  atomic_store_explicit(&heap->medium_cache_ops,
                        atomic_load_explicit(&heap->medium_cache_ops, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}
void *alloc_generic(size_t size, bool zero);
void *alloc_aligned(size_t alignment, size_t size, bool zero);
void free_generic(void *p, const char *call, size_t checked_size);
void free_not_owned(struct ebb_segment *seg, ebb_page_t *page, void *p);
void *realloc_generic(void *p, size_t size, size_t alignment, const char *call);
size_t usable_size_checked(const void *p, const char *call);

/* ---- sample.c: sampled allocations (the heap profiler's input) -------------
 * Off (rate 0), nothing here runs: alloc_generic reads one global.  On, each
 * thread counts down the bytes it allocates; the allocation that crosses zero
 * is sampled (its stack recorded, its block taken from the sampled heap,
 * whose pages' owner mark sends their frees to sample_free) and a new
 * distance is drawn, exponential with mean `rate`: a Poisson process over the
 * bytes allocated, so an allocation of s bytes is sampled with probability
 * 1 - exp(-s/rate) whatever the sizes around it.  Classes up to 1 KiB keep
 * a countdown each (heap->prof_left) and hand the fast path grants that
 * end just before their next sample (alloc.c, alloc_small_sampled). */
extern _Atomic size_t ebb_sample_rate;        /* bytes; 0: off */
extern __thread int64_t ebb_sample_left;      /* bytes to the next sample */
extern _Atomic size_t ebb_sample_huge_live;   /* sampled huge blocks not yet freed */
bool sample_expired(void);                    /* the countdown passed zero: sample this one? */
int64_t sample_distance(void);                /* a new distance to the next sample, >= 1 */
bool sample_allowed(void);                    /* not inside the sampler (its own allocations) */
EBB_INLINE bool sample_due(size_t size) {
  if (likely(atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed) == 0)) return false;
  ebb_sample_left -= (int64_t)(size < ((size_t)1 << 62) ? size : ((size_t)1 << 62));
  return unlikely(ebb_sample_left < 0) && sample_expired();
}
/* The sampled block: cls 0 for a huge one (with `alignment`, 0: none);
 * `charged`: the bytes the countdown was charged (its probability). */
void *sample_alloc(size_t size, size_t charged, unsigned cls, size_t alignment, bool zero);
bool sample_lock_held_here(void);                   /* this thread is inside the sampler's lock */
void sample_free(ebb_page_t *page, void *p);         /* a block of the sampled heap */
void sample_forget_huge(const void *p);              /* a huge block freed: sampled? */
void sample_moved_huge(const void *old, void *now, size_t size); /* mremap moved it */
/* One call site's sampled allocations, scaled to estimates of all of them. */
typedef struct {
  const uintptr_t *frames; /* return addresses, the allocating call first */
  uint32_t depth;
  double live_count, live_bytes, alloc_count, alloc_bytes;
} ebb_sample_site_t;
/* The sites with live or allocated estimates, copied under the lock into
 * memory from os_map (*out; os_unmap(*out, *map_size) when done); 0 if none
 * or no memory.  Frames stay valid for the process's life. */
size_t sample_sites(ebb_sample_site_t **out, size_t *map_size);

/* ---- unwind.c: the profiler's stacks ---------------------------------------
 * The return addresses above the caller's frame, the caller's own first, at
 * most `max`; -1 when a frame needs what this unwinder does not do (a
 * signal frame, a DWARF expression) or on a platform it does not know
 * (anything but x86-64 glibc >= 2.35): the caller then uses backtrace(). */
int unwind_stack(uintptr_t *out, int max);
/* This thread's stack, [*lo, *hi); false if it cannot be known. */
bool thread_stack_bounds(uintptr_t *lo, uintptr_t *hi);

/* ---- options.c: EBB_* environment variables and ebb_option_get/set -------- */
#define EBB_PATH_MAX 256
typedef struct ebb_options {
  long long decay_ms;          /* -1: never purge on time */
  long long stats_interval_ms; /* 0: off */
  size_t memory_limit;         /* explicit limit, 0: none given */
  bool madv_free, hard_limit, background, show_stats, verbose;
  char stats_file[EBB_PATH_MAX];
  char show_stats_file[EBB_PATH_MAX]; /* the exit table goes here ("%p": the pid) */
  char cgroup_path[EBB_PATH_MAX];
  bool prof;                   /* sample allocations from the start */
  size_t prof_rate;            /* mean bytes between samples */
  long long prof_interval_ms;  /* dump every so often (0: at exit only) */
  char prof_file[EBB_PATH_MAX]; /* where dumps go ("%p": the pid) */
} ebb_options_t;
extern ebb_options_t ebb_opt; /* read plainly; written once at init or by ebb_option_set */
void options_init(void);      /* once, from ebb_init: read the environment */

/* ---- prof.c: the heap profiler's outputs (pprof, collapsed stacks) -------- */
void prof_init(void);                    /* from ebb_init: EBB_PROF starts sampling */
void prof_options_changed(void);         /* ebb_option_set changed a prof option */
void prof_periodic(uint32_t now);        /* prof_interval dumps, from the purger */
void prof_at_exit(void);                 /* the exit dump to prof_file */
/* The top `n` call sites by live bytes, one line each, for the verdict;
 * the number written. */
size_t prof_top_sites(char *buf, size_t size, unsigned n);

/* ---- cgroup.c: the container's memory limit ------------------------------ */
/* The memory limit of the cgroup this process is in (the smallest along its
 * path; cgroup v2 memory.max or v1 memory.limit_in_bytes), 0 if none.
 * `where` overrides /sys/fs/cgroup: a cgroup directory (its memory.max or
 * memory.limit_in_bytes is read) or a file holding the limit.  Allocates
 * nothing. */
size_t os_cgroup_memory_limit(const char *where);

#endif /* EBB_INTERNAL_H */
