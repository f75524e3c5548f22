/* The parsers behind ebb's options (options.c) and the cgroup reader's
 * test entry point (cgroup.c), exposed for test/unit_options.c.  The rest of
 * the library needs only what internal.h declares (ebb_opt, options_init,
 * os_cgroup_memory_limit).
 *
 * Every parser takes a NUL-terminated string, tolerates spaces and tabs
 * around the value, never allocates, and on a bad value returns false and
 * leaves *out untouched.  All arithmetic is overflow-checked. */
#ifndef EBB_OPTIONS_H
#define EBB_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

/* A size in bytes: digits, then an optional K, M, G or T (powers of 1024),
 * then an optional "B" (or "iB" after a multiplier); case-insensitive:
 * "1024", "64k", "512M", "2GiB", "100b".  At most 2^63 - 1 (so that
 * ebb_option_get can return every size); no sign, no fraction. */
bool options_parse_size(const char *text, size_t *out);

/* A duration in milliseconds: digits, then an optional unit "ms", "s" or "m"
 * (minutes), case-insensitive: "250", "250ms", "10s", "1m".  No sign.  At
 * most what keeps the value in nanoseconds within a signed 64-bit integer
 * (about 292 years), so users may convert to ns without overflow. */
bool options_parse_duration(const char *text, long long *out_ms);

/* 1/0, true/false, yes/no, on/off; case-insensitive. */
bool options_parse_bool(const char *text, bool *out);

/* cgroup.c: the memory limit for the cgroup named in `self_cgroup` (a file
 * in the format of /proc/self/cgroup) with the v2 hierarchy mounted at
 * `v2_root` and the v1 memory controller at `v1_root`: the smallest limit
 * along the cgroup's path, 0 if none.  os_cgroup_memory_limit(NULL) is
 * os_cgroup_limit_from("/proc/self/cgroup", "/sys/fs/cgroup",
 * "/sys/fs/cgroup/memory"). */
size_t os_cgroup_limit_from(const char *self_cgroup, const char *v2_root, const char *v1_root);

#endif /* EBB_OPTIONS_H */
