/* The hot paths: malloc of a small size from the thread's current page, and
 * free of a block by the thread that owns its page.  Everything else falls
 * into one generic slow path in alloc.c.  Included by alloc.c (the ebb_* API)
 * and override.c (the malloc family), so both get the same inline code. */
#ifndef EBB_FASTPATH_H
#define EBB_FASTPATH_H

#include "internal.h"

/* The secure build's check on free (EBB_SECURE, internal.h): a block
 * whose link word decodes to the end of a list or to a block of its page
 * may be on a list already.  The caller then frees it through
 * secure_free_checked (a tail call, so the fast path keeps no frame),
 * which looks.  The pops check each block in page_pop. */
#if EBB_SECURE
EBB_INLINE bool secure_suspicious(const ebb_page_t *page, const ebb_block_t *block) {
  ebb_block_t *link = block_next(block);
  return link == NULL || page_is_block_start(page, link);
}
#endif

EBB_INLINE void *malloc_fast(size_t size) {
  ebb_page_t *page;
  if (likely(size <= EBB_DIRECT_MAX)) page = ebb_tls_heap->direct[size];
  else if (size <= EBB_SMALL_MAX) page = ebb_tls_heap->direct[direct_index(size)];
  else return alloc_generic(size, false);
  ebb_block_t *block = page->free;
  if (likely(block != NULL)) {
#if EBB_SECURE
    /* page_pop's check, with a tail call when it fails: no frame here */
    if (unlikely(!page_is_block_start(page, block))) return secure_pop_checked(page);
#endif
    ebb_block_t *next = block_take_next(block);
    /* No code: it keeps gcc from holding the block outside the return
     * register (then a move before ret, on every malloc). */
    __asm__("" : "+r"(block));
    page->free = next;
    page->used_minus_one++;
    page->alloc_count++;
    return block;
  }
  return alloc_generic(size, false);
}

/* A block from the page direct[] names for `index_size` (at most
 * EBB_SMALL_MAX; any size of the class wanted), its first `size` bytes
 * zeroed if asked; NULL when that page has none free. */
EBB_INLINE void *direct_take(size_t index_size, size_t size, bool zero) {
  ebb_page_t *page = ebb_tls_heap->direct[direct_index(index_size)];
  if (unlikely(page->free == NULL)) return NULL;
  return page_take(page, size, zero);
}

/* Up to EBB_SMALL_MAX, as malloc_fast: above 1 KiB calloc went through
 * alloc_generic on every call (rptest's callocs of 1-8 KiB). */
EBB_INLINE void *calloc_fast(size_t count, size_t size) {
  size_t total;
  if (unlikely(__builtin_mul_overflow(count, size, &total))) return alloc_generic(SIZE_MAX, true);
  ebb_page_t *page;
  if (likely(total <= EBB_DIRECT_MAX)) page = ebb_tls_heap->direct[total]; /* as malloc_fast */
  else if (total <= EBB_SMALL_MAX) page = ebb_tls_heap->direct[direct_index(total)];
  else return alloc_generic(total, true);
  if (likely(page->free != NULL)) return page_take(page, total, true);
  return alloc_generic(total, true);
}

/* The owner's free: push onto the page's list (page_push_owned), no
 * atomics.  The count's sign says "page now empty, was full, dropped to
 * its sparse mark, or freed twice". */
EBB_INLINE void free_local(ebb_page_t *page, void *p) {
  ebb_block_t *block = (ebb_block_t *)p;
#if EBB_SECURE
  if (unlikely(secure_suspicious(page, block))) {
    secure_free_checked(ebb_tls_heap, page, block);
    return;
  }
#endif
  page_push_owned(page, block);
  if (unlikely(--page->used_minus_one < 0)) page_after_local_free(ebb_tls_heap, page);
}
/* The same for a page of another heap (a shared heap's, under its lock).
 * free_local does not call it: given the heap as an argument, the compiler
 * reads the thread pointer before the test, two more instructions on every
 * owner's free (bench/callgrind.sh). */
EBB_INLINE void free_local_in(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block) {
#if EBB_SECURE
  if (unlikely(secure_suspicious(page, block))) {
    secure_free_checked(heap, page, block);
    return;
  }
#endif
  page_push_owned(page, block);
  if (unlikely(--page->used_minus_one < 0)) page_after_local_free(heap, page);
}

/* checked_size: 0, or a size the caller says it allocated (a sized free),
 * which must fit the block. */
EBB_INLINE void free_fast(void *p, const char *call, size_t checked_size) {
  if (unlikely(segmap_get((uintptr_t)p) != EBB_SEGMAP_SEGMENT)) {
    free_generic(p, call, checked_size); /* NULL, a shifted huge block, or not ours */
    return;
  }
  ebb_segment_t *seg = segment_of(p);
  ebb_page_t *page = page_of(seg, p);
  if (unlikely(!page_is_block_start(page, p) || checked_size > page->block_size)) {
    free_generic(p, call, checked_size);
    return;
  }
#if EBB_SECURE
  secure_fill_freed(page, p);
#endif
  if (likely(page->owner_thread == ebb_thread_id())) {
    free_local(page, p);
    return;
  }
  free_not_owned(seg, page, p); /* already checked: another thread's page, a sparse page, or huge */
}

/* A free that names the block's alignment (C23's free_aligned_sized, C++'s
 * aligned delete): a pointer without it was not made by that aligned
 * allocation, and is reported. */
EBB_INLINE void free_aligned_fast(void *p, size_t alignment, const char *call, size_t checked_size) {
  if (unlikely(alignment == 0 || (alignment & (alignment - 1)) != 0 ||
               ((uintptr_t)p & (alignment - 1)) != 0))
    ebb_fatal_pointer(call, p, "the pointer does not have the alignment given");
  free_fast(p, call, checked_size);
}

#endif
