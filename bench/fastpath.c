/* bench/fastpath.c: malloc+free fast-path loops for instruction counting.
 *
 *   fastpath WORKLOAD ITERATIONS
 *
 * Workloads (one malloc+free pair per iteration, on the main thread):
 *   fixed16       p = malloc(16); free(p).  Nothing else lives in the size
 *                 class, so the page empties on every free.
 *   fixed16-keep  the same, with one other 16-byte block kept live for the
 *                 whole loop (the page never empties).
 *   random        1000 live slots, pre-filled with random sizes before the
 *                 loop; each iteration frees a random slot and mallocs a new
 *                 random size (8..1024 bytes) into it.
 *   random-pair   p = malloc(random 8..1024); free(p).
 *   random-mid    as random, with sizes 1025..8192 (the fast path's
 *                 entries above 1 KiB).
 *   aligned       p = aligned_alloc(64, random multiple of 64 up to 1024);
 *                 free(p) (a C++ or Rust type aligned to a cache line).
 *
 * Meant to be run under valgrind --tool=callgrind with the allocator under
 * test in LD_PRELOAD (bench/callgrind.sh): the loops are noinline functions
 * named loop_*, so callgrind can count just the loop (--toggle-collect=loop_*;
 * fixed16 and fixed16-keep share loop_fixed16), and the script takes the
 * difference of two iteration counts so one-time costs (first page, allocator start-up) cancel.
 *
 * The calls cannot be elided: build with -fno-builtin-malloc -fno-builtin-free
 * (bench/callgrind.sh does), every block gets one byte written through a
 * volatile pointer, and a value derived from the blocks goes to a volatile
 * sink.  The random sizes come from an inline xorshift64, so the loop
 * overhead is a handful of instructions and identical for every allocator.
 *
 * After the loop it prints, for malloc, free and aligned_alloc, the address the program's
 * calls bind to, its offset in the object that holds it, and the object
 * (dlsym + dladdr):
 *     where malloc 0x484cb70 0x10b70 /usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0
 * bench/callgrind.sh matches these addresses with the call targets callgrind
 * recorded, to prove the preloaded allocator is what it counted.
 */
#define _GNU_SOURCE 1 /* dladdr, RTLD_DEFAULT */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

#define SLOTS 1000
#define MIN_SIZE 8
#define MAX_SIZE 1024
#define MID_MIN_SIZE 1025
#define MID_MAX_SIZE 8192

volatile uintptr_t sink;

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* lo..hi inclusive, from the low 32 bits (multiply-shift, no division). */
static inline size_t rand_in(uint64_t r, size_t lo, size_t hi)
{
    return lo + (size_t)(((r & 0xffffffffu) * (uint64_t)(hi - lo + 1)) >> 32);
}

static inline size_t rand_size(uint64_t r) { return rand_in(r, MIN_SIZE, MAX_SIZE); }
static inline size_t rand_mid_size(uint64_t r) { return rand_in(r, MID_MIN_SIZE, MID_MAX_SIZE); }

/* 0..SLOTS-1, from the high 32 bits. */
static inline unsigned rand_slot(uint64_t r)
{
    return (unsigned)(((r >> 32) * (uint64_t)SLOTS) >> 32);
}

static inline void touch(void *p, uintptr_t v)
{
    *(volatile unsigned char *)p = (unsigned char)v;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "fastpath: malloc(%zu) failed\n", n);
        exit(2);
    }
    return p;
}

NOINLINE static uintptr_t loop_fixed16(long n)
{
    uintptr_t acc = 0;
    for (long i = 0; i < n; i++) {
        void *p = malloc(16);
        touch(p, (uintptr_t)i);
        acc ^= (uintptr_t)p;
        free(p);
    }
    return acc;
}

/* The random loops' body, inlined into each with its size function (a
 * constant there, so each loop's code is what it would be written out). */
__attribute__((always_inline)) static inline uintptr_t random_slots(long n, void **slots, uint64_t *seed,
                                                                     size_t (*size_of)(uint64_t))
{
    uintptr_t acc = 0;
    uint64_t s = *seed;
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift64(&s);
        unsigned k = rand_slot(r);
        free(slots[k]);
        void *p = malloc(size_of(r));
        touch(p, (uintptr_t)i);
        acc ^= (uintptr_t)p;
        slots[k] = p;
    }
    *seed = s;
    return acc;
}

NOINLINE static uintptr_t loop_random(long n, void **slots, uint64_t *seed)
{
    return random_slots(n, slots, seed, rand_size);
}

/* loop_random for sizes above 1 KiB (a loop of its own, so that
 * loop_random's code, and its counts, stay as they were). */
NOINLINE static uintptr_t loop_random_mid(long n, void **slots, uint64_t *seed)
{
    return random_slots(n, slots, seed, rand_mid_size);
}

NOINLINE static uintptr_t loop_random_pair(long n, uint64_t *seed)
{
    uintptr_t acc = 0;
    uint64_t s = *seed;
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift64(&s);
        void *p = malloc(rand_size(r));
        touch(p, (uintptr_t)i);
        acc ^= (uintptr_t)p;
        free(p);
    }
    *seed = s;
    return acc;
}

/* As random-pair, through aligned_alloc (callgrind.sh verifies that
 * function for this workload, not malloc). */
NOINLINE static uintptr_t loop_aligned(long n, uint64_t *seed)
{
    uintptr_t acc = 0;
    uint64_t s = *seed;
    for (long i = 0; i < n; i++) {
        uint64_t r = xorshift64(&s);
        void *p = aligned_alloc(64, rand_in(r, 1, MAX_SIZE / 64) * 64);
        touch(p, (uintptr_t)i);
        acc ^= (uintptr_t)p;
        free(p);
    }
    *seed = s;
    return acc;
}

/* The malloc the program's calls bind to: dlsym(RTLD_DEFAULT) searches the
 * global scope in the order the dynamic linker binds the executable's own
 * references (executable, LD_PRELOAD, then its libraries).  Not &malloc:
 * taking the address would make the linker route the calls through a
 * different kind of PLT stub, which changes what callgrind attributes. */
static void where(const char *name)
{
    Dl_info info;
    const char *obj = "?";
    uintptr_t off = 0;
    void *addr = dlsym(RTLD_DEFAULT, name);
    if (addr && dladdr(addr, &info) && info.dli_fname && *info.dli_fname) {
        obj = info.dli_fname;
        off = (uintptr_t)addr - (uintptr_t)info.dli_fbase;
    }
    printf("where %s %#lx %#lx %s\n", name, (unsigned long)(uintptr_t)addr,
           (unsigned long)off, obj);
}

static _Noreturn void usage(void)
{
    fprintf(stderr,
            "usage: fastpath WORKLOAD ITERATIONS\n"
            "  WORKLOAD: fixed16 | fixed16-keep | random | random-pair | random-mid | aligned\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        usage();
    const char *w = argv[1];
    char *end;
    long n = strtol(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || n < 0)
        usage();

    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uintptr_t acc = 0;

    if (strcmp(w, "fixed16") == 0) {
        acc = loop_fixed16(n);
    } else if (strcmp(w, "fixed16-keep") == 0) {
        void *keep = xmalloc(16);
        touch(keep, 1);
        acc = loop_fixed16(n);
        sink = (uintptr_t)keep;
        free(keep);
    } else if (strcmp(w, "random") == 0 || strcmp(w, "random-mid") == 0) {
        bool mid = strcmp(w, "random-mid") == 0;
        static void *slots[SLOTS];
        for (unsigned k = 0; k < SLOTS; k++) {
            uint64_t r = xorshift64(&seed);
            slots[k] = xmalloc(mid ? rand_mid_size(r) : rand_size(r));
            touch(slots[k], k);
        }
        acc = mid ? loop_random_mid(n, slots, &seed) : loop_random(n, slots, &seed);
        for (unsigned k = 0; k < SLOTS; k++)
            free(slots[k]);
    } else if (strcmp(w, "random-pair") == 0) {
        acc = loop_random_pair(n, &seed);
    } else if (strcmp(w, "aligned") == 0) {
        acc = loop_aligned(n, &seed);
    } else {
        usage();
    }
    sink = acc;
    where("malloc");
    where("free");
    where("aligned_alloc");
    return 0;
}
