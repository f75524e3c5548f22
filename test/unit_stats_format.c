/* Unit tests of the statistics' text forms (src/stats_print.c) on made-up
 * snapshots, so every branch is reached whatever the allocator does: the
 * one-line summary, JSON, Prometheus text and the table with its verdict.
 * snprintf's contract is checked at every buffer size.  Linked with
 * build/libebb.a. */
#include "internal.h"
#include "stats_format.h"
#include "testutil.h"

static ebb_stats_t st; /* ~7 KiB: not on the stack */

static void set_class(unsigned i, size_t pages, size_t live_blocks, size_t free_resident,
                      unsigned long long allocs) {
  ebb_class_stats_t *c = &st.classes[i];
  c->pages = pages;
  c->live_blocks = live_blocks;
  c->live_bytes = live_blocks * (i ? class_size(i) : ((size_t)3 << 20));
  c->free_resident_bytes = free_resident;
  c->allocs = allocs;
  c->frees = allocs - live_blocks;
}

/* A snapshot: classes 0 (huge), 1 (8 B), 5 (64 B) and 35 (1.25 KiB) in use. */
static void base_snapshot(void) {
  memset(&st, 0, sizeof st);
  for (unsigned i = 1; i < EBB_STATS_CLASSES; i++) st.classes[i].block_size = class_size(i);
  set_class(0, 2, 2, 0, 5);
  set_class(1, 1, 1000, 0, 1000);
  set_class(5, 3, 2000, 0, 2500);
  set_class(35, 4, 100, 0, 150);
  st.live_bytes = 0;
  for (unsigned i = 0; i < EBB_STATS_CLASSES; i++) st.live_bytes += st.classes[i].live_bytes;
  st.huge_requested_bytes = (size_t)6 << 20;
  st.page_bytes = (size_t)9 << 20;
  st.resident_bytes = st.live_bytes + ((size_t)1 << 20);
  st.free_resident_bytes = (size_t)1 << 20;
  st.retained_bytes = (size_t)3 << 20;
  st.mapped_bytes = (size_t)24 << 20;
  st.rss_bytes = (size_t)30 << 20;
  st.memory_limit = 0;
  st.purged_bytes = 123456789;
  st.allocs = 3655;
  st.frees = 553;
  st.remote_frees = 7;
  st.mmap_calls = 11;
  st.munmap_calls = 2;
  st.purge_calls = 33;
  st.purge_passes = 4;
  st.threads = 3;
  st.segments = 5;
  st.huge_blocks = 2;
}

/* snprintf's contract for a formatter, at every size up to the full
 * length + 2: same return value, the text's prefix, NUL-terminated, and
 * nothing written past `size`. */
static size_t check_contract(size_t (*fmt)(const ebb_stats_t *, char *, size_t), char *full,
                             size_t cap, const char *what) {
  size_t len = fmt(&st, NULL, 0);
  CHECK(len > 0 && len < cap);
  if (len == 0 || len >= cap) return 0;
  size_t got = fmt(&st, full, cap);
  CHECK(got == len);
  CHECK(strlen(full) == len);
  static char part[1 << 16];
  size_t step = len > 4000 ? 7 : 1; /* the long texts: every 7th size */
  for (size_t size = 0; size <= len + 2 && size + 16 < sizeof part; size += step) {
    memset(part, 'Z', size + 16);
    size_t r = fmt(&st, part, size);
    if (r != len) {
      fprintf(stderr, "%s: size %zu returned %zu, want %zu\n", what, size, r, len);
      CHECK(r == len);
    }
    if (size > 0) {
      size_t kept = size - 1 < len ? size - 1 : len;
      CHECK(memcmp(part, full, kept) == 0);
      CHECK(part[kept] == '\0');
    }
    for (size_t k = size; k < size + 16; k++)
      if (part[k] != 'Z') {
        fprintf(stderr, "%s: size %zu wrote byte %zu\n", what, size, k);
        CHECK(part[k] == 'Z');
        break;
      }
  }
  return len;
}

static void test_line(void) {
  static char buf[4096];
  base_snapshot();
  st.live_bytes = (size_t)3 << 19; /* 1.5 MiB */
  st.resident_bytes = (size_t)4 << 20;
  st.free_resident_bytes = (size_t)1 << 20;
  st.rss_bytes = (size_t)10 << 20;
  check_contract(stats_format_line, buf, sizeof buf, "line");
  const char *want = "ebb: live 1.5 MiB, resident 4.0 MiB, free resident 1.0 MiB, rss 10.0 MiB, "
                     "fragmentation 25.0%";
  if (strcmp(buf, want) != 0) fprintf(stderr, "line:\n  got  %s\n  want %s\n", buf, want);
  CHECK(strcmp(buf, want) == 0);
  CHECK(strchr(buf, '\n') == NULL);
  /* rounding carries into the next unit; bytes stay bytes; unknown rss */
  st.live_bytes = ((size_t)1 << 20) - 1;
  st.resident_bytes = 1023;
  st.free_resident_bytes = 0;
  st.rss_bytes = 0;
  stats_format_line(&st, buf, sizeof buf);
  CHECK(strcmp(buf, "ebb: live 1.0 MiB, resident 1023 B, free resident 0 B, rss unknown, "
                    "fragmentation 0.0%") == 0);
  /* a snapshot saying more free than resident still gives at most 100% */
  st.resident_bytes = 1000;
  st.free_resident_bytes = 2000;
  stats_format_line(&st, buf, sizeof buf);
  CHECK(strstr(buf, "fragmentation 100.0%") != NULL);
}

static void test_json(void) {
  static char buf[1 << 16];
  base_snapshot();
  st.resident_bytes = 4000000;
  st.free_resident_bytes = 1000000;
  size_t len = check_contract(stats_format_json, buf, sizeof buf, "json");
  CHECK(len == strlen(buf));
  CHECK(buf[0] == '{' && buf[len - 1] == '}');
  CHECK(strchr(buf, '\n') == NULL);
  static const char *const fields[] = {
      "\"live_bytes\":", "\"huge_requested_bytes\":6291456,", "\"page_bytes\":9437184,",
      "\"resident_bytes\":4000000,", "\"free_resident_bytes\":1000000,",
      "\"retained_bytes\":3145728,", "\"mapped_bytes\":25165824,", "\"rss_bytes\":31457280,",
      "\"memory_limit\":0,", "\"purged_bytes\":123456789,", "\"allocs\":3655,", "\"frees\":553,",
      "\"remote_frees\":7,", "\"mmap_calls\":11,", "\"munmap_calls\":2,", "\"purge_calls\":33,",
      "\"purge_passes\":4,", "\"threads\":3,", "\"segments\":5,", "\"huge_blocks\":2,",
      "\"fragmentation\":0.2500,",
      "\"classes\":[{\"class\":0,\"block_size\":0,\"pages\":2,\"live_blocks\":2,",
      ("{\"class\":5,\"block_size\":64,\"pages\":3,\"live_blocks\":2000,\"live_bytes\":128000,"
       "\"free_resident_bytes\":0,\"allocs\":2500,\"frees\":500}"),
      "{\"class\":35,\"block_size\":1280,"};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (!strstr(buf, fields[i])) {
      fprintf(stderr, "json lacks %s\n", fields[i]);
      CHECK(strstr(buf, fields[i]) != NULL);
    }
  /* only classes in use; braces and brackets balance */
  CHECK(strstr(buf, "\"class\":2,") == NULL);
  int depth = 0, objects = 0;
  for (const char *p = buf; *p; p++) {
    if (*p == '{' || *p == '[') depth++;
    if (*p == '}' || *p == ']') depth--;
    if (strncmp(p, "{\"class\":", 9) == 0) objects++;
    CHECK(depth >= 0);
  }
  CHECK(depth == 0);
  CHECK(objects == 4);
  /* fragmentation: 0 with nothing resident, 1 at most, four decimals */
  st.resident_bytes = 0;
  stats_format_json(&st, buf, sizeof buf);
  CHECK(strstr(buf, "\"fragmentation\":0.0000,") != NULL);
  st.resident_bytes = 3;
  st.free_resident_bytes = 1;
  stats_format_json(&st, buf, sizeof buf);
  CHECK(strstr(buf, "\"fragmentation\":0.3333,") != NULL);
  st.free_resident_bytes = 9;
  stats_format_json(&st, buf, sizeof buf);
  CHECK(strstr(buf, "\"fragmentation\":1.0000,") != NULL);
  /* nothing in use: an empty array */
  memset(&st, 0, sizeof st);
  stats_format_json(&st, buf, sizeof buf);
  CHECK(strstr(buf, "\"classes\":[]}") != NULL);
}

/* Every line is "# HELP name text", "# TYPE name gauge|counter" or a sample
 * "name value" / "name{label="v"} value" of the family last declared, and
 * each family is declared once, HELP then TYPE. */
static void check_prometheus_shape(char *text) {
  char family[128] = "", type[16] = "";
  int expect = 0; /* 0: HELP or sample; 1: TYPE */
  char seen[64][128];
  int nseen = 0;
  for (char *line = text; *line;) {
    char *end = strchr(line, '\n');
    CHECK(end != NULL); /* every line ends with a newline */
    if (!end) return;
    *end = '\0';
    char name[128], rest[256];
    if (strncmp(line, "# HELP ", 7) == 0) {
      CHECK(expect == 0);
      CHECK(sscanf(line + 7, "%127s %255[^\n]", name, rest) == 2);
      CHECK(strncmp(name, "ebb_", 4) == 0);
      for (int i = 0; i < nseen; i++) CHECK(strcmp(seen[i], name) != 0);
      if (nseen < 64) snprintf(seen[nseen++], 128, "%s", name);
      snprintf(family, sizeof family, "%s", name);
      expect = 1;
    } else if (strncmp(line, "# TYPE ", 7) == 0) {
      CHECK(expect == 1);
      CHECK(sscanf(line + 7, "%127s %15s", name, type) == 2);
      CHECK(strcmp(name, family) == 0);
      CHECK(strcmp(type, "gauge") == 0 || strcmp(type, "counter") == 0);
      size_t n = strlen(name);
      /* counters end in _total, gauges do not */
      CHECK((strcmp(type, "counter") == 0) == (n > 6 && strcmp(name + n - 6, "_total") == 0));
      expect = 0;
    } else {
      CHECK(expect == 0 && family[0]);
      size_t n = strlen(family);
      CHECK(strncmp(line, family, n) == 0 && (line[n] == ' ' || line[n] == '{'));
      const char *value = strrchr(line, ' ');
      CHECK(value != NULL);
      if (value) {
        char *stop;
        strtod(value + 1, &stop);
        CHECK(stop != value + 1 && *stop == '\0');
      }
      if (line[n] == '{') {
        const char *close = strchr(line, '}');
        CHECK(close != NULL && close[1] == ' ' && close[-1] == '"');
      }
    }
    line = end + 1;
  }
  CHECK(expect == 0);
}

static void test_prometheus(void) {
  static char buf[1 << 16];
  base_snapshot();
  size_t len = check_contract(stats_format_prometheus, buf, sizeof buf, "prometheus");
  CHECK(len > 0 && buf[len - 1] == '\n');
  static const char *const want[] = {
      "# HELP ebb_live_bytes ", "# TYPE ebb_live_bytes gauge\nebb_live_bytes ",
      "# TYPE ebb_resident_bytes gauge\n", "# TYPE ebb_free_resident_bytes gauge\n",
      "# TYPE ebb_retained_bytes gauge\nebb_retained_bytes 3145728\n",
      "# TYPE ebb_mapped_bytes gauge\n", "# TYPE ebb_rss_bytes gauge\nebb_rss_bytes 31457280\n",
      "# TYPE ebb_memory_limit_bytes gauge\nebb_memory_limit_bytes 0\n",
      "# TYPE ebb_threads gauge\nebb_threads 3\n", "# TYPE ebb_segments gauge\nebb_segments 5\n",
      "# TYPE ebb_huge_blocks gauge\nebb_huge_blocks 2\n",
      "# TYPE ebb_allocs_total counter\nebb_allocs_total 3655\n",
      "# TYPE ebb_frees_total counter\nebb_frees_total 553\n",
      "# TYPE ebb_remote_frees_total counter\nebb_remote_frees_total 7\n",
      "# TYPE ebb_purged_bytes_total counter\nebb_purged_bytes_total 123456789\n",
      ("# TYPE ebb_os_calls_total counter\nebb_os_calls_total{call=\"mmap\"} 11\n"
       "ebb_os_calls_total{call=\"munmap\"} 2\nebb_os_calls_total{call=\"purge\"} 33\n"),
      "# TYPE ebb_purge_passes_total counter\nebb_purge_passes_total 4\n",
      ("# TYPE ebb_class_live_bytes gauge\nebb_class_live_bytes{size=\"huge\"} 6291456\n"
       "ebb_class_live_bytes{size=\"8\"} 8000\nebb_class_live_bytes{size=\"64\"} 128000\n"
       "ebb_class_live_bytes{size=\"1280\"} 128000\n"),
      "# TYPE ebb_class_free_resident_bytes gauge\n",
      "# TYPE ebb_class_pages gauge\nebb_class_pages{size=\"huge\"} 2\n",
      "# TYPE ebb_class_allocs_total counter\nebb_class_allocs_total{size=\"huge\"} 5\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(buf, want[i])) {
      fprintf(stderr, "prometheus text lacks:\n%s\n", want[i]);
      CHECK(strstr(buf, want[i]) != NULL);
    }
  CHECK(strstr(buf, "size=\"16\"") == NULL); /* classes not in use are left out */
  check_prometheus_shape(buf);
}

/* The table for the current snapshot, read back from a temporary file, as
 * written (raw) and with the verdict's wrapped lines joined (returned). */
static char raw[1 << 16];
static const char *table(void) {
  static char joined[1 << 16];
  raw[0] = joined[0] = '\0';
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (!f) return "";
  stats_write_table(&st, fileno(f));
  lseek(fileno(f), 0, SEEK_SET);
  ssize_t n = read(fileno(f), raw, sizeof raw - 1);
  fclose(f);
  raw[n > 0 ? n : 0] = '\0';
  /* in the verdict, continuation lines are indented by exactly five spaces */
  const char *verdict = strstr(raw, "\nVERDICT\n");
  size_t from = verdict ? (size_t)(verdict - raw) : sizeof raw, j = 0;
  for (size_t i = 0; raw[i]; i++) {
    if (i > from && raw[i] == '\n' && strncmp(raw + i + 1, "     ", 5) == 0 && raw[i + 6] != ' ' &&
        raw[i + 6] != '\0') {
      joined[j++] = ' ';
      i += 5;
      continue;
    }
    joined[j++] = raw[i];
  }
  joined[j] = '\0';
  return joined;
}

static int has(const char *text, const char *what) {
  if (strstr(text, what)) return 1;
  fprintf(stderr, "table lacks \"%s\":\n%s\n", what, text);
  return 0;
}

static void test_table(void) {
  /* mostly live */
  base_snapshot();
  const char *t = table();
  CHECK(has(t, "VERDICT\n"));
  CHECK(has(t, "process RSS"));
  CHECK(has(t, "    30.0 MiB"));
  CHECK(has(t, "purged total"));
  CHECK(has(t, "   117.7 MiB"));
  CHECK(has(t, "     35   1.25 KiB")); /* the 1280 B class, exactly */
  CHECK(has(t, "\n      0       huge")); /* the huge row */
  CHECK(strstr(t, "     2       16 B") == NULL); /* classes not in use are left out */
  CHECK(has(t, "RSS not explained by ebb: "));
  CHECK(has(t, "no size class holds free resident memory"));
  CHECK(has(t, "=> Most of ebb's resident memory is live"));
  CHECK(has(t, "a leak or an unbounded cache"));
  CHECK(strstr(raw, "\n     B ") == NULL && strstr(raw, "\n     ms") == NULL &&
        strstr(raw, "\n     KiB") == NULL && strstr(raw, "\n     MiB") == NULL);
  for (const char *line = raw; *line;) {
    const char *end = strchr(line, '\n');
    CHECK(end != NULL && end - line <= 100); /* fits a wide terminal */
    if (!end) break;
    line = end + 1;
  }

  /* fragmented: free blocks inside pages dominate; the top three classes */
  base_snapshot();
  st.classes[35].free_resident_bytes = (size_t)3 << 20;
  st.classes[5].free_resident_bytes = (size_t)2 << 20;
  st.classes[0].free_resident_bytes = (size_t)1 << 20;
  st.classes[1].free_resident_bytes = (size_t)1 << 19;
  st.free_resident_bytes = ((size_t)13 << 19) + ((size_t)1 << 19); /* 0.5 MiB outside pages */
  st.resident_bytes = st.live_bytes + st.free_resident_bytes;
  ebb_opt.decay_ms = 250;
  t = table();
  CHECK(has(t, "size classes with the most free resident memory"));
  const char *top = strstr(t, "size classes with the most");
  const char *a = top ? strstr(top, "1.25 KiB blocks") : NULL;
  const char *b = top ? strstr(top, "64 B blocks") : NULL;
  const char *c = top ? strstr(top, "huge blocks") : NULL;
  CHECK(a && b && c && a < b && b < c);
  CHECK(top && strstr(top, " 8 B blocks") == NULL); /* only three */
  CHECK(has(t, "42.9%"));                   /* 3 MiB of 7 MiB */
  CHECK(has(t, "=> "));
  CHECK(has(t, "free but still resident"));
  CHECK(has(t, "fragmentation"));
  CHECK(has(t, "decay of 250 ms"));
  CHECK(has(t, "size class 1.25 KiB"));
  CHECK(strstr(t, "Most of ebb's resident memory is live") == NULL);

  /* free memory mostly in empty pages waiting for decay */
  base_snapshot();
  st.classes[5].free_resident_bytes = (size_t)1 << 20;
  st.free_resident_bytes = (size_t)40 << 20;
  st.resident_bytes = st.live_bytes + st.free_resident_bytes;
  ebb_opt.decay_ms = 1000;
  t = table();
  CHECK(has(t, "mostly empty pages"));
  CHECK(has(t, "decay of 1000 ms"));
  CHECK(has(t, "malloc_trim(0)"));
  ebb_opt.decay_ms = -1;
  t = table();
  CHECK(has(t, "decay is off"));

  /* a small heap (below 4 MiB resident) is called small, not fragmented */
  base_snapshot();
  st.classes[5].free_resident_bytes = (size_t)1900 << 10;
  st.live_bytes = (size_t)400 << 10;
  st.free_resident_bytes = (size_t)1900 << 10;
  st.resident_bytes = st.live_bytes + st.free_resident_bytes;
  t = table();
  CHECK(has(t, "=> ebb's heap is small (2.2 MiB resident, 1.9 MiB of it free)"));
  CHECK(strstr(t, "fragmentation (") == NULL && strstr(t, ": fragmentation") == NULL);

  /* the threshold: a quarter of ebb's resident memory free */
  base_snapshot();
  st.classes[5].free_resident_bytes = (size_t)1 << 20;
  st.resident_bytes = (size_t)4 << 20;
  st.live_bytes = (size_t)3 << 20;
  st.free_resident_bytes = ((size_t)1 << 20) - 4096; /* 24.9% */
  t = table();
  CHECK(has(t, "=> Most of ebb's resident memory is live (75.0%)"));
  st.free_resident_bytes = (size_t)1 << 20; /* 25% */
  t = table();
  CHECK(has(t, "=> 25.0% of ebb's resident memory (1.0 MiB) is free but still resident: mostly "
               "free blocks in pages that also hold live ones: fragmentation"));

  /* free memory mostly in cached huge mappings (class 0): not fragmentation */
  base_snapshot();
  st.classes[0].free_resident_bytes = (size_t)30 << 20;
  st.classes[5].free_resident_bytes = (size_t)2 << 20;
  st.free_resident_bytes = (size_t)33 << 20;
  st.resident_bytes = st.live_bytes + st.free_resident_bytes;
  ebb_opt.decay_ms = 250;
  t = table();
  CHECK(has(t, "free blocks in pages 2.0 MiB, cached huge mappings 30.0 MiB, empty pages and "
               "metadata 1.0 MiB\n"));
  CHECK(has(t, "huge blocks     30.0 MiB    90.9%  (cached mappings)"));
  CHECK(has(t, "is free but still resident: mostly empty pages and cached huge mappings waiting "
               "for their decay of 250 ms"));
  CHECK(strstr(t, "size class 64 B") == NULL); /* 6% of the free memory: not worth naming */
  CHECK(strstr(t, "mostly free blocks") == NULL);

  /* most of RSS outside ebb; near the memory limit */
  base_snapshot();
  st.rss_bytes = (size_t)200 << 20;
  st.memory_limit = (size_t)210 << 20;
  t = table();
  CHECK(has(t, "outside ebb's heap"));
  CHECK(has(t, "of the memory limit (210.0 MiB)"));

  /* nothing at all */
  memset(&st, 0, sizeof st);
  t = table();
  CHECK(has(t, "VERDICT"));
  CHECK(has(t, "(none)"));
  CHECK(has(t, "ebb holds no resident memory"));
}

/* The bounds in stats_format.h hold with every number at its largest. */
static void test_bounds(void) {
  memset(&st, 0xff, sizeof st);
  size_t json = stats_format_json(&st, NULL, 0), prom = stats_format_prometheus(&st, NULL, 0),
         line = stats_format_line(&st, NULL, 0);
  printf("largest texts: JSON %zu, Prometheus %zu, line %zu bytes\n", json, prom, line);
  CHECK(json < STATS_JSON_MAX);
  CHECK(prom < STATS_PROMETHEUS_MAX);
  CHECK(line < STATS_LINE_MAX);
  CHECK(json > 122 * 100); /* really every class */
  static char buf[STATS_PROMETHEUS_MAX];
  CHECK(stats_format_json(&st, buf, sizeof buf) == json && strlen(buf) == json);
  CHECK(strstr(buf, "\"fragmentation\":1.0000,") != NULL);
  CHECK(strstr(buf, "\"live_bytes\":18446744073709551615,") != NULL);
  CHECK(stats_format_prometheus(&st, buf, sizeof buf) == prom && strlen(buf) == prom);
  check_prometheus_shape(buf);
  const char *t = table(); /* the table copes too */
  CHECK(has(t, "VERDICT"));
  CHECK(has(t, "16.0 EiB"));
}

int main(void) {
  ebb_free(ebb_malloc(16)); /* initialise (options included) before changing ebb_opt */
  long long decay = ebb_opt.decay_ms;
  test_line();
  test_json();
  test_prometheus();
  test_table();
  test_bounds();
  ebb_opt.decay_ms = decay;
  TEST_DONE();
}
