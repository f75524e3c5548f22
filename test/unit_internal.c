/* Unit tests of ebb's internal arithmetic: size classes, the one-multiply
 * block-start check (exhaustively, for every class's page geometry), and
 * the slice-run search.  Linked with build/libebb.a. */
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

static void test_size_classes(void) {
  size_t prev = 0;
  for (unsigned c = 1; c < EBB_CLASS_COUNT; c++) {
    size_t s = class_size(c);
    CHECK(s > prev);          /* strictly increasing */
    CHECK(s % 8 == 0);
    if (s > 8) CHECK(s % 16 == 0); /* malloc's 16-byte alignment */
    CHECK(size_class_of(s) == c);      /* a class size maps to itself */
    CHECK(size_class_of(prev + 1) == c); /* and so does the smallest size in it */
    if (s > 128) {
      /* rounding waste at most 12.5% of the request */
      CHECK((s - (prev + 1)) * 8 <= prev + 1);
    }
    prev = s;
  }
  CHECK(class_size(EBB_CLASS_COUNT - 1) == EBB_LARGE_MAX);
  CHECK(class_size(EBB_SMALL_CLASS_MAX) == EBB_SMALL_MAX && class_size(EBB_SMALL_CLASS_MAX + 1) > EBB_SMALL_MAX);
  CHECK(class_size(EBB_MEDIUM_CLASS_MAX) == EBB_MEDIUM_MAX && class_size(EBB_MEDIUM_CLASS_MAX + 1) > EBB_MEDIUM_MAX);
  CHECK(!class_is_shared(EBB_SMALL_CLASS_MAX) && class_is_shared(EBB_SMALL_CLASS_MAX + 1) && class_is_shared(EBB_MEDIUM_CLASS_MAX) && class_is_shared(EBB_MEDIUM_CLASS_MAX + 1) && class_is_shared(EBB_CLASS_COUNT - 1));
  CHECK(class_size(EBB_MEDIUM_CACHE_CLASS_MAX) == ((size_t)32 << 10) && class_is_shared(EBB_MEDIUM_CACHE_CLASS_MAX));
  CHECK(size_class_of(0) == 1);
  /* every size up to the largest class gets a class that fits it */
  for (size_t n = 0; n <= EBB_LARGE_MAX; n += (n < 65536 ? 1 : 61)) {
    unsigned c = size_class_of(n);
    CHECK(c >= 1 && c < EBB_CLASS_COUNT);
    CHECK(class_size(c) >= n);
    CHECK(c == 1 || class_size(c - 1) < n);
  }
  /* direct[] above 1 KiB gives each entry one class: the boundaries there are multiples of its step */
  for (unsigned c = size_class_of(EBB_DIRECT_MAX); c <= EBB_SMALL_CLASS_MAX; c++)
    CHECK(class_size(c) % ((size_t)1 << EBB_DIRECT_MID_SHIFT) == 0);
  /* powers of two are classes (aligned requests rely on it) */
  for (size_t a = 8; a <= EBB_LARGE_MAX; a <<= 1) CHECK(class_size(size_class_of(a)) == a);
}

/* The contract of page_is_block_start: page_of() only ever pairs a
 * pointer with the descriptor of the span it lies in (free slices and the
 * header slice have cleared descriptors), so the check must be exact for
 * every offset inside the span.  Only single-block pages (large and huge)
 * can be paired with a pointer before their start (a huge block's header
 * region), and must reject it. */
static void test_block_start_check(void) {
  static ebb_page_t page;
  for (unsigned c = 1; c < EBB_CLASS_COUNT; c++) {
    size_t bs = class_size(c);
    size_t span = page_slices_for(bs) * EBB_SLICE_SIZE;
    uint32_t reserved = (uint32_t)(span / bs);
    memset(&page, 0, sizeof page);
    page.start = (uint8_t *)(uintptr_t)0x7f0000400000ull;
    page_set_geometry(&page, bs, reserved);
    size_t errors = 0;
    for (size_t off = 0; off < span; off++) {
      bool want = off % bs == 0 && off / bs < reserved;
      bool got = page_is_block_start(&page, page.start + off);
      if (want != got && errors++ < 3)
        fprintf(stderr, "class %u (bs %zu): offset %zu: want %d got %d\n", c, bs, off, want, got);
    }
    if (reserved == 1)
      for (size_t back = 1; back <= 65536; back++)
        if (page_is_block_start(&page, page.start - back) && errors++ < 3)
          fprintf(stderr, "class %u: accepted start-%zu\n", c, back);
    CHECK(errors == 0);
  }
  /* a huge block's geometry: only its start */
  memset(&page, 0, sizeof page);
  page.start = (uint8_t *)(uintptr_t)0x7f0000401000ull;
  page_set_geometry(&page, (size_t)64 << 20, 1);
  CHECK(page_is_block_start(&page, page.start));
  for (size_t off = 1; off < EBB_SEGMENT_SIZE; off += 8) {
    CHECK(!page_is_block_start(&page, page.start + off) || off == 0);
    if (off < 4096) CHECK(!page_is_block_start(&page, page.start - off));
  }
  /* a cleared descriptor rejects everything */
  memset(&page, 0, sizeof page);
  for (uintptr_t p = 0; p < 1 << 20; p += 8) CHECK(!page_is_block_start(&page, (void *)p));
}

/* The secure build checks links that may point anywhere (a corrupted one):
 * the test must reject NULL, the rest of the page's segment past its span
 * or before its start, and random addresses, for every class and many
 * page starts.  (Power-of-two sizes used to accept any multiple.) */
static void test_block_start_far(void) {
  static ebb_page_t page;
  uint64_t rng = 12345;
  size_t errors = 0;
  for (unsigned c = 1; c < EBB_CLASS_COUNT; c++) {
    size_t bs = class_size(c);
    size_t span = page_slices_for(bs) * EBB_SLICE_SIZE;
    uint32_t reserved = (uint32_t)(span / bs);
    for (int s = 0; s < 64; s++) {
      memset(&page, 0, sizeof page);
      uintptr_t start = ((uintptr_t)(test_rand(&rng) % ((uintptr_t)1 << 47)) & ~(uintptr_t)(EBB_SLICE_SIZE - 1)) +
                        EBB_SLICE_SIZE;
      page.start = (uint8_t *)start;
      page_set_geometry(&page, bs, reserved);
      if (page_is_block_start(&page, NULL) && errors++ < 3)
        fprintf(stderr, "class %u: NULL accepted (start %#lx)\n", c, (unsigned long)start);
      for (size_t off = span; off < span + EBB_SEGMENT_SIZE; off += bs)
        if (page_is_block_start(&page, page.start + off) && errors++ < 3)
          fprintf(stderr, "class %u: start+%zu accepted past the span\n", c, off);
      for (size_t back = bs; back <= EBB_SEGMENT_SIZE && back <= start; back += bs)
        if (page_is_block_start(&page, page.start - back) && errors++ < 3)
          fprintf(stderr, "class %u: start-%zu accepted\n", c, back);
      for (int r = 0; r < 2000; r++) {
        uintptr_t p = (uintptr_t)test_rand(&rng) & ~(uintptr_t)7;
        if ((uint64_t)(p - start) < span) continue;
        if (page_is_block_start(&page, (void *)p) && errors++ < 3)
          fprintf(stderr, "class %u: random %#lx accepted\n", c, (unsigned long)p);
      }
    }
  }
  CHECK(errors == 0);
}

static void test_find_free_run(void) {
  uint64_t state = 7;
  for (int iter = 0; iter < 20000; iter++) {
    uint64_t used = test_rand(&state) & test_rand(&state); /* sparse-ish */
    if (iter % 3 == 0) used |= test_rand(&state);
    size_t count = 1 + test_rand(&state) % 64;
    int got = find_free_run(used, count);
    int want = -1;
    for (size_t i = 0; i + count <= 64 && want < 0; i++) {
      uint64_t m = (count == 64 ? ~(uint64_t)0 : (((uint64_t)1 << count) - 1)) << i;
      if ((used & m) == 0) want = (int)i;
    }
    if (got != want) fprintf(stderr, "used %016llx count %zu: want %d got %d\n",
                             (unsigned long long)used, count, want, got);
    CHECK(got == want);
  }
  CHECK(find_free_run(0, 64) == 0);
  CHECK(find_free_run(1, 63) == 1);
  CHECK(find_free_run(1, 64) == -1);
}

/* The allocator's lock: mutual exclusion under contention, and waiters that
 * sleep while the holder is away instead of spinning or yielding. */
static ebb_lock_t test_lock;
static long test_lock_counter;

static void *lock_counter_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 200000; i++) {
    lock_acquire(&test_lock);
    long v = test_lock_counter; /* not atomic: the lock must exclude */
    __asm__ volatile("" ::: "memory");
    test_lock_counter = v + 1;
    lock_release(&test_lock);
  }
  return NULL;
}

static double thread_cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *lock_waiter_thread(void *arg) {
  double *cpu = arg;
  double start = thread_cpu_seconds();
  lock_acquire(&test_lock);
  lock_release(&test_lock);
  *cpu = thread_cpu_seconds() - start;
  return NULL;
}

static void test_lock_behaviour(void) {
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, lock_counter_thread, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK(test_lock_counter == 4L * 200000);
  CHECK(atomic_load(&test_lock.held) == 0);

  /* A holder that is away for 400 ms (descheduled, in a page fault...):
   * its waiters must not burn the CPU meanwhile.  A spin-then-yield lock
   * uses nearly all of it on an idle core; a futex sleeper almost none. */
  double cpu[2] = {0, 0};
  lock_acquire(&test_lock);
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, lock_waiter_thread, &cpu[i]);
  struct timespec away = {0, 400 * 1000 * 1000};
  nanosleep(&away, NULL);
  lock_release(&test_lock);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 2; i++) {
    if (cpu[i] >= 0.1) fprintf(stderr, "waiter %d used %.3f s of CPU while the lock was held\n", i, cpu[i]);
    CHECK(cpu[i] < 0.1);
  }
  CHECK(atomic_load(&test_lock.held) == 0);
}

/* Fill four pages of `size`'s class: the first three end on the full
 * list, the fourth is the class's current page, its blocks all handed
 * out.  Then free to_free(reserved)[k] blocks of page k (k < 3), malloc
 * twice, and return the index of the page both came from (-1: another). */
typedef void (*to_free_fn)(uint32_t reserved, uint32_t to_free[3]);
static int slow_path_choice(size_t size, to_free_fn plan) {
  enum { PAGES = 4, MAX = 4096 };
  static void *blocks[MAX];
  ebb_page_t *pages[PAGES];
  unsigned cls = size_class_of(size);
  int n = 0, made = 0;
  while (n < MAX) {
    void *p = ebb_malloc(size);
    ebb_page_t *page = page_of(segment_of(p), p);
    if (made == 0 || pages[made - 1] != page) {
      if (made == PAGES) {
        ebb_free(p);
        break;
      }
      pages[made++] = page;
    }
    blocks[n++] = p;
    if (made == PAGES && page->capacity == page->reserved && page->free == NULL) break;
  }
  CHECK(made == PAGES);
  ebb_heap_t *heap = ebb_tls_heap; /* made by the first malloc */
  uint32_t to_free[3], freed[3] = {0, 0, 0};
  plan(pages[0]->reserved, to_free);
  for (int i = 0; i < n; i++) {
    ebb_page_t *page = page_of(segment_of(blocks[i]), blocks[i]);
    for (int k = 0; k < 3; k++)
      if (page == pages[k] && freed[k] < to_free[k]) {
        ebb_free(blocks[i]);
        blocks[i] = NULL;
        freed[k]++;
      }
  }
  void *p = ebb_malloc(size);
  void *q = ebb_malloc(size); /* the fast path: direct[] names the chosen page */
  ebb_page_t *chosen = page_of(segment_of(p), p);
  int index = -1;
  for (int k = 0; k < PAGES; k++)
    if (chosen == pages[k]) index = k;
  CHECK(heap->queues[cls].first == chosen);
  CHECK(page_of(segment_of(q), q) == chosen);
  ebb_free(p);
  ebb_free(q);
  for (int i = 0; i < n; i++) ebb_free(blocks[i]);
  return index;
}

/* Many blocks a page: page 0 with 2 blocks free (under a 32nd: mostly
 * used), page 1 half, page 2 three quarters.  Fullest first would take
 * page 0. */
static void plan_many(uint32_t reserved, uint32_t to_free[3]) {
  CHECK(reserved >= 64);
  to_free[0] = 2;
  to_free[1] = reserved / 2;
  to_free[2] = reserved * 3 / 4;
}
/* Few big blocks (16 of 4 KiB): page 0 with 2 free (a 32nd is 0, but two
 * blocks are mostly used), page 1 with 4, page 2 half.  Fullest first, or
 * the 32nd alone, would take page 0 and be back for two blocks' time. */
static void plan_few(uint32_t reserved, uint32_t to_free[3]) {
  CHECK(reserved >= 16 && reserved < 32);
  to_free[0] = 2;
  to_free[1] = 4;
  to_free[2] = reserved / 2;
}
/* The slow path's choice among pages with free blocks: the fullest one
 * that is not mostly used (a 32nd of its blocks or more free, and more
 * than two or an eighth), not a page with a few free blocks, which sent
 * every few mallocs back to the slow path (mimalloc-bench's alloc-test:
 * 291,000 slow paths in 5.1 million mallocs, 12,700 with this).  Run
 * first: the class's pages are the four made here. */
static void test_slow_path_candidates(void) {
  CHECK(slow_path_choice(320, plan_many) == 1);
  CHECK(slow_path_choice(4096, plan_few) == 1);
  /* The rule itself, at its edges (free = reserved - used). */
  static ebb_page_t page;
  page.reserved = 128;
  CHECK(page_mostly_used(&page, 125) && !page_mostly_used(&page, 124)); /* 3 free: under a 32nd */
  page.reserved = 16;
  CHECK(page_mostly_used(&page, 14) && !page_mostly_used(&page, 13)); /* at most two */
  page.reserved = 8;
  CHECK(page_mostly_used(&page, 7) && !page_mostly_used(&page, 6)); /* an eighth: one */
  page.reserved = 7;
  CHECK(!page_mostly_used(&page, 6) && page_mostly_used(&page, 7)); /* under 8 blocks: only full */
}

/* Sizes from 1 KiB to 8 KiB take the fast path through direct[]'s entries
 * after the 1,025 byte-indexed ones: after a class's first malloc, every
 * size of the class names its page there, the sizes on either side name
 * other classes' entries, and a malloc of every size gets a block that
 * fits from the class's page. */
static void test_direct_mid(void) {
  enum { CLASSES = EBB_SMALL_CLASS_MAX + 1 };
  static void *blocks[CLASSES];
  unsigned first = size_class_of(EBB_DIRECT_MAX + 1);
  for (unsigned c = first; c <= EBB_SMALL_CLASS_MAX; c++) blocks[c] = ebb_malloc(class_size(c));
  ebb_heap_t *heap = ebb_tls_heap;
  for (unsigned c = first; c <= EBB_SMALL_CLASS_MAX; c++) {
    ebb_page_t *page = page_of(segment_of(blocks[c]), blocks[c]);
    CHECK(page->class_idx == c);
    size_t lo = class_size(c - 1) + 1, hi = class_size(c);
    for (size_t n = lo; n <= hi; n++) CHECK(heap->direct[direct_index(n)] == page);
    if (c > first) CHECK(heap->direct[direct_index(lo - 1)] != page);
    if (c < EBB_SMALL_CLASS_MAX) CHECK(heap->direct[direct_index(hi + 1)] != page);
    for (size_t n = lo; n <= hi; n++) {
      void *q = ebb_malloc(n);
      ebb_page_t *qpage = page_of(segment_of(q), q);
      CHECK(qpage == page && qpage->block_size >= n);
      ebb_free(q);
    }
  }
  for (unsigned c = first; c <= EBB_SMALL_CLASS_MAX; c++) ebb_free(blocks[c]);
}

/* A small class's current page that went empty is kept for a malloc/free
 * loop, but not while the program moves on through other classes: then it
 * goes back to its segment (page.c, heap_retire_empty_current). */
static void test_empty_current_page_retired(void) {
  enum { N = 512 };
  static void *blocks[N];
  unsigned cls = size_class_of(1000);
  for (int i = 0; i < N; i++) blocks[i] = ebb_malloc(1000);
  for (int i = 0; i < N; i++) ebb_free(blocks[i]);
  ebb_heap_t *heap = ebb_tls_heap;
  CHECK(heap->queues[cls].first != NULL); /* kept: it is the class's current page */
  CHECK(page_used(heap->queues[cls].first) == 0);
  /* Other classes, a page's worth each: many slow paths. */
  for (size_t size = 16; size <= 512; size += 16) {
    for (int i = 0; i < N; i++) blocks[i] = ebb_malloc(size);
    for (int i = 0; i < N; i++) ebb_free(blocks[i]);
  }
  CHECK(heap->queues[cls].first == NULL);
}

/* The page direct[] names is quiet: counted one higher, so the free that
 * empties it raises no event (no call, no bit for the retire check, which
 * looks at the count itself, as test_empty_current_page_retired shows);
 * the class's next page takes the quiet count over from it, and a thread
 * that exits takes the count off its pages, so the thread that adopts
 * them reads them as any other. */
static void *keep_one_block(void *arg) {
  void **out = arg;
  *out = ebb_malloc(200);
  return NULL;
}
static void test_current_page_quiet(void) {
  ebb_heap_t *heap = ebb_tls_heap;
  if (atomic_load(&ebb_purge_inline)) return; /* no purger thread: pages are never quiet */
  void *p = ebb_malloc(200);
  ebb_page_t *page = page_of(segment_of(p), p);
  uint64_t bit = (uint64_t)1 << page->class_idx;
  CHECK(heap->direct[direct_index(200)] == page && page->quiet == 1 && (heap->quiet_classes & bit));
  heap->empty_current = 0;
  size_t before = page_used(page);
  ebb_free(p);
  CHECK(page_used(page) == before - 1);
  if (before == 1) CHECK(page->used_minus_one == 0 && (heap->empty_current & bit) == 0);
  /* A page filled: the class moves to another page, which is quiet now. */
  enum { N = 400 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = ebb_malloc(200);
  ebb_page_t *now = heap->direct[direct_index(200)];
  CHECK(now != page && now->quiet == 1 && page->quiet == 0);
  for (int i = 0; i < N; i++) ebb_free(blocks[i]);
  /* Another thread's page, after its exit. */
  pthread_t t;
  void *kept = NULL;
  CHECK(pthread_create(&t, NULL, keep_one_block, &kept) == 0 && pthread_join(t, NULL) == 0);
  ebb_page_t *left = page_of(segment_of(kept), kept);
  CHECK(left->quiet == 0 && page_used(left) == 1 && left->used_minus_one == 0);
  ebb_free(kept);
}

/* A thread leaves with a sparse page the purger holds (10 blocks live)
 * and its class's queue empty: taking the sparse page back as it leaves
 * made it its class's page again, and quiet, after the release, so the
 * thread that adopted it counted it one higher a second time: 11 blocks
 * live for 10, and a double free of the last one missed.  Found by a
 * review; ebb_collect stands in for time passing. */
enum { LEFT_N = 3000, LEFT_KEPT = 10 };
static void *left_blocks[LEFT_N], *left_kept[LEFT_KEPT];
static void *leave_sparse_page(void *arg) {
  (void)arg;
  for (int i = 0; i < LEFT_N; i++) left_blocks[i] = ebb_malloc(64);
  ebb_page_t *first = page_of(segment_of(left_blocks[0]), left_blocks[0]);
  int kept = 0;
  for (int i = 0; i < LEFT_N; i++) {
    bool on_first = page_of(segment_of(left_blocks[i]), left_blocks[i]) == first;
    if (on_first && kept < LEFT_KEPT) left_kept[kept++] = left_blocks[i];
    else ebb_free(left_blocks[i]);
  }
  ebb_collect(false); /* the emptied current page goes back: the queue is empty */
  return NULL;
}
static void test_quiet_not_left_behind(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, leave_sparse_page, NULL) == 0 && pthread_join(t, NULL) == 0);
  ebb_page_t *page = page_of(segment_of(left_kept[0]), left_kept[0]);
  CHECK(page->quiet == 0 && page_used(page) == LEFT_KEPT);
  ebb_collect(true); /* adopts the exited thread's segment */
  CHECK(page_used(page) == LEFT_KEPT);
  for (int i = 0; i < LEFT_KEPT - 1; i++) ebb_free(left_kept[i]);
  CHECK(page_used(page) == 1);
  ebb_free(left_kept[LEFT_KEPT - 1]);
}

/* ...but not one whose slice holds little resident (a few blocks carved):
 * it stays for the class's next use.  Retired, a class used now and then
 * took a new page at every return (espresso: 65,297 times in 4 s), often
 * on a slice another class had left resident in full. */
static void test_small_current_page_kept(void) {
  enum { N = 512 };
  static void *blocks[N];
  if (ebb_os_page_size > ((size_t)16 << 10)) return; /* one OS page is the whole slice: never kept */
  ebb_collect(true); /* free slices purged: the next page's slice holds nothing */
  unsigned cls = size_class_of(3000);
  void *few[3];
  for (int i = 0; i < 3; i++) few[i] = ebb_malloc(3000);
  ebb_page_t *page = page_of(segment_of(few[0]), few[0]);
  CHECK(page->slice_count == 1 && page->touched > 0 &&
        slice_touched_bytes(page) <= (size_t)16 << 10);
  for (int i = 0; i < 3; i++) ebb_free(few[i]);
  ebb_heap_t *heap = ebb_tls_heap;
  CHECK(heap->queues[cls].first == page && page_used(page) == 0);
  for (size_t size = 16; size <= 512; size += 16) {
    for (int i = 0; i < N; i++) blocks[i] = ebb_malloc(size);
    for (int i = 0; i < N; i++) ebb_free(blocks[i]);
  }
  CHECK(heap->queues[cls].first == page);
  void *again = ebb_malloc(3000);
  CHECK(page_of(segment_of(again), again) == page);
  ebb_free(again);
}

/* A page carves its slice from the start; what an earlier page of the
 * slice carved past that point is free memory, and the purge gives it
 * back (segment.c, segment_trim_stale): ebb_collect(true) here, the
 * purger after the decay.  Pages of 256 classes' worth of blocks are
 * carved in full and retired (as above); a page of one 5000-byte block
 * then takes one of their slices, resident in full. */
static void test_inherited_residency_trimmed(void) {
  enum { N = 512 };
  static void *blocks[N];
  for (size_t size = 16; size <= 512; size += 16) {
    for (int i = 0; i < N; i++) blocks[i] = ebb_malloc(size);
    for (int i = 0; i < N; i++) ebb_free(blocks[i]);
  }
  for (size_t size = 16; size <= 512; size += 16) { /* slow paths: the retire checks */
    for (int i = 0; i < N; i++) blocks[i] = ebb_malloc(size + 520);
    for (int i = 0; i < N; i++) ebb_free(blocks[i]);
  }
  void *one = ebb_malloc(5000);
  ebb_segment_t *seg = segment_of(one);
  ebb_page_t *page = page_of(seg, one);
  CHECK(page->slice_count == 1 && page->touched == EBB_TOUCHED_FULL); /* inherited */
  uint8_t *slice = slice_start(seg, page_index(seg, page));
  size_t carved = (size_t)((uint8_t *)one - slice) + page->capacity * page->block_size;
  carved = (carved + ebb_os_page_size - 1) & ~(ebb_os_page_size - 1);
  ebb_collect(true);
  CHECK(slice_touched_bytes(page) <= carved);
  unsigned char vec[EBB_SLICE_SIZE / 4096];
  size_t pages = (EBB_SLICE_SIZE - carved) / ebb_os_page_size, resident = 0;
  CHECK(mincore(slice + carved, EBB_SLICE_SIZE - carved, vec) == 0);
  for (size_t i = 0; i < pages; i++) resident += vec[i] & 1;
  if (resident != 0) fprintf(stderr, "%zu OS pages past the page's carving still resident\n", resident);
  CHECK(resident == 0);
  ebb_free(one);
}

/* A new thread's first EBB_YOUNG_ALLOCS allocations come from the shared
 * heaps, so a short-lived thread leaves no pages of its own behind; after
 * them, its own pages.  The first thread (main) has its own from the start. */
static void *young_thread(void *arg) {
  (void)arg;
  void *first = ebb_malloc(64);
  CHECK(first != NULL && page_of(segment_of(first), first)->owner_thread == EBB_OWNER_SHARED);
  for (unsigned i = 0; i < EBB_YOUNG_ALLOCS; i++) ebb_free(ebb_malloc(64));
  void *grown = ebb_malloc(64);
  CHECK(grown != NULL && page_of(segment_of(grown), grown)->owner_thread == ebb_thread_id());
  ebb_free(first);
  ebb_free(grown);
  return NULL;
}

static void *short_lived(void *arg) {
  ebb_free(ebb_malloc(64));
  return arg;
}

static void test_young_thread(void) {
  void *mine = ebb_malloc(64);
  CHECK(page_of(segment_of(mine), mine)->owner_thread == ebb_thread_id());
  /* Young only once threads have been seen to end. */
  for (unsigned i = 0; i < EBB_YOUNG_AFTER_EXITS; i++) {
    pthread_t t;
    pthread_create(&t, NULL, short_lived, NULL);
    pthread_join(t, NULL);
  }
  pthread_t t;
  pthread_create(&t, NULL, young_thread, NULL);
  pthread_join(t, NULL);
  ebb_free(mine);
}

/* Every shared heap takes its pages from one group of segments: blocks of
 * medium classes that belong to different shared heaps can share one. */
static void test_medium_group(void) {
  size_t a_size = 20 << 10, b_size = 24 << 10;
  CHECK(shared_slot_of(size_class_of(a_size)) != shared_slot_of(size_class_of(b_size)));
  void *a = ebb_malloc(a_size), *b = ebb_malloc(b_size);
  CHECK(a && b);
  CHECK(segment_of(a) == segment_of(b));
  ebb_free(a);
  ebb_free(b);
}

/* A shared heap's new medium page takes a resident free run of the
 * allocating thread's own segments when the group has none (segment.c,
 * lent pages): the slices its small pages gave back serve the medium
 * block, and come back to the thread's segment when the page empties, also
 * when another thread frees it; the freed run keeps the shared mark.  A
 * lent page outlives its thread: the segment is abandoned with it, and a
 * thread that adopts the segment leaves the page alone. */
static void *free_block(void *p) {
  ebb_free(p);
  return NULL;
}

static void *lend_pages(void *arg) {
  enum { SMALL = 4096 };
  static void *small[SMALL];
  /* Past its young allocations (if it has any), which use the shared heaps'
   * pages, then nothing resident free anywhere: the group has no run. */
  for (unsigned i = 0; i <= EBB_YOUNG_ALLOCS; i++) ebb_free(ebb_malloc(16));
  ebb_collect(true);
  for (int i = 0; i < SMALL; i++) small[i] = ebb_malloc(256); /* 16 pages of 256 B */
  for (int i = 0; i < SMALL; i++) ebb_free(small[i]);
  ebb_heap_t *heap = ebb_tls_heap;
  size_t n = 48 << 10; /* above the medium cache's classes */
  void *p = ebb_malloc(n);
  CHECK(p != NULL);
  if (p == NULL) return NULL;
  ebb_segment_t *seg = segment_of(p);
  ebb_page_t *page = page_of(seg, p);
  CHECK(atomic_load(&seg->owner) == heap);
  CHECK(page_is_lent(page));
  size_t slice = page_index(seg, page);
  memset(p, 7, n);
  ebb_free(p); /* the page empties: its run is the thread's again */
  CHECK(((seg->used_slices >> slice) & 1) == 0);
  CHECK(seg->pages[slice].owner_thread == EBB_OWNER_SHARED); /* the mark stays */
  /* Freed by another thread while this one lives: the run comes back, and
   * the owner is told (bit 0 of remote_full). */
  void *q = ebb_malloc(n);
  CHECK(q != NULL && segment_of(q) == seg && page_is_lent(page_of(seg, q)));
  size_t q_slice = page_index(seg, page_of(seg, q));
  pthread_t t;
  pthread_create(&t, NULL, free_block, q);
  pthread_join(t, NULL);
  CHECK(((seg->used_slices >> q_slice) & 1) == 0);
  CHECK(seg->pages[q_slice].owner_thread == EBB_OWNER_SHARED);
  CHECK((atomic_load(&seg->remote_full) & EBB_REMOTE_FULL_LENT) != 0);
  CHECK(atomic_load(&heap->remote_pending) != 0);
  *(void **)arg = ebb_malloc(n); /* outlives the thread */
  CHECK(page_is_lent(page_of(segment_of(*(void **)arg), *(void **)arg)));
  memset(*(void **)arg, 9, n);
  return NULL;
}

static void *adopt_after_lender(void *arg) {
  ebb_segment_t *seg = segment_of(arg);
  /* Take in every abandoned segment: the lent page stays the shared heap's. */
  ebb_collect(true);
  ebb_page_t *page = page_of(seg, arg);
  CHECK(page_is_lent(page));
  CHECK(((unsigned char *)arg)[100] == 9);
  return NULL;
}

static void test_medium_page_lent(void) {
  void *left = NULL;
  pthread_t t;
  pthread_create(&t, NULL, lend_pages, &left);
  pthread_join(t, NULL);
  CHECK(left != NULL);
  if (left == NULL) return;
  pthread_create(&t, NULL, adopt_after_lender, left);
  pthread_join(t, NULL);
  ebb_segment_t *seg = segment_of(left);
  size_t slice = page_index(seg, page_of(seg, left));
  ebb_free(left);
  CHECK(((seg->used_slices >> slice) & 1) == 0);
  ebb_collect(true);
}

/* A medium page whose full run of slices fits nowhere in the medium
 * pages' segments is cut to a shorter run there (fewer blocks), rather
 * than taking another segment.  The segments are filled with one-slice
 * runs, then every other run of the last one is given back. */
static void test_medium_page_cut_to_fit(void) {
  enum { MAX_RUNS = 4096 };
  static ebb_page_t *runs[MAX_RUNS];
  ebb_heap_t shared;
  memset(&shared, 0, sizeof shared);
  shared.is_shared = true;
  shared.thread_id = EBB_OWNER_SHARED;
  size_t n = 0;
  ebb_segment_t *last = NULL;
  /* Until a segment is taken fresh (every other one full), then until it
   * is full too. */
  while (n < MAX_RUNS) {
    ebb_page_t *page = segment_page_alloc(&shared, 1, 1, false);
    CHECK(page != NULL);
    if (page == NULL) return;
    runs[n++] = page;
    ebb_segment_t *seg = segment_of(page);
    if (last == NULL && __builtin_popcountll(seg->used_slices) == 2) last = seg;
    if (last != NULL && seg != last) {
      CHECK(!"a run outside the segment being filled");
      break;
    }
    if (last != NULL && ~last->used_slices == 0) break;
  }
  CHECK(last != NULL && ~last->used_slices == 0);
  size_t freed = 0;
  for (size_t i = 0; i < n; i++)
    if (segment_of(runs[i]) == last && page_index(last, runs[i]) % 2 == 0) {
      segment_page_free(&shared, last, runs[i]);
      runs[i] = NULL;
      freed++;
    }
  CHECK(freed >= 30);
  ebb_page_t *cut = segment_page_alloc(&shared, 2, 1, false);
  CHECK(cut != NULL && segment_of(cut) == last && cut->slice_count == 1);
  if (cut) segment_page_free(&shared, segment_of(cut), cut);
  for (size_t i = 0; i < n; i++)
    if (runs[i]) segment_page_free(&shared, segment_of(runs[i]), runs[i]);
}

/* A shared heap's pages of a medium class grow with its use: one block,
 * then two, then four; each page given back halves the next. */
static void test_medium_pages_ramp(void) {
  size_t n = 56 << 10; /* a class no other test uses, above the medium cache's */
  void *p[4];
  uint32_t want[4] = {1, 2, 2, 4}; /* the third block fills the second page */
  for (int i = 0; i < 4; i++) {
    p[i] = ebb_malloc(n);
    CHECK(p[i] != NULL);
    if (p[i] == NULL) return;
    ebb_page_t *page = page_of(segment_of(p[i]), p[i]);
    CHECK(page->reserved == want[i]);
    if (page->reserved != want[i]) fprintf(stderr, "block %d: page of %u blocks\n", i, page->reserved);
  }
  for (int i = 0; i < 4; i++) ebb_free(p[i]);
  void *again = ebb_malloc(n); /* three pages given back: one block again */
  CHECK(again != NULL && page_of(segment_of(again), again)->reserved == 1);
  ebb_free(again);
}

/* A large block (one a page) comes from the shared heaps too: the slices
 * another thread's block gave back serve this thread's next one. */
static void *large_round_trip(void *arg) {
  void *p = ebb_malloc((size_t)1 << 20);
  CHECK(p != NULL);
  ebb_page_t *page = page_of(segment_of(p), p);
  CHECK(page->owner_thread == EBB_OWNER_SHARED && page->slice_count == 16);
  *(void **)arg = p;
  memset(p, 1, (size_t)1 << 20);
  ebb_free(p);
  return NULL;
}

static void test_large_shared(void) {
  ebb_collect(true); /* no other resident free run to prefer */
  void *theirs = NULL;
  pthread_t t;
  pthread_create(&t, NULL, large_round_trip, &theirs);
  pthread_join(t, NULL);
  void *mine = ebb_malloc((size_t)1 << 20);
  CHECK(mine == theirs);
  ebb_free(mine);
}

/* A huge block grown by realloc takes a cached mapping's pages onto its
 * end, where it stands: no second block, no copy, and the cached pages,
 * resident, serve the growth.  (Copied into a cached mapping instead, the
 * block was held twice while it moved.) */
static void test_huge_growth_takes_cached_pages(void) {
  const size_t MiB = (size_t)1 << 20;
  long long decay = ebb_opt.decay_ms;
  ebb_opt.decay_ms = 600000; /* the purger keeps the cache meanwhile */
  ebb_collect(true);
  unsigned char *big = ebb_malloc(40 * MiB);
  CHECK(big != NULL);
  memset(big, 0xA5, 40 * MiB);
  ebb_free(big);
  CHECK(huge_cache_bytes_held() >= 40 * MiB);
  unsigned char *block = ebb_malloc(3 * MiB); /* from the cached mapping's front */
  CHECK(block != NULL);
  for (size_t i = 0; i < 3 * MiB; i += 4096) block[i] = (unsigned char)(i >> 12);
  uint64_t allocs = atomic_load(&ebb_stat_huge_allocs);
  size_t cached = huge_cache_bytes_held();
  unsigned char *grown = ebb_realloc(block, 20 * MiB);
  CHECK(grown != NULL);
  for (size_t i = 0; i < 3 * MiB; i += 4096) CHECK(grown[i] == (unsigned char)(i >> 12));
  CHECK(atomic_load(&ebb_stat_huge_allocs) == allocs); /* no new block */
  CHECK(huge_cache_bytes_held() + 16 * MiB <= cached); /* the growth came from the cache */
  /* The cached pages start at the first 2 MiB boundary past the block's
   * old mapping (here 4 MiB from the mapping's start); before it, fresh. */
  uint8_t *from = (uint8_t *)segment_of(grown) + 4 * MiB;
  size_t pages = (size_t)(grown + 20 * MiB - from) / ebb_os_page_size, resident = 0;
  static unsigned char vec[5120]; /* 20 MiB of 4 KiB pages */
  CHECK(mincore(from, pages * ebb_os_page_size, vec) == 0);
  for (size_t i = 0; i < pages; i++) resident += vec[i] & 1;
  CHECK(resident == pages); /* resident before the program touched it */
  ebb_free(grown);
  ebb_opt.decay_ms = decay;
  ebb_collect(true);
}

/* A medium free made while this thread holds its shared heap's lock is
 * deferred, and taken in (exact counts) by the lock's next holder. */
static void test_shared_deferred_free(void) {
  size_t size = 40 << 10; /* above the thread cache's classes */
  unsigned cls = size_class_of(size), slot = shared_slot_of(cls);
  CHECK(class_is_shared(cls) && cls > EBB_MEDIUM_CACHE_CLASS_MAX);
  void *keep = ebb_malloc(size), *p = ebb_malloc(size);
  CHECK(keep && p);
  ebb_page_t *page = page_of(segment_of(p), p);
  uint32_t used = page_used(page);
  ebb_heap_t *heap = shared_heap_lock(slot);
  ebb_free(p); /* under the lock: may not wait for it */
  CHECK(atomic_load(&ebb_shared[slot].deferred) == (ebb_block_t *)p);
  CHECK(page_used(page) == used);
  shared_heap_unlock(heap);
  heap = shared_heap_lock(slot);
  CHECK(atomic_load(&ebb_shared[slot].deferred) == NULL);
  CHECK(page_used(page) == used - 1);
  shared_heap_unlock(heap);
  ebb_free(keep);
}

/* Other threads' frees carry their count in the page's remote word: the
 * owner takes them in without walking the list. */
static void *free_three(void *arg) {
  void **blocks = arg;
  for (int i = 0; i < 3; i++) ebb_free(blocks[i]);
  return NULL;
}

static void test_remote_free_count(void) {
  void *blocks[4];
  for (int i = 0; i < 4; i++) blocks[i] = ebb_malloc(48);
  ebb_page_t *page = page_of(segment_of(blocks[0]), blocks[0]);
  for (int i = 1; i < 4; i++) CHECK(page_of(segment_of(blocks[i]), blocks[i]) == page);
  uint32_t used = page_used(page);
  pthread_t t;
  pthread_create(&t, NULL, free_three, blocks);
  pthread_join(t, NULL);
  uintptr_t word = atomic_load(&page->thread_free);
  CHECK(tf_count(word) == 3);
  CHECK(tf_list(word) == (ebb_block_t *)blocks[2]); /* the last pushed is first */
  CHECK(page_used(page) == used);
  page_collect_all(page);
  CHECK(atomic_load(&page->thread_free) == 0);
  CHECK(page_used(page) == used - 3);
  ebb_free(blocks[3]);
}

/* A remote free into a full page raises its owner's flag; the owner's next
 * slow path puts the page back in its class queue. */
static void *free_one(void *arg) {
  ebb_free(arg);
  return NULL;
}

static void test_remote_free_into_full_page(void) {
  enum { N = 4096 };
  static void *blocks[N];
  unsigned cls = size_class_of(64);
  for (int i = 0; i < N; i++) blocks[i] = ebb_malloc(64);
  ebb_heap_t *heap = ebb_tls_heap;
  ebb_page_t *page = page_of(segment_of(blocks[0]), blocks[0]);
  CHECK(atomic_load(&page->in_full) == 1); /* filled, and the class moved on */
  pthread_t t;
  pthread_create(&t, NULL, free_one, blocks[0]);
  pthread_join(t, NULL);
  CHECK(atomic_load(&heap->remote_pending) == 1);
  CHECK(atomic_load(&segment_of(blocks[0])->remote_full) != 0);
  /* Take the class to its slow path: use up its current page. */
  ebb_page_t *current = heap->queues[cls].first;
  void *extra[N];
  int n = 0;
  while (heap->queues[cls].first == current && n < N) extra[n++] = ebb_malloc(64);
  CHECK(atomic_load(&heap->remote_pending) == 0);
  CHECK(atomic_load(&page->in_full) == 0);
  for (int i = 0; i < n; i++) ebb_free(extra[i]);
  for (int i = 1; i < N; i++) ebb_free(blocks[i]);
}

/* A thread with a heap keeps the small blocks it frees into other
 * threads' pages (the foreign cache) and hands them out to its own next
 * allocations of their class through direct[]; past the class's bound, and
 * when it exits, they go back to their pages with one push per page. */
enum { FOREIGN_N = 200, FOREIGN_SIZE = 48 };
static void *foreign_blocks[FOREIGN_N];
static void *foreign_user(void *arg) {
  ebb_page_t *page = arg;
  void *own = ebb_malloc(8); /* the thread gets a heap */
  ebb_heap_t *heap = ebb_tls_heap;
  unsigned cls = size_class_of(FOREIGN_SIZE);
  ebb_free(foreign_blocks[0]);
  CHECK(((heap->foreign_active >> cls) & 1) != 0);
  CHECK(heap->direct[FOREIGN_SIZE] == &heap->foreign[cls]);
  CHECK(atomic_load(&page->thread_free) == 0); /* nothing went to the owner */
  void *again = ebb_malloc(FOREIGN_SIZE);
  CHECK(again == foreign_blocks[0]); /* the block comes back to its freer */
  CHECK(ebb_usable_size(again) >= FOREIGN_SIZE);
  ebb_free(again);
  /* Past the bound (4 KiB of the class), the cached list goes back to the
   * owner's page in one push. */
  size_t bound = EBB_FOREIGN_CLASS_BYTES / class_size(cls);
  for (size_t i = 1; i <= bound + 1; i++) ebb_free(foreign_blocks[i]);
  uintptr_t word = atomic_load(&page->thread_free);
  CHECK(tf_count(word) == bound);
  /* The rest stay here until the thread exits. */
  for (size_t i = bound + 2; i < FOREIGN_N; i++) ebb_free(foreign_blocks[i]);
  ebb_free(own);
  return NULL;
}

static void test_foreign_cache(void) {
  for (int i = 0; i < FOREIGN_N; i++) foreign_blocks[i] = ebb_malloc(FOREIGN_SIZE);
  ebb_page_t *page = page_of(segment_of(foreign_blocks[0]), foreign_blocks[0]);
  for (int i = 1; i < FOREIGN_N; i++)
    CHECK(page_of(segment_of(foreign_blocks[i]), foreign_blocks[i]) == page);
  uint32_t used = page_used(page);
  pthread_t t;
  pthread_create(&t, NULL, foreign_user, page);
  pthread_join(t, NULL);
  CHECK(page_used(page) == used); /* not taken in yet */
  page_collect_all(page);
  CHECK(atomic_load(&page->thread_free) == 0);
  CHECK(page_used(page) == used - FOREIGN_N); /* every block came back */
}

/* A foreign cache that runs dry while other threads' blocks still come in
 * is refilled from the thread's own page (a grant), and direct[] keeps
 * naming it; one that runs dry with none come in since closes. */
enum { REFILL_SIZE = 80 };
static void *refill_block;
static void *refill_user(void *arg) {
  (void)arg;
  void *own = ebb_malloc(8); /* the thread gets a heap */
  ebb_heap_t *heap = ebb_tls_heap;
  unsigned cls = size_class_of(REFILL_SIZE);
  uint64_t bit = (uint64_t)1 << cls;
  ebb_page_t *cache = &heap->foreign[cls];
  ebb_free(refill_block); /* opens the cache */
  CHECK((heap->foreign_active & bit) && (heap->foreign_fed & bit));
  CHECK(ebb_malloc(REFILL_SIZE) == refill_block);
  void *mine = ebb_malloc(REFILL_SIZE); /* dry, fed: a refill */
  ebb_page_t *page = page_of(segment_of(mine), mine);
  CHECK(page->owner_thread == heap->thread_id);
  CHECK(heap->foreign_active & bit);
  CHECK(heap->direct[REFILL_SIZE] == cache);
  CHECK(!(heap->foreign_fed & bit));
  uint32_t granted = heap->foreign_granted[cls];
  CHECK(granted >= 1 && granted <= 32 && cache->free != NULL);
  uint32_t used = page_used(page); /* the grant counts as used in its page */
  void *popped[64];
  for (uint32_t i = 0; i < granted; i++) {
    popped[i] = ebb_malloc(REFILL_SIZE);
    CHECK(page_of(segment_of(popped[i]), popped[i]) == page);
  }
  CHECK(cache->free == NULL && page_used(page) == used);
  /* Dry again, nothing fed since: the cache closes. */
  void *next = ebb_malloc(REFILL_SIZE);
  CHECK(!(heap->foreign_active & bit));
  CHECK(heap->direct[REFILL_SIZE] != cache);
  CHECK(page_of(segment_of(next), next) == page);
  for (uint32_t i = 0; i < granted; i++) ebb_free(popped[i]);
  ebb_free(next);
  ebb_free(mine);
  CHECK(page_used(page) == used - granted - 1);
  ebb_free(refill_block);
  ebb_free(own);
  return NULL;
}

static void test_foreign_cache_refill(void) {
  refill_block = ebb_malloc(REFILL_SIZE);
  pthread_t t;
  pthread_create(&t, NULL, refill_user, NULL);
  pthread_join(t, NULL);
}

/* The profiler's unwinder (unwind.c) against glibc's backtrace(): from the
 * second frame on (the first is each one's own call site) the same return
 * addresses, through frames of every shape: rsp-based, rbp-based (a
 * variable-length array), libc's own (qsort calling back), a thread's
 * outermost frames, and a signal handler's (unwound by backtrace: -1). */
#if defined(__GLIBC__)
#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>

static int unwind_checks, unwind_fallbacks;

static EBB_NOINLINE void unwind_compare(void) {
  uintptr_t mine[80];
  void *theirs[80];
  int n_mine = unwind_stack(mine, 80);
  int n_theirs = backtrace(theirs, 80);
  if (n_mine < 0) {
    unwind_fallbacks++;
    return;
  }
  CHECK(n_mine == n_theirs);
  for (int i = 1; i < n_mine && i < n_theirs; i++) CHECK(mine[i] == (uintptr_t)theirs[i]);
  unwind_checks++;
  __asm__ volatile("" ::: "memory"); /* not a tail call: this frame stays */
}

static EBB_NOINLINE int unwind_vla(int n) {
  volatile char buf[n]; /* CFA from rbp */
  buf[0] = (char)n;
  unwind_compare();
  return buf[0];
}

static EBB_NOINLINE int unwind_deep(int depth) {
  volatile int pad[depth + 3];
  pad[0] = depth;
  if (depth == 0) return unwind_vla(100 + pad[0]);
  return unwind_deep(depth - 1) + pad[0];
}

static int unwind_qsort_cmp(const void *a, const void *b) {
  static int once;
  if (!once++) unwind_compare(); /* under libc's qsort */
  return *(const int *)a - *(const int *)b;
}

static void *unwind_thread(void *arg) {
  (void)arg;
  unwind_deep(5);
  return NULL;
}

static void unwind_on_signal(int sig) {
  (void)sig;
  unwind_compare();
}

static void test_unwind(void) {
  unwind_compare();
  unwind_deep(1);
  unwind_deep(40);
  int v[64];
  for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
  qsort(v, 64, sizeof v[0], unwind_qsort_cmp);
  pthread_t t;
  pthread_create(&t, NULL, unwind_thread, NULL);
  pthread_join(t, NULL);
  unwind_deep(3); /* again, from the cache */
#if defined(__x86_64__)
  CHECK(unwind_checks == 6);
#endif
  signal(SIGUSR1, unwind_on_signal);
  raise(SIGUSR1);
  signal(SIGUSR1, SIG_DFL);
  CHECK(unwind_checks + unwind_fallbacks == 7);
#if defined(__x86_64__)
  CHECK(unwind_fallbacks == 1); /* the signal frame */
#endif
}
#else
static void test_unwind(void) { /* musl: stacks follow frame pointers (sample.c) */
  uintptr_t frames[8];
  CHECK(unwind_stack(frames, 8) == -1);
}
#endif

/* While sampling, a loop that frees a block and takes it straight back
 * (the owner's frees go onto the page's free list) is still counted: the
 * profile's estimate of the bytes allocated is about what the loop
 * allocated.  When the fast path was given the page itself, such a loop
 * ran uncounted for ever: the estimate was 0 for 10 million allocations. */
static void test_sampling_counts_recycled_blocks(size_t size) {
  enum { N = 1000000 };
  /* First, a page with blocks on its free list, named by direct[]: the
   * loop below would pop them without a call into the slow path unless
   * turning sampling on pointed the class's entries away. */
  void *first[8];
  for (int i = 0; i < 8; i++) first[i] = ebb_malloc(size);
  for (int i = 1; i < 8; i++) ebb_free(first[i]);
  void *keep = first[0];
  ebb_prof_start(64 << 10);
  for (long i = 0; i < N; i++) {
    void *p = ebb_malloc(size);
    *(volatile char *)p = 1;
    ebb_free(p);
  }
  char path[] = "/tmp/ebb_unit_prof_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  CHECK(ebb_prof_dump(path) == 0);
  ebb_prof_stop();
  ebb_free(keep);
  FILE *f = fopen(path, "r");
  unsigned long long live_n = 0, live_b = 0, all_n = 0, all_b = 0;
  CHECK(f != NULL && fscanf(f, "heap profile: %llu: %llu [%llu: %llu]", &live_n, &live_b, &all_n, &all_b) == 4);
  if (f) fclose(f);
  unlink(path);
  unsigned long long want = (unsigned long long)N * size;
  CHECK(all_b > want / 2 && all_b < want * 2);
}

/* A purge batch gives back exactly its ranges, zeroed, whichever way it
 * reaches the kernel: one process_madvise (with a short count at a range
 * that is not mapped, and a flush when the batch fills), or, where the
 * kernel refuses that, one madvise a range. */
static void purge_batch_round(bool vector) {
  size_t ps = ebb_os_page_size, pages = 200;
  uint8_t *m = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m == MAP_FAILED) return;
  memset(m, 0x5a, pages * ps);
  CHECK(munmap(m + 150 * ps, ps) == 0); /* a hole: the kernel stops there */
  atomic_store(&ebb_os_vector_purge_refused, vector ? 0 : 1);
  bool purged[200] = {false};
  ebb_stats_t st0, st1;
  ebb_stats_get(&st0);
  ebb_purge_batch_t batch;
  os_purge_batch_init(&batch);
  /* 70 single pages, every other one (more than a batch holds) ... */
  for (size_t i = 0; i < 140; i += 2) {
    os_purge_batch_add(&batch, m + i * ps, ps);
    purged[i] = true;
  }
  /* ... three adjacent ones, which make one range, then the hole and a page past it */
  for (size_t i = 142; i < 145; i++) {
    os_purge_batch_add(&batch, m + i * ps, ps);
    purged[i] = true;
  }
  CHECK(batch.range[batch.count - 1].len == 3 * ps);
  os_purge_batch_add(&batch, m + 150 * ps, ps);
  os_purge_batch_add(&batch, m + 160 * ps, ps);
  purged[160] = true;
  CHECK(os_purge_batch_flush(&batch));
  CHECK(batch.count == 0);
  ebb_stats_get(&st1);
  for (size_t i = 0; i < pages; i++) {
    if (i == 150) continue;
    uint8_t want = purged[i] ? 0 : 0x5a;
    if (m[i * ps] != want || m[i * ps + ps - 1] != want) {
      fprintf(stderr, "page %zu: %#x, want %#x\n", i, m[i * ps], want);
      CHECK(0);
      break;
    }
  }
  size_t calls = (size_t)(st1.purge_calls - st0.purge_calls);
  if (!vector) CHECK(calls == 64 + 9); /* a range a call: 64 at the fill, 6 + 1 + 2 at the end */
  else if (!atomic_load(&ebb_os_vector_purge_refused))
    CHECK(calls <= 5); /* the full batch; then the rest, cut short at the hole */
  munmap(m, 150 * ps);
  munmap(m + 151 * ps, (pages - 151) * ps);
}

static void test_purge_batch(void) {
  purge_batch_round(true);
  purge_batch_round(false);
  atomic_store(&ebb_os_vector_purge_refused, 0);
  /* MADV_FREE keeps the contents until the kernel needs the pages: the
   * batch says the ranges may not read as zero. */
  ebb_opt.madv_free = true;
  uint8_t *m = mmap(NULL, 4 * ebb_os_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  memset(m, 1, 4 * ebb_os_page_size);
  ebb_purge_batch_t batch;
  os_purge_batch_init(&batch);
  os_purge_batch_add(&batch, m, ebb_os_page_size);
  os_purge_batch_add(&batch, m + 2 * ebb_os_page_size, ebb_os_page_size);
  CHECK(!os_purge_batch_flush(&batch));
  ebb_opt.madv_free = false;
  munmap(m, 4 * ebb_os_page_size);
}

int main(void) {
  test_slow_path_candidates();
  test_direct_mid();
  test_unwind();
  test_foreign_cache();
  test_foreign_cache_refill();
  test_remote_free_into_full_page();
  test_remote_free_count();
  test_current_page_quiet();
  test_quiet_not_left_behind();
  test_empty_current_page_retired();
  test_small_current_page_kept();
  test_inherited_residency_trimmed();
  test_medium_group();
  test_medium_page_lent();
  test_medium_page_cut_to_fit();
  test_medium_pages_ramp();
  test_young_thread();
  test_shared_deferred_free();
  test_large_shared();
  test_huge_growth_takes_cached_pages();
  test_lock_behaviour();
  test_purge_batch();
  test_size_classes();
  test_block_start_check();
  test_block_start_far();
  test_find_free_run();
  /* Last: they turn sampling on.  4 KiB: a size with a direct[] entry a
   * class (above 1 KiB), pointed away from its page while sampling is on. */
  test_sampling_counts_recycled_blocks(64);
  test_sampling_counts_recycled_blocks(4096);
  TEST_DONE();
}
