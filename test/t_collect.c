/* ebb_collect(true) and malloc_trim(0) give back everything free at once:
 * memory freed by this thread, and memory left by threads that exited
 * (their segments are adopted and released). */
#include <malloc.h>
#include <pthread.h>

#include "ebb.h"
#include "testutil.h"

#define THREADS 8
#define BLOCKS 20000
static void *blocks[THREADS][BLOCKS];

static void *worker(void *arg) {
  void **b = arg;
  uint64_t seed = (uintptr_t)arg | 1;
  for (int i = 0; i < BLOCKS; i++) {
    size_t n = 16 + test_rand(&seed) % 2000;
    b[i] = malloc(n);
    memset(b[i], 0x5a, n);
  }
  return NULL;
}

static void burst_from_exited_threads(int use_trim) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, blocks[i]);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  size_t before = test_rss();
  for (int i = 0; i < THREADS; i++)
    for (int j = 0; j < BLOCKS; j++) free(blocks[i][j]);
  if (use_trim) malloc_trim(0);
  else ebb_collect(true);
  size_t after = test_rss();
  printf("%s after exited threads: RSS %zu MiB -> %zu MiB\n",
         use_trim ? "malloc_trim(0)" : "ebb_collect(true)", before >> 20, after >> 20);
  CHECK(before > ((size_t)100 << 20)); /* the burst was real */
  CHECK(after < before / 8);
}

static void burst_on_this_thread(void) {
  enum { N = 400000 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(64 + (i % 7) * 48);
    memset(p[i], 1, 64);
  }
  size_t before = test_rss();
  for (int i = 0; i < N; i++) free(p[i]);
  ebb_collect(true);
  size_t after = test_rss();
  printf("ebb_collect(true) on this thread: RSS %zu MiB -> %zu MiB\n", before >> 20, after >> 20);
  CHECK(after < before / 4);
}

int main(void) {
  burst_from_exited_threads(0);
  burst_from_exited_threads(1);
  burst_on_this_thread();
  /* the allocator still works after giving everything back */
  for (int i = 0; i < 1000; i++) {
    char *q = malloc(100 + i);
    fill_pattern(q, 100 + i, (uint32_t)i);
    CHECK(check_pattern(q, 100 + i, (uint32_t)i));
    free(q);
  }
  TEST_DONE();
}
