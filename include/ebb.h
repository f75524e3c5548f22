/* ebb: a general-purpose memory allocator.
 *
 * Linking with -lebb (or LD_PRELOAD=libebb.so) replaces the standard malloc
 * family.  The ebb_* functions below are the same operations under ebb's own
 * names, plus a few that the standard family lacks; they can be used whether
 * or not ebb also replaces malloc.
 *
 * Every function is thread-safe.  Bad input gets a defined answer:
 *  - an impossible size (overflow, more than the OS will map) returns NULL
 *    with errno = ENOMEM;
 *  - an invalid alignment returns NULL (or the error code, for
 *    ebb_posix_memalign) with errno = EINVAL;
 *  - a pointer that ebb did not hand out, or that points inside a block, given
 *    to a function that takes an allocated pointer, prints one line naming the
 *    call and the pointer on stderr and aborts the process.
 */
#ifndef EBB_H
#define EBB_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EBB_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define EBB_MALLOC_ATTR
#endif

/* Version of the library, as "MAJOR.MINOR.PATCH". */
#define EBB_VERSION_STRING "0.1.0"
const char *ebb_version(void);

/* malloc(3): at least `size` bytes, aligned to 16 (to 8 for sizes up to 8).
 * ebb_malloc(0) returns a unique pointer that may be freed. */
void *ebb_malloc(size_t size) EBB_MALLOC_ATTR;

/* calloc(3): count * size zeroed bytes; NULL with ENOMEM if the product
 * overflows.  Memory known to be fresh from the OS is not zeroed again. */
void *ebb_calloc(size_t count, size_t size) EBB_MALLOC_ATTR;

/* realloc(3).  ebb_realloc(NULL, n) is ebb_malloc(n); ebb_realloc(p, 0) frees
 * p and returns NULL, as glibc does.  Shrinks and modest growth stay in place;
 * huge blocks grow by remapping rather than copying.  On failure p is left
 * untouched and NULL is returned with ENOMEM. */
void *ebb_realloc(void *p, size_t size) EBB_MALLOC_ATTR;

/* reallocarray(3): ebb_realloc(p, count * size) with overflow checked. */
void *ebb_reallocarray(void *p, size_t count, size_t size) EBB_MALLOC_ATTR;

/* realloc keeping an alignment (a power of two); for allocators, such as
 * Rust's GlobalAlloc, that must preserve over-alignment across realloc. */
void *ebb_realloc_aligned(void *p, size_t alignment, size_t size) EBB_MALLOC_ATTR;

/* free(3).  ebb_free(NULL) does nothing. */
void ebb_free(void *p);

/* Free a block whose requested size the caller knows (Rust's dealloc does).
 * A size larger than the block's usable size is reported as bad input. */
void ebb_free_sized(void *p, size_t size);

/* aligned_alloc(3): `alignment` must be a power of two (any power of two up to
 * at least 1 GiB works); otherwise NULL with EINVAL.  `size` need not be a
 * multiple of `alignment`. */
void *ebb_aligned_alloc(size_t alignment, size_t size) EBB_MALLOC_ATTR;

/* ebb_aligned_alloc, zeroed: memory known to be fresh from the OS is not
 * zeroed again (Rust's alloc_zeroed with a large alignment). */
void *ebb_calloc_aligned(size_t alignment, size_t size) EBB_MALLOC_ATTR;

/* posix_memalign(3): `alignment` must be a power of two multiple of
 * sizeof(void *); otherwise returns EINVAL and leaves *out untouched.
 * Returns ENOMEM (and leaves *out untouched) if memory cannot be had. */
int ebb_posix_memalign(void **out, size_t alignment, size_t size);

/* memalign(3): like glibc, an alignment that is not a power of two is rounded
 * up to the next one; an impossible alignment gives NULL with EINVAL. */
void *ebb_memalign(size_t alignment, size_t size) EBB_MALLOC_ATTR;

/* Bytes usable at p (at least what was requested); 0 for NULL. */
size_t ebb_usable_size(const void *p);

/* The usable size that a request of `size` bytes would get: asking for it
 * wastes nothing.  0 if `size` is impossible. */
size_t ebb_good_size(size_t size);

/* ---- options --------------------------------------------------------------
 * Read once, when ebb first initialises, from one environment variable each
 * (EBB_DECAY_MS=250, EBB_MEMORY_LIMIT=2G, ...) and from one combined string,
 * EBB_CONF="decay_ms:250,show_stats:1" (a variable named on its own wins over
 * EBB_CONF).  An unknown name or a bad value prints one warning line naming it
 * and what is used instead.  Sizes take K, M, G, T suffixes (powers of 1024);
 * durations take ms, s, m (a bare number is milliseconds).  Booleans take
 * 1/0, true/false, yes/no, on/off.
 *
 *   decay_ms        free memory goes back to the OS this long after it was
 *                   freed (default 250; 0: at once; -1: never, except by
 *                   ebb_collect(true) / malloc_trim or the memory limit)
 *   madv_free       purge with MADV_FREE instead of MADV_DONTNEED (default 0:
 *                   MADV_DONTNEED, whose drop shows in RSS at once)
 *   memory_limit    bytes; as the process's RSS nears it, ebb purges at once
 *                   whatever is free.  0 (default): the container's limit
 *                   (cgroup v2 memory.max, or v1 memory.limit_in_bytes)
 *   hard_limit      1: never map memory beyond memory_limit; allocations that
 *                   would return NULL with ENOMEM (default 0: the limit only
 *                   steers purging)
 *   background      1 (default): a background thread purges on time, so an
 *                   idle process gives memory back; 0: purging happens only
 *                   during allocator calls
 *   show_stats      1: print the statistics table to stderr at exit
 *   show_stats_file a path: append the table printed at exit to this file
 *                   instead (show_stats implied; "%p" becomes the process
 *                   id), which works when the program has closed stderr
 *   stats_interval  a duration; print one line of statistics that often
 *                   (to stderr, or as a JSON line appended to stats_file),
 *                   each with the process id and the time (Unix ms)
 *   stats_file      path for the periodic JSON lines
 *   verbose         1: print the options in effect and the limit found
 *   cgroup_path     where to look for the container's limit instead of
 *                   /sys/fs/cgroup: a cgroup directory or a limit file (tests)
 *   prof            1: sample allocations from the start (the heap
 *                   profiler; see ebb_prof_start)
 *   prof_rate       mean bytes allocated between samples (default 512K)
 *   prof_file       where the heap profile is written at exit (with prof,
 *                   or whenever prof_file is set) and by
 *                   prof_interval ("%p": the process id; default
 *                   "ebb.%p.heap"), beside it the same as collapsed stacks
 *                   (path + ".collapsed")
 *   prof_interval   a duration: also write the profile that often, to
 *                   prof_file + ".0000", ".0001", ... (compare two with
 *                   google-pprof --base)
 */

/* The option's value (sizes in bytes, durations in milliseconds, booleans
 * 0/1, strings: 1 if set, else 0); -1 with errno = EINVAL for an unknown
 * name. */
long long ebb_option_get(const char *name);

/* Set an option from text, as in the environment ("512M", "10s", "1").
 * Returns 0, or EINVAL (nothing changed) for an unknown name or bad value. */
int ebb_option_set(const char *name, const char *value);

/* ---- statistics -----------------------------------------------------------
 * Counters are kept per thread and summed when asked for; while other
 * threads run, the sum is a consistent-enough snapshot, not an atomic one.
 * "Resident" figures are ebb's own estimate of its memory that is backed by
 * RAM; `rss` is what the OS says for the whole process. */
#define EBB_STATS_CLASSES 122 /* index 0: huge blocks (above 2 MiB, or grown there by realloc) */

typedef struct ebb_class_stats {
  size_t block_size;          /* 0 for the huge entry */
  size_t pages;               /* pages of this class in use */
  size_t live_blocks;         /* blocks allocated and not freed */
  size_t live_bytes;          /* live_blocks * block size */
  size_t free_resident_bytes; /* free blocks' bytes still resident */
  unsigned long long allocs;  /* allocations ever */
  unsigned long long frees;   /* frees ever */
} ebb_class_stats_t;

typedef struct ebb_stats {
  /* bytes */
  size_t live_bytes;          /* in blocks handed out and not freed (usable size) */
  size_t huge_requested_bytes;/* requested size of live huge blocks */
  size_t page_bytes;          /* in pages that hold blocks */
  size_t resident_bytes;      /* ebb's estimate of its memory backed by RAM */
  size_t free_resident_bytes; /* resident but free: decaying, or fragmentation */
  size_t retained_bytes;      /* mapped, not resident: purged, or never written */
  size_t mapped_bytes;        /* address space ebb holds */
  size_t rss_bytes;           /* the process's RSS, from the OS (0 if unknown) */
  size_t memory_limit;        /* the limit in effect, 0 if none */
  unsigned long long purged_bytes; /* given back to the OS, ever */
  /* counts */
  unsigned long long allocs, frees;
  unsigned long long remote_frees; /* frees by a thread other than the block's
                                      owner, counted when the owner takes them in */
  unsigned long long mmap_calls, munmap_calls;
  unsigned long long purge_calls;  /* system calls that gave memory back: one
                                      process_madvise carries a batch of ranges */
  unsigned long long purge_passes;
  size_t threads;             /* heaps of running threads */
  size_t segments, huge_blocks;
  ebb_class_stats_t classes[EBB_STATS_CLASSES];
} ebb_stats_t;

/* Fill *out with a snapshot. */
void ebb_stats_get(ebb_stats_t *out);

/* Print a table a person reads, with a verdict (live vs resident vs RSS, and
 * where free-but-resident memory sits), to file descriptor fd (2: stderr). */
void ebb_stats_print(int fd);

/* Write the statistics as JSON / as Prometheus text exposition format
 * (metrics named ebb_*, with HELP and TYPE lines) into buf; like snprintf,
 * return the length the whole text needs (excluding the NUL) and write at
 * most size bytes, NUL-terminated when size > 0. */
size_t ebb_stats_json(char *buf, size_t size);
size_t ebb_stats_prometheus(char *buf, size_t size);

/* Return free memory.  Merges this thread's pending frees, gives the small
 * blocks it freed into other threads' pages (its foreign cache) back to
 * them, and gives its empty pages back to their segments.  With force (as
 * malloc_trim(0) does), everything free that ebb holds goes back to the OS
 * at once, whatever the decay: every thread's free spans and sparse pages,
 * the segments of exited threads, cached huge mappings.  Other live
 * threads' foreign caches (at most 132 KiB of blocks each) stay: only
 * their owners may empty them. */
void ebb_collect(bool force);

/* ---- heap profiling -------------------------------------------------------
 * Which call sites hold the memory.  While on, one allocation is sampled
 * per `rate` bytes allocated on average (a Poisson process over the bytes,
 * so an allocation of s bytes is sampled with probability 1 - exp(-s/rate)),
 * its stack recorded (glibc: the DWARF unwinder, which needs no frame
 * pointers; musl: frame pointers), and each sample stands for the
 * allocations it represents.  Off (the default) it costs nothing; on at the
 * default rate, 8% on the geometric mean of make bench's workloads, most of
 * it unwinding stacks, and less for programs that allocate less (README:
 * "Heap profiling").  EBB_PROF=1 starts it with the process. */

/* Start sampling, one sample per `rate` bytes on average (0: 512 KiB).
 * Threads that are running pick it up at their next slow-path allocation
 * of each size class.  Returns 0. */
int ebb_prof_start(size_t rate);

/* Stop sampling new allocations; blocks sampled so far stay in the profile
 * until they are freed. */
void ebb_prof_stop(void);

/* The sampling rate in bytes, 0 while off. */
size_t ebb_prof_rate(void);

/* Write the live sampled heap, by call site, in the gperftools heap-profile
 * text format (read by `google-pprof --text PROGRAM PATH`, `--svg`, and
 * `--base OLD` for growth), with estimated bytes and blocks live and
 * allocated in all.  path NULL: prof_file.  Returns 0, or -1 with errno. */
int ebb_prof_dump(const char *path);

/* The same as collapsed stacks ("outer;...;inner live_bytes" per line),
 * for flame graph tools; functions the program does not export are shown
 * as object+offset.  Returns 0, or -1 with errno. */
int ebb_prof_dump_collapsed(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* EBB_H */
