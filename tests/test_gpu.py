"""Consumer-side calibration and host-to-device hand-off (``lclstream.ray.gpu``): numpy on
CPU against the C++ kernel bit for bit, always; torch and cupy on a CUDA device when one is
present (skipped, saying so, where none is: this project's CI machine has no GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from lclstream import calib
from lclstream.ray.gpu import JungfrauOnDevice, ToDevice

FRAME = (2, 64, 96)  # two small modules: every stage, masked pixels, zero gains


def constants(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ped = rng.uniform(1000, 3000, (3, *FRAME)).astype(np.float32)
    gain = rng.uniform(-60, 60, (3, *FRAME)).astype(np.float32)  # negative ones too
    gain[..., :4] = 0  # psana's divide_protected: 0 where the gain is 0
    offset = rng.normal(0, 5, (3, *FRAME)).astype(np.float32)
    mask = (rng.random(FRAME) > 0.1).astype(np.uint8)
    return {"pedestal": ped, "gain": gain, "offset": offset, "mask": mask}


def raw_batch(events: int = 3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stage = rng.choice(
        np.array([0, 1, 2, 3], np.uint16), (events, *FRAME), p=[0.7, 0.1, 0.05, 0.15]
    )
    return (stage << 14) | rng.integers(0, 1 << 14, (events, *FRAME), dtype=np.uint16)


def cases() -> list[dict[str, Any]]:
    return [
        {"output": "keV"},
        {"output": "adu"},
        {"output": "photons", "photon_energy_keV": 9.5},
        {"output": "photons", "photon_energy_keV": 0.05, "dtype": np.uint32},
        {"output": "photons", "photon_energy_keV": 0.001},  # saturates uint16
    ]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("opts", cases(), ids=lambda o: f"{o['output']}-{o.get('dtype', '')}")
@pytest.mark.parametrize("with_offset_and_mask", [True, False])
def test_numpy_path_equals_the_cpu_kernel_bit_for_bit(
    opts: dict[str, Any], with_offset_and_mask: bool
) -> None:
    c = constants()
    if not with_offset_and_mask:
        c = {"pedestal": c["pedestal"], "gain": c["gain"]}
    raw = raw_batch()
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
    c = constants()
    raw = raw_batch()
    cal = JungfrauOnDevice(**c)
    assert (raw.view(np.int16) < 0).any()  # stages 2 and 3 are there
    assert same_bits(cal(raw.view(np.int16)), cal(raw))


def test_bad_constants_and_batches_are_clear_errors() -> None:
    c = constants()
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
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent / "data" / "gpu"
    sys.path.insert(0, str(here))
    try:
        import make_reference
    finally:
        sys.path.remove(str(here))
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
    import sys
    from pathlib import Path

    from proc_helpers import cli_env

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "gpu.json"
    r = subprocess.run(
        [sys.executable, str(root / "scripts" / "gpu_check.py"), "--json", str(out)],
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


@pytest.mark.parametrize("opts", cases(), ids=lambda o: f"{o['output']}-{o.get('dtype', '')}")
def test_torch_on_cuda_equals_the_cpu_kernel_bit_for_bit(opts: dict[str, Any]) -> None:
    torch = cuda_torch()
    c = constants()
    raw = raw_batch()
    want = calib.Jungfrau(**c, **opts)(raw)
    dev = ToDevice("cuda")(raw)
    got = JungfrauOnDevice(**c, **opts, xp=torch, device="cuda")(dev)
    assert got.device.type == "cuda"
    assert same_bits(got.cpu().numpy(), want)


@pytest.mark.parametrize("opts", cases(), ids=lambda o: f"{o['output']}-{o.get('dtype', '')}")
def test_cupy_equals_the_cpu_kernel_bit_for_bit(opts: dict[str, Any]) -> None:
    cp = pytest.importorskip("cupy", reason="cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - cupy without a driver
        pytest.skip(f"no CUDA device: {e}")
    c = constants()
    raw = raw_batch()
    want = calib.Jungfrau(**c, **opts)(raw)
    got = JungfrauOnDevice(**c, **opts, xp=cp)(cp.asarray(raw))
    assert same_bits(cp.asnumpy(got), want)


def test_to_device_reuses_pinned_buffers_and_overlaps_copies_with_compute() -> None:
    """Eight batches through two pinned buffers: two allocations, every batch intact on the
    device, and the copies ran on the feeder's own stream (not the caller's)."""
    torch = cuda_torch()
    feed = ToDevice("cuda", depth=2)
    batches = [raw_batch(events=4, seed=s) for s in range(8)]
    sums = []
    for b in batches:
        t = feed(b)
        assert t.is_cuda and tuple(t.shape) == b.shape
        assert t.dtype == torch.int16  # the words' bits, in a type torch computes with
        sums.append(int((t.to(torch.int64) & 0xFFFF).sum().item()))  # on the caller's stream
    assert feed.allocations == 2
    assert sums == [int(b.astype(np.int64).sum()) for b in batches]
    assert feed._stream != torch.cuda.current_stream()
