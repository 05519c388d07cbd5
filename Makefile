# The two commands: `make demo` and `make test`. Both install what is missing (Debian
# packages, .venv), build, and run; both are quick when nothing changed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CMAKE := $(VENV)/bin/cmake
JOBS ?= $(shell nproc)
CORE_SOURCES := $(shell find cpp examples/cpp -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.txt' -o -name '*.in' -o -name '*.cmake' \)) CMakeLists.txt
PY_SOURCES := $(shell find python -type f -name '*.py*') pyproject.toml

.PHONY: all setup build demo test test-cpp test-py asan fuzz-cpp fuzz-py lint bench clean
all: build

setup: $(VENV)/.lclstream-setup
$(VENV)/.lclstream-setup: scripts/setup.sh requirements.txt requirements-psana.txt
	bash scripts/setup.sh
	touch $@

# The Python package (with the compiled core and its CMake package) installed into .venv.
build: $(VENV)/.lclstream-installed
$(VENV)/.lclstream-installed: $(VENV)/.lclstream-setup $(CORE_SOURCES) $(PY_SOURCES)
	$(PY) -m pip install -q --no-build-isolation --no-deps \
	  -Cbuild-dir=build/py -Ccmake.define.LCLSTREAM_WERROR=ON .
	touch $@

demo: build
	$(VENV)/bin/lclstream demo

# C++ unit tests (Catch2 via ctest), including the find_package consumer test.
build/cpp/build.ninja: $(VENV)/.lclstream-setup CMakeLists.txt
	$(CMAKE) -S . -B build/cpp -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
	  -DCMAKE_BUILD_TYPE=Release -DLCLSTREAM_BUILD_TESTS=ON -DLCLSTREAM_WERROR=ON
test-cpp: build/cpp/build.ninja
	$(CMAKE) --build build/cpp -j $(JOBS)
	cd build/cpp && $(abspath $(VENV))/bin/ctest --output-on-failure --no-tests=error -j $(JOBS)

test-py: build
	$(PY) -m pytest -q

test: test-cpp test-py

# The C++ tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: $(VENV)/.lclstream-setup
	$(CMAKE) -S . -B build/asan -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
	  -DCMAKE_BUILD_TYPE=Debug -DLCLSTREAM_BUILD_TESTS=ON -DLCLSTREAM_WERROR=ON -DLCLSTREAM_SANITIZE=ON
	$(CMAKE) --build build/asan -j $(JOBS)
	cd build/asan && ASAN_OPTIONS=detect_leaks=0 $(abspath $(VENV))/bin/ctest --output-on-failure -j $(JOBS) -E install_and_find_package

# libFuzzer targets of the C++ decoders (clang, ASan + UBSan), each run for FUZZ_SECONDS on
# its committed seed corpus (cpp/fuzz/corpus/<target>; new inputs go to build/fuzz/corpus).
# A crash leaves its input in build/fuzz/crashes and fails the run: add it as a regression test.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := fuzz_bslz4 fuzz_bszstd fuzz_lz4 fuzz_zstd fuzz_frames
fuzz-cpp: $(VENV)/.lclstream-setup
	bash scripts/setup.sh fuzz
	$(CMAKE) -S . -B build/fuzz -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLCLSTREAM_BUILD_FUZZ=ON
	$(CMAKE) --build build/fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	mkdir -p build/fuzz/crashes
	set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=1 build/fuzz/cpp/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -timeout=10 -print_final_stats=1 -artifact_prefix=build/fuzz/crashes/$$t- \
	    build/fuzz/corpus/$$t cpp/fuzz/corpus/$$t; \
	done

lint: $(VENV)/.lclstream-setup
	$(VENV)/bin/ruff check python tests bench
	$(VENV)/bin/ruff format --check python tests bench
	$(VENV)/bin/mypy

bench: build
	$(PY) -m bench

# atheris fuzzers of the Python-facing parsers, FUZZ_SECONDS (default 20) each.
fuzz-py: build
	$(PY) tests/fuzz/run.py

clean:
	rm -rf build $(VENV)/.lclstream-installed
