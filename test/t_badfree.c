/* t_badfree: pointers that ebb did not hand out, or that point inside a
 * block, given to free / realloc / malloc_usable_size.  ebb.h promises one
 * line on stderr naming the call and the pointer, then abort().
 *
 * Each case runs in a forked child with stderr going to a pipe.  The parent
 * checks that the child died of SIGABRT and that its stderr is exactly one
 * line containing "ebb", the call's name and the pointer as printed by %p.
 * The reason wording is not checked.  Control cases (valid calls, free(NULL))
 * must exit cleanly with nothing on stderr.  Double frees are detected on a
 * best-effort basis: SIGABRT with the message or a clean exit both pass, any
 * other death (SIGSEGV...) fails. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)


enum call { C_FREE, C_REALLOC, C_USABLE, C_DOUBLE_FREE, C_FREE_SIZED, C_FREE_ALIGNED_SIZED };
static const char *const call_name[] = {"free", "realloc", "malloc_usable_size", "free",
                                        "free_sized", "free_aligned_sized"};

/* C23's sized frees (glibc 2.36's headers lack them; ebb defines them). */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

enum expect { E_ABORT, E_CLEAN, E_ABORT_OR_CLEAN };

static volatile size_t sink;

/* In the child: do the call, then exit cleanly if it returned. */
static void child_call(enum call c, void *p) {
  switch (c) {
    case C_FREE: free(launder(p)); break;
    case C_REALLOC: {
      void *q = launder(realloc(launder(p), opaque(100)));
      sink = (size_t)(uintptr_t)q;
      break;
    }
    case C_USABLE: sink = malloc_usable_size(launder(p)); break;
    case C_DOUBLE_FREE:
      free(launder(p));
      free(launder(p));
      break;
    case C_FREE_SIZED: free_sized(launder(p), opaque(1 * MiB)); break; /* larger than the block */
    case C_FREE_ALIGNED_SIZED: free_aligned_sized(launder(p), opaque(4096), opaque(100)); break;
  }
}

static int cases_run;

/* Run one case; `p` is the pointer the call gets (its %p text is what the
 * message must contain). */
static void run_case(const char *label, enum call c, void *p, enum expect ex) {
  cases_run++;
  int fds[2];
  if (pipe(fds) != 0) {
    perror("pipe");
    exit(2);
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    alarm(20); /* a hang is a failure too (SIGALRM) */
    child_call(c, p);
    _exit(0);
  }
  close(fds[1]);
  char buf[4096];
  size_t len = read_child_output(fds[0], buf, sizeof buf);
  int st = wait_child(pid);

  char ptxt[64];
  snprintf(ptxt, sizeof ptxt, "%p", p);
  bool aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  char *nl = memchr(buf, '\n', len);
  bool one_line = len > 0 && nl == buf + len - 1;
  bool msg_ok = one_line && strstr(buf, "ebb") && strstr(buf, call_name[c]) && strstr(buf, ptxt);

  char how[64];
  if (WIFSIGNALED(st)) snprintf(how, sizeof how, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else snprintf(how, sizeof how, "exit %d", WEXITSTATUS(st));

  bool ok;
  const char *outcome;
  switch (ex) {
    case E_ABORT:
      ok = aborted && msg_ok;
      outcome = ok ? "aborted with the message" : "WRONG";
      break;
    case E_CLEAN:
      ok = clean && len == 0;
      outcome = ok ? "clean exit" : "WRONG";
      break;
    default:
      if (aborted && msg_ok) outcome = "detected: aborted with the message";
      else if (clean && len == 0) outcome = "not detected: clean exit";
      else outcome = "WRONG";
      ok = (aborted && msg_ok) || (clean && len == 0);
      break;
  }
  printf("%-4s %-44s %s(%s): %s\n", ok ? "ok" : "FAIL", label, call_name[c], ptxt, outcome);
  if (!ok) {
    fprintf(stderr, "  %s: child %s; stderr (%zu bytes): \"%s\"\n", label, how, len, buf);
    if (ex != E_CLEAN && !msg_ok)
      fprintf(stderr, "  want exactly one line containing \"ebb\", \"%s\" and \"%s\"\n", call_name[c], ptxt);
  }
  if (!ok) test_failures++;
}

static char global_buf[256] __attribute__((aligned(64)));
static const char rodata_text[] = "a string in .rodata, not a heap block";

/* A block of `n` bytes that stays allocated in the parent, so its address is
 * the same (and still allocated) in every child. */
static void *block(size_t n) {
  void *p = launder(malloc(opaque(n)));
  if (!p) {
    fprintf(stderr, "malloc(%zu) failed\n", n);
    exit(2);
  }
  memset(p, 0x11, n);
  return p;
}

/* Interior pointers of a block: each one must be refused by every call. */
static void interior_cases(const char *what, size_t n, const size_t *offs, size_t noffs) {
  char *p = (char *)block(n);
  char label[96];
  for (size_t i = 0; i < noffs; i++) {
    snprintf(label, sizeof label, "free inside %s block (p+%zu)", what, offs[i]);
    run_case(label, C_FREE, p + offs[i], E_ABORT);
  }
  snprintf(label, sizeof label, "realloc inside %s block (p+%zu)", what, offs[0]);
  run_case(label, C_REALLOC, p + offs[0], E_ABORT);
  snprintf(label, sizeof label, "malloc_usable_size inside %s block (p+%zu)", what, offs[0]);
  run_case(label, C_USABLE, p + offs[0], E_ABORT);
  /* the block itself is fine, and is not disturbed by the children */
  snprintf(label, sizeof label, "control: usable size of %s block", what);
  run_case(label, C_USABLE, p, E_CLEAN);
  snprintf(label, sizeof label, "control: free of %s block", what);
  run_case(label, C_FREE, p, E_CLEAN);
  free(p);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);

  /* Controls: the harness itself, and calls that are fine. */
  run_case("control: free(NULL)", C_FREE, NULL, E_CLEAN);
  run_case("control: malloc_usable_size(NULL)", C_USABLE, NULL, E_CLEAN);
  {
    void *p = block(100);
    run_case("control: realloc of a valid block", C_REALLOC, p, E_CLEAN);
    free(p);
  }

  /* Not ebb's memory at all. */
  char stack_buf[128];
  memset(stack_buf, 0, sizeof stack_buf);
  run_case("free of a stack address", C_FREE, launder(stack_buf + 16), E_ABORT);
  run_case("realloc of a stack address", C_REALLOC, launder(stack_buf + 32), E_ABORT);
  run_case("free of a global", C_FREE, launder(global_buf + 64), E_ABORT);
  run_case("malloc_usable_size of a global", C_USABLE, launder(global_buf), E_ABORT);
  run_case("free of a string literal (.rodata)", C_FREE, launder((void *)rodata_text), E_ABORT);
  {
    /* mmap'd memory: untouched (zero) pages, and pages full of junk that might
     * look like allocator metadata; aligned to 32 MiB, and not. */
    size_t len = 96 * MiB;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      perror("mmap");
      return 2;
    }
    char *a = (char *)(((uintptr_t)m + 32 * MiB - 1) & ~(uintptr_t)(32 * MiB - 1));
    run_case("free of mmap'd memory (zero pages)", C_FREE, a + 4096, E_ABORT);
    run_case("free of mmap'd memory (32 MiB aligned)", C_FREE, a, E_ABORT);
    run_case("realloc of mmap'd memory", C_REALLOC, a + 16, E_ABORT);
    run_case("malloc_usable_size of mmap'd memory", C_USABLE, a + 64, E_ABORT);
    /* junk: every word points into the region itself, or is a small number */
    for (size_t off = 0; off < 8 * MiB; off += sizeof(uintptr_t)) {
      uintptr_t v = (off / 8) % 3 == 0 ? (uintptr_t)(a + (off & ~(uintptr_t)4095)) : (off / 8) % 3 == 1 ? 1 : (uintptr_t)off;
      memcpy(a + off, &v, sizeof v);
    }
    run_case("free of mmap'd junk (32 MiB aligned)", C_FREE, a, E_ABORT);
    run_case("free of mmap'd junk (+16)", C_FREE, a + 16, E_ABORT);
    run_case("free of mmap'd junk (+4 MiB + 64)", C_FREE, a + 4 * MiB + 64, E_ABORT);
    run_case("free of a page of mmap'd junk", C_FREE, a + 3 * page, E_ABORT);
    munmap(m, len);
  }
  /* Addresses nothing is mapped at. */
  run_case("free of an unmapped low address", C_FREE, (void *)(uintptr_t)0x10000, E_ABORT);
  run_case("free of an address beyond user space", C_FREE, (void *)(uintptr_t)0x0000900000000000ull, E_ABORT);
  run_case("free of an address near the top", C_FREE, (void *)(uintptr_t)(UINTPTR_MAX - 4095), E_ABORT);

  /* Inside blocks of every scale. */
  static const size_t small_offs[] = {8, 1, 16, 32, 64};
  interior_cases("small (100 B)", 100, small_offs, 5);
  static const size_t small2_offs[] = {8, 1, 4, 16};
  interior_cases("small (24 B)", 24, small2_offs, 4);
  static const size_t med_offs[] = {8, 1, 16, 4096, 16 * KiB};
  interior_cases("medium (20 KiB)", 20 * KiB, med_offs, 5);
  static const size_t large_offs[] = {8, 1, 16, 4096, 64 * KiB, 256 * KiB};
  interior_cases("large (500 KiB)", 500 * KiB, large_offs, 6);
  static const size_t huge_offs[] = {8, 1, 16, 4096, 2 * MiB, 4 * MiB, 4 * MiB + 16, 5 * MiB,
                                     8 * MiB - 16};
  interior_cases("huge (8 MiB)", 8 * MiB, huge_offs, 9);
  {
    static const size_t aligned_offs[] = {16, 8, 1, 4096};
    void *q = launder(aligned_alloc(opaque(64 * KiB), opaque(1000)));
    if (!q) return 2;
    char label[96];
    for (size_t i = 0; i < 4; i++) {
      snprintf(label, sizeof label, "free inside an aligned_alloc(64K) block (p+%zu)", aligned_offs[i]);
      run_case(label, C_FREE, (char *)q + aligned_offs[i], E_ABORT);
    }
    free(q);
  }
  /* Double frees: detection is best effort, but the only acceptable death
   * is abort() with the message. */
  {
    static const size_t sizes[] = {40, 20 * KiB, 500 * KiB, 8 * MiB};
    static const char *const names[] = {"small", "medium", "large", "huge"};
    char label[96];
    for (int i = 0; i < 4; i++) {
      void *p = block(sizes[i]);
      snprintf(label, sizeof label, "double free of a %s block", names[i]);
      run_case(label, C_DOUBLE_FREE, p, E_ABORT_OR_CLEAN);
      free(p);
    }
  }
  /* The last block of a page its owner handed to the purger (sparse), freed
   * twice: the first free takes the owner's sparse path, empties the page
   * and gives it back to its segment; the second must find no block there.
   * Freed last to first, the four pages of 1 KiB blocks are each unfulled
   * behind the queue's first page (the last one), so the first page drops
   * to its sparse mark away from the front and is handed over. */
  {
    enum { N = 256 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) blocks[i] = block(1000);
    for (int i = N - 1; i >= 1; i--) free(blocks[i]);
    run_case("double free of the last block of a sparse page", C_DOUBLE_FREE, blocks[0], E_ABORT);
    free(blocks[0]);
  }
  /* C23's sized frees: a size larger than the block, or an alignment the
   * pointer does not have, is reported; the right ones free cleanly. */
  {
    char *p = block(100);
    run_case("free_sized with a size past the block", C_FREE_SIZED, p, E_ABORT);
    run_case("free_aligned_sized with an alignment it lacks", C_FREE_ALIGNED_SIZED,
             ((uintptr_t)p & 4095) ? p : p + 16, E_ABORT);
    free_sized(launder(malloc(opaque(100))), opaque(100));
    free_aligned_sized(launder(aligned_alloc(64, opaque(128))), 64, opaque(128));
    free_aligned_sized(NULL, 64, 0);
    free_sized(NULL, 10);
    free(p);
  }
  printf("%d cases\n", cases_run);
  TEST_DONE();
}
