# The user's interface to the build. Everything real happens in CMake and
# in scripts/; these targets only chain the steps in the right order.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 60
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON     ?= /usr/bin/python3
CMAKE_FLAGS ?=

.PHONY: all build demo check check-unit check-e2e check-asan fuzz clean deps docs bench

all: build

deps:
	@sh scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: deps build
	@./$(BUILD)/storekeep demo

# Unit tests and end-to-end tests, then both again under ASan+UBSan.
check: deps
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DSK_WERROR=ON"
	@$(MAKE) --no-print-directory check-unit check-e2e
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSK_WERROR=ON -DSK_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@$(MAKE) --no-print-directory check-unit check-e2e BUILD=$(ASAN_BUILD)
	@echo "check: all suites passed (plain and ASan+UBSan)"

check-unit:
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

check-e2e:
	@STOREKEEP_BIN=$(CURDIR)/$(BUILD)/storekeep $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

fuzz: deps
	@cmake -S fuzz -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@FUZZ_TIME=$(FUZZ_TIME) sh fuzz/run.sh $(FUZZ_BUILD)

# Side by side with nginx, HAProxy and Varnish; not part of check. bench/run
# installs the peers and wrk itself and builds storekeep in build-bench/
# (see bench/README.md for its BENCH_* settings).
bench:
	@sh scripts/deps.sh
	@$(PYTHON) bench/run

# docs/config.md is generated from the schema tables in src/core/config.c.
docs: build
	@./$(BUILD)/storekeep config-reference > docs/config.md

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
