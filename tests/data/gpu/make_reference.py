"""Write ``jungfrau_reference.npz``: raw Jungfrau words, constants, and what lclstream's C++
kernel makes of them, for checking a device path where the compiled core is not built (a GPU
node with only torch and cupy: ``scripts/gpu_check.py``). Deterministic (fixed seeds);
``tests/test_gpu.py`` checks the file still equals the kernel's output. Regenerate with
``.venv/bin/python tests/data/gpu/make_reference.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FRAME = (2, 32, 64)  # two small modules
EVENTS = 3
#: (name, calibration options) of each output kept
CASES: list[tuple[str, dict[str, Any]]] = [
    ("keV", {"output": "keV"}),
    ("adu", {"output": "adu"}),
    ("photons", {"output": "photons", "photon_energy_keV": 9.5}),
    ("photons_u32", {"output": "photons", "photon_energy_keV": 0.05, "dtype": "uint32"}),
    ("photons_saturated", {"output": "photons", "photon_energy_keV": 0.001}),
]
PATH = Path(__file__).resolve().parent / "jungfrau_reference.npz"


def inputs() -> dict[str, np.ndarray]:
    """Raw words of every gain stage (stage 2 included), constants with offsets, masked
    pixels, zero and negative gains."""
    rng = np.random.default_rng(2026)
    stage = rng.choice(
        np.array([0, 1, 2, 3], np.uint16), (EVENTS, *FRAME), p=[0.7, 0.1, 0.05, 0.15]
    )
    raw = (stage << 14) | rng.integers(0, 1 << 14, (EVENTS, *FRAME), dtype=np.uint16)
    gain = rng.uniform(-60, 60, (3, *FRAME)).astype(np.float32)
    gain[..., :4] = 0
    return {
        "raw": raw,
        "pedestal": rng.uniform(1000, 3000, (3, *FRAME)).astype(np.float32),
        "gain": gain,
        "offset": rng.normal(0, 5, (3, *FRAME)).astype(np.float32),
        "mask": (rng.random(FRAME) > 0.1).astype(np.uint8),
    }


def outputs(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the C++ kernel (``lclstream.calib.Jungfrau``) makes of ``data``, per case."""
    from lclstream import calib

    consts = {k: data[k] for k in ("pedestal", "gain", "offset", "mask")}
    return {name: calib.Jungfrau(**consts, **opts)(data["raw"]) for name, opts in CASES}


if __name__ == "__main__":
    d = inputs()
    np.savez_compressed(PATH, **d, **{f"out_{k}": v for k, v in outputs(d).items()})
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
