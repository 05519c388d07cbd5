# The two commands: `make demo` and `make test`. Both install what is missing (Debian
# packages, .venv), build, and run; both are quick when nothing changed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CMAKE := $(VENV)/bin/cmake
JOBS ?= $(shell nproc)
CORE_SOURCES := $(shell find cpp examples/cpp -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.txt' -o -name '*.in' -o -name '*.cmake' \)) CMakeLists.txt
PY_SOURCES := $(shell find python -type f -name '*.py*') pyproject.toml

.PHONY: all setup build demo test test-cpp test-py asan lint bench clean fuzz-py
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
