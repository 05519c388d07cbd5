"""The core installed inside the Python package is usable from a separate C++ project:
`cmake -DCMAKE_PREFIX_PATH=$(lclstream --cmake-dir)` finds it and examples/cpp builds and runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _cmake() -> str:
    exe = Path(sys.executable).with_name("cmake")
    found = str(exe) if exe.exists() else shutil.which("cmake")
    if not found:
        pytest.skip("cmake is not installed")
    return found


def test_cmake_dir_points_at_the_package_config() -> None:
    import lclstream.cli

    if not (lclstream.cli.cmake_dir() / "lclstreamConfig.cmake").is_file():
        pytest.skip("lclstream is not installed from a wheel here (developer tree)")
    out = subprocess.run(
        [sys.executable, "-m", "lclstream.cli", "--cmake-dir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(out) / "lclstreamConfig.cmake").is_file(), out


@pytest.mark.timeout(600)  # configures and builds a C++ project: minutes on a cold, busy machine
def test_examples_build_against_the_installed_package(tmp_path: Path) -> None:
    import lclstream.cli

    cmake_dir = lclstream.cli.cmake_dir()
    if not (cmake_dir / "lclstreamConfig.cmake").is_file():
        pytest.skip("lclstream is not installed from a wheel here (developer tree)")
    cmake = _cmake()
    build = tmp_path / "build"
    subprocess.run(
        [
            cmake,
            "-S",
            str(ROOT / "examples" / "cpp"),
            "-B",
            str(build),
            f"-DCMAKE_PREFIX_PATH={cmake_dir}",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([cmake, "--build", str(build), "-j2"], check=True, capture_output=True)
    run = subprocess.run([str(build / "batch_example")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "batch of 4 events" in run.stdout
    daq = subprocess.run([str(build / "daq_sender")], capture_output=True, text=True, timeout=120)
    assert daq.returncode == 0, daq.stderr
    assert "0 undelivered" in daq.stdout
