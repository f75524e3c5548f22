/* Unit tests of ebb's options: the size, duration and boolean parsers
 * (every suffix, case, overflow, garbage), ebb_option_get/set for every
 * option (good values, bad values leave the option unchanged and print
 * nothing, unknown names), and the cgroup limit reader on fake files and
 * directories: single files, cgroup directories, and whole fake
 * /proc/self/cgroup + /sys/fs/cgroup trees (v2, v1, hybrid, ancestors).
 * Linked with build/libebb.a.
 *
 * The process first re-executes itself without any EBB_* variable (other
 * than EBB_TEST_*), so the defaults are what the environment says nothing
 * about. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "internal.h"
#include "options.h"
#include "testutil.h"

/* ---- parsers ---------------------------------------------------------------- */

static void size_ok(int line, const char *s, size_t want) {
  size_t v = 12345;
  bool ok = options_parse_size(s, &v);
  if (!ok || v != want) {
    fprintf(stderr, "%s:%d: size \"%s\": ok=%d value %zu, want %zu\n", __FILE__, line, s, ok, v,
            want);
    test_failures++;
  }
}
static void size_bad(int line, const char *s) {
  size_t v = 12345;
  bool ok = options_parse_size(s, &v);
  if (ok || v != 12345) {
    fprintf(stderr, "%s:%d: size \"%s\" accepted (%zu), want rejected and untouched\n", __FILE__,
            line, s ? s : "(null)", v);
    test_failures++;
  }
}
static void dur_ok(int line, const char *s, long long want) {
  long long v = 12345;
  bool ok = options_parse_duration(s, &v);
  if (!ok || v != want) {
    fprintf(stderr, "%s:%d: duration \"%s\": ok=%d value %lld, want %lld\n", __FILE__, line, s, ok,
            v, want);
    test_failures++;
  }
}
static void dur_bad(int line, const char *s) {
  long long v = 12345;
  bool ok = options_parse_duration(s, &v);
  if (ok || v != 12345) {
    fprintf(stderr, "%s:%d: duration \"%s\" accepted (%lld), want rejected and untouched\n",
            __FILE__, line, s ? s : "(null)", v);
    test_failures++;
  }
}
static void bool_ok(int line, const char *s, bool want) {
  bool v = !want;
  bool ok = options_parse_bool(s, &v);
  if (!ok || v != want) {
    fprintf(stderr, "%s:%d: bool \"%s\": ok=%d value %d, want %d\n", __FILE__, line, s, ok, v,
            want);
    test_failures++;
  }
}
static void bool_bad(int line, const char *s) {
  bool v = true, w = false;
  bool ok1 = options_parse_bool(s, &v), ok2 = options_parse_bool(s, &w);
  if (ok1 || ok2 || v != true || w != false) {
    fprintf(stderr, "%s:%d: bool \"%s\" accepted, want rejected and untouched\n", __FILE__, line,
            s ? s : "(null)");
    test_failures++;
  }
}
#define SIZE_OK(s, w) size_ok(__LINE__, s, w)
#define SIZE_BAD(s) size_bad(__LINE__, s)
#define DUR_OK(s, w) dur_ok(__LINE__, s, w)
#define DUR_BAD(s) dur_bad(__LINE__, s)
#define BOOL_OK(s, w) bool_ok(__LINE__, s, w)
#define BOOL_BAD(s) bool_bad(__LINE__, s)

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define TiB ((size_t)1 << 40)

static void test_sizes(void) {
  SIZE_OK("0", 0);
  SIZE_OK("1", 1);
  SIZE_OK("1024", 1024);
  SIZE_OK("000123", 123);
  /* every multiplier, every case, every optional ending */
  static const struct { const char *suffix; size_t mult; } mults[] = {
      {"", 1},          {"b", 1},          {"B", 1},
      {"k", KiB},       {"K", KiB},        {"kb", KiB},    {"KB", KiB},   {"kB", KiB},
      {"KiB", KiB},     {"kib", KiB},      {"KIB", KiB},   {"Kib", KiB},
      {"m", MiB},       {"M", MiB},        {"MB", MiB},    {"mb", MiB},   {"MiB", MiB},
      {"mib", MiB},     {"g", GiB},        {"G", GiB},     {"GB", GiB},   {"gb", GiB},
      {"GiB", GiB},     {"gib", GiB},      {"t", TiB},     {"T", TiB},    {"TB", TiB},
      {"tb", TiB},      {"TiB", TiB},      {"tib", TiB},
  };
  for (size_t i = 0; i < sizeof mults / sizeof mults[0]; i++) {
    char buf[64];
    for (size_t n = 0; n <= 1000; n += 37) {
      snprintf(buf, sizeof buf, "%zu%s", n, mults[i].suffix);
      size_ok(__LINE__, buf, n * mults[i].mult);
    }
  }
  SIZE_OK("64k", 65536);
  SIZE_OK("512M", 536870912);
  SIZE_OK("2G", 2147483648u);
  SIZE_OK("3T", 3 * TiB);
  /* white space around the value */
  SIZE_OK(" 8M", 8 * MiB);
  SIZE_OK("8M ", 8 * MiB);
  SIZE_OK("\t1k\n", KiB);
  /* the largest size: 2^63 - 1 */
  SIZE_OK("9223372036854775807", (size_t)INT64_MAX);
  SIZE_OK("9223372036854775807B", (size_t)INT64_MAX);
  SIZE_OK("8388607T", ((size_t)1 << 63) - TiB);
  SIZE_OK("8796093022207M", ((size_t)1 << 63) - MiB);
  /* overflow */
  SIZE_BAD("9223372036854775808");
  SIZE_BAD("18446744073709551615");
  SIZE_BAD("18446744073709551616");
  SIZE_BAD("99999999999999999999999999");
  SIZE_BAD("99999999999T");
  SIZE_BAD("8388608T");
  SIZE_BAD("8796093022208M");
  SIZE_BAD("8589934592G");
  SIZE_BAD("9007199254740992K");
  /* garbage */
  SIZE_BAD(NULL);
  SIZE_BAD("");
  SIZE_BAD(" ");
  SIZE_BAD("12Q");
  SIZE_BAD("-5");
  SIZE_BAD("-0");
  SIZE_BAD("+5");
  SIZE_BAD("1.5G");
  SIZE_BAD("K");
  SIZE_BAD("M");
  SIZE_BAD("B");
  SIZE_BAD("KiB");
  SIZE_BAD("1KK");
  SIZE_BAD("1KBB");
  SIZE_BAD("1iB");  /* "iB" only after a multiplier */
  SIZE_BAD("1Bi");
  SIZE_BAD("1Ki");
  SIZE_BAD("1 K");
  SIZE_BAD("1P");
  SIZE_BAD("1E");
  SIZE_BAD("0x10");
  SIZE_BAD("1e6");
  SIZE_BAD("12abc");
  SIZE_BAD("1,000");
}

static void test_durations(void) {
  DUR_OK("0", 0);
  DUR_OK("250", 250);
  DUR_OK("250ms", 250);
  DUR_OK("250MS", 250);
  DUR_OK("250Ms", 250);
  DUR_OK("0ms", 0);
  DUR_OK("10s", 10000);
  DUR_OK("10S", 10000);
  DUR_OK("1m", 60000);
  DUR_OK("2M", 120000);
  DUR_OK(" 5s ", 5000);
  DUR_OK("\t7\n", 7);
  /* limits: the value in ns fits an int64_t */
  DUR_OK("9223372036854", 9223372036854ll);
  DUR_OK("9223372036854ms", 9223372036854ll);
  DUR_OK("9223372036s", 9223372036000ll);
  DUR_OK("153722867m", 9223372020000ll);
  DUR_BAD("9223372036855");
  DUR_BAD("9223372037s");
  DUR_BAD("153722868m");
  DUR_BAD("99999999999999999999999");
  DUR_BAD("18446744073709551616");
  /* garbage */
  DUR_BAD(NULL);
  DUR_BAD("");
  DUR_BAD("  ");
  DUR_BAD("abc");
  DUR_BAD("-1");
  DUR_BAD("-5s");
  DUR_BAD("+5");
  DUR_BAD("1h");
  DUR_BAD("1us");
  DUR_BAD("1.5s");
  DUR_BAD("10 s");
  DUR_BAD("10sec");
  DUR_BAD("s");
  DUR_BAD("ms");
  DUR_BAD("1mss");
  DUR_BAD("1sm");
  DUR_BAD("5x");
}

static void test_bools(void) {
  static const char *const yes[] = {"1", "true", "TRUE", "True", "yes", "YES", "Yes", "on", "ON", "On", " on ", "\ttrue\n"};
  static const char *const no[] = {"0", "false", "FALSE", "False", "no", "NO", "No", "off", "OFF", "Off", " 0 "};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) bool_ok(__LINE__, yes[i], true);
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) bool_ok(__LINE__, no[i], false);
  BOOL_BAD(NULL);
  BOOL_BAD("");
  BOOL_BAD(" ");
  BOOL_BAD("2");
  BOOL_BAD("10");
  BOOL_BAD("01");
  BOOL_BAD("-1");
  BOOL_BAD("tru");
  BOOL_BAD("truee");
  BOOL_BAD("yess");
  BOOL_BAD("y");
  BOOL_BAD("n");
  BOOL_BAD("o");
  BOOL_BAD("enable");
  BOOL_BAD("of");
  BOOL_BAD("1 1");
}

/* ---- ebb_option_get / ebb_option_set ----------------------------------------- */

/* stderr goes to a file while the option API is exercised: ebb_option_set
 * must never print. */
static int saved_stderr = -1;
static char stderr_path[256];

static void capture_stderr(const char *dir) {
  snprintf(stderr_path, sizeof stderr_path, "%s/stderr", dir);
  int fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  fflush(stderr);
  saved_stderr = dup(2);
  dup2(fd, 2);
  close(fd);
}

static void release_stderr(void) {
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  struct stat st;
  CHECK(stat(stderr_path, &st) == 0);
  if (st.st_size != 0) {
    fprintf(stderr, "ebb_option_get/set printed %lld bytes on stderr:\n", (long long)st.st_size);
    char buf[512];
    int fd = open(stderr_path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : 0;
    if (fd >= 0) close(fd);
    if (n > 0) fwrite(buf, 1, (size_t)n, stderr);
    test_failures++;
  }
}

static void get_is(int line, const char *name, long long want) {
  errno = 0;
  long long v = ebb_option_get(name);
  if (v != want || (want == -1 && errno == EINVAL)) {
    fprintf(stderr, "%s:%d: ebb_option_get(\"%s\") = %lld (errno %d), want %lld\n", __FILE__,
            line, name, v, errno, want);
    test_failures++;
  }
}
/* set must succeed, and get must then give `want` */
static void set_ok(int line, const char *name, const char *value, long long want) {
  int rc = ebb_option_set(name, value);
  if (rc != 0) {
    fprintf(stderr, "%s:%d: ebb_option_set(\"%s\", \"%s\") = %d, want 0\n", __FILE__, line, name,
            value, rc);
    test_failures++;
  }
  get_is(line, name, want);
}
/* set must fail with EINVAL and leave the value (and the whole struct) alone */
static void set_bad(int line, const char *name, const char *value) {
  ebb_options_t before;
  memcpy(&before, &ebb_opt, sizeof before);
  long long old = name ? ebb_option_get(name) : 0;
  int rc = ebb_option_set(name, value);
  if (rc != EINVAL) {
    fprintf(stderr, "%s:%d: ebb_option_set(\"%s\", \"%s\") = %d, want EINVAL\n", __FILE__, line,
            name ? name : "(null)", value ? value : "(null)", rc);
    test_failures++;
  }
  if (memcmp(&before, &ebb_opt, sizeof before) != 0) {
    fprintf(stderr, "%s:%d: ebb_option_set(\"%s\", \"%s\") changed the options\n", __FILE__,
            line, name ? name : "(null)", value ? value : "(null)");
    test_failures++;
  }
  if (name && ebb_option_get(name) != old) {
    fprintf(stderr, "%s:%d: option %s changed after a rejected set\n", __FILE__, line, name);
    test_failures++;
  }
}
#define GET_IS(n, w) get_is(__LINE__, n, w)
#define SET_OK(n, v, w) set_ok(__LINE__, n, v, w)
#define SET_BAD(n, v) set_bad(__LINE__, n, v)

static void test_option_api(const char *dir) {
  capture_stderr(dir);

  /* defaults (the environment holds no EBB_* option: see main) */
  GET_IS("decay_ms", 250);
  GET_IS("stats_interval", 0);
  GET_IS("memory_limit", 0);
  GET_IS("madv_free", 0);
  GET_IS("hard_limit", 0);
  GET_IS("background", 1);
  GET_IS("show_stats", 0);
  GET_IS("verbose", 0);
  GET_IS("stats_file", 0);
  GET_IS("cgroup_path", 0);
  CHECK(ebb_opt.decay_ms == 250 && ebb_opt.stats_interval_ms == 0 && ebb_opt.memory_limit == 0);
  CHECK(!ebb_opt.madv_free && !ebb_opt.hard_limit && ebb_opt.background && !ebb_opt.show_stats &&
        !ebb_opt.verbose);
  CHECK(ebb_opt.stats_file[0] == 0 && ebb_opt.cgroup_path[0] == 0);

  /* unknown names and NULL */
  errno = 0;
  CHECK(ebb_option_get("no_such_option") == -1 && errno == EINVAL);
  errno = 0;
  CHECK(ebb_option_get("") == -1 && errno == EINVAL);
  errno = 0;
  CHECK(ebb_option_get(NULL) == -1 && errno == EINVAL);
  errno = 0;
  CHECK(ebb_option_get("decay") == -1 && errno == EINVAL);
  errno = 0;
  CHECK(ebb_option_get("decay_ms_") == -1 && errno == EINVAL);
  errno = 0;
  CHECK(ebb_option_get("EBB_DECAY_MS") == -1 && errno == EINVAL);
  SET_BAD("no_such_option", "1");
  SET_BAD("", "1");
  SET_BAD(NULL, "1");
  SET_BAD(NULL, NULL);
  SET_BAD("decay_ms", NULL);
  SET_BAD("stats_file", NULL);
  SET_BAD("decay", "100");
  SET_BAD("EBB_DECAY_MS", "100");

  /* decay_ms: a duration or -1 */
  SET_OK("decay_ms", "100", 100);
  SET_OK("decay_ms", "10s", 10000);
  SET_OK("decay_ms", "1m", 60000);
  SET_OK("decay_ms", "250ms", 250);
  SET_OK("decay_ms", "0", 0);
  SET_OK("decay_ms", "-1", -1);
  CHECK(ebb_opt.decay_ms == -1);
  SET_OK("decay_ms", " -1 ", -1);
  SET_OK("decay_ms", "42", 42);
  SET_BAD("decay_ms", "abc");
  SET_BAD("decay_ms", "");
  SET_BAD("decay_ms", "-2");
  SET_BAD("decay_ms", "-1s");
  SET_BAD("decay_ms", "--1");
  SET_BAD("decay_ms", "1h");
  SET_BAD("decay_ms", "99999999999999999999");
  GET_IS("decay_ms", 42);
  SET_OK("DECAY_MS", "43", 43); /* names are case-insensitive */
  GET_IS("decay_ms", 43);
  SET_OK("decay_ms", "250", 250);

  /* stats_interval: a duration, no -1 */
  SET_OK("stats_interval", "1m", 60000);
  CHECK(ebb_opt.stats_interval_ms == 60000);
  SET_OK("stats_interval", "500", 500);
  SET_BAD("stats_interval", "-1");
  SET_BAD("stats_interval", "5x");
  SET_BAD("stats_interval", "1.5s");
  GET_IS("stats_interval", 500);
  SET_OK("stats_interval", "0", 0);

  /* memory_limit: a size */
  SET_OK("memory_limit", "512M", 536870912);
  CHECK(ebb_opt.memory_limit == 536870912);
  SET_OK("memory_limit", "2GiB", 2147483648ll);
  SET_OK("memory_limit", "64k", 65536);
  SET_OK("memory_limit", "9223372036854775807", INT64_MAX);
  SET_OK("memory_limit", "1024", 1024);
  SET_BAD("memory_limit", "99999999999T");
  SET_BAD("memory_limit", "18446744073709551616");
  SET_BAD("memory_limit", "9223372036854775808");
  SET_BAD("memory_limit", "-5");
  SET_BAD("memory_limit", "12Q");
  SET_BAD("memory_limit", "");
  GET_IS("memory_limit", 1024);
  SET_OK("memory_limit", "0", 0);

  /* booleans */
  static const char *const bools[] = {"madv_free", "hard_limit", "background", "show_stats",
                                      "verbose"};
  bool *fields[] = {&ebb_opt.madv_free, &ebb_opt.hard_limit, &ebb_opt.background,
                    &ebb_opt.show_stats, &ebb_opt.verbose};
  for (size_t i = 0; i < 5; i++) {
    long long def = ebb_option_get(bools[i]);
    set_ok(__LINE__, bools[i], "yes", 1);
    CHECK(*fields[i]);
    set_ok(__LINE__, bools[i], "off", 0);
    CHECK(!*fields[i]);
    set_ok(__LINE__, bools[i], "TRUE", 1);
    set_bad(__LINE__, bools[i], "maybe");
    set_bad(__LINE__, bools[i], "2");
    set_bad(__LINE__, bools[i], "");
    get_is(__LINE__, bools[i], 1);
    set_ok(__LINE__, bools[i], "0", 0);
    set_bad(__LINE__, bools[i], "yess");
    get_is(__LINE__, bools[i], 0);
    set_ok(__LINE__, bools[i], def ? "1" : "0", def);
  }

  /* strings: 1 if set */
  static const char *const strs[] = {"stats_file", "cgroup_path"};
  char *sfields[] = {ebb_opt.stats_file, ebb_opt.cgroup_path};
  for (size_t i = 0; i < 2; i++) {
    set_ok(__LINE__, strs[i], "/tmp/some file", 1);
    CHECK(strcmp(sfields[i], "/tmp/some file") == 0);
    set_ok(__LINE__, strs[i], "/x", 1);
    CHECK(strcmp(sfields[i], "/x") == 0); /* no tail of the longer old value */
    char longest[EBB_PATH_MAX];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = 0; /* 255 bytes: fits */
    set_ok(__LINE__, strs[i], longest, 1);
    CHECK(strcmp(sfields[i], longest) == 0);
    char too_long[EBB_PATH_MAX + 1];
    memset(too_long, 'b', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = 0; /* 256 bytes: does not */
    set_bad(__LINE__, strs[i], too_long);
    CHECK(strcmp(sfields[i], longest) == 0);
    set_ok(__LINE__, strs[i], "", 0);
    CHECK(sfields[i][0] == 0);
  }

  release_stderr();
}

/* ---- the cgroup reader ------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static void make_dir(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  CHECK(mkdir(path, 0700) == 0);
}

static size_t limit_of(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  errno = EDOM;
  size_t v = os_cgroup_memory_limit(path);
  CHECK(errno == EDOM); /* errno is preserved */
  return v;
}

/* The limit from a fake /proc/self/cgroup holding `self` and fake roots. */
static size_t limit_from(const char *dir, const char *self) {
  write_file(dir, "self_cgroup", self);
  char s[512], v2[512], v1[512];
  snprintf(s, sizeof s, "%s/self_cgroup", dir);
  snprintf(v2, sizeof v2, "%s/v2", dir);
  snprintf(v1, sizeof v1, "%s/v1", dir);
  errno = EDOM;
  size_t v = os_cgroup_limit_from(s, v2, v1);
  CHECK(errno == EDOM);
  return v;
}

static void test_cgroup(const char *dir) {
  /* a file holding the limit */
  write_file(dir, "v2max", "max\n");
  CHECK(limit_of(dir, "v2max") == 0);
  write_file(dir, "num", "536870912\n");
  CHECK(limit_of(dir, "num") == 536870912);
  write_file(dir, "num_nonl", "1073741824");
  CHECK(limit_of(dir, "num_nonl") == 1073741824);
  write_file(dir, "num_ws", "  1048576 \n");
  CHECK(limit_of(dir, "num_ws") == 1048576);
  write_file(dir, "v1huge", "9223372036854771712\n"); /* v1's "no limit" */
  CHECK(limit_of(dir, "v1huge") == 0);
  write_file(dir, "2p62", "4611686018427387904\n");
  CHECK(limit_of(dir, "2p62") == 0);
  write_file(dir, "below2p62", "4611686018427387903\n");
  CHECK(limit_of(dir, "below2p62") == (size_t)4611686018427387903ull);
  write_file(dir, "overflow", "99999999999999999999999\n");
  CHECK(limit_of(dir, "overflow") == 0);
  write_file(dir, "garbage", "12abc\n");
  CHECK(limit_of(dir, "garbage") == 0);
  write_file(dir, "negative", "-5\n");
  CHECK(limit_of(dir, "negative") == 0);
  write_file(dir, "empty", "");
  CHECK(limit_of(dir, "empty") == 0);
  write_file(dir, "zero", "0\n");
  CHECK(limit_of(dir, "zero") == 0);
  write_file(dir, "maxx", "maxx\n");
  CHECK(limit_of(dir, "maxx") == 0);
  char big[300];
  memset(big, '1', sizeof big - 1);
  big[sizeof big - 1] = 0;
  write_file(dir, "bigfile", big); /* too long to be a limit file */
  CHECK(limit_of(dir, "bigfile") == 0);
  CHECK(limit_of(dir, "missing") == 0);
  CHECK(limit_of(dir, "missing/memory.max") == 0);

  /* a cgroup directory: v2 memory.max, else v1 memory.limit_in_bytes */
  make_dir(dir, "cg2");
  write_file(dir, "cg2/memory.max", "1073741824\n");
  CHECK(limit_of(dir, "cg2") == 1073741824);
  CHECK(limit_of(dir, "cg2/") == 1073741824);
  make_dir(dir, "cg2max");
  write_file(dir, "cg2max/memory.max", "max\n");
  write_file(dir, "cg2max/memory.limit_in_bytes", "4096\n"); /* memory.max decides */
  CHECK(limit_of(dir, "cg2max") == 0);
  make_dir(dir, "cg1");
  write_file(dir, "cg1/memory.limit_in_bytes", "2147483648\n");
  CHECK(limit_of(dir, "cg1") == 2147483648u);
  make_dir(dir, "cg1none");
  write_file(dir, "cg1none/memory.limit_in_bytes", "9223372036854771712\n");
  CHECK(limit_of(dir, "cg1none") == 0);
  make_dir(dir, "cgempty");
  CHECK(limit_of(dir, "cgempty") == 0);

  /* fake hierarchies: v2 at dir/v2, v1 memory at dir/v1 */
  make_dir(dir, "v2");
  make_dir(dir, "v2/a");
  make_dir(dir, "v2/a/b");
  make_dir(dir, "v2/a/b/c");
  write_file(dir, "v2/a/memory.max", "3000000\n");
  write_file(dir, "v2/a/b/memory.max", "1000000\n");
  write_file(dir, "v2/a/b/c/memory.max", "max\n");
  make_dir(dir, "v1");
  make_dir(dir, "v1/a");
  make_dir(dir, "v1/a/b");
  write_file(dir, "v1/memory.limit_in_bytes", "9223372036854771712\n");
  write_file(dir, "v1/a/memory.limit_in_bytes", "9223372036854771712\n");
  write_file(dir, "v1/a/b/memory.limit_in_bytes", "268435456\n");

  CHECK(limit_from(dir, "0::/a/b/c\n") == 1000000);   /* an ancestor's limit */
  CHECK(limit_from(dir, "0::/a/b/c") == 1000000);     /* no final newline */
  CHECK(limit_from(dir, "0::/a/b\n") == 1000000);
  CHECK(limit_from(dir, "0::/a\n") == 3000000);
  CHECK(limit_from(dir, "0::/a/b/c/d/e\n") == 1000000); /* missing levels */
  CHECK(limit_from(dir, "0::/a/b/c/\n") == 1000000);
  CHECK(limit_from(dir, "0::/\n") == 0);                /* the root: no limit */
  CHECK(limit_from(dir, "0::/other\n") == 0);
  CHECK(limit_from(dir, "0::/a/../../..\n") == 3000000); /* never above the root */
  CHECK(limit_from(dir, "") == 0);
  CHECK(limit_from(dir, "garbage\n") == 0);
  CHECK(limit_from(dir, "1::/a/b\n") == 0); /* hierarchy 1, no memory controller */
  /* v1 */
  CHECK(limit_from(dir, "12:cpu,cpuacct:/a\n5:memory:/a/b\n1:name=systemd:/a/b\n") == 268435456);
  CHECK(limit_from(dir, "3:blkio,memory:/a/b/x\n") == 268435456);
  CHECK(limit_from(dir, "3:memory,blkio:/a/b\n") == 268435456);
  CHECK(limit_from(dir, "5:memory:/a\n") == 0); /* huge values mean none */
  CHECK(limit_from(dir, "5:memoryx:/a/b\n") == 0);
  CHECK(limit_from(dir, "5:cpu:/a/b\n") == 0);
  /* hybrid: both, the smaller wins */
  CHECK(limit_from(dir, "5:memory:/a/b\n0::/a/b/c\n") == 1000000);
  CHECK(limit_from(dir, "0::/a/b/c\n5:memory:/a/b\n") == 1000000);
  CHECK(limit_from(dir, "5:memory:/a/b\n0::/other\n") == 268435456);
  /* a container seeing its own cgroup as the root, with the host's path */
  write_file(dir, "v2/memory.max", "5000000\n");
  CHECK(limit_from(dir, "0::/docker/0123456789abcdef\n") == 5000000);
  CHECK(limit_from(dir, "0::/a/b/c\n") == 1000000);
  CHECK(limit_from(dir, "0::/\n") == 5000000);
  /* a line longer than the reader's buffer is skipped, the next one used */
  {
    size_t n = 5000;
    char *text = malloc(n + 64);
    CHECK(text != NULL);
    if (text) {
      memcpy(text, "0::/", 4);
      memset(text + 4, 'x', n);
      strcpy(text + 4 + n, "\n5:memory:/a/b\n");
      CHECK(limit_from(dir, text) == 268435456);
      free(text);
    }
  }
  /* a missing /proc/self/cgroup */
  {
    char v2[512], v1[512], s[512];
    snprintf(s, sizeof s, "%s/no_such_file", dir);
    snprintf(v2, sizeof v2, "%s/v2", dir);
    snprintf(v1, sizeof v1, "%s/v1", dir);
    CHECK(os_cgroup_limit_from(s, v2, v1) == 0);
  }

  /* the real thing: whatever this machine says, and no crash */
  size_t real = os_cgroup_memory_limit(NULL);
  CHECK(real == os_cgroup_memory_limit(""));
  printf("this process's cgroup memory limit: %zu%s\n", real, real ? "" : " (none)");
}

/* ---- main --------------------------------------------------------------------- */

extern char **environ;

/* Re-execute without any EBB_* variable but EBB_TEST_*, once. */
static void clean_environment(char **argv) {
  if (getenv("EBB_TEST_OPTIONS_CLEAN")) return;
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof *env);
  if (!env) return;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "EBB_", 4) != 0 || strncmp(environ[i], "EBB_TEST_", 9) == 0)
      env[k++] = environ[i];
  env[k++] = "EBB_TEST_OPTIONS_CLEAN=1";
  env[k] = NULL;
  execve("/proc/self/exe", argv, env);
  perror("execve /proc/self/exe");
  exit(1);
}

static void remove_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv) {
  (void)argc;
  clean_environment(argv);
  char dir[] = "/tmp/ebb_unit_options.XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_sizes();
  test_durations();
  test_bools();
  test_option_api(dir);
  test_cgroup(dir);
  remove_tree(dir);
  TEST_DONE();
}
