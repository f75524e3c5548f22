/* t_conformance: the standard malloc family, which this program gets from
 * libebb.so, against the behaviour documented in include/ebb.h (and glibc
 * 2.36's where ebb.h defers to it).
 *
 *  - every function comes from libebb.so, not from libc;
 *  - sizes 0..2048 one by one, then a geometric sweep (with +-1 neighbours)
 *    up to 64 MiB: non-NULL, aligned, usable >= request, whole block writable;
 *  - every power-of-two alignment from 1 B to 1 GiB through posix_memalign,
 *    aligned_alloc and memalign; memalign rounding odd alignments up;
 *    valloc / pvalloc page alignment and pvalloc's page rounding;
 *  - realloc keeps contents growing and shrinking across every scale (small,
 *    medium, large, huge > 2 MiB), next to live neighbours, in long growth
 *    chains of huge blocks and in random walks;
 *  - calloc memory is zero even when it reuses dirty blocks, after trims and
 *    after realloc shrinks, at every scale;
 *  - 100k live blocks at once do not overlap and keep their contents, freed in
 *    random order;
 *  - threads allocating and freeing, blocks freed by other threads, blocks
 *    outliving the thread that allocated them;
 *  - bad input: impossible sizes (ENOMEM), calloc / reallocarray overflow,
 *    realloc failure leaving the block intact, invalid alignments (EINVAL,
 *    output untouched), and everything still working afterwards;
 *  - free(NULL), cfree, malloc(0), realloc(NULL, n), realloc(p, 0),
 *    malloc_usable_size(NULL), malloc_trim, mallinfo2.
 *
 * Built with -DEBB_TEST_AGAINST_LIBC it runs against glibc's malloc (to check
 * the test itself): the "is this ebb's" and cfree checks are skipped. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "ebb.h"

/* Gone from glibc's headers since 2.26, still part of the family ebb replaces.
 * Weak so that a missing definition is a test failure, not a link failure. */
extern void cfree(void *) __attribute__((weak));

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

static size_t page_size;

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
  size_t u = malloc_usable_size(p);
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

/* ---- the functions really are ebb's ------------------------------------ */

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

/* ---- simple documented behaviour ---------------------------------------- */

static void test_basics(void) {
  free(NULL);
  if (cfree) cfree(NULL);
  CHECK(malloc_usable_size(NULL) == 0);

  /* malloc(0): unique pointers that can be freed. */
  enum { NZ = 2000 };
  static void *z[NZ];
  for (int i = 0; i < NZ; i++) {
    z[i] = launder(malloc(opaque(0)));
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
  for (int i = 1; i < NZ; i++) CHECKF(zs[i] != zs[i - 1], "malloc(0) returned %p twice", zs[i]);
  for (int i = 0; i < NZ; i++) free(z[i]);

  /* realloc(NULL, n) is malloc(n), including n = 0. */
  void *p = launder(realloc(NULL, opaque(0)));
  CHECK(p != NULL);
  free(p);
  for (size_t n = 1; n < 5 * MiB; n = n * 3 + 1) {
    p = launder(realloc(NULL, opaque(n)));
    check_new_block(p, n, min_align(n), "realloc(NULL, n)");
    free(p);
  }

  /* realloc(p, 0) frees p and returns NULL.  Freed, not leaked: a thousand
   * rounds of 1 MiB would show in the RSS. */
  size_t rss0 = test_rss();
  for (int i = 0; i < 1000; i++) {
    p = launder(malloc(opaque(MiB)));
    CHECK(p != NULL);
    if (!p) break;
    memset(p, 0x5a, MiB);
    void *q = launder(realloc(p, opaque(0)));
    CHECKF(q == NULL, "realloc(p, 0) = %p, want NULL", q);
  }
  size_t rss1 = test_rss();
  CHECKF(rss1 < rss0 + 256 * MiB, "realloc(p, 0) leaks: RSS %zu -> %zu", rss0, rss1);
  /* Small ones too (their memory must be reused). */
  for (int i = 0; i < 100000; i++) {
    p = launder(malloc(opaque(100)));
    CHECK(p != NULL);
    memset(p, 1, 100);
    void *q = launder(realloc(p, opaque(0)));
    CHECK(q == NULL);
  }
  /* reallocarray(p, 0, n) is realloc(p, 0). */
  p = launder(malloc(opaque(64)));
  void *q = launder(reallocarray(p, opaque(0), opaque(8)));
  CHECK(q == NULL);

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

  /* malloc_trim and mallinfo2 with live blocks of every scale. */
  static const size_t live_sizes[] = {24, 1000, 20 * KiB, 500 * KiB, 3 * MiB, 9 * MiB};
  void *live[6];
  for (int i = 0; i < 6; i++) {
    live[i] = launder(malloc(opaque(live_sizes[i])));
    CHECK(live[i] != NULL);
    if (live[i]) pat_fill(live[i], live_sizes[i], 77 + (uint64_t)i);
  }
  for (int round = 0; round < 3; round++) {
    /* garbage to give back */
    void *g[64];
    for (int i = 0; i < 64; i++) {
      g[i] = launder(malloc(opaque((size_t)(i + 1) * 16 * KiB)));
      if (g[i]) memset(g[i], 3, (size_t)(i + 1) * 16 * KiB);
    }
    for (int i = 0; i < 64; i++) free(g[i]);
    int r = malloc_trim(round == 0 ? 0 : round == 1 ? 4096 : 64 * MiB);
    CHECKF(r == 0 || r == 1, "malloc_trim returned %d", r);
#ifdef __GLIBC__
    struct mallinfo2 mi = mallinfo2();
    (void)mi;
#endif
  }
  for (int i = 0; i < 6; i++) {
    if (live[i]) CHECK_PAT(live[i], live_sizes[i], 77 + (uint64_t)i, "live across malloc_trim");
    free(live[i]);
  }
#ifdef __GLIBC__
  struct mallinfo2 mi = mallinfo2();
  printf("[mallinfo2 arena=%zu uordblks=%zu hblkhd=%zu fordblks=%zu] ", mi.arena, mi.uordblks,
         mi.hblkhd, mi.fordblks);
#endif
  CHECK(malloc_trim(0) >= 0);
}

/* mallinfo2 as glibc's own test of it reads it: the bytes in use grow by
 * what was allocated and fall back when it is freed, arena = uordblks +
 * fordblks, and a block past the mmap threshold shows in hblkhd. */
static void test_mallinfo2_counts(void) {
#ifndef __GLIBC__
  printf("(glibc's mallinfo2: not in this C library) ");
  return;
#else
  enum { N = 200 };
  static void *p[N];
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
#endif
}

/* ---- sizes ---------------------------------------------------------------- */

static void test_one_size(size_t n) {
  void *p = launder(malloc(opaque(n)));
  check_new_block(p, n, min_align(n), "malloc");
  free(p);

  p = launder(calloc(1, opaque(n)));
  CHECKF(p != NULL, "calloc(1, %zu) = NULL", n);
  if (p) {
    size_t z = nonzero_at(p, n);
    CHECKF(z == SIZE_MAX, "calloc(1, %zu): byte %zu not zero", n, z);
    if (n <= 256 * KiB) check_new_block(p, n, min_align(n), "calloc(1, n)");
    else {
      CHECKF(is_aligned(p, 16) && malloc_usable_size(p) >= n, "calloc(1, %zu) = %p", n, p);
      memset(p, 1, 4096);
      memset((char *)p + n - 4096, 1, 4096);
    }
    free(p);
  }
  if (n > MiB) return;
  size_t c = (n % 16 == 0 && n) ? 16 : 1;
  p = launder(calloc(opaque(n / c), opaque(c)));
  CHECKF(p != NULL, "calloc(%zu, %zu) = NULL", n / c, c);
  if (p) {
    size_t z = nonzero_at(p, n);
    CHECKF(z == SIZE_MAX, "calloc(%zu, %zu): byte %zu not zero", n / c, c, z);
    check_new_block(p, n, min_align(n), "calloc(n/c, c)");
    free(p);
  }
}

static void test_sizes(void) {
  for (size_t n = 0; n <= 2048; n++) test_one_size(n);
  /* Keep blocks of every small size live at once too. */
  static void *live[2049];
  for (size_t n = 0; n <= 2048; n++) {
    live[n] = launder(malloc(opaque(n)));
    CHECKF(live[n] != NULL, "malloc(%zu) = NULL", n);
    if (live[n]) pat_fill(live[n], n, n);
  }
  for (size_t n = 0; n <= 2048; n++)
    if (live[n]) {
      CHECK_PAT(live[n], n, n, "size %zu with all small sizes live", n);
      free(live[n]);
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

/* ---- alignment ------------------------------------------------------------ */

static const size_t align_sizes[] = {0, 1, 8, 24, 100, 1000, 5000, 20 * KiB, 70000, 600000, 3 * MiB + 5};
#define N_ALIGN_SIZES (sizeof align_sizes / sizeof align_sizes[0])

static void test_alignments(void) {
  for (int k = 0; k <= 30; k++) {
    size_t a = (size_t)1 << k;
    for (size_t si = 0; si < N_ALIGN_SIZES; si++) {
      size_t n = align_sizes[si];
      size_t want = a > 8 ? a : 8; /* and never less than 8 */
      void *b[3] = {NULL, NULL, NULL};
      size_t u[3] = {0, 0, 0};

      if (a >= sizeof(void *)) {
        void *out = (void *)0x1;
        int r = posix_memalign((void **)launder(&out), opaque(a), opaque(n));
        CHECKF(r == 0, "posix_memalign(%zu, %zu) = %d", a, n, r);
        if (r == 0) {
          b[0] = launder(out);
          u[0] = check_new_block(b[0], n, want, "posix_memalign");
        }
      }
      b[1] = launder(aligned_alloc(opaque(a), opaque(n)));
      u[1] = check_new_block(b[1], n, want, "aligned_alloc");
      b[2] = launder(memalign(opaque(a), opaque(n)));
      u[2] = check_new_block(b[2], n, want, "memalign");

      /* All three live at once: each still holds its contents. */
      for (int i = 0; i < 3; i++)
        if (b[i]) CHECK_PAT(b[i], u[i], n ^ (uintptr_t)b[i], "aligned %zu size %zu #%d", a, n, i);
      /* realloc of an over-aligned block keeps the contents. */
      if (b[1] && (k % 4 == 0)) {
        size_t m = n * 2 + 100;
        void *q = launder(realloc(b[1], opaque(m)));
        CHECKF(q != NULL, "realloc(aligned_alloc(%zu, %zu), %zu) = NULL", a, n, m);
        if (q) {
          CHECK_PAT(q, n, n ^ (uintptr_t)b[1], "realloc of aligned block");
          b[1] = q;
        }
      }
      for (int i = 2; i >= 0; i--) free(b[i]);
    }
  }

  /* A few over-aligned blocks live together at big alignments. */
  for (int k = 20; k <= 30; k += 5) {
    size_t a = (size_t)1 << k;
    void *b[4];
    for (int i = 0; i < 4; i++) {
      b[i] = launder(aligned_alloc(opaque(a), opaque(4096 * (size_t)(i + 1))));
      CHECKF(b[i] && is_aligned(b[i], a), "aligned_alloc(%zu) = %p", a, b[i]);
      if (b[i]) pat_fill(b[i], 4096 * (size_t)(i + 1), (uint64_t)i + 1000);
    }
    for (int i = 0; i < 4; i++)
      if (b[i]) {
        CHECK_PAT(b[i], 4096 * (size_t)(i + 1), (uint64_t)i + 1000, "aligned %zu #%d", a, i);
        free(b[i]);
      }
  }

  /* memalign rounds an alignment that is not a power of two up, as glibc. */
  static const size_t odd[] = {3, 5, 6, 7, 9, 12, 24, 48, 100, 1000, 4097, 65537, MiB + 1, 3 * MiB,
                               (size_t)(1 << 29) + 1};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    static const size_t ns[] = {1, 100, 5000, 300000};
    for (size_t j = 0; j < 4; j++) {
      void *p = launder(memalign(opaque(odd[i]), opaque(ns[j])));
      size_t want = next_pow2(odd[i]);
      if (want < min_align(ns[j])) want = min_align(ns[j]);
      check_new_block(p, ns[j], want, "memalign(odd)");
      free(p);
    }
  }
  /* memalign with alignment 0: glibc treats it as malloc; NULL with EINVAL
   * would also be a defensible reading of ebb.h. */
  {
    errno = 0;
    void *p = launder(memalign(opaque(0), opaque(100)));
    int e = errno;
    if (p) check_new_block(p, 100, 8, "memalign(0, n)");
    else CHECKF(e == EINVAL, "memalign(0, 100) = NULL with errno %d", e);
    free(p);
  }

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
}

/* ---- realloc -------------------------------------------------------------- */

/* realloc p (holding `*n` requested bytes of pattern `seed`) to `m`: contents
 * kept up to min(*n, m); then the whole new block is filled again. */
static void *realloc_check(void *p, size_t *n, size_t m, uint64_t seed, const char *ctx) {
  void *q = launder(realloc(launder(p), opaque(m)));
  if (m == 0) {
    CHECKF(q == NULL, "%s: realloc(p, 0) = %p", ctx, q);
    *n = 0;
    return NULL;
  }
  CHECKF(q != NULL, "%s: realloc(%p [%zu], %zu) = NULL", ctx, p, *n, m);
  if (!q) return p; /* p is intact on failure; keep using it */
  CHECKF(is_aligned(q, min_align(m)), "%s: realloc to %zu = %p misaligned", ctx, m, q);
  size_t u = malloc_usable_size(q);
  CHECKF(u >= m, "%s: realloc to %zu: usable %zu", ctx, m, u);
  size_t keep = *n < m ? *n : m;
  CHECK_PAT(q, keep, seed, "%s: realloc %zu -> %zu", ctx, *n, m);
  pat_fill(q, u > m ? u : m, seed);
  *n = m;
  return q;
}

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
    p = realloc_check(p, &n, 64 * MiB, 1, "chain up");
    p = realloc_check(p, &n, 64 * MiB - 1, 1, "chain down");
    for (size_t i = ns; i-- > 0;) p = realloc_check(p, &n, scales[i], 1, "chain down");
    free(p);
  }
  /* Every ordered pair of scales, both with and without a same-size
   * neighbour allocated right after the block. */
  for (size_t i = 0; i < ns; i++)
    for (size_t j = 0; j < ns; j++)
      for (int nb = 0; nb < 2; nb++) {
        size_t n = scales[i];
        uint64_t seed = i * 100 + j;
        void *p = launder(malloc(opaque(n)));
        CHECK(p != NULL);
        if (!p) continue;
        pat_fill(p, malloc_usable_size(p), seed);
        void *nbr = NULL;
        if (nb) {
          nbr = launder(malloc(opaque(n)));
          if (nbr) pat_fill(nbr, n, seed + 7777);
        }
        p = realloc_check(p, &n, scales[j], seed, "pair");
        if (nbr) {
          CHECK_PAT(nbr, scales[i], seed + 7777, "neighbour of realloc %zu -> %zu", scales[i], scales[j]);
          free(nbr);
        }
        /* and back */
        p = realloc_check(p, &n, scales[i], seed, "pair back");
        free(p);
      }

  /* Neighbours: several same-size blocks, the middle ones grown and shrunk. */
  static const size_t nsz[] = {24, 100, 1000, 20 * KiB, 500 * KiB, 3 * MiB};
  for (size_t s = 0; s < sizeof nsz / sizeof nsz[0]; s++) {
    size_t n = nsz[s];
    void *b[8];
    size_t bn[8];
    for (int i = 0; i < 8; i++) {
      b[i] = launder(malloc(opaque(n)));
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
        free(b[i]);
      }
  }

  /* Long growth chains of a huge block, with other huge blocks appearing
   * right after it, then shrinking back to one byte. */
  {
    uint64_t rng = 42;
    size_t n = 2 * MiB + 1;
    void *p = launder(malloc(opaque(n)));
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
          blk[nblk] = launder(malloc(opaque(3 * MiB)));
          if (blk[nblk]) pat_fill(blk[nblk], 3 * MiB, 900 + (uint64_t)nblk);
          nblk++;
        }
      }
      while (n > 1) {
        size_t m = n - n / 3 - (size_t)(test_rand(&rng) % 100);
        if (m < 1 || m > n) m = 1;
        p = realloc_check(p, &n, m, 9, "huge shrink");
      }
      free(p);
      for (int i = 0; i < nblk; i++)
        if (blk[i]) {
          CHECK_PAT(blk[i], 3 * MiB, 900 + (uint64_t)i, "blocker %d", i);
          free(blk[i]);
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
    free(p);
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
      free(p[s]);
    }
  }

  /* reallocarray without overflow behaves as realloc(p, count * size). */
  {
    size_t n = 10 * 8;
    void *p = launder(reallocarray(NULL, opaque(10), opaque(8)));
    CHECK(p != NULL);
    if (p) {
      pat_fill(p, n, 31);
      void *q = launder(reallocarray(p, opaque(100000), opaque(8)));
      CHECK(q != NULL);
      if (q) {
        CHECK_PAT(q, n, 31, "reallocarray grow");
        CHECK(malloc_usable_size(q) >= 800000);
        p = q;
        q = launder(reallocarray(p, opaque(5), opaque(8)));
        CHECK(q != NULL);
        if (q) {
          CHECK_PAT(q, 40, 31, "reallocarray shrink");
          p = q;
        }
      }
      free(p);
    }
  }
}

/* ---- calloc zeroing on reuse --------------------------------------------- */

static void calloc_check(void *p, size_t n, const char *ctx, size_t size) {
  CHECKF(p != NULL, "%s: calloc of %zu = NULL", ctx, size);
  if (!p) return;
  size_t z = nonzero_at(p, n);
  CHECKF(z == SIZE_MAX, "%s: calloc of %zu bytes: byte %zu is 0x%02x", ctx, size, z,
         z == SIZE_MAX ? 0 : ((unsigned char *)p)[z]);
  CHECKF(malloc_usable_size(p) >= n, "%s: calloc usable size", ctx);
}

static void *calloc_any(size_t n, int how) {
  switch (how % 3) {
    case 0: return launder(calloc(1, opaque(n)));
    case 1: return launder(calloc(opaque(n), 1));
    default:
      if (n % 8 == 0) return launder(calloc(opaque(n / 8), opaque(8)));
      return launder(calloc(opaque(n), opaque(1)));
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
        b[i] = launder(malloc(opaque(n)));
        CHECK(b[i] != NULL);
        if (b[i]) memset(b[i], 0xa5, malloc_usable_size(b[i]));
      }
      for (int i = k; i-- > 0;) free(b[i]);
      if (round == 2) CHECK(malloc_trim(0) >= 0);
      for (int i = 0; i < k; i++) {
        b[i] = calloc_any(n, round + i);
        calloc_check(b[i], n, "calloc after dirty free", n);
      }
      for (int i = 0; i < k; i++) {
        if (b[i]) memset(b[i], 0x5a, malloc_usable_size(b[i]));
        free(b[i]);
      }
    }
    /* The same size again, many times in a row, freed at once. */
    int again = n <= 4096 ? 60 : n <= MiB ? 20 : 6;
    for (int i = 0; i < again; i++) {
      void *p = launder(malloc(opaque(n)));
      if (p) memset(p, 0xee, n);
      free(p);
      p = calloc_any(n, i);
      calloc_check(p, n, "calloc right after free", n);
      free(p);
    }
  }

  /* Blocks shrunk by realloc leave dirty tails; calloc must not trust them. */
  static const size_t shr[][2] = {{1000, 100}, {20 * KiB, 1000}, {500 * KiB, 20 * KiB},
                                  {8 * MiB, 3 * MiB}, {8 * MiB, 500 * KiB}, {20 * MiB, 2 * MiB + 1}};
  for (size_t i = 0; i < sizeof shr / sizeof shr[0]; i++) {
    for (int round = 0; round < 4; round++) {
      void *p = launder(malloc(opaque(shr[i][0])));
      CHECK(p != NULL);
      if (!p) continue;
      memset(p, 0xc3, shr[i][0]);
      void *q = launder(realloc(p, opaque(shr[i][1])));
      CHECK(q != NULL);
      if (!q) q = p;
      void *c1 = calloc_any(shr[i][0] - shr[i][1], round); /* may take the released tail */
      calloc_check(c1, shr[i][0] - shr[i][1], "calloc after realloc shrink (tail)", shr[i][0]);
      free(q);
      if (round & 1) malloc_trim(0);
      void *c2 = calloc_any(shr[i][0], round + 1);
      calloc_check(c2, shr[i][0], "calloc after realloc shrink + free", shr[i][0]);
      free(c1);
      free(c2);
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
        free(slot[s]);
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
        slot[s] = launder(malloc(opaque(n)));
        if (slot[s]) memset(slot[s], 0xff, malloc_usable_size(slot[s]));
      } else {
        slot[s] = calloc_any(n, (int)(r >> 41));
        calloc_check(slot[s], n, "calloc in random mix", n);
        if (slot[s]) memset(slot[s], 0x77, malloc_usable_size(slot[s]));
      }
    }
    for (int s = 0; s < SLOTS; s++) free(slot[s]);
  }
}

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
    b->p = launder(aligned_alloc(opaque(a), opaque(n)));
    CHECKF(b->p && is_aligned(b->p, a), "aligned_alloc(%zu, %zu) = %p", a, n, b->p);
  } else if (r % 100 == 1) {
    b->p = launder(calloc(opaque(n), 1));
    CHECKF(b->p && nonzero_at(b->p, n) == SIZE_MAX, "calloc(%zu) not zero", n);
  } else {
    b->p = launder(malloc(opaque(n)));
    CHECKF(b->p && is_aligned(b->p, min_align(n)), "malloc(%zu) = %p", n, b->p);
  }
  b->n = n;
  b->u = b->p ? malloc_usable_size(b->p) : 0;
  CHECKF(b->u >= n, "usable %zu < %zu", b->u, n);
  if (b->p) pat_fill(b->p, b->u, seed);
}

static void check_no_overlap(struct blk *b, size_t count) {
  struct blk *s = (struct blk *)malloc(count * sizeof *s);
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
  free(s);
}

static void test_many_live(void) {
  enum { N = 100000 };
  struct blk *b = (struct blk *)calloc(N, sizeof *b);
  size_t *order = (size_t *)malloc(N * sizeof *order);
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
    free(x->p);
    x->p = NULL;
  }
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
  for (size_t k = 0; k < N; k++) free(b[order[k]].p);
  free(order);
  free(b);
}

/* ---- threads --------------------------------------------------------------- */

#define NTHREADS 6
#define MT_OPS 20000
#define INBOX_CAP 512

struct item {
  void *p;
  size_t n;
  uint64_t seed;
};
struct inbox {
  pthread_mutex_t mu;
  int count;
  struct item items[INBOX_CAP];
};
static struct inbox inboxes[NTHREADS];
static pthread_barrier_t mt_barrier;
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

/* CHECK from threads: test_failures is a plain int. */
#define MT_CHECK_PAT(p, n, seed, what)                                                 \
  do {                                                                                 \
    size_t bad_at_ = pat_bad((p), (n), (seed));                                        \
    if (bad_at_ != SIZE_MAX) {                                                         \
      pthread_mutex_lock(&fail_mu);                                                    \
      CHECKF(bad_at_ == SIZE_MAX, "%s: %p (%zu bytes) differs at %zu", what, (void *)(p), \
             (size_t)(n), bad_at_);                                                    \
      pthread_mutex_unlock(&fail_mu);                                                  \
    }                                                                                  \
  } while (0)
#define MT_CHECK(cond, ...)                \
  do {                                     \
    if (!(cond)) {                         \
      pthread_mutex_lock(&fail_mu);        \
      CHECKF(cond, __VA_ARGS__);           \
      pthread_mutex_unlock(&fail_mu);      \
    }                                      \
  } while (0)

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
  size_t n = mt_size(rng);
  uint64_t r = test_rand(rng);
  void *p;
  if (r % 16 == 0) p = launder(calloc(1, opaque(n)));
  else if (r % 16 == 1) p = launder(aligned_alloc(opaque((size_t)64 << (r >> 8) % 8), opaque(n)));
  else p = launder(malloc(opaque(n)));
  MT_CHECK(p != NULL, "thread alloc of %zu failed", n);
  if (p && r % 16 == 0) MT_CHECK(nonzero_at(p, n) == SIZE_MAX, "thread calloc(%zu) not zero", n);
  if (p) {
    MT_CHECK(malloc_usable_size(p) >= n, "usable size");
    pat_fill(p, n, seed);
  }
  it->p = p;
  it->n = n;
  it->seed = seed;
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
    switch ((r >> 8) % 8) {
      case 0: case 1: case 2: case 3:
        if (x->p) {
          MT_CHECK_PAT(x->p, x->n, x->seed, "own block before free");
          free(x->p);
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
        if ((r >> 16) % 3 == 0) {
          free(it.p);
        } else {
          /* realloc a block another thread allocated, keep it */
          size_t m = mt_size(&rng);
          void *q = launder(realloc(it.p, opaque(m)));
          MT_CHECK(q != NULL, "realloc of foreign block to %zu", m);
          if (!q) { free(it.p); break; }
          MT_CHECK_PAT(q, it.n < m ? it.n : m, it.seed, "foreign block after realloc");
          pat_fill(q, m, it.seed);
          it.p = q;
          it.n = m;
          if (x->p) {
            MT_CHECK_PAT(x->p, x->n, x->seed, "own block before free");
            free(x->p);
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
    free(it.p);
  }
  for (int s = 0; s < LOCAL; s++)
    if (local[s].p) {
      MT_CHECK_PAT(local[s].p, local[s].n, local[s].seed, "own block at end");
      free(local[s].p);
    }
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
      free(x->p);
    }
    /* and allocate some of our own in the meantime */
    struct item y;
    mt_new(&y, &rng, 1);
    free(y.p);
  }
  return NULL;
}
static void *short_lived(void *arg) {
  void **out = (void **)arg;
  void *tmp = launder(malloc(opaque(1000)));
  *out = launder(malloc(opaque(200)));
  if (*out) pat_fill(*out, 200, (uintptr_t)out);
  free(tmp);
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
  for (int id = 0; id < 4; id++)
    for (int i = 1; i < ORPHANS; i += 2) {
      struct item *x = &orphans[id][i];
      if (x->p) {
        CHECK_PAT(x->p, x->n, x->seed, "orphan freed by main");
        free(x->p);
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
    free(left[i]);
  }
}

/* ---- bad input ------------------------------------------------------------- */

static void expect_null(void *r, int err, int want_err, const char *call, size_t a, size_t b) {
  CHECKF(r == NULL, "%s(%zu, %zu) = %p, want NULL", call, a, b, r);
  CHECKF(err == want_err, "%s(%zu, %zu): errno %d, want %d", call, a, b, err, want_err);
  if (r) free(r);
}

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
    kp[i] = launder(malloc(opaque(keep[i])));
    CHECK(kp[i] != NULL);
    if (kp[i]) pat_fill(kp[i], keep[i], 300 + (uint64_t)i);
  }

  for (size_t i = 0; i < N_IMPOSSIBLE; i++) {
    size_t n = impossible[i];
    void *r;
    int e;
#define TRY(call, a, b, want)      \
  do {                             \
    errno = 0;                     \
    r = launder(call);             \
    e = errno;                     \
    expect_null(r, e, want, #call, a, b); \
  } while (0)
    TRY(malloc(opaque(n)), n, 0, ENOMEM);
    TRY(calloc(1, opaque(n)), 1, n, ENOMEM);
    TRY(calloc(opaque(n), 1), n, 1, ENOMEM);
    TRY(realloc(NULL, opaque(n)), 0, n, ENOMEM);
    TRY(reallocarray(NULL, opaque(n), 1), n, 1, ENOMEM);
    TRY(aligned_alloc(16, opaque(n)), 16, n, ENOMEM);
    TRY(aligned_alloc(4096, opaque(n)), 4096, n, ENOMEM);
    TRY(aligned_alloc(opaque(GiB), opaque(n)), GiB, n, ENOMEM);
    TRY(memalign(64, opaque(n)), 64, n, ENOMEM);
    TRY(memalign(opaque(2 * MiB), opaque(n)), 2 * MiB, n, ENOMEM);
    TRY(valloc(opaque(n)), 0, n, ENOMEM);
    TRY(pvalloc(opaque(n)), 0, n, ENOMEM);
    for (int j = 0; j < 4; j++) {
      if (!kp[j]) continue;
      TRY(realloc(launder(kp[j]), opaque(n)), keep[j], n, ENOMEM);
      TRY(reallocarray(launder(kp[j]), opaque(n), 1), keep[j], n, ENOMEM);
      CHECK_PAT(kp[j], keep[j], 300 + (uint64_t)j, "block after failed realloc to %zu", n);
    }
    static const size_t pm_align[] = {8, 64, 4096, 1 << 30};
    for (int j = 0; j < 4; j++) {
      void *out = (void *)&out;
      int rc = posix_memalign((void **)launder(&out), opaque(pm_align[j]), opaque(n));
      CHECKF(rc == ENOMEM, "posix_memalign(%zu, %zu) = %d, want ENOMEM", pm_align[j], n, rc);
      CHECKF(out == (void *)&out, "posix_memalign(%zu, %zu) changed *out to %p", pm_align[j], n, out);
      if (rc == 0) free(out);
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
    void *r;
    int e;
    TRY(calloc(opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
    TRY(reallocarray(NULL, opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
    for (int j = 0; j < 4; j++) {
      if (!kp[j]) continue;
      TRY(reallocarray(launder(kp[j]), opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
      CHECK_PAT(kp[j], keep[j], 300 + (uint64_t)j, "block after failed reallocarray");
    }
  }
  /* A zero factor is no overflow: a unique freeable pointer. */
  {
    void *a = launder(calloc(opaque(0), opaque(SIZE_MAX)));
    void *b = launder(calloc(opaque(SIZE_MAX), opaque(0)));
    CHECK(a != NULL && b != NULL && a != b);
    free(a);
    free(b);
  }

  /* The blocks that saw failed reallocs still work normally. */
  for (int j = 0; j < 4; j++) {
    if (!kp[j]) continue;
    size_t n = keep[j];
    kp[j] = realloc_check(kp[j], &n, keep[j] * 3, 300 + (uint64_t)j, "after failures");
    kp[j] = realloc_check(kp[j], &n, keep[j] / 2 + 1, 300 + (uint64_t)j, "after failures");
    free(kp[j]);
  }
#undef TRY
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
      int rc = posix_memalign((void **)launder(&out), opaque(bad_pm[i]), opaque(sizes[j]));
      CHECKF(rc == EINVAL, "posix_memalign(%zu, %zu) = %d, want EINVAL", bad_pm[i], sizes[j], rc);
      CHECKF(out == (void *)&out, "posix_memalign(%zu, %zu) changed *out", bad_pm[i], sizes[j]);
      if (rc == 0) free(out);
    }
  /* A power of two too large to honour: EINVAL or ENOMEM, *out untouched. */
  static const size_t huge_pow2[] = {SIZE_MAX / 2 + 1, (size_t)1 << 62, (size_t)1 << 48};
  for (size_t i = 0; i < 3; i++) {
    void *out = (void *)&out;
    int rc = posix_memalign((void **)launder(&out), opaque(huge_pow2[i]), opaque(1));
    CHECKF(rc == EINVAL || rc == ENOMEM, "posix_memalign(%zu, 1) = %d", huge_pow2[i], rc);
    CHECKF(out == (void *)&out, "posix_memalign(%zu, 1) changed *out", huge_pow2[i]);
    if (rc == 0) free(out);
    errno = 0;
    void *p = launder(aligned_alloc(opaque(huge_pow2[i]), opaque(1)));
    int e = errno;
    CHECKF(p == NULL && (e == EINVAL || e == ENOMEM), "aligned_alloc(%zu, 1) = %p, errno %d",
           huge_pow2[i], p, e);
    errno = 0;
    p = launder(memalign(opaque(huge_pow2[i]), opaque(1)));
    e = errno;
    CHECKF(p == NULL && (e == EINVAL || e == ENOMEM), "memalign(%zu, 1) = %p, errno %d",
           huge_pow2[i], p, e);
  }

  /* aligned_alloc: not a power of two */
  static const size_t bad_aa[] = {0, 3, 5, 6, 7, 12, 24, 48, 100, 4095, 4097, 3 * 4096,
                                  SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX - 7};
#ifdef EBB_TEST_AGAINST_LIBC
  /* glibc 2.36's aligned_alloc accepts any alignment (2.38 does not). */
  if (0)
#endif
  for (size_t i = 0; i < sizeof bad_aa / sizeof bad_aa[0]; i++)
    for (size_t j = 0; j < 4; j++) {
      errno = 0;
      void *p = launder(aligned_alloc(opaque(bad_aa[i]), opaque(sizes[j])));
      int e = errno;
      CHECKF(p == NULL, "aligned_alloc(%zu, %zu) = %p, want NULL", bad_aa[i], sizes[j], p);
      CHECKF(e == EINVAL, "aligned_alloc(%zu, %zu): errno %d, want EINVAL", bad_aa[i], sizes[j], e);
      if (p) free(p);
    }

  /* memalign: no power of two that large exists */
  static const size_t bad_ma[] = {SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX - 4095};
  for (size_t i = 0; i < 3; i++) {
    errno = 0;
    void *p = launder(memalign(opaque(bad_ma[i]), opaque(100)));
    int e = errno;
    CHECKF(p == NULL && e == EINVAL, "memalign(%zu, 100) = %p, errno %d, want NULL/EINVAL",
           bad_ma[i], p, e);
  }
  /* aligned_alloc with small powers of two is fine */
  for (size_t a = 1; a <= 8; a *= 2) {
    void *p = launder(aligned_alloc(opaque(a), opaque(10)));
    check_new_block(p, 10, 8, "aligned_alloc(small pow2)");
    free(p);
  }
}

/* After all that, the allocator still works. */
static void test_still_works(void) {
  uint64_t rng = 1;
  struct blk b[2000];
  for (int i = 0; i < 2000; i++) alloc_live(&b[i], &rng, (uint64_t)i);
  check_no_overlap(b, 2000);
  for (int i = 0; i < 2000; i++) {
    if (b[i].p) CHECK_PAT(b[i].p, b[i].u, (uint64_t)i, "after bad input, block %d", i);
    free(b[i].p);
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  section("family is ebb's");      test_family_is_ebb();  section(NULL);
  section("basics");               test_basics();         section(NULL);
  section("mallinfo2 counts");     test_mallinfo2_counts(); section(NULL);
  section("sizes 0..64 MiB");      test_sizes();          section(NULL);
  section("alignments 1 B..1 GiB"); test_alignments();    section(NULL);
  section("realloc");              test_realloc();        section(NULL);
  section("calloc zero on reuse"); test_calloc_reuse();   section(NULL);
  section("100k live blocks");     test_many_live();      section(NULL);
  section("threads");              test_threads();        section(NULL);
  section("bad sizes");            test_bad_sizes();      section(NULL);
  section("bad alignments");       test_bad_alignments(); section(NULL);
  section("still works");          test_still_works();    section(NULL);
  TEST_DONE();
}
