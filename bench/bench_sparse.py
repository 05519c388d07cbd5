"""Sparse photon lists against bslz4 frames: where each is smaller, and what each costs.

Frames: Jungfrau 4M photon counts (uint16, 8 x 512 x 1024) with a Poisson background of
0.001-0.3 photons per pixel, as low-occupancy runs (XPCS, weak diffuse scattering, LCLS-II at
high repetition rate) give them. Per frame, one thread: ours = ``lclstream.sparse.encode`` plus
bslz4 of the index and count lists (what a ``sparse: true`` stream sends); the baseline = bslz4
of the frame (what it sends otherwise), both timed alternately on the same frames. The record's
``bytes_sparse`` and ``bytes_bslz4`` say which is smaller; the size crossover is what the
docs quote for when to turn ``sparse`` on. Informative: no target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import main, record, time_pair
from lclstream import codec, sparse

OCCUPANCIES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]


def _lists(frames: np.ndarray) -> list[Any]:
    out = []
    for f in frames:
        sp = sparse.encode(f[None], threads=1)
        index = codec.compress(sp.index, "bslz4", threads=1)
        values = codec.compress(sp.values, "bslz4", threads=1)
        out.append((sp.offsets, index, values))
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    n = 2 if quick else 4
    rows = OCCUPANCIES[::2] if quick else OCCUPANCIES
    out: list[dict[str, Any]] = []
    for lam in rows:
        rng = np.random.default_rng(int(lam * 1e4))
        frames = rng.poisson(lam, (n, 8, 512, 1024)).astype(np.uint16)

        def ours(frames: np.ndarray = frames) -> list[Any]:
            return _lists(frames)

        def dense(frames: np.ndarray = frames) -> list[Any]:
            return [codec.compress(f, "bslz4", threads=1) for f in frames]

        lists, chunks = ours(), dense()
        back = [
            sparse.SparseFrames(o, codec.decompress(i, "bslz4", dtype=np.uint32, shape=int(o[-1])),
                                codec.decompress(v, "bslz4", dtype=np.uint16, shape=int(o[-1])),
                                frames.shape[1:]).to_dense()[0]
            for o, i, v in lists
        ]  # fmt: skip
        exact = all(np.array_equal(b, f) for b, f in zip(back, frames, strict=True))
        s_bytes = sum(o.nbytes + len(i) + len(v) for o, i, v in lists) / n
        d_bytes = sum(len(c) for c in chunks) / n
        t, tb = time_pair(ours, dense, repeats=2 if quick else 5)
        occupancy = float((frames > 0).mean())
        out.append(
            record(
                "sparse",
                f"{lam:g} photons/pixel (occupancy {occupancy:.2%})",
                nbytes=float(frames.nbytes),
                t=t,
                baseline="bslz4 frames (lclstream.codec)",
                baseline_t=tb,
                threads=1,
                target=None,
                target_text="informative: sparse lists vs bslz4 frames, size and time",
                frames=n,
                photons_per_pixel=lam,
                occupancy=occupancy,
                bytes_sparse=s_bytes,
                bytes_bslz4=d_bytes,
                size_ratio=d_bytes / s_bytes,
                exact=exact,
                notes=(
                    f"lists {s_bytes / 1e3:.0f} kB vs bslz4 {d_bytes / 1e3:.0f} kB per frame "
                    f"({'lists smaller' if s_bytes < d_bytes else 'frame smaller'}, "
                    f"{d_bytes / s_bytes:.2f}x); {1e3 * t['min'] / n:.2f} vs "
                    f"{1e3 * tb['min'] / n:.2f} ms/frame; {'exact' if exact else 'NOT EXACT'}"
                ),
            )
        )
    return out


if __name__ == "__main__":
    main(run)
