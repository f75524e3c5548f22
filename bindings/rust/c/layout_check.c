/* For the crate's tests only: the layout of ebb_stats_t as the C compiler
 * sees it, so a test can compare it with the #[repr(C)] mirror in
 * src/stats.rs.  The order of the entries is the order the test expects. */
#include <stdalign.h>
#include <stddef.h>

#include "ebb.h"

static const size_t layout[] = {
    sizeof(ebb_stats_t),
    alignof(ebb_stats_t),
    sizeof(ebb_class_stats_t),
    alignof(ebb_class_stats_t),
    EBB_STATS_CLASSES,
    offsetof(ebb_stats_t, live_bytes),
    offsetof(ebb_stats_t, huge_requested_bytes),
    offsetof(ebb_stats_t, page_bytes),
    offsetof(ebb_stats_t, resident_bytes),
    offsetof(ebb_stats_t, free_resident_bytes),
    offsetof(ebb_stats_t, retained_bytes),
    offsetof(ebb_stats_t, mapped_bytes),
    offsetof(ebb_stats_t, rss_bytes),
    offsetof(ebb_stats_t, memory_limit),
    offsetof(ebb_stats_t, purged_bytes),
    offsetof(ebb_stats_t, allocs),
    offsetof(ebb_stats_t, frees),
    offsetof(ebb_stats_t, remote_frees),
    offsetof(ebb_stats_t, mmap_calls),
    offsetof(ebb_stats_t, munmap_calls),
    offsetof(ebb_stats_t, purge_calls),
    offsetof(ebb_stats_t, purge_passes),
    offsetof(ebb_stats_t, threads),
    offsetof(ebb_stats_t, segments),
    offsetof(ebb_stats_t, huge_blocks),
    offsetof(ebb_stats_t, classes),
    offsetof(ebb_class_stats_t, block_size),
    offsetof(ebb_class_stats_t, pages),
    offsetof(ebb_class_stats_t, live_blocks),
    offsetof(ebb_class_stats_t, live_bytes),
    offsetof(ebb_class_stats_t, free_resident_bytes),
    offsetof(ebb_class_stats_t, allocs),
    offsetof(ebb_class_stats_t, frees),
};

/* Points *out at the table and returns its length. */
size_t ebb_rust_layout_check(const size_t **out) {
  *out = layout;
  return sizeof layout / sizeof layout[0];
}
