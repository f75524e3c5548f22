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
# C++'s operator new and delete (src/cxx_new.c); CXX_OPERATORS=0 leaves them out.
CXX_OPERATORS ?= 1
BASEFLAGS += -DEBB_CXX_OPERATORS=$(CXX_OPERATORS)
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

.PHONY: all test bench demo demo-publish install uninstall clean
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

# operator new throws std::bad_alloc through these frames: unwind tables
$(BUILD)/obj/cxx_new.o $(BUILD)/secure/cxx_new.o: CFLAGS_LIB += -fexceptions

$(BUILD)/secure/%.o: src/%.c $(HDRS) | $(BUILD)/secure
	$(CC) $(CFLAGS_LIB) -DEBB_SECURE=1 -c $< -o $@

$(BUILD)/san/%.o: src/%.c $(HDRS) | $(BUILD)/san
	$(CC) $(BASEFLAGS) -O1 -g $(SAN_FLAGS) -DEBB_OVERRIDE=0 -c $< -o $@

# Versioned sonames: a program linked with -lebb records libebb.so.0 (the
# ABI's major version), found through build/libebb.so.0 here and through
# the links `make install` makes.
SOMAJOR := 0
$(BUILD)/libebb.so: $(OBJS)
	$(CC) $(SO_LDFLAGS) -Wl,-soname,libebb.so.$(SOMAJOR) -o $@ $(OBJS)
	ln -sf libebb.so $(BUILD)/libebb.so.$(SOMAJOR)

$(BUILD)/libebb.a: $(OBJS)
	rm -f $@ && ar rcs $@ $(OBJS)

$(BUILD)/libebb-secure.so: $(SECURE_OBJS)
	$(CC) $(SO_LDFLAGS) -Wl,-soname,libebb-secure.so.$(SOMAJOR) -o $@ $(SECURE_OBJS)
	ln -sf libebb-secure.so $(BUILD)/libebb-secure.so.$(SOMAJOR)

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
# test/conformance.c  both kinds, from one source so that the standard names
#               and the ebb_* API are held to the same checks: t_conformance,
#               and api_conformance(-san) with -DCONFORMANCE_EBB_API=1
# test/*.sh     scripts (real programs, valgrind, ...); test/run.sh runs all
TEST_CFLAGS := -std=gnu11 -D_GNU_SOURCE -O1 -g -pthread $(WARN) -Iinclude -Isrc \
               -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
T_BINS    := $(patsubst test/%.c,$(BUILD)/test/%,$(wildcard test/t_*.c))
UNIT_BINS := $(patsubst test/%.c,$(BUILD)/test/%,$(wildcard test/unit_*.c))
API_BINS  := $(patsubst test/%.c,$(BUILD)/test/%,$(wildcard test/api_*.c))
API_SAN_BINS := $(patsubst test/%.c,$(BUILD)/test/%-san,$(wildcard test/api_*.c))
CONFORMANCE_BINS := $(BUILD)/test/t_conformance $(BUILD)/test/api_conformance \
                    $(BUILD)/test/api_conformance-san
TEST_BINS := $(T_BINS) $(UNIT_BINS) $(API_BINS) $(API_SAN_BINS) $(CONFORMANCE_BINS)

$(BUILD)/test/t_%: test/t_%.c test/testutil.h $(BUILD)/libebb.so | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $< -o $@ -L$(BUILD) -Wl,-rpath,'$$ORIGIN/..' -lebb -lm

$(BUILD)/test/unit_%: test/unit_%.c test/testutil.h $(BUILD)/libebb.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $< -o $@ $(BUILD)/libebb.a -lm

$(BUILD)/test/api_%: test/api_%.c test/testutil.h $(BUILD)/libebb.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $< -o $@ $(BUILD)/libebb.a -lm

$(BUILD)/test/api_%-san: test/api_%.c test/testutil.h $(BUILD)/libebb-san.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $(SAN_FLAGS) $< -o $@ $(BUILD)/libebb-san.a -lm

# The conformance binaries link as the t_ and api_ rules above do; only the
# source and the flavour differ.
$(BUILD)/test/t_conformance: test/conformance.c test/testutil.h $(BUILD)/libebb.so | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $< -o $@ -L$(BUILD) -Wl,-rpath,'$$ORIGIN/..' -lebb -lm

$(BUILD)/test/api_conformance: test/conformance.c test/testutil.h $(BUILD)/libebb.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) -DCONFORMANCE_EBB_API=1 $< -o $@ $(BUILD)/libebb.a -lm

$(BUILD)/test/api_conformance-san: test/conformance.c test/testutil.h $(BUILD)/libebb-san.a | $(BUILD)/test
	$(CC) $(TEST_CFLAGS) $(SAN_FLAGS) -DCONFORMANCE_EBB_API=1 $< -o $@ $(BUILD)/libebb-san.a -lm

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

# C++'s operators (test/t_cxx.sh): one program built three ways, not
# linked with ebb (ebb preloaded), linked with libebb.so, and linked with
# libebb.a (-rdynamic: its dladdr check finds the program's own symbols).
# Skipped when there is no C++ compiler or the operators are left out.
CXX ?= g++
CXX_TEST_FLAGS := -std=c++17 -O1 -g -pthread $(WARN) -fsized-deallocation
CXX_TOOLS := $(BUILD)/test-tools/cxx_ops $(BUILD)/test-tools/cxx_ops-linked $(BUILD)/test-tools/cxx_ops-static
HAVE_CXX := $(shell command -v $(CXX) >/dev/null 2>&1 && [ "$(CXX_OPERATORS)" = 1 ] && echo 1)
$(BUILD)/test-tools/cxx_ops: test/cxx_ops.cc | $(BUILD)/test-tools
	$(CXX) $(CXX_TEST_FLAGS) $< -o $@ -ldl
$(BUILD)/test-tools/cxx_ops-linked: test/cxx_ops.cc $(BUILD)/libebb.so | $(BUILD)/test-tools
	$(CXX) $(CXX_TEST_FLAGS) $< -o $@ -L$(BUILD) -Wl,-rpath,'$$ORIGIN/..' -lebb -ldl
$(BUILD)/test-tools/cxx_ops-static: test/cxx_ops.cc $(BUILD)/libebb.a | $(BUILD)/test-tools
	$(CXX) $(CXX_TEST_FLAGS) -rdynamic $< -o $@ $(BUILD)/libebb.a -ldl

# The heap profiler's test program (test/t_prof.sh): preloaded, and linked
# with libebb.a (ebb's frames must be dropped from the stacks either way).
# -rdynamic: its functions get names in the collapsed stacks (dladdr).
PROF_TOOLS := $(BUILD)/test-tools/prof_sites $(BUILD)/test-tools/prof_sites-static
$(BUILD)/test-tools/prof_sites: test/prof_sites.c | $(BUILD)/test-tools
	$(CC) -std=gnu11 -O1 -g -rdynamic $(WARN) $< -o $@ -ldl
$(BUILD)/test-tools/prof_sites-static: test/prof_sites.c $(BUILD)/libebb.a | $(BUILD)/test-tools
	$(CC) -std=gnu11 -O1 -g -rdynamic $(WARN) $< -o $@ $(BUILD)/libebb.a -pthread -ldl

test-bins: all $(TEST_BINS) $(BUILD)/bench/misuse $(BUILD)/test-tools/stress $(PROF_TOOLS) $(if $(HAVE_CXX),$(CXX_TOOLS))

test: test-bins
	@test/run.sh

# ---- bench ---------------------------------------------------------------
# QUICK=1: tiny sizes and one run, a smoke test (part of make test).
# EXTRA="name=/path/lib.so ...": more allocators beside the default five.
# BUSY=N: N CPU hogs beside every run.
# CLASSIC=DIR: also mimalloc-bench's programs, from a checkout built outside
# this repo (DIR/out/bench), reported apart from the criteria's workloads.
bench: all
	@bench/run.sh $(if $(QUICK),--quick) $(if $(EXTRA),--extra "$(EXTRA)") $(if $(BUSY),--busy $(BUSY)) \
	  $(if $(CLASSIC),--classic "$(CLASSIC)")

# ---- demo ----------------------------------------------------------------
# A tokio/hyper service under wrk, once per allocator (about 12 minutes);
# DEMO_ARGS go to demo/run.py (--duration 20 --only glibc,ebb ...).
demo: all
	@demo/run.sh $(DEMO_ARGS)

# The README shows demo/results/; a run writes build/demo/, and only this
# deliberate step replaces the tracked copy.
demo-publish:
	@test -f $(BUILD)/demo/results.json || { echo "no $(BUILD)/demo/results.json: run make demo first"; exit 1; }
	mkdir -p demo/results && cp $(BUILD)/demo/* demo/results/

# ---- install -------------------------------------------------------------
# libebb.so.VERSION with the links libebb.so.0 (the soname) and libebb.so
# (for -lebb), the same for the secure build, the archives, ebb.h and
# ebb.pc (its Libs carry an rpath, so a program built with it runs from any
# PREFIX).  Installing system-wide (no DESTDIR, as root) ends with ldconfig
# (LDCONFIG= skips it).
LDCONFIG ?= ldconfig
install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	for lib in libebb libebb-secure; do \
	  install -m 755 $(BUILD)/$$lib.so $(DESTDIR)$(LIBDIR)/$$lib.so.$(VERSION) && \
	  ln -sf $$lib.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$lib.so.$(SOMAJOR) && \
	  ln -sf $$lib.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/$$lib.so && \
	  install -m 644 $(BUILD)/$$lib.a $(DESTDIR)$(LIBDIR)/$$lib.a || exit 1; \
	done
	install -m 644 include/ebb.h $(DESTDIR)$(INCDIR)/ebb.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    tools/ebb.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/ebb.pc
	@ldc="$(LDCONFIG)"; \
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && [ -n "$$ldc" ] && command -v "$$ldc" >/dev/null; then \
	  "$$ldc" && echo "ldconfig: the loader's cache now lists $(LIBDIR)/libebb.so.$(SOMAJOR)"; \
	else \
	  echo "Not running ldconfig (DESTDIR set, or not root).  Programs built with"; \
	  echo "pkg-config's flags find the library by their rpath; others need"; \
	  echo "LD_LIBRARY_PATH=$(LIBDIR), or ldconfig run as root once installed."; \
	fi

uninstall:
	for lib in libebb libebb-secure; do \
	  rm -f $(DESTDIR)$(LIBDIR)/$$lib.so $(DESTDIR)$(LIBDIR)/$$lib.so.$(SOMAJOR) \
	        $(DESTDIR)$(LIBDIR)/$$lib.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$lib.a; \
	done
	rm -f $(DESTDIR)$(INCDIR)/ebb.h $(DESTDIR)$(LIBDIR)/pkgconfig/ebb.pc

clean:
	rm -rf $(BUILD)
