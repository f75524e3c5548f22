/* Stacks for the heap profiler: a DWARF unwinder that remembers each
 * return address's frame rule.
 *
 * Why.  glibc's backtrace() goes through libgcc's unwinder, which for every
 * frame finds the function's FDE and runs its call frame program from the
 * start: about 1,000 instructions a frame, 10,000 a stack, every time.  A
 * profiled program returns to the same few thousand addresses over and
 * over, so this one computes a return address's rule once and keeps it: a
 * stack seen before costs a hash lookup and three loads a frame.
 *
 * What a rule is.  On x86-64 the frames of C, C++ and Rust code compiled
 * with unwind tables (the default: every object carries .eh_frame) need
 * little to step back one frame: the canonical frame address (CFA) is rsp
 * or rbp plus a constant, the return address sits just below the CFA, and
 * rbp is either untouched or saved at a constant offset from the CFA.  Such
 * a rule fits one word.  Anything else (a signal frame, a CFA computed by a
 * DWARF expression, a return address elsewhere) makes the rule
 * "unsupported", and the caller unwinds that stack with backtrace() as
 * before; so does any other platform.
 *
 * Finding the rule.  _dl_find_object (glibc 2.35) names the object holding
 * an address and its .eh_frame_hdr without a lock; the header's sorted table
 * finds the FDE by binary search; the CIE's and then the FDE's instructions
 * are run up to the address.  An address in no object, or in no FDE, ends
 * the stack, as it does for libgcc.
 *
 * The cache.  A fixed table in .bss (untouched unless profiling), open
 * addressing on the address, each slot a sequence lock whose writers never
 * wait (below): a sampled allocation takes no lock here, not even the
 * loader's.  A library unloaded and another loaded at its address would
 * leave stale rules for the new one's addresses: its frames could come out
 * wrong in the profile, nothing worse, since every read is bounded to this
 * thread's stack between the starting rsp and its top, each CFA above the
 * last.  (Emptying the table on unload needs the loader's count of them,
 * which only dl_iterate_phdr gives, under the loader's lock: a sampled
 * malloc would then wait for it, and deadlock with a program whose
 * dl_iterate_phdr callback takes a lock held around a malloc.) */
#include <pthread.h>

#include "internal.h"

#if defined(__x86_64__) && !defined(__ILP32__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#include <dlfcn.h>
#include <string.h>

enum { RULE_STEP = 1, RULE_END = 2, RULE_UNSUPPORTED = 3 };
enum { DW_REG_RBP = 6, DW_REG_RSP = 7, DW_REG_RA = 16 };

/* A rule in one word: kind in bits 48-49, "CFA from rbp" in bit 50, the
 * CFA's offset in bits 0-31, rbp's save slot (offset from the CFA, 0: not
 * saved) in bits 32-47. */
static uint64_t rule_make(int kind, bool cfa_from_rbp, int32_t cfa_off, int16_t rbp_off) {
  return (uint64_t)(uint32_t)cfa_off | ((uint64_t)(uint16_t)rbp_off << 32) | ((uint64_t)kind << 48) |
         ((uint64_t)cfa_from_rbp << 50);
}
static int rule_kind(uint64_t r) { return (int)((r >> 48) & 3); }
static bool rule_cfa_from_rbp(uint64_t r) { return (r >> 50) & 1; }
static int32_t rule_cfa_off(uint64_t r) { return (int32_t)(uint32_t)r; }
static int16_t rule_rbp_off(uint64_t r) { return (int16_t)(uint16_t)(r >> 32); }

/* ---- reading .eh_frame ------------------------------------------------------- */
typedef struct {
  const uint8_t *p, *end;
  bool bad;
} reader_t;

static uint64_t read_uleb(reader_t *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; r->p < r->end; shift += 7) {
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}

static int64_t read_sleb(reader_t *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  while (r->p < r->end) {
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) {
      if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
      return (int64_t)v;
    }
  }
  r->bad = true;
  return 0;
}

static uint64_t read_fixed(reader_t *r, size_t n) {
  if ((size_t)(r->end - r->p) < n) {
    r->bad = true;
    return 0;
  }
  uint64_t v = 0;
  memcpy(&v, r->p, n); /* little-endian */
  r->p += n;
  return v;
}

/* A pointer in DW_EH_PE encoding `enc`; pc-relative, or relative to
 * `data_base` (the header's own table).  Others are not used on x86-64. */
static uintptr_t read_encoded(reader_t *r, uint8_t enc, uintptr_t data_base) {
  if (enc == 0xff) return 0; /* omitted */
  uintptr_t field = (uintptr_t)r->p, v;
  switch (enc & 0x0f) {
  case 0x00: v = (uintptr_t)read_fixed(r, 8); break;
  case 0x01: v = (uintptr_t)read_uleb(r); break;
  case 0x02: v = (uintptr_t)read_fixed(r, 2); break;
  case 0x03: v = (uintptr_t)read_fixed(r, 4); break;
  case 0x04: v = (uintptr_t)read_fixed(r, 8); break;
  case 0x09: v = (uintptr_t)read_sleb(r); break;
  case 0x0a: v = (uintptr_t)(int64_t)(int16_t)read_fixed(r, 2); break;
  case 0x0b: v = (uintptr_t)(int64_t)(int32_t)read_fixed(r, 4); break;
  case 0x0c: v = (uintptr_t)read_fixed(r, 8); break;
  default: r->bad = true; return 0;
  }
  switch (enc & 0x70) {
  case 0x00: break;
  case 0x10: v += field; break;
  case 0x30:
    if (data_base == 0) {
      r->bad = true;
      return 0;
    }
    v += data_base;
    break;
  default: r->bad = true; return 0;
  }
  if (enc & 0x80) {
    r->bad = true; /* indirect: not in the fields read here */
    return 0;
  }
  return v;
}

/* A DWARF expression's block, its length first: skipped. */
static bool skip_block(reader_t *r) {
  uint64_t len = read_uleb(r);
  if (len > (uint64_t)(r->end - r->p)) return false;
  r->p += len;
  return true;
}

/* ---- running the call frame program -------------------------------------------- */
enum { HOW_SAME = 0, HOW_OFFSET, HOW_UNDEFINED, HOW_OTHER };
typedef struct {
  int cfa_reg; /* -1: an expression */
  int64_t cfa_off;
  uint8_t rbp_how, ra_how;
  int64_t rbp_off, ra_off;
} frame_state_t;

/* factor * n without signed overflow on malformed tables */
static int64_t scaled(uint64_t n, int64_t factor) { return (int64_t)(n * (uint64_t)factor); }

static void set_reg(frame_state_t *s, uint64_t reg, uint8_t how, int64_t off) {
  if (reg == DW_REG_RBP) {
    s->rbp_how = how;
    s->rbp_off = off;
  } else if (reg == DW_REG_RA) {
    s->ra_how = how;
    s->ra_off = off;
  }
}

static void restore_reg(frame_state_t *s, const frame_state_t *initial, uint64_t reg) {
  if (reg == DW_REG_RBP) {
    s->rbp_how = initial->rbp_how;
    s->rbp_off = initial->rbp_off;
  } else if (reg == DW_REG_RA) {
    s->ra_how = initial->ra_how;
    s->ra_off = initial->ra_off;
  }
}

typedef struct {
  int64_t data_align;
  uint64_t code_align;
  uint8_t fde_enc;
  bool signal_frame;
  bool fde_aug_data; /* 'z': each FDE has augmentation data, its length first */
} cie_info_t;

/* Runs [r->p, r->end) from location `loc` while the rows apply at or below
 * `target`.  `initial` is the CIE's state (DW_CFA_restore), NULL while
 * running the CIE itself.  False: an instruction this reader does not know. */
static bool run_cfa(reader_t *r, const cie_info_t *cie, uintptr_t loc, uintptr_t target, frame_state_t *s,
                    const frame_state_t *initial) {
  frame_state_t stack[8];
  unsigned depth = 0;
  while (r->p < r->end && !r->bad) {
    uint8_t op = *r->p++;
    uint64_t reg, delta = 0;
    bool advance = false;
    switch (op >> 6) {
    case 1: delta = (op & 0x3f) * cie->code_align; advance = true; break;
    case 2: set_reg(s, op & 0x3f, HOW_OFFSET, scaled(read_uleb(r), cie->data_align)); continue;
    case 3:
      if (initial == NULL) return false;
      restore_reg(s, initial, op & 0x3f);
      continue;
    default: break;
    }
    if (!advance) {
      switch (op) {
      case 0x00: continue; /* nop */
      case 0x01: {         /* set_loc */
        uintptr_t to = read_encoded(r, cie->fde_enc, 0);
        if (to > target) return true;
        loc = to;
        continue;
      }
      case 0x02: delta = read_fixed(r, 1) * cie->code_align; advance = true; break;
      case 0x03: delta = read_fixed(r, 2) * cie->code_align; advance = true; break;
      case 0x04: delta = read_fixed(r, 4) * cie->code_align; advance = true; break;
      case 0x05:
        reg = read_uleb(r);
        set_reg(s, reg, HOW_OFFSET, scaled(read_uleb(r), cie->data_align));
        continue;
      case 0x06:
        if (initial == NULL) return false;
        restore_reg(s, initial, read_uleb(r));
        continue;
      case 0x07: set_reg(s, read_uleb(r), HOW_UNDEFINED, 0); continue;
      case 0x08: set_reg(s, read_uleb(r), HOW_SAME, 0); continue;
      case 0x09:   /* register */
      case 0x14:   /* val_offset */
      case 0x15: { /* val_offset_sf: a LEB128 skipped alike, signed or not */
        reg = read_uleb(r);
        read_uleb(r);
        set_reg(s, reg, HOW_OTHER, 0);
        continue;
      }
      case 0x0a:
        if (depth == 8) return false;
        stack[depth++] = *s;
        continue;
      case 0x0b: /* the CFA too: GCC's epilogues rely on it, as libgcc does */
        if (depth == 0) return false;
        *s = stack[--depth];
        continue;
      case 0x0c:
        s->cfa_reg = (int)read_uleb(r);
        s->cfa_off = (int64_t)read_uleb(r);
        continue;
      case 0x0d: s->cfa_reg = (int)read_uleb(r); continue;
      case 0x0e: s->cfa_off = (int64_t)read_uleb(r); continue;
      case 0x0f: /* def_cfa_expression */
        if (!skip_block(r)) return false;
        s->cfa_reg = -1;
        continue;
      case 0x10: /* expression */
      case 0x16: /* val_expression */
        reg = read_uleb(r);
        if (!skip_block(r)) return false;
        set_reg(s, reg, HOW_OTHER, 0);
        continue;
      case 0x11:
        reg = read_uleb(r);
        set_reg(s, reg, HOW_OFFSET, scaled((uint64_t)read_sleb(r), cie->data_align));
        continue;
      case 0x12:
        s->cfa_reg = (int)read_uleb(r);
        s->cfa_off = scaled((uint64_t)read_sleb(r), cie->data_align);
        continue;
      case 0x13: s->cfa_off = scaled((uint64_t)read_sleb(r), cie->data_align); continue;
      case 0x2e: read_uleb(r); continue; /* GNU_args_size */
      case 0x2f:                         /* GNU_negative_offset_extended */
        reg = read_uleb(r);
        set_reg(s, reg, HOW_OFFSET, (int64_t)(0 - (uint64_t)scaled(read_uleb(r), cie->data_align)));
        continue;
      default: return false;
      }
    }
    if (loc + delta > target) return true; /* the next row starts past the address */
    loc += delta;
  }
  return !r->bad;
}

/* Reads the CIE at `cie_at`: its fields into `info`, its initial
 * instructions into `r`.  False if malformed or of a kind not read here. */
static bool read_cie(const uint8_t *cie_at, cie_info_t *info, reader_t *r) {
  uint32_t len32;
  memcpy(&len32, cie_at, 4);
  if (len32 == 0 || len32 == 0xffffffffu) return false; /* 64-bit lengths: not in x86-64 .eh_frame */
  r->p = cie_at + 4;
  r->end = cie_at + 4 + len32;
  r->bad = false;
  if (read_fixed(r, 4) != 0) return false; /* CIE id */
  uint8_t version = (uint8_t)read_fixed(r, 1);
  if (version != 1 && version != 3) return false;
  const char *aug = (const char *)r->p;
  size_t aug_len = strnlen(aug, (size_t)(r->end - r->p));
  if (aug_len == (size_t)(r->end - r->p)) return false; /* no end to the string */
  r->p += aug_len + 1;
  info->code_align = read_uleb(r);
  info->data_align = read_sleb(r);
  uint64_t ra_reg = version == 1 ? read_fixed(r, 1) : read_uleb(r);
  if (ra_reg != DW_REG_RA) return false;
  info->fde_enc = 0x00;
  info->signal_frame = false;
  info->fde_aug_data = aug[0] == 'z';
  if (aug[0] == 'z') {
    uint64_t aug_data_len = read_uleb(r);
    const uint8_t *aug_end = r->p + aug_data_len;
    for (size_t i = 1; i < aug_len && !r->bad; i++) {
      switch (aug[i]) {
      case 'R': info->fde_enc = (uint8_t)read_fixed(r, 1); break;
      case 'L': read_fixed(r, 1); break;
      case 'P': {
        uint8_t enc = (uint8_t)read_fixed(r, 1);
        read_encoded(r, enc & 0x7f, 0); /* the personality routine: skipped, indirect or not */
        break;
      }
      case 'S': info->signal_frame = true; break;
      case 'B': break;
      default: r->p = aug_end; i = aug_len; break; /* unknown: the length skips it */
      }
    }
    if (aug_end > r->end) return false;
    r->p = aug_end;
  } else if (aug_len != 0) {
    return false;
  }
  return !r->bad;
}

/* The FDE covering `pc` in the object whose .eh_frame_hdr is `hdr`; NULL if none. */
static const uint8_t *fde_find(const uint8_t *hdr, uintptr_t pc, bool *unsupported) {
  reader_t r = {hdr, hdr + 4 + 3 * 8, false};
  if (read_fixed(&r, 1) != 1) goto unsupported;
  uint8_t frame_ptr_enc = (uint8_t)read_fixed(&r, 1);
  uint8_t count_enc = (uint8_t)read_fixed(&r, 1);
  uint8_t table_enc = (uint8_t)read_fixed(&r, 1);
  read_encoded(&r, frame_ptr_enc, (uintptr_t)hdr);
  size_t count = read_encoded(&r, count_enc, (uintptr_t)hdr);
  if (r.bad || table_enc != 0x3b) goto unsupported; /* sorted int32 pairs, relative to the header */
  const int32_t *table = (const int32_t *)r.p;
  size_t lo = 0, hi = count; /* the last entry whose start <= pc */
  if (count == 0 || pc < (uintptr_t)hdr + table[0]) return NULL;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)hdr + table[2 * mid] <= pc) lo = mid;
    else hi = mid;
  }
  return hdr + table[2 * lo + 1];
unsupported:
  *unsupported = true;
  return NULL;
}

/* The rule for the instruction at `pc` (a return address minus one). */
static uint64_t rule_compute(uintptr_t pc) {
  struct dl_find_object found;
  /* In no object, or in no FDE: perhaps code that registered its frames at
   * run time (__register_frame, a JIT), which backtrace() knows of. */
  if (_dl_find_object((void *)pc, &found) != 0) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  const uint8_t *hdr = found.dlfo_eh_frame;
  if (hdr == NULL) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  bool unsupported = false;
  const uint8_t *fde = fde_find(hdr, pc, &unsupported);
  if (unsupported) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  if (fde == NULL) return rule_make(RULE_UNSUPPORTED, false, 0, 0);

  uint32_t len32, cie_off;
  memcpy(&len32, fde, 4);
  memcpy(&cie_off, fde + 4, 4);
  if (len32 == 0 || len32 == 0xffffffffu || cie_off == 0) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  cie_info_t cie;
  reader_t cie_r;
  if (!read_cie(fde + 4 - cie_off, &cie, &cie_r) || cie.signal_frame)
    return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  reader_t r = {fde + 8, fde + 4 + len32, false};
  uintptr_t begin = read_encoded(&r, cie.fde_enc, 0);
  uintptr_t range = read_encoded(&r, cie.fde_enc & 0x0f, 0);
  if (r.bad) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  if (pc < begin || pc - begin >= range) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  if (cie.fde_aug_data) { /* skipped: an LSDA pointer, for exceptions */
    uint64_t n = read_uleb(&r);
    if (n > (uint64_t)(r.end - r.p)) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
    r.p += n;
  }

  frame_state_t initial = {.cfa_reg = DW_REG_RSP, .cfa_off = 8, .rbp_how = HOW_SAME, .ra_how = HOW_SAME};
  if (!run_cfa(&cie_r, &cie, 0, UINTPTR_MAX, &initial, NULL)) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  frame_state_t s = initial;
  if (!run_cfa(&r, &cie, begin, pc, &s, &initial)) return rule_make(RULE_UNSUPPORTED, false, 0, 0);

  if (s.ra_how == HOW_UNDEFINED) return rule_make(RULE_END, false, 0, 0); /* the outermost frame */
  if (s.ra_how != HOW_OFFSET || s.ra_off != -8) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  if (s.cfa_reg != DW_REG_RSP && s.cfa_reg != DW_REG_RBP) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  if (s.cfa_off < 8 || s.cfa_off > INT32_MAX) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  int16_t rbp_off = 0;
  if (s.rbp_how == HOW_OFFSET) {
    if (s.rbp_off >= 0 || s.rbp_off < INT16_MIN) return rule_make(RULE_UNSUPPORTED, false, 0, 0);
    rbp_off = (int16_t)s.rbp_off;
  } else if (s.rbp_how != HOW_SAME) {
    return rule_make(RULE_UNSUPPORTED, false, 0, 0);
  }
  return rule_make(RULE_STEP, s.cfa_reg == DW_REG_RBP, (int32_t)s.cfa_off, rbp_off);
}

/* ---- the cache ------------------------------------------------------------------ */
#define UNWIND_CACHE_SLOTS 4096 /* 96 KiB */
#define UNWIND_CACHE_PROBES 4

/* A slot is written only by the thread that turned its sequence odd (a
 * compare-and-swap: writers never wait), and read as a sequence lock: a
 * key and rule read between two equal even sequences belong together.  A
 * fork in the middle of a write leaves that one slot odd in the child:
 * never read, never written again. */
typedef struct {
  _Atomic uint64_t seq;
  _Atomic uintptr_t pc; /* 0: empty */
  _Atomic uint64_t rule;
} unwind_slot_t;

static unwind_slot_t unwind_cache[UNWIND_CACHE_SLOTS];

static size_t slot_home(uintptr_t pc) { return (size_t)((pc * 0x9e3779b97f4a7c15ull) >> 52); }

static uint64_t rule_lookup(uintptr_t pc) {
  size_t home = slot_home(pc), empty = SIZE_MAX;
  for (size_t i = 0; i < UNWIND_CACHE_PROBES; i++) {
    size_t at = (home + i) & (UNWIND_CACHE_SLOTS - 1);
    unwind_slot_t *slot = &unwind_cache[at];
    uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
    uintptr_t key = atomic_load_explicit(&slot->pc, memory_order_relaxed);
    uint64_t rule = atomic_load_explicit(&slot->rule, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if ((seq & 1) || atomic_load_explicit(&slot->seq, memory_order_relaxed) != seq) continue;
    if (key == pc) return rule;
    if (key == 0) {
      empty = at;
      break;
    }
  }
  uint64_t rule = rule_compute(pc);
  unwind_slot_t *slot = &unwind_cache[empty != SIZE_MAX ? empty : home]; /* else the home one is replaced */
  uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
  if (!(seq & 1) && atomic_compare_exchange_strong_explicit(&slot->seq, &seq, seq + 1, memory_order_relaxed,
                                                            memory_order_relaxed)) {
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&slot->pc, pc, memory_order_relaxed);
    atomic_store_explicit(&slot->rule, rule, memory_order_relaxed);
    atomic_store_explicit(&slot->seq, seq + 2, memory_order_release);
  }
  return rule;
}

/* ---- the walk ------------------------------------------------------------------- */
EBB_NOINLINE int unwind_stack(uintptr_t *out, int max) {
  uintptr_t pc, sp, fp, lo, hi;
  __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(fp));
  /* Every read below lies between sp and the stack's top; on another
   * stack (a signal stack, a coroutine's) backtrace() walks instead. */
  if (!thread_stack_bounds(&lo, &hi) || sp < lo || sp >= hi) return -1;
  uintptr_t lookup = pc;
  int n = 0;
  while (n < max) {
    uint64_t rule = rule_lookup(lookup);
    int kind = rule_kind(rule);
    if (kind == RULE_END) break;
    if (kind != RULE_STEP) return -1;
    uintptr_t cfa = (rule_cfa_from_rbp(rule) ? fp : sp) + (uintptr_t)(intptr_t)rule_cfa_off(rule);
    if (cfa <= sp || cfa > hi) break; /* tables that do not fit this stack */
    uintptr_t ra = *(const uintptr_t *)(cfa - 8);
    int16_t rbp_off = rule_rbp_off(rule);
    if (rbp_off != 0) {
      uintptr_t slot = cfa + (uintptr_t)(intptr_t)rbp_off;
      if (slot < sp) break;
      fp = *(const uintptr_t *)slot;
    }
    sp = cfa;
    if (ra == 0) break;
    out[n++] = ra;
    lookup = ra - 1; /* the call, not what follows it: a call may end its function */
  }
  return n;
}

#else
int unwind_stack(uintptr_t *out, int max) {
  (void)out;
  (void)max;
  return -1;
}
#endif

/* This thread's stack, read once (pthread_getattr_np may allocate: the
 * sampler's caller has marked the thread busy, so that is not sampled). */
static __thread uintptr_t stack_lo, stack_hi;

bool thread_stack_bounds(uintptr_t *lo, uintptr_t *hi) {
  if (stack_hi == 0) {
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return false;
    int got = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (got != 0) return false;
    stack_lo = (uintptr_t)addr;
    stack_hi = (uintptr_t)addr + size;
  }
  *lo = stack_lo;
  *hi = stack_hi;
  return true;
}

