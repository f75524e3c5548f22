/* Small helpers shared by the tests: a check macro that names the line, and
 * fill patterns that tell one block's bytes from another's. */
#ifndef EBB_TESTUTIL_H
#define EBB_TESTUTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __GLIBC__
/* glibc declares them in <malloc.h>; ebb defines them everywhere. */
int malloc_trim(size_t pad);
void *pvalloc(size_t size);
#endif

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

/* This process's mapped address space (resident: false) or resident set
 * size (true) in bytes, from /proc/self/statm. */
static inline size_t test_statm_bytes(int resident) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages_total = 0, pages_res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &pages_total, &pages_res) != 2) pages_total = pages_res = 0;
    fclose(f);
  }
  return (size_t)(resident ? pages_res : pages_total) * (size_t)sysconf(_SC_PAGESIZE);
}
static inline size_t test_rss(void) { return test_statm_bytes(1); }

/* Hide a value from the optimiser: no reasoning about where a pointer came
 * from (alloc_size, use-after-free, posix_memalign's untouched *out), and
 * no compile-time size warnings on deliberately bad sizes. */
static inline void *launder(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}
static inline size_t opaque(size_t n) {
  __asm__ volatile("" : "+r"(n));
  return n;
}

/* Read what a child wrote to a pipe (at most cap-1 bytes, NUL-terminated),
 * then close it. */
static inline size_t read_child_output(int fd, char *buf, size_t cap) {
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    if (len == cap - 1) break;
  }
  close(fd);
  buf[len] = 0;
  return len;
}

/* waitpid through EINTR; the status. */
static inline int wait_child(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

#define TEST_DONE()                                                         \
  do {                                                                      \
    if (test_failures) { fprintf(stderr, "%d checks failed\n", test_failures); return 1; } \
    printf("ok\n");                                                         \
    return 0;                                                               \
  } while (0)

#endif
