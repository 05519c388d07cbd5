"""Write synthetic runs in the data-root layout, so exp/run addressing can be tried anywhere.

``write_run(root, "mfxdemo", 7, events=200)`` writes ``<root>/mfxdemo/run0007/*.h5``: CXI
files (frames at ``/entry_1/data_1/data``, one event per chunk, bitshuffle+LZ4 (filter 32008),
ids/timestamps/photon energy under ``/LCLS``, detector geometry under
``/entry_1/instrument_1/detector_1``) of raw synthetic frames, readable by
``Hdf5EventSource`` with ``source_identifier: exp=mfxdemo,run=7``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import h5py
import hdf5plugin
import numpy as np

from lclstream.sources.synthetic import SyntheticDetector


def write_run(
    root: str | os.PathLike[str],
    exp: str,
    run: int,
    *,
    events: int = 100,
    events_per_file: int = 50,
    detector: str = "jungfrau4M",
    seed: int = 1,
    hit_fraction: float = 0.1,
    compression: Literal["lz4", "zstd"] | None = "lz4",
) -> list[Path]:
    """Write a synthetic run; returns the files written (in event order)."""
    folder = Path(root) / exp / f"run{run:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    det = SyntheticDetector(detector=detector, seed=seed, hit_fraction=hit_fraction, pool_frames=4)
    info = det.info()
    shape = info.frame_shape
    filt: Mapping[str, Any] = hdf5plugin.Bitshuffle(cname=compression) if compression else {}
    files: list[Path] = []
    for part, lo in enumerate(range(0, events, events_per_file)):
        n = min(events_per_file, events - lo)
        path = folder / f"{exp}_r{run:04d}_{part:03d}.h5"
        with h5py.File(path, "w") as f:
            ds = f.create_dataset(
                "/entry_1/data_1/data", (n, *shape), np.uint16, chunks=(1, *shape), **filt
            )
            for j in range(n):
                ds[j] = det.get_data(lo + j)
            ids = np.arange(lo, lo + n, dtype=np.uint64)
            f["/LCLS/eventNumber"] = ids
            f["/LCLS/timestamp"] = np.array([det.timestamp(int(i)) for i in ids], np.uint64)
            f["/LCLS/photon_energy_eV"] = np.full(n, det.photon_energy_keV * 1000.0)
            g = f.create_group("/entry_1/instrument_1/detector_1")
            g["distance"] = np.float64(info.detector_distance_m)
            g["x_pixel_size"] = np.float64(info.pixel_size_m)
            g["y_pixel_size"] = np.float64(info.pixel_size_m)
            assert info.beam_center_px is not None
            g["beam_center_x"] = np.float64(info.beam_center_px[0])
            g["beam_center_y"] = np.float64(info.beam_center_px[1])
            g.attrs["serial"] = info.serial
            f.attrs["source_identifier"] = f"exp={exp},run={run}"
        files.append(path)
    return files
