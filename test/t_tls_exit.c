/* Allocation in odd places, with the malloc family being ebb's:
 *  - in a constructor, before main (blocks kept into main, atexit and a
 *    destructor);
 *  - at thread exit: in thread_local (__cxa_thread_atexit_impl) destructors,
 *    which glibc runs first, then in pthread key and C11 tss destructors
 *    (which re-arm themselves once); blocks allocated while the thread ran
 *    are freed there, blocks allocated there are handed to main;
 *  - in a thread that leaves through pthread_exit (unwinding), and in
 *    detached threads;
 *  - in a dlopen'ed library (compiled at run time with cc): it mallocs what
 *    main frees and frees what main malloced, uses strdup, allocates in its
 *    constructor/destructor and gets dynamic TLS (which glibc mallocs) in
 *    several threads;
 *  - in atexit handlers and in the main thread's thread_local destructor, at
 *    exit, while two detached threads are still allocating.
 *
 * Build against glibc to check the test itself:
 *   cc -std=gnu11 -D_GNU_SOURCE -DEBB_TEST_GLIBC -O1 -g -pthread -Iinclude \
 *      test/t_tls_exit.c -o /tmp/t_tls_exit
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <threads.h>
#include <time.h>

#include "testutil.h"

#ifdef EBB_TEST_GLIBC
#define ebb_usable_size(p) malloc_usable_size((void *)(p))
#else
#include "ebb.h"
#endif

#ifdef __GLIBC__
/* glibc's implementation of C++ thread_local destructors (GLIBC_2.18). */
extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso_symbol);
extern void *__dso_handle;
static int thread_atexit(void (*dtor)(void *), void *obj) {
  return __cxa_thread_atexit_impl(dtor, obj, &__dso_handle);
}
#else
/* musl has no __cxa_thread_atexit_impl; C++ runtimes use a pthread key
 * there, and so does this (one destructor per thread: the tests' use).
 * The key is made before main, before the test's own keys: musl runs key
 * destructors in the keys' order, and the thread_local destructor must run
 * before the key destructor that frees what it allocates (made later, it
 * wrote into that key's freed record in 14 of 30 runs). */
static pthread_key_t thread_atexit_key;
static __thread void (*thread_atexit_fn)(void *);
static __thread void *thread_atexit_arg;
static void thread_atexit_run(void *unused) {
  (void)unused;
  thread_atexit_fn(thread_atexit_arg);
}
__attribute__((constructor)) static void thread_atexit_key_make(void) {
  pthread_key_create(&thread_atexit_key, thread_atexit_run);
}
static int thread_atexit(void (*dtor)(void *), void *obj) {
  thread_atexit_fn = dtor;
  thread_atexit_arg = obj;
  return pthread_setspecific(thread_atexit_key, &thread_atexit_fn);
}
#endif

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static void fail_now(const char *msg) {
  /* for use where returning a failure is no longer possible (exit paths) */
  if (write(2, msg, strlen(msg)) < 0 || write(2, "\n", 1) < 0) _exit(3);
  _exit(3);
}

/* Blocks with their size and seed in front. */
typedef struct {
  size_t n;
  uint32_t seed;
} bhdr;

static void *balloc(size_t n, uint32_t seed) {
  if (n < sizeof(bhdr)) n = sizeof(bhdr);
  unsigned char *p = malloc(n);
  if (!p) return NULL;
  bhdr h = {n, seed};
  memcpy(p, &h, sizeof h);
  size_t body = n - sizeof h;
  if (body > 8192) { /* head and tail only, for big blocks */
    fill_pattern(p + sizeof h, 4096, seed);
    fill_pattern(p + n - 4096, 4096, seed + 1);
  } else {
    fill_pattern(p + sizeof h, body, seed);
  }
  return p;
}

static int bok(const void *v) {
  const unsigned char *p = v;
  if (!p) return 0;
  bhdr h;
  memcpy(&h, p, sizeof h);
  size_t body = h.n - sizeof h;
  if (ebb_usable_size(p) < h.n) return 0;
  if (body > 8192)
    return check_pattern(p + sizeof h, 4096, h.seed) && check_pattern(p + h.n - 4096, 4096, h.seed + 1);
  return check_pattern(p + sizeof h, body, h.seed);
}

/* bok + free; 0 if the block was damaged. */
static int bfree(void *p) {
  int ok = bok(p);
  free(p);
  return ok;
}

/* Allocate and free blocks of every scale; 1 if all went well. */
static int churn_all_scales(uint32_t seed) {
  static const size_t sizes[] = {1, 8, 24, 100, 700, 3000, 9000, 40000, 130000, 600000, 3 * 1024 * 1024};
  void *v[sizeof sizes / sizeof sizes[0]];
  int ok = 1;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    v[i] = balloc(sizes[i], seed + (uint32_t)i);
    if (!v[i]) ok = 0;
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (v[i] && !bfree(v[i])) ok = 0;
  return ok;
}

/* ---- constructor / destructor / atexit -------------------------------- */
static void *ctor_keep[6];
static bool ctor_ok;

__attribute__((constructor(101))) static void early_ctor(void) {
  ctor_ok = churn_all_scales(1000);
  static const size_t keep_sizes[] = {16, 500, 20000, 200000, 1500000, 5 * 1024 * 1024};
  for (int i = 0; i < 6; i++) {
    ctor_keep[i] = balloc(keep_sizes[i], 2000 + (uint32_t)i);
    if (!ctor_keep[i]) ctor_ok = false;
  }
  char *s = strdup("allocated before main");
  if (!s || strcmp(s, "allocated before main")) ctor_ok = false;
  s = realloc(s, 100000);
  if (!s || strcmp(s, "allocated before main")) ctor_ok = false;
  free(s);
}

__attribute__((destructor(101))) static void late_dtor(void) {
  /* runs after the atexit handlers, while the detached threads may still run */
  for (int i = 3; i < 6; i++)
    if (ctor_keep[i] && !bfree(ctor_keep[i])) fail_now("t_tls_exit: destructor: constructor's block damaged");
  if (!churn_all_scales(3000)) fail_now("t_tls_exit: destructor: allocation failed");
  const char m[] = "destructor: ok\n";
  if (write(1, m, sizeof m - 1) < 0) _exit(3);
}

static void *atexit_keep[4];

static void atexit_second(void) {
  /* registered last, so it runs first */
  for (int i = 0; i < 4; i += 2)
    if (!bfree(atexit_keep[i])) fail_now("t_tls_exit: atexit: block from main damaged");
  if (!churn_all_scales(4000)) fail_now("t_tls_exit: atexit: allocation failed");
}

static void atexit_first(void) {
  for (int i = 1; i < 4; i += 2)
    if (!bfree(atexit_keep[i])) fail_now("t_tls_exit: atexit: block from main damaged");
  void *v[500];
  for (int i = 0; i < 500; i++)
    if (!(v[i] = balloc((size_t)(i * 37 % 5000), (uint32_t)i))) fail_now("t_tls_exit: atexit: malloc failed");
  for (int i = 0; i < 500; i++)
    if (!bfree(v[i])) fail_now("t_tls_exit: atexit: block damaged");
  const char m[] = "atexit: ok\n";
  if (write(1, m, sizeof m - 1) < 0) _exit(3);
}

/* ---- thread exit ------------------------------------------------------ */
static pthread_key_t key;
static tss_t c11_key;
static atomic_int n_tls_dtor, n_key_dtor_round1, n_key_dtor_round2, n_tss_dtor, n_bad, n_threads_done;

/* Blocks allocated by exiting threads in their destructors, freed by main. */
static pthread_mutex_t handed_mu = PTHREAD_MUTEX_INITIALIZER;
static void *handed[8192];
static int n_handed;

static void hand_to_main(void *p) {
  pthread_mutex_lock(&handed_mu);
  if (n_handed < (int)(sizeof handed / sizeof handed[0]))
    handed[n_handed++] = p;
  else if (!bfree(p))
    atomic_fetch_add(&n_bad, 1);
  pthread_mutex_unlock(&handed_mu);
}

typedef struct {
  void *own;      /* allocated by the thread while it ran; freed by the key dtor */
  void *from_tls; /* allocated by the thread_local dtor; freed by the key dtor */
  int round;
  uint32_t id;
} thread_rec;

static __thread void *tls_block; /* freed by the thread_local destructor */
static __thread thread_rec *tls_rec;

static void tls_dtor(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  if (!bfree(tls_block)) atomic_fetch_add(&n_bad, 1);
  tls_block = NULL;
  if (!churn_all_scales(id * 10)) atomic_fetch_add(&n_bad, 1);
  /* the key destructor runs after this one and must be able to free it */
  if (tls_rec) tls_rec->from_tls = balloc(3000 + id, id + 5);
  atomic_fetch_add(&n_tls_dtor, 1);
}

static void key_dtor(void *v) {
  thread_rec *r = v;
  if (r->round == 0) {
    /* first round: free what the thread left, allocate, re-arm the key */
    if (!bfree(r->own)) atomic_fetch_add(&n_bad, 1);
    if (r->from_tls && !bfree(r->from_tls)) atomic_fetch_add(&n_bad, 1);
    if (!churn_all_scales(r->id * 7)) atomic_fetch_add(&n_bad, 1);
    thread_rec *r2 = malloc(sizeof *r2);
    if (!r2) {
      atomic_fetch_add(&n_bad, 1);
      free(r);
      return;
    }
    *r2 = (thread_rec){balloc(100 + r->id % 50000, r->id), NULL, 1, r->id};
    free(r);
    pthread_setspecific(key, r2); /* glibc runs the destructor again */
    atomic_fetch_add(&n_key_dtor_round1, 1);
    return;
  }
  /* second round: hand a block to main, free the rest */
  hand_to_main(r->own);
  hand_to_main(balloc(64 + r->id % 300000, r->id ^ 0x5555));
  free(r);
  atomic_fetch_add(&n_key_dtor_round2, 1);
}

static void tss_dtor(void *v) {
  if (!bfree(v)) atomic_fetch_add(&n_bad, 1);
  void *p = balloc(777, 3);
  if (!bfree(p)) atomic_fetch_add(&n_bad, 1);
  atomic_fetch_add(&n_tss_dtor, 1);
}

static void thread_setup(uint32_t id) {
  tls_block = balloc(50 + id % 70000, id + 1);
  thread_rec *r = malloc(sizeof *r);
  if (!r || !tls_block) {
    atomic_fetch_add(&n_bad, 1);
    return;
  }
  *r = (thread_rec){balloc(10 + id % 3000, id + 2), NULL, 0, id};
  tls_rec = r;
  if (pthread_setspecific(key, r)) atomic_fetch_add(&n_bad, 1);
  if (tss_set(c11_key, balloc(200 + id % 100, id + 3)) != thrd_success) atomic_fetch_add(&n_bad, 1);
  if (thread_atexit(tls_dtor, (void *)(uintptr_t)id)) atomic_fetch_add(&n_bad, 1);
  /* some ordinary work */
  void *v[100];
  for (int i = 0; i < 100; i++) v[i] = balloc((size_t)(i * 131 + id) % 20000, id + (uint32_t)i);
  for (int i = 0; i < 100; i++)
    if (!bfree(v[i])) atomic_fetch_add(&n_bad, 1);
}

static void *thread_plain(void *arg) {
  thread_setup((uint32_t)(uintptr_t)arg);
  atomic_fetch_add(&n_threads_done, 1);
  return NULL;
}

static void __attribute__((noinline)) deep_exit(int depth) {
  if (depth == 0) {
    atomic_fetch_add(&n_threads_done, 1);
    pthread_exit(NULL); /* unwinds; glibc may dlopen libgcc_s (mallocs) */
  }
  void *volatile p = malloc(32);
  if (p || depth > 0) deep_exit(depth - 1);
  free(p); /* not reached */
}

static void *thread_pexit(void *arg) {
  thread_setup((uint32_t)(uintptr_t)arg);
  deep_exit(5);
  return NULL;
}

static int thread_c11(void *arg) {
  thread_setup((uint32_t)(uintptr_t)arg);
  atomic_fetch_add(&n_threads_done, 1);
  return 0;
}

static bool wait_for(atomic_int *counter, int target, double seconds) {
  for (int i = 0; i < (int)(seconds * 1000); i++) {
    if (atomic_load(counter) >= target) return true;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return atomic_load(counter) >= target;
}

static void test_thread_exit(void) {
  CHECK(pthread_key_create(&key, key_dtor) == 0);
  CHECK(tss_create(&c11_key, tss_dtor) == thrd_success);
  enum { WAVES = 60, PER_WAVE = 8 };
  int started = 0;
  for (int w = 0; w < WAVES; w++) {
    pthread_t t[PER_WAVE];
    thrd_t ct[PER_WAVE];
    int kind[PER_WAVE];
    for (int i = 0; i < PER_WAVE; i++) {
      uint32_t id = (uint32_t)(w * PER_WAVE + i + 1);
      kind[i] = i % 4;
      int e = 0;
      if (kind[i] == 0 || kind[i] == 3) {
        e = pthread_create(&t[i], NULL, thread_plain, (void *)(uintptr_t)id);
      } else if (kind[i] == 1) {
        e = pthread_create(&t[i], NULL, thread_pexit, (void *)(uintptr_t)id);
      } else {
        e = thrd_create(&ct[i], thread_c11, (void *)(uintptr_t)id) == thrd_success ? 0 : EAGAIN;
      }
      CHECK(e == 0);
      if (kind[i] == 3 && !e) CHECK(pthread_detach(t[i]) == 0);
      started += !e;
    }
    for (int i = 0; i < PER_WAVE; i++) {
      if (kind[i] == 2)
        thrd_join(ct[i], NULL);
      else if (kind[i] != 3)
        pthread_join(t[i], NULL);
    }
  }
  /* detached threads: wait until their destructors have run */
  CHECK(wait_for(&n_key_dtor_round2, started, 20.0));
  CHECK(wait_for(&n_tss_dtor, started, 20.0));
  CHECK(atomic_load(&n_threads_done) == started);
  CHECK(atomic_load(&n_tls_dtor) == started);
  CHECK(atomic_load(&n_key_dtor_round1) == started);
  CHECK(atomic_load(&n_key_dtor_round2) == started);
  CHECK(atomic_load(&n_tss_dtor) == started);
  CHECK(atomic_load(&n_bad) == 0);
  pthread_mutex_lock(&handed_mu);
  int bad = 0;
  for (int i = 0; i < n_handed; i++) bad += !bfree(handed[i]);
  CHECK(bad == 0);
  CHECK(n_handed == 2 * started);
  printf("thread exit: %d threads; thread_local, pthread key (2 rounds) and tss destructors allocated and freed; "
         "main freed %d blocks allocated in destructors\n",
         started, n_handed);
  n_handed = 0;
  pthread_mutex_unlock(&handed_mu);
}

/* ---- dlopen ----------------------------------------------------------- */
static const char lib_source[] =
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "extern int __cxa_thread_atexit_impl(void (*)(void *), void *, void *);\n"
    "extern void *__dso_handle;\n"
    "static void *keep;\n"
    "static __thread char tls_big[65536];\n" /* dynamic TLS: glibc mallocs it */
    "static __thread char *tls_buf;\n"
    "__attribute__((constructor)) static void lib_init(void) {\n"
    "  keep = malloc(100000); if (keep) memset(keep, 0x5a, 100000);\n"
    "}\n"
    "__attribute__((destructor)) static void lib_fini(void) { free(keep); }\n"
    "int lib_keep_ok(void) {\n"
    "  const unsigned char *k = keep; if (!k) return 0;\n"
    "  for (int i = 0; i < 100000; i++) if (k[i] != 0x5a) return 0;\n"
    "  return 1;\n"
    "}\n"
    "void *lib_alloc(size_t n, int c) { void *p = malloc(n); if (p) memset(p, c, n); return p; }\n"
    "int lib_check_free(void *p, size_t n, int c) {\n"
    "  const unsigned char *b = p; int ok = 1;\n"
    "  for (size_t i = 0; i < n; i++) if (b[i] != (unsigned char)c) { ok = 0; break; }\n"
    "  free(p); return ok;\n"
    "}\n"
    "char *lib_strdup(const char *s) { return strdup(s); }\n"
    "void *lib_realloc(void *p, size_t n) { return realloc(p, n); }\n"
    "static void tls_free(void *unused) { (void)unused; free(tls_buf); tls_buf = 0; }\n"
    "int lib_tls_touch(int v) {\n"
    "  tls_big[v & 65535] = (char)v;\n"
    "  if (!tls_buf) {\n"
    "    tls_buf = malloc(5000); if (!tls_buf) return -1;\n"
    "    __cxa_thread_atexit_impl(tls_free, 0, &__dso_handle);\n"
    "  }\n"
    "  tls_buf[v % 5000] = (char)v;\n"
    "  return tls_big[v & 65535] == (char)v && tls_buf[v % 5000] == (char)v;\n"
    "}\n";

typedef struct {
  int (*keep_ok)(void);
  void *(*alloc)(size_t, int);
  int (*check_free)(void *, size_t, int);
  char *(*strdup_)(const char *);
  void *(*realloc_)(void *, size_t);
  int (*tls_touch)(int);
} lib_fns;

static lib_fns lib;

static void *lib_thread(void *arg) {
  int v = (int)(uintptr_t)arg;
  int ok = 1;
  for (int i = 0; i < 100; i++) ok &= lib.tls_touch(v + i) == 1;
  void *p = lib.alloc(3000 + (size_t)v, v & 0xff);
  ok &= p != NULL;
  if (p) {
    const unsigned char *b = p;
    ok &= b[0] == (unsigned char)(v & 0xff) && b[2999] == (unsigned char)(v & 0xff);
    free(p); /* a block the library allocated, freed by the program */
  }
  return (void *)(uintptr_t)!ok;
}

static int run_cmd(const char *cmd) {
  int st = system(cmd);
  return st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128);
}

static void test_dlopen(void) {
#ifndef __GLIBC__
  printf("dlopen: SKIPPED (glibc's dlopen and __cxa_thread_atexit_impl; a static musl build has neither)\n");
  return;
#endif
  if (run_cmd("command -v cc >/dev/null 2>&1") != 0) {
    printf("dlopen: SKIPPED (no cc to build the library)\n");
    return;
  }
  char dir[] = "/tmp/ebb_tls_exit_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    test_failures++;
    return;
  }
  char src[256], so[256], cmd[1024];
  snprintf(src, sizeof src, "%s/lib.c", dir);
  snprintf(so, sizeof so, "%s/lib.so", dir);
  FILE *f = fopen(src, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(lib_source, f);
  fclose(f);
  /* cc runs with the environment's allocator (not ebb unless preloaded) */
  snprintf(cmd, sizeof cmd, "cc -shared -fPIC -O1 -pthread -o '%s' '%s'", so, src);
  int rc = run_cmd(cmd);
  CHECK(rc == 0);
  void *h = rc == 0 ? dlopen(so, RTLD_NOW | RTLD_LOCAL) : NULL;
  if (rc == 0 && !h) fprintf(stderr, "dlopen: %s\n", dlerror());
  CHECK(h != NULL);
  if (h) {
#define SYM(field, name)                 \
  do {                                   \
    void *sym_ = dlsym(h, name);         \
    memcpy(&lib.field, &sym_, sizeof sym_); \
  } while (0)
    SYM(keep_ok, "lib_keep_ok");
    SYM(alloc, "lib_alloc");
    SYM(check_free, "lib_check_free");
    SYM(strdup_, "lib_strdup");
    SYM(realloc_, "lib_realloc");
    SYM(tls_touch, "lib_tls_touch");
#undef SYM
    CHECK(lib.keep_ok && lib.alloc && lib.check_free && lib.strdup_ && lib.realloc_ && lib.tls_touch);
  }
  if (h && lib.keep_ok && lib.alloc && lib.check_free && lib.strdup_ && lib.realloc_ && lib.tls_touch) {
    CHECK(lib.keep_ok());
    /* library allocates, program frees (and reallocs) */
    static const size_t sizes[] = {1, 40, 1000, 20000, 300000, 3 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      unsigned char *p = lib.alloc(sizes[i], (int)i + 1);
      CHECK(p != NULL);
      if (!p) continue;
      CHECK(ebb_usable_size(p) >= sizes[i]);
      CHECK(p[0] == i + 1 && p[sizes[i] - 1] == i + 1);
      if (i % 2) {
        p = realloc(p, sizes[i] * 2);
        CHECK(p && p[sizes[i] - 1] == i + 1);
      }
      free(p);
    }
    /* program allocates, library frees (and reallocs) */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      unsigned char *p = malloc(sizes[i]);
      CHECK(p != NULL);
      if (!p) continue;
      memset(p, 0x33, sizes[i]);
      if (i % 2) {
        p = lib.realloc_(p, sizes[i] + 5000);
        CHECK(p != NULL);
        if (!p) continue;
        memset(p, 0x33, sizes[i] + 5000);
        CHECK(lib.check_free(p, sizes[i] + 5000, 0x33));
      } else {
        CHECK(lib.check_free(p, sizes[i], 0x33));
      }
    }
    char *s = lib.strdup_("strdup in a dlopen'ed library");
    CHECK(s && strcmp(s, "strdup in a dlopen'ed library") == 0);
    /* dynamic TLS of the library in several threads */
    pthread_t t[6];
    for (int i = 0; i < 6; i++) CHECK(pthread_create(&t[i], NULL, lib_thread, (void *)(uintptr_t)(i * 1000)) == 0);
    for (int i = 0; i < 6; i++) {
      void *r = (void *)1;
      pthread_join(t[i], &r);
      CHECK(r == NULL);
    }
    CHECK(lib.tls_touch(7) == 1); /* main thread too; freed at exit */
    void *from_lib = lib.alloc(12345, 0x77);
    CHECK(dlclose(h) == 0);
    /* the library is gone; its blocks are still ours */
    CHECK(from_lib && ((unsigned char *)from_lib)[12344] == 0x77);
    free(from_lib);
    CHECK(strcmp(s, "strdup in a dlopen'ed library") == 0);
    free(s);
    printf("dlopen: library malloc/free/realloc/strdup across the boundary and its dynamic TLS: done\n");
  }
  unlink(so);
  unlink(src);
  rmdir(dir);
}

/* ---- exit with threads still allocating -------------------------------- */
static void *busy_thread(void *arg) {
  uint64_t rng = (uintptr_t)arg + 1;
  void *slot[64] = {0};
  for (;;) {
    uint64_t r = test_rand(&rng);
    size_t i = r % 64;
    free(slot[i]);
    slot[i] = malloc((size_t)(r >> 8) % ((r & 0x300) == 0x300 ? 300000 : 2000) + 1);
    if (slot[i]) memset(slot[i], 1, 1);
  }
  return NULL;
}

static void main_tls_dtor(void *unused) {
  (void)unused;
  /* the main thread's thread_local destructors run inside exit(), before the
   * atexit handlers */
  if (!churn_all_scales(5000)) fail_now("t_tls_exit: main thread_local destructor: allocation failed");
}

#ifndef __GLIBC__
static void main_tls_dtor_at_exit(void) { main_tls_dtor(NULL); }
#endif

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  CHECK(ctor_ok);
  for (int i = 0; i < 6; i++) CHECK(bok(ctor_keep[i]));
  for (int i = 0; i < 3; i++) free(ctor_keep[i]);
  printf("constructor: blocks allocated before main are intact\n");

  test_thread_exit();
  test_dlopen();

  for (int i = 0; i < 4; i++) {
    atexit_keep[i] = balloc((size_t)1 << (4 + 5 * i), 6000 + (uint32_t)i);
    CHECK(atexit_keep[i] != NULL);
  }
  CHECK(atexit(atexit_first) == 0);
  CHECK(atexit(atexit_second) == 0);
#ifdef __GLIBC__
  CHECK(thread_atexit(main_tls_dtor, NULL) == 0);
#else
  CHECK(atexit(main_tls_dtor_at_exit) == 0); /* key destructors do not run for main at exit */
#endif

  /* leave two threads allocating while the process exits */
  for (int i = 0; i < 2; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, busy_thread, (void *)(uintptr_t)i) == 0);
    pthread_detach(t);
  }
  struct timespec ts = {0, 20000000};
  nanosleep(&ts, NULL);
  printf("exiting with 2 threads still allocating\n");
  TEST_DONE();
}
