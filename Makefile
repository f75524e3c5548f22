# ebb: build, test, bench, install.  Plain GNU make; no other build tool.
#   make            build/libebb.so and build/libebb.a, and the secure build
#                   build/libebb-secure.so and .a (checked free lists, see README)
#   make test       every test (see test/run.sh)
#   make bench      the benchmark suite (bench/)
#   make demo       the Rust service demo (demo/): RSS of a tokio/hyper server per allocator
#   make install    PREFIX=/usr/local (DESTDIR honoured)

CC      ?= cc
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BUILD   := build
VERSION := 0.1.0

WARN    := -Wall -Wextra -Werror
# -fno-builtin-*: the compiler must not turn our own malloc+memset into a call
# to calloc (or similar), which would recurse into ourselves.
BASEFLAGS := -std=c11 -D_GNU_SOURCE -pthread -fPIC -fvisibility=hidden \
             -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc \
             -fno-builtin-free -ftls-model=initial-exec $(WARN) -Iinclude -Isrc
OPT     ?= -O2 -g
CFLAGS_LIB := $(BASEFLAGS) $(OPT) $(EXTRA_CFLAGS)

# Packed relative relocations (DT_RELR: binutils >= 2.38, glibc >= 2.36),
# where the toolchain makes them: the empty heap's 1025 pointers otherwise
# take 25 KiB of .rela.dyn, resident in every process that loads ebb
# (tight_fixed's peak RSS: 1836 KiB -> 1812, medians of 15 runs).
RELR_LDFLAGS := $(shell printf 'int x; int *p = &x;\n' | $(CC) -shared -fPIC -x c - \
                  -Wl,-z,pack-relative-relocs -o /dev/null 2>/dev/null && echo -Wl,-z,pack-relative-relocs)
SO_LDFLAGS := -shared -pthread -Wl,-z,now $(RELR_LDFLAGS)

SRCS    := $(wildcard src/*.c)
OBJS    := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
# The same sources without the malloc-family override, with sanitizers: the
# ebb_* API runs on top of the sanitizer's own malloc.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_OBJS := $(patsubst src/%.c,$(BUILD)/san/%.o,$(SRCS))
# The secure build: the same sources with EBB_SECURE=1.
SECURE_OBJS := $(patsubst src/%.c,$(BUILD)/secure/%.o,$(SRCS))
HDRS    := $(wildcard src/*.h) include/ebb.h

.PHONY: all test bench demo install uninstall clean
all: $(BUILD)/libebb.so $(BUILD)/libebb.a $(BUILD)/libebb-secure.so $(BUILD)/libebb-secure.a

$(BUILD)/obj/%.o: src/%.c $(HDRS) | $(BUILD)/obj
	$(CC) $(CFLAGS_LIB) -c $< -o $@

# Code that runs once or on demand (statistics text, option parsing, the
# cgroup file) is compiled for size: every page of the library's text is
# resident in every process that maps it (the kernel maps the whole 64 KiB
# around a fault), and these three took 8 KiB less at -Os.
COLD_SRCS := stats_print options cgroup
# (CFLAGS_LIB, not OPT: CFLAGS_LIB is expanded where it is defined)
$(foreach f,$(COLD_SRCS),$(BUILD)/obj/$(f).o $(BUILD)/secure/$(f).o): CFLAGS_LIB := $(BASEFLAGS) -Os -g $(EXTRA_CFLAGS)

$(BUILD)/secure/%.o: src/%.c $(HDRS) | $(BUILD)/secure
	$(CC) $(CFLAGS_LIB) -DEBB_SECURE=1 -c $< -o $@

$(BUILD)/san/%.o: src/%.c $(HDRS) | $(BUILD)/san
	$(CC) $(BASEFLAGS) -O1 -g $(SAN_FLAGS) -DEBB_OVERRIDE=0 -c $< -o $@

$(BUILD)/libebb.so: $(OBJS)
	$(CC) $(SO_LDFLAGS) -Wl,-soname,libebb.so -o $@ $(OBJS)

$(BUILD)/libebb.a: $(OBJS)
	rm -f $@ && ar rcs $@ $(OBJS)

$(BUILD)/libebb-secure.so: $(SECURE_OBJS)
	$(CC) $(SO_LDFLAGS) -Wl,-soname,libebb-secure.so -o $@ $(SECURE_OBJS)

$(BUILD)/libebb-secure.a: $(SECURE_OBJS)
	rm -f $@ && ar rcs $@ $(SECURE_OBJS)

$(BUILD)/libebb-san.a: $(SAN_OBJS)
	rm -f $@ && ar rcs $@ $(SAN_OBJS)

$(BUILD)/obj $(BUILD)/san $(BUILD)/secure $(BUILD)/test $(BUILD)/test-tools $(BUILD)/bench:
	mkdir -p $@

# ---- tests ---------------------------------------------------------------
# test/t_*.c   linked with build/libebb.so (the malloc family is ebb's)
# test/unit_*.c linked with build/libebb.a and the internal headers
# test/api_*.c  use only the ebb_* API: built against libebb.a and again
#               against the sanitizer build (build/test/NAME-san)
# test/*.sh     scripts (real programs, valgrind, ...); test/run.sh runs all
TEST_CFLAGS := -std=gnu11 -D_GNU_SOURCE -O1 -g -pthread $(WARN) -Iinclude -Isrc \
               -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
T_BINS    := $(patsubst test/%.c,$(BUILD)/test/%,$(wildcard test/t_*.c))
UNIT_BINS := $(patsubst test/%.c,$(BUILD)/test/%,$(wildcard test/unit_*.c))
API_BINS  := $(patsubst test/%.c,$(BUILD)/test/%,$(wildcard test/api_*.c))
API_SAN_BINS := $(patsubst test/%.c,$(BUILD)/test/%-san,$(wildcard test/api_*.c))
TEST_BINS := $(T_BINS) $(UNIT_BINS) $(API_BINS) $(API_SAN_BINS)

$(BUILD)/test/t_%: test/t_%.c test/testutil.h $(BUILD)/libebb.so | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $< -o $@ -L$(BUILD) -Wl,-rpath,'$$ORIGIN/..' -lebb -lm

$(BUILD)/test/unit_%: test/unit_%.c test/testutil.h $(BUILD)/libebb.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $< -o $@ $(BUILD)/libebb.a -lm

$(BUILD)/test/api_%: test/api_%.c test/testutil.h $(BUILD)/libebb.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $< -o $@ $(BUILD)/libebb.a -lm

$(BUILD)/test/api_%-san: test/api_%.c test/testutil.h $(BUILD)/libebb-san.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $(SAN_FLAGS) $< -o $@ $(BUILD)/libebb-san.a -lm

# Heap misuse, one case a forked child (test/t_misuse.sh, bench/misuse.sh):
# built without ebb, which is preloaded, as every peer is.
# -fno-builtin-*: the compiler must not drop a malloc/free pair whose block
# is never read (it did: some cases lost the live blocks they set up).
$(BUILD)/bench/misuse: bench/misuse.c | $(BUILD)/bench
	$(CC) -std=gnu11 -O1 -g -pthread $(WARN) -fno-builtin-malloc -fno-builtin-free \
	  -fno-builtin-calloc -fno-builtin-realloc $< -o $@

# The seeded random stress (test/t_stress.sh): also built without ebb, so
# that the same binary runs on glibc for the differential check; not in
# build/test, whose every binary test/run.sh runs as a test.
$(BUILD)/test-tools/stress: test/stress.c | $(BUILD)/test-tools
	$(CC) $(TEST_CFLAGS) $< -o $@

test-bins: all $(TEST_BINS) $(BUILD)/bench/misuse $(BUILD)/test-tools/stress

test: test-bins
	@test/run.sh

# ---- bench ---------------------------------------------------------------
# QUICK=1: tiny sizes and one run, a smoke test (part of make test).
# EXTRA="name=/path/lib.so ...": more allocators beside the default five.
# BUSY=N: N CPU hogs beside every run.
bench: all
	@bench/run.sh $(if $(QUICK),--quick) $(if $(EXTRA),--extra "$(EXTRA)") $(if $(BUSY),--busy $(BUSY))

# ---- demo ----------------------------------------------------------------
# A tokio/hyper service under wrk, once per allocator (about 12 minutes);
# DEMO_ARGS go to demo/run.py (--duration 20 --only glibc,ebb ...).
demo: all
	@demo/run.sh $(DEMO_ARGS)

# ---- install -------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 755 $(BUILD)/libebb.so $(DESTDIR)$(LIBDIR)/libebb.so
	install -m 644 $(BUILD)/libebb.a $(DESTDIR)$(LIBDIR)/libebb.a
	install -m 755 $(BUILD)/libebb-secure.so $(DESTDIR)$(LIBDIR)/libebb-secure.so
	install -m 644 $(BUILD)/libebb-secure.a $(DESTDIR)$(LIBDIR)/libebb-secure.a
	install -m 644 include/ebb.h $(DESTDIR)$(INCDIR)/ebb.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    tools/ebb.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/ebb.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libebb.so $(DESTDIR)$(LIBDIR)/libebb.a \
	      $(DESTDIR)$(LIBDIR)/libebb-secure.so $(DESTDIR)$(LIBDIR)/libebb-secure.a \
	      $(DESTDIR)$(INCDIR)/ebb.h $(DESTDIR)$(LIBDIR)/pkgconfig/ebb.pc

clean:
	rm -rf $(BUILD)
