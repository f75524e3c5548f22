/* Statistics: counters kept per thread where they are cheap, and the rest
 * read off the allocator's own structures when asked for.
 *
 * Allocations are counted per page (one add on malloc's fast path) and
 * moved into the owning heap's per-class counters whenever the page's free
 * list is refilled; frees are not counted at all: frees = allocations -
 * live blocks.  Live blocks are the pages' `used` counts, so live bytes are
 * exact for a quiet process (blocks freed by other threads count as live
 * until their owner collects them).  Resident figures are estimates from
 * what ebb knows it touched and purged; the OS's RSS is read beside them.
 *
 * Reads of other threads' counters race with their updates by design: a
 * snapshot, not an atomic one.  Every read here is of memory that is never
 * unmapped (segments, heaps). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "stats_format.h"

_Atomic uint64_t ebb_stat_retired_allocs[EBB_CLASS_COUNT];
_Atomic uint64_t ebb_stat_retired_remote_frees, ebb_stat_huge_allocs, ebb_stat_huge_frees;

static uint64_t load64(_Atomic uint64_t *p) { return atomic_load_explicit(p, memory_order_relaxed); }

void stats_retire_heap(ebb_heap_t *heap) {
  for (unsigned c = 0; c < EBB_CLASS_COUNT; c++) {
    if (heap->stat_allocs[c])
      atomic_fetch_add_explicit(&ebb_stat_retired_allocs[c], heap->stat_allocs[c], memory_order_relaxed);
    heap->stat_allocs[c] = 0;
  }
  atomic_fetch_add_explicit(&ebb_stat_retired_remote_frees, heap->stat_remote_frees, memory_order_relaxed);
  heap->stat_remote_frees = 0;
}

static void add_page(ebb_stats_t *st, const ebb_page_t *page) {
  unsigned cls = page->class_idx;
  /* Read once: the page may be retired meanwhile (its descriptor cleared),
   * and a second read of a zero block size divided by it (SIGFPE, seen
   * once in the Rust binding's tests, which read stats while threads free). */
  size_t block_size = __atomic_load_n(&page->block_size, __ATOMIC_RELAXED);
  if (cls == 0 || cls >= EBB_CLASS_COUNT || block_size == 0) return; /* torn read */
  ebb_class_stats_t *c = &st->classes[cls];
  size_t span = (size_t)page->slice_count * EBB_SLICE_SIZE;
  uint32_t used = page_used(page);
  /* Holes the purger made that the owner has not taken in yet still count
   * as used: about a unit's worth of blocks each. */
  uint64_t remote_holes = atomic_load_explicit(&page->remote_holes, memory_order_relaxed);
  uint32_t hole_blocks = (uint32_t)((size_t)__builtin_popcountll(remote_holes) * page_unit_size(page) / block_size);
  used = used > hole_blocks ? used - hole_blocks : 0;
  if (used > page->reserved) used = page->reserved; /* torn read */
  size_t live = (size_t)used * block_size;
  size_t resident = page->mem_fresh ? round_page((size_t)page->capacity * block_size) : span;
  /* A one-slice page knows what its slice may hold resident, inherited
   * from earlier pages there included (ebb_page_t.touched). */
  if (page->slice_count == 1) resident = slice_touched_bytes(page);
  if (resident > span) resident = span;
  /* Purged units count only where they lie within what is counted: the
   * purge marks the units above a one-slice page's carving too. */
  size_t unit = page_unit_size(page), within = (resident + unit - 1) / unit;
  uint64_t counted = within >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << within) - 1);
  size_t purged = (size_t)__builtin_popcountll((page->purged | remote_holes) & counted) * unit;
  resident = resident > purged ? resident - purged : 0;
  if (resident < live) resident = live;
  c->pages++;
  c->live_blocks += used;
  c->live_bytes += live;
  c->free_resident_bytes += resident - live;
  c->allocs += page->alloc_count;
  st->page_bytes += span;
  st->resident_bytes += resident;
}

EBB_EXPORT void ebb_stats_get(ebb_stats_t *st) {
  memset(st, 0, sizeof *st);
  /* Blocks in threads' medium and foreign caches: free, though their pages
   * count them as used.  Other threads' counters are read as they stand. */
  size_t cached_blocks[EBB_CLASS_COUNT] = {0};
  ebb_init();
  for (unsigned c = 1; c < EBB_CLASS_COUNT; c++) st->classes[c].block_size = class_size(c);

  for (ebb_heap_t *heap = atomic_load_explicit(&ebb_all_heaps, memory_order_acquire); heap;
       heap = heap->all_next) {
    if (heap->is_live) st->threads++;
    for (unsigned c = 1; c < EBB_CLASS_COUNT; c++) st->classes[c].allocs += heap->stat_allocs[c];
    for (unsigned i = 0; i < EBB_MEDIUM_CACHE_CLASSES; i++)
      if (atomic_load_explicit(&heap->medium_cache[i], memory_order_relaxed) != NULL)
        cached_blocks[EBB_SMALL_CLASS_MAX + 1 + i]++;
    for (unsigned c = 1; c < EBB_FOREIGN_CLASSES; c++) {
      const ebb_page_t *fc = &heap->foreign[c];
      st->classes[c].allocs += fc->alloc_count; /* its pops, not yet in stat_allocs */
      /* Read while the owner may be resetting it: a count out of range
       * (no class holds more than the bound in 8-byte blocks) is none. */
      int64_t n = (int64_t)fc->capacity - (int64_t)fc->used_minus_one;
      if (n > 0 && n <= (EBB_FOREIGN_CLASS_BYTES + EBB_SAMPLE_GRANT_BYTES) / 8) cached_blocks[c] += (size_t)n;
    }
    st->remote_frees += heap->stat_remote_frees;
  }
  for (unsigned c = 1; c < EBB_CLASS_COUNT; c++)
    st->classes[c].allocs += load64(&ebb_stat_retired_allocs[c]);
  st->remote_frees += load64(&ebb_stat_retired_remote_frees);

  size_t header = round_page(sizeof(ebb_segment_t));
  for (ebb_segment_t *seg = atomic_load_explicit(&ebb_all_segments, memory_order_acquire); seg;
       seg = seg->all_next) {
    st->segments++;
    uint64_t used = seg->used_slices;
    uint64_t free_dirty = seg->dirty_slices & ~used & ~(uint64_t)1;
    st->resident_bytes += header;
    for (; free_dirty; free_dirty &= free_dirty - 1) /* as far as their pages carved them */
      st->resident_bytes += slice_touched_bytes(&seg->pages[__builtin_ctzll(free_dirty)]);
    FOR_EACH_PAGE(seg, page) add_page(st, page);
  }

  /* huge blocks: class 0 */
  ebb_class_stats_t *huge = &st->classes[0];
  size_t huge_mapped = atomic_load_explicit(&ebb_huge_bytes, memory_order_relaxed);
  huge->live_blocks = atomic_load_explicit(&ebb_huge_count, memory_order_relaxed);
  huge->pages = huge->live_blocks;
  huge->live_bytes = atomic_load_explicit(&ebb_huge_usable_bytes, memory_order_relaxed);
  huge->allocs = load64(&ebb_stat_huge_allocs);
  size_t cached = huge_cache_bytes_held();
  huge->free_resident_bytes = cached;
  st->huge_blocks = huge->live_blocks;
  st->huge_requested_bytes = atomic_load_explicit(&ebb_huge_requested_bytes, memory_order_relaxed);
  st->resident_bytes += huge_mapped + cached;

  for (unsigned c = 1; c <= EBB_MEDIUM_CACHE_CLASS_MAX; c++) {
    ebb_class_stats_t *k = &st->classes[c];
    size_t n = cached_blocks[c] < k->live_blocks ? cached_blocks[c] : k->live_blocks;
    k->live_blocks -= n;
    k->live_bytes -= n * k->block_size;
    k->free_resident_bytes += n * k->block_size;
  }
  for (unsigned c = 0; c < EBB_CLASS_COUNT; c++) {
    ebb_class_stats_t *k = &st->classes[c];
    k->frees = k->allocs > k->live_blocks ? k->allocs - k->live_blocks : 0;
    st->live_bytes += k->live_bytes;
    st->allocs += k->allocs;
    st->frees += k->frees;
  }
  st->free_resident_bytes = st->resident_bytes > st->live_bytes ? st->resident_bytes - st->live_bytes : 0;
  st->mapped_bytes = atomic_load_explicit(&ebb_os_mapped_bytes, memory_order_relaxed);
  st->retained_bytes = st->mapped_bytes > st->resident_bytes ? st->mapped_bytes - st->resident_bytes : 0;
  st->rss_bytes = os_rss_bytes();
  st->memory_limit = purge_memory_limit();
  st->purged_bytes = load64(&ebb_stat_purged_bytes);
  st->mmap_calls = load64(&ebb_stat_mmap_calls);
  st->munmap_calls = load64(&ebb_stat_munmap_calls);
  st->purge_calls = load64(&ebb_stat_purge_calls);
  st->purge_passes = load64(&ebb_stat_purge_passes);
}

/* ---- printing on a schedule, and at exit ----------------------------------- */
static uint32_t last_periodic;
static bool periodic_started;

/* Called by the purger (or an inline pass) every tick. */
void stats_periodic(uint32_t now) {
  long long interval = ebb_opt.stats_interval_ms;
  if (interval <= 0) return;
  if (!periodic_started) {
    periodic_started = true;
    last_periodic = now;
    return;
  }
  if ((long long)(uint32_t)(now - last_periodic) < interval) return;
  last_periodic = now;
  static ebb_stats_t st; /* one caller at a time: the purger, or a pass under its lock */
  static char line[STATS_JSON_MAX + 64];
  ebb_stats_get(&st);
  /* Each line says when and whose: a series to plot, or to join with other
   * metrics, and several processes writing one file. */
  bool json = ebb_opt.stats_file[0] != 0;
  size_t n = stats_format_periodic(&st, json, (long)getpid(), os_unix_ms(), line, sizeof line - 1);
  if (n > sizeof line - 2) return; /* cannot happen: the text is bounded */
  line[n++] = '\n';
  if (json) {
    int fd = open(ebb_opt.stats_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    os_write_all(fd, line, n);
    close(fd);
  } else {
    os_write_all(2, line, n);
  }
}

/* The path with each "%p" replaced by the process id (a program and the
 * programs it runs each get their own file); false if it does not fit. */
bool path_with_pid(const char *pattern, char *out, size_t size) {
  char pid[24];
  size_t pid_len = 0;
  for (unsigned long v = (unsigned long)getpid(); v || pid_len == 0; v /= 10) pid[pid_len++] = (char)('0' + v % 10);
  size_t n = 0;
  for (const char *c = pattern; *c; c++) {
    if (c[0] == '%' && c[1] == 'p') {
      if (n + pid_len >= size) return false;
      for (size_t i = 0; i < pid_len; i++) out[n++] = pid[pid_len - 1 - i];
      c++;
    } else {
      if (n + 1 >= size) return false;
      out[n++] = *c;
    }
  }
  out[n] = 0;
  return true;
}

/* At exit: the table to show_stats_file when it is set (appended; stderr
 * may be closed by then: ls and other coreutils close it before exit), else
 * to stderr with show_stats. */
__attribute__((destructor)) static void stats_at_exit(void) {
  if (ebb_opt.show_stats_file[0]) {
    char path[EBB_PATH_MAX + 32];
    if (!path_with_pid(ebb_opt.show_stats_file, path, sizeof path)) return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ebb_stats_print(fd);
    close(fd);
  } else if (ebb_opt.show_stats) {
    ebb_stats_print(2);
  }
}
