"""Bragg peaks of a stream's frames, found per batch in a pool of Ray actors, written to CXI.

Two shells::

    python examples/ray_peaks_cxi.py --bind tcp://127.0.0.1:12321 --out peaks.cxi
    lclstream stream examples/stream_raw.yaml            # raw batches to that address

Each actor runs lclstream's peakfinder8 (psana's, in the C++ core) on whole batches, read-only
views of Ray's object store, and returns CXI peak lists: ``nPeaks``, ``peakXPosRaw``,
``peakYPosRaw``, ``peakTotalIntensity``, ``peakNPixels``, ``peakSNR`` (what CrystFEL and OM
read under ``/entry_1/result_1``), padded to ``--max-peaks``. The driver writes them in event
order with the events' ids and times (``/LCLS``) and a hit flag (at least ``--min-peaks``).
The script exits 0 only when every event of the stream was processed (3 otherwise, as
``lclstream receive`` does).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np


class FindPeaks:
    """peakfinder8 on each batch's primary detector; the geometry (radius map, ASIC layout)
    comes from the detector model whose frames the stream says it sends."""

    def __init__(self, params: dict[str, Any], min_peaks: int) -> None:
        self.params = params
        self.min_peaks = min_peaks
        self.finders: dict[str, Any] = {}

    def __call__(self, batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        from lclstream.protocols import DetectorInfo
        from lclstream.run.hits import HitFinder, Veto

        name = next(iter(batch.arrays))
        finder = self.finders.get(name)
        if finder is None:
            if name not in batch.detectors:
                raise ValueError(f"the stream does not describe detector {name!r}")
            info = DetectorInfo(**batch.detectors[name])
            finder = HitFinder(info, self.params, Veto(min_peaks=self.min_peaks, veto=False))
            self.finders[name] = finder
        hit, _keep, cxi = finder.judge(batch, threads=1)  # one core per actor
        return np.asarray(batch.event_ids), np.asarray(batch.timestamps), hit, cxi


def write_cxi(path: str, outputs: list[Any], max_peaks: int) -> int:
    """One CXI file: per event its id, time, hit flag and peak lists; returns the events."""
    import h5py
    from lclstream.run.hits import PEAK_RESULTS

    names = ["nPeaks", *PEAK_RESULTS]
    ids = [o[0] for o in outputs]
    times = [o[1] for o in outputs]
    hits = [o[2] for o in outputs]
    n = int(sum(len(i) for i in ids))
    with h5py.File(path, "w") as f:
        t = np.concatenate(times).astype(np.int64) if n else np.zeros(0, np.int64)
        f["/LCLS/eventNumber"] = np.concatenate(ids) if n else np.zeros(0, np.uint64)
        f["/LCLS/machineTime"] = (t // 1_000_000_000).astype(np.int32)
        f["/LCLS/machineTimeNanoSeconds"] = (t % 1_000_000_000).astype(np.int32)
        f["/entry_1/result_1/hit"] = np.concatenate(hits).astype(np.int8) if n else []
        for key in names:
            cols = [o[3][key] for o in outputs]
            empty = np.zeros((0,) if key == "nPeaks" else (0, max_peaks), np.float32)
            f[f"/entry_1/result_1/{key}"] = np.concatenate(cols) if n else empty
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bind", default="tcp://127.0.0.1:12321", help="where the stream arrives")
    ap.add_argument("--out", default="peaks.cxi", help="the CXI (HDF5) file to write")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--adc-threshold", type=float, default=2.0)
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--max-peaks", type=int, default=2048, help="peaks kept per event")
    ap.add_argument("--min-peaks", type=int, default=30, help="peaks that make a hit")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds of silence to give up")
    ap.add_argument("--object-store-mb", type=int, default=None, help="Ray's object store size")
    args = ap.parse_args(argv)

    import ray
    from lclstream.ray import BatchStream, map_batches

    params = {
        "adc_threshold": args.adc_threshold,
        "minimum_snr": args.min_snr,
        "max_num_peaks": args.max_peaks,
    }
    store = None if args.object_store_mb is None else args.object_store_mb << 20
    ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=store)
    stream = BatchStream(args.bind, timeout=args.timeout)
    print(f"listening on {stream.endpoints[0]}", flush=True)
    res = map_batches(
        stream, FindPeaks, fn_args=(params, args.min_peaks), actors=args.actors, keep_outputs=True
    )
    n = write_cxi(args.out, [res.outputs[i] for i in sorted(res.outputs)], args.max_peaks)
    hits = sum(int(np.sum(o[2])) for o in res.outputs.values())
    print(
        f"{res.events_processed} of {res.events_received} events processed "
        f"({'complete' if res.complete else res.incomplete_reason()}); {hits} hits; "
        f"{n} events in {args.out}",
        flush=True,
    )
    for f in res.failed[:3]:
        print(f"batch {f.index} ({f.events} events) failed: {f.reason}", file=sys.stderr)
    ray.shutdown()
    return 0 if res.complete else 3


if __name__ == "__main__":
    sys.exit(main())
