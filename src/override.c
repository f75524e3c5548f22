/* The standard malloc family under its own names, so that linking with
 * -lebb or LD_PRELOAD=libebb.so replaces the C library's allocator.  Every
 * function of the family is defined: a missing one would let the C
 * library's version hand its own blocks to ebb's free.  Built out when
 * EBB_OVERRIDE=0 (the sanitizer build, which runs on the sanitizer's malloc). */
#ifndef EBB_OVERRIDE
#define EBB_OVERRIDE 1
#endif

#include "fastpath.h"

#if EBB_OVERRIDE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

EBB_EXPORT void *malloc(size_t size) { return malloc_fast(size); }
EBB_EXPORT void free(void *p) { free_fast(p, "free", 0); }
EBB_EXPORT void *calloc(size_t count, size_t size) { return calloc_fast(count, size); }
EBB_EXPORT void *realloc(void *p, size_t size) { return realloc_generic(p, size, 0, "realloc"); }
EBB_EXPORT void *reallocarray(void *p, size_t count, size_t size) {
  return ebb_reallocarray(p, count, size);
}
EBB_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
  return ebb_posix_memalign(out, alignment, size);
}
EBB_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
  return ebb_aligned_alloc(alignment, size);
}
EBB_EXPORT void *memalign(size_t alignment, size_t size) { return ebb_memalign(alignment, size); }
EBB_EXPORT void *valloc(size_t size) {
  ebb_init();
  return alloc_aligned(ebb_os_page_size, size, false);
}
EBB_EXPORT void *pvalloc(size_t size) {
  ebb_init();
  size_t page = ebb_os_page_size;
  if (size > EBB_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
  return alloc_aligned(page, rounded, false);
}
EBB_EXPORT size_t malloc_usable_size(void *p) { return usable_size_checked(p, "malloc_usable_size"); }
EBB_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  ebb_collect(true);
  return 1;
}
EBB_EXPORT void cfree(void *p) { free_fast(p, "cfree", 0); }

/* C23: the size (and alignment) the block was allocated with.  The size is
 * checked as ebb_free_sized checks it (it must fit the block), and the
 * alignment against the pointer; a mismatch is reported, not ignored. */
EBB_EXPORT void free_sized(void *p, size_t size) {
  if (p != NULL) free_fast(p, "free_sized", size);
}
EBB_EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size) {
  if (p != NULL) free_aligned_fast(p, alignment, "free_aligned_sized", size);
}

#if defined(__GLIBC__)
/* glibc's report of the heap, from ebb's statistics (ebb_stats_get):
 * `arena` is the address space in segments, `uordblks` the bytes of the
 * blocks handed out from them and `fordblks` the rest of `arena` (free
 * blocks, free pages, memory given back), as glibc keeps arena = uordblks +
 * fordblks; `hblks`/`hblkhd` are the huge blocks mapped on their own.
 * ebb_stats_print has the finer split. */
EBB_EXPORT struct mallinfo2 mallinfo2(void) {
  ebb_stats_t st;
  ebb_stats_get(&st);
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof mi);
  size_t huge_bytes = atomic_load_explicit(&ebb_huge_bytes, memory_order_relaxed);
  size_t mapped = atomic_load_explicit(&ebb_os_mapped_bytes, memory_order_relaxed);
  mi.arena = mapped > huge_bytes ? mapped - huge_bytes : 0;
  size_t in_use = st.live_bytes - st.classes[0].live_bytes; /* class 0: huge blocks */
  mi.uordblks = in_use < mi.arena ? in_use : mi.arena;
  mi.fordblks = mi.arena - mi.uordblks;
  mi.hblks = atomic_load_explicit(&ebb_huge_count, memory_order_relaxed);
  mi.hblkhd = huge_bytes;
  return mi;
}

/* glibc's summary on stderr, its lines and figures as mallinfo2 gives them;
 * the whole table is ebb_stats_print's (or EBB_SHOW_STATS=1 at exit). */
EBB_EXPORT void malloc_stats(void) {
  struct mallinfo2 mi = mallinfo2();
  char buf[512];
  int n = snprintf(buf, sizeof buf,
                   "Arena 0:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
                   "Total (incl. mmap):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
                   "max mmap regions = %10zu\nmax mmap bytes   = %10zu\n",
                   mi.arena, mi.uordblks, mi.arena + mi.hblkhd, mi.uordblks + mi.hblkhd, mi.hblks,
                   mi.hblkhd);
  if (n > 0) os_write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}
EBB_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = (int)(m2.arena > INT32_MAX ? INT32_MAX : m2.arena);
  mi.hblks = (int)(m2.hblks > INT32_MAX ? INT32_MAX : m2.hblks);
  mi.hblkhd = (int)(m2.hblkhd > INT32_MAX ? INT32_MAX : m2.hblkhd);
  return mi;
}

/* glibc's internal entry points, which a few programs call by name. */
EBB_EXPORT void *__libc_malloc(size_t size) { return malloc_fast(size); }
EBB_EXPORT void __libc_free(void *p) { free_fast(p, "free", 0); }
EBB_EXPORT void *__libc_calloc(size_t count, size_t size) { return calloc_fast(count, size); }
EBB_EXPORT void *__libc_realloc(void *p, size_t size) { return realloc_generic(p, size, 0, "realloc"); }
EBB_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return ebb_memalign(alignment, size); }
EBB_EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
EBB_EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }
#endif
#endif /* EBB_OVERRIDE */
