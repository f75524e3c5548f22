/* C++'s replaceable operator new and delete: plain, array, nothrow, sized,
 * aligned, aligned sized and aligned nothrow, 20 functions.  A C++ program
 * that links -lebb or preloads libebb.so gets them from ebb (the dynamic
 * linker binds the first definition, as for malloc), so a sized delete
 * reaches the sized free and its size is checked, and the aligned forms
 * go to the aligned paths.
 *
 * They are written here in C under their mangled names (the Itanium C++
 * ABI, which gcc and clang follow on Linux; `m` is a 64-bit size_t), so
 * that `new` is malloc's inline fast path and libebb.so needs no C++
 * runtime: linking libstdc++ into it, as jemalloc and tcmalloc do, costs
 * every C program that preloads ebb 1.3 MiB more peak RSS (/bin/true: 1.1
 * MiB alone, 2.4-2.5 with libstdc++ preloaded).  What the standard asks of
 * a failed `new` is libstdc++'s and is called through weak references,
 * bound whenever the program has a C++ runtime (every program that can
 * call operator new does): std::get_new_handler() and
 * std::__throw_bad_alloc(), which throws std::bad_alloc.  Without them (a
 * C program calling _Znwm by hand, or a runtime without that export such
 * as libc++) a failed throwing `new` is reported and aborts.
 *
 * One difference from libstdc++'s own operators: a nothrow `new` whose
 * new_handler throws lets the exception through (C cannot catch it), where
 * libstdc++'s returns null.  Handlers that free memory and return, the
 * common kind, work as the standard says.
 *
 * Built in with EBB_CXX_OPERATORS (the Makefile's default; `make
 * CXX_OPERATORS=0` leaves them out); never in the build without the
 * malloc-family override (EBB_OVERRIDE=0). */
#ifndef EBB_OVERRIDE
#define EBB_OVERRIDE 1
#endif
#ifndef EBB_CXX_OPERATORS
#define EBB_CXX_OPERATORS 0
#endif

#include "fastpath.h"

#if EBB_OVERRIDE && EBB_CXX_OPERATORS
typedef void (*cxx_new_handler_t)(void);
/* std::get_new_handler() and std::__throw_bad_alloc(), from libstdc++ */
extern cxx_new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

/* A `new` that found no memory: call the new_handler and try again while
 * there is one; then null (nothrow) or std::bad_alloc. */
static EBB_COLD EBB_API_TEXT __attribute__((noinline)) void *new_failed(size_t size, size_t alignment,
                                                          bool nothrow) {
  for (;;) {
    cxx_new_handler_t handler = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (handler == NULL) {
      if (nothrow) return NULL;
      if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
      ebb_fatal_pointer("operator new", NULL, "out of memory, and no C++ runtime to throw std::bad_alloc");
    }
    handler();
    void *p = alignment ? alloc_aligned(alignment, size, false) : alloc_generic(size, false);
    if (p != NULL) return p;
  }
}

EBB_INLINE void *new_fast(size_t size, bool nothrow) {
  void *p = malloc_fast(size);
  if (likely(p != NULL)) return p;
  return new_failed(size, 0, nothrow);
}

/* The alignment is a power of two (std::align_val_t's contract). */
EBB_INLINE void *new_aligned(size_t size, size_t alignment, bool nothrow) {
  void *p = alloc_aligned(alignment, size, false);
  if (likely(p != NULL)) return p;
  return new_failed(size, alignment, nothrow);
}

/* The declarations keep -Wmissing-prototypes quiet; nothing else sees them. */
#define NOTHROW_T const void * /* const std::nothrow_t &: an address */
EBB_EXPORT void *_Znwm(size_t size);
EBB_EXPORT void *_Znam(size_t size);
EBB_EXPORT void *_ZnwmRKSt9nothrow_t(size_t size, NOTHROW_T tag);
EBB_EXPORT void *_ZnamRKSt9nothrow_t(size_t size, NOTHROW_T tag);
EBB_EXPORT void *_ZnwmSt11align_val_t(size_t size, size_t alignment);
EBB_EXPORT void *_ZnamSt11align_val_t(size_t size, size_t alignment);
EBB_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t alignment, NOTHROW_T tag);
EBB_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t alignment, NOTHROW_T tag);
EBB_EXPORT void _ZdlPv(void *p);
EBB_EXPORT void _ZdaPv(void *p);
EBB_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, NOTHROW_T tag);
EBB_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, NOTHROW_T tag);
EBB_EXPORT void _ZdlPvm(void *p, size_t size);
EBB_EXPORT void _ZdaPvm(void *p, size_t size);
EBB_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t alignment);
EBB_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t alignment);
EBB_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t alignment);
EBB_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t alignment);
EBB_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t alignment, NOTHROW_T tag);
EBB_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t alignment, NOTHROW_T tag);

/* new, new[] */
void *_Znwm(size_t size) { return new_fast(size, false); }
void *_Znam(size_t size) { return new_fast(size, false); }
void *_ZnwmRKSt9nothrow_t(size_t size, NOTHROW_T tag) {
  (void)tag;
  return new_fast(size, true);
}
void *_ZnamRKSt9nothrow_t(size_t size, NOTHROW_T tag) {
  (void)tag;
  return new_fast(size, true);
}
void *_ZnwmSt11align_val_t(size_t size, size_t alignment) { return new_aligned(size, alignment, false); }
void *_ZnamSt11align_val_t(size_t size, size_t alignment) { return new_aligned(size, alignment, false); }
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t alignment, NOTHROW_T tag) {
  (void)tag;
  return new_aligned(size, alignment, true);
}
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t alignment, NOTHROW_T tag) {
  (void)tag;
  return new_aligned(size, alignment, true);
}

/* delete, delete[]: the size of a sized delete is checked as
 * ebb_free_sized checks it (it must fit the block). */
void _ZdlPv(void *p) { free_fast(p, "operator delete", 0); }
void _ZdaPv(void *p) { free_fast(p, "operator delete[]", 0); }
void _ZdlPvRKSt9nothrow_t(void *p, NOTHROW_T tag) {
  (void)tag;
  free_fast(p, "operator delete", 0);
}
void _ZdaPvRKSt9nothrow_t(void *p, NOTHROW_T tag) {
  (void)tag;
  free_fast(p, "operator delete[]", 0);
}
void _ZdlPvm(void *p, size_t size) { free_fast(p, "operator delete", size); }
void _ZdaPvm(void *p, size_t size) { free_fast(p, "operator delete[]", size); }
void _ZdlPvSt11align_val_t(void *p, size_t alignment) { free_aligned_fast(p, alignment, "operator delete", 0); }
void _ZdaPvSt11align_val_t(void *p, size_t alignment) { free_aligned_fast(p, alignment, "operator delete[]", 0); }
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t alignment) {
  free_aligned_fast(p, alignment, "operator delete", size);
}
void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t alignment) {
  free_aligned_fast(p, alignment, "operator delete[]", size);
}
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t alignment, NOTHROW_T tag) {
  (void)tag;
  free_aligned_fast(p, alignment, "operator delete", 0);
}
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t alignment, NOTHROW_T tag) {
  (void)tag;
  free_aligned_fast(p, alignment, "operator delete[]", 0);
}
#endif
