/* A program with known allocation sites, for the heap profiler's test
 * (t_prof.sh) and the README's example: one site leaks steadily, one
 * fragments (allocates many small blocks and frees 15 of every 16), one
 * churns (allocates and frees at once, holding nothing).  Halfway and at
 * the end it asks ebb for a dump (when ebb is there: looked up with dlsym,
 * so the program also runs under any other malloc), and it prints what
 * each site really holds, for the test to compare.
 *
 *   prof_sites OUT_PREFIX [--start | --small]
 * writes OUT_PREFIX.1.heap and OUT_PREFIX.2.heap; --start turns sampling
 * on with ebb_prof_start(32 KiB) first (no EBB_PROF needed). */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink; /* keeps the compiler from dropping the churn */

static uint64_t rng = 88172645463325252ull;
static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

#define LEAK_MAX 400000
static void *leaked[LEAK_MAX];
static size_t leak_count, leak_bytes;

__attribute__((noinline)) void leak_site(size_t size) {
  char *p = malloc(size);
  memset(p, 1, size);
  if (leak_count < LEAK_MAX) leaked[leak_count++] = p;
  leak_bytes += size;
}

#define FRAG_MAX 400000
static void *frag[FRAG_MAX];
static size_t frag_count, frag_bytes;

__attribute__((noinline)) void fragment_site(void) {
  for (int i = 0; i < 4096 && frag_count < FRAG_MAX; i++) {
    char *p = malloc(64);
    p[0] = 1;
    frag[frag_count++] = p;
  }
}

__attribute__((noinline)) void fragment_release(size_t from) {
  for (size_t i = from; i < frag_count; i++) {
    if (i % 16 == 0) {
      frag_bytes += 64;
      continue;
    }
    free(frag[i]);
    frag[i] = NULL;
  }
}

__attribute__((noinline)) void churn_site(size_t size) {
  char *p = malloc(size);
  p[0] = 1;
  sink = p;
  free(p);
}

static void dump(const char *prefix, int n) {
  int (*prof_dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "ebb_prof_dump");
  if (prof_dump == NULL) return;
  char path[512];
  snprintf(path, sizeof path, "%s.%d.heap", prefix, n);
  if (prof_dump(path) != 0) perror("ebb_prof_dump");
}

int main(int argc, char **argv) {
  const char *prefix = argc > 1 ? argv[1] : "prof_sites";
  /* --small: leak_site leaks 17-byte blocks (a 32-byte class: the weights
   * must come from the bytes the class charges, or they read twice the
   * truth) */
  bool small = argc > 2 && strcmp(argv[2], "--small") == 0;
  if (argc > 2 && strcmp(argv[2], "--start") == 0) {
    int (*start)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "ebb_prof_start");
    if (start == NULL || start(32768) != 0) {
      fprintf(stderr, "prof_sites: no ebb_prof_start\n");
      return 2;
    }
  }
  for (int phase = 1; phase <= 2; phase++) {
    for (int round = 0; round < 50; round++) {
      size_t before = frag_count;
      fragment_site();
      if (small)
        for (int i = 0; i < 4000; i++) leak_site(17);
      else
        for (int i = 0; i < 200; i++) leak_site(256 + next_random() % 3841); /* 256 B - 4 KiB */
      for (int i = 0; i < 4000; i++) churn_site(16 + next_random() % 8192);
      fragment_release(before);
    }
    dump(prefix, phase);
    printf("phase %d: leak_site %zu bytes in %zu blocks; fragment_site %zu bytes live\n", phase,
           leak_bytes, leak_count, frag_bytes);
    fflush(stdout);
  }
  /* read what was leaked, so that the compiler keeps the allocations */
  unsigned sum = 0;
  for (size_t i = 0; i < leak_count; i++) sum += ((unsigned char *)leaked[i])[0];
  return sum == leak_count ? 0 : 1;
}
