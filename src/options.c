/* Options: EBB_* environment variables, EBB_CONF, ebb_option_get/set.
 *
 * options_init() runs inside malloc's first initialisation, so nothing here
 * allocates: getenv and `environ` are read in place, strings are copied into
 * ebb_opt's fixed buffers, messages are formatted into stack buffers and
 * written with write(2) (ebb_warning).  Other code reads ebb_opt plainly;
 * ebb_option_set writes numbers with relaxed atomic stores because the
 * background thread may be reading them. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h> /* snprintf only: it does not allocate for these formats */
#include <stdlib.h>
#include <sys/auxv.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "options.h"

ebb_options_t ebb_opt = {
    .decay_ms = 250,
    .stats_interval_ms = 0,
    .memory_limit = 0,
    .madv_free = false,
    .hard_limit = false,
    .background = true,
    .show_stats = false,
    .verbose = false,
    .stats_file = "",
    .show_stats_file = "",
    .cgroup_path = "",
    .prof = false,
    .prof_rate = 0,
    .prof_interval_ms = 0,
    .prof_file = "",
};

/* ---- parsers -------------------------------------------------------------- */

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

/* Shrink [*s, *s + *n) to exclude surrounding white space. */
static void trim(const char **s, size_t *n) {
  while (*n > 0 && is_space(**s)) {
    (*s)++;
    (*n)--;
  }
  while (*n > 0 && is_space((*s)[*n - 1])) (*n)--;
}

/* Does the span equal `word` (lower case), ignoring case? */
static bool span_is(const char *s, size_t n, const char *word) {
  size_t i = 0;
  for (; i < n; i++)
    if (word[i] == 0 || to_lower(s[i]) != word[i]) return false;
  return word[i] == 0;
}

/* Leading decimal digits of the span: false if there are none or the number
 * does not fit in 64 bits; *used says how many characters they took. */
static bool parse_digits(const char *s, size_t n, size_t *used, uint64_t *value) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (i == 0) return false;
  *used = i;
  *value = v;
  return true;
}

/* The largest size: every one must also fit ebb_option_get's long long. */
#define SIZE_LIMIT ((uint64_t)INT64_MAX < (uint64_t)SIZE_MAX ? (uint64_t)INT64_MAX : (uint64_t)SIZE_MAX)
/* The largest duration in ms: its value in ns still fits an int64_t. */
#define DURATION_LIMIT_MS ((uint64_t)INT64_MAX / 1000000u)

static bool parse_size_span(const char *s, size_t n, size_t *out) {
  trim(&s, &n);
  uint64_t v;
  size_t used;
  if (!parse_digits(s, n, &used, &v)) return false;
  s += used;
  n -= used;
  unsigned shift = 0;
  if (n > 0) {
    switch (to_lower(*s)) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      default: break;
    }
    if (shift) {
      s++;
      n--;
    }
  }
  /* what may follow: nothing, "B", or (after a multiplier) "iB" */
  if (!(n == 0 || span_is(s, n, "b") || (shift && span_is(s, n, "ib")))) return false;
  if (v > (SIZE_LIMIT >> shift)) return false;
  *out = (size_t)(v << shift);
  return true;
}

static bool parse_duration_span(const char *s, size_t n, long long *out_ms) {
  trim(&s, &n);
  uint64_t v;
  size_t used;
  if (!parse_digits(s, n, &used, &v)) return false;
  s += used;
  n -= used;
  uint64_t unit;
  if (n == 0 || span_is(s, n, "ms"))
    unit = 1;
  else if (span_is(s, n, "s"))
    unit = 1000;
  else if (span_is(s, n, "m"))
    unit = 60000;
  else
    return false;
  if (v > DURATION_LIMIT_MS / unit) return false;
  *out_ms = (long long)(v * unit);
  return true;
}

static bool parse_bool_span(const char *s, size_t n, bool *out) {
  trim(&s, &n);
  if (span_is(s, n, "1") || span_is(s, n, "true") || span_is(s, n, "yes") || span_is(s, n, "on")) {
    *out = true;
    return true;
  }
  if (span_is(s, n, "0") || span_is(s, n, "false") || span_is(s, n, "no") || span_is(s, n, "off")) {
    *out = false;
    return true;
  }
  return false;
}

bool options_parse_size(const char *text, size_t *out) {
  return text != NULL && parse_size_span(text, strlen(text), out);
}

bool options_parse_duration(const char *text, long long *out_ms) {
  return text != NULL && parse_duration_span(text, strlen(text), out_ms);
}

bool options_parse_bool(const char *text, bool *out) {
  return text != NULL && parse_bool_span(text, strlen(text), out);
}

/* ---- the option table ----------------------------------------------------- */

enum opt_kind { K_SIZE, K_DURATION, K_DECAY, K_BOOL, K_STRING };

typedef struct {
  const char *name; /* in EBB_CONF and ebb_option_get/set */
  const char *env;  /* its own environment variable */
  enum opt_kind kind;
  size_t offset;    /* of the field in ebb_options_t */
} opt_desc_t;

#define OPT(name, env, kind, field) {name, env, kind, offsetof(ebb_options_t, field)}
static const opt_desc_t opts[] = {
    OPT("decay_ms", "EBB_DECAY_MS", K_DECAY, decay_ms),
    OPT("stats_interval", "EBB_STATS_INTERVAL", K_DURATION, stats_interval_ms),
    OPT("memory_limit", "EBB_MEMORY_LIMIT", K_SIZE, memory_limit),
    OPT("madv_free", "EBB_MADV_FREE", K_BOOL, madv_free),
    OPT("hard_limit", "EBB_HARD_LIMIT", K_BOOL, hard_limit),
    OPT("background", "EBB_BACKGROUND", K_BOOL, background),
    OPT("show_stats", "EBB_SHOW_STATS", K_BOOL, show_stats),
    OPT("verbose", "EBB_VERBOSE", K_BOOL, verbose),
    OPT("stats_file", "EBB_STATS_FILE", K_STRING, stats_file),
    OPT("show_stats_file", "EBB_SHOW_STATS_FILE", K_STRING, show_stats_file),
    OPT("cgroup_path", "EBB_CGROUP_PATH", K_STRING, cgroup_path),
    OPT("prof", "EBB_PROF", K_BOOL, prof),
    OPT("prof_rate", "EBB_PROF_RATE", K_SIZE, prof_rate),
    OPT("prof_interval", "EBB_PROF_INTERVAL", K_DURATION, prof_interval_ms),
    OPT("prof_file", "EBB_PROF_FILE", K_STRING, prof_file),
};
#undef OPT
#define OPT_COUNT (sizeof opts / sizeof opts[0])

static void *opt_field(const opt_desc_t *o) { return (char *)&ebb_opt + o->offset; }

/* The option named by the span (case-insensitive), or NULL. */
static const opt_desc_t *opt_find(const char *s, size_t n) {
  for (size_t i = 0; i < OPT_COUNT; i++)
    if (span_is(s, n, opts[i].name)) return &opts[i];
  return NULL;
}

typedef struct {
  size_t size;
  long long ms;
  bool b;
  const char *str;
  size_t str_len;
} opt_value_t;

/* Parse a value for option o; false if it is bad.  Strings are taken as
 * they are (the caller trims where white space is not meaningful). */
static bool opt_parse(const opt_desc_t *o, const char *s, size_t n, opt_value_t *v) {
  switch (o->kind) {
    case K_SIZE: return parse_size_span(s, n, &v->size);
    case K_DURATION: return parse_duration_span(s, n, &v->ms);
    case K_DECAY: {
      const char *t = s;
      size_t m = n;
      trim(&t, &m);
      if (m == 2 && t[0] == '-' && t[1] == '1') {
        v->ms = -1;
        return true;
      }
      return parse_duration_span(s, n, &v->ms);
    }
    case K_BOOL: return parse_bool_span(s, n, &v->b);
    case K_STRING:
      if (n >= EBB_PATH_MAX || memchr(s, 0, n) != NULL) return false;
      v->str = s;
      v->str_len = n;
      return true;
  }
  return false;
}

static void opt_store(const opt_desc_t *o, const opt_value_t *v) {
  void *f = opt_field(o);
  switch (o->kind) {
    case K_SIZE: __atomic_store_n((size_t *)f, v->size, __ATOMIC_RELAXED); break;
    case K_DURATION:
    case K_DECAY: __atomic_store_n((long long *)f, v->ms, __ATOMIC_RELAXED); break;
    case K_BOOL: __atomic_store_n((bool *)f, v->b, __ATOMIC_RELAXED); break;
    case K_STRING: {
      /* Not atomic as a whole: a concurrent reader may see a mix of the old
       * and new text, but always a terminated string within the buffer. */
      char *dst = (char *)f;
      __atomic_store_n(&dst[0], 0, __ATOMIC_RELAXED);
      for (size_t i = v->str_len; i-- > 1;) __atomic_store_n(&dst[i], v->str[i], __ATOMIC_RELAXED);
      __atomic_store_n(&dst[v->str_len], 0, __ATOMIC_RELAXED);
      if (v->str_len > 0) __atomic_store_n(&dst[0], v->str[0], __ATOMIC_RELAXED);
      break;
    }
  }
}

static long long opt_get(const opt_desc_t *o) {
  void *f = opt_field(o);
  switch (o->kind) {
    case K_SIZE: return (long long)__atomic_load_n((size_t *)f, __ATOMIC_RELAXED);
    case K_DURATION:
    case K_DECAY: return __atomic_load_n((long long *)f, __ATOMIC_RELAXED);
    case K_BOOL: return __atomic_load_n((bool *)f, __ATOMIC_RELAXED) ? 1 : 0;
    case K_STRING: return __atomic_load_n((char *)f, __ATOMIC_RELAXED) != 0 ? 1 : 0;
  }
  return 0;
}

/* ---- messages ------------------------------------------------------------- */

/* Quote-ready copy of a span for a one-line message: at most 60 bytes,
 * control characters shown as '?', "..." when cut. */
static void show(char *buf, size_t cap, const char *s, size_t n) {
  size_t max = 60, j = 0;
  for (size_t i = 0; i < n && i < max && j + 1 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (n > max) {
    for (const char *d = "..."; *d && j + 1 < cap; d++) buf[j++] = *d;
  }
  buf[j] = 0;
}

static const char *kind_expected(enum opt_kind k) {
  switch (k) {
    case K_SIZE: return "a size (bytes, or with K, M, G, T)";
    case K_DURATION: return "a duration (ms, s, m)";
    case K_DECAY: return "a duration (ms, s, m) or -1";
    case K_BOOL: return "a boolean (1/0, true/false, yes/no, on/off)";
    case K_STRING: return "a path shorter than 256 bytes";
  }
  return "valid";
}

/* The option's current value, for "using ...". */
static void format_current(const opt_desc_t *o, char *buf, size_t cap) {
  long long v = opt_get(o);
  switch (o->kind) {
    case K_SIZE:
      if (v == 0)
        snprintf(buf, cap, "0 (the container's limit)");
      else
        snprintf(buf, cap, "%lld bytes", v);
      break;
    case K_DURATION:
      if (v == 0)
        snprintf(buf, cap, "0 (off)");
      else
        snprintf(buf, cap, "%lld ms", v);
      break;
    case K_DECAY:
      if (v < 0)
        snprintf(buf, cap, "-1 (never)");
      else
        snprintf(buf, cap, "%lld ms", v);
      break;
    case K_BOOL: snprintf(buf, cap, "%lld", v); break;
    case K_STRING: {
      char shown[72];
      const char *s = (const char *)opt_field(o);
      show(shown, sizeof shown, s, strlen(s));
      snprintf(buf, cap, "\"%s\"", shown);
      break;
    }
  }
}

/* One warning line: <where>"<text>" is not <kind>; using <current>. */
static void warn_bad_value(const char *where_prefix, const char *where, const opt_desc_t *o,
                           const char *s, size_t n) {
  char shown[72], current[96];
  show(shown, sizeof shown, s, n);
  format_current(o, current, sizeof current);
  ebb_warning("%s%s=\"%s\" is not %s; using %s", where_prefix, where, shown,
              kind_expected(o->kind), current);
}

/* Parse and store with a warning on a bad value. */
static void apply_or_warn(const char *where_prefix, const char *where, const opt_desc_t *o,
                          const char *s, size_t n) {
  opt_value_t v;
  if (opt_parse(o, s, n, &v))
    opt_store(o, &v);
  else
    warn_bad_value(where_prefix, where, o, s, n);
}

static void print_options(void) {
  char line[300 + 4 * EBB_PATH_MAX];
  int len = snprintf(line, sizeof line,
                     "ebb: options: decay_ms=%lld stats_interval=%lld memory_limit=%zu "
                     "madv_free=%d hard_limit=%d background=%d show_stats=%d verbose=%d "
                     "stats_file=\"%s\" show_stats_file=\"%s\" cgroup_path=\"%s\" "
                     "prof=%d prof_rate=%zu prof_interval=%lld prof_file=\"%s\"\n",
                     ebb_opt.decay_ms, ebb_opt.stats_interval_ms, ebb_opt.memory_limit,
                     (int)ebb_opt.madv_free, (int)ebb_opt.hard_limit, (int)ebb_opt.background,
                     (int)ebb_opt.show_stats, (int)ebb_opt.verbose, ebb_opt.stats_file,
                     ebb_opt.show_stats_file, ebb_opt.cgroup_path, (int)ebb_opt.prof,
                     ebb_opt.prof_rate, ebb_opt.prof_interval_ms, ebb_opt.prof_file);
  if (len <= 0) return;
  size_t n = (size_t)len < sizeof line ? (size_t)len : sizeof line - 1;
  line[n - 1] = '\n';
  os_write_all(2, line, n);
}

/* ---- reading the environment ---------------------------------------------- */

/* EBB_CONF="name:value,name=value,...".  Options whose own variable was set
 * keep that value (their EBB_CONF value is still checked). */
static void read_conf(const char *conf, const bool *from_env) {
  const char *p = conf;
  while (*p) {
    const char *item = p;
    while (*p && *p != ',') p++;
    size_t n = (size_t)(p - item);
    if (*p == ',') p++;
    trim(&item, &n);
    if (n == 0) continue; /* ",," or a trailing comma */
    char shown[72];
    size_t sep = 0;
    while (sep < n && item[sep] != ':' && item[sep] != '=') sep++;
    if (sep == n) {
      show(shown, sizeof shown, item, n);
      ebb_warning("EBB_CONF: \"%s\" is not name:value; ignored", shown);
      continue;
    }
    const char *name = item, *value = item + sep + 1;
    size_t name_len = sep, value_len = n - sep - 1;
    trim(&name, &name_len);
    trim(&value, &value_len);
    const opt_desc_t *o = opt_find(name, name_len);
    if (o == NULL) {
      show(shown, sizeof shown, name, name_len);
      ebb_warning("EBB_CONF: \"%s\" is not an ebb option; ignored", shown);
      continue;
    }
    char where[32];
    show(where, sizeof where, o->name, strlen(o->name));
    if (from_env[o - opts]) {
      opt_value_t v;
      if (!opt_parse(o, value, value_len, &v)) warn_bad_value("EBB_CONF: ", where, o, value, value_len);
    } else {
      apply_or_warn("EBB_CONF: ", where, o, value, value_len);
    }
  }
}

static bool has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Is the variable `name` (n bytes, up to the '=') one ebb knows or
 * deliberately leaves alone? */
static bool env_name_known(const char *name, size_t n) {
  static const char *const others[] = {"EBB_CONF", "EBB_ROOT"};
  for (size_t i = 0; i < OPT_COUNT; i++)
    if (strlen(opts[i].env) == n && memcmp(opts[i].env, name, n) == 0) return true;
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
    if (strlen(others[i]) == n && memcmp(others[i], name, n) == 0) return true;
  return has_prefix(name, "EBB_TEST_"); /* the test suite's own settings */
}

/* A known variable's name equal to `name` but for case, or NULL. */
static const char *env_name_near(const char *name, size_t n) {
  for (size_t i = 0; i < OPT_COUNT; i++) {
    const char *e = opts[i].env;
    if (strlen(e) != n) continue;
    size_t j = 0;
    while (j < n && to_lower(name[j]) == to_lower(e[j])) j++;
    if (j == n) return e;
  }
  return NULL;
}

static void check_unknown_variables(void) {
  if (environ == NULL) return;
  for (char **e = environ; *e != NULL; e++) {
    const char *entry = *e;
    if (!has_prefix(entry, "EBB_")) continue;
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
    if (env_name_known(entry, n)) continue;
    char shown[72];
    show(shown, sizeof shown, entry, n);
    const char *near = env_name_near(entry, n);
    if (near)
      ebb_warning("%s is not an ebb option (did you mean %s?); ignored", shown, near);
    else
      ebb_warning("%s is not an ebb option; ignored", shown);
  }
}

/* 0: not read yet, 1: being read, 2: done. */
static _Atomic int options_state;

void options_init(void) {
  if (atomic_load_explicit(&options_state, memory_order_acquire) == 2) return;
  int expected = 0;
  if (!atomic_compare_exchange_strong_explicit(&options_state, &expected, 1,
                                               memory_order_acquire, memory_order_acquire)) {
    /* another thread is reading the environment: it takes microseconds */
    while (atomic_load_explicit(&options_state, memory_order_acquire) != 2) sched_yield();
    return;
  }
  int saved_errno = errno;
  /* A set-user-ID (or otherwise privileged) program ignores the environment:
   * stats_file or show_stats_file would let its caller append to any file. */
  if (getauxval(AT_SECURE)) {
    errno = saved_errno;
    atomic_store_explicit(&options_state, 2, memory_order_release);
    return;
  }
  bool from_env[OPT_COUNT];
  for (size_t i = 0; i < OPT_COUNT; i++) {
    const char *value = getenv(opts[i].env);
    from_env[i] = value != NULL;
    if (value != NULL) apply_or_warn("", opts[i].env, &opts[i], value, strlen(value));
  }
  const char *conf = getenv("EBB_CONF");
  if (conf != NULL) read_conf(conf, from_env);
  check_unknown_variables();
  if (ebb_opt.verbose) print_options();
  errno = saved_errno;
  atomic_store_explicit(&options_state, 2, memory_order_release);
}

/* ---- public API ----------------------------------------------------------- */

EBB_EXPORT long long ebb_option_get(const char *name) {
  const opt_desc_t *o = name ? opt_find(name, strlen(name)) : NULL;
  if (o == NULL) {
    errno = EINVAL;
    return -1;
  }
  options_init();
  return opt_get(o);
}

EBB_EXPORT int ebb_option_set(const char *name, const char *value) {
  if (name == NULL || value == NULL) return EINVAL;
  const opt_desc_t *o = opt_find(name, strlen(name));
  if (o == NULL) return EINVAL;
  options_init(); /* the environment is read first, so this value wins */
  opt_value_t v;
  if (!opt_parse(o, value, strlen(value), &v)) return EINVAL;
  opt_store(o, &v);
  if (strncmp(o->name, "prof", 4) == 0) prof_options_changed(); /* takes effect now */
  return 0;
}
