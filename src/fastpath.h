/* The hot paths: malloc of a small size from the thread's current page, and
 * free of a block by the thread that owns its page.  Everything else falls
 * into one generic slow path in alloc.c.  Included by alloc.c (the ebb_* API)
 * and override.c (the malloc family), so both get the same inline code. */
#ifndef EBB_FASTPATH_H
#define EBB_FASTPATH_H

#include "internal.h"

EBB_INLINE void *malloc_fast(size_t size) {
  if (likely(size <= EBB_DIRECT_MAX)) {
    ebb_page_t *page = ebb_tls_heap->direct[(size + 7) >> 3];
    ebb_block_t *block = page->free;
    if (likely(block != NULL)) {
      page->free = block->next;
      page->used++;
      return block;
    }
  }
  return alloc_generic(size, false);
}

/* A block start inside `page` is an offset below block_area that is a
 * multiple of block_size; the multiple test is one multiply (Lemire's
 * divisibility check with a precomputed 64-bit magic). */
EBB_INLINE bool page_is_block_start(const ebb_page_t *page, const void *p) {
  uint64_t offset = (uint64_t)((uintptr_t)p - (uintptr_t)page->start);
  return offset < page->block_area && offset * page->divisor_magic <= page->divisor_magic - 1;
}

EBB_INLINE void *calloc_fast(size_t count, size_t size) {
  size_t total;
  if (unlikely(__builtin_mul_overflow(count, size, &total))) return alloc_generic(SIZE_MAX, true);
  if (likely(total <= EBB_DIRECT_MAX)) {
    ebb_page_t *page = ebb_tls_heap->direct[(total + 7) >> 3];
    ebb_block_t *block = page->free;
    if (likely(block != NULL)) {
      page->free = block->next;
      page->used++;
      if (page->is_zero) block->next = NULL; /* fresh memory: only the link is set */
      else __builtin_memset(block, 0, total);
      return block;
    }
  }
  return alloc_generic(total, true);
}

/* checked_size: 0, or a size the caller says it allocated (a sized free),
 * which must fit the block. */
EBB_INLINE void free_fast(void *p, const char *call, size_t checked_size) {
  if (unlikely(!segmap_test(ebb_segmap, (uintptr_t)p))) {
    free_generic(p, call, checked_size); /* NULL, a shifted huge block, or not ours */
    return;
  }
  ebb_segment_t *seg = segment_of(p);
  ebb_page_t *page = page_of(seg, p);
  if (unlikely(!page_is_block_start(page, p) || checked_size > page->block_size)) {
    free_generic(p, call, checked_size);
    return;
  }
  ebb_heap_t *heap = ebb_tls_heap;
  if (likely(atomic_load_explicit(&seg->owner, memory_order_relaxed) == heap)) {
    ebb_block_t *block = (ebb_block_t *)p;
    block->next = page->local_free;
    page->local_free = block;
    if (unlikely((int64_t)(--page->used) <= 0)) page_after_local_free(heap, page);
    return;
  }
  free_generic(p, call, checked_size); /* another thread's page, or huge */
}

#endif
