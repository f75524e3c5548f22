/* Preloaded for the "glibc" column of programs that link another allocator
 * themselves (Debian's redis-server links jemalloc): routes the malloc
 * family to glibc's own implementation, so that column measures glibc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t c, size_t n) { return __libc_calloc(c, n); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
  void *p = __libc_memalign(a, n);
  if (!p) return 12; /* ENOMEM */
  *out = p;
  return 0;
}
size_t malloc_usable_size(void *p) {
  static size_t (*libc_usable)(void *);
  if (!libc_usable) {
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    libc_usable = (size_t (*)(void *))dlsym(h, "malloc_usable_size");
  }
  return libc_usable(p);
}
