/* The statistics as text, from a snapshot filled by ebb_stats_get
 * (stats_print.c).  The exported ebb_stats_print / ebb_stats_json /
 * ebb_stats_prometheus take a snapshot and call these; the periodic printer
 * (stats_interval) and the exit hook (show_stats) call them on a snapshot of
 * their own.
 *
 * None of them allocates or uses stdio (they may run at exit and on the
 * background thread).  The stats_format_* functions have snprintf's
 * contract: they return the length the whole text needs (excluding the
 * NUL), write at most `size` bytes, NUL-terminated when size > 0, and
 * accept (NULL, 0). */
#ifndef EBB_STATS_FORMAT_H
#define EBB_STATS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "ebb.h"

/* Buffers of these sizes always hold the whole text and its NUL, whatever
 * the numbers (test/unit_stats_format.c checks it with every field at its
 * largest and every class in use): 30.2 KiB, 54.9 KiB and 97 bytes at most. */
#define STATS_JSON_MAX 32768
#define STATS_PROMETHEUS_MAX 65536
#define STATS_LINE_MAX 256

/* The one-line summary (stats_format_periodic's text form, without the pid
 * and time), without a trailing newline:
 *   "ebb: live 12.3 MiB, resident 20.0 MiB, free resident 7.7 MiB,
 *    rss 30.1 MiB, fragmentation 38.5%"                      (on one line) */
size_t stats_format_line(const ebb_stats_t *st, char *buf, size_t size);

/* A periodic line, saying when and whose, without a trailing newline: the
 * summary line as "ebb: pid=P unix_ms=T live ...", or (json) the JSON
 * object with "unix_ms" and "pid" first.  At most STATS_JSON_MAX + 64
 * bytes. */
size_t stats_format_periodic(const ebb_stats_t *st, bool json, long pid, unsigned long long unix_ms,
                             char *buf, size_t size);

/* One JSON object on one line (no newline inside, none at the end): every
 * field of ebb_stats_t under its own name, "fragmentation" (0..1, the share
 * of ebb's resident memory that is free), and "classes": the classes in use,
 * each with its index as "class" and the fields of ebb_class_stats_t. */
size_t stats_format_json(const ebb_stats_t *st, char *buf, size_t size);

/* Prometheus text exposition format 0.0.4 (ends with a newline). */
size_t stats_format_prometheus(const ebb_stats_t *st, char *buf, size_t size);

/* The table a person reads, with its verdict, written to fd. */
void stats_write_table(const ebb_stats_t *st, int fd);

#endif /* EBB_STATS_FORMAT_H */
