#!/usr/bin/env bash
# Developer loop without reinstalling: builds the core, the C++ tests and the Python module
# in build/dev, links _core into python/lclstream/, so that
#   PYTHONPATH=$PWD/python .venv/bin/python -m pytest
# runs against the working tree. Usage: scripts/dev-build.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${LCLSTREAM_VENV:-.venv}}
PY="$VENV/bin/python"
PYBIND_DIR=$("$PY" -c "import pybind11; print(pybind11.get_cmake_dir())")
if [ ! -f build/dev/build.ninja ]; then
  "$VENV/bin/cmake" -S . -B build/dev -G Ninja -DCMAKE_MAKE_PROGRAM="$(realpath "$VENV/bin/ninja")" \
    -DCMAKE_BUILD_TYPE=Release -DLCLSTREAM_BUILD_TESTS=ON -DLCLSTREAM_BUILD_PYTHON=ON \
    -DLCLSTREAM_WERROR=ON -DPython_EXECUTABLE="$(realpath "$PY")" -Dpybind11_DIR="$PYBIND_DIR" >/dev/null
fi
"$VENV/bin/cmake" --build build/dev -j "$(nproc)"
so=$(ls build/dev/cpp/python/_core*.so)
ln -sf "$(realpath "$so")" python/lclstream/
