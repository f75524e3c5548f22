/* The OS layer: page size, mapping, unmapping, purging, and messages.
 * Nothing here allocates from the C library, so it is safe before main, in
 * a fork child and while the allocator itself is half initialised. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

size_t ebb_os_page_size = 4096;
_Atomic size_t ebb_os_mapped_bytes;
_Atomic uint64_t ebb_stat_mmap_calls, ebb_stat_munmap_calls, ebb_stat_purge_calls,
    ebb_stat_purged_bytes, ebb_stat_purge_passes;

static void count(_Atomic uint64_t *counter, uint64_t n) {
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

uintptr_t ebb_list_secret;

void os_init(void) {
  /* 16 random bytes the kernel gives every process; the secure build's
   * free-list key (mixed with a constant, never 0). */
  const void *random = (const void *)getauxval(AT_RANDOM);
  uint64_t key = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&ebb_list_secret;
  if (random) {
    uint64_t bytes[2]; /* not 8-aligned on the stack: copied */
    memcpy(bytes, random, sizeof bytes);
    key ^= bytes[0] * 0xbf58476d1ce4e5b9ull ^ bytes[1];
  }
  ebb_list_secret = (uintptr_t)(key | 1);
  /* Read at run time: arm64 kernels use 4, 16 or 64 KiB pages. */
  unsigned long ps = getauxval(AT_PAGESZ);
  if (ps == 0) {
    long v = sysconf(_SC_PAGESIZE);
    ps = v > 0 ? (unsigned long)v : 4096;
  }
  ebb_os_page_size = ps;
#if EBB_SECURE
  ebb_guard_size = ps <= EBB_SLICE_SIZE / 4 ? ps : 0;
#endif
}

#if EBB_SECURE
size_t ebb_guard_size;

/* Make whole OS pages inaccessible (a guard) or readable and writable
 * again.  False if the kernel refused (out of memory maps: vm.max_map_count). */
bool os_protect(void *p, size_t size, bool accessible) {
  int saved = errno;
  bool ok = mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
  errno = saved;
  return ok;
}
#endif

static void *map_raw(size_t size) {
  count(&ebb_stat_mmap_calls, 1);
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  /* The segment map covers 2^48 bytes of address space; never hand out
   * memory above it (only possible if a kernel maps there unasked). */
  if (((uintptr_t)p + size) >> EBB_ADDRESS_BITS) {
    munmap(p, size);
    errno = ENOMEM;
    return NULL;
  }
  atomic_fetch_add_explicit(&ebb_os_mapped_bytes, size, memory_order_relaxed);
  return p;
}

static void unmap_raw(void *p, size_t size) {
  int saved = errno;
  count(&ebb_stat_munmap_calls, 1);
  if (munmap(p, size) != 0)
    ebb_warning("munmap(%p, %zu) failed: %s", p, size, strerror(errno));
  else
    atomic_fetch_sub_explicit(&ebb_os_mapped_bytes, size, memory_order_relaxed);
  errno = saved;
}

void *os_map(size_t size) { return map_raw(size); }

/* Where the next aligned mapping is likely to fit: just below the last one
 * (the kernel hands out address space top-down).  A good hint makes an
 * aligned mapping one mmap instead of an over-sized mmap and two munmaps. */
static _Atomic uintptr_t aligned_hint;

static void *map_at_hint(size_t size, size_t alignment, size_t offset) {
  uintptr_t hint = atomic_load_explicit(&aligned_hint, memory_order_relaxed);
  if (hint < size + alignment + ((uintptr_t)1 << 32)) return NULL;
  uintptr_t want = ((hint - size + offset) & ~(uintptr_t)(alignment - 1)) - offset;
  count(&ebb_stat_mmap_calls, 1);
  void *p = mmap((void *)want, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (p != (void *)want) {
    count(&ebb_stat_munmap_calls, 1);
    munmap(p, size);
    return NULL;
  }
  atomic_fetch_add_explicit(&ebb_os_mapped_bytes, size, memory_order_relaxed);
  return p;
}

/* Map `size` bytes at an address p where (p + offset) is a multiple of
 * `alignment` (a power of two at least the page size), trimming the slack. */
void *os_map_aligned(size_t size, size_t alignment, size_t offset) {
  if (size > SIZE_MAX - alignment) {
    errno = ENOMEM;
    return NULL;
  }
  uint8_t *p = map_at_hint(size, alignment, offset);
  if (p != NULL) {
    atomic_store_explicit(&aligned_hint, (uintptr_t)p, memory_order_relaxed);
    return p;
  }
  size_t span = size + alignment;
  p = map_raw(span);
  if (p == NULL) return NULL;
  uintptr_t want = (((uintptr_t)p + offset + alignment - 1) & ~(uintptr_t)(alignment - 1)) - offset;
  if (want < (uintptr_t)p) want += alignment;
  size_t head = want - (uintptr_t)p;
  size_t tail = span - head - size;
  if (head) unmap_raw(p, head);
  if (tail) unmap_raw((uint8_t *)want + size, tail);
  atomic_store_explicit(&aligned_hint, want, memory_order_relaxed);
  return (void *)want;
}

void os_unmap(void *p, size_t size) { unmap_raw(p, size); }

/* MADV_DONTNEED (the default): the drop shows in RSS at once, and the range
 * reads back as zeros, so a purged slice counts as fresh.  MADV_FREE (the
 * madv_free option): the kernel takes the pages only under memory pressure,
 * and until then they keep their contents; returns false then. */
static bool purge_range(void *p, size_t size) {
  count(&ebb_stat_purge_calls, 1);
#ifdef MADV_FREE
  if (ebb_opt.madv_free && madvise(p, size, MADV_FREE) == 0) return false;
#endif
  madvise(p, size, MADV_DONTNEED);
  return true;
}

/* ---- batched purges ----------------------------------------------------------
 * One process_madvise for the whole batch, on the process itself: the
 * kernel flushes the TLB once for all the ranges.  Kernels before 6.15 do
 * not know the self pidfd (EBADF), before 6.13 refuse MADV_DONTNEED on it
 * (EINVAL), a seccomp filter may refuse the call (EPERM, ENOSYS): then every
 * batch, from then on, goes as one madvise per range. */
#ifndef SYS_process_madvise
#define SYS_process_madvise 440 /* the same number on every architecture */
#endif
#define EBB_PIDFD_SELF (-10000) /* PIDFD_SELF_THREAD: the calling thread's process, no fd needed */
_Static_assert(sizeof(((ebb_purge_batch_t *)0)->range[0]) == sizeof(struct iovec) &&
                   offsetof(struct iovec, iov_base) == 0 && offsetof(struct iovec, iov_len) == sizeof(void *),
               "a batch's ranges are iovecs");

_Atomic int ebb_os_vector_purge_refused; /* set once the kernel refuses the vector call */

/* Ranges [from, count) by the vector call; returns the first not done. */
static size_t purge_vector(ebb_purge_batch_t *batch, size_t from, int advice) {
  struct iovec *iov = (struct iovec *)(void *)batch->range;
  while (from < batch->count && !atomic_load_explicit(&ebb_os_vector_purge_refused, memory_order_relaxed)) {
    if (batch->count - from == 1) return from; /* one range: madvise is as good */
    count(&ebb_stat_purge_calls, 1);
    long done = syscall(SYS_process_madvise, EBB_PIDFD_SELF, iov + from, batch->count - from, advice, 0);
    if (done < 0) {
      if (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM)
        atomic_store_explicit(&ebb_os_vector_purge_refused, 1, memory_order_relaxed);
      return from;
    }
    /* A short count (it stops at a range it cannot advise): past the
     * ranges done, and what is left of a range done in part. */
    size_t left = (size_t)done;
    while (from < batch->count && left >= iov[from].iov_len) left -= iov[from++].iov_len;
    if (left > 0) {
      iov[from].iov_base = (char *)iov[from].iov_base + left;
      iov[from].iov_len -= left;
    }
    if (done == 0) return from;
  }
  return from;
}

void os_purge_batch_add(ebb_purge_batch_t *batch, void *p, size_t size) {
  if (size == 0) return;
  if (batch->count > 0) { /* adjacent to the last range: one range */
    size_t last = batch->count - 1;
    if ((char *)batch->range[last].base + batch->range[last].len == (char *)p) {
      batch->range[last].len += size;
      return;
    }
  }
  if (batch->count == EBB_PURGE_BATCH && !os_purge_batch_flush(batch)) batch->kept_contents = true;
  batch->range[batch->count].base = p;
  batch->range[batch->count].len = size;
  batch->count++;
}

bool os_purge_batch_flush(ebb_purge_batch_t *batch) {
  bool zeroed = !batch->kept_contents;
  batch->kept_contents = false;
  if (batch->count == 0) return zeroed;
  int saved = errno;
  size_t bytes = 0;
  for (size_t i = 0; i < batch->count; i++) bytes += batch->range[i].len;
  count(&ebb_stat_purged_bytes, bytes);
  int advice = MADV_DONTNEED;
#ifdef MADV_FREE
  if (ebb_opt.madv_free) advice = MADV_FREE;
#endif
  size_t next = purge_vector(batch, 0, advice);
  if (advice != MADV_DONTNEED && next > 0) zeroed = false;
  for (; next < batch->count; next++) /* the rest, a call each */
    if (!purge_range(batch->range[next].base, batch->range[next].len)) zeroed = false;
  batch->count = 0;
  errno = saved;
  return zeroed;
}

/* Resident set size: VmRSS in /proc/self/status, which the kernel gives in
 * kB whatever its page size.  statm counts pages of the kernel's size,
 * which is not always the one AT_PAGESZ reports: under qemu-user with 16 or
 * 64 KiB guest pages, /proc is the host's (4 KiB pages), and statm times
 * the guest's page size read 4 or 16 times the RSS. */
size_t os_rss_bytes(void) {
  int saved = errno;
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errno = saved;
    return 0;
  }
  char buf[4096];
  size_t len = 0;
  for (;;) { /* VmRSS is in the first 2 KiB; read until it is in */
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
    if (len == sizeof buf - 1) break;
  }
  close(fd);
  errno = saved;
  buf[len] = 0;
  const char *q = strstr(buf, "\nVmRSS:");
  if (q == NULL) return 0;
  q += 7;
  while (*q == ' ' || *q == '\t') q++;
  size_t kb = 0;
  while (*q >= '0' && *q <= '9') kb = kb * 10 + (size_t)(*q++ - '0');
  return kb * 1024;
}

uint32_t os_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* Wall-clock milliseconds since the Unix epoch (for timestamps in output). */
uint64_t os_unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The tick the kernel last counted (1-4 ms old): no TSC read. */
uint32_t os_clock_ms_coarse(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* futex(2) by its raw number: musl and some sysroots have no
 * <linux/futex.h>, and the two operations' numbers are part of the ABI. */
#define EBB_FUTEX_WAIT_PRIVATE 128 /* FUTEX_WAIT | FUTEX_PRIVATE_FLAG */
#define EBB_FUTEX_WAKE_PRIVATE 129 /* FUTEX_WAKE | FUTEX_PRIVATE_FLAG */

void os_futex_wait(_Atomic uint32_t *word, uint32_t expected, long long timeout_ms) {
  struct timespec ts, *tsp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = (time_t)(timeout_ms / 1000);
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    tsp = &ts;
  }
  int saved = errno;
  syscall(SYS_futex, (uint32_t *)word, EBB_FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
  errno = saved;
}

void os_futex_wake(_Atomic uint32_t *word, int count) {
  int saved = errno;
  syscall(SYS_futex, (uint32_t *)word, EBB_FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
  errno = saved;
}

/* Resize a mapping whose start must stay `alignment`-aligned after adding
 * `offset`.  In place if the kernel can; otherwise moved (pages, not bytes)
 * into a freshly reserved aligned range.  NULL + ENOMEM on failure, with the
 * old mapping intact. */
void *os_remap_aligned(void *old, size_t old_size, size_t new_size, size_t alignment,
                       size_t offset) {
  int saved = errno;
  count(&ebb_stat_mmap_calls, 1);
  void *p = mremap(old, old_size, new_size, 0);
  if (p != MAP_FAILED) {
    if (new_size > old_size)
      atomic_fetch_add_explicit(&ebb_os_mapped_bytes, new_size - old_size, memory_order_relaxed);
    else
      atomic_fetch_sub_explicit(&ebb_os_mapped_bytes, old_size - new_size, memory_order_relaxed);
    errno = saved;
    return p;
  }
  void *target = os_map_aligned(new_size, alignment, offset);
  if (target == NULL) return NULL;
  /* Move only the old pages: the rest of the target is already fresh
   * memory.  Moving and growing in one call works in the kernel, but
   * valgrind's memcheck then now and then left the grown part unaddressable
   * (t_conformance under valgrind.sh, about one run in 14 in parallel). */
  size_t moved = new_size < old_size ? new_size : old_size;
  p = mremap(old, old_size, moved, MREMAP_MAYMOVE | MREMAP_FIXED, target);
  if (p == MAP_FAILED) {
    unmap_raw(target, new_size);
    errno = ENOMEM;
    return NULL;
  }
  /* target's range now holds the moved pages; the old range is gone */
  atomic_fetch_sub_explicit(&ebb_os_mapped_bytes, old_size, memory_order_relaxed);
  errno = saved;
  return p;
}

/* Move the pages of [src, src + size) onto dest, replacing what was mapped
 * there (page tables move; nothing is copied or faulted in).  False if the
 * kernel refused: src is then as it was. */
bool os_move_over(void *src, size_t size, void *dest) {
  int saved = errno;
  count(&ebb_stat_mmap_calls, 1);
  if (mremap(src, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, dest) == MAP_FAILED) {
    errno = saved;
    return false;
  }
  atomic_fetch_sub_explicit(&ebb_os_mapped_bytes, size, memory_order_relaxed); /* src's range is gone */
  return true;
}

/* Write all of buf to fd, retrying short writes and EINTR; gives up
 * silently if the reader went away.  Messages, the statistics table and the
 * periodic lines all go out this way: stdio may allocate. */
void os_write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    buf += w;
    n -= (size_t)w;
  }
}

static void vmessage(const char *prefix, const char *fmt, va_list ap) {
  char buf[256];
  int saved = errno;
  int n = snprintf(buf, sizeof buf, "%s", prefix);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  os_write_all(2, buf, len);
  errno = saved;
}

void ebb_warning(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmessage("ebb: warning: ", fmt, ap);
  va_end(ap);
}

void ebb_note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmessage("ebb: ", fmt, ap);
  va_end(ap);
}

void ebb_fatal_pointer(const char *call, const void *p, const char *reason) {
  char buf[200];
  int n = snprintf(buf, sizeof buf, "ebb: %s(%p): %s\n", call, p, reason);
  if (n > 0) os_write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
  abort();
}
