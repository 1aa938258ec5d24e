# scanengine — build, test, install.
#
#   make              build build/scanengined and build/scanctl
#   make demo         set up this machine, run the service on the bundled
#                     definitions, scan a sample, show status, stop
#   make test         set up, unit + integration tests, then the same tests
#                     again in an ASan+UBSan build (build-asan/)
#   make install      binaries, default config, systemd unit, scan user
#   make bench        benchmarks against clamd (tests/bench/, slow)
#   make fuzz         build the libFuzzer targets and run each FUZZ_SECONDS

BUILD   ?= build
SAN     ?= 0
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PYTHON  ?= /usr/bin/python3

PKGS := libclamav libseccomp json-c libcrypto libarchive libmagic libcurl zlib

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wvla \
	-Wimplicit-fallthrough -Wundef -Wwrite-strings -Wcast-align \
	-Wno-missing-field-initializers

CPPFLAGS += -I. -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -fstack-protector-strong -fPIE -pthread
LDFLAGS  += -pie -Wl,-z,relro,-z,now -pthread
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SAN),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
WARN     += -Wformat-truncation=1
else ifeq ($(SAN),fuzz)
# libFuzzer targets (clang): make fuzz / make fuzz-run
CC       := clang
CFLAGS   += -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
else
CPPFLAGS += -D_FORTIFY_SOURCE=2
WARN     += -Wformat-truncation=1
endif

# Library of every module but the programs' main files.
LIB_SRC := $(wildcard common/*.c) $(wildcard sandbox/*.c) $(wildcard defs/*.c) \
	$(wildcard updater/*.c) $(wildcard fanotify/*.c) \
	$(filter-out scanengine/main.c,$(wildcard scanengine/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB     := $(BUILD)/libscanengine.a

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

PROGS := $(BUILD)/scanengined $(BUILD)/scanctl

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 30

.PHONY: all clean demo test test-unit test-integration check-format \
	format install uninstall bench deps fuzz fuzz-build fuzz-bins fuzz-run

all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/scanengined: $(BUILD)/obj/scanengine/main.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

SCANCTL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard scanctl/*.c))

$(BUILD)/scanctl: $(SCANCTL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Install missing Debian packages and create the scan account (idempotent).
deps:
	@scripts/setup.sh

demo: deps
	$(MAKE) all
	@scripts/demo.sh $(BUILD)

test-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

test-integration: $(PROGS)
	SCANENGINE_BUILD=$(BUILD) $(PYTHON) tests/integration/run.py

test: deps
	$(MAKE) all test-unit test-integration
	$(MAKE) BUILD=build-asan SAN=1 all test-unit test-integration

# Coverage-guided fuzzing of the parsers of untrusted input (clang/libFuzzer):
# build, then run each target for FUZZ_SECONDS (bounded; new inputs go to
# build-fuzz/corpus/, the seeds in the tree are only read).
fuzz: fuzz-build
	@set -e; for f in $(FUZZ_SRC:tests/fuzz/%.c=%); do \
		mkdir -p build-fuzz/corpus/$$f; \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		build-fuzz/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			build-fuzz/corpus/$$f tests/fuzz/seeds/$$f; \
	done

fuzz-build:
	$(MAKE) BUILD=build-fuzz SAN=fuzz fuzz-bins

fuzz-bins: $(FUZZ_BIN)

# the old name of the bounded run
fuzz-run: fuzz

bench: deps all
	tests/bench/run.sh $(BUILD)

SOURCES = $$(git ls-files '*.c' '*.h' 2>/dev/null || find common sandbox defs updater fanotify scanengine scanctl tests -name '*.[ch]')

check-format:
	@clang-format --dry-run --Werror $(SOURCES) && echo "formatting: OK"

format:
	clang-format -i $(SOURCES)

install: all
	scripts/install.sh "$(DESTDIR)" "$(PREFIX)" "$(BUILD)"

uninstall:
	scripts/install.sh --uninstall "$(DESTDIR)" "$(PREFIX)"

clean:
	rm -rf build build-asan build-fuzz
