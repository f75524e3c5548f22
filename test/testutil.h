/* Small helpers shared by the tests: a check macro that names the line, and
 * fill patterns that tell one block's bytes from another's. */
#ifndef EBB_TESTUTIL_H
#define EBB_TESTUTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_failures;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      test_failures++;                                                       \
      if (test_failures > 20) abort();                                       \
    }                                                                        \
  } while (0)

/* Fill `n` bytes at p with a pattern derived from `seed`. */
static inline void fill_pattern(void *p, size_t n, uint32_t seed) {
  unsigned char *b = (unsigned char *)p;
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 8));
}

/* 1 if the `n` bytes at p still hold the pattern of `seed`. */
static inline int check_pattern(const void *p, size_t n, uint32_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != (unsigned char)(seed * 31u + i * 7u + (i >> 8))) return 0;
  return 1;
}

/* xorshift64*: a fast deterministic generator for tests. */
static inline uint64_t test_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *state = x;
  return x * 2685821657736338717ull;
}

/* Resident set size of this process in bytes, from /proc/self/statm. */
static inline size_t test_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages_total = 0, pages_res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &pages_total, &pages_res) != 2) pages_res = 0;
    fclose(f);
  }
  return (size_t)pages_res * (size_t)sysconf(_SC_PAGESIZE);
}

#define TEST_DONE()                                                         \
  do {                                                                      \
    if (test_failures) { fprintf(stderr, "%d checks failed\n", test_failures); return 1; } \
    printf("ok\n");                                                         \
    return 0;                                                               \
  } while (0)

#endif
