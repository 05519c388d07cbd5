"""Event sources: how fast they hand out Jungfrau 4M frames (one core).

* synthetic: ``open_source`` with the default ``SyntheticDetector`` (pool of base frames,
  per-event schedule) against generating each frame afresh per event (photon map + raw
  encoding, what a naive synthetic source does). Target: >= 300 JF4M frames/s, start-up < 3 s.
* hdf5: ``Hdf5EventSource`` (chunked ``read_direct`` into reused buffers) against h5py
  ``ds[i]`` per event (a fresh array per event), uncompressed and bitshuffle+LZ4 files.

Each consumer touches every frame (a sum over one module row) so nothing is left lazy.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
from common import main, record, time_it
from lclstream.config import load_config
from lclstream.sources import open_source

FRAME_BYTES = 8 * 512 * 1024 * 2


def _consume(events: Any) -> int:
    n = 0
    for ev in events:
        frame = ev.data["detector_data"]
        n += int(frame[0, 0, :8].sum() >= 0)
    return n


def run(quick: bool = False) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    n_events = 200 if quick else 1000
    repeats = 2 if quick else 3

    # ---- synthetic
    t0 = time.perf_counter()
    cfg = load_config(
        {
            "event_source": {
                "type": "InternalEventSource",
                "number_of_events_to_generate": n_events,
            },
            "data_sources": {"detector_data": {"type": "SyntheticDetector", "hit_fraction": 0.1}},
        }
    )
    src = open_source(cfg)
    startup = time.perf_counter() - t0
    t_ours = time_it(lambda: _consume(src.events()), repeats=repeats)

    det = src.data_sources["detector_data"]  # type: ignore[attr-defined]
    c = det.constants()
    ped, gain = c["pedestal"], c["gain"]
    lam = np.full(det.geometry.shape, 0.08, np.float32)
    rng = np.random.default_rng(0)
    n_naive = 3 if quick else 6

    def naive_events() -> None:
        # what a plain numpy synthetic source does per event: dense Poisson photons, normal
        # noise, all three gain stages evaluated, switching by np.where
        for _ in range(n_naive):
            e = rng.poisson(lam).astype(np.float32) * np.float32(9.5)
            e += np.float32(0.15) * rng.standard_normal(lam.shape, dtype=np.float32)
            a0 = ped[0] + gain[0] * e
            a1 = ped[1] + gain[1] * e
            a2 = ped[2] + gain[2] * e
            g1 = a0 > 15000
            g2 = g1 & (a1 < 1000)
            adc = np.where(g2, a2, np.where(g1, a1, a0))
            bits = np.where(g2, 3, np.where(g1, 1, 0)).astype(np.uint16) << 14
            frame = np.clip(np.rint(adc), 0, 16383).astype(np.uint16) | bits
            int(frame[0, 0, :8].sum() >= 0)

    t_naive = time_it(naive_events, repeats=repeats)
    # scale the baseline to the same number of events
    t_naive = {k: v * n_events / n_naive for k, v in t_naive.items()}
    fps = n_events / t_ours["min"]
    records.append(
        record(
            "sources",
            "synthetic JF4M events",
            nbytes=n_events * FRAME_BYTES,
            t=t_ours,
            baseline="numpy frame per event",
            baseline_t=t_naive,
            target=None,
            frames_per_s=fps,
            startup_s=startup,
            target_text=f">= 300 frames/s ({fps:.0f}); start-up < 3 s ({startup:.2f} s)",
            met_frames=fps >= 300 and startup < 3.0,
        )
    )

    # ---- hdf5
    n_file = 32 if quick else 96
    pool = src.data_sources["detector_data"].pool  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        for comp in ("none", "bslz4"):
            path = Path(tmp) / f"{comp}.h5"
            with h5py.File(path, "w") as f:
                kw: dict[str, Any] = {"chunks": (1, 8, 512, 1024)}
                if comp == "bslz4":
                    kw.update(hdf5plugin.Bitshuffle(cname="lz4"))
                ds = f.create_dataset("/entry_1/data_1/data", (n_file, 8, 512, 1024), "u2", **kw)
                for i in range(n_file):
                    ds[i] = pool[i % pool.shape[0]]
            hcfg = load_config(
                {
                    "event_source": {"type": "Hdf5EventSource", "files": [str(path)]},
                    "data_sources": {"detector_data": {"type": "Hdf5Dataset"}},
                }
            )
            hsrc = open_source(hcfg)

            def h5py_per_event(p: Path = path) -> None:
                with h5py.File(p, "r") as f:
                    d = f["/entry_1/data_1/data"]
                    for i in range(d.shape[0]):
                        frame = d[i]
                        int(frame[0, 0, :8].sum() >= 0)

            t_h = time_it(lambda s=hsrc: _consume(s.events()), repeats=repeats)
            t_b = time_it(h5py_per_event, repeats=repeats)
            records.append(
                record(
                    "sources",
                    f"hdf5 JF4M {comp}",
                    nbytes=n_file * FRAME_BYTES,
                    t=t_h,
                    baseline="h5py ds[i] per event",
                    baseline_t=t_b,
                    frames_per_s=n_file / t_h["min"],
                )
            )
    return records


if __name__ == "__main__":
    main(run)
