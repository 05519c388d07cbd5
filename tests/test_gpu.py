"""Consumer-side calibration and host-to-device hand-off (``lclstream.ray.gpu``): numpy on
CPU against the C++ kernel bit for bit, always; torch and cupy on a CUDA device when one is
present (skipped, saying so, where none is: this project's CI machine has no GPU). The CUDA
tests run the checks of ``scripts/gpu_check.py`` (what a GPU node runs without the compiled
core), on the inputs of ``tests/data/gpu/make_reference.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from lclstream import calib
from lclstream.ray.gpu import JungfrauOnDevice

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> ModuleType:
    """A script of the repository as a module (it is no package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


make_reference = _load("make_reference", ROOT / "tests" / "data" / "gpu" / "make_reference.py")
gpu_check = _load("gpu_check", ROOT / "scripts" / "gpu_check.py")
same_bits = gpu_check.same_bits
CASES = dict(make_reference.CASES)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("with_offset_and_mask", [True, False])
def test_numpy_path_equals_the_cpu_kernel_bit_for_bit(
    case: str, with_offset_and_mask: bool
) -> None:
    """Every gain stage (stage 2 included), offsets, masked pixels, zero and negative gains."""
    data = make_reference.inputs()
    raw = data["raw"]
    keys = ("pedestal", "gain", "offset", "mask") if with_offset_and_mask else ("pedestal", "gain")
    c = {k: data[k] for k in keys}
    opts = CASES[case]
    want = calib.Jungfrau(**c, **opts)(raw)
    got = JungfrauOnDevice(**c, **opts)(raw)
    assert isinstance(got, np.ndarray) and same_bits(got, want)
    if opts["output"] == "keV":
        assert (got[raw >> 14 == 2] == 0).all() and np.isfinite(got).all()
    if opts.get("photon_energy_keV") == 0.001:
        assert (got == np.iinfo(np.uint16).max).any()  # the clip is exercised


def test_words_viewed_as_int16_calibrate_the_same() -> None:
    """ToDevice hands uint16 words on as int16 tensors (same bits): gain stages 2 and 3 are
    then negative numbers, and must still read as their words."""
    data = make_reference.inputs()
    raw = data["raw"]
    cal = JungfrauOnDevice(data["pedestal"], data["gain"], data["offset"], data["mask"])
    assert (raw.view(np.int16) < 0).any()  # stages 2 and 3 are there
    assert same_bits(cal(raw.view(np.int16)), cal(raw))


def test_bad_constants_and_batches_are_clear_errors() -> None:
    c = make_reference.inputs()
    with pytest.raises(ValueError, match="pedestal"):
        JungfrauOnDevice(c["pedestal"][:2], c["gain"])
    with pytest.raises(ValueError, match="mask"):
        JungfrauOnDevice(c["pedestal"], c["gain"], mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="photon_energy_keV"):
        JungfrauOnDevice(c["pedestal"], c["gain"], output="photons")
    with pytest.raises(ValueError, match="array library"):
        JungfrauOnDevice(c["pedestal"], c["gain"], xp="json")
    with pytest.raises(ValueError, match="uint16 or uint32"):  # the CPU path's own words
        JungfrauOnDevice(
            c["pedestal"], c["gain"], output="photons", photon_energy_keV=9.5, dtype=np.uint8
        )
    cal = JungfrauOnDevice(c["pedestal"], c["gain"])
    with pytest.raises(ValueError, match="raw batch"):
        cal(np.zeros((2, 8, 8), np.uint16))


def test_the_reference_file_for_gpu_nodes_is_the_cpu_kernels_output() -> None:
    """scripts/gpu_check.py compares the device path with this file where the compiled core
    is not built; it must say what the kernel says today."""
    ref = np.load(make_reference.PATH)
    data = make_reference.inputs()
    for k, v in data.items():
        assert same_bits(ref[k], v), k
    for name, out in make_reference.outputs(data).items():
        assert same_bits(ref[f"out_{name}"], out), name


def test_the_gpu_check_script_runs_here_with_what_there_is(tmp_path: Any) -> None:
    """The device check as it will run on a GPU node: here numpy passes against the
    reference and every CUDA check says it was skipped and why."""
    import json
    import subprocess

    from proc_helpers import cli_env

    out = tmp_path / "gpu.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--json", str(out)],
        capture_output=True, text=True, env=cli_env(), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(out.read_text())
    assert got["numpy"] == {"status": "passed", "differ": []}
    for key in ("torch_cuda", "cupy", "to_device", "timing"):
        assert got[key]["status"] in ("passed", "measured") or got[key]["status"].startswith(
            "skipped: no"
        ), got[key]


def cuda_torch() -> Any:
    torch = pytest.importorskip("torch", reason="torch (the GPU path needs it)")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the GPU path runs where one is lent")
    return torch


def test_torch_on_cuda_equals_the_cpu_kernel_bit_for_bit() -> None:
    """Every case of the reference, calibrated on the device (fed by ToDevice), stays there
    and equals the C++ kernel's output bit for bit."""
    cuda_torch()
    got = gpu_check.check_torch(np.load(make_reference.PATH))
    assert got["status"] == "passed", got


def test_cupy_equals_the_cpu_kernel_bit_for_bit() -> None:
    cp = pytest.importorskip("cupy", reason="cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - cupy without a driver
        pytest.skip(f"no CUDA device: {e}")
    got = gpu_check.check_cupy(np.load(make_reference.PATH))
    assert got["status"] == "passed", got


def test_to_device_reuses_pinned_buffers_and_overlaps_copies_with_compute() -> None:
    """Eight batches through two pinned buffers: two allocations, every batch intact on the
    device as int16 words of its shape, and the copies ran on the feeder's own stream."""
    cuda_torch()
    got = gpu_check.check_feeder()
    assert got == {
        "status": "passed",
        "allocations": 2,
        "intact": True,
        "laid_out": True,
        "own_stream": True,
    }
