/* misuse: what an allocator does when a program misuses the heap, one case
 * at a time, each in a forked child with a time limit.  Works with any
 * malloc: run it with LD_PRELOAD (bench/misuse.sh does, for every peer) or
 * linked against ebb.
 *
 *   misuse [-t SECONDS] [CASE...]    every case (or those named), one line each
 *   misuse -l                        the case names
 *
 * Each line is "CASE VERDICT detail", the verdict one of
 *   reported   the child died of SIGABRT (the allocator's own check)
 *   crashed    the child died of another signal (SIGSEGV inside malloc, ...)
 *   hang       the child had not finished after the time limit (killed)
 *   duplicate  one block handed out twice while both are live
 *   steered    malloc returned an address the program chose
 *   leaked     (tls_dtor) the process grew far beyond what the threads use
 *   silent     it finished and nothing above happened
 *   ok         (fork cases) it finished
 *   trapped    a write past a block faulted at once (a guard page)
 *   immediate, delayed  (reuse_next) whether a freed block is the next one
 *              malloc returns
 *   filled     (uaf_read) a freed block reads a fill pattern, not its data
 *   sequential, shuffled  (carve_order) whether fresh blocks come in address order
 * A corrupted heap may also be caught later; "silent" only says this run saw
 * neither a duplicate nor a steered block.
 *
 * The last line is "summary bad=N", N the cases whose verdict is hang,
 * duplicate, steered, crashed or leaked; the exit status is 1 if N > 0.
 *
 * Built by the Makefile (make build/bench/misuse: cc -O1 -pthread
 * -fno-builtin-malloc ..., so that no malloc/free pair is optimised away). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every case here uses freed memory on purpose. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

/* Keep the compiler from reasoning about freed pointers. */
static void *launder(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

/* The child's verdict, written to a pipe the parent reads. */
static int verdict_fd = -1;
static void say(const char *verdict, const char *detail) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "%s %s", verdict, detail);
  if (write(verdict_fd, buf, (size_t)n) < 0) _exit(3);
}

/* n blocks allocated together: "duplicate" if two are the same block (or
 * overlap), "steered" if one is `target`; else silent.  All are written
 * whole, so an overlap also shows as a changed pattern. */
static void check_distinct(void **blocks, int n, size_t size, void *target, const char *what) {
  for (int i = 0; i < n; i++) {
    if (blocks[i] == NULL) continue;
    if (target && (char *)blocks[i] <= (char *)target && (char *)target < (char *)blocks[i] + size) {
      say("steered", what);
      return;
    }
    memset(blocks[i], 0x40 + i, size);
  }
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      if (blocks[i] && blocks[j] && (char *)blocks[i] < (char *)blocks[j] + size &&
          (char *)blocks[j] < (char *)blocks[i] + size) {
        say("duplicate", what);
        return;
      }
  for (int i = 0; i < n; i++) {
    if (blocks[i] == NULL) continue;
    unsigned char *b = blocks[i];
    for (size_t k = 0; k < size; k++)
      if (b[k] != (unsigned char)(0x40 + i)) {
        say("duplicate", what);
        return;
      }
  }
  say("silent", what);
}

#define KEEP 16   /* live blocks of the class around the misused one */
#define AFTER 400 /* blocks allocated after the misuse: past a first carve of 128 */
static void *volatile keep[KEEP]; /* volatile: the stores must happen */
static void keep_some(size_t size) {
  for (int i = 0; i < KEEP; i++) keep[i] = malloc(size);
}
static void allocate_after(size_t size, void *target, const char *what) {
  static void *after[AFTER];
  for (int i = 0; i < AFTER; i++) after[i] = malloc(size);
  check_distinct(after, AFTER, size, target, what);
}

/* ---- the cases ------------------------------------------------------------ */

/* A double free while other blocks of the page are live. */
static void case_df_live(void) {
  keep_some(32);
  void *a = malloc(32);
  free(a);
  free(launder(a));
  allocate_after(32, NULL, "400 mallocs after free(a), free(a)");
}

/* free(a), free(b), free(a): the classic that defeats a "same as the last
 * free" check. */
static void case_df_aba(void) {
  keep_some(32);
  void *a = malloc(32), *b = malloc(32);
  free(a);
  free(b);
  free(launder(a));
  allocate_after(32, NULL, "400 mallocs after free(a), free(b), free(a)");
}

static void *remote_block;
static void *free_twice_thread(void *arg) {
  (void)arg;
  free(remote_block);
  free(launder(remote_block));
  return NULL;
}

/* Another thread frees the owner's block twice. */
static void case_df_remote(void) {
  keep_some(32);
  remote_block = malloc(32);
  pthread_t t;
  pthread_create(&t, NULL, free_twice_thread, NULL);
  pthread_join(t, NULL);
  void *many[400];
  for (int i = 0; i < 400; i++) many[i] = malloc(32); /* through the remote list */
  check_distinct(many, 400, 32, NULL, "400 mallocs after another thread freed a block twice");
}

/* A double free, then malloc_trim (a walk over every free list). */
static void case_df_trim(void) {
  keep_some(32);
  void *a = malloc(32), *b = malloc(32);
  free(a);
  free(b);
  free(launder(a));
  malloc_trim(0);
  allocate_after(32, NULL, "malloc_trim, then 400 mallocs");
}

static void *exit_after_double_free(void *arg) {
  (void)arg;
  keep_some(32);
  void *a = malloc(32), *b = malloc(32);
  free(a);
  free(b);
  free(launder(a));
  return NULL; /* the thread's heap goes away with a cycle in a list */
}

/* A double free, then the thread exits. */
static void case_df_exit(void) {
  pthread_t t;
  pthread_create(&t, NULL, exit_after_double_free, NULL);
  pthread_join(t, NULL);
  for (int i = 0; i < 4; i++) { /* other threads come and go */
    pthread_create(&t, NULL, exit_after_double_free, NULL);
    pthread_join(t, NULL);
  }
  allocate_after(32, NULL, "threads exited after a double free; 400 mallocs");
}

/* A medium block (16-128 KiB) freed by two threads, each then allocating
 * the same size. */
static void *medium_block;
static pthread_barrier_t medium_barrier;
static void *medium_got[2];
static void *medium_thread(void *arg) {
  int id = (int)(intptr_t)arg;
  pthread_barrier_wait(&medium_barrier);
  free(launder(medium_block));
  pthread_barrier_wait(&medium_barrier);
  medium_got[id] = malloc(48 << 10);
  pthread_barrier_wait(&medium_barrier);
  return NULL;
}
static void case_df_medium(void) {
  void *volatile hold[4]; /* live blocks of the page */
  for (int i = 0; i < 4; i++) hold[i] = malloc(48 << 10);
  medium_block = malloc(48 << 10);
  pthread_barrier_init(&medium_barrier, NULL, 2);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, medium_thread, (void *)(intptr_t)i);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  check_distinct(medium_got, 2, 48 << 10, NULL, "a 48 KiB block freed by two threads, each mallocs 48 KiB");
  (void)hold;
}

/* realloc of a pointer already freed. */
static void case_realloc_freed(void) {
  keep_some(32);
  void *a = malloc(32);
  free(a);
  void *b = realloc(launder(a), 32);
  static void *after[AFTER + 1];
  after[0] = b;
  for (int i = 1; i <= AFTER; i++) after[i] = malloc(32);
  check_distinct(after, AFTER + 1, 32, NULL, "realloc(freed, 32), then 400 mallocs");
}

static char target_area[4096] __attribute__((aligned(4096)));

/* One 8-byte write after free: the freed block's first word set to an
 * address of the program's choosing. */
static void case_uaf_write(void) {
  keep_some(32);
  void *a = malloc(32);
  free(a);
  *(void *volatile *)launder(a) = target_area + 1024;
  allocate_after(32, target_area + 1024, "after an 8-byte write to a freed block");
}

/* Two adjacent blocks of 32 B (the second freed), or NULL. */
static int adjacent_pair(char **a, char **b) {
  char *p[64];
  int found = 0;
  for (int i = 0; i < 64; i++) p[i] = malloc(32);
  for (int i = 0; i < 64 && !found; i++)
    for (int j = 0; j < 64 && !found; j++) {
      size_t gap = 32;
      if (p[j] > p[i] && (size_t)(p[j] - p[i]) <= 48) gap = (size_t)(p[j] - p[i]);
      if (p[j] == p[i] + gap && gap >= 32) {
        *a = p[i];
        *b = p[j];
        found = 1;
      }
    }
  return found;
}

/* A live 32 B block whose neighbour (`*gap` bytes on) was just freed, or
 * NULL (the verdict said) if no two blocks were adjacent. */
static char *live_before_freed(size_t *gap) {
  char *a, *b;
  if (!adjacent_pair(&a, &b)) {
    say("silent", "no adjacent pair of 32 B blocks");
    return NULL;
  }
  *gap = (size_t)(b - a);
  free(b);
  return launder(a);
}

/* A 16-byte overflow from a live block into its free neighbour's first
 * words (glibc's tcache keeps its link there too). */
static void case_overflow16(void) {
  size_t gap;
  char *a = live_before_freed(&gap);
  if (a == NULL) return;
  void *target = target_area + 2048;
  memcpy(a + gap, &target, sizeof target);
  memset(a + gap + 8, 0, 8);
  allocate_after(32, target, "after a 16-byte overflow into a free neighbour");
}

/* A 1-byte overflow into a free neighbour (its link's lowest byte). */
static void case_overflow1(void) {
  size_t gap;
  char *a = live_before_freed(&gap);
  if (a == NULL) return;
  ((volatile char *)a)[gap] ^= 0x50;
  allocate_after(32, NULL, "after a 1-byte overflow into a free neighbour");
}

/* A write just past a block whose end is an OS page boundary and no other
 * block's start: past the last block of a run of blocks, where a guard page
 * (ebb's secure build) makes it fault at once.  The fault at that address
 * is the verdict "trapped"; any other fault stays a crash. */
static char *volatile fault_expected;
static void on_segv(int sig, siginfo_t *info, void *ctx) {
  (void)ctx;
  if (fault_expected != NULL && (char *)info->si_addr == fault_expected) {
    say("trapped", "SIGSEGV at the write (a guard page)");
    _exit(0);
  }
  signal(sig, SIG_DFL); /* the faulting access runs again: a crash */
}
static void write_past(char *end) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  fault_expected = end;
  *(volatile char *)end = 0x5a;
  fault_expected = NULL;
}

/* A write past a block that ends one OS page short of a 4 MiB boundary
 * with no block after it: the end of an ebb segment, where the secure
 * build keeps a guard page (the page after each run's last block is left
 * unused there and everywhere; only at a segment's end is it a guard). */
static void case_overflow_segment(void) {
  enum { N = 3000, SIZE = 3000 };
  static char *p[N];
  size_t os_page = (size_t)sysconf(_SC_PAGESIZE), seg = (size_t)4 << 20;
  char *end = NULL;
  int n = 0;
  while (n < N && end == NULL) {
    p[n++] = malloc(SIZE);
    for (int i = 0; i < n && end == NULL; i++) {
      char *e = p[i] + malloc_usable_size(p[i]);
      if (((uintptr_t)e + os_page) % seg != 0) continue;
      int starts_block = 0;
      for (int j = 0; j < n; j++) starts_block |= p[j] == e;
      if (!starts_block) end = e;
    }
  }
  if (end == NULL) {
    say("silent", "no 3000 B block ends a page short of a 4 MiB boundary");
    return;
  }
  write_past(end);
  for (int i = 0; i < n; i++) free(p[i]);
  say("silent", "a write past a segment's last block went unnoticed");
}

/* The same past the end of a block of 8 MiB (a mapping of its own). */
static void case_overflow_huge(void) {
  char *p = malloc((8u << 20) + 100);
  write_past(p + malloc_usable_size(p));
  free(p);
  say("silent", "a write past an 8 MiB block went unnoticed");
}

/* Not a misuse: is a freed block the next one handed out?  (Delayed reuse
 * makes a use after free land in a block nobody holds yet.) */
static void case_reuse_next(void) {
  keep_some(48);
  void *a = malloc(48);
  free(a);
  void *b = malloc(48);
  say(b == a ? "immediate" : "delayed", b == a ? "the block just freed came back" : "another block came back");
}

/* A read after free: are the freed bytes (past the first word, a list's
 * link in most allocators) still the program's, or a fill pattern?
 * "filled" if bytes 8 to 63 (to the end of a smaller block) all read
 * 0xdf, ebb's secure fill, for a 32, a 64 and a 200-byte block. */
static void case_uaf_read(void) {
  static const size_t sizes[] = {32, 64, 200};
  int filled = 0;
  for (int i = 0; i < 3; i++) {
    keep_some(sizes[i]);
    unsigned char *a = malloc(sizes[i]);
    memset(a, 0x5a, sizes[i]);
    free(a);
    const volatile unsigned char *freed = launder(a);
    size_t end = sizes[i] < 64 ? sizes[i] : 64, k = 8;
    while (k < end && freed[k] == 0xdf) k++;
    filled += k == end;
  }
  say(filled == 3 ? "filled" : "silent", filled == 3 ? "freed bytes 8-63 read 0xdf" : "freed bytes not filled");
}

/* Not a misuse: are fresh blocks handed out in address order?  Then an
 * overflow of one block reaches the next one handed out.  "sequential" if
 * nine in ten of 256 fresh 48-byte blocks are followed by the block just
 * above them (within 128 bytes), else "shuffled". */
static void case_carve_order(void) {
  static char *fresh[256];
  for (int i = 0; i < 256; i++) fresh[i] = malloc(48);
  int next_above = 0;
  for (int i = 0; i + 1 < 256; i++)
    next_above += fresh[i + 1] > fresh[i] && fresh[i + 1] - fresh[i] <= 128;
  char detail[96];
  snprintf(detail, sizeof detail, "%d of 255 blocks followed by their upper neighbour", next_above);
  say(next_above >= 230 ? "sequential" : "shuffled", detail);
}

/* ---- fork shapes ---------------------------------------------------------- */
static atomic_int stop_threads;
static FILE *shared_file;

static void *getline_thread(void *arg) {
  (void)arg;
  char *line = NULL;
  size_t cap = 0;
  while (!atomic_load(&stop_threads)) {
    rewind(shared_file);
    while (getline(&line, &cap, shared_file) > 0) {
      free(line); /* getline allocates again */
      line = NULL;
      cap = 0;
    }
  }
  free(line);
  return NULL;
}
static void *fflush_thread(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_threads)) {
    fflush(NULL);
    void *p = malloc(24 << 10);
    free(p);
  }
  return NULL;
}

/* fork while one thread reads a FILE with getline and another runs
 * fflush(NULL), both allocating. */
static void case_fork_stdio(void) {
  shared_file = tmpfile();
  /* Lines of 20 KiB: getline's buffer grows through blocks above 8 KiB,
   * which come from an allocator's shared structures in many designs. */
  for (int i = 0; i < 200; i++) {
    for (int k = 0; k < 500; k++) fprintf(shared_file, "line %4d ... ", i);
    fputc('\n', shared_file);
  }
  fflush(shared_file);
  pthread_t t[2];
  pthread_create(&t[0], NULL, getline_thread, NULL);
  pthread_create(&t[1], NULL, fflush_thread, NULL);
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  int forks = 0;
  do {
    pid_t pid = fork();
    if (pid == 0) {
      void *p = malloc(64);
      free(p);
      _exit(0);
    }
    if (pid > 0) waitpid(pid, NULL, 0);
    forks++;
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - start.tv_sec < 2);
  atomic_store(&stop_threads, 1);
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
  char detail[64];
  snprintf(detail, sizeof detail, "%d forks beside getline and fflush(NULL)", forks);
  say("ok", detail);
}

static atomic_int signal_forks;
static atomic_uint loop_progress; /* the loop's iterations */
static unsigned progress_at_last_fork = ~0u;
static void fork_in_handler(int sig) {
  (void)sig;
  /* No malloc or free ran since the last fork: let the loop go on. */
  unsigned progress = atomic_load_explicit(&loop_progress, memory_order_relaxed);
  if (progress == progress_at_last_fork) return;
  progress_at_last_fork = progress;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0) {
    waitpid(pid, NULL, 0);
    atomic_fetch_add(&signal_forks, 1);
  }
  errno = saved;
}

/* fork from a signal handler that may interrupt malloc or free, every 2 ms
 * of a loop of them.  The handler forks only if the loop ran since its last
 * fork: on a loaded machine each fork outlasted the timer's period, the
 * handler ran back to back with no malloc between, and the case "hung"
 * under glibc's malloc too (4 CPU hogs beside it). */
static void case_fork_signal(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fork_in_handler;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 2000}, {0, 2000}};
  setitimer(ITIMER_REAL, &it, NULL);
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  void *slots[256] = {0};
  unsigned x = 1;
  do {
    for (int i = 0; i < 10000; i++) {
      x = x * 1103515245u + 12345u;
      unsigned s = (x >> 8) & 255;
      free(slots[s]);
      slots[s] = malloc((x >> 16) & 65535); /* small and medium sizes */
      atomic_fetch_add_explicit(&loop_progress, 1, memory_order_relaxed);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - start.tv_sec < 2);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  char detail[64];
  snprintf(detail, sizeof detail, "%d forks from a handler interrupting malloc/free",
           atomic_load(&signal_forks));
  say("ok", detail);
}

/* ---- TLS destructors that allocate in the last round ---------------------- */
static pthread_key_t late_key;
static __thread int late_rounds;
static void late_destructor(void *value) {
  free(value);
  /* Set the value again for a few rounds (PTHREAD_DESTRUCTOR_ITERATIONS
   * is 4): the last round allocates after the allocator's own destructor. */
  if (++late_rounds < 8) pthread_setspecific(late_key, malloc(64));
  else {
    void *leaked = malloc(64); /* the program's leak, 64 bytes */
    (void)leaked;
  }
}
static void *late_thread(void *arg) {
  (void)arg;
  pthread_setspecific(late_key, malloc(64));
  return NULL;
}
static size_t mapped_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0;
  if (f) {
    if (fscanf(f, "%lu", &size) != 1) size = 0;
    fclose(f);
  }
  return size * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}
static void case_tls_dtor(void) {
  pthread_key_create(&late_key, late_destructor);
  size_t before = mapped_kib();
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int i = 0; i < 2000; i++) {
    pthread_t t;
    pthread_create(&t, NULL, late_thread, NULL);
    pthread_join(t, NULL);
  }
  clock_gettime(CLOCK_MONOTONIC, &now);
  size_t grown = mapped_kib() - before;
  double secs = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
  char detail[128];
  snprintf(detail, sizeof detail, "2000 threads allocating in their last destructor round: "
           "mapped +%zu KiB, %.2f s", grown, secs);
  say(grown > 512 * 1024 ? "leaked" : "silent", detail); /* 2000 * 64 B leaked; glibc reserves 64 MiB arenas */
}

/* ---- the driver ------------------------------------------------------------ */
static const struct {
  const char *name;
  void (*run)(void);
} cases[] = {
    {"df_live", case_df_live},         {"df_aba", case_df_aba},
    {"df_remote", case_df_remote},     {"df_trim", case_df_trim},
    {"df_exit", case_df_exit},         {"df_medium", case_df_medium},
    {"realloc_freed", case_realloc_freed}, {"uaf_write", case_uaf_write},
    {"overflow16", case_overflow16},   {"overflow1", case_overflow1},
    {"overflow_segment", case_overflow_segment}, {"overflow_huge", case_overflow_huge},
    {"reuse_next", case_reuse_next},   {"uaf_read", case_uaf_read},
    {"carve_order", case_carve_order},
    {"fork_stdio", case_fork_stdio},   {"fork_signal", case_fork_signal},
    {"tls_dtor", case_tls_dtor},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static int run_one(int idx, int limit_s) {
  int fds[2];
  if (pipe(fds) != 0) return 1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    verdict_fd = fds[1];
    int null = open("/dev/null", 1);
    if (getenv("MISUSE_STDERR") == NULL && null >= 0) dup2(null, 2); /* the allocator's report */
    cases[idx].run();
    _exit(0);
  }
  close(fds[1]);
  int status = 0, waited = 0;
  for (int ms = 0; ms < limit_s * 1000; ms += 10) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      waited = 1;
      break;
    }
    usleep(10000);
  }
  char buf[512];
  size_t len = 0;
  if (!waited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  ssize_t r;
  while (len < sizeof buf - 1 && (r = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
  close(fds[0]);
  buf[len] = 0;
  const char *verdict;
  char detail[512];
  if (!waited) {
    verdict = "hang";
    snprintf(detail, sizeof detail, "killed after %d s", limit_s);
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) {
    verdict = "reported";
    snprintf(detail, sizeof detail, "SIGABRT");
  } else if (WIFSIGNALED(status)) {
    verdict = "crashed";
    snprintf(detail, sizeof detail, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  } else if (len > 0) {
    char *space = strchr(buf, ' ');
    if (space) *space = 0;
    verdict = buf;
    snprintf(detail, sizeof detail, "%s", space ? space + 1 : "");
  } else {
    verdict = "crashed";
    snprintf(detail, sizeof detail, "exit %d without a verdict", WEXITSTATUS(status));
  }
  printf("%-16s %-10s %s\n", cases[idx].name, verdict, detail);
  return !strcmp(verdict, "hang") || !strcmp(verdict, "duplicate") || !strcmp(verdict, "steered") ||
         !strcmp(verdict, "crashed") || !strcmp(verdict, "leaked");
}

int main(int argc, char **argv) {
  int limit_s = 10, bad = 0, first = 1;
  if (argc > 1 && !strcmp(argv[1], "-l")) {
    for (int i = 0; i < NCASES; i++) printf("%s\n", cases[i].name);
    return 0;
  }
  if (argc > 2 && !strcmp(argv[1], "-t")) {
    limit_s = atoi(argv[2]);
    first = 3;
  }
  for (int i = 0; i < NCASES; i++) {
    int wanted = first >= argc;
    for (int a = first; a < argc; a++)
      if (!strcmp(argv[a], cases[i].name)) wanted = 1;
    if (wanted) bad += run_one(i, limit_s);
  }
  printf("summary bad=%d\n", bad);
  return bad > 0;
}
