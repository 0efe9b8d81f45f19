# giltrace: one Makefile, layered flags (after uftrace).
#   make            build build/libgiltrace.so and build/giltrace
#   make demo       install what is missing, build, trace the bundled example, report, timeline
#   make check      install what is missing, build (with make pythons), run every test
#   make check-cpython  CPython's regression tests traced vs untraced, whole matrix (docs/cpython-tests.md)
#   make bench      overhead and reader benchmarks (results: docs/performance.md)
#   make fuzz       libFuzzer over the trace readers, FUZZ_TIME seconds (docs/fuzzing.md)
#   make install    PREFIX (default /usr/local) and DESTDIR: bin/giltrace, lib/giltrace/libgiltrace.so,
#                   the man page, the documentation, bash completion
#   make pythons    build CPython 3.13.15 (shared, free-threaded) from Debian's source package
#                   into $GILTRACE_PYTHONS (default ~/.cache/giltrace/pythons), for the tests
#   V=1             show the commands

CC ?= gcc
PYTHON_FOR_TESTS := /usr/bin/python3
BUILD := build
Q := $(if $(filter 1,$(V)),,@)

# The release; a git checkout adds its commit (and ", modified" for a tree
# with changes) in build/version.h, which every trace's header and
# `giltrace --version` carry.
VERSION := 0.13.0
VERSION_FULL := $(VERSION)$(shell c=$$(git rev-parse --short HEAD 2>/dev/null) && \
	printf ' (%s%s)' "$$c" "$$(git diff --quiet HEAD -- 2>/dev/null || echo ', modified')")

COMMON_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -Iinclude -I$(BUILD)
SHIM_CFLAGS := $(COMMON_CFLAGS) -O2 -fPIC -fvisibility=hidden -ftls-model=initial-exec
# -Bsymbolic: the shim's own references to its wrappers (the
# table got-patch.c writes into GOT slots) must bind to the wrappers, not to
# a static interpreter's definitions of the same names.
SHIM_LDFLAGS := -shared -Wl,--no-undefined -Wl,-z,now -Wl,-Bsymbolic
# tools/ in the order data flows: util (error style, durations, line
# lists), read (the trace, stacks' symbols), analyse (the one replay, the
# statistics), detect (findings), render (lanes, text, JSON, HTML, files),
# cmd (the commands).  Each folder's headers are on the include path.
TOOLS_DIRS := util read analyse detect render cmd
TOOLS_INC := $(addprefix -Itools/,$(TOOLS_DIRS))
TOOLS_CFLAGS := $(COMMON_CFLAGS) $(TOOLS_INC) -O2
# elfutils: symbolising native stacks (tools/read/symbolize.c)
TOOLS_LIBS := -ldw -lelf -lm
SAN_CFLAGS := $(COMMON_CFLAGS) $(TOOLS_INC) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all

SHIM_SRC := $(wildcard shim/*.c)
SHIM_HDR := $(wildcard shim/*.h) include/trace-format.h $(BUILD)/version.h
TOOLS_SRC := $(wildcard $(addsuffix /*.c,$(addprefix tools/,$(TOOLS_DIRS))))
# tools/render/html/*: the HTML report's style and scripts, embedded
# (html-assets.c)
TOOLS_HDR := $(wildcard $(addsuffix /*.h,$(addprefix tools/,$(TOOLS_DIRS)))) $(wildcard tools/render/html/*) \
	include/trace-format.h $(BUILD)/version.h
# the tools' library: everything but the commands
TOOLS_LIB_SRC := $(filter-out tools/cmd/%,$(TOOLS_SRC))

all: $(BUILD)/libgiltrace.so $(BUILD)/giltrace

$(BUILD)/libgiltrace.so: $(SHIM_SRC) $(SHIM_HDR) | $(BUILD)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(SHIM_CFLAGS) $(SHIM_LDFLAGS) -o $@ $(SHIM_SRC)

$(BUILD)/giltrace: $(TOOLS_SRC) $(TOOLS_HDR) | $(BUILD)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(TOOLS_CFLAGS) -o $@ $(TOOLS_SRC) $(TOOLS_LIBS)

# The CLI under AddressSanitizer + UndefinedBehaviorSanitizer, for the
# hostile-input tests.
$(BUILD)/san/giltrace: $(TOOLS_SRC) $(TOOLS_HDR) | $(BUILD)
	@mkdir -p $(dir $@)
	@echo "  CC/LD   $@ (asan, ubsan)"
	$(Q)$(CC) $(SAN_CFLAGS) -o $@ $(TOOLS_SRC) $(TOOLS_LIBS)

# Unit tests of the reader, the model and the detectors on hand-made traces.
$(BUILD)/san/test-model: tests/unit/test-model.c tests/unit/fake-trace.h $(TOOLS_LIB_SRC) $(TOOLS_HDR) | $(BUILD)
	@mkdir -p $(dir $@)
	@echo "  CC/LD   $@ (asan, ubsan)"
	$(Q)$(CC) $(SAN_CFLAGS) -o $@ tests/unit/test-model.c $(TOOLS_LIB_SRC) $(TOOLS_LIBS)

# The shim's line-table decoder, fed by tests/test_pyline.py with each
# interpreter's own answers (tests/support/pyline_cases.py), and fuzzed.
$(BUILD)/san/test-pyline: tests/unit/test-pyline.c shim/pyline.c shim/pyline.h | $(BUILD)
	@mkdir -p $(dir $@)
	@echo "  CC/LD   $@ (asan, ubsan)"
	$(Q)$(CC) $(SAN_CFLAGS) -Ishim -o $@ tests/unit/test-pyline.c shim/pyline.c

$(BUILD)/san/test-detect: tests/unit/test-detect.c tests/unit/fake-trace.h $(TOOLS_LIB_SRC) $(TOOLS_HDR) | $(BUILD)
	@mkdir -p $(dir $@)
	@echo "  CC/LD   $@ (asan, ubsan)"
	$(Q)$(CC) $(SAN_CFLAGS) -o $@ tests/unit/test-detect.c $(TOOLS_LIB_SRC) $(TOOLS_LIBS)

$(BUILD)/bench-mutex: bench/mutex-pair.c | $(BUILD)
	$(Q)$(CC) $(COMMON_CFLAGS) -O2 -rdynamic -o $@ $< -lpthread

$(BUILD):
	$(Q)mkdir -p $@

# Rewritten only when the version changes, so that nothing rebuilds for it.
$(BUILD)/version.h: FORCE | $(BUILD)
	$(Q)printf '#define GILTRACE_VERSION "%s"\n' '$(VERSION_FULL)' >$@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

.PHONY: FORCE

deps:
	$(Q)scripts/install-deps.sh

deps-tests:
	$(Q)scripts/install-deps.sh --tests

demo: deps all
	$(Q)rm -f $(BUILD)/demo.gtr  # run never replaces a trace
	$(Q)$(BUILD)/giltrace run -o $(BUILD)/demo.gtr -- /usr/bin/python3 examples/daemon_threads.py
	$(Q)$(BUILD)/giltrace report $(BUILD)/demo.gtr
	$(Q)$(BUILD)/giltrace timeline $(BUILD)/demo.gtr

check: deps-tests pythons-for-check all $(BUILD)/san/giltrace $(BUILD)/san/test-model $(BUILD)/san/test-detect \
		$(BUILD)/san/test-pyline $(BUILD)/bench-mutex
	$(Q)$(BUILD)/san/test-model
	$(Q)$(BUILD)/san/test-detect
	$(Q)$(BUILD)/san/test-pyline --fuzz 3000
	$(Q)$(PYTHON_FOR_TESTS) -m pytest -q -rs tests

# Run the integration tests many times: for intermittent failures.
check-loop: deps-tests all $(BUILD)/san/giltrace
	$(Q)for i in $$(seq 1 $${N:-20}); do $(PYTHON_FOR_TESTS) -m pytest -q -x tests || exit 1; done

# CPython's own regression tests, untraced and traced, every module on every
# interpreter found (docs/cpython-tests.md; about an hour on 2 cores; make
# check runs a part of it). CPYTHON_ARGS: more options of the runner, e.g.
# CPYTHON_ARGS='-p /usr/bin/python3.11 -t test_threading'.
check-cpython: deps-tests all
	$(Q)nice $(PYTHON_FOR_TESTS) tests/cpython/compare.py --json $(BUILD)/cpython-tests.json $(CPYTHON_ARGS)

.PHONY: check-cpython

# Fuzzing (docs/fuzzing.md): libFuzzer, ASan, UBSan and LeakSanitizer
# over every command that reads a trace, for FUZZ_TIME seconds, from the
# seeds in tests/fuzz/seeds; findings land in build/fuzz/crashes/.
# FUZZ_FLAGS: more libFuzzer options, e.g. '-fork=1 -ignore_crashes=1' to
# go on after a crash.
FUZZ_TIME ?= 600
FUZZ_FLAGS ?=
FUZZ_CFLAGS := $(COMMON_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all $(TOOLS_INC) -Dexit=giltrace_fuzz_exit

$(BUILD)/fuzz/fuzz-readers: tests/fuzz/fuzz-readers.c $(filter-out tools/cmd/main.c,$(TOOLS_SRC)) $(TOOLS_HDR) | $(BUILD)
	@mkdir -p $(dir $@)
	@echo "  CC/LD   $@ (libfuzzer, asan, ubsan)"
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(TOOLS_LIBS)

# TMPDIR: where each fuzzing process writes its inputs (a worker that
# libFuzzer ends with _Exit leaves its folder behind: in build/, not /tmp).
fuzz: deps-fuzz $(BUILD)/fuzz/fuzz-readers
	$(Q)mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/crashes $(BUILD)/fuzz/tmp
	$(Q)TMPDIR=$(BUILD)/fuzz/tmp $(BUILD)/fuzz/fuzz-readers -max_total_time=$(FUZZ_TIME) -timeout=60 -max_len=1048576 \
		-close_fd_mask=2 -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/crashes/ $(FUZZ_FLAGS) \
		$(BUILD)/fuzz/corpus tests/fuzz/seeds

deps-fuzz:
	$(Q)scripts/install-deps.sh --fuzz

deps-bench:
	$(Q)scripts/install-deps.sh --bench

bench: deps-bench all $(BUILD)/bench-mutex
	$(Q)$(PYTHON_FOR_TESTS) bench/run.py
	$(Q)$(PYTHON_FOR_TESTS) bench/read.py
	$(Q)$(PYTHON_FOR_TESTS) bench/stacks.py
	$(Q)$(PYTHON_FOR_TESTS) bench/stress.py

# CPython built from source (scripts/build-python.sh): 3.13.15 shared and
# free-threaded, installed in the cache outside the checkout, which the
# tests find (tests/helpers.py).  About 2 minutes per build on 2 cores, 4 in
# all; a complete build is skipped.
pythons: deps-pythons
	$(Q)scripts/build-python.sh

deps-pythons:
	$(Q)scripts/install-deps.sh --pythons

# make check builds them too (4 minutes the first time, nothing after), so
# that every machine tests 3.13.15; when it cannot (the archive no longer
# serves that source), the tests that would use them say so in their skips.
pythons-for-check:
	$(Q)$(MAKE) --no-print-directory pythons || \
		echo "giltrace: make pythons failed (above): the tests skip CPython 3.13.15" >&2

# Not the interpreters' cache (make pythons): it lives outside $(BUILD).
clean:
	rm -rf $(BUILD)

.PHONY: all deps deps-tests demo check check-loop bench clean fuzz deps-fuzz deps-bench pythons deps-pythons \
	pythons-for-check

# ---- install ------------------------------------------------------------------
# giltrace finds its shim in ../lib/giltrace and its documentation in
# ../share/doc/giltrace (tools/util/docs.c); the shim finds giltrace in
# ../../bin for its at-exit check (shim/exit-check.c): the layout below.
PREFIX ?= /usr/local
DOCS_INSTALLED := README.md docs/findings.md docs/options.md docs/commands.md docs/trace-format.md \
	docs/cpython-internals.md docs/worked-example.md docs/triage.md docs/export.md docs/check.md \
	docs/cpython-test-runner.md

install: all
	$(Q)install -D -m 755 $(BUILD)/giltrace $(DESTDIR)$(PREFIX)/bin/giltrace
	$(Q)install -D -m 644 $(BUILD)/libgiltrace.so $(DESTDIR)$(PREFIX)/lib/giltrace/libgiltrace.so
	$(Q)install -D -m 644 docs/giltrace.1 $(DESTDIR)$(PREFIX)/share/man/man1/giltrace.1
	$(Q)install -d $(DESTDIR)$(PREFIX)/share/doc/giltrace
	$(Q)install -m 644 $(DOCS_INSTALLED) $(DESTDIR)$(PREFIX)/share/doc/giltrace/
	$(Q)install -D -m 644 -t $(DESTDIR)$(PREFIX)/share/doc/giltrace/images docs/images/*
	$(Q)install -D -m 644 scripts/giltrace-completion.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/giltrace
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"

uninstall:
	$(Q)rm -f $(DESTDIR)$(PREFIX)/bin/giltrace $(DESTDIR)$(PREFIX)/lib/giltrace/libgiltrace.so \
		$(DESTDIR)$(PREFIX)/share/man/man1/giltrace.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/giltrace
	$(Q)rm -rf $(DESTDIR)$(PREFIX)/share/doc/giltrace
	$(Q)rmdir $(DESTDIR)$(PREFIX)/lib/giltrace 2>/dev/null || true

.PHONY: install uninstall
