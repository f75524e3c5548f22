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

/* Return free memory.  Merges this thread's pending frees and gives its
 * empty pages back to their segments and empty segments to the process pool
 * (whose memory is returned to the OS).  With force (as malloc_trim does),
 * also adopts the segments of exited threads, so everything they left free
 * is returned too, and releases the segment this thread keeps for reuse. */
void ebb_collect(bool force);

#ifdef __cplusplus
}
#endif

#endif /* EBB_H */
