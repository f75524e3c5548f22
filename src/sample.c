/* Sampled allocations: the heap profiler's input (prof.c writes it out).
 *
 * Which allocations.  Each thread counts down the bytes it asks for
 * (ebb_sample_left, internal.h); the allocation that takes the count below
 * zero is sampled, and the next distance is drawn from an exponential
 * distribution of mean `rate`.  The bytes sampled are thus a Poisson process:
 * an allocation of s bytes is sampled with probability 1 - exp(-s/rate),
 * whatever was allocated before it and by which thread, so each sample
 * stands for 1/p allocations and s/p bytes (tcmalloc and gperftools sample
 * the same way; the default rate, 512 KiB, is theirs).  Classes up to
 * 1 KiB keep a countdown each and hand the fast path only blocks that
 * cannot reach their next sample (alloc.c, alloc_small_sampled): the fast
 * path itself has no instruction for it.
 *
 * Where a sampled block lives.  In the sampled heap (heap.c), a shared heap
 * of its own whose pages carry EBB_OWNER_SAMPLED: the free path sends such
 * pages aside with the test it already makes for shared heaps, and
 * sample_free forgets the sample.  A huge sampled block is an ordinary
 * huge mapping; while any is live, huge frees look here first.  So no free
 * of an unsampled block pays anything, and no table lookup is made on the
 * way.
 *
 * Stacks.  unwind_stack (unwind.c), a DWARF unwinder that keeps each
 * return address's rule, so that it works for programs built without frame
 * pointers (C, C++ and Rust alike) at a few instructions a frame once a
 * stack has been seen; a stack it cannot walk, or a platform it does not
 * know, goes to glibc's backtrace() (libgcc's unwinder, about 1,000
 * instructions a frame).  Either runs with no ebb lock held; backtrace's
 * first call loads libgcc_s, whose allocations come back here and are not
 * sampled (the thread is marked busy).  Frames in ebb's own API section
 * (EBB_API_TEXT) are dropped, so a stack starts at the program's call.
 * Without glibc (musl) frame pointers are followed, within the thread's
 * stack: a program built with -fno-omit-frame-pointer gets whole stacks,
 * one built without gets what the chain gives, often only the first frames.
 *
 * Tables, all under ebb_sampled_lock and in memory from os_map (never
 * malloc): the call sites (a hash of their frames; never removed, so their
 * frames can be read without the lock once published), and the live
 * samples (open addressing by block address), each naming its site and
 * its weight, subtracted from the site when the block is freed. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "fastpath.h"

#if defined(__GLIBC__)
#include <execinfo.h>
#endif

_Atomic size_t ebb_sample_rate;
__thread int64_t ebb_sample_left;
_Atomic size_t ebb_sample_huge_live;

#define SAMPLE_MAX_DEPTH 64   /* frames recorded */
#define SAMPLE_SITE_BUCKETS 4096

typedef struct sample_site {
  struct sample_site *next_in_bucket;
  struct sample_site *next_site; /* every site, newest first */
  uint64_t hash;
  uint32_t depth;
  double live_count, live_bytes, alloc_count, alloc_bytes;
  uintptr_t frames[];
} sample_site_t;

typedef struct {
  uintptr_t block;       /* 0: empty; 1: removed */
  sample_site_t *site;
  double count, bytes;   /* its weight: 1/p allocations, size/p bytes */
  uintptr_t thread;      /* the allocating thread (a free by another is a remote free) */
} sample_entry_t;

static __thread uint64_t sample_rng;
static __thread bool sample_busy;
static __thread bool sample_started; /* this thread drew its first distance */

/* under ebb_sampled_lock */
static sample_site_t *site_buckets[SAMPLE_SITE_BUCKETS];
static sample_site_t *all_sites;
static size_t site_count;
static uint8_t *arena;           /* the sites' memory, handed out in order */
static size_t arena_left;
static sample_entry_t *live;     /* the live samples' table */
static size_t live_cap, live_used; /* used: live and removed slots */

/* The lock, taken with the thread marked busy: an allocation made under it
 * (pthread_create starting the purger, from a page given back) is not
 * sampled, so it never waits for the lock its thread holds; and an inline
 * purge pass run under it does not dump (prof_periodic asks). */
static __thread bool sampled_lock_here;

static bool sampled_lock(void) {
  bool was_busy = sample_busy;
  sample_busy = true;
  lock_acquire(&ebb_sampled_lock);
  sampled_lock_here = true;
  return was_busy;
}

static void sampled_unlock(bool was_busy) {
  sampled_lock_here = false;
  lock_release(&ebb_sampled_lock);
  sample_busy = was_busy;
}

bool sample_lock_held_here(void) { return sampled_lock_here; }

/* ---- the distances: exponential, without libm ------------------------------ */
static uint64_t rng_next(void) {
  if (sample_rng == 0) sample_rng = (uint64_t)ebb_thread_id() ^ ((uint64_t)os_unix_ms() << 20) ^ 0x9e3779b97f4a7c15ull;
  /* xorshift64* */
  sample_rng ^= sample_rng >> 12;
  sample_rng ^= sample_rng << 25;
  sample_rng ^= sample_rng >> 27;
  return sample_rng * 0x2545f4914f6cdd1dull;
}

/* ln(x) for x > 0: x = m * 2^e with m in [1, 2), ln m = 2 atanh((m-1)/(m+1)),
 * a series in z <= 1/3: relative error below 1e-9 with these terms. */
static double ln(double x) {
  int e = 0;
  while (x >= 2.0) {
    x *= 0.5;
    e++;
  }
  while (x < 1.0) {
    x *= 2.0;
    e--;
  }
  double z = (x - 1.0) / (x + 1.0), z2 = z * z, term = z, sum = 0.0;
  for (int k = 1; k <= 21; k += 2) {
    sum += term / k;
    term *= z2;
  }
  return 2.0 * sum + e * 0.6931471805599453;
}

/* exp(-x) for x >= 0 */
static double exp_neg(double x) {
  if (x > 700.0) return 0.0;
  double r = 1.0;
  while (x > 1.0) { /* e^-x = (e^-1)^n e^-(x-n) */
    r *= 0.36787944117144233;
    x -= 1.0;
  }
  double term = 1.0, sum = 1.0; /* Taylor on [0, 1] */
  for (int k = 1; k <= 18; k++) {
    term *= -x / k;
    sum += term;
  }
  return r * sum;
}

static int64_t draw_distance(size_t rate) {
  double u = (double)((rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
  double d = -ln(u) * (double)rate;
  if (d > 4.0e18) d = 4.0e18;
  return (int64_t)d + 1;
}

int64_t sample_distance(void) {
  size_t rate = atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed);
  return draw_distance(rate ? rate : 1);
}

bool sample_allowed(void) { return !sample_busy; }

/* The count went below zero: sample this allocation, unless the thread
 * is inside the sampler (backtrace's own allocations) or had not drawn its
 * first distance yet; either way a new distance starts, from the end of
 * this allocation (the process is memoryless: where the last event fell
 * inside it does not matter). */
bool sample_expired(void) {
  size_t rate = atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed);
  if (rate == 0) return false;
  bool first = !sample_started;
  sample_started = true;
  ebb_sample_left = draw_distance(rate);
  return !first && !sample_busy;
}

/* ---- stacks ------------------------------------------------------------------ */
extern const char __start_ebb_api_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_ebb_api_text[] __attribute__((weak, visibility("hidden")));

static bool in_ebb_api(uintptr_t pc) {
  return (uintptr_t)__start_ebb_api_text <= pc && pc < (uintptr_t)__stop_ebb_api_text;
}

#if defined(__GLIBC__)
EBB_INLINE int stack_capture(uintptr_t *out, int max) { /* inline: a frame less to unwind */
  void *raw[SAMPLE_MAX_DEPTH + 16];
  int n = unwind_stack((uintptr_t *)raw, SAMPLE_MAX_DEPTH + 16); /* the same frames, cached (unwind.c) */
  if (n < 0) n = backtrace(raw, SAMPLE_MAX_DEPTH + 16);
  int first = 0;
  while (first < n && in_ebb_api((uintptr_t)raw[first])) first++;
  int depth = 0;
  for (int i = first; i < n && depth < max; i++) out[depth++] = (uintptr_t)raw[i];
  return depth;
}
#else
/* Frame pointers, within this thread's stack. */
EBB_INLINE int stack_capture(uintptr_t *out, int max) { /* inline: a frame less to unwind */
  uintptr_t stack_lo, stack_hi;
  if (!thread_stack_bounds(&stack_lo, &stack_hi)) return 0;
  uintptr_t *fp = __builtin_frame_address(0);
  int depth = 0;
  while (depth < max && (uintptr_t)fp >= stack_lo && (uintptr_t)fp + 16 <= stack_hi &&
         ((uintptr_t)fp & (sizeof(uintptr_t) - 1)) == 0) {
    uintptr_t pc = fp[1];
    uintptr_t *next = (uintptr_t *)fp[0];
    if (pc == 0) break;
    if (depth > 0 || !in_ebb_api(pc)) out[depth++] = pc; /* ebb's own frames dropped */
    if (next <= fp) break; /* the chain must climb the stack */
    fp = next;
  }
  return depth;
}
#endif

static uint64_t hash_frames(const uintptr_t *frames, int depth) {
  uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)depth;
  for (int i = 0; i < depth; i++) {
    h ^= frames[i];
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  return h;
}

/* The site of these frames, made if new; NULL if no memory.  Locked. */
static sample_site_t *site_find(const uintptr_t *frames, int depth) {
  uint64_t h = hash_frames(frames, depth);
  sample_site_t **bucket = &site_buckets[h & (SAMPLE_SITE_BUCKETS - 1)];
  for (sample_site_t *s = *bucket; s; s = s->next_in_bucket)
    if (s->hash == h && s->depth == (uint32_t)depth &&
        memcmp(s->frames, frames, (size_t)depth * sizeof(uintptr_t)) == 0)
      return s;
  size_t need = (sizeof(sample_site_t) + (size_t)depth * sizeof(uintptr_t) + 15) & ~(size_t)15;
  if (arena_left < need) {
    size_t chunk = (size_t)256 << 10;
    uint8_t *mem = os_map(chunk);
    if (mem == NULL) return NULL;
    arena = mem;
    arena_left = chunk;
  }
  sample_site_t *s = (sample_site_t *)arena;
  arena += need;
  arena_left -= need;
  s->hash = h;
  s->depth = (uint32_t)depth;
  memcpy(s->frames, frames, (size_t)depth * sizeof(uintptr_t));
  s->next_in_bucket = *bucket;
  *bucket = s;
  s->next_site = all_sites;
  all_sites = s;
  site_count++;
  return s;
}

/* ---- the live samples' table --------------------------------------------------- */
static size_t slot_of(uintptr_t block, size_t cap) {
  uint64_t h = (uint64_t)block * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 17) & (cap - 1);
}

/* Room for one more (growing at half full, live and removed slots counted).
 * Locked; the mapping of a larger table is rare (doublings). */
static bool live_reserve(void) {
  if (live != NULL && (live_used + 1) * 2 <= live_cap) return true;
  size_t live_now = 0;
  for (size_t i = 0; i < live_cap; i++) live_now += live[i].block > 1;
  size_t cap = live_cap ? live_cap : 1024;
  while ((live_now + 1) * 4 > cap) cap *= 2; /* a quarter full after the rehash */
  sample_entry_t *table = os_map(cap * sizeof(sample_entry_t));
  if (table == NULL) return false;
  for (size_t i = 0; i < live_cap; i++) {
    if (live[i].block <= 1) continue;
    size_t j = slot_of(live[i].block, cap);
    while (table[j].block != 0) j = (j + 1) & (cap - 1);
    table[j] = live[i];
  }
  if (live) os_unmap(live, live_cap * sizeof(sample_entry_t));
  live = table;
  live_cap = cap;
  live_used = live_now;
  return true;
}

static sample_entry_t *live_find(uintptr_t block) {
  if (live == NULL) return NULL;
  for (size_t j = slot_of(block, live_cap);; j = (j + 1) & (live_cap - 1)) {
    if (live[j].block == block) return &live[j];
    if (live[j].block == 0) return NULL;
  }
}

static void live_insert(uintptr_t block, sample_site_t *site, double count, double bytes) {
  size_t j = slot_of(block, live_cap);
  while (live[j].block > 1) j = (j + 1) & (live_cap - 1);
  if (live[j].block == 0) live_used++;
  live[j] = (sample_entry_t){block, site, count, bytes, ebb_thread_id()};
  site->live_count += count;
  site->live_bytes += bytes;
  site->alloc_count += count;
  site->alloc_bytes += bytes;
}

static void live_remove(sample_entry_t *e) {
  e->site->live_count -= e->count;
  e->site->live_bytes -= e->bytes;
  e->block = 1; /* removed: probes go on past it */
}

/* ---- allocation and free ------------------------------------------------------- */
/* A block of class cls from the sampled heap.  Locked. */
static void *sampled_heap_block(size_t size, unsigned cls) {
  ebb_heap_t *heap = sampled_heap_get_locked();
  if (heap == NULL) return NULL;
  ebb_page_t *page = heap->queues[cls].first;
  if (page != NULL && page->free == NULL && page->local_free != NULL) page_collect(page);
  if (page != NULL && page->free != NULL) return page_take(page, size, false);
  return page_alloc_slow(heap, size, cls, false);
}

EBB_NOINLINE EBB_API_TEXT void *sample_alloc(size_t size, size_t charged, unsigned cls, size_t alignment,
                                             bool zero) {
  bool was_busy = sample_busy;
  sample_busy = true;
  uintptr_t frames[SAMPLE_MAX_DEPTH];
  int depth = stack_capture(frames, SAMPLE_MAX_DEPTH); /* no lock held: it may load libgcc_s */
  size_t rate = atomic_load_explicit(&ebb_sample_rate, memory_order_relaxed);
  /* the probability of the bytes the countdown was charged (a small
   * class's block, else the request) */
  double p = rate ? 1.0 - exp_neg((double)charged / (double)rate) : 1.0;
  if (p <= 0.0) p = 1.0;
  void *block = cls == 0 ? huge_alloc(size, alignment, zero) : NULL;
  if (cls == 0 && block == NULL) {
    sample_busy = was_busy;
    return NULL;
  }
  sampled_lock();
  if (cls != 0) block = sampled_heap_block(size, cls);
  sample_site_t *site = block ? site_find(frames, depth) : NULL;
  bool recorded = site != NULL && live_reserve();
  if (recorded) {
    live_insert((uintptr_t)block, site, 1.0 / p, (double)size / p);
    if (cls == 0) atomic_fetch_add_explicit(&ebb_sample_huge_live, 1, memory_order_relaxed);
  }
  sampled_unlock(true);
  if (block != NULL && !recorded) {
    /* No memory for the tables: the block goes back, and an unsampled one
     * is made instead (a sampled heap's block must have its record). */
    if (cls == 0) {
      sample_busy = was_busy;
      return block; /* a huge block is an ordinary one, recorded or not */
    }
    sampled_lock();
    ebb_segment_t *seg = segment_of(block);
    free_local_in(sampled_heap_get_locked(), page_of(seg, block), block);
    sampled_unlock(true);
    atomic_store_explicit(&ebb_sample_rate, 0, memory_order_relaxed); /* stop: out of memory */
    block = alignment ? alloc_aligned(alignment, size, zero) : alloc_generic(size, zero);
    sample_busy = was_busy;
    return block;
  }
  sample_busy = was_busy;
  if (block == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  if (zero && cls != 0) memset(block, 0, size);
  return block;
}

void sample_free(ebb_page_t *page, void *p) {
  bool was_busy = sampled_lock();
  sample_entry_t *e = live_find((uintptr_t)p);
  if (e == NULL) {
    sampled_unlock(was_busy);
    ebb_fatal_pointer("free", p, "double free (block freed twice)");
  }
  bool remote = e->thread != ebb_thread_id();
  live_remove(e);
  free_local_in(sampled_heap_get_locked(), page, p);
  sampled_unlock(was_busy);
  if (remote) { /* counted as any block freed by another thread is */
    ebb_heap_t *heap = ebb_tls_heap;
    if (heap != &ebb_empty_heap) heap->stat_remote_frees++;
    else atomic_fetch_add_explicit(&ebb_stat_retired_remote_frees, 1, memory_order_relaxed);
  }
}

void sample_forget_huge(const void *p) {
  bool was_busy = sampled_lock();
  sample_entry_t *e = live_find((uintptr_t)p);
  if (e != NULL) {
    live_remove(e);
    atomic_fetch_sub_explicit(&ebb_sample_huge_live, 1, memory_order_relaxed);
  }
  sampled_unlock(was_busy);
}

void sample_moved_huge(const void *old, void *now, size_t size) {
  (void)size;
  if (old == now) return;
  bool was_busy = sampled_lock();
  sample_entry_t *e = live_find((uintptr_t)old);
  if (e != NULL) {
    sample_entry_t moved = *e;
    live_remove(e);
    if (live_reserve()) {
      live_insert((uintptr_t)now, moved.site, moved.count, moved.bytes);
      moved.site->alloc_count -= moved.count; /* a move, not an allocation */
      moved.site->alloc_bytes -= moved.bytes;
    } else {
      atomic_fetch_sub_explicit(&ebb_sample_huge_live, 1, memory_order_relaxed);
    }
  }
  sampled_unlock(was_busy);
}

/* ---- reading it out ------------------------------------------------------------ */
size_t sample_sites(ebb_sample_site_t **out, size_t *map_size) {
  *out = NULL;
  *map_size = 0;
  /* Mapped before the lock is taken (no system call under it), with room
   * for sites made meanwhile; any beyond that wait for the next dump. */
  bool was_busy = sampled_lock();
  size_t guess = site_count;
  sampled_unlock(was_busy);
  if (guess == 0) return 0;
  size_t cap = guess + guess / 4 + 64;
  size_t bytes = cap * sizeof(ebb_sample_site_t);
  ebb_sample_site_t *copy = os_map(bytes);
  if (copy == NULL) return 0;
  size_t k = 0;
  was_busy = sampled_lock();
  for (sample_site_t *s = all_sites; s && k < cap; s = s->next_site) {
    if (s->live_count <= 1e-9 && s->alloc_count <= 1e-9) continue;
    copy[k++] = (ebb_sample_site_t){s->frames, s->depth, s->live_count < 0 ? 0 : s->live_count,
                                     s->live_bytes < 0 ? 0 : s->live_bytes, s->alloc_count,
                                     s->alloc_bytes};
  }
  sampled_unlock(was_busy);
  *out = copy;
  *map_size = bytes;
  return k;
}
