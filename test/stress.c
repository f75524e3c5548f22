/* stress: a seeded random mix of every allocation call, checked.
 *
 *   stress SEED SECONDS THREADS [OPS]
 *
 * Each thread keeps up to 512 blocks and does random operations: malloc,
 * calloc (checked zero), posix_memalign / aligned_alloc / memalign
 * (alignments 16 B - 1 MiB, checked), realloc (contents kept), free, and
 * handing a block to another thread through a shared exchange (so it is
 * freed or reallocated by a thread that did not allocate it).  Sizes: mostly
 * 0 B - 1 KiB, some up to 128 KiB, a few up to 4 MiB and rarely up to 64 MiB.
 * Every block is filled with a pattern derived from a tag stored in it, and
 * the pattern is checked before every free and realloc (for big blocks, the
 * first and last KiB and a KiB in the middle).  Thread 0 forks now and then:
 * the child checks and frees its copy of thread 0's blocks, allocates, and
 * exits; the parent waits for it.
 *
 * With THREADS=1 and OPS given, the run is deterministic: the same seed
 * does the same calls, and the digest printed (over the contents read back,
 * not the addresses) is the same under any correct malloc, so
 * test/t_stress.sh compares ebb's digest with glibc's (a differential test).
 * Any mismatch prints one line and exits 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 512
#define EXCHANGE 64
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

typedef struct {
  unsigned char *p;
  size_t size;
  uint64_t tag;
} block_t;

static uint64_t g_seed;
static double g_seconds;
static long g_ops;
static int g_threads;
static _Atomic int g_failed;

static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static block_t exchange[EXCHANGE];

static uint64_t next_rand(uint64_t *s) {
  uint64_t x = *s += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(const char *what, const block_t *b) {
  fprintf(stderr, "stress: %s (block %p, %zu bytes, tag %llx)\n", what, (void *)b->p, b->size,
          (unsigned long long)b->tag);
  atomic_store(&g_failed, 1);
  fflush(stderr);
  _exit(1);
}

static inline unsigned char pattern_byte(uint64_t tag, size_t i) {
  return (unsigned char)((tag >> ((i & 7) * 8)) + i * 13 + (i >> 10));
}

/* The ranges a block's pattern covers: all of it up to 3 KiB, else the
 * first, middle and last KiB. */
static void for_ranges(size_t size, void (*fn)(block_t *, size_t, size_t, uint64_t *), block_t *b,
                       uint64_t *digest) {
  if (size <= 3 * KiB) {
    fn(b, 0, size, digest);
    return;
  }
  fn(b, 0, KiB, digest);
  fn(b, size / 2 - KiB / 2, size / 2 + KiB / 2, digest);
  fn(b, size - KiB, size, digest);
}

static void fill_range(block_t *b, size_t from, size_t to, uint64_t *digest) {
  (void)digest;
  for (size_t i = from; i < to; i++) b->p[i] = pattern_byte(b->tag, i);
}

static void check_range(block_t *b, size_t from, size_t to, uint64_t *digest) {
  for (size_t i = from; i < to; i++) {
    if (b->p[i] != pattern_byte(b->tag, i)) fail("pattern changed while the block was live", b);
    *digest = *digest * 31 + b->p[i];
  }
}

static void fill(block_t *b) { for_ranges(b->size, fill_range, b, NULL); }
static void check(block_t *b, uint64_t *digest) { for_ranges(b->size, check_range, b, digest); }

static size_t random_size(uint64_t *rng) {
  uint64_t r = next_rand(rng);
  unsigned pick = (unsigned)(r % 1000);
  r >>= 10;
  if (pick < 900) return (size_t)(r % (KiB + 1));
  if (pick < 990) return (size_t)(r % (128 * KiB));
  if (pick < 999) return (size_t)(r % (4 * MiB));
  return (size_t)(r % (64 * MiB));
}

static void *random_alloc(uint64_t *rng, size_t size, int *zeroed, size_t *align_out) {
  uint64_t r = next_rand(rng);
  *zeroed = 0;
  *align_out = 0;
  switch (r % 16) {
    case 0:
    case 1:
      *zeroed = 1;
      return calloc(1, size);
    case 2: {
      size_t align = (size_t)16 << ((r >> 8) % 17); /* 16 B .. 1 MiB */
      void *p = NULL;
      *align_out = align;
      if (posix_memalign(&p, align, size) != 0) return NULL;
      return p;
    }
    case 3: {
      size_t align = (size_t)16 << ((r >> 8) % 13);
      *align_out = align;
      return aligned_alloc(align, (size + align - 1) / align * align);
    }
    case 4: {
      size_t align = (size_t)16 << ((r >> 8) % 9);
      *align_out = align;
      return memalign(align, size);
    }
    default:
      return malloc(size);
  }
}

static void release(block_t *b, uint64_t *digest) {
  if (b->p) {
    check(b, digest);
    free(b->p);
  }
  b->p = NULL;
}

static int new_block(block_t *b, uint64_t *rng, uint64_t *digest) {
  size_t size = random_size(rng);
  int zeroed;
  size_t align;
  unsigned char *p = random_alloc(rng, size, &zeroed, &align);
  if (p == NULL) {
    if (size > 0) {
      fprintf(stderr, "stress: allocation of %zu bytes failed (errno %d)\n", size, errno);
      atomic_store(&g_failed, 1);
    }
    return 0;
  }
  b->p = p;
  b->size = size;
  b->tag = next_rand(rng);
  if (align && ((uintptr_t)p & (align - 1))) fail("misaligned block", b);
  if (zeroed)
    for (size_t i = 0; i < size; i += (size > 4 * KiB ? 61 : 1))
      if (p[i] != 0) fail("calloc returned a block not zeroed", b);
  fill(b);
  *digest = *digest * 31 + size;
  return 1;
}

static void grow_or_shrink(block_t *b, uint64_t *rng, uint64_t *digest) {
  check(b, digest);
  size_t size = random_size(rng);
  unsigned char *q = realloc(b->p, size);
  if (q == NULL && size > 0) fail("realloc failed", b);
  if (size == 0) { /* glibc frees and may return NULL */
    free(q);
    b->p = NULL;
    return;
  }
  /* the old contents up to the smaller size must be there: its first KiB,
   * which the pattern always covers */
  size_t keep = size < b->size ? size : b->size;
  block_t old = *b;
  old.p = q;
  old.size = keep < KiB ? keep : KiB;
  check(&old, digest);
  b->p = q;
  b->size = size;
  b->tag = next_rand(rng);
  fill(b);
}

static void fork_check(block_t *slots) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    uint64_t d = 0, rng = 42;
    for (int i = 0; i < SLOTS; i++) release(&slots[i], &d);
    for (int i = 0; i < 200; i++) {
      block_t b = {0};
      if (new_block(&b, &rng, &d)) release(&b, &d);
    }
    _exit(0);
  }
  int st = 0;
  if (pid > 0) waitpid(pid, &st, 0);
  if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "stress: forked child failed (status %d)\n", st);
    atomic_store(&g_failed, 1);
  }
}

typedef struct {
  int id;
  uint64_t digest;
  long ops;
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  block_t *slots = calloc(SLOTS, sizeof *slots);
  uint64_t rng = g_seed * 1000003u + (uint64_t)w->id, digest = 0;
  double end = now_s() + g_seconds;
  long ops = 0;
  while (!atomic_load_explicit(&g_failed, memory_order_relaxed)) {
    if (g_ops > 0 ? ops >= g_ops : ((ops & 1023) == 0 && now_s() >= end)) break;
    ops++;
    uint64_t r = next_rand(&rng);
    block_t *b = &slots[(r >> 8) % SLOTS];
    unsigned op = (unsigned)(r % 100);
    if (b->p == NULL) {
      new_block(b, &rng, &digest);
    } else if (op < 45) {
      release(b, &digest);
    } else if (op < 60) {
      grow_or_shrink(b, &rng, &digest);
    } else if (op < 75 && g_threads > 1) {
      /* swap with the exchange: the block goes to whichever thread takes it */
      pthread_mutex_lock(&exchange_lock);
      block_t *x = &exchange[(r >> 20) % EXCHANGE];
      block_t tmp = *x;
      *x = *b;
      *b = tmp;
      pthread_mutex_unlock(&exchange_lock);
    } else if (op < 76 && w->id == 0 && g_threads > 1) {
      fork_check(slots);
    } else {
      check(b, &digest);
    }
  }
  for (int i = 0; i < SLOTS; i++) release(&slots[i], &digest);
  free(slots);
  w->digest = digest;
  w->ops = ops;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: stress SEED SECONDS THREADS [OPS]\n");
    return 2;
  }
  g_seed = strtoull(argv[1], NULL, 0);
  g_seconds = atof(argv[2]);
  g_threads = atoi(argv[3]);
  g_ops = argc > 4 ? atol(argv[4]) : 0;
  if (g_threads < 1 || g_threads > 64) return 2;
  worker_t w[64];
  pthread_t t[64];
  for (int i = 0; i < g_threads; i++) {
    w[i] = (worker_t){.id = i};
    pthread_create(&t[i], NULL, worker, &w[i]);
  }
  uint64_t digest = 0;
  long ops = 0;
  for (int i = 0; i < g_threads; i++) {
    pthread_join(t[i], NULL);
    digest = digest * 1000003u + w[i].digest;
    ops += w[i].ops;
  }
  uint64_t d = 0;
  for (int i = 0; i < EXCHANGE; i++) release(&exchange[i], &d);
  if (atomic_load(&g_failed)) return 1;
  printf("seed=%llu threads=%d ops=%ld digest=%016llx\n", (unsigned long long)g_seed, g_threads, ops,
         (unsigned long long)(g_threads == 1 ? digest : 0));
  return 0;
}
