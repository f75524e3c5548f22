/* api_conformance: the ebb_* API against include/ebb.h.  Uses no other
 * allocator entry point, so it runs both against libebb.a and against the
 * sanitizer build (where the standard malloc is ASan's and ebb_* is ebb's).
 *
 *  - ebb_version matches EBB_VERSION_STRING;
 *  - ebb_malloc / ebb_calloc / ebb_realloc for sizes 0..2048 one by one and a
 *    geometric sweep (+-1) to 32 MiB: aligned, usable >= request, writable,
 *    and usable == ebb_good_size(request);
 *  - ebb_good_size: >= n, monotone, idempotent, ebb_malloc(good_size(n)) has
 *    usable size exactly good_size(n), 0 for impossible sizes;
 *  - ebb_aligned_alloc / ebb_posix_memalign / ebb_memalign for every power of
 *    two from 1 B to 1 GiB; ebb_memalign rounding odd alignments up;
 *    ebb_realloc_aligned keeping (and raising) alignment and contents;
 *  - realloc contents across every scale, next to neighbours, huge growth;
 *    ebb_free_sized with the requested and the usable size;
 *  - ebb_calloc zero when reusing dirty memory, around ebb_collect(true);
 *  - many live blocks, no overlap, freed in random order;
 *  - threads: random sizes, blocks freed / realloc'd / free_sized by another
 *    thread than the one that allocated them, ebb_collect from threads,
 *    blocks outliving their thread;
 *  - bad input: impossible sizes (ENOMEM, block untouched), calloc and
 *    reallocarray overflow, invalid alignments (EINVAL, *out untouched);
 *    bad pointers to ebb_free / ebb_free_sized / ebb_realloc /
 *    ebb_usable_size abort with one line on stderr (checked in a child). */
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

#include "ebb.h"
#include "testutil.h"

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

static inline bool is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }
static inline size_t min_align(size_t n) { return n <= 8 ? 8 : 16; }
static size_t next_pow2(size_t a) {
  size_t r = 1;
  while (r < a) r <<= 1;
  return r;
}

/* Positional patterns: byte i depends only on (seed, i). */
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
static size_t pat_bad(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  size_t w = n / 8;
  for (size_t i = 0; i < w; i++) {
    uint64_t v = pat_word(seed, i), g;
    memcpy(&g, b + 8 * i, 8);
    if (g != v)
      for (size_t k = 0; k < 8; k++)
        if (((const unsigned char *)&v)[k] != b[8 * i + k]) return 8 * i + k;
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

/* Not NULL, aligned, usable >= n; the usable block (at most n + 4 MiB of it,
 * plus its last page) written and read back.  Returns the bytes holding the
 * pattern of seed n ^ p. */
static size_t check_new_block(void *p, size_t n, size_t align, const char *what) {
  CHECKF(p != NULL, "%s(%zu) returned NULL", what, n);
  if (!p) return 0;
  CHECKF(is_aligned(p, align), "%s(%zu) = %p, not aligned to %zu", what, n, p, align);
  size_t u = ebb_usable_size(p);
  CHECKF(u >= n, "%s(%zu): usable size %zu < request", what, n, u);
  if (u < n) u = n;
  size_t head = u - n > 4 * MiB ? n + 4 * MiB : u;
  uint64_t seed = n ^ (uintptr_t)p;
  pat_fill(p, head, seed);
  if (head < u) memset((char *)p + u - 4096, 0xab, 4096);
  CHECK_PAT(p, head, seed, "%s(%zu)", what, n);
  if (head < u) CHECKF(((unsigned char *)p)[u - 1] == 0xab, "%s(%zu): end of usable block", what, n);
  return head;
}

/* ---- basics ---------------------------------------------------------------- */

static void test_basics(void) {
  CHECKF(strcmp(ebb_version(), EBB_VERSION_STRING) == 0, "ebb_version() = \"%s\", header says \"%s\"",
         ebb_version(), EBB_VERSION_STRING);
  ebb_free(NULL);
  ebb_free_sized(NULL, 0);
  CHECK(ebb_usable_size(NULL) == 0);

  enum { NZ = 2000 };
  static void *z[NZ];
  for (int i = 0; i < NZ; i++) {
    z[i] = launder(ebb_malloc(opaque(0)));
    CHECK(z[i] != NULL);
    CHECK(is_aligned(z[i], 8));
  }
  static void *zs[NZ];
  memcpy(zs, z, sizeof z);
  for (int i = 1; i < NZ; i++)
    for (int j = i; j > 0 && (uintptr_t)zs[j - 1] > (uintptr_t)zs[j]; j--) {
      void *t = zs[j];
      zs[j] = zs[j - 1];
      zs[j - 1] = t;
    }
  for (int i = 1; i < NZ; i++) CHECKF(zs[i] != zs[i - 1], "ebb_malloc(0) returned %p twice", zs[i]);
  for (int i = 0; i < NZ; i++) ebb_free(z[i]);

  void *p = launder(ebb_realloc(NULL, opaque(0)));
  CHECK(p != NULL);
  ebb_free(p);
  for (size_t n = 1; n < 5 * MiB; n = n * 3 + 1) {
    p = launder(ebb_realloc(NULL, opaque(n)));
    check_new_block(p, n, min_align(n), "ebb_realloc(NULL, n)");
    ebb_free(p);
  }

  /* ebb_realloc(p, 0) frees and returns NULL; not a leak. */
  size_t rss0 = test_rss();
  for (int i = 0; i < 600; i++) {
    p = launder(ebb_malloc(opaque(MiB)));
    CHECK(p != NULL);
    if (!p) break;
    memset(p, 0x5a, MiB);
    void *q = launder(ebb_realloc(p, opaque(0)));
    CHECKF(q == NULL, "ebb_realloc(p, 0) = %p, want NULL", q);
  }
  size_t rss1 = test_rss();
  CHECKF(rss1 < rss0 + 256 * MiB, "ebb_realloc(p, 0) leaks: RSS %zu -> %zu", rss0, rss1);
  p = launder(ebb_malloc(opaque(64)));
  void *q = launder(ebb_reallocarray(p, opaque(0), opaque(8)));
  CHECK(q == NULL);

  /* ebb_free_sized with the requested size, the usable size, in between. */
  static const size_t fs[] = {0, 1, 24, 100, 1000, 20 * KiB, 500 * KiB, 3 * MiB};
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
    for (int how = 0; how < 3; how++) {
      p = launder(ebb_malloc(opaque(fs[i])));
      CHECK(p != NULL);
      if (!p) continue;
      size_t u = ebb_usable_size(p);
      ebb_free_sized(p, how == 0 ? fs[i] : how == 1 ? u : (fs[i] + u) / 2);
    }
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
    p = launder(ebb_aligned_alloc(opaque(4096), opaque(fs[i])));
    CHECK(p != NULL);
    if (p) ebb_free_sized(p, fs[i]);
    p = launder(ebb_calloc(opaque(fs[i]), 1));
    CHECK(p != NULL);
    if (p) ebb_free_sized(p, ebb_usable_size(p));
  }

  /* ebb_collect with live blocks of every scale. */
  static const size_t live_sizes[] = {24, 1000, 20 * KiB, 500 * KiB, 3 * MiB, 9 * MiB};
  void *live[6];
  for (int i = 0; i < 6; i++) {
    live[i] = launder(ebb_malloc(opaque(live_sizes[i])));
    CHECK(live[i] != NULL);
    if (live[i]) pat_fill(live[i], live_sizes[i], 77 + (uint64_t)i);
  }
  for (int round = 0; round < 4; round++) {
    void *g[64];
    for (int i = 0; i < 64; i++) {
      g[i] = launder(ebb_malloc(opaque((size_t)(i + 1) * 16 * KiB)));
      if (g[i]) memset(g[i], 3, (size_t)(i + 1) * 16 * KiB);
    }
    for (int i = 0; i < 64; i++) ebb_free(g[i]);
    ebb_collect(round & 1);
  }
  for (int i = 0; i < 6; i++) {
    if (live[i]) CHECK_PAT(live[i], live_sizes[i], 77 + (uint64_t)i, "live across ebb_collect");
    ebb_free(live[i]);
  }
  ebb_collect(true);
  ebb_collect(false);
}

/* ---- sizes and good_size --------------------------------------------------- */

static void test_one_size(size_t n, bool full) {
  void *p = launder(ebb_malloc(opaque(n)));
  size_t g = ebb_good_size(n);
  if (full) check_new_block(p, n, min_align(n), "ebb_malloc");
  else {
    CHECKF(p && is_aligned(p, min_align(n)) && ebb_usable_size(p) >= n, "ebb_malloc(%zu) = %p", n, p);
    if (p && n) {
      memset(p, 1, n < 4096 ? n : 4096);
      memset((char *)p + n - (n < 4096 ? n : 4096), 1, n < 4096 ? n : 4096);
    }
  }
  if (p) CHECKF(ebb_usable_size(p) == g, "ebb_malloc(%zu): usable %zu != ebb_good_size %zu", n,
                ebb_usable_size(p), g);
  ebb_free(p);

  p = launder(ebb_calloc(1, opaque(n)));
  CHECKF(p != NULL, "ebb_calloc(1, %zu) = NULL", n);
  if (p) {
    size_t z = nonzero_at(p, n);
    CHECKF(z == SIZE_MAX, "ebb_calloc(1, %zu): byte %zu not zero", n, z);
    if (full && n <= 256 * KiB) check_new_block(p, n, min_align(n), "ebb_calloc(1, n)");
    else CHECKF(is_aligned(p, min_align(n)) && ebb_usable_size(p) >= n, "ebb_calloc(1, %zu) = %p", n, p);
    ebb_free(p);
  }
  if (n > MiB) return;
  size_t c = (n % 16 == 0 && n) ? 16 : 1;
  p = launder(ebb_calloc(opaque(n / c), opaque(c)));
  CHECKF(p != NULL, "ebb_calloc(%zu, %zu) = NULL", n / c, c);
  if (p) {
    size_t z = nonzero_at(p, n);
    CHECKF(z == SIZE_MAX, "ebb_calloc(%zu, %zu): byte %zu not zero", n / c, c, z);
    if (full) check_new_block(p, n, min_align(n), "ebb_calloc(n/c, c)");
    ebb_free_sized(p, n);
  }
}

static void test_sizes(void) {
  for (size_t n = 0; n <= 2048; n++) test_one_size(n, true);
  static void *live[2049];
  for (size_t n = 0; n <= 2048; n++) {
    live[n] = launder(ebb_malloc(opaque(n)));
    CHECKF(live[n] != NULL, "ebb_malloc(%zu) = NULL", n);
    if (live[n]) pat_fill(live[n], n, n);
  }
  for (size_t n = 0; n <= 2048; n++)
    if (live[n]) {
      CHECK_PAT(live[n], n, n, "size %zu with all small sizes live", n);
      ebb_free(live[n]);
    }
  for (size_t s = 2048; s <= 32 * MiB; s += (s < MiB ? s / 8 : s / 3) + 8) {
    bool full = s <= 4 * MiB;
    test_one_size(s - 1, full);
    test_one_size(s, full);
    test_one_size(s + 1, full);
  }
  for (size_t s = 4096; s <= 32 * MiB; s *= 2) {
    test_one_size(s - 1, s <= 8 * MiB);
    test_one_size(s, s <= 8 * MiB);
    test_one_size(s + 1, s <= 8 * MiB);
  }
}

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

/* ---- alignment --------------------------------------------------------------- */

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

static void test_alignments(void) {
  /* A zero-size block aligned to 4 MiB or more still lies inside its own
   * mapping (it once pointed one byte past it, into whatever came next). */
  for (int k = 22; k <= 26; k++) {
    void *z = launder(ebb_aligned_alloc(opaque((size_t)1 << k), opaque(0)));
    CHECKF(z != NULL && ebb_usable_size(z) > 0, "ebb_aligned_alloc(2^%d, 0) = %p, usable %zu", k, z,
           z ? ebb_usable_size(z) : 0);
    if (z) memset(z, 0xA5, ebb_usable_size(z));
    ebb_free(z);
  }
  static const size_t sizes[] = {0, 1, 24, 1000, 20 * KiB, 600000, 3 * MiB + 5};
  for (int k = 0; k <= 30; k++) {
    size_t a = (size_t)1 << k, want = a > 8 ? a : 8;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
      size_t n = sizes[si];
      void *b[3] = {NULL, NULL, NULL};
      size_t u[3] = {0, 0, 0};
      if (a >= sizeof(void *)) {
        void *out = (void *)0x1;
        int r = ebb_posix_memalign((void **)launder(&out), opaque(a), opaque(n));
        CHECKF(r == 0, "ebb_posix_memalign(%zu, %zu) = %d", a, n, r);
        if (r == 0) {
          b[0] = launder(out);
          u[0] = check_new_block(b[0], n, want, "ebb_posix_memalign");
        }
      }
      b[1] = launder(ebb_aligned_alloc(opaque(a), opaque(n)));
      u[1] = check_new_block(b[1], n, want, "ebb_aligned_alloc");
      b[2] = launder(ebb_memalign(opaque(a), opaque(n)));
      u[2] = check_new_block(b[2], n, want, "ebb_memalign");
      for (int i = 0; i < 3; i++)
        if (b[i]) CHECK_PAT(b[i], u[i], n ^ (uintptr_t)b[i], "aligned %zu size %zu #%d", a, n, i);
      /* ebb_realloc_aligned keeps the alignment, growing and shrinking. */
      if (b[1] && (si == 1 || si == 3 || si == 5)) {
        size_t cur = n;
        pat_fill(b[1], n, 4000 + (uint64_t)k);
        b[1] = realloc_aligned_check(b[1], &cur, a, n * 3 + 100, 4000 + (uint64_t)k, "grow");
        b[1] = realloc_aligned_check(b[1], &cur, a, 3 * MiB, 4000 + (uint64_t)k, "grow huge");
        b[1] = realloc_aligned_check(b[1], &cur, a, n / 2 + 1, 4000 + (uint64_t)k, "shrink");
      }
      for (int i = 2; i >= 0; i--) {
        if (i == 1) ebb_free(b[i]);
        else if (b[i]) ebb_free_sized(b[i], n);
      }
    }
  }
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
  /* ebb_memalign rounds an alignment that is not a power of two up. */
  static const size_t odd[] = {3, 5, 6, 7, 9, 12, 24, 48, 100, 1000, 4097, 65537, MiB + 1,
                               (size_t)(1 << 29) + 1};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    static const size_t ns[] = {1, 100, 5000, 300000};
    for (size_t j = 0; j < 4; j++) {
      void *p = launder(ebb_memalign(opaque(odd[i]), opaque(ns[j])));
      size_t want = next_pow2(odd[i]);
      if (want < min_align(ns[j])) want = min_align(ns[j]);
      check_new_block(p, ns[j], want, "ebb_memalign(odd)");
      ebb_free(p);
    }
  }
  /* A few over-aligned blocks live together. */
  for (int k = 20; k <= 30; k += 5) {
    size_t a = (size_t)1 << k;
    void *b[4];
    for (int i = 0; i < 4; i++) {
      b[i] = launder(ebb_aligned_alloc(opaque(a), opaque(4096 * (size_t)(i + 1))));
      CHECKF(b[i] && is_aligned(b[i], a), "ebb_aligned_alloc(%zu) = %p", a, b[i]);
      if (b[i]) pat_fill(b[i], 4096 * (size_t)(i + 1), (uint64_t)i + 1000);
    }
    for (int i = 0; i < 4; i++)
      if (b[i]) {
        CHECK_PAT(b[i], 4096 * (size_t)(i + 1), (uint64_t)i + 1000, "aligned %zu #%d", a, i);
        ebb_free(b[i]);
      }
  }
}

/* ---- realloc ------------------------------------------------------------------ */

static void *realloc_check(void *p, size_t *n, size_t m, uint64_t seed, const char *ctx) {
  void *q = launder(ebb_realloc(launder(p), opaque(m)));
  if (m == 0) {
    CHECKF(q == NULL, "%s: ebb_realloc(p, 0) = %p", ctx, q);
    *n = 0;
    return NULL;
  }
  CHECKF(q != NULL, "%s: ebb_realloc(%p [%zu], %zu) = NULL", ctx, p, *n, m);
  if (!q) return p;
  CHECKF(is_aligned(q, min_align(m)), "%s: ebb_realloc to %zu = %p misaligned", ctx, m, q);
  size_t u = ebb_usable_size(q);
  CHECKF(u >= m, "%s: ebb_realloc to %zu: usable %zu", ctx, m, u);
  size_t keep = *n < m ? *n : m;
  CHECK_PAT(q, keep, seed, "%s: realloc %zu -> %zu", ctx, *n, m);
  pat_fill(q, u > m ? u : m, seed);
  *n = m;
  return q;
}

static void test_realloc(void) {
  static const size_t scales[] = {1, 8, 24, 100, 1000, 4000, 20 * KiB, 100 * KiB, 500 * KiB, MiB,
                                  2 * MiB - 1, 2 * MiB + 1, 3 * MiB, 8 * MiB};
  const size_t ns = sizeof scales / sizeof scales[0];
  {
    size_t n = 0;
    void *p = NULL;
    for (size_t i = 0; i < ns; i++) p = realloc_check(p, &n, scales[i], 1, "chain up");
    p = realloc_check(p, &n, 32 * MiB, 1, "chain up");
    for (size_t i = ns; i-- > 0;) p = realloc_check(p, &n, scales[i], 1, "chain down");
    ebb_free(p);
  }
  for (size_t i = 0; i < ns; i++)
    for (size_t j = 0; j < ns; j++)
      for (int nb = 0; nb < 2; nb++) {
        size_t n = scales[i];
        uint64_t seed = i * 100 + j;
        void *p = launder(ebb_malloc(opaque(n)));
        CHECK(p != NULL);
        if (!p) continue;
        pat_fill(p, ebb_usable_size(p), seed);
        void *nbr = NULL;
        if (nb) {
          nbr = launder(ebb_malloc(opaque(n)));
          if (nbr) pat_fill(nbr, n, seed + 7777);
        }
        p = realloc_check(p, &n, scales[j], seed, "pair");
        if (nbr) {
          CHECK_PAT(nbr, scales[i], seed + 7777, "neighbour of realloc %zu -> %zu", scales[i], scales[j]);
          ebb_free_sized(nbr, scales[i]);
        }
        p = realloc_check(p, &n, scales[i], seed, "pair back");
        ebb_free_sized(p, n);
      }
  static const size_t nsz[] = {24, 100, 1000, 20 * KiB, 500 * KiB, 3 * MiB};
  for (size_t s = 0; s < sizeof nsz / sizeof nsz[0]; s++) {
    size_t n = nsz[s];
    void *b[8];
    size_t bn[8];
    for (int i = 0; i < 8; i++) {
      b[i] = launder(ebb_malloc(opaque(n)));
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
        ebb_free(b[i]);
      }
  }
  /* Huge growth with blockers, then shrink. */
  {
    uint64_t rng = 42;
    size_t n = 2 * MiB + 1;
    void *p = launder(ebb_malloc(opaque(n)));
    CHECK(p != NULL);
    if (p) {
      pat_fill(p, n, 9);
      void *blk[16];
      int nblk = 0;
      while (n < 32 * MiB) {
        size_t m = n + n / 4 + (size_t)(test_rand(&rng) % (64 * KiB));
        if (m > 32 * MiB) m = 32 * MiB;
        p = realloc_check(p, &n, m, 9, "huge growth");
        if (nblk < 16 && (test_rand(&rng) & 1)) {
          blk[nblk] = launder(ebb_malloc(opaque(3 * MiB)));
          if (blk[nblk]) pat_fill(blk[nblk], 3 * MiB, 900 + (uint64_t)nblk);
          nblk++;
        }
      }
      while (n > 1) {
        size_t m = n - n / 3 - (size_t)(test_rand(&rng) % 100);
        if (m < 1 || m > n) m = 1;
        p = realloc_check(p, &n, m, 9, "huge shrink");
      }
      ebb_free(p);
      for (int i = 0; i < nblk; i++)
        if (blk[i]) {
          CHECK_PAT(blk[i], 3 * MiB, 900 + (uint64_t)i, "blocker %d", i);
          ebb_free(blk[i]);
        }
    }
  }
  {
    size_t n = 0;
    void *p = NULL;
    uint64_t rng = 7;
    while (n < 3 * MiB) {
      size_t m = n + 1 + (size_t)(test_rand(&rng) % (n / 8 + 64));
      p = realloc_check(p, &n, m, 11, "small steps");
      if (!p) break;
    }
    ebb_free(p);
  }
  {
    uint64_t rng = 12345;
    void *p[4] = {NULL, NULL, NULL, NULL};
    size_t n[4] = {0, 0, 0, 0};
    for (int step = 0; step < 1500; step++) {
      int s = (int)(test_rand(&rng) % 4);
      uint64_t r = test_rand(&rng);
      size_t m;
      if (r % 64 == 0) m = 0;
      else {
        int bits = (int)((r >> 8) % 22);
        m = ((size_t)1 << bits) + (size_t)((r >> 16) % ((size_t)1 << bits));
      }
      if (!p[s] && m == 0) continue;
      p[s] = realloc_check(p[s], &n[s], m, 20 + (uint64_t)s, "random walk");
    }
    for (int s = 0; s < 4; s++) {
      if (p[s]) CHECK_PAT(p[s], n[s], 20 + (uint64_t)s, "random walk end");
      ebb_free(p[s]);
    }
  }
  {
    void *p = launder(ebb_reallocarray(NULL, opaque(10), opaque(8)));
    CHECK(p != NULL);
    if (p) {
      pat_fill(p, 80, 31);
      void *q = launder(ebb_reallocarray(p, opaque(100000), opaque(8)));
      CHECK(q != NULL);
      if (q) {
        CHECK_PAT(q, 80, 31, "ebb_reallocarray grow");
        CHECK(ebb_usable_size(q) >= 800000);
        p = q;
      }
      ebb_free(p);
    }
  }
}

/* ---- calloc on reuse ---------------------------------------------------------- */

static void calloc_check(void *p, size_t n, const char *ctx) {
  CHECKF(p != NULL, "%s: ebb_calloc of %zu = NULL", ctx, n);
  if (!p) return;
  size_t z = nonzero_at(p, n);
  CHECKF(z == SIZE_MAX, "%s: ebb_calloc of %zu bytes: byte %zu is 0x%02x", ctx, n, z,
         z == SIZE_MAX ? 0 : ((unsigned char *)p)[z]);
}
static void *calloc_any(size_t n, int how) {
  switch (how % 3) {
    case 0: return launder(ebb_calloc(1, opaque(n)));
    case 1: return launder(ebb_calloc(opaque(n), 1));
    default:
      if (n % 8 == 0) return launder(ebb_calloc(opaque(n / 8), opaque(8)));
      return launder(ebb_calloc(opaque(n), opaque(1)));
  }
}

static void test_calloc_reuse(void) {
  static const size_t sizes[] = {1, 8, 16, 24, 48, 100, 256, 1000, 4000, 8192, 20000, 65536,
                                 300000, 500 * KiB, MiB, 2 * MiB - 1, 2 * MiB + 1, 3 * MiB, 8 * MiB};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    size_t n = sizes[si];
    int k = n <= 4096 ? 64 : n <= MiB ? 16 : 3;
    void *b[64];
    for (int round = 0; round < 4; round++) {
      for (int i = 0; i < k; i++) {
        b[i] = launder(ebb_malloc(opaque(n)));
        CHECK(b[i] != NULL);
        if (b[i]) memset(b[i], 0xa5, ebb_usable_size(b[i]));
      }
      for (int i = k; i-- > 0;) ebb_free(b[i]);
      if (round == 1) ebb_collect(false);
      if (round == 2) ebb_collect(true);
      for (int i = 0; i < k; i++) {
        b[i] = calloc_any(n, round + i);
        calloc_check(b[i], n, "ebb_calloc after dirty free");
      }
      for (int i = 0; i < k; i++) {
        if (b[i]) memset(b[i], 0x5a, ebb_usable_size(b[i]));
        ebb_free(b[i]);
      }
    }
  }
  static const size_t shr[][2] = {{1000, 100}, {20 * KiB, 1000}, {500 * KiB, 20 * KiB},
                                  {8 * MiB, 3 * MiB}, {8 * MiB, 500 * KiB}};
  for (size_t i = 0; i < sizeof shr / sizeof shr[0]; i++)
    for (int round = 0; round < 4; round++) {
      void *p = launder(ebb_malloc(opaque(shr[i][0])));
      CHECK(p != NULL);
      if (!p) continue;
      memset(p, 0xc3, shr[i][0]);
      void *q = launder(ebb_realloc(p, opaque(shr[i][1])));
      CHECK(q != NULL);
      if (!q) q = p;
      void *c1 = calloc_any(shr[i][0] - shr[i][1], round);
      calloc_check(c1, shr[i][0] - shr[i][1], "ebb_calloc after realloc shrink (tail)");
      ebb_free(q);
      if (round & 1) ebb_collect(round == 3);
      void *c2 = calloc_any(shr[i][0], round + 1);
      calloc_check(c2, shr[i][0], "ebb_calloc after realloc shrink + free");
      ebb_free(c1);
      ebb_free(c2);
    }
  {
    uint64_t rng = 99;
    enum { SLOTS = 256 };
    void *slot[SLOTS] = {0};
    for (int it = 0; it < 20000; it++) {
      uint64_t r = test_rand(&rng);
      int s = (int)(r % SLOTS);
      if (slot[s]) {
        ebb_free(slot[s]);
        slot[s] = NULL;
        continue;
      }
      size_t n;
      unsigned sc = (unsigned)((r >> 8) % 1000);
      if (sc < 700) n = 1 + (size_t)((r >> 20) % 1024);
      else if (sc < 950) n = 1024 + (size_t)((r >> 20) % (64 * KiB));
      else if (sc < 996) n = 64 * KiB + (size_t)((r >> 20) % MiB);
      else n = 2 * MiB + (size_t)((r >> 20) % (2 * MiB));
      if ((r >> 40) & 1) {
        slot[s] = launder(ebb_malloc(opaque(n)));
        if (slot[s]) memset(slot[s], 0xff, ebb_usable_size(slot[s]));
      } else {
        slot[s] = calloc_any(n, (int)(r >> 41));
        calloc_check(slot[s], n, "ebb_calloc in random mix");
        if (slot[s]) memset(slot[s], 0x77, ebb_usable_size(slot[s]));
      }
    }
    for (int s = 0; s < SLOTS; s++) ebb_free(slot[s]);
  }
}

/* ---- many live blocks ------------------------------------------------------------ */

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
  if (c < 9985) return 16 * KiB + (size_t)(r % (256 * KiB));
  return 256 * KiB + (size_t)(r % (4 * MiB));
}
static void alloc_live(struct blk *b, uint64_t *rng, uint64_t seed) {
  size_t n = live_size(rng);
  uint64_t r = test_rand(rng);
  if (r % 100 == 0) {
    size_t a = (size_t)16 << (r >> 8) % 13;
    b->p = launder(ebb_aligned_alloc(opaque(a), opaque(n)));
    CHECKF(b->p && is_aligned(b->p, a), "ebb_aligned_alloc(%zu, %zu) = %p", a, n, b->p);
  } else if (r % 100 == 1) {
    b->p = launder(ebb_calloc(opaque(n), 1));
    CHECKF(b->p && nonzero_at(b->p, n) == SIZE_MAX, "ebb_calloc(%zu) not zero", n);
  } else {
    b->p = launder(ebb_malloc(opaque(n)));
    CHECKF(b->p && is_aligned(b->p, min_align(n)), "ebb_malloc(%zu) = %p", n, b->p);
  }
  b->n = n;
  b->u = b->p ? ebb_usable_size(b->p) : 0;
  CHECKF(b->u >= n, "usable %zu < %zu", b->u, n);
  if (b->p) pat_fill(b->p, b->u, seed);
}
static void free_live(struct blk *b) {
  if (b->p && (uintptr_t)b->p % 3 == 0) ebb_free_sized(b->p, b->n);
  else ebb_free(b->p);
  b->p = NULL;
}
static void check_no_overlap(struct blk *b, size_t count) {
  struct blk *s = (struct blk *)ebb_malloc(count * sizeof *s);
  CHECK(s != NULL);
  if (!s) return;
  memcpy(s, b, count * sizeof *s);
  qsort(s, count, sizeof *s, cmp_blk_addr);
  int reported = 0;
  for (size_t i = 0; i + 1 < count; i++) {
    if (!s[i].p) continue;
    bool ok = (uintptr_t)s[i].p + s[i].u <= (uintptr_t)s[i + 1].p;
    if (!ok && reported++ < 5) CHECKF(ok, "blocks overlap: %p+%zu and %p", s[i].p, s[i].u, s[i + 1].p);
  }
  ebb_free(s);
}

static void test_many_live(void) {
  enum { N = 60000 };
  struct blk *b = (struct blk *)ebb_calloc(N, sizeof *b);
  size_t *order = (size_t *)ebb_malloc(N * sizeof *order);
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
  for (size_t k = 0; k < N / 2; k++) {
    struct blk *x = &b[order[k]];
    if (x->p) CHECK_PAT(x->p, x->u, order[k], "before free, block %zu", order[k]);
    free_live(x);
  }
  ebb_collect(false);
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
  for (size_t i = N - 1; i > 0; i--) {
    size_t j = (size_t)(test_rand(&rng) % (i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t k = 0; k < N; k++) free_live(&b[order[k]]);
  ebb_free(order);
  ebb_free(b);
  ebb_collect(true);
}

/* ---- threads ------------------------------------------------------------------ */

#define NTHREADS 6
#define MT_OPS 15000
#define INBOX_CAP 512

struct item {
  void *p;
  size_t n, align;
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

#define MT_CHECK_PAT(p, n, seed, what)                                                      \
  do {                                                                                      \
    size_t bad_at_ = pat_bad((p), (n), (seed));                                             \
    if (bad_at_ != SIZE_MAX) {                                                              \
      pthread_mutex_lock(&fail_mu);                                                         \
      CHECKF(bad_at_ == SIZE_MAX, "%s: %p (%zu bytes) differs at %zu", what, (void *)(p),   \
             (size_t)(n), bad_at_);                                                         \
      pthread_mutex_unlock(&fail_mu);                                                       \
    }                                                                                       \
  } while (0)
#define MT_CHECK(cond, ...)           \
  do {                                \
    if (!(cond)) {                    \
      pthread_mutex_lock(&fail_mu);   \
      CHECKF(cond, __VA_ARGS__);      \
      pthread_mutex_unlock(&fail_mu); \
    }                                 \
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
  size_t n = mt_size(rng), a = 0;
  uint64_t r = test_rand(rng);
  void *p;
  if (r % 16 == 0) p = launder(ebb_calloc(1, opaque(n)));
  else if (r % 16 == 1) {
    a = (size_t)64 << (r >> 8) % 8;
    p = launder(ebb_aligned_alloc(opaque(a), opaque(n)));
    MT_CHECK(p == NULL || is_aligned(p, a), "ebb_aligned_alloc(%zu) = %p", a, p);
  } else p = launder(ebb_malloc(opaque(n)));
  MT_CHECK(p != NULL, "thread alloc of %zu failed", n);
  if (p && r % 16 == 0) MT_CHECK(nonzero_at(p, n) == SIZE_MAX, "thread ebb_calloc(%zu) not zero", n);
  if (p) {
    MT_CHECK(ebb_usable_size(p) >= n, "usable size");
    pat_fill(p, n, seed);
  }
  it->p = p;
  it->n = n;
  it->align = a;
  it->seed = seed;
}
static void mt_free(struct item *it, uint64_t r) {
  if (r % 4 == 0) ebb_free_sized(it->p, it->n);
  else ebb_free(it->p);
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
    if (op % 3001 == 3000) ebb_collect(id == 0 && op % 2 == 0);
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
          size_t m = mt_size(&rng);
          void *q;
          if (it.align && what == 1) {
            q = launder(ebb_realloc_aligned(it.p, opaque(it.align), opaque(m)));
            MT_CHECK(q == NULL || is_aligned(q, it.align), "realloc_aligned lost alignment %zu", it.align);
          } else {
            q = launder(ebb_realloc(it.p, opaque(m)));
            it.align = 0;
          }
          MT_CHECK(q != NULL, "realloc of foreign block to %zu", m);
          if (!q) {
            ebb_free(it.p);
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
  ebb_collect(false);
  return NULL;
}

#define ORPHANS 2000
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
    struct item y;
    mt_new(&y, &rng, 1);
    ebb_free(y.p);
  }
  return NULL;
}
static void *short_lived(void *arg) {
  void **out = (void **)arg;
  void *tmp = launder(ebb_malloc(opaque(1000)));
  *out = launder(ebb_malloc(opaque(200)));
  if (*out) pat_fill(*out, 200, (uintptr_t)out);
  ebb_free(tmp);
  return NULL;
}

static void test_threads(void) {
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_mutex_init(&inboxes[i].mu, NULL);
  pthread_barrier_init(&mt_barrier, NULL, NTHREADS);
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_create(&th[i], NULL, mt_worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&mt_barrier);
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, orphan_maker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, orphan_freer, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  ebb_collect(true);
  for (int id = 0; id < 4; id++)
    for (int i = 1; i < ORPHANS; i += 2) {
      struct item *x = &orphans[id][i];
      if (x->p) {
        CHECK_PAT(x->p, x->n, x->seed, "orphan freed by main");
        mt_free(x, (uint64_t)i);
      }
    }
  enum { SHORT = 100 };
  static void *left[SHORT];
  for (int i = 0; i < SHORT; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, short_lived, &left[i]) == 0);
    pthread_join(t, NULL);
  }
  for (int i = 0; i < SHORT; i++) {
    CHECK(left[i] != NULL);
    if (left[i]) CHECK_PAT(left[i], 200, (uintptr_t)&left[i], "left by a dead thread");
    ebb_free(left[i]);
  }
}

/* ---- bad input ---------------------------------------------------------------------- */

static void expect_null(void *r, int err, int want_err, const char *call, size_t a, size_t b) {
  CHECKF(r == NULL, "%s(%zu, %zu) = %p, want NULL", call, a, b, r);
  CHECKF(err == want_err, "%s(%zu, %zu): errno %d, want %d", call, a, b, err, want_err);
  if (r) ebb_free(r);
}
#define TRY(call, a, b, want)             \
  do {                                    \
    errno = 0;                            \
    void *r_ = launder(call);             \
    int e_ = errno;                       \
    expect_null(r_, e_, want, #call, a, b); \
  } while (0)

static const size_t impossible[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 7, SIZE_MAX - 15, SIZE_MAX - 16, SIZE_MAX - 4095,
    SIZE_MAX - 4096, SIZE_MAX - 2 * 1024 * 1024, SIZE_MAX - ((size_t)1 << 30),
    (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 4095, (size_t)1 << 62,
    (size_t)1 << 48};

static void test_bad_sizes(void) {
  static const size_t keep[] = {40, 20 * KiB, 500 * KiB, 8 * MiB};
  void *kp[4];
  for (int i = 0; i < 4; i++) {
    kp[i] = launder(ebb_malloc(opaque(keep[i])));
    CHECK(kp[i] != NULL);
    if (kp[i]) pat_fill(kp[i], keep[i], 300 + (uint64_t)i);
  }
  void *ka = launder(ebb_aligned_alloc(opaque(4096), opaque(5000)));
  CHECK(ka != NULL);
  if (ka) pat_fill(ka, 5000, 399);
  for (size_t i = 0; i < sizeof impossible / sizeof impossible[0]; i++) {
    size_t n = impossible[i];
    TRY(ebb_malloc(opaque(n)), n, 0, ENOMEM);
    TRY(ebb_calloc(1, opaque(n)), 1, n, ENOMEM);
    TRY(ebb_calloc(opaque(n), 1), n, 1, ENOMEM);
    TRY(ebb_realloc(NULL, opaque(n)), 0, n, ENOMEM);
    TRY(ebb_reallocarray(NULL, opaque(n), 1), n, 1, ENOMEM);
    TRY(ebb_aligned_alloc(16, opaque(n)), 16, n, ENOMEM);
    TRY(ebb_aligned_alloc(4096, opaque(n)), 4096, n, ENOMEM);
    TRY(ebb_aligned_alloc(opaque(GiB), opaque(n)), GiB, n, ENOMEM);
    TRY(ebb_memalign(64, opaque(n)), 64, n, ENOMEM);
    TRY(ebb_memalign(opaque(2 * MiB), opaque(n)), 2 * MiB, n, ENOMEM);
    TRY(ebb_realloc_aligned(NULL, 64, opaque(n)), 64, n, ENOMEM);
    for (int j = 0; j < 4; j++) {
      if (!kp[j]) continue;
      TRY(ebb_realloc(launder(kp[j]), opaque(n)), keep[j], n, ENOMEM);
      TRY(ebb_reallocarray(launder(kp[j]), opaque(n), 1), keep[j], n, ENOMEM);
      TRY(ebb_realloc_aligned(launder(kp[j]), 16, opaque(n)), keep[j], n, ENOMEM);
      CHECK_PAT(kp[j], keep[j], 300 + (uint64_t)j, "block after failed realloc to %zu", n);
    }
    if (ka) {
      TRY(ebb_realloc_aligned(launder(ka), 4096, opaque(n)), 5000, n, ENOMEM);
      CHECK_PAT(ka, 5000, 399, "aligned block after failed realloc_aligned to %zu", n);
    }
    static const size_t pm_align[] = {8, 64, 4096, 1 << 30};
    for (int j = 0; j < 4; j++) {
      void *out = (void *)&out;
      int rc = ebb_posix_memalign((void **)launder(&out), opaque(pm_align[j]), opaque(n));
      CHECKF(rc == ENOMEM, "ebb_posix_memalign(%zu, %zu) = %d, want ENOMEM", pm_align[j], n, rc);
      CHECKF(out == (void *)&out, "ebb_posix_memalign(%zu, %zu) changed *out to %p", pm_align[j], n, out);
      if (rc == 0) ebb_free(out);
    }
  }
  static const size_t ov[][2] = {
      {SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
      {SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {((size_t)1 << 33) + 1, (size_t)1 << 31},
      {65537, SIZE_MAX / 65536}, {SIZE_MAX / 3 + 1, 3}, {16, SIZE_MAX / 16 + 1},
      {(size_t)1 << 31, (size_t)1 << 31}, {(size_t)1 << 40, 1 << 20}};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
    TRY(ebb_calloc(opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
    TRY(ebb_reallocarray(NULL, opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
    for (int j = 0; j < 4; j++) {
      if (!kp[j]) continue;
      TRY(ebb_reallocarray(launder(kp[j]), opaque(ov[i][0]), opaque(ov[i][1])), ov[i][0], ov[i][1], ENOMEM);
      CHECK_PAT(kp[j], keep[j], 300 + (uint64_t)j, "block after failed ebb_reallocarray");
    }
  }
  {
    void *a = launder(ebb_calloc(opaque(0), opaque(SIZE_MAX)));
    void *b = launder(ebb_calloc(opaque(SIZE_MAX), opaque(0)));
    CHECK(a != NULL && b != NULL && a != b);
    ebb_free(a);
    ebb_free(b);
  }
  /* Bad alignment to ebb_realloc_aligned: EINVAL, block untouched. */
  if (ka) {
    static const size_t bad[] = {0, 3, 24, 100, SIZE_MAX};
    for (size_t i = 0; i < 5; i++) {
      TRY(ebb_realloc_aligned(launder(ka), opaque(bad[i]), opaque(6000)), bad[i], 6000, EINVAL);
      CHECK_PAT(ka, 5000, 399, "aligned block after realloc_aligned(alignment %zu)", bad[i]);
    }
  }
  for (int j = 0; j < 4; j++) {
    if (!kp[j]) continue;
    size_t n = keep[j];
    kp[j] = realloc_check(kp[j], &n, keep[j] * 3, 300 + (uint64_t)j, "after failures");
    kp[j] = realloc_check(kp[j], &n, keep[j] / 2 + 1, 300 + (uint64_t)j, "after failures");
    ebb_free(kp[j]);
  }
  if (ka) {
    size_t n = 5000;
    ka = realloc_aligned_check(ka, &n, 4096, 9000, 399, "after failures");
    ebb_free(ka);
  }
}

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

static void test_bad_alignments(void) {
  static const size_t bad_pm[] = {0, 1, 2, 3, 4, 5, 6, 7, 12, 20, 24, 40, 48, 100, 4095, 4097,
                                  3 * 4096, SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX / 2 + 8, SIZE_MAX - 7};
  static const size_t sizes[] = {0, 1, 100, 5000};
  for (size_t i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++)
    for (size_t j = 0; j < 4; j++) {
      void *out = (void *)&out;
      int rc = ebb_posix_memalign((void **)launder(&out), opaque(bad_pm[i]), opaque(sizes[j]));
      CHECKF(rc == EINVAL, "ebb_posix_memalign(%zu, %zu) = %d, want EINVAL", bad_pm[i], sizes[j], rc);
      CHECKF(out == (void *)&out, "ebb_posix_memalign(%zu, %zu) changed *out", bad_pm[i], sizes[j]);
      if (rc == 0) ebb_free(out);
    }
  static const size_t huge_pow2[] = {SIZE_MAX / 2 + 1, (size_t)1 << 62, (size_t)1 << 48};
  for (size_t i = 0; i < 3; i++) {
    void *out = (void *)&out;
    int rc = ebb_posix_memalign((void **)launder(&out), opaque(huge_pow2[i]), opaque(1));
    CHECKF(rc == EINVAL || rc == ENOMEM, "ebb_posix_memalign(%zu, 1) = %d", huge_pow2[i], rc);
    CHECKF(out == (void *)&out, "ebb_posix_memalign(%zu, 1) changed *out", huge_pow2[i]);
    if (rc == 0) ebb_free(out);
    errno = 0;
    void *p = launder(ebb_aligned_alloc(opaque(huge_pow2[i]), opaque(1)));
    int e = errno;
    CHECKF(p == NULL && (e == EINVAL || e == ENOMEM), "ebb_aligned_alloc(%zu, 1) = %p, errno %d",
           huge_pow2[i], p, e);
    errno = 0;
    p = launder(ebb_memalign(opaque(huge_pow2[i]), opaque(1)));
    e = errno;
    CHECKF(p == NULL && (e == EINVAL || e == ENOMEM), "ebb_memalign(%zu, 1) = %p, errno %d", huge_pow2[i], p, e);
  }
  static const size_t bad_aa[] = {0, 3, 5, 6, 7, 12, 24, 48, 100, 4095, 4097, 3 * 4096,
                                  SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX - 7};
  for (size_t i = 0; i < sizeof bad_aa / sizeof bad_aa[0]; i++)
    for (size_t j = 0; j < 4; j++) {
      TRY(ebb_aligned_alloc(opaque(bad_aa[i]), opaque(sizes[j])), bad_aa[i], sizes[j], EINVAL);
      TRY(ebb_realloc_aligned(NULL, opaque(bad_aa[i]), opaque(sizes[j] + 1)), bad_aa[i], sizes[j] + 1, EINVAL);
    }
  static const size_t bad_ma[] = {SIZE_MAX, SIZE_MAX / 2 + 2, SIZE_MAX - 4095};
  for (size_t i = 0; i < 3; i++) TRY(ebb_memalign(opaque(bad_ma[i]), opaque(100)), bad_ma[i], 100, EINVAL);
  for (size_t a = 1; a <= 8; a *= 2) {
    void *p = launder(ebb_aligned_alloc(opaque(a), opaque(10)));
    check_new_block(p, 10, 8, "ebb_aligned_alloc(small pow2)");
    ebb_free(p);
  }
}

/* Bad pointers: abort with one line naming the call and the pointer.  Each
 * in a forked child; t_badfree covers the standard names in depth. */
enum bcall { B_FREE, B_FREE_SIZED, B_REALLOC, B_USABLE, B_REALLOC_ALIGNED };
static volatile size_t sink;
static void bad_case(const char *label, enum bcall c, void *p, size_t arg, const char *name) {
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
  section("basics");                 test_basics();         section(NULL);
  section("sizes 0..32 MiB");        test_sizes();          section(NULL);
  section("good_size");              test_good_size();      section(NULL);
  section("alignments 1 B..1 GiB");  test_alignments();     section(NULL);
  section("realloc");                test_realloc();        section(NULL);
  section("calloc zero on reuse");   test_calloc_reuse();   section(NULL);
  section("calloc_aligned");         test_calloc_aligned(); section(NULL);
  section("many live blocks");       test_many_live();      section(NULL);
  section("threads");                test_threads();        section(NULL);
  section("bad sizes");              test_bad_sizes();      section(NULL);
  section("bad alignments");         test_bad_alignments(); section(NULL);
  section("bad pointers");           test_bad_pointers();   section(NULL);
  section("still works");            test_still_works();    section(NULL);
  TEST_DONE();
}
