/* ebb_stats_get against what this thread did: live bytes equal the sum of
 * malloc_usable_size of the blocks held, exactly (small, medium, large and
 * huge blocks), after allocating, after freeing half and after freeing all
 * (back to the baseline); per-class live blocks; the counters grow by at
 * least what was done; malloc_trim(0) gives memory back.  Then snprintf's
 * contract of ebb_stats_json and ebb_stats_prometheus, remote frees, a
 * large block's growth by realloc into a mapping of its own, and exact
 * counts for medium blocks that pass through the thread's medium cache.
 * Linked with build/libebb.so (the malloc family is ebb's). */
#include <malloc.h>
#include <pthread.h>

#include "ebb.h"
#include "testutil.h"

#define SMALL_SIZE 48
#define NSMALL 1000
#define MIB ((size_t)1 << 20)

/* The other sizes: one of each, small to huge (above 2 MiB). */
static const size_t other_sizes[] = {
    1,       8,          100,           1000,          5000,       20000,
    100000,  500000,     1500000,       2 * MIB,       3 * MIB + 1, 5 * MIB,
    12 * MIB + 4089,
};
#define NOTHER (sizeof other_sizes / sizeof other_sizes[0])
#define NBLOCKS (NSMALL + NOTHER)

static void *blocks[NBLOCKS];
static size_t requested[NBLOCKS];
/* Snapshots are ~7 KiB each: static, and the stats functions use the stack. */
static ebb_stats_t base, st, peak;

static int is_huge(size_t n) { return n > 2 * MIB; }

static void snapshot(ebb_stats_t *s) { ebb_stats_get(s); }

/* Sum of the usable sizes of the blocks still held; and of the requested
 * sizes of the huge ones; and how many are huge. */
static size_t held_usable(size_t *huge_requested, size_t *huge_count) {
  size_t sum = 0, hr = 0, hc = 0;
  for (size_t i = 0; i < NBLOCKS; i++) {
    if (!blocks[i]) continue;
    sum += malloc_usable_size(blocks[i]);
    if (is_huge(requested[i])) {
      hr += requested[i];
      hc++;
    }
  }
  *huge_requested = hr;
  *huge_count = hc;
  return sum;
}

static size_t held_small(void) {
  size_t n = 0;
  for (size_t i = 0; i < NSMALL; i++) n += blocks[i] != NULL;
  return n;
}

/* The index of the class whose blocks are `block_size` bytes, or -1. */
static int class_index(const ebb_stats_t *s, size_t block_size) {
  for (int i = 1; i < EBB_STATS_CLASSES; i++)
    if (s->classes[i].block_size == block_size) return i;
  return -1;
}

/* What must hold in any snapshot taken while one thread runs. */
static void check_consistent(const ebb_stats_t *s, const char *when) {
  size_t class_live = 0;
  size_t prev_block = 0;
  int bad = 0;
  for (int i = 0; i < EBB_STATS_CLASSES; i++) {
    const ebb_class_stats_t *c = &s->classes[i];
    class_live += c->live_bytes;
    if (i == 0) {
      CHECK(c->block_size == 0);
      continue;
    }
    if (c->live_blocks && c->live_bytes != c->live_blocks * c->block_size) bad++;
    if (c->pages || c->live_blocks || c->allocs) {
      if (c->block_size <= prev_block) bad++;
      prev_block = c->block_size;
    }
    if (c->live_blocks && !c->pages) bad++;
  }
  if (bad) fprintf(stderr, "%s: %d inconsistent classes\n", when, bad);
  CHECK(bad == 0);
  if (class_live != s->live_bytes)
    fprintf(stderr, "%s: classes' live bytes sum to %zu, live_bytes is %zu\n", when, class_live,
            s->live_bytes);
  CHECK(class_live == s->live_bytes);
  CHECK(s->classes[0].live_blocks == s->huge_blocks);
  CHECK(s->resident_bytes >= s->live_bytes);
  CHECK(s->free_resident_bytes <= s->resident_bytes);
  CHECK(s->mapped_bytes >= s->resident_bytes + s->retained_bytes);
  CHECK(s->page_bytes >= s->live_bytes - s->classes[0].live_bytes); /* blocks sit in pages */
  CHECK(s->rss_bytes > 0);
  CHECK(s->threads >= 1);
  CHECK(s->frees <= s->allocs);
}

/* live_bytes went from the baseline's by exactly what is held now. */
static void check_live(const ebb_stats_t *now, const char *when) {
  size_t huge_req, huge_count;
  size_t want = held_usable(&huge_req, &huge_count);
  size_t got = now->live_bytes - base.live_bytes;
  printf("%s: live_bytes %+zd (held %zu), huge blocks %zu, resident %zu MiB, rss %zu MiB\n", when,
         (ssize_t)got, want, huge_count, now->resident_bytes >> 20, now->rss_bytes >> 20);
  if (got != want)
    fprintf(stderr, "%s: live_bytes grew by %zu, the blocks held have %zu usable bytes\n", when,
            got, want);
  CHECK(got == want);
  CHECK(now->huge_blocks - base.huge_blocks == huge_count);
  CHECK(now->classes[0].live_blocks - base.classes[0].live_blocks == huge_count);
  if (now->huge_requested_bytes - base.huge_requested_bytes != huge_req)
    fprintf(stderr, "%s: huge_requested_bytes grew by %zu, want %zu\n", when,
            now->huge_requested_bytes - base.huge_requested_bytes, huge_req);
  CHECK(now->huge_requested_bytes - base.huge_requested_bytes == huge_req);
  int ci = class_index(now, SMALL_SIZE);
  CHECK(ci > 0);
  if (ci > 0) {
    size_t live = now->classes[ci].live_blocks - base.classes[ci].live_blocks;
    if (live != held_small())
      fprintf(stderr, "%s: class %d (%d B) has %zu more live blocks, want %zu\n", when, ci,
              SMALL_SIZE, live, held_small());
    CHECK(live == held_small());
    CHECK(now->classes[ci].live_bytes - base.classes[ci].live_bytes == held_small() * SMALL_SIZE);
    if (held_small()) CHECK(now->classes[ci].pages >= 1);
  }
  check_consistent(now, when);
}

static void test_live_bytes(void) {
  /* Warm up: the thread's heap, stdout's buffer, the background purger
   * (whatever ebb starts lazily) exist before the baseline. */
  printf("t_stats\n");
  fflush(stdout);
  for (size_t i = 0; i < NBLOCKS; i++)
    blocks[i] = malloc(i < NSMALL ? SMALL_SIZE : other_sizes[i - NSMALL]);
  for (size_t i = 0; i < NBLOCKS; i++) free(blocks[i]);
  memset(blocks, 0, sizeof blocks);
  snapshot(&st);
  snapshot(&base);
  check_consistent(&base, "baseline");

  /* allocate: NSMALL blocks of one class, then one of each other size */
  int ci = class_index(&base, SMALL_SIZE);
  CHECK(ci > 0);
  for (size_t i = 0; i < NBLOCKS; i++) {
    requested[i] = i < NSMALL ? SMALL_SIZE : other_sizes[i - NSMALL];
    blocks[i] = malloc(requested[i]);
    CHECK(blocks[i] != NULL);
    if (blocks[i]) memset(blocks[i], 0x5a, requested[i]); /* resident, really */
  }
  snapshot(&peak);
  check_live(&peak, "after malloc");
  CHECK(malloc_usable_size(blocks[0]) == SMALL_SIZE);
  CHECK(peak.allocs - base.allocs >= NBLOCKS);
  CHECK(peak.huge_blocks - base.huge_blocks == 3);
  if (ci > 0) CHECK(peak.classes[ci].allocs - base.classes[ci].allocs >= NSMALL);
  CHECK(peak.classes[0].allocs - base.classes[0].allocs >= 3);
  CHECK(peak.segments >= 1);
  CHECK(peak.mmap_calls > 0);

  /* free every other block (half the small ones, some huge ones) */
  size_t freed = 0;
  for (size_t i = 0; i < NBLOCKS; i += 2) {
    free(blocks[i]);
    blocks[i] = NULL;
    freed++;
  }
  snapshot(&st);
  check_live(&st, "after freeing half");
  CHECK(st.frees - peak.frees >= freed);
  CHECK(st.allocs >= peak.allocs);
  if (ci > 0) CHECK(st.classes[ci].frees - peak.classes[ci].frees >= NSMALL / 2);

  /* free the rest and give memory back */
  for (size_t i = 0; i < NBLOCKS; i++) {
    free(blocks[i]);
    blocks[i] = NULL;
  }
  malloc_trim(0);
  snapshot(&st);
  check_live(&st, "after freeing all and malloc_trim(0)");
  if (st.live_bytes != base.live_bytes)
    fprintf(stderr, "live_bytes %zu, baseline %zu\n", st.live_bytes, base.live_bytes);
  CHECK(st.live_bytes == base.live_bytes);
  CHECK(st.huge_blocks == base.huge_blocks);
  CHECK(st.huge_requested_bytes == base.huge_requested_bytes);
  CHECK(st.frees - base.frees >= NBLOCKS);
  /* malloc_trim(0) purged: the huge blocks (20 MiB) and the freed pages */
  printf("resident %zu -> %zu KiB, free resident %zu KiB, purged %llu -> %llu KiB\n",
         peak.resident_bytes >> 10, st.resident_bytes >> 10, st.free_resident_bytes >> 10,
         peak.purged_bytes >> 10, st.purged_bytes >> 10);
  CHECK(st.resident_bytes + 20 * MIB <= peak.resident_bytes);
  CHECK(st.free_resident_bytes <= 2 * MIB);
  CHECK(st.purged_bytes > peak.purged_bytes);
  CHECK(st.purge_calls > peak.purge_calls);
}

/* snprintf's contract.  RSS may change between two snapshots (and with it
 * the length of a number), so a mismatch is retried a few times. */
static char full[1 << 20], small[64];
static void check_format(size_t (*fmt)(char *, size_t), const char *name) {
  int same = 0;
  for (int attempt = 0; attempt < 10 && !same; attempt++) {
    size_t need = fmt(NULL, 0);
    size_t got = fmt(full, sizeof full);
    CHECK(need > 0 && got < sizeof full);
    CHECK(strlen(full) == got); /* the whole text, NUL-terminated */
    same = need == got;
  }
  if (!same) fprintf(stderr, "%s(NULL, 0) never returned the length of the text\n", name);
  CHECK(same);
  size_t len = strlen(full);
  for (size_t size = 1; size <= 40; size += 13) {
    memset(small, 'Z', sizeof small);
    size_t r = fmt(small, size);
    CHECK(r + 8 >= len && r <= len + 8); /* the full length, not what fit */
    CHECK(small[size - 1] == '\0');
    CHECK(strlen(small) == size - 1);
    CHECK(memcmp(small, full, size - 1) == 0);
    for (size_t k = size; k < sizeof small; k++) CHECK(small[k] == 'Z');
  }
  printf("%s: %zu bytes\n", name, len);
}

static void test_formats(void) {
  check_format(ebb_stats_json, "ebb_stats_json");
  ebb_stats_json(full, sizeof full);
  CHECK(full[0] == '{' && full[strlen(full) - 1] == '}');
  CHECK(strchr(full, '\n') == NULL);
  CHECK(strstr(full, "\"live_bytes\":") != NULL);
  CHECK(strstr(full, "\"classes\":[{") != NULL);
  check_format(ebb_stats_prometheus, "ebb_stats_prometheus");
  ebb_stats_prometheus(full, sizeof full);
  CHECK(strncmp(full, "# HELP ebb_", 11) == 0);
  CHECK(full[strlen(full) - 1] == '\n');
  CHECK(strstr(full, "\nebb_live_bytes ") != NULL);
  CHECK(strstr(full, "\nebb_allocs_total ") != NULL);
}

/* Frees from another thread count as remote frees. */
#define NREMOTE 200
static void *remote[NREMOTE];
static void *free_them(void *arg) {
  (void)arg;
  for (int i = 0; i < NREMOTE; i++) free(remote[i]);
  return NULL;
}

static void test_remote_frees(void) {
  for (int i = 0; i < NREMOTE; i++) remote[i] = malloc(64);
  snapshot(&base);
  pthread_t t;
  pthread_create(&t, NULL, free_them, NULL);
  pthread_join(t, NULL);
  snapshot(&st);
  /* Blocks freed by another thread may count as live until their owner
   * collects its pages; ebb_collect merges this thread's pending frees. */
  ebb_collect(false);
  snapshot(&st);
  printf("after ebb_collect(false): frees %+lld, live bytes %+lld\n",
         (long long)(st.frees - base.frees), (long long)st.live_bytes - (long long)base.live_bytes);
  CHECK(st.frees - base.frees >= NREMOTE);
  /* Remote frees count when the owner takes them in. */
  printf("remote frees %llu -> %llu\n", base.remote_frees, st.remote_frees);
  CHECK(st.remote_frees - base.remote_frees >= NREMOTE);
  /* (the thread itself may leave a few bytes behind, such as its TLS) */
  CHECK(base.live_bytes - st.live_bytes + 4096 >= NREMOTE * 64);
}

/* rss_bytes follows the memory the program touches, in bytes whatever the
 * page size (t_aarch64.sh runs this under qemu at 16 and 64 KiB pages,
 * where /proc counts the host's 4 KiB pages). */
static void test_rss_tracks_touched_memory(void) {
  const size_t size = (size_t)64 << 20;
  ebb_stats_t before, after;
  ebb_stats_get(&before);
  char *p = malloc(size);
  CHECK(p != NULL);
  memset(p, 1, size);
  ebb_stats_get(&after);
  size_t grew = after.rss_bytes > before.rss_bytes ? after.rss_bytes - before.rss_bytes : 0;
  printf("rss: %zu MiB before, %zu MiB after touching 64 MiB\n", before.rss_bytes >> 20,
         after.rss_bytes >> 20);
  CHECK(grew >= size - size / 8);
  CHECK(grew <= size + size / 4);
  free(p);
}

/* A large block realloc'd larger a second time moves to a mapping of its
 * own (one huge block more), which later growths extend in place of
 * copying it into larger classes; contents survive every step, and a
 * shrink to a small size gives the mapping up. */
static bool secure_build_mapped(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, "libebb-secure") != NULL;
  if (f) fclose(f);
  return found;
}

static void test_realloc_growth(void) {
  static const size_t steps[] = {100000, 200000, 400000, 900000, 1900000};
  /* Neither in the secure build (no guard page after a huge block) nor
   * while the heap profiler samples: there the block stays in the classes. */
  bool moves = !secure_build_mapped() && ebb_option_get("prof") == 0;
  snapshot(&base);
  unsigned char *p = NULL;
  size_t have = 0;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    unsigned char *q = realloc(p, steps[i]);
    CHECK(q != NULL);
    if (q == NULL) {
      free(p);
      return;
    }
    for (size_t k = 0; k < have; k += 4093) CHECK(q[k] == (unsigned char)(k * 7 + 1));
    for (size_t k = have; k < steps[i]; k++) q[k] = (unsigned char)(k * 7 + 1);
    p = q;
    have = steps[i];
    snapshot(&st);
    size_t want = moves && i >= 2 ? 1 : 0; /* 100000: medium, 200000: large, then its own mapping */
    printf("realloc to %zu: huge blocks %+lld\n", steps[i], (long long)(st.huge_blocks - base.huge_blocks));
    CHECK(st.huge_blocks - base.huge_blocks == want);
  }
  p = realloc(p, 1000);
  CHECK(p != NULL);
  for (size_t k = 0; k < 1000; k += 7) CHECK(p[k] == (unsigned char)(k * 7 + 1));
  snapshot(&st);
  CHECK(st.huge_blocks == base.huge_blocks);
  free(p);
}

/* Medium blocks up to 32 KiB go through each thread's medium cache
 * (alloc.c) on their way to and from the shared heaps.  A block held there
 * is free: live blocks and allocation counts must be exact whatever the
 * cache holds.  Several rounds of allocating and freeing many blocks of two
 * classes (12 and 30 KiB), one round partial. */
static void test_medium_cache_counts(void) {
  enum { N = 24 };
  static const size_t sizes[2] = {12 << 10, 30 << 10};
  void *held[2][N];
  snapshot(&base);
  int ci[2] = {class_index(&base, sizes[0]), class_index(&base, sizes[1])};
  CHECK(ci[0] > 0 && ci[1] > 0);
  if (ci[0] <= 0 || ci[1] <= 0) return;
  size_t allocs = 0;
  for (int round = 0; round < 3; round++) {
    size_t keep = round == 1 ? N / 3 : N; /* a partial round */
    for (int k = 0; k < 2; k++)
      for (size_t i = 0; i < keep; i++) {
        held[k][i] = malloc(sizes[k]);
        CHECK(held[k][i] != NULL);
        if (held[k][i]) memset(held[k][i], 0x33, sizes[k]);
      }
    allocs += keep;
    snapshot(&st);
    for (int k = 0; k < 2; k++) {
      size_t live = st.classes[ci[k]].live_blocks - base.classes[ci[k]].live_blocks;
      size_t made = st.classes[ci[k]].allocs - base.classes[ci[k]].allocs;
      if (live != keep || made != allocs)
        fprintf(stderr, "round %d, %zu B: %zu live (want %zu), %zu allocations counted (want %zu)\n",
                round, sizes[k], live, keep, made, allocs);
      CHECK(live == keep);
      CHECK(made == allocs);
    }
    for (int k = 0; k < 2; k++)
      for (size_t i = 0; i < keep; i++) free(held[k][i]);
    snapshot(&st);
    for (int k = 0; k < 2; k++) {
      size_t live = st.classes[ci[k]].live_blocks - base.classes[ci[k]].live_blocks;
      if (live != 0) fprintf(stderr, "round %d, %zu B: %zu live after freeing all\n", round, sizes[k], live);
      CHECK(live == 0);
    }
    check_consistent(&st, "medium cache");
  }
  printf("medium cache: %zu allocations a class, counts exact\n", allocs);
}

int main(void) {
  test_medium_cache_counts();
  test_rss_tracks_touched_memory();
  test_live_bytes();
  test_formats();
  test_remote_frees();
  test_realloc_growth();
  TEST_DONE();
}
