/* Out of address space: with RLIMIT_AS set to what the process has mapped,
 * no new mapping can be made, and ebb must answer from the memory it holds:
 *
 *  - threads started under the limit, whose heaps (a 64 KiB mapping per
 *    few heaps) cannot be made, still allocate: the shared heaps serve
 *    them, from the segments' free room (before, every malloc of such a
 *    thread returned NULL);
 *  - a successful malloc leaves errno as it was, though the heap it tried
 *    to make failed;
 *  - a block that needs a new mapping fails with NULL and ENOMEM;
 *  - once the limit is lifted, everything goes on, and the threads' blocks
 *    are freed by whichever thread holds them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "ebb.h"
#include "testutil.h"

enum { THREADS = 16, BLOCKS = 600 };

static pthread_barrier_t start_line, done_line;
static atomic_int failed_allocs, clobbered_errno;
static void *kept[THREADS][BLOCKS];

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t rng = 0x5eed0000u + (uint64_t)id;
  pthread_barrier_wait(&start_line); /* no allocation before the limit is set */
  for (int i = 0; i < BLOCKS; i++) {
    size_t n = 8 + test_rand(&rng) % 505;
    errno = 0;
    void *p = i % 7 == 0 ? calloc(1, n) : malloc(n);
    if (p == NULL) {
      atomic_fetch_add(&failed_allocs, 1);
      continue;
    }
    if (errno != 0) atomic_fetch_add(&clobbered_errno, 1);
    if (i % 7 == 0) CHECK(((unsigned char *)p)[n - 1] == 0);
    fill_pattern(p, n, (uint32_t)(id * BLOCKS + i));
    CHECK(ebb_usable_size(p) >= n);
    if (i % 2) {
      CHECK(check_pattern(p, n, (uint32_t)(id * BLOCKS + i)));
      free(p);
    } else {
      kept[id][i] = p;
    }
  }
  pthread_barrier_wait(&done_line);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  /* Room in the segments: small blocks in this thread's heap, and medium
   * ones (32 classes, so every shared heap is made) in the shared heaps'
   * segments, all freed again. */
  enum { WARM = 4000 };
  static void *warm[WARM];
  for (int i = 0; i < WARM; i++) warm[i] = malloc(i % 2 ? 16 + (size_t)i % 500 : 1024 + (size_t)(i % 32) * 512);
  for (int i = 0; i < WARM; i++) free(warm[i]);

  pthread_t tid[THREADS];
  pthread_barrier_init(&start_line, NULL, THREADS + 1);
  pthread_barrier_init(&done_line, NULL, THREADS + 1);
  for (int i = 0; i < THREADS; i++)
    if (pthread_create(&tid[i], NULL, worker, (void *)(intptr_t)i) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }

  struct rlimit old, capped;
  CHECK(getrlimit(RLIMIT_AS, &old) == 0);
  capped = old;
  capped.rlim_cur = test_statm_bytes(0);
  CHECK(setrlimit(RLIMIT_AS, &capped) == 0);
  /* Proof that the cap holds: nothing new can be mapped. */
  errno = 0;
  void *big = malloc(64 << 20);
  CHECK(big == NULL && errno == ENOMEM);
  free(big);

  pthread_barrier_wait(&start_line);
  pthread_barrier_wait(&done_line);
  CHECK(setrlimit(RLIMIT_AS, &old) == 0);
  for (int i = 0; i < THREADS; i++) pthread_join(tid[i], NULL);
  printf("t_oom: %d threads under RLIMIT_AS = %zu MiB mapped: %d of %d mallocs failed, %d changed errno\n",
         THREADS, (size_t)capped.rlim_cur >> 20, atomic_load(&failed_allocs), THREADS * BLOCKS,
         atomic_load(&clobbered_errno));
  CHECK(atomic_load(&failed_allocs) == 0);
  CHECK(atomic_load(&clobbered_errno) == 0);

  /* The limit lifted: a new mapping again, and every kept block intact. */
  big = malloc(64 << 20);
  CHECK(big != NULL);
  if (big) memset(big, 1, 64 << 20);
  free(big);
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < BLOCKS; i++)
      if (kept[t][i]) free(kept[t][i]);
  TEST_DONE();
}
