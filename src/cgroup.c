/* The container's memory limit, from the cgroup file system.
 *
 * cgroup v2: /proc/self/cgroup has a line "0::/path"; the limit is the
 * smallest memory.max of /sys/fs/cgroup/path and each of its ancestors up to
 * /sys/fs/cgroup itself ("max": none at that level).
 * cgroup v1: a line "N:...,memory,...:/path"; the same walk over
 * /sys/fs/cgroup/memory/path/memory.limit_in_bytes, where "no limit" is a
 * huge number (PAGE_COUNTER_MAX pages in bytes, about 2^63).
 * On a hybrid system both are looked at and the smaller limit wins.  Walking
 * up also finds the limit when the process sees its container's cgroup as
 * the root of /sys/fs/cgroup but /proc/self/cgroup names the host's path.
 *
 * Runs inside malloc's first initialisation: open/read/close with stack
 * buffers only, errno preserved, 0 on any error. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "options.h"

/* At or above this, a limit means "none" (v1 writes 2^63 - page size). */
#define CGROUP_NO_LIMIT ((uint64_t)1 << 62)
/* Longest cgroup path handled; longer lines are skipped. */
#define CGROUP_LINE_MAX 2048

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Read up to cap-1 bytes of the open file fd into buf, NUL-terminated; -1 on
 * error or if the file is larger. */
static ssize_t read_small(int fd, char *buf, size_t cap) {
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    len += (size_t)r;
    if (len == cap - 1) {
      char extra;
      ssize_t more;
      do more = read(fd, &extra, 1);
      while (more < 0 && errno == EINTR);
      if (more != 0) return -1; /* not a limit file */
      break;
    }
  }
  buf[len] = 0;
  return (ssize_t)len;
}

/* A limit file's content: a number of bytes, or "max".  1 with *out set for
 * a limit, 0 for none (or one so large it means none), -1 if unreadable. */
static int parse_limit(const char *s, size_t n, uint64_t *out) {
  while (n > 0 && is_space(*s)) s++, n--;
  while (n > 0 && is_space(s[n - 1])) n--;
  if (n == 3 && memcmp(s, "max", 3) == 0) return 0;
  if (n == 0) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0; /* beyond 2^64: surely no limit */
    v = v * 10 + d;
  }
  if (v == 0 || v >= CGROUP_NO_LIMIT) return 0;
  *out = v;
  return 1;
}

/* The limit in the file `name` relative to directory fd `dir` (AT_FDCWD for
 * a plain path); 0 for none or on any error. */
static uint64_t limit_in_file(int dir, const char *name) {
  int fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return 0;
  char buf[64];
  ssize_t n = read_small(fd, buf, sizeof buf);
  close(fd);
  uint64_t v = 0;
  if (n < 0 || parse_limit(buf, (size_t)n, &v) != 1) return 0;
  return v;
}

static uint64_t min_limit(uint64_t a, uint64_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return a < b ? a : b;
}

/* The smallest limit in `file` inside root+rel and each of its ancestors up
 * to root.  `rel` is the path from /proc/self/cgroup ("/" or "/a/b"). */
static uint64_t walk_up(const char *root, const char *rel, size_t rel_len, const char *file) {
  char path[CGROUP_LINE_MAX + 256];
  size_t root_len = strlen(root);
  while (root_len > 0 && root[root_len - 1] == '/') root_len--;
  size_t file_len = strlen(file);
  if (root_len + rel_len + 1 + file_len + 1 > sizeof path) return 0;
  memcpy(path, root, root_len);
  size_t len = root_len;
  /* append rel, without "." and ".." components or empty ones */
  for (size_t i = 0; i < rel_len;) {
    while (i < rel_len && rel[i] == '/') i++;
    size_t start = i;
    while (i < rel_len && rel[i] != '/') i++;
    size_t c = i - start;
    if (c == 0 || (c == 1 && rel[start] == '.') ||
        (c == 2 && rel[start] == '.' && rel[start + 1] == '.'))
      continue;
    path[len++] = '/';
    memcpy(path + len, rel + start, c);
    len += c;
  }
  uint64_t best = 0;
  for (;;) {
    path[len] = '/';
    memcpy(path + len + 1, file, file_len + 1);
    best = min_limit(best, limit_in_file(AT_FDCWD, path));
    if (len <= root_len) break;
    while (len > root_len && path[len - 1] != '/') len--;
    if (len > root_len) len--; /* drop the '/' too */
  }
  return best;
}

/* Does the comma-separated controller list contain "memory"? */
static bool lists_memory(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t start = i;
    while (i < n && s[i] != ',') i++;
    if (i - start == 6 && memcmp(s + start, "memory", 6) == 0) return true;
    i++;
  }
  return false;
}

typedef struct {
  const char *v2_root, *v1_root;
  uint64_t limit;
} scan_t;

/* One line of /proc/self/cgroup: "id:controllers:path". */
static void scan_line(scan_t *sc, const char *line, size_t n) {
  const char *c1 = memchr(line, ':', n);
  if (c1 == NULL) return;
  const char *ctl = c1 + 1;
  const char *c2 = memchr(ctl, ':', n - (size_t)(ctl - line));
  if (c2 == NULL) return;
  size_t ctl_len = (size_t)(c2 - ctl);
  const char *path = c2 + 1;
  size_t path_len = n - (size_t)(path - line);
  if (path_len == 0 || path[0] != '/') return;
  bool v2 = (c1 - line) == 1 && line[0] == '0' && ctl_len == 0;
  if (v2)
    sc->limit = min_limit(sc->limit, walk_up(sc->v2_root, path, path_len, "memory.max"));
  else if (lists_memory(ctl, ctl_len))
    sc->limit =
        min_limit(sc->limit, walk_up(sc->v1_root, path, path_len, "memory.limit_in_bytes"));
}

size_t os_cgroup_limit_from(const char *self_cgroup, const char *v2_root, const char *v1_root) {
  int saved = errno;
  scan_t sc = {v2_root, v1_root, 0};
  int fd = open(self_cgroup, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    errno = saved;
    return 0;
  }
  /* Lines are assembled in buf; a line longer than the buffer is skipped. */
  char buf[CGROUP_LINE_MAX];
  size_t len = 0;
  bool skipping = false, eof = false;
  while (!eof) {
    ssize_t r = read(fd, buf + len, sizeof buf - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    if (r == 0) {
      eof = true;
      if (len > 0 && !skipping) scan_line(&sc, buf, len);
      break;
    }
    len += (size_t)r;
    size_t start = 0;
    for (;;) {
      char *nl = memchr(buf + start, '\n', len - start);
      if (nl == NULL) break;
      size_t end = (size_t)(nl - buf);
      if (!skipping) scan_line(&sc, buf + start, end - start);
      skipping = false;
      start = end + 1;
    }
    memmove(buf, buf + start, len - start);
    len -= start;
    if (len == sizeof buf) { /* a line too long to handle */
      skipping = true;
      len = 0;
    }
  }
  close(fd);
  errno = saved;
  return sc.limit > SIZE_MAX ? SIZE_MAX : (size_t)sc.limit;
}

size_t os_cgroup_memory_limit(const char *where) {
  if (where == NULL || where[0] == 0)
    return os_cgroup_limit_from("/proc/self/cgroup", "/sys/fs/cgroup", "/sys/fs/cgroup/memory");
  int saved = errno;
  uint64_t limit = 0;
  int fd = open(where, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      /* v2 if the directory has memory.max, else v1 */
      if (faccessat(fd, "memory.max", F_OK, 0) == 0)
        limit = limit_in_file(fd, "memory.max");
      else
        limit = limit_in_file(fd, "memory.limit_in_bytes");
    } else if (S_ISREG(st.st_mode)) {
      char buf[64];
      ssize_t n = read_small(fd, buf, sizeof buf);
      uint64_t v;
      if (n >= 0 && parse_limit(buf, (size_t)n, &v) == 1) limit = v;
    }
  }
  if (fd >= 0) close(fd);
  errno = saved;
  return limit > SIZE_MAX ? SIZE_MAX : (size_t)limit;
}
