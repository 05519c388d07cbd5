"""The GPU path's checks, in one short run for a machine with a CUDA device.

    PYTHONPATH=python python3 scripts/gpu_check.py [--json FILE]

Needs numpy and torch and/or cupy, not lclstream's compiled core (a GPU node's image may have
no libzmq to build it against): the reference outputs of the C++ kernel travel in
``tests/data/gpu/jungfrau_reference.npz`` (``tests/test_gpu.py`` checks that the file still
equals the kernel's output). Checks:

* ``JungfrauOnDevice`` with numpy, torch on CUDA and cupy equals the C++ kernel bit for bit
  (keV, ADU, photons in uint16 and uint32, saturating), fed by ``ToDevice`` for torch;
* ``ToDevice`` reuses its pinned buffers (as many allocations as its depth), delivers every
  batch intact, and copies on a stream of its own;
* timing, reported and not judged: 32 MB raw batches calibrated on the device, fed by
  ``ToDevice`` (copies overlapping compute) against plain synchronous ``.cuda()`` copies.

Each check passes, fails, or is skipped saying why (no CUDA, no torch, no cupy). Exit 0 when
none failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "gpu" / "jungfrau_reference.npz"
sys.path.insert(0, str(ROOT / "tests" / "data" / "gpu"))
from make_reference import CASES  # noqa: E402  (the cases the reference holds)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def calibrators(ref: Any, **lib: Any) -> dict[str, Any]:
    from lclstream.ray.gpu import JungfrauOnDevice

    consts = {k: ref[k] for k in ("pedestal", "gain", "offset", "mask")}
    return {name: JungfrauOnDevice(**consts, **opts, **lib) for name, opts in CASES}


def check_numpy(ref: Any) -> dict[str, Any]:
    cals = calibrators(ref)
    bad = [n for n, c in cals.items() if not same_bits(c(ref["raw"]), ref[f"out_{n}"])]
    return {"status": "failed" if bad else "passed", "differ": bad}


def cuda_torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def check_torch(ref: Any) -> dict[str, Any]:
    torch = cuda_torch()
    if torch is None:
        return {"status": "skipped: no torch with a CUDA device"}
    from lclstream.ray.gpu import ToDevice

    feed = ToDevice("cuda")
    raw = feed(ref["raw"])
    bad, off = [], []
    for name, cal in calibrators(ref, xp=torch, device="cuda").items():
        out = cal(raw)
        if out.device.type != "cuda":
            off.append(name)
        if not same_bits(out.cpu().numpy(), ref[f"out_{name}"]):
            bad.append(name)
    return {
        "status": "failed" if bad or off else "passed",
        "differ": bad,
        "not_on_device": off,
        "torch": torch.__version__,
    }


def check_cupy(ref: Any) -> dict[str, Any]:
    try:
        import cupy as cp

        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - not installed, or no driver
        return {"status": f"skipped: no cupy with a CUDA device ({type(e).__name__})"}
    cals = calibrators(ref, xp=cp)
    raw = cp.asarray(ref["raw"])
    bad = [n for n, c in cals.items() if not same_bits(cp.asnumpy(c(raw)), ref[f"out_{n}"])]
    return {"status": "failed" if bad else "passed", "differ": bad, "cupy": cp.__version__}


def check_feeder() -> dict[str, Any]:
    torch = cuda_torch()
    if torch is None:
        return {"status": "skipped: no torch with a CUDA device"}
    from lclstream.ray.gpu import ToDevice

    rng = np.random.default_rng(0)
    feed = ToDevice("cuda", depth=2)
    batches = [rng.integers(0, 1 << 16, (4, 2, 64, 96), dtype=np.uint16) for _ in range(8)]
    sums = []
    laid_out = True  # on the device, the batch's shape, the words' bits as int16
    for b in batches:
        t = feed(b)
        laid_out &= t.is_cuda and tuple(t.shape) == b.shape and t.dtype == torch.int16
        sums.append(int((t.to(torch.int64) & 0xFFFF).sum().item()))  # on the caller's stream
    intact = sums == [int(b.astype(np.int64).sum()) for b in batches]
    own_stream = feed._stream != torch.cuda.current_stream()
    ok = intact and laid_out and own_stream and feed.allocations == 2
    return {
        "status": "passed" if ok else "failed",
        "allocations": feed.allocations,
        "intact": intact,
        "laid_out": laid_out,
        "own_stream": own_stream,
    }


def timing() -> dict[str, Any]:
    torch = cuda_torch()
    if torch is None:
        return {"status": "skipped: no torch with a CUDA device"}
    from lclstream.ray.gpu import JungfrauOnDevice, ToDevice

    shape = (4, 8, 512, 1024)  # 4 Jungfrau 4M frames, 32 MB of raw words
    rng = np.random.default_rng(1)
    frame = shape[1:]
    cal = JungfrauOnDevice(
        rng.uniform(1000, 3000, (3, *frame)).astype(np.float32),
        rng.uniform(20, 60, (3, *frame)).astype(np.float32),
        xp=torch,
        device="cuda",
    )
    batches = [rng.integers(0, 1 << 16, shape, dtype=np.uint16) for _ in range(4)]
    n = 32

    def run(to_gpu: Any) -> float:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        acc = torch.zeros((), device="cuda")
        for i in range(n):
            acc += cal(to_gpu(batches[i % len(batches)])).sum()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    feed = ToDevice("cuda", depth=2)

    def plain(b: np.ndarray) -> Any:
        return torch.from_numpy(b.view(np.int16)).cuda()

    run(feed), run(plain)  # warm
    t_feed, t_plain = min(run(feed) for _ in range(3)), min(run(plain) for _ in range(3))
    gb = n * batches[0].nbytes / 1e9
    return {
        "status": "measured",
        "batches": n,
        "batch_bytes": batches[0].nbytes,
        "to_device_gb_s": gb / t_feed,
        "plain_cuda_gb_s": gb / t_plain,
        "speedup": t_plain / t_feed,
        "device": torch.cuda.get_device_name(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    ref = np.load(REFERENCE)
    checks = {
        "numpy": lambda: check_numpy(ref),
        "torch_cuda": lambda: check_torch(ref),
        "cupy": lambda: check_cupy(ref),
        "to_device": check_feeder,
        "timing": timing,
    }
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks.items():  # one run says everything: a raise fails one check
        try:
            results[name] = check()
        except Exception as e:  # noqa: BLE001 - reported as this check's failure
            results[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
