"""Radial profiles of a stream's frames in a pool of Ray actors, written to one HDF5 file.

Two shells::

    python examples/ray_radial_profile.py --bind tcp://127.0.0.1:12321 --out profiles.h5
    lclstream stream examples/stream_raw.yaml            # raw batches to that address

Each actor gets whole batches (events first, a read-only view of Ray's object store: no
copy), bins every frame's pixels by their distance from the centre of each module, and
returns one profile per event; the driver writes them with the events' ids as they come.
The script exits 0 only when every event of the stream was processed (exit 3 otherwise,
as ``lclstream receive`` does).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


class RadialProfile:
    """Per-event mean intensity in 1-pixel rings around each module's centre."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.rings: np.ndarray | None = None
        self.counts: np.ndarray | None = None

    def _prepare(self, frame_shape: tuple[int, ...]) -> None:
        rows, cols = frame_shape[-2:]
        y, x = np.indices((rows, cols))
        r = np.hypot(y - (rows - 1) / 2, x - (cols - 1) / 2).astype(np.int64)
        r = np.minimum(r, self.bins - 1)
        modules = int(np.prod(frame_shape[:-2], dtype=np.int64))
        self.rings = np.tile(r.ravel(), modules)
        self.counts = np.bincount(self.rings, minlength=self.bins).astype(np.float64)

    def __call__(self, batch: object) -> tuple[np.ndarray, np.ndarray]:
        data = batch.data  # type: ignore[attr-defined]
        if self.rings is None:
            self._prepare(data.shape[1:])
        assert self.rings is not None and self.counts is not None
        profiles = np.stack(
            [np.bincount(self.rings, weights=f.ravel(), minlength=self.bins) for f in data]
        )
        mean = np.divide(profiles, self.counts, out=np.zeros_like(profiles), where=self.counts > 0)
        return np.asarray(batch.event_ids), mean  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bind", default="tcp://127.0.0.1:12321", help="where the stream arrives")
    ap.add_argument("--out", default="profiles.h5", help="HDF5 file for the profiles")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--bins", type=int, default=512, help="rings (the outermost takes the rest)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds of silence to give up")
    ap.add_argument("--object-store-mb", type=int, default=None, help="Ray's object store size")
    args = ap.parse_args(argv)

    import h5py
    import ray
    from lclstream.ray import BatchStream, map_batches

    store = None if args.object_store_mb is None else args.object_store_mb << 20
    ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=store)
    stream = BatchStream(args.bind, timeout=args.timeout)
    print(f"listening on {stream.endpoints[0]}", flush=True)
    res = map_batches(
        stream, RadialProfile, fn_args=(args.bins,), actors=args.actors, keep_outputs=True
    )
    with h5py.File(args.out, "w") as f:
        order = sorted(res.outputs)
        ids = [res.outputs[i][0] for i in order]
        profiles = [res.outputs[i][1] for i in order]
        f["/LCLS/eventNumber"] = np.concatenate(ids) if ids else np.zeros(0, np.uint64)
        f["/entry_1/result_1/radialProfile"] = (
            np.concatenate(profiles) if profiles else np.zeros((0, args.bins))
        )
    print(
        f"{res.events_processed} of {res.events_received} events processed "
        f"({'complete' if res.complete else res.incomplete_reason()}); profiles in {args.out}",
        flush=True,
    )
    ray.shutdown()
    return 0 if res.complete else 3


if __name__ == "__main__":
    sys.exit(main())
