/* Multithreaded stress of the malloc family (which, in a t_ test, is ebb's):
 *
 *  a  producer/consumer: producers allocate, consumers on other threads check
 *     and free (every free is a remote free), some consumers realloc first;
 *  b  larson-style: 16 threads replace random slots of a shared array, so a
 *     block is usually freed (or realloc'ed) by a thread that did not
 *     allocate it (also calloc, posix_memalign up to 1 MiB alignment, huge
 *     blocks now and then, ebb_free_sized);
 *  c  thread churn: thousands of short-lived threads, each leaving half of
 *     its blocks to be freed by later threads; RSS must not keep growing
 *     (segments of exited threads must be reused);
 *  d  fork while 4 threads allocate (and a fifth keeps creating short-lived
 *     threads): each child must be able to allocate at every scale, free
 *     blocks the parent's threads allocated, and create a thread at once;
 *  e  a long-lived thread beside one new thread a round, blocks passed
 *     between them through a shared array (mimalloc-bench's mstress shape):
 *     RSS must not grow round after round (the long-lived thread must not
 *     hoard the exited threads' segments while each new thread maps one);
 *  f  a thread allocates blocks and sleeps; another frees them, allocating
 *     one block after each free: the sleeper's blocks go back to its pages,
 *     not into the freer's cache, so none of them comes back to the freer.
 *
 * Usage: t_threads [abcdef...]   (default: all parts, run in the order c a b d e f)
 * Environment:
 *   EBB_TEST_SCALE=small   shrink every part (for valgrind)
 *   EBB_TEST_TIMEOUT=secs  whole-run watchdog (default 300)
 *
 * Build against glibc to check the test itself:
 *   cc -std=gnu11 -D_GNU_SOURCE -DEBB_TEST_GLIBC -O1 -g -pthread -Iinclude \
 *      test/t_threads.c -o /tmp/t_threads -lm
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

#ifdef EBB_TEST_GLIBC
#define ebb_usable_size(p) malloc_usable_size((void *)(p))
#define ebb_free_sized(p, n) ((void)(n), free(p))
#define ebb_collect(force) ((void)(force), malloc_trim(0))
#define EBB_IN_USE 0
#else
#include "ebb.h"
#define EBB_IN_USE 1
#endif

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static bool small_scale;
static int scale(int full, int small) { return small_scale ? small : full; }

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die_errno(const char *what, int err) {
  fprintf(stderr, "%s: %s\n", what, strerror(err));
  abort();
}

/* ---- blocks that describe themselves ----------------------------------
 * Every block is at least 8 bytes; the first 8 hold its size and seed.  The
 * rest holds the pattern of the seed: all of it for blocks up to 4 KiB, and
 * for bigger ones the first 2 KiB, 32 bytes of every 4 KiB page and the last
 * 2 KiB (so megabyte blocks cost little, yet every page is touched). */
#define FULL_LIMIT (4 * KiB + 8)
#define EDGE (2 * KiB)

static void hdr_write(unsigned char *p, size_t n, uint32_t seed) {
  uint64_t h = ((uint64_t)seed << 32) | (uint32_t)n;
  memcpy(p, &h, sizeof h);
}
static void hdr_read(const unsigned char *p, size_t *n, uint32_t *seed) {
  uint64_t h;
  memcpy(&h, p, sizeof h);
  *n = (uint32_t)h;
  *seed = (uint32_t)(h >> 32);
}

/* Fill (check == 0) or check (check == 1) the pattern; 1 if it holds. */
static int blk_walk(unsigned char *p, size_t n, uint32_t seed, int check) {
#define REGION(off, len, s)                                                  \
  do {                                                                       \
    if (check) {                                                             \
      if (!check_pattern(p + (off), (len), (s))) return 0;                   \
    } else {                                                                 \
      fill_pattern(p + (off), (len), (s));                                   \
    }                                                                        \
  } while (0)
  if (n <= FULL_LIMIT) {
    REGION(8, n - 8, seed);
    return 1;
  }
  REGION(8, EDGE - 8, seed);
  for (size_t off = 4 * KiB; off + 32 <= n - EDGE; off += 4 * KiB)
    REGION(off, 32, seed ^ (uint32_t)off);
  REGION(n - EDGE, EDGE, seed + 1);
  return 1;
#undef REGION
}

static void blk_fill(void *p, size_t n, uint32_t seed) {
  hdr_write(p, n, seed);
  blk_walk(p, n, seed, 0);
}

/* 1 if the block at p holds a complete, intact pattern (and its header
 * matches n/seed when they are given, non-zero). */
static int blk_ok(const void *p, size_t want_n, uint32_t want_seed) {
  size_t n;
  uint32_t seed;
  hdr_read(p, &n, &seed);
  if (want_n && n != want_n) return 0;
  if (want_seed && seed != want_seed) return 0;
  if (n < 8) return 0;
  return blk_walk((unsigned char *)p, n, seed, 1);
}

/* Checks the block and reports on failure; returns its size. */
static size_t blk_check(const void *p, const char *where) {
  size_t n;
  uint32_t seed;
  hdr_read(p, &n, &seed);
  if (!blk_ok(p, 0, 0)) {
    fprintf(stderr, "%s: block %p (size %zu seed %#x) corrupted\n", where, p, n, seed);
    test_failures++;
    if (test_failures > 20) abort();
  }
  return n;
}

/* Bytes [8, upto) of a block whose pattern was written with size n still hold
 * the pattern (used after a shrinking realloc). */
static int blk_prefix_ok(const unsigned char *p, size_t n, uint32_t seed, size_t upto) {
  size_t first_end = n <= FULL_LIMIT ? n : EDGE;
  if (upto > first_end) upto = first_end;
  return upto <= 8 || check_pattern(p + 8, upto - 8, seed);
}

/* Random size: mostly small, some medium, a few large. */
static size_t rand_size(uint64_t *rng, size_t max_large) {
  uint64_t r = test_rand(rng);
  unsigned pick = (unsigned)(r % 1000);
  r >>= 10;
  if (pick < 5 && max_large > 64 * KiB) return 64 * KiB + r % (max_large - 64 * KiB);
  if (pick < 60) return 1 * KiB + r % (63 * KiB);
  if (pick < 250) return 256 + r % 768;
  return 8 + r % 248;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) die_errno("malloc", errno);
  return p;
}

/* ---- a: producer / consumer ------------------------------------------ */
typedef struct {
  void *p;
  size_t n;
  uint32_t seed;
} item;

#define QCAP 1024
static struct {
  pthread_mutex_t mu;
  pthread_cond_t not_full, not_empty;
  item buf[QCAP];
  size_t head, count;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0};

static void q_push(item it) {
  pthread_mutex_lock(&q.mu);
  while (q.count == QCAP) pthread_cond_wait(&q.not_full, &q.mu);
  q.buf[(q.head + q.count) % QCAP] = it;
  q.count++;
  pthread_cond_signal(&q.not_empty);
  pthread_mutex_unlock(&q.mu);
}

static item q_pop(void) {
  pthread_mutex_lock(&q.mu);
  while (q.count == 0) pthread_cond_wait(&q.not_empty, &q.mu);
  item it = q.buf[q.head];
  q.head = (q.head + 1) % QCAP;
  q.count--;
  pthread_cond_signal(&q.not_full);
  pthread_mutex_unlock(&q.mu);
  return it;
}

static int pc_per_producer;
static atomic_long pc_consumed;

static void *producer(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1);
  for (int i = 0; i < pc_per_producer; i++) {
    size_t n = rand_size(&rng, 1 * MiB);
    uint32_t seed = (id << 24) | ((uint32_t)i & 0xffffff);
    void *p;
    if (i % 16 == 3) {
      p = calloc(1, n);
      if (!p) die_errno("calloc", errno);
      const unsigned char *b = p;
      size_t lim = n < 4096 ? n : 4096;
      for (size_t k = 0; k < lim; k++)
        if (b[k]) { CHECK(!"calloc memory not zeroed"); break; }
      if (n > 4096) CHECK(b[n - 1] == 0 && b[n / 2] == 0);
    } else {
      p = xmalloc(n);
    }
    if (((uintptr_t)p & 15) != 0 && !(n <= 8 && ((uintptr_t)p & 7) == 0)) {
      fprintf(stderr, "a: %s(%zu) = %p is not 16-byte aligned\n", i % 16 == 3 ? "calloc" : "malloc", n, p);
      test_failures++;
      if (test_failures > 20) abort();
    }
    blk_fill(p, n, seed);
    q_push((item){p, n, seed});
  }
  return NULL;
}

static void *consumer(void *arg) {
  uint64_t rng = 0x1234567ull + (uintptr_t)arg;
  for (;;) {
    item it = q_pop();
    if (!it.p) break;
    if (!blk_ok(it.p, it.n, it.seed)) {
      fprintf(stderr, "a: block %p size %zu seed %#x corrupted when consumed\n", it.p, it.n, it.seed);
      test_failures++;
    }
    CHECK(ebb_usable_size(it.p) >= it.n);
    uint64_t r = test_rand(&rng);
    if (r % 8 == 0) {
      /* realloc a block another thread allocated */
      size_t nn = rand_size(&rng, 256 * KiB);
      unsigned char *p2 = realloc(it.p, nn);
      if (!p2) die_errno("realloc", errno);
      if (nn >= it.n)
        CHECK(blk_ok(p2, it.n, it.seed));
      else
        CHECK(blk_prefix_ok(p2, it.n, it.seed, nn));
      blk_fill(p2, nn, it.seed ^ 0xabcdu);
      CHECK(blk_ok(p2, nn, it.seed ^ 0xabcdu));
      free(p2);
    } else if (r % 8 == 1) {
      ebb_free_sized(it.p, it.n);
    } else {
      free(it.p);
    }
    atomic_fetch_add_explicit(&pc_consumed, 1, memory_order_relaxed);
  }
  return NULL;
}

static void part_a(void) {
  enum { P = 4, C = 4 };
  pc_per_producer = scale(125000, 10000);
  pthread_t pt[P], ct[C];
  int e;
  for (int i = 0; i < C; i++)
    if ((e = pthread_create(&ct[i], NULL, consumer, (void *)(uintptr_t)i))) die_errno("pthread_create", e);
  for (int i = 0; i < P; i++)
    if ((e = pthread_create(&pt[i], NULL, producer, (void *)(uintptr_t)i))) die_errno("pthread_create", e);
  for (int i = 0; i < P; i++) pthread_join(pt[i], NULL);
  for (int i = 0; i < C; i++) q_push((item){NULL, 0, 0});
  for (int i = 0; i < C; i++) pthread_join(ct[i], NULL);
  CHECK(atomic_load(&pc_consumed) == (long)P * pc_per_producer);
  printf("a: %d objects passed from %d producers to %d consumers\n", P * pc_per_producer, P, C);
}

/* ---- b: larson-style shared slots ------------------------------------ */
#define B_THREADS 16
#define B_SLOTS 4096
static _Atomic(unsigned char *) b_slots[B_SLOTS];
static int b_iters;

static void *larson(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  uint64_t rng = 0xdeadbeefcafeull ^ ((uint64_t)id << 40) ^ id;
  for (int it = 0; it < b_iters; it++) {
    uint64_t r = test_rand(&rng);
    size_t slot = (size_t)(r % B_SLOTS);
    unsigned op = (unsigned)((r >> 16) % 32);
    size_t n = rand_size(&rng, 256 * KiB);
    if ((r >> 48) % 2048 == 0) n = 2 * MiB + (r >> 20) % (3 * MiB); /* huge */
    uint32_t seed = (id << 24) | ((uint32_t)it & 0xffffff);
    if (op == 0) {
      /* take the slot's block (usually another thread's) and realloc it */
      unsigned char *old = atomic_exchange(&b_slots[slot], NULL);
      if (!old) continue;
      size_t on;
      uint32_t os;
      hdr_read(old, &on, &os);
      if (!blk_ok(old, 0, 0)) {
        fprintf(stderr, "b: block %p (size %zu seed %#x) corrupted before realloc\n", (void *)old, on, os);
        test_failures++;
      }
      unsigned char *p = realloc(old, n);
      if (!p) die_errno("realloc", errno);
      if (n >= on)
        CHECK(blk_ok(p, on, os));
      else
        CHECK(blk_prefix_ok(p, on, os, n));
      blk_fill(p, n, seed);
      old = atomic_exchange(&b_slots[slot], p);
      if (old) {
        blk_check(old, "b");
        free(old);
      }
      continue;
    }
    unsigned char *p;
    if (op == 1) {
      /* 64 .. 4096, and now and then 64 KiB .. 1 MiB */
      size_t align = (r >> 40) % 64 == 0 ? (size_t)65536 << ((r >> 24) % 5) : (size_t)64 << ((r >> 24) % 7);
      void *v = NULL;
      int e = posix_memalign(&v, align, n);
      if (e) die_errno("posix_memalign", e);
      CHECK(((uintptr_t)v & (align - 1)) == 0);
      p = v;
    } else if (op == 2) {
      p = calloc(n, 1);
      if (!p) die_errno("calloc", errno);
      CHECK(p[n - 1] == 0 && p[n / 2] == 0);
    } else {
      p = xmalloc(n);
    }
    blk_fill(p, n, seed);
    unsigned char *old = atomic_exchange(&b_slots[slot], p);
    if (old) {
      size_t on = blk_check(old, "b");
      if (op == 3)
        ebb_free_sized(old, on);
      else
        free(old);
    }
  }
  return NULL;
}

static void part_b(void) {
  b_iters = scale(150000, 4000);
  pthread_t t[B_THREADS];
  int e;
  for (int i = 0; i < B_THREADS; i++)
    if ((e = pthread_create(&t[i], NULL, larson, (void *)(uintptr_t)i))) die_errno("pthread_create", e);
  for (int i = 0; i < B_THREADS; i++) pthread_join(t[i], NULL);
  size_t live = 0;
  for (int i = 0; i < B_SLOTS; i++) {
    unsigned char *p = atomic_exchange(&b_slots[i], NULL);
    if (p) {
      blk_check(p, "b final");
      free(p);
      live++;
    }
  }
  printf("b: %d threads x %d slot replacements, %zu blocks left and freed\n", B_THREADS, b_iters, live);
}

/* ---- c: thread churn ------------------------------------------------- */
#define C_PER_THREAD 300
#define C_POOL_CAP 4096
static struct {
  pthread_mutex_t mu;
  void *blk[C_POOL_CAP];
  size_t count;
} pool = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};

static void *churn(void *arg) {
  uint64_t rng = 0x5555aaaa12345ull + (uintptr_t)arg * 0x100000001b3ull;
  void *mine[C_PER_THREAD];
  /* free blocks that earlier (now exited) threads left behind */
  void *taken[C_PER_THREAD];
  size_t ntaken = 0;
  pthread_mutex_lock(&pool.mu);
  while (pool.count > 0 && ntaken < C_PER_THREAD / 2) taken[ntaken++] = pool.blk[--pool.count];
  pthread_mutex_unlock(&pool.mu);
  for (size_t i = 0; i < C_PER_THREAD; i++) {
    uint64_t r = test_rand(&rng);
    size_t n;
    switch (r % 100) {
      case 0: n = 128 * KiB + (r >> 8) % (896 * KiB); break;   /* large */
      case 1: case 2: case 3: n = 8 * KiB + (r >> 8) % (120 * KiB); break;  /* medium */
      default: n = rand_size(&rng, 0); break;
    }
    mine[i] = xmalloc(n);
    blk_fill(mine[i], n, (uint32_t)r);
    if (i < ntaken) {
      blk_check(taken[i], "c pool");
      free(taken[i]);
    }
  }
  for (size_t i = C_PER_THREAD; i-- > 0;) {
    if (i % 2) {
      blk_check(mine[i], "c own");
      free(mine[i]);
    }
  }
  pthread_mutex_lock(&pool.mu);
  for (size_t i = 0; i < C_PER_THREAD; i += 2) {
    if (pool.count < C_POOL_CAP)
      pool.blk[pool.count++] = mine[i];
    else
      free(mine[i]);
  }
  pthread_mutex_unlock(&pool.mu);
  return NULL;
}

static void part_c(void) {
  enum { W = 4 };
  int waves = scale(3000, 150);
  int early_at = waves / 10;
  double budget = small_scale ? 120.0 : 12.0; /* stop early if this slow */
  double t0 = now_sec();
  /* start from a clean slate: earlier parts' cached memory is not churn's */
  ebb_collect(true);
  size_t start_rss = test_rss(), early = 0, fin;
  int done = 0;
  for (int w = 0; w < waves; w++) {
    pthread_t t[W];
    int e;
    for (int i = 0; i < W; i++)
      if ((e = pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(w * W + i)))) die_errno("pthread_create", e);
    for (int i = 0; i < W; i++) pthread_join(t[i], NULL);
    done = w + 1;
    if (done == early_at) early = test_rss();
    if (done > early_at && now_sec() - t0 > budget) break;
  }
  fin = test_rss();
  size_t limit = early + early / 2 + 16 * MiB;
  printf("c: %d waves of %d threads (%d threads) in %.1fs; RSS at start %.1f MiB, after %d waves %.1f MiB, "
         "at end %.1f MiB (limit %.1f MiB)\n",
         done, W, done * W, now_sec() - t0, (double)start_rss / MiB, early_at, (double)early / MiB,
         (double)fin / MiB, (double)limit / MiB);
  if (fin > limit) {
    fprintf(stderr, "c: RSS grew from %zu to %zu bytes over thread churn: segments of exited threads are not reused?\n",
            early, fin);
    test_failures++;
  }
  pthread_mutex_lock(&pool.mu);
  while (pool.count) {
    void *p = pool.blk[--pool.count];
    blk_check(p, "c final");
    free(p);
  }
  pthread_mutex_unlock(&pool.mu);
}

/* ---- d: fork while other threads allocate ---------------------------- */
#define D_WORKERS 4
#define D_SLOTS 256
static _Atomic(unsigned char *) d_slots[D_SLOTS];
static atomic_bool d_stop;
static atomic_long d_worker_ops;
static atomic_int d_atfork_calls;

static void *fork_worker(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  uint64_t rng = 0xf00dull * (id + 7);
  uint32_t it = 0;
  while (!atomic_load_explicit(&d_stop, memory_order_relaxed)) {
    uint64_t r = test_rand(&rng);
    size_t n;
    switch (r % 512) {
      case 0: n = 2 * MiB + 4096 + (r >> 12) % (2 * MiB); break;   /* huge */
      case 1: case 2: case 3: case 4: n = 128 * KiB + (r >> 12) % (1900 * KiB); break; /* large */
      default: n = rand_size(&rng, 128 * KiB); break;
    }
    unsigned char *p = xmalloc(n);
    blk_fill(p, n, (id << 24) | (it++ & 0xffffff));
    unsigned char *old = atomic_exchange(&d_slots[(r >> 32) % D_SLOTS], p);
    if (old) {
      blk_check(old, "d worker");
      free(old);
    }
    atomic_fetch_add_explicit(&d_worker_ops, 1, memory_order_relaxed);
  }
  return NULL;
}

/* Creates short-lived threads while the main thread forks, so that a fork
 * can catch a thread heap being set up, abandoned or reclaimed. */
static void *spawned(void *arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg;
  void *v[40];
  for (int i = 0; i < 40; i++) {
    size_t n = 16 + (size_t)((seed * 7 + (uint32_t)i * 2909) % (i % 8 == 0 ? 200000 : 2000));
    v[i] = xmalloc(n);
    blk_fill(v[i], n, seed + (uint32_t)i);
  }
  for (int i = 0; i < 40; i += 2) { /* the rest goes to the shared slots */
    blk_check(v[i], "d spawned");
    free(v[i]);
    unsigned char *old = atomic_exchange(&d_slots[(seed + (uint32_t)i) % D_SLOTS], v[i + 1]);
    if (old) {
      blk_check(old, "d spawned");
      free(old);
    }
  }
  return NULL;
}

static void *spawner(void *arg) {
  (void)arg;
  uint32_t k = 0;
  while (!atomic_load_explicit(&d_stop, memory_order_relaxed)) {
    pthread_t t;
    int e = pthread_create(&t, NULL, spawned, (void *)(uintptr_t)(k++));
    if (e) die_errno("pthread_create", e);
    pthread_join(t, NULL);
  }
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  void *v[64];
  for (int i = 0; i < 64; i++) {
    size_t n = 8 + (size_t)i * 997;
    v[i] = malloc(n);
    if (!v[i]) return (void *)1;
    blk_fill(v[i], n, (uint32_t)i + 77);
  }
  void *h = malloc(3 * MiB);
  if (!h) return (void *)1;
  blk_fill(h, 3 * MiB, 5);
  int bad = !blk_ok(h, 0, 0);
  free(h);
  for (int i = 0; i < 64; i++) {
    bad |= !blk_ok(v[i], 0, (uint32_t)i + 77);
    free(v[i]);
  }
  return (void *)(uintptr_t)bad;
}

/* Runs in the child: any failure returns non-zero (the exit status). */
static int child_work(int depth) {
  alarm(20); /* a deadlock kills the child (SIGALRM) instead of hanging */
  static const size_t sizes[] = {8, 16, 24, 100, 512, 1000, 4000, 9000, 40 * 1024, 100 * 1024,
                                 200 * 1024, 700 * 1024, 1536 * 1024, 2 * 1024 * 1024,
                                 3 * 1024 * 1024, 6 * 1024 * 1024};
  enum { NS = sizeof sizes / sizeof sizes[0], REP = 24 };
  void *blk[NS * REP] = {0};
  /* every scale at once, before anything else (one of each big one) */
  for (int k = 0; k < REP; k++)
    for (int s = 0; s < NS; s++) {
      size_t n = sizes[s] + (size_t)k * 8;
      if (n > 128 * KiB && k >= 1) continue;
      void *p = malloc(n);
      if (!p) return 10;
      blk_fill(p, n, (uint32_t)(s * 100 + k));
      blk[k * NS + s] = p;
    }
  /* free some blocks the parent's worker threads allocated */
  for (int i = 0; i < 16; i++) {
    unsigned char *p = atomic_exchange(&d_slots[i * 13 % D_SLOTS], NULL);
    if (p) {
      if (!blk_ok(p, 0, 0)) return 11;
      free(p);
    }
  }
  for (int i = 0; i < NS * REP; i++) {
    if (!blk[i]) continue;
    size_t n = sizes[i % NS] + (size_t)(i / NS) * 8;
    if (!blk_ok(blk[i], n, (uint32_t)((i % NS) * 100 + i / NS))) return 12;
    if (i % 3 == 0) {
      void *p = realloc(blk[i], n * 2 + 1);
      if (!p) return 13;
      blk[i] = p;
    }
    free(blk[i]);
  }
  void *a = NULL;
  if (posix_memalign(&a, 4096, 5000)) return 14;
  free(a);
  char *z = calloc(1000, 1000);
  if (!z || z[0] || z[999999]) return 15;
  free(z);
  /* many small ones */
  void *many[2000];
  for (int i = 0; i < 2000; i++)
    if (!(many[i] = malloc(16 + (size_t)(i % 200)))) return 16;
  for (int i = 0; i < 2000; i++) free(many[i]);
  pthread_t t;
  if (pthread_create(&t, NULL, child_thread, NULL)) return 17;
  void *tr = (void *)1;
  pthread_join(t, &tr);
  if (tr) return 18;
  if (depth == 0 && (atomic_load(&d_atfork_calls) & 1)) {
    /* a grandchild, forked by a child that has a thread heap of its own */
    pid_t g = fork();
    if (g < 0) return 19;
    if (g == 0) _exit(child_work(1));
    int st;
    if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 20;
  }
  return 0;
}

static void atfork_prepare(void) {
  void *p = malloc(100);
  if (p) free(p);
  atomic_fetch_add(&d_atfork_calls, 1);
}
static void atfork_parent(void) {
  void *p = malloc(5000);
  if (p) free(p);
}
static void atfork_child(void) {
  void *p = malloc(200);
  if (p) free(p);
}

static void part_d(void) {
  int nforks = scale(50, 6);
  int e;
  if ((e = pthread_atfork(atfork_prepare, atfork_parent, atfork_child))) die_errno("pthread_atfork", e);
  pthread_t t[D_WORKERS], sp;
  for (int i = 0; i < D_WORKERS; i++)
    if ((e = pthread_create(&t[i], NULL, fork_worker, (void *)(uintptr_t)i))) die_errno("pthread_create", e);
  if ((e = pthread_create(&sp, NULL, spawner, NULL))) die_errno("pthread_create", e);
  uint64_t rng = 42;
  int ok = 0;
  double child_timeout = small_scale ? 200.0 : 20.0;
  for (int i = 0; i < nforks; i++) {
    struct timespec ts = {0, (long)(500000 + test_rand(&rng) % 3000000)};
    nanosleep(&ts, NULL);
    pid_t pid = fork();
    if (pid < 0) die_errno("fork", errno);
    if (pid == 0) _exit(child_work(0));
    /* wait with a timeout: a deadlocked child fails, it does not hang us */
    double t0 = now_sec();
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0) {
      if (now_sec() - t0 > child_timeout) {
        fprintf(stderr, "d: child %d (fork %d) still running after %.0fs: deadlocked after fork? killing it\n",
                (int)pid, i, child_timeout);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        w = -2;
        test_failures++;
        break;
      }
      struct timespec sl = {0, 1000000};
      nanosleep(&sl, NULL);
    }
    if (w == -2) continue;
    if (w != pid) die_errno("waitpid", errno);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      ok++;
    } else {
      if (WIFEXITED(st))
        fprintf(stderr, "d: child of fork %d exited with status %d\n", i, WEXITSTATUS(st));
      else
        fprintf(stderr, "d: child of fork %d killed by signal %d (%s)\n", i, WTERMSIG(st), strsignal(WTERMSIG(st)));
      test_failures++;
    }
  }
  atomic_store(&d_stop, true);
  for (int i = 0; i < D_WORKERS; i++) pthread_join(t[i], NULL);
  pthread_join(sp, NULL);
  for (int i = 0; i < D_SLOTS; i++) {
    unsigned char *p = atomic_exchange(&d_slots[i], NULL);
    if (p) {
      blk_check(p, "d final");
      free(p);
    }
  }
  printf("d: %d/%d forked children allocated and exited cleanly; workers did %ld operations\n", ok, nforks,
         atomic_load(&d_worker_ops));
}

/* ---- e: a long-lived thread beside a thread per round ------------------ */
#define E_SLOTS 1000
static _Atomic(unsigned char *) e_slots[E_SLOTS];

static void e_work(uint32_t id, int allocs) {
  uint64_t rng = 0x5eedull * (id + 3);
  enum { RING = 2048 };
  unsigned char *ring[RING] = {0};
  for (int i = 0; i < allocs; i++) {
    uint64_t r = test_rand(&rng);
    size_t n = 8 + (size_t)(r % 505);         /* 8 B .. 512 B: ~40 classes, some seldom used */
    unsigned big = (unsigned)((r >> 8) % 1000);
    if (big == 0) n *= 1000;                  /* 0.1%: up to 512 KiB */
    else if (big < 11) n *= 100;              /* 1%: up to 50 KiB */
    unsigned char *p = xmalloc(n);
    blk_fill(p, n, (uint32_t)(r >> 16));
    unsigned char *old;
    if ((r >> 20) % 4 == 0) /* a quarter goes to the shared array */
      old = atomic_exchange(&e_slots[(r >> 24) % E_SLOTS], p);
    else {
      size_t k = (size_t)(r >> 24) % RING;
      old = ring[k];
      ring[k] = p;
    }
    if (old) {
      blk_check(old, "e");
      free(old);
    }
  }
  for (size_t k = 0; k < RING; k++)
    if (ring[k]) {
      blk_check(ring[k], "e ring");
      free(ring[k]);
    }
}

static void *e_thread(void *arg) {
  e_work((uint32_t)(uintptr_t)arg, 20000);
  return NULL;
}

/* What the allocator holds: the address space ebb maps (a new segment per
 * round shows there at once, before its pages are written), else RSS. */
#ifdef EBB_TEST_GLIBC
#define E_HELD_NAME "RSS"
static size_t e_held(void) { return test_rss(); }
#else
#define E_HELD_NAME "ebb's mapped memory"
static size_t e_held(void) {
  ebb_stats_t st;
  ebb_stats_get(&st);
  return st.mapped_bytes;
}
#endif

static void part_e(void) {
  int rounds = scale(120, 10);
  int early_at = rounds / 10;
  ebb_collect(true);
  size_t early = 0, fin = 0;
  for (int r = 0; r < rounds; r++) {
    pthread_t t;
    int e;
    if ((e = pthread_create(&t, NULL, e_thread, (void *)(uintptr_t)(r + 1)))) die_errno("pthread_create", e);
    e_work(0, 20000); /* the long-lived thread works beside it (e_work frees its ring) */
    pthread_join(t, NULL);
    size_t held = e_held();
    if (r + 1 == early_at) early = held;
    if (r + 1 > early_at && held > fin) fin = held;
  }
  size_t limit = early + early / 2 + 8 * MiB;
  printf("e: %d rounds of a new thread beside the main one; %s after %d rounds %.1f MiB, highest after that %.1f MiB "
         "(limit %.1f MiB)\n",
         rounds, E_HELD_NAME, early_at, (double)early / MiB, (double)fin / MiB, (double)limit / MiB);
  if (fin > limit) {
    fprintf(stderr, "e: %s grew from %zu to %zu bytes: exited threads' segments hoarded by the long-lived one?\n",
            E_HELD_NAME, early, fin);
    test_failures++;
  }
  for (int i = 0; i < E_SLOTS; i++) {
    unsigned char *p = atomic_exchange(&e_slots[i], NULL);
    if (p) {
      blk_check(p, "e final");
      free(p);
    }
  }
}

/* ---- f: a quiet thread's blocks go back to its pages ------------------ */
#define F_BLOCKS 2000
static unsigned char *f_blocks[F_BLOCKS];
static atomic_bool f_stop;

static int f_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (unsigned char *const *)a, y = (uintptr_t) * (unsigned char *const *)b;
  return x < y ? -1 : x > y;
}

/* Frees what the purger decays meanwhile, so that it keeps making passes
 * (it marks a thread quiet after four passes without its slow path). */
static void *f_churner(void *arg) {
  (void)arg;
  while (!atomic_load(&f_stop)) {
    unsigned char *p = xmalloc(48 * KiB);
    memset(p, 1, 48 * KiB);
    free(p);
    struct timespec sl = {0, 20000000};
    nanosleep(&sl, NULL);
  }
  return NULL;
}

static void *f_freer(void *arg) {
  int *reused = arg;
  free(xmalloc(64)); /* this thread's heap first */
  static unsigned char *mine[F_BLOCKS];
  for (int i = 0; i < F_BLOCKS; i++) { /* one freed, one made, as larson's workers do */
    blk_check(f_blocks[i], "f");
    free(f_blocks[i]);
    mine[i] = xmalloc(64);
    blk_fill(mine[i], 64, (uint32_t)i);
    if (bsearch(&mine[i], f_blocks, F_BLOCKS, sizeof f_blocks[0], f_cmp)) (*reused)++;
  }
  for (int i = 0; i < F_BLOCKS; i++) free(mine[i]);
  return NULL;
}

static void part_f(void) {
  /* This thread's cache of other threads' blocks (earlier parts filled it)
   * goes back first: the blocks below are to be of its own pages. */
  ebb_collect(true);
  for (int i = 0; i < F_BLOCKS; i++) {
    f_blocks[i] = xmalloc(64);
    blk_fill(f_blocks[i], 64, (uint32_t)i + 7);
  }
  qsort(f_blocks, F_BLOCKS, sizeof f_blocks[0], f_cmp); /* the addresses stay valid: only compared */
  pthread_t churner, freer;
  int e, reused = 0;
  atomic_store(&f_stop, false);
  if ((e = pthread_create(&churner, NULL, f_churner, NULL))) die_errno("pthread_create", e);
  struct timespec sl = {1, 0}; /* this thread sleeps: quiet after four passes */
  nanosleep(&sl, NULL);
  if ((e = pthread_create(&freer, NULL, f_freer, &reused))) die_errno("pthread_create", e);
  pthread_join(freer, NULL);
  atomic_store(&f_stop, true);
  pthread_join(churner, NULL);
  printf("f: %d of %d blocks a sleeping thread made came back to the thread that freed them\n", reused,
         F_BLOCKS);
#ifndef EBB_TEST_GLIBC
  /* Not at small scale (valgrind): there the purger's passes are not
   * bound to come four times in a second. */
  if (reused > 8 && !small_scale) {
    fprintf(stderr, "f: %d blocks of a quiet thread's pages were reused by the thread that freed them\n", reused);
    test_failures++;
  }
#endif
}

/* ---- main ------------------------------------------------------------ */
static const char *volatile current_part = "startup";

static void on_alarm(int sig) {
  (void)sig;
  const char *m1 = "t_threads: watchdog timeout in part ";
  const char *m2 = current_part;
  if (write(2, m1, strlen(m1)) < 0 || write(2, m2, strlen(m2)) < 0 || write(2, "\n", 1) < 0) _exit(2);
  _exit(2);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const char *sc = getenv("EBB_TEST_SCALE");
  small_scale = sc && strcmp(sc, "small") == 0;
  const char *to = getenv("EBB_TEST_TIMEOUT");
  unsigned timeout = to ? (unsigned)atoi(to) : 300;
  signal(SIGALRM, on_alarm);
  alarm(timeout);
  const char *parts = argc > 1 ? argv[1] : "abcdef";

  /* Prove the malloc family is ebb's: ebb_usable_size aborts on a pointer
   * ebb did not hand out (e.g. one from valgrind's replacement malloc). */
  void *probe = malloc(100);
  CHECK(probe && ebb_usable_size(probe) >= 100);
  free(probe);
  printf("t_threads: scale %s, malloc is %s\n", small_scale ? "small" : "full",
         EBB_IN_USE ? "ebb's (ebb_usable_size accepted a malloc pointer)" : "glibc's (EBB_TEST_GLIBC)");

  static const struct {
    char name;
    void (*fn)(void);
  } all[] = {/* churn first: its RSS baseline should not include what the
               * exited threads of a and b left behind */
              {'c', part_c}, {'a', part_a}, {'b', part_b}, {'d', part_d}, {'e', part_e}, {'f', part_f}};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (!strchr(parts, all[i].name)) continue;
    static char nm[2];
    nm[0] = all[i].name;
    current_part = nm;
    double t0 = now_sec();
    all[i].fn();
    printf("   part %c took %.2fs\n", all[i].name, now_sec() - t0);
  }
  alarm(0);
  TEST_DONE();
}
