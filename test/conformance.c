/* conformance: the malloc family against the behaviour documented in
 * include/ebb.h (and glibc 2.36's where ebb.h defers to it).  One source,
 * built twice (see the Makefile):
 *
 *   t_conformance      the standard names (malloc, calloc, realloc, ...,
 *                      free_sized, malloc_usable_size), which the program
 *                      gets from libebb.so;
 *   api_conformance    the same behaviours through the ebb_* API
 *                      (-DCONFORMANCE_EBB_API=1).  It uses no other allocator
 *                      entry point, so it runs both against libebb.a and
 *                      against the sanitizer build (api_conformance-san,
 *                      where the standard malloc is ASan's and ebb_* is
 *                      ebb's).
 *
 * Both flavours:
 *  - sizes 0..2048 one by one, then a geometric sweep (with +-1 neighbours)
 *    up to 64 MiB: non-NULL, aligned, usable >= request, whole block writable;
 *  - every power-of-two alignment from 1 B to 1 GiB through posix_memalign,
 *    aligned_alloc and memalign; memalign rounding odd alignments up, and
 *    alignment 0; a zero-size block aligned to 4 MiB or more lying inside
 *    its own mapping;
 *  - realloc keeps contents growing and shrinking across every scale (small,
 *    medium, large, huge > 2 MiB), next to live neighbours, in long growth
 *    chains of huge blocks and in random walks; free_sized with the requested
 *    size, the usable size and sizes in between;
 *  - calloc memory is zero even when it reuses dirty blocks, after memory is
 *    given back and after realloc shrinks, at every scale;
 *  - 100k live blocks at once do not overlap and keep their contents, freed in
 *    random order;
 *  - threads allocating and freeing; blocks freed, realloc'd and free_sized by
 *    another thread than the one that allocated them; memory given back from
 *    threads; blocks outliving the thread that allocated them;
 *  - bad input: impossible sizes (ENOMEM), calloc / reallocarray overflow,
 *    realloc failure leaving the block intact, invalid alignments (EINVAL,
 *    output untouched), and everything still working afterwards;
 *  - free(NULL), free_sized(NULL, 0), malloc(0), realloc(NULL, n),
 *    realloc(p, 0), the usable size of NULL.
 *
 * The standard names only:
 *  - every function comes from libebb.so, not from libc (linked statically,
 *    as in the musl build: the blocks malloc and calloc hand out are ones
 *    ebb counts);
 *  - valloc / pvalloc page alignment and pvalloc's page rounding;
 *  - cfree, malloc_trim, mallinfo2, and mallinfo2's counts following what is
 *    allocated and freed (as glibc's own test reads them).
 *
 * The ebb_* API only:
 *  - ebb_version matches EBB_VERSION_STRING;
 *  - usable size == ebb_good_size(request); ebb_good_size >= n, monotone,
 *    idempotent, ebb_malloc(good_size(n)) has usable size exactly
 *    good_size(n), 0 for impossible sizes;
 *  - ebb_realloc_aligned keeping (and raising) alignment and contents, also
 *    across threads, and failing with the block untouched; ebb_calloc_aligned
 *    zero on dirty memory; ebb_collect with live blocks and from threads;
 *  - bad pointers to ebb_free / ebb_free_sized / ebb_realloc /
 *    ebb_usable_size abort with one line on stderr (checked in a child;
 *    t_badfree covers the standard names in depth).
 *
 * The standard flavour built with -DEBB_TEST_AGAINST_LIBC runs against
 * glibc's malloc (to check the test itself): the "is this ebb's" and cfree
 * checks are skipped, and free_sized (not in glibc 2.36) is free. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "ebb.h"

/* ---- the flavour: which names the tests call ------------------------------ */

#ifndef CONFORMANCE_EBB_API
#define CONFORMANCE_EBB_API 0
#endif

#if CONFORMANCE_EBB_API
#ifdef EBB_TEST_AGAINST_LIBC
#error "EBB_TEST_AGAINST_LIBC checks the standard names; the ebb_* API has no libc counterpart"
#endif
#define T_NAME(name) "ebb_" name /* the called name, in messages */
#define T_MALLOC ebb_malloc
#define T_CALLOC ebb_calloc
#define T_REALLOC ebb_realloc
#define T_REALLOCARRAY ebb_reallocarray
#define T_FREE ebb_free
#define T_FREE_SIZED ebb_free_sized
#define T_ALIGNED_ALLOC ebb_aligned_alloc
#define T_POSIX_MEMALIGN ebb_posix_memalign
#define T_MEMALIGN ebb_memalign
#define T_USABLE_SIZE ebb_usable_size
#else
#include <dlfcn.h>
#include <malloc.h>
#define T_NAME(name) name
#define T_MALLOC malloc
#define T_CALLOC calloc
#define T_REALLOC realloc
#define T_REALLOCARRAY reallocarray
#define T_FREE free
#define T_ALIGNED_ALLOC aligned_alloc
#define T_POSIX_MEMALIGN posix_memalign
#define T_MEMALIGN memalign
#define T_USABLE_SIZE malloc_usable_size
#ifdef EBB_TEST_AGAINST_LIBC
static void free_ignoring_size(void *p, size_t size) {
  (void)size;
  free(p);
}
#define T_FREE_SIZED free_ignoring_size
#else
/* C23's, which ebb defines; not declared by glibc 2.36's or musl's headers. */
void free_sized(void *p, size_t size);
#define T_FREE_SIZED free_sized
#endif
/* Gone from glibc's headers since 2.26, still part of the family ebb replaces.
 * Weak so that a missing definition is a test failure, not a link failure. */
extern void cfree(void *) __attribute__((weak));
static size_t page_size;
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

#define CHECKF(cond, ...)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                           \
      fputc('\n', stderr);                                                    \
      test_failures++;                                                        \
      if (test_failures > 20) abort();                                        \
    }                                                                         \
  } while (0)

/* CHECKF from any thread: test_failures is a plain int. */
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
#define MT_CHECK(cond, ...)           \
  do {                                \
    if (!(cond)) {                    \
      pthread_mutex_lock(&fail_mu);   \
      CHECKF(cond, __VA_ARGS__);      \
      pthread_mutex_unlock(&fail_mu); \
    }                                 \
  } while (0)

/* Hand free memory back in the middle of a test, as a program would.  force:
 * everything ebb holds goes back to the OS (ebb_collect(true), which
 * malloc_trim(0) is); otherwise this thread's caches only (ebb_collect(false),
 * which the standard names have no call for). */
static void give_back(bool force) {
#if CONFORMANCE_EBB_API
  ebb_collect(force);
#else
  if (force) {
    int r = malloc_trim(0);
    MT_CHECK(r == 0 || r == 1, "malloc_trim(0) returned %d", r);
  }
#endif
}

/* Hide values from the optimiser: no folding of alignment checks from
 * alloc_align attributes, no compile-time size warnings, no use-after-free
 * reasoning across realloc, and no assuming that posix_memalign leaves *out
 * alone when it fails (gcc's builtin knowledge does: pass launder(&out)). */

static inline bool is_aligned(const void *p, size_t a) {
  return ((uintptr_t)p & (a - 1)) == 0;
}
/* The alignment malloc promises: 16, or 8 for requests up to 8 bytes. */
static inline size_t min_align(size_t n) { return n <= 8 ? 8 : 16; }

static size_t next_pow2(size_t a) {
  size_t r = 1;
  while (r < a) r <<= 1;
  return r;
}

/* Fast positional fill patterns: byte i of a block depends only on (seed, i),
 * so a prefix of a block can be checked after realloc. */
static inline uint64_t pat_word(uint64_t seed, size_t i) {
  uint64_t x = ((seed + 1) * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)i * 0xD1B54A32D192ED03ull);
  return x ^ (x >> 29) ^ 0x0101010101010101ull;
}
static void pat_fill(void *p, size_t n, uint64_t seed) {
  unsigned char *b = (unsigned char *)p;
  size_t w = n / 8;
  for (size_t i = 0; i < w; i++) {
    uint64_t v = pat_word(seed, i);
    memcpy(b + 8 * i, &v, 8);
  }
  if (n % 8) {
    uint64_t v = pat_word(seed, w);
    memcpy(b + 8 * w, &v, n % 8);
  }
}
/* Offset of the first byte that differs from the pattern, or SIZE_MAX. */
static size_t pat_bad(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  size_t w = n / 8;
  for (size_t i = 0; i < w; i++) {
    uint64_t v = pat_word(seed, i), g;
    memcpy(&g, b + 8 * i, 8);
    if (g != v) {
      for (size_t k = 0; k < 8; k++)
        if (((const unsigned char *)&v)[k] != b[8 * i + k]) return 8 * i + k;
    }
  }
  if (n % 8) {
    uint64_t v = pat_word(seed, w);
    for (size_t k = 0; k < n % 8; k++)
      if (((const unsigned char *)&v)[k] != b[8 * w + k]) return 8 * w + k;
  }
  return SIZE_MAX;
}
#define CHECK_PAT(p, n, seed, ...)                                                  \
  do {                                                                              \
    size_t bad_at_ = pat_bad((p), (n), (seed));                                     \
    CHECKF(bad_at_ == SIZE_MAX, "contents of %p (%zu bytes) differ at offset %zu: ", \
           (void *)(p), (size_t)(n), bad_at_);                                      \
    if (bad_at_ != SIZE_MAX) fprintf(stderr, "    (" __VA_ARGS__), fprintf(stderr, ")\n"); \
  } while (0)
/* CHECK_PAT from any thread. */
#define MT_CHECK_PAT(p, n, seed, what)                                                 \
  do {                                                                                 \
    size_t bad_at_ = pat_bad((p), (n), (seed));                                        \
    MT_CHECK(bad_at_ == SIZE_MAX, "%s: %p (%zu bytes) differs at %zu", what, (void *)(p), \
             (size_t)(n), bad_at_);                                                    \
  } while (0)

/* Offset of the first non-zero byte, or SIZE_MAX. */
static size_t nonzero_at(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t g;
    memcpy(&g, b + i, 8);
    if (g) break;
  }
  for (; i < n; i++)
    if (b[i]) return i;
  return SIZE_MAX;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double section_start;
static void section(const char *name) {
  double t = now_s();
  if (name) printf("%-28s", name);
  else printf("  %.2fs\n", t - section_start);
  fflush(stdout);
  section_start = t;
}

/* A freshly allocated block of `n` bytes: not NULL, aligned to `align`,
 * usable size >= n; the usable block is written and read back.  Returns how
 * many bytes from p hold the pattern of seed n ^ p (0 if p is NULL). */
static size_t check_new_block(void *p, size_t n, size_t align, const char *what) {
  CHECKF(p != NULL, "%s(%zu) returned NULL", what, n);
  if (!p) return 0;
  CHECKF(is_aligned(p, align), "%s(%zu) = %p, not aligned to %zu", what, n, p, align);
  size_t u = T_USABLE_SIZE(p);
  CHECKF(u >= n, "%s(%zu): usable size %zu < request", what, n, u);
  if (u < n) u = n;
  /* The whole request and the slack after it; if the slack is enormous
   * (some allocators hand out the rest of an over-aligned mapping), its
   * first 4 MiB and its last page. */
  size_t head = u - n > 4 * MiB ? n + 4 * MiB : u;
  uint64_t seed = n ^ (uintptr_t)p;
  pat_fill(p, head, seed);
  if (head < u) memset((char *)p + u - 4096, 0xab, 4096);
  CHECK_PAT(p, head, seed, "%s(%zu)", what, n);
  if (head < u) CHECKF(((unsigned char *)p)[u - 1] == 0xab, "%s(%zu): end of usable block", what, n);
  return head;
}

/* ---- the functions really are ebb's (standard names) --------------------- */

#if !CONFORMANCE_EBB_API
static void test_family_is_ebb(void) {
#if defined(EBB_TEST_STATIC) && !defined(EBB_TEST_AGAINST_LIBC)
  /* Linked statically (the musl build): no dynamic symbols to look up, so
   * the blocks malloc and calloc hand out must be ones ebb counts. */
  ebb_stats_t a, b;
  ebb_stats_get(&a);
  void *p = launder(malloc(opaque(5000))), *q = launder(calloc(1, opaque(7000)));
  ebb_stats_get(&b);
  CHECKF(b.live_bytes >= a.live_bytes + 12000, "malloc is not ebb's: live bytes %zu -> %zu",
         a.live_bytes, b.live_bytes);
  free(p);
  free(q);
#elif !defined(EBB_TEST_AGAINST_LIBC)
  static const char *const names[] = {
      "malloc",        "free",          "calloc",  "realloc", "reallocarray",
      "posix_memalign", "aligned_alloc", "memalign", "valloc",  "pvalloc",
      "malloc_usable_size", "malloc_trim", "cfree",  "mallinfo2", "mallinfo",
      "malloc_stats", "free_sized", "free_aligned_sized"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *f = dlsym(RTLD_DEFAULT, names[i]);
    CHECKF(f != NULL, "%s is not defined", names[i]);
    if (!f) continue;
    Dl_info di;
    memset(&di, 0, sizeof di);
    CHECKF(dladdr(f, &di) != 0 && di.dli_fname && strstr(di.dli_fname, "libebb"),
           "%s comes from %s, not libebb", names[i], di.dli_fname ? di.dli_fname : "?");
  }
  CHECKF(cfree != NULL, "cfree is not defined");
#endif
}
#endif

/* ---- simple documented behaviour ---------------------------------------- */

static void test_basics(void) {
#if CONFORMANCE_EBB_API
  CHECKF(strcmp(ebb_version(), EBB_VERSION_STRING) == 0, "ebb_version() = \"%s\", header says \"%s\"",
         ebb_version(), EBB_VERSION_STRING);
#else
  if (cfree) cfree(NULL);
#endif
  T_FREE(NULL);
  T_FREE_SIZED(NULL, 0);
  CHECK(T_USABLE_SIZE(NULL) == 0);

  /* malloc(0): unique pointers that can be freed. */
  enum { NZ = 2000 };
  static void *z[NZ];
  for (int i = 0; i < NZ; i++) {
    z[i] = launder(T_MALLOC(opaque(0)));
    CHECK(z[i] != NULL);
    CHECK(is_aligned(z[i], 8));
  }
  static void *zs[NZ];
  memcpy(zs, z, sizeof z);
  for (int i = 1; i < NZ; i++) /* insertion sort on addresses */
    for (int j = i; j > 0 && (uintptr_t)zs[j - 1] > (uintptr_t)zs[j]; j--) {
      void *t = zs[j];
      zs[j] = zs[j - 1];
      zs[j - 1] = t;
    }
  for (int i = 1; i < NZ; i++) CHECKF(zs[i] != zs[i - 1], T_NAME("malloc") "(0) returned %p twice", zs[i]);
  for (int i = 0; i < NZ; i++) T_FREE(z[i]);

  /* realloc(NULL, n) is malloc(n), including n = 0. */
  void *p = launder(T_REALLOC(NULL, opaque(0)));
  CHECK(p != NULL);
  T_FREE(p);
  for (size_t n = 1; n < 5 * MiB; n = n * 3 + 1) {
    p = launder(T_REALLOC(NULL, opaque(n)));
    check_new_block(p, n, min_align(n), T_NAME("realloc") "(NULL, n)");
    T_FREE(p);
  }

  /* realloc(p, 0) frees p and returns NULL.  Freed, not leaked: a thousand
   * rounds of 1 MiB would show in the RSS. */
  size_t rss0 = test_rss();
  for (int i = 0; i < 1000; i++) {
    p = launder(T_MALLOC(opaque(MiB)));
    CHECK(p != NULL);
    if (!p) break;
    memset(p, 0x5a, MiB);
    void *q = launder(T_REALLOC(p, opaque(0)));
    CHECKF(q == NULL, T_NAME("realloc") "(p, 0) = %p, want NULL", q);
  }
  size_t rss1 = test_rss();
  CHECKF(rss1 < rss0 + 256 * MiB, T_NAME("realloc") "(p, 0) leaks: RSS %zu -> %zu", rss0, rss1);
  /* Small ones too (their memory must be reused). */
  for (int i = 0; i < 100000; i++) {
    p = launder(T_MALLOC(opaque(100)));
    CHECK(p != NULL);
    memset(p, 1, 100);
    void *q = launder(T_REALLOC(p, opaque(0)));
    CHECK(q == NULL);
  }
  /* reallocarray(p, 0, n) is realloc(p, 0). */
  p = launder(T_MALLOC(opaque(64)));
  void *q = launder(T_REALLOCARRAY(p, opaque(0), opaque(8)));
  CHECK(q == NULL);

  /* free_sized with the requested size, the usable size, in between. */
  static const size_t fs[] = {0, 1, 24, 100, 1000, 20 * KiB, 500 * KiB, 3 * MiB};
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
    for (int how = 0; how < 3; how++) {
      p = launder(T_MALLOC(opaque(fs[i])));
      CHECK(p != NULL);
      if (!p) continue;
      size_t u = T_USABLE_SIZE(p);
      T_FREE_SIZED(p, how == 0 ? fs[i] : how == 1 ? u : (fs[i] + u) / 2);
    }
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
    p = launder(T_ALIGNED_ALLOC(opaque(4096), opaque(fs[i])));
    CHECK(p != NULL);
    if (p) T_FREE_SIZED(p, fs[i]);
    p = launder(T_CALLOC(opaque(fs[i]), 1));
    CHECK(p != NULL);
    if (p) T_FREE_SIZED(p, T_USABLE_SIZE(p));
  }

#if !CONFORMANCE_EBB_API
  /* cfree frees. */
  if (cfree) {
    rss0 = test_rss();
    for (int i = 0; i < 1000; i++) {
      p = launder(malloc(opaque(MiB)));
      CHECK(p != NULL);
      if (!p) break;
      memset(p, 0x5a, MiB);
      cfree(p);
    }
    rss1 = test_rss();
    CHECKF(rss1 < rss0 + 256 * MiB, "cfree leaks: RSS %zu -> %zu", rss0, rss1);
  }
#endif

  /* Giving memory back (malloc_trim and mallinfo2; ebb_collect) with live
   * blocks of every scale. */
  static const size_t live_sizes[] = {24, 1000, 20 * KiB, 500 * KiB, 3 * MiB, 9 * MiB};
  void *live[6];
  for (int i = 0; i < 6; i++) {
    live[i] = launder(T_MALLOC(opaque(live_sizes[i])));
    CHECK(live[i] != NULL);
    if (live[i]) pat_fill(live[i], live_sizes[i], 77 + (uint64_t)i);
  }
  for (int round = 0; round < 4; round++) {
    /* garbage to give back */
    void *g[64];
    for (int i = 0; i < 64; i++) {
      g[i] = launder(T_MALLOC(opaque((size_t)(i + 1) * 16 * KiB)));
      if (g[i]) memset(g[i], 3, (size_t)(i + 1) * 16 * KiB);
    }
    for (int i = 0; i < 64; i++) T_FREE(g[i]);
#if CONFORMANCE_EBB_API
    ebb_collect(round & 1);
#else
    static const size_t trim_pad[4] = {0, 4096, 64 * MiB, 1};
    int r = malloc_trim(trim_pad[round]);
    CHECKF(r == 0 || r == 1, "malloc_trim returned %d", r);
#ifdef __GLIBC__
    struct mallinfo2 mi = mallinfo2();
    (void)mi;
#endif
#endif
  }
  for (int i = 0; i < 6; i++) {
    if (live[i]) CHECK_PAT(live[i], live_sizes[i], 77 + (uint64_t)i, "live across giving memory back");
    T_FREE(live[i]);
  }
#if CONFORMANCE_EBB_API
  ebb_collect(true);
  ebb_collect(false);
#else
#ifdef __GLIBC__
  struct mallinfo2 mi = mallinfo2();
  printf("[mallinfo2 arena=%zu uordblks=%zu hblkhd=%zu fordblks=%zu] ", mi.arena, mi.uordblks,
         mi.hblkhd, mi.fordblks);
#endif
  CHECK(malloc_trim(0) >= 0);
#endif
}

#if !CONFORMANCE_EBB_API
/* mallinfo2 as glibc's own test of it reads it: the bytes in use grow by
 * what was allocated and fall back when it is freed, arena = uordblks +
 * fordblks, and a block past the mmap threshold shows in hblkhd. */
static void test_mallinfo2_counts(void) {
#ifndef __GLIBC__
  printf("(glibc's mallinfo2: not in this C library) ");
  return;
#else
  enum { N = 200, CACHED = 8 };
  static void *p[N];
  /* glibc's thread cache (up to 7 blocks a size, freed by earlier tests)
   * counts as in use already: empty it first, so the N blocks are new. */
  void *cached[CACHED];
  for (int i = 0; i < CACHED; i++) cached[i] = launder(malloc(opaque(1000)));
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < N; i++) p[i] = launder(malloc(opaque(1000)));
  struct mallinfo2 during = mallinfo2();
  CHECKF(during.uordblks >= before.uordblks + N * 1000, "uordblks %zu -> %zu after %d x 1000 B",
         before.uordblks, during.uordblks, N);
  CHECKF(during.arena == during.uordblks + during.fordblks, "arena %zu != uordblks %zu + fordblks %zu",
         during.arena, during.uordblks, during.fordblks);
  for (int i = 0; i < N; i++) free(p[i]);
  struct mallinfo2 after = mallinfo2();
  /* glibc counts what its thread cache holds as in use: half must go */
  CHECKF(after.uordblks + N * 1000 / 2 <= during.uordblks, "uordblks %zu -> %zu after freeing them",
         during.uordblks, after.uordblks);
  void *big = launder(malloc(opaque(64 * MiB)));
  struct mallinfo2 with_big = mallinfo2();
  CHECKF(with_big.hblkhd >= after.hblkhd + 64 * MiB, "hblkhd %zu -> %zu with a 64 MiB block",
         after.hblkhd, with_big.hblkhd);
  free(big);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo legacy = mallinfo(); /* deprecated, still called */
#pragma GCC diagnostic pop
  CHECK(legacy.arena >= 0 && legacy.uordblks >= 0);
  for (int i = 0; i < CACHED; i++) free(cached[i]);
#endif
}
#endif

/* ---- sizes ---------------------------------------------------------------- */

static void test_one_size(size_t n) {
  void *p = launder(T_MALLOC(opaque(n)));
  check_new_block(p, n, min_align(n), T_NAME("malloc"));
#if CONFORMANCE_EBB_API
  size_t good = ebb_good_size(n);
  if (p) CHECKF(ebb_usable_size(p) == good, "ebb_malloc(%zu): usable %zu != ebb_good_size %zu", n,
                ebb_usable_size(p), good);
#endif
  T_FREE(p);

  p = launder(T_CALLOC(1, opaque(n)));
  CHECKF(p != NULL, T_NAME("calloc") "(1, %zu) = NULL", n);
  if (p) {
    size_t z = nonzero_at(p, n);
    CHECKF(z == SIZE_MAX, T_NAME("calloc") "(1, %zu): byte %zu not zero", n, z);
    if (n <= 256 * KiB) check_new_block(p, n, min_align(n), T_NAME("calloc") "(1, n)");
    else {
      CHECKF(is_aligned(p, min_align(n)) && T_USABLE_SIZE(p) >= n, T_NAME("calloc") "(1, %zu) = %p", n, p);
      memset(p, 1, 4096);
      memset((char *)p + n - 4096, 1, 4096);
    }
    T_FREE(p);
  }
  if (n > MiB) return;
  size_t c = (n % 16 == 0 && n) ? 16 : 1;
  p = launder(T_CALLOC(opaque(n / c), opaque(c)));
  CHECKF(p != NULL, T_NAME("calloc") "(%zu, %zu) = NULL", n / c, c);
  if (p) {
    size_t z = nonzero_at(p, n);
    CHECKF(z == SIZE_MAX, T_NAME("calloc") "(%zu, %zu): byte %zu not zero", n / c, c, z);
    check_new_block(p, n, min_align(n), T_NAME("calloc") "(n/c, c)");
    T_FREE_SIZED(p, n);
  }
}

static void test_sizes(void) {
  for (size_t n = 0; n <= 2048; n++) test_one_size(n);
  /* Keep blocks of every small size live at once too. */
  static void *live[2049];
  for (size_t n = 0; n <= 2048; n++) {
    live[n] = launder(T_MALLOC(opaque(n)));
    CHECKF(live[n] != NULL, T_NAME("malloc") "(%zu) = NULL", n);
    if (live[n]) pat_fill(live[n], n, n);
  }
  for (size_t n = 0; n <= 2048; n++)
    if (live[n]) {
      CHECK_PAT(live[n], n, n, "size %zu with all small sizes live", n);
      T_FREE(live[n]);
    }

  for (size_t s = 2048; s <= 64 * MiB; s += (s < MiB ? s / 8 : s / 4) + 8) {
    test_one_size(s - 1);
    test_one_size(s);
    test_one_size(s + 1);
  }
  for (size_t s = 2048; s <= 64 * MiB; s *= 2) {
    test_one_size(s - 1);
    test_one_size(s);
    test_one_size(s + 1);
  }
}

/* ---- ebb_good_size (API) -------------------------------------------------- */

#if CONFORMANCE_EBB_API
static void good_one(size_t n, size_t *prev_n, size_t *prev_g) {
  size_t g = ebb_good_size(n);
  CHECKF(g >= n, "ebb_good_size(%zu) = %zu", n, g);
  if (*prev_n <= n) CHECKF(g >= *prev_g, "ebb_good_size not monotone: (%zu) = %zu, (%zu) = %zu",
                           *prev_n, *prev_g, n, g);
  *prev_n = n;
  *prev_g = g;
  CHECKF(ebb_good_size(g) == g, "ebb_good_size(ebb_good_size(%zu) = %zu) = %zu", n, g, ebb_good_size(g));
  void *p = launder(ebb_malloc(opaque(g)));
  CHECKF(p != NULL, "ebb_malloc(good_size(%zu) = %zu) = NULL", n, g);
  if (!p) return;
  CHECKF(ebb_usable_size(p) == g, "ebb_malloc(good_size(%zu) = %zu): usable %zu", n, g, ebb_usable_size(p));
  if (g) {
    ((volatile char *)p)[0] = 1;
    ((volatile char *)p)[g - 1] = 1;
  }
  ebb_free(p);
}

static void test_good_size(void) {
  size_t pn = 0, pg = 0;
  for (size_t n = 0; n <= 70000; n++) good_one(n, &pn, &pg);
  for (size_t s = 70000; s <= 64 * MiB; s += s / 16 + 1) {
    good_one(s - 1, &pn, &pg);
    good_one(s, &pn, &pg);
    good_one(s + 1, &pn, &pg);
  }
  static const size_t imp[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1,
                               (size_t)1 << 62};
  for (size_t i = 0; i < sizeof imp / sizeof imp[0]; i++)
    CHECKF(ebb_good_size(opaque(imp[i])) == 0, "ebb_good_size(%zu) = %zu, want 0", imp[i],
           ebb_good_size(imp[i]));
}
#endif

/* ---- the checked realloc step (alignment, realloc and bad-input tests) --- */

/* realloc p (holding `*n` requested bytes of pattern `seed`) to `m`: contents
 * kept up to min(*n, m); then the whole new block is filled again. */
static void *realloc_check(void *p, size_t *n, size_t m, uint64_t seed, const char *ctx) {
  void *q = launder(T_REALLOC(launder(p), opaque(m)));
  if (m == 0) {
    CHECKF(q == NULL, "%s: " T_NAME("realloc") "(p, 0) = %p", ctx, q);
    *n = 0;
    return NULL;
  }
  CHECKF(q != NULL, "%s: " T_NAME("realloc") "(%p [%zu], %zu) = NULL", ctx, p, *n, m);
  if (!q) return p; /* p is intact on failure; keep using it */
  CHECKF(is_aligned(q, min_align(m)), "%s: " T_NAME("realloc") " to %zu = %p misaligned", ctx, m, q);
  size_t u = T_USABLE_SIZE(q);
  CHECKF(u >= m, "%s: " T_NAME("realloc") " to %zu: usable %zu", ctx, m, u);
  size_t keep = *n < m ? *n : m;
  CHECK_PAT(q, keep, seed, "%s: realloc %zu -> %zu", ctx, *n, m);
  pat_fill(q, u > m ? u : m, seed);
  *n = m;
  return q;
}

/* ---- alignment ------------------------------------------------------------ */

#if CONFORMANCE_EBB_API
/* ebb_realloc_aligned p (holding `*n` bytes of pattern `seed`) to `m` bytes
 * aligned to `a`: contents kept up to min(*n, m); then refilled. */
static void *realloc_aligned_check(void *p, size_t *n, size_t a, size_t m, uint64_t seed, const char *ctx) {
  void *q = launder(ebb_realloc_aligned(launder(p), opaque(a), opaque(m)));
  CHECKF(q != NULL, "%s: ebb_realloc_aligned(%p [%zu], %zu, %zu) = NULL", ctx, p, *n, a, m);
  if (!q) return p;
  CHECKF(is_aligned(q, a > 8 ? a : 8), "%s: ebb_realloc_aligned(.., %zu, %zu) = %p", ctx, a, m, q);
  size_t u = ebb_usable_size(q);
  CHECKF(u >= m, "%s: ebb_realloc_aligned to %zu: usable %zu", ctx, m, u);
  CHECK_PAT(q, *n < m ? *n : m, seed, "%s: realloc_aligned(%zu) %zu -> %zu", ctx, a, *n, m);
  pat_fill(q, m, seed);
  *n = m;
  return q;
}
#endif

static const size_t align_sizes[] = {0, 1, 8, 24, 100, 1000, 5000, 20 * KiB, 70000, 600000, 3 * MiB + 5};
#define N_ALIGN_SIZES (sizeof align_sizes / sizeof align_sizes[0])

static void test_alignments(void) {
  /* A zero-size block aligned to 4 MiB or more still lies inside its own
   * mapping (it once pointed one byte past it, into whatever came next). */
  for (int k = 22; k <= 26; k++) {
    void *z = launder(T_ALIGNED_ALLOC(opaque((size_t)1 << k), opaque(0)));
    CHECKF(z != NULL && T_USABLE_SIZE(z) > 0, T_NAME("aligned_alloc") "(2^%d, 0) = %p, usable %zu", k,
           z, z ? T_USABLE_SIZE(z) : 0);
    if (z) memset(z, 0xA5, T_USABLE_SIZE(z));
    T_FREE(z);
  }

  for (int k = 0; k <= 30; k++) {
    size_t a = (size_t)1 << k;
    for (size_t si = 0; si < N_ALIGN_SIZES; si++) {
      size_t n = align_sizes[si];
      size_t want = a > 8 ? a : 8; /* and never less than 8 */
      void *b[3] = {NULL, NULL, NULL};
      size_t u[3] = {0, 0, 0};

      if (a >= sizeof(void *)) {
        void *out = (void *)0x1;
        int r = T_POSIX_MEMALIGN((void **)launder(&out), opaque(a), opaque(n));
        CHECKF(r == 0, T_NAME("posix_memalign") "(%zu, %zu) = %d", a, n, r);
        if (r == 0) {
          b[0] = launder(out);
          u[0] = check_new_block(b[0], n, want, T_NAME("posix_memalign"));
        }
      }
      b[1] = launder(T_ALIGNED_ALLOC(opaque(a), opaque(n)));
      u[1] = check_new_block(b[1], n, want, T_NAME("aligned_alloc"));
      b[2] = launder(T_MEMALIGN(opaque(a), opaque(n)));
      u[2] = check_new_block(b[2], n, want, T_NAME("memalign"));

      /* All three live at once: each still holds its contents. */
      for (int i = 0; i < 3; i++)
        if (b[i]) CHECK_PAT(b[i], u[i], n ^ (uintptr_t)b[i], "aligned %zu size %zu #%d", a, n, i);
      /* b[1] is realloc'd below: the pattern it holds, and how far. */
      size_t b1_len = n;
      uint64_t b1_seed = n ^ (uintptr_t)b[1];
#if CONFORMANCE_EBB_API
      /* ebb_realloc_aligned keeps the alignment, growing and shrinking (a
       * small, a medium and a large size). */
      if (b[1] && (n == 1 || n == 1000 || n == 600000)) {
        b1_seed = 4000 + (uint64_t)k;
        pat_fill(b[1], n, b1_seed);
        b[1] = realloc_aligned_check(b[1], &b1_len, a, n * 3 + 100, b1_seed, "grow");
        b[1] = realloc_aligned_check(b[1], &b1_len, a, 3 * MiB, b1_seed, "grow huge");
        b[1] = realloc_aligned_check(b[1], &b1_len, a, n / 2 + 1, b1_seed, "shrink");
      }
#endif
      /* Plain realloc of an over-aligned block keeps the contents. */
      if (b[1] && k % 4 == 0)
        b[1] = realloc_check(b[1], &b1_len, n * 2 + 100, b1_seed, "realloc of aligned block");
      /* b[1] may have been realloc'd to another size: no free_sized for it */
      for (int i = 2; i >= 0; i--) {
        if (i == 1) T_FREE(b[i]);
        else if (b[i]) T_FREE_SIZED(b[i], n);
      }
    }
  }

#if CONFORMANCE_EBB_API
  /* Raising the alignment of an existing block. */
  {
    size_t n = 200;
    void *p = launder(ebb_malloc(opaque(n)));
    CHECK(p != NULL);
    if (p) {
      pat_fill(p, n, 51);
      for (int k = 5; k <= 30; k += 5) p = realloc_aligned_check(p, &n, (size_t)1 << k, n + 64, 51, "raise");
      ebb_free(p);
    }
    n = 0;
    p = realloc_aligned_check(NULL, &n, 4096, 100, 52, "from NULL");
    if (p) ebb_free(p);
  }
#endif

  /* A few over-aligned blocks live together at big alignments. */
  for (int k = 20; k <= 30; k += 5) {
    size_t a = (size_t)1 << k;
    void *b[4];
    for (int i = 0; i < 4; i++) {
      b[i] = launder(T_ALIGNED_ALLOC(opaque(a), opaque(4096 * (size_t)(i + 1))));
      CHECKF(b[i] && is_aligned(b[i], a), T_NAME("aligned_alloc") "(%zu) = %p", a, b[i]);
      if (b[i]) pat_fill(b[i], 4096 * (size_t)(i + 1), (uint64_t)i + 1000);
    }
    for (int i = 0; i < 4; i++)
      if (b[i]) {
        CHECK_PAT(b[i], 4096 * (size_t)(i + 1), (uint64_t)i + 1000, "aligned %zu #%d", a, i);
        T_FREE(b[i]);
      }
  }

  /* memalign rounds an alignment that is not a power of two up, as glibc. */
  static const size_t odd[] = {3, 5, 6, 7, 9, 12, 24, 48, 100, 1000, 4097, 65537, MiB + 1, 3 * MiB,
                               (size_t)(1 << 29) + 1};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    static const size_t ns[] = {1, 100, 5000, 300000};
    for (size_t j = 0; j < 4; j++) {
      void *p = launder(T_MEMALIGN(opaque(odd[i]), opaque(ns[j])));
      size_t want = next_pow2(odd[i]);
      if (want < min_align(ns[j])) want = min_align(ns[j]);
      check_new_block(p, ns[j], want, T_NAME("memalign") "(odd)");
      T_FREE(p);
    }
  }
  /* memalign with alignment 0: glibc treats it as malloc; NULL with EINVAL
   * would also be a defensible reading of ebb.h. */
  {
    errno = 0;
    void *p = launder(T_MEMALIGN(opaque(0), opaque(100)));
    int e = errno;
    if (p) check_new_block(p, 100, 8, T_NAME("memalign") "(0, n)");
    else CHECKF(e == EINVAL, T_NAME("memalign") "(0, 100) = NULL with errno %d", e);
    T_FREE(p);
  }

#if !CONFORMANCE_EBB_API
  /* valloc and pvalloc: page aligned; pvalloc rounds the size up to a page. */
  static const size_t vs[] = {0, 1, 100, 4095, 4096, 4097, 3 * 4096 + 7, 100000, MiB + 1, 3 * MiB + 1};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    size_t n = vs[i];
    void *p = launder(valloc(opaque(n)));
    check_new_block(p, n, page_size, "valloc");
    void *q = launder(pvalloc(opaque(n)));
    size_t rounded = (n + page_size - 1) / page_size * page_size;
    check_new_block(q, rounded, page_size, "pvalloc");
    free(p);
    free(q);
  }
#endif
}

/* ---- realloc -------------------------------------------------------------- */

static void test_realloc(void) {
  static const size_t scales[] = {1, 8, 16, 24, 100, 1000, 4000, 20 * KiB, 100 * KiB, 500 * KiB, MiB,
                                  2 * MiB - 1, 2 * MiB + 1, 3 * MiB, 8 * MiB};
  const size_t ns = sizeof scales / sizeof scales[0];

  /* Up through every scale to 64 MiB and back down. */
  {
    size_t n = 0;
    void *p = NULL;
    for (size_t i = 0; i < ns; i++) p = realloc_check(p, &n, scales[i], 1, "chain up");
    p = realloc_check(p, &n, 20 * MiB, 1, "chain up");
    p = realloc_check(p, &n, 32 * MiB, 1, "chain up");
    p = realloc_check(p, &n, 64 * MiB, 1, "chain up");
    p = realloc_check(p, &n, 64 * MiB - 1, 1, "chain down");
    for (size_t i = ns; i-- > 0;) p = realloc_check(p, &n, scales[i], 1, "chain down");
    T_FREE(p);
  }
  /* Every ordered pair of scales, both with and without a same-size
   * neighbour allocated right after the block. */
  for (size_t i = 0; i < ns; i++)
    for (size_t j = 0; j < ns; j++)
      for (int nb = 0; nb < 2; nb++) {
        size_t n = scales[i];
        uint64_t seed = i * 100 + j;
        void *p = launder(T_MALLOC(opaque(n)));
        CHECK(p != NULL);
        if (!p) continue;
        pat_fill(p, T_USABLE_SIZE(p), seed);
        void *nbr = NULL;
        if (nb) {
          nbr = launder(T_MALLOC(opaque(n)));
          if (nbr) pat_fill(nbr, n, seed + 7777);
        }
        p = realloc_check(p, &n, scales[j], seed, "pair");
        if (nbr) {
          CHECK_PAT(nbr, scales[i], seed + 7777, "neighbour of realloc %zu -> %zu", scales[i], scales[j]);
          T_FREE_SIZED(nbr, scales[i]);
        }
        /* and back */
        p = realloc_check(p, &n, scales[i], seed, "pair back");
        T_FREE_SIZED(p, n);
      }

  /* Neighbours: several same-size blocks, the middle ones grown and shrunk. */
  static const size_t nsz[] = {24, 100, 1000, 20 * KiB, 500 * KiB, 3 * MiB};
  for (size_t s = 0; s < sizeof nsz / sizeof nsz[0]; s++) {
    size_t n = nsz[s];
    void *b[8];
    size_t bn[8];
    for (int i = 0; i < 8; i++) {
      b[i] = launder(T_MALLOC(opaque(n)));
      bn[i] = n;
      CHECK(b[i] != NULL);
      if (b[i]) pat_fill(b[i], n, 500 + (uint64_t)i);
    }
    if (b[3]) b[3] = realloc_check(b[3], &bn[3], 2 * n + 1, 503, "grow among neighbours");
    if (b[5]) b[5] = realloc_check(b[5], &bn[5], n / 2 + 1, 505, "shrink among neighbours");
    if (b[5]) b[5] = realloc_check(b[5], &bn[5], 3 * n, 505, "regrow among neighbours");
    if (b[4]) b[4] = realloc_check(b[4], &bn[4], n + 1, 504, "grow by one");
    if (b[2]) b[2] = realloc_check(b[2], &bn[2], n, 502, "same size");
    for (int i = 0; i < 8; i++)
      if (b[i]) {
        CHECK_PAT(b[i], bn[i], 500 + (uint64_t)i, "neighbour %d of size %zu", i, n);
        T_FREE(b[i]);
      }
  }

  /* Long growth chains of a huge block, with other huge blocks appearing
   * right after it, then shrinking back to one byte. */
  {
    uint64_t rng = 42;
    size_t n = 2 * MiB + 1;
    void *p = launder(T_MALLOC(opaque(n)));
    CHECK(p != NULL);
    if (p) {
      pat_fill(p, n, 9);
      void *blk[32];
      int nblk = 0;
      while (n < 64 * MiB) {
        size_t m = n + n / 5 + (size_t)(test_rand(&rng) % (64 * KiB));
        if (m > 64 * MiB) m = 64 * MiB;
        p = realloc_check(p, &n, m, 9, "huge growth");
        if (nblk < 32 && (test_rand(&rng) & 1)) {
          blk[nblk] = launder(T_MALLOC(opaque(3 * MiB)));
          if (blk[nblk]) pat_fill(blk[nblk], 3 * MiB, 900 + (uint64_t)nblk);
          nblk++;
        }
      }
      while (n > 1) {
        size_t m = n - n / 3 - (size_t)(test_rand(&rng) % 100);
        if (m < 1 || m > n) m = 1;
        p = realloc_check(p, &n, m, 9, "huge shrink");
      }
      T_FREE(p);
      for (int i = 0; i < nblk; i++)
        if (blk[i]) {
          CHECK_PAT(blk[i], 3 * MiB, 900 + (uint64_t)i, "blocker %d", i);
          T_FREE(blk[i]);
        }
    }
  }

  /* Step-by-step growth, as a string builder does: small increments. */
  {
    size_t n = 0;
    void *p = NULL;
    uint64_t rng = 7;
    while (n < 3 * MiB) {
      size_t m = n + 1 + (size_t)(test_rand(&rng) % (n / 16 + 64));
      p = realloc_check(p, &n, m, 11, "small steps");
      if (!p) break;
    }
    T_FREE(p);
  }

  /* Random walk of four blocks over log-uniform sizes, 0 included. */
  {
    uint64_t rng = 12345;
    void *p[4] = {NULL, NULL, NULL, NULL};
    size_t n[4] = {0, 0, 0, 0};
    for (int step = 0; step < 2500; step++) {
      int s = (int)(test_rand(&rng) % 4);
      uint64_t r = test_rand(&rng);
      size_t m;
      if (r % 64 == 0) m = 0;
      else {
        int bits = (int)((r >> 8) % 23); /* up to 4 MiB */
        m = ((size_t)1 << bits) + (size_t)((r >> 16) % ((size_t)1 << bits));
      }
      if (!p[s] && m == 0) continue;
      p[s] = realloc_check(p[s], &n[s], m, 20 + (uint64_t)s, "random walk");
    }
    for (int s = 0; s < 4; s++) {
      if (p[s]) CHECK_PAT(p[s], n[s], 20 + (uint64_t)s, "random walk end");
      T_FREE(p[s]);
    }
  }

  /* reallocarray without overflow behaves as realloc(p, count * size). */
  {
    size_t n = 10 * 8;
    void *p = launder(T_REALLOCARRAY(NULL, opaque(10), opaque(8)));
    CHECK(p != NULL);
    if (p) {
      pat_fill(p, n, 31);
      void *q = launder(T_REALLOCARRAY(p, opaque(100000), opaque(8)));
      CHECK(q != NULL);
      if (q) {
        CHECK_PAT(q, n, 31, T_NAME("reallocarray") " grow");
        CHECK(T_USABLE_SIZE(q) >= 800000);
        p = q;
        q = launder(T_REALLOCARRAY(p, opaque(5), opaque(8)));
        CHECK(q != NULL);
        if (q) {
          CHECK_PAT(q, 40, 31, T_NAME("reallocarray") " shrink");
          p = q;
        }
      }
      T_FREE(p);
    }
  }
}

/* ---- calloc zeroing on reuse --------------------------------------------- */

static void calloc_check(void *p, size_t n, const char *ctx, size_t size) {
  CHECKF(p != NULL, "%s: " T_NAME("calloc") " of %zu = NULL", ctx, size);
  if (!p) return;
  size_t z = nonzero_at(p, n);
  CHECKF(z == SIZE_MAX, "%s: " T_NAME("calloc") " of %zu bytes: byte %zu is 0x%02x", ctx, size, z,
         z == SIZE_MAX ? 0 : ((unsigned char *)p)[z]);
  CHECKF(T_USABLE_SIZE(p) >= n, "%s: " T_NAME("calloc") " usable size", ctx);
}

static void *calloc_any(size_t n, int how) {
  switch (how % 3) {
    case 0: return launder(T_CALLOC(1, opaque(n)));
    case 1: return launder(T_CALLOC(opaque(n), 1));
    default:
      if (n % 8 == 0) return launder(T_CALLOC(opaque(n / 8), opaque(8)));
      return launder(T_CALLOC(opaque(n), opaque(1)));
  }
}

static void test_calloc_reuse(void) {
  static const size_t sizes[] = {1, 8, 16, 24, 48, 100, 256, 1000, 1024, 4000, 8192, 20000,
                                 65536, 100000, 300000, 500 * KiB, MiB, 2 * MiB - 1, 2 * MiB + 1,
                                 3 * MiB, 8 * MiB, 20 * MiB};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    size_t n = sizes[si];
    int k = n <= 4096 ? 64 : n <= MiB ? 16 : 3;
    int rounds = n <= 4096 ? 8 : 4;
    void *b[64];
    for (int round = 0; round < rounds; round++) {
      for (int i = 0; i < k; i++) {
        b[i] = launder(T_MALLOC(opaque(n)));
        CHECK(b[i] != NULL);
        if (b[i]) memset(b[i], 0xa5, T_USABLE_SIZE(b[i]));
      }
      for (int i = k; i-- > 0;) T_FREE(b[i]);
      if (round == 1) give_back(false);
      if (round == 2) give_back(true);
      for (int i = 0; i < k; i++) {
        b[i] = calloc_any(n, round + i);
        calloc_check(b[i], n, "calloc after dirty free", n);
      }
      for (int i = 0; i < k; i++) {
        if (b[i]) memset(b[i], 0x5a, T_USABLE_SIZE(b[i]));
        T_FREE(b[i]);
      }
    }
    /* The same size again, many times in a row, freed at once. */
    int again = n <= 4096 ? 60 : n <= MiB ? 20 : 6;
    for (int i = 0; i < again; i++) {
      void *p = launder(T_MALLOC(opaque(n)));
      if (p) memset(p, 0xee, n);
      T_FREE(p);
      p = calloc_any(n, i);
      calloc_check(p, n, "calloc right after free", n);
      T_FREE(p);
    }
  }

  /* Blocks shrunk by realloc leave dirty tails; calloc must not trust them. */
  static const size_t shr[][2] = {{1000, 100}, {20 * KiB, 1000}, {500 * KiB, 20 * KiB},
                                  {8 * MiB, 3 * MiB}, {8 * MiB, 500 * KiB}, {20 * MiB, 2 * MiB + 1}};
  for (size_t i = 0; i < sizeof shr / sizeof shr[0]; i++) {
    for (int round = 0; round < 4; round++) {
      void *p = launder(T_MALLOC(opaque(shr[i][0])));
      CHECK(p != NULL);
      if (!p) continue;
      memset(p, 0xc3, shr[i][0]);
      void *q = launder(T_REALLOC(p, opaque(shr[i][1])));
      CHECK(q != NULL);
      if (!q) q = p;
      void *c1 = calloc_any(shr[i][0] - shr[i][1], round); /* may take the released tail */
      calloc_check(c1, shr[i][0] - shr[i][1], "calloc after realloc shrink (tail)", shr[i][0]);
      T_FREE(q);
#if CONFORMANCE_EBB_API
      if (round & 1) ebb_collect(round == 3);
#else
      if (round & 1) CHECK(malloc_trim(0) >= 0);
#endif
      void *c2 = calloc_any(shr[i][0], round + 1);
      calloc_check(c2, shr[i][0], "calloc after realloc shrink + free", shr[i][0]);
      T_FREE(c1);
      T_FREE(c2);
    }
  }

  /* Random mix of dirty mallocs and callocs over all scales. */
  {
    uint64_t rng = 99;
    enum { SLOTS = 256 };
    void *slot[SLOTS] = {0};
    for (int it = 0; it < 30000; it++) {
      uint64_t r = test_rand(&rng);
      int s = (int)(r % SLOTS);
      if (slot[s]) {
        T_FREE(slot[s]);
        slot[s] = NULL;
        continue;
      }
      size_t n;
      unsigned sc = (unsigned)((r >> 8) % 1000);
      if (sc < 700) n = 1 + (size_t)((r >> 20) % 1024);
      else if (sc < 950) n = 1024 + (size_t)((r >> 20) % (64 * KiB));
      else if (sc < 995) n = 64 * KiB + (size_t)((r >> 20) % MiB);
      else n = 2 * MiB + (size_t)((r >> 20) % (2 * MiB));
      if ((r >> 40) & 1) {
        slot[s] = launder(T_MALLOC(opaque(n)));
        if (slot[s]) memset(slot[s], 0xff, T_USABLE_SIZE(slot[s]));
      } else {
        slot[s] = calloc_any(n, (int)(r >> 41));
        calloc_check(slot[s], n, "calloc in random mix", n);
        if (slot[s]) memset(slot[s], 0x77, T_USABLE_SIZE(slot[s]));
      }
    }
    for (int s = 0; s < SLOTS; s++) T_FREE(slot[s]);
  }
}

#if CONFORMANCE_EBB_API
/* ebb_calloc_aligned: zero and aligned, also on memory just dirtied and
 * freed at the same size and alignment; EINVAL for a bad alignment. */
static void test_calloc_aligned(void) {
  static const size_t aligns[] = {8, 16, 64, 256, 4096, 64 * KiB, MiB, 4 * MiB};
  static const size_t sizes[] = {1, 24, 100, 4000, 70000, 3 * MiB};
  for (size_t ai = 0; ai < sizeof aligns / sizeof aligns[0]; ai++)
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
      size_t a = aligns[ai], n = sizes[si];
      for (int round = 0; round < 3; round++) {
        void *dirty = launder(ebb_aligned_alloc(opaque(a), opaque(n)));
        CHECK(dirty != NULL);
        if (dirty) memset(dirty, 0xe7, n);
        ebb_free(dirty);
        unsigned char *p = launder(ebb_calloc_aligned(opaque(a), opaque(n)));
        CHECKF(p != NULL, "ebb_calloc_aligned(%zu, %zu) = NULL", a, n);
        if (!p) continue;
        CHECKF(is_aligned(p, a), "ebb_calloc_aligned(%zu, %zu) = %p", a, n, (void *)p);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++) nonzero += p[i] != 0;
        CHECKF(nonzero == 0, "ebb_calloc_aligned(%zu, %zu): %zu bytes not zero (round %d)", a, n,
               nonzero, round);
        ebb_free(p);
      }
    }
  static const size_t bad[] = {0, 3, 24, 100, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    void *p = launder(ebb_calloc_aligned(opaque(bad[i]), opaque(16)));
    CHECKF(p == NULL && errno == EINVAL, "ebb_calloc_aligned(%zu, 16) = %p, errno %d", bad[i], p,
           errno);
    ebb_free(p);
  }
  errno = 0;
  void *p = launder(ebb_calloc_aligned(opaque(64), opaque(SIZE_MAX - 4096)));
  CHECKF(p == NULL && errno == ENOMEM, "ebb_calloc_aligned(64, SIZE_MAX - 4096) = %p", p);
  ebb_free(p);
}
#endif

/* ---- many live blocks ---------------------------------------------------- */

struct blk {
  void *p;
  size_t n, u;
};

static int cmp_blk_addr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const struct blk *)a)->p, y = (uintptr_t)((const struct blk *)b)->p;
  return x < y ? -1 : x > y;
}

static size_t live_size(uint64_t *rng) {
  uint64_t r = test_rand(rng);
  unsigned c = (unsigned)(r % 10000);
  r >>= 16;
  if (c < 9000) return (size_t)(r % 257);
  if (c < 9800) return 257 + (size_t)(r % (16 * KiB));
  if (c < 9980) return 16 * KiB + (size_t)(r % (256 * KiB));
  return 256 * KiB + (size_t)(r % (6 * MiB));
}

static void alloc_live(struct blk *b, uint64_t *rng, uint64_t seed) {
  size_t n = live_size(rng);
  uint64_t r = test_rand(rng);
  if (r % 100 == 0) {
    size_t a = (size_t)16 << (r >> 8) % 13; /* 16 B .. 64 KiB */
    b->p = launder(T_ALIGNED_ALLOC(opaque(a), opaque(n)));
    CHECKF(b->p && is_aligned(b->p, a), T_NAME("aligned_alloc") "(%zu, %zu) = %p", a, n, b->p);
  } else if (r % 100 == 1) {
    b->p = launder(T_CALLOC(opaque(n), 1));
    CHECKF(b->p && nonzero_at(b->p, n) == SIZE_MAX, T_NAME("calloc") "(%zu) not zero", n);
  } else {
    b->p = launder(T_MALLOC(opaque(n)));
    CHECKF(b->p && is_aligned(b->p, min_align(n)), T_NAME("malloc") "(%zu) = %p", n, b->p);
  }
  b->n = n;
  b->u = b->p ? T_USABLE_SIZE(b->p) : 0;
  CHECKF(b->u >= n, "usable %zu < %zu", b->u, n);
  if (b->p) pat_fill(b->p, b->u, seed);
}

/* A third of the blocks (by address) go back through free_sized. */
static void free_live(struct blk *b) {
  if (b->p && (uintptr_t)b->p % 3 == 0) T_FREE_SIZED(b->p, b->n);
  else T_FREE(b->p);
  b->p = NULL;
}

static void check_no_overlap(struct blk *b, size_t count) {
  struct blk *s = (struct blk *)T_MALLOC(count * sizeof *s);
  CHECK(s != NULL);
  if (!s) return;
  memcpy(s, b, count * sizeof *s);
  qsort(s, count, sizeof *s, cmp_blk_addr);
  int reported = 0;
  for (size_t i = 0; i + 1 < count; i++) {
    if (!s[i].p) continue;
    bool ok = (uintptr_t)s[i].p + s[i].u <= (uintptr_t)s[i + 1].p;
    if (!ok && reported++ < 5)
      CHECKF(ok, "blocks overlap: %p+%zu and %p", s[i].p, s[i].u, s[i + 1].p);
  }
  T_FREE(s);
}

static void test_many_live(void) {
  enum { N = 100000 };
  struct blk *b = (struct blk *)T_CALLOC(N, sizeof *b);
  size_t *order = (size_t *)T_MALLOC(N * sizeof *order);
  CHECK(b && order);
  if (!b || !order) return;
  uint64_t rng = 2024;
  for (size_t i = 0; i < N; i++) alloc_live(&b[i], &rng, i);
  check_no_overlap(b, N);
  for (size_t i = 0; i < N; i++)
    if (b[i].p) CHECK_PAT(b[i].p, b[i].u, i, "live block %zu of %zu bytes", i, b[i].n);

  for (size_t i = 0; i < N; i++) order[i] = i;
  for (size_t i = N - 1; i > 0; i--) {
    size_t j = (size_t)(test_rand(&rng) % (i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  /* Free half in random order, check the rest, refill the holes. */
  for (size_t k = 0; k < N / 2; k++) {
    struct blk *x = &b[order[k]];
    if (x->p) CHECK_PAT(x->p, x->u, order[k], "before free, block %zu", order[k]);
    free_live(x);
  }
  give_back(false);
  for (size_t k = N / 2; k < N; k++) {
    struct blk *x = &b[order[k]];
    if (x->p) CHECK_PAT(x->p, x->u, order[k], "after freeing others, block %zu", order[k]);
  }
  for (size_t k = 0; k < N / 2; k++) alloc_live(&b[order[k]], &rng, order[k] + N);
  check_no_overlap(b, N);
  for (size_t k = 0; k < N; k++) {
    size_t i = order[k];
    uint64_t seed = k < N / 2 ? i + N : i;
    if (b[i].p) CHECK_PAT(b[i].p, b[i].u, seed, "after refill, block %zu", i);
  }
  /* Free everything in another random order. */
  for (size_t i = N - 1; i > 0; i--) {
    size_t j = (size_t)(test_rand(&rng) % (i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t k = 0; k < N; k++) free_live(&b[order[k]]);
  T_FREE(order);
  T_FREE(b);
  give_back(true);
}

/* ---- threads --------------------------------------------------------------- */

#define NTHREADS 6
#define MT_OPS 20000
#define INBOX_CAP 512

struct item {
  void *p;
  size_t n;
  size_t align; /* from aligned_alloc: 0, or the alignment to keep */
  uint64_t seed;
};
struct inbox {
  pthread_mutex_t mu;
  int count;
  struct item items[INBOX_CAP];
};
static struct inbox inboxes[NTHREADS];
static pthread_barrier_t mt_barrier;

static size_t mt_size(uint64_t *rng) {
  uint64_t r = test_rand(rng);
  unsigned c = (unsigned)(r % 1000);
  r >>= 16;
  if (c < 700) return 1 + (size_t)(r % 512);
  if (c < 950) return 512 + (size_t)(r % (32 * KiB));
  if (c < 999) return 32 * KiB + (size_t)(r % (256 * KiB));
  return 2 * MiB + (size_t)(r % (2 * MiB));
}

static bool inbox_push(int to, struct item it) {
  struct inbox *ib = &inboxes[to];
  bool ok = false;
  pthread_mutex_lock(&ib->mu);
  if (ib->count < INBOX_CAP) {
    ib->items[ib->count++] = it;
    ok = true;
  }
  pthread_mutex_unlock(&ib->mu);
  return ok;
}
static bool inbox_pop(int id, struct item *it) {
  struct inbox *ib = &inboxes[id];
  bool ok = false;
  pthread_mutex_lock(&ib->mu);
  if (ib->count > 0) {
    *it = ib->items[--ib->count];
    ok = true;
  }
  pthread_mutex_unlock(&ib->mu);
  return ok;
}

static void mt_new(struct item *it, uint64_t *rng, uint64_t seed) {
  size_t n = mt_size(rng), a = 0;
  uint64_t r = test_rand(rng);
  void *p;
  if (r % 16 == 0) p = launder(T_CALLOC(1, opaque(n)));
  else if (r % 16 == 1) {
    a = (size_t)64 << (r >> 8) % 8;
    p = launder(T_ALIGNED_ALLOC(opaque(a), opaque(n)));
    MT_CHECK(p == NULL || is_aligned(p, a), T_NAME("aligned_alloc") "(%zu) = %p", a, p);
  } else p = launder(T_MALLOC(opaque(n)));
  MT_CHECK(p != NULL, "thread alloc of %zu failed", n);
  if (p && r % 16 == 0) MT_CHECK(nonzero_at(p, n) == SIZE_MAX, "thread " T_NAME("calloc") "(%zu) not zero", n);
  if (p) {
    MT_CHECK(T_USABLE_SIZE(p) >= n, "usable size");
    pat_fill(p, n, seed);
  }
  it->p = p;
  it->n = n;
  it->align = a;
  it->seed = seed;
}

/* One free in four through free_sized. */
static void mt_free(struct item *it, uint64_t r) {
  if (r % 4 == 0) T_FREE_SIZED(it->p, it->n);
  else T_FREE(it->p);
  it->p = NULL;
}

static void *mt_worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t rng = 0x9876543210ull + (uint64_t)id * 7919;
  enum { LOCAL = 128 };
  struct item local[LOCAL];
  memset(local, 0, sizeof local);
  uint64_t seq = (uint64_t)id << 40;
  for (int op = 0; op < MT_OPS; op++) {
    uint64_t r = test_rand(&rng);
    int s = (int)(r % LOCAL);
    struct item *x = &local[s];
    if (op % 3001 == 3000) give_back(id == 0 && op % 2 == 0);
    switch ((r >> 8) % 8) {
      case 0: case 1: case 2: case 3:
        if (x->p) {
          MT_CHECK_PAT(x->p, x->n, x->seed, "own block before free");
          mt_free(x, r >> 20);
        }
        mt_new(x, &rng, ++seq);
        break;
      case 4: case 5:
        if (x->p) {
          int to = (id + 1 + (int)((r >> 16) % (NTHREADS - 1))) % NTHREADS;
          if (inbox_push(to, *x)) x->p = NULL;
        }
        break;
      default: {
        struct item it;
        if (!inbox_pop(id, &it)) break;
        MT_CHECK_PAT(it.p, it.n, it.seed, "block from another thread");
        unsigned what = (unsigned)((r >> 16) % 4);
        if (what == 0) {
          mt_free(&it, r >> 24);
        } else {
          /* realloc a block another thread allocated, keep it */
          size_t m = mt_size(&rng);
          void *q;
#if CONFORMANCE_EBB_API
          if (it.align && what == 1) {
            q = launder(ebb_realloc_aligned(it.p, opaque(it.align), opaque(m)));
            MT_CHECK(q == NULL || is_aligned(q, it.align), "realloc_aligned lost alignment %zu", it.align);
          } else
#endif
          {
            q = launder(T_REALLOC(it.p, opaque(m)));
            it.align = 0;
          }
          MT_CHECK(q != NULL, "realloc of foreign block to %zu", m);
          if (!q) {
            T_FREE(it.p);
            break;
          }
          MT_CHECK_PAT(q, it.n < m ? it.n : m, it.seed, "foreign block after realloc");
          pat_fill(q, m, it.seed);
          it.p = q;
          it.n = m;
          if (x->p) {
            MT_CHECK_PAT(x->p, x->n, x->seed, "own block before free");
            mt_free(x, r >> 24);
          }
          *x = it;
        }
      }
    }
  }
  pthread_barrier_wait(&mt_barrier);
  struct item it;
  while (inbox_pop(id, &it)) {
    MT_CHECK_PAT(it.p, it.n, it.seed, "block from another thread at end");
    mt_free(&it, it.seed);
  }
  for (int s = 0; s < LOCAL; s++)
    if (local[s].p) {
      MT_CHECK_PAT(local[s].p, local[s].n, local[s].seed, "own block at end");
      mt_free(&local[s], (uint64_t)s);
    }
  give_back(false);
  return NULL;
}

/* Blocks that outlive the thread that allocated them. */
#define ORPHANS 3000
static struct item orphans[4][ORPHANS];

static void *orphan_maker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t rng = 555 + (uint64_t)id;
  for (int i = 0; i < ORPHANS; i++) mt_new(&orphans[id][i], &rng, (uint64_t)id * 100000 + (uint64_t)i);
  return NULL;
}
static void *orphan_freer(void *arg) {
  int id = (int)(intptr_t)arg;
  int from = (id + 1) % 4;
  uint64_t rng = 777 + (uint64_t)id;
  for (int i = 0; i < ORPHANS; i += 2) {
    struct item *x = &orphans[from][i];
    if (x->p) {
      MT_CHECK_PAT(x->p, x->n, x->seed, "orphan");
      mt_free(x, (uint64_t)i);
    }
    /* and allocate some of our own in the meantime */
    struct item y;
    mt_new(&y, &rng, 1);
    T_FREE(y.p);
  }
  return NULL;
}
static void *short_lived(void *arg) {
  void **out = (void **)arg;
  void *tmp = launder(T_MALLOC(opaque(1000)));
  *out = launder(T_MALLOC(opaque(200)));
  if (*out) pat_fill(*out, 200, (uintptr_t)out);
  T_FREE(tmp);
  return NULL;
}

static void test_threads(void) {
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_mutex_init(&inboxes[i].mu, NULL);
  pthread_barrier_init(&mt_barrier, NULL, NTHREADS);
  for (int i = 0; i < NTHREADS; i++)
    CHECK(pthread_create(&th[i], NULL, mt_worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&mt_barrier);

  for (int i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, orphan_maker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, orphan_freer, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  give_back(true);
  for (int id = 0; id < 4; id++)
    for (int i = 1; i < ORPHANS; i += 2) {
      struct item *x = &orphans[id][i];
      if (x->p) {
        CHECK_PAT(x->p, x->n, x->seed, "orphan freed by main");
        mt_free(x, (uint64_t)i);
      }
    }

  /* Many short-lived threads, each leaving one block behind. */
  enum { SHORT = 200 };
  static void *left[SHORT];
  for (int i = 0; i < SHORT; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, short_lived, &left[i]) == 0);
    pthread_join(t, NULL);
  }
  for (int i = 0; i < SHORT; i++) {
    CHECK(left[i] != NULL);
    if (left[i]) CHECK_PAT(left[i], 200, (uintptr_t)&left[i], "left by a dead thread");
    T_FREE(left[i]);
  }
}

/* ---- bad input ------------------------------------------------------------- */

static void expect_null(void *r, int err, int want_err, const char *call, size_t a, size_t b) {
  CHECKF(r == NULL, "%s(%zu, %zu) = %p, want NULL", call, a, b, r);
  CHECKF(err == want_err, "%s(%zu, %zu): errno %d, want %d", call, a, b, err, want_err);
  if (r) T_FREE(r);
}
/* The call must fail with errno `want`.  Two levels, so that the message
 * names the function called (ebb_malloc), not the macro (T_MALLOC). */
#define TRY(call, a, b, want) TRY_EXPANDED(call, a, b, want)
#define TRY_EXPANDED(call, a, b, want)      \
  do {                                      \
    errno = 0;                              \
    void *r_ = launder(call);               \
    int e_ = errno;                         \
    expect_null(r_, e_, want, #call, a, b); \
  } while (0)

static const size_t impossible[] = {
    SIZE_MAX,
    SIZE_MAX - 1,
    SIZE_MAX - 7,
    SIZE_MAX - 15,
    SIZE_MAX - 16,
    SIZE_MAX - 4095,
    SIZE_MAX - 4096,
    SIZE_MAX - 2 * 1024 * 1024,
    SIZE_MAX - ((size_t)1 << 30),
    (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX,
    (size_t)PTRDIFF_MAX - 4095,
    (size_t)1 << 62,
    (size_t)1 << 48,
};
#define N_IMPOSSIBLE (sizeof impossible / sizeof impossible[0])

static void test_bad_sizes(void) {
  /* A block of each scale that must survive failed reallocs untouched. */
  static const size_t keep[] = {40, 20 * KiB, 500 * KiB, 8 * MiB};
  void *kp[4];
  for (int i = 0; i < 4; i++) {
    kp[i] = launder(T_MALLOC(opaque(keep[i])));
    CHECK(kp[i] != NULL);
    if (kp[i]) pat_fill(kp[i], keep[i], 300 + (uint64_t)i);
  }
#if CONFORMANCE_EBB_API
  /* and an aligned one that must survive failed ebb_realloc_aligned */
  void *ka = launder(ebb_aligned_alloc(opaque(4096), opaque(5000)));
  CHECK(ka != NULL);
  if (ka) pat_fill(ka, 5000, 399);
#endif

  for (size_t i = 0; i < N_IMPOSSIBLE; i++) {
    size_t n = impossible[i];
    TRY(T_MALLOC(opaque(n)), n, 0, ENOMEM);
    TRY(T_CALLOC(1, opaque(n)), 1, n, ENOMEM);
    TRY(T_CALLOC(opaque(n), 1), n, 1, ENOMEM);
    TRY(T_REALLOC(NULL, opaque(n)), 0, n, ENOMEM);
    TRY(T_REALLOCARRAY(NULL, opaque(n), 1), n, 1, ENOMEM);
    TRY(T_ALIGNED_ALLOC(16, opaque(n)), 16, n, ENOMEM);
    TRY(T_ALIGNED_ALLOC(4096, opaque(n)), 4096, n, ENOMEM);
    TRY(T_ALIGNED_ALLOC(opaque(GiB), opaque(n)), GiB, n, ENOMEM);
    TRY(T_MEMALIGN(64, opaque(n)), 64, n, ENOMEM);
    TRY(T_MEMALIGN(opaque(2 * MiB), opaque(n)), 2 * MiB, n, ENOMEM);
#if CONFORMANCE_EBB_API
    TRY(ebb_realloc_aligned(NULL, 64, opaque(n)), 64, n, ENOMEM);
#else
    TRY(valloc(opaque(n)), 0, n, ENOMEM);
    TRY(pvalloc(opaque(n)), 0, n, ENOMEM);
#endif
    for (int j = 0; j < 4; j++) {
      if (!kp[j]) continue;
      TRY(T_REALLOC(launder(kp[j]), opaque(n)), keep[j], n, ENOMEM);
      TRY(T_REALLOCARRAY(launder(kp[j]), opaque(n), 1), keep[j], n, ENOMEM);
#if CONFORMANCE_EBB_API
      TRY(ebb_realloc_aligned(launder(kp[j]), 16, opaque(n)), keep[j], n, ENOMEM);
#endif
      CHECK_PAT(kp[j], keep[j], 300 + (uint64_t)j, "block after failed realloc to %zu", n);
    }
#if CONFORMANCE_EBB_API
    if (ka) {
      TRY(ebb_realloc_aligned(launder(ka), 4096, opaque(n)), 5000, n, ENOMEM);
      CHECK_PAT(ka, 5000, 399, "aligned block after failed realloc_aligned to %zu", n);
    }
#endif
    static const size_t pm_align[] = {8, 64, 4096, 1 << 30};
    for (int j = 0; j < 4; j++) {
      void *out = (void *)&out;
      int rc = T_POSIX_MEMALIGN((void **)launder(&out), opaque(pm_align[j]), opaque(n));
      CHECKF(rc == ENOMEM, T_NAME("posix_memalign") "(%zu, %zu) = %d, want ENOMEM", pm_align[j], n, rc);
      CHECKF(out == (void *)&out, T_NAME("posix_memalign") "(%zu, %zu) changed *out to %p", pm_align[j],
             n, out);
      if (rc == 0) T_FREE(out);
    }
  }

  /* calloc overflow */
  static const size_t ov[][2] = {
      {SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
      {SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {((size_t)1 << 33) + 1, (size_t)1 << 31},
      {65537, SIZE_MAX / 65536}, {SIZE_MAX / 3 + 1, 3}, {16, SIZE_MAX / 16 + 1},
      /* no overflow, just impossible */
      {(size_t)1 << 31, (size_t)1 << 31}, {(size_t)1 << 40, 1 << 20}};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
    TRY(T_CALLOC(opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
    TRY(T_REALLOCARRAY(NULL, opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
    for (int j = 0; j < 4; j++) {
      if (!kp[j]) continue;
      TRY(T_REALLOCARRAY(launder(kp[j]), opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
      CHECK_PAT(kp[j], keep[j], 300 + (uint64_t)j, "block after failed reallocarray");
    }
  }
  /* A zero factor is no overflow: a unique freeable pointer. */
  {
    void *a = launder(T_CALLOC(opaque(0), opaque(SIZE_MAX)));
    void *b = launder(T_CALLOC(opaque(SIZE_MAX), opaque(0)));
    CHECK(a != NULL && b != NULL && a != b);
    T_FREE(a);
    T_FREE(b);
  }
#if CONFORMANCE_EBB_API
  /* Bad alignment to ebb_realloc_aligned: EINVAL, block untouched. */
  if (ka) {
    static const size_t bad[] = {0, 3, 24, 100, SIZE_MAX};
    for (size_t i = 0; i < 5; i++) {
      TRY(ebb_realloc_aligned(launder(ka), opaque(bad[i]), opaque(6000)), bad[i], 6000, EINVAL);
      CHECK_PAT(ka, 5000, 399, "aligned block after realloc_aligned(alignment %zu)", bad[i]);
    }
  }
#endif

  /* The blocks that saw failed reallocs still work normally. */
  for (int j = 0; j < 4; j++) {
    if (!kp[j]) continue;
    size_t n = keep[j];
    kp[j] = realloc_check(kp[j], &n, keep[j] * 3, 300 + (uint64_t)j, "after failures");
    kp[j] = realloc_check(kp[j], &n, keep[j] / 2 + 1, 300 + (uint64_t)j, "after failures");
    T_FREE(kp[j]);
  }
#if CONFORMANCE_EBB_API
  if (ka) {
    size_t n = 5000;
    ka = realloc_aligned_check(ka, &n, 4096, 9000, 399, "after failures");
    ebb_free(ka);
  }
#endif
}

static void test_bad_alignments(void) {
  /* posix_memalign: not a power of two multiple of sizeof(void *) */
  static const size_t bad_pm[] = {0, 1, 2, 3, 4, 5, 6, 7, 12, 20, 24, 40, 48, 100, 4095, 4097,
                                  3 * 4096, SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX / 2 + 8,
                                  SIZE_MAX - 7};
  static const size_t sizes[] = {0, 1, 100, 5000};
  for (size_t i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++)
    for (size_t j = 0; j < 4; j++) {
      void *out = (void *)&out;
      int rc = T_POSIX_MEMALIGN((void **)launder(&out), opaque(bad_pm[i]), opaque(sizes[j]));
      CHECKF(rc == EINVAL, T_NAME("posix_memalign") "(%zu, %zu) = %d, want EINVAL", bad_pm[i], sizes[j], rc);
      CHECKF(out == (void *)&out, T_NAME("posix_memalign") "(%zu, %zu) changed *out", bad_pm[i], sizes[j]);
      if (rc == 0) T_FREE(out);
    }
  /* A power of two too large to honour: EINVAL or ENOMEM, *out untouched. */
  static const size_t huge_pow2[] = {SIZE_MAX / 2 + 1, (size_t)1 << 62, (size_t)1 << 48};
  for (size_t i = 0; i < 3; i++) {
    void *out = (void *)&out;
    int rc = T_POSIX_MEMALIGN((void **)launder(&out), opaque(huge_pow2[i]), opaque(1));
    CHECKF(rc == EINVAL || rc == ENOMEM, T_NAME("posix_memalign") "(%zu, 1) = %d", huge_pow2[i], rc);
    CHECKF(out == (void *)&out, T_NAME("posix_memalign") "(%zu, 1) changed *out", huge_pow2[i]);
    if (rc == 0) T_FREE(out);
    errno = 0;
    void *p = launder(T_ALIGNED_ALLOC(opaque(huge_pow2[i]), opaque(1)));
    int e = errno;
    CHECKF(p == NULL && (e == EINVAL || e == ENOMEM), T_NAME("aligned_alloc") "(%zu, 1) = %p, errno %d",
           huge_pow2[i], p, e);
    errno = 0;
    p = launder(T_MEMALIGN(opaque(huge_pow2[i]), opaque(1)));
    e = errno;
    CHECKF(p == NULL && (e == EINVAL || e == ENOMEM), T_NAME("memalign") "(%zu, 1) = %p, errno %d",
           huge_pow2[i], p, e);
  }

  /* aligned_alloc (and ebb_realloc_aligned): not a power of two */
  static const size_t bad_aa[] = {0, 3, 5, 6, 7, 12, 24, 48, 100, 4095, 4097, 3 * 4096,
                                  SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX - 7};
#ifdef EBB_TEST_AGAINST_LIBC
  /* glibc 2.36's aligned_alloc accepts any alignment (2.38 does not). */
  if (0)
#endif
  for (size_t i = 0; i < sizeof bad_aa / sizeof bad_aa[0]; i++)
    for (size_t j = 0; j < 4; j++) {
      TRY(T_ALIGNED_ALLOC(opaque(bad_aa[i]), opaque(sizes[j])), bad_aa[i], sizes[j], EINVAL);
#if CONFORMANCE_EBB_API
      TRY(ebb_realloc_aligned(NULL, opaque(bad_aa[i]), opaque(sizes[j] + 1)), bad_aa[i], sizes[j] + 1, EINVAL);
#endif
    }

  /* memalign: no power of two that large exists */
  static const size_t bad_ma[] = {SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX - 4095};
  for (size_t i = 0; i < 3; i++) TRY(T_MEMALIGN(opaque(bad_ma[i]), opaque(100)), bad_ma[i], 100, EINVAL);
  /* aligned_alloc with small powers of two is fine */
  for (size_t a = 1; a <= 8; a *= 2) {
    void *p = launder(T_ALIGNED_ALLOC(opaque(a), opaque(10)));
    check_new_block(p, 10, 8, T_NAME("aligned_alloc") "(small pow2)");
    T_FREE(p);
  }
}

#if CONFORMANCE_EBB_API
/* Bad pointers: abort with one line naming the call and the pointer.  Each
 * in a forked child; t_badfree covers the standard names in depth. */
enum bad_call { B_FREE, B_FREE_SIZED, B_REALLOC, B_USABLE, B_REALLOC_ALIGNED };
static volatile size_t sink;
static void bad_case(const char *label, enum bad_call c, void *p, size_t arg, const char *name) {
  int fds[2];
  if (pipe(fds) != 0) {
    perror("pipe");
    exit(2);
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    alarm(20);
    switch (c) {
      case B_FREE: ebb_free(launder(p)); break;
      case B_FREE_SIZED: ebb_free_sized(launder(p), opaque(arg)); break;
      case B_REALLOC: sink = (uintptr_t)launder(ebb_realloc(launder(p), opaque(arg))); break;
      case B_USABLE: sink = ebb_usable_size(launder(p)); break;
      case B_REALLOC_ALIGNED: sink = (uintptr_t)launder(ebb_realloc_aligned(launder(p), 64, opaque(arg))); break;
    }
    _exit(0);
  }
  close(fds[1]);
  char buf[4096];
  size_t len = read_child_output(fds[0], buf, sizeof buf);
  int st = wait_child(pid);
  char ptxt[64];
  snprintf(ptxt, sizeof ptxt, "%p", p);
  bool aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  char *nl = memchr(buf, '\n', len);
  bool one_line = len > 0 && nl == buf + len - 1;
  bool ok = aborted && one_line && strstr(buf, "ebb") && strstr(buf, name) && strstr(buf, ptxt);
  printf("%s %s(%s): %s\n", ok ? "  ok  " : "  FAIL", name, ptxt, label);
  CHECKF(ok, "%s: child %s %d, stderr \"%s\"; want SIGABRT and one line with \"ebb\", \"%s\", \"%s\"",
         label, WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
         buf, name, ptxt);
}

static void test_bad_pointers(void) {
  printf("\n");
  char *small = (char *)launder(ebb_malloc(opaque(100)));
  char *large = (char *)launder(ebb_malloc(opaque(500 * KiB)));
  char *huge = (char *)launder(ebb_malloc(opaque(8 * MiB)));
  static char global[64];
  if (!small || !large || !huge) {
    CHECK(!"allocation failed");
    return;
  }
  bad_case("inside a small block", B_FREE, small + 8, 0, "free");
  bad_case("inside a huge block beyond 4 MiB", B_FREE, huge + 5 * MiB, 0, "free");
  bad_case("a global", B_FREE, global + 16, 0, "free");
  bad_case("size > usable", B_FREE_SIZED, small, ebb_usable_size(small) + 1, "free");
  bad_case("size > usable", B_FREE_SIZED, large, ebb_usable_size(large) + 4096, "free");
  bad_case("size > usable", B_FREE_SIZED, huge, ebb_usable_size(huge) + 1, "free");
  bad_case("inside a small block", B_FREE_SIZED, small + 16, 16, "free");
  bad_case("inside a large block", B_REALLOC, large + 16, 100, "realloc");
  bad_case("inside a huge block", B_REALLOC_ALIGNED, huge + 64, 100, "realloc");
  bad_case("inside a large block", B_USABLE, large + 4096, 0, "usable_size");
  bad_case("a global", B_USABLE, global, 0, "usable_size");
  ebb_free(small);
  ebb_free(large);
  ebb_free(huge);
}
#endif

/* After all that, the allocator still works. */
static void test_still_works(void) {
  uint64_t rng = 1;
  static struct blk b[2000];
  for (int i = 0; i < 2000; i++) alloc_live(&b[i], &rng, (uint64_t)i);
  check_no_overlap(b, 2000);
  for (int i = 0; i < 2000; i++) {
    if (b[i].p) CHECK_PAT(b[i].p, b[i].u, (uint64_t)i, "after bad input, block %d", i);
    free_live(&b[i]);
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
#if !CONFORMANCE_EBB_API
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  section("family is ebb's");        test_family_is_ebb();    section(NULL);
#endif
  section("basics");                 test_basics();           section(NULL);
#if CONFORMANCE_EBB_API
  section("good_size");              test_good_size();        section(NULL);
#else
  section("mallinfo2 counts");       test_mallinfo2_counts(); section(NULL);
#endif
  section("sizes 0..64 MiB");        test_sizes();            section(NULL);
  section("alignments 1 B..1 GiB");  test_alignments();       section(NULL);
  section("realloc");                test_realloc();          section(NULL);
  section("calloc zero on reuse");   test_calloc_reuse();     section(NULL);
#if CONFORMANCE_EBB_API
  section("calloc_aligned");         test_calloc_aligned();   section(NULL);
#endif
  section("100k live blocks");       test_many_live();        section(NULL);
  section("threads");                test_threads();          section(NULL);
  section("bad sizes");              test_bad_sizes();        section(NULL);
  section("bad alignments");         test_bad_alignments();   section(NULL);
#if CONFORMANCE_EBB_API
  section("bad pointers");           test_bad_pointers();     section(NULL);
#endif
  section("still works");            test_still_works();      section(NULL);
  TEST_DONE();
}
