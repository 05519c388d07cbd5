"""Shared fixtures for the format tests: photon-like frames, batches, stream info."""

from __future__ import annotations

import numpy as np
from lclstream.protocols import DetectorInfo, EventBatch, StreamInfo


def frames(n: int, shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Mostly zeros with some photons (ints) or keV-like values (floats)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, *shape), dtype)
    hit = rng.random(out.shape) < 0.03
    if np.dtype(dtype).kind == "f":
        out[hit] = rng.normal(9.5, 0.3, hit.sum()).astype(dtype)
    else:
        out[hit] = rng.integers(1, 6, hit.sum())
        out.flat[0] = np.iinfo(dtype).max  # saturating pixel
    return out


def batch(data: np.ndarray, first_id: int = 0, **extra: np.ndarray) -> EventBatch:
    n = len(data)
    return EventBatch(
        event_ids=np.arange(first_id, first_id + n, dtype=np.uint64),
        timestamps=(np.arange(n, dtype=np.uint64) + 1_700_000_000 * 10**9 + first_id),
        arrays={"detector_data": data, **extra},
    )


def info(
    shape: tuple[int, ...], dtype: str, *, stream_id: str = "test-stream", sender: int = 0,
    senders: int = 1, calibration: str = "photons",
) -> StreamInfo:  # fmt: skip
    return StreamInfo(
        stream_id=stream_id,
        sender=sender,
        senders=senders,
        source_identifier="exp=xpptut15,run=670",
        calibration=calibration,  # type: ignore[arg-type]
        detectors={
            "detector_data": DetectorInfo(
                "detector_data",
                "jungfrau",
                shape,
                dtype,
                pixel_size_m=75e-6,
                detector_distance_m=0.12,
                photon_energy_keV=9.5,
                beam_center_px=(512.0, 2048.0),
                serial="jf4m-0001",
            )  # fmt: skip
        },
    )
