#!/usr/bin/env bash
# Installs what lclstream needs on a fresh Debian machine, idempotently: Debian packages for
# the C++ core, a project-local virtualenv (.venv) with the Python dependencies. Quick when
# everything is already there (it checks before it installs).
set -euo pipefail
cd "$(dirname "$0")/.."

# libkrb5-dev: psana's lcls-krtc needs pykerberos, built from source against it.
DEB_PACKAGES=(build-essential pkg-config libzmq3-dev liblz4-dev libzstd-dev catch2 libkrb5-dev)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# `setup.sh fuzz`: clang and its libFuzzer/sanitizer runtimes for `make fuzz-cpp` only (the
# normal build and tests use gcc and need none of it).
if [ "${1:-}" = "fuzz" ]; then
  FUZZ_PACKAGES=(clang libclang-rt-14-dev)
  fmissing=()
  for p in "${FUZZ_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || fmissing+=("$p")
  done
  if ((${#fmissing[@]})); then
    echo "setup: installing Debian packages for fuzzing: ${fmissing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${fmissing[@]}"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# Python requirements: build backend + runtime + test/bench/dev tools. Installed only when
# requirements.txt changed since the last successful install.
stamp=.venv/.lclstream-requirements
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  cp requirements.txt "$stamp"
fi
# The psana extra (psana2 + mpich/mpi4py): the psana source's tests need it. Same rule.
stamp=.venv/.lclstream-requirements-psana
if [ -z "${LCLSTREAM_NO_PSANA:-}" ] && { [ ! -f "$stamp" ] || ! cmp -s requirements-psana.txt "$stamp"; }; then
  echo "setup: installing psana and MPI into .venv"
  .venv/bin/python -m pip install -q -r requirements-psana.txt
  cp requirements-psana.txt "$stamp"
fi
