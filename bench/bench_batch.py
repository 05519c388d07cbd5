"""Batch assembly: filling a pooled batch from a list of frames, against memcpy of the same
bytes into a warm buffer (C++ memcpy via _core.parallel_copy) and against numpy.stack."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from common import main, record, time_pair
from lclstream import Batch, _core, pool_for

TARGET = 0.8  # DESIGN.md: batch assembly >= 0.8x memcpy


def run(quick: bool = False) -> list[dict[str, Any]]:
    shape = (8, 512, 1024)  # Jungfrau 4M
    n_events = 10
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 2**14, size=shape, dtype=np.uint16) for _ in range(n_events)]
    nbytes = n_events * frames[0].nbytes
    pool = pool_for(n_events, shape, np.uint16, 2)
    src = np.concatenate([f.reshape(-1) for f in frames])
    dst = np.empty_like(src)
    dst[:] = 0
    stack_out = np.empty((n_events, *shape), np.uint16)
    repeats = 3 if quick else 10
    out = []
    for threads in sorted({1, _core.hardware_threads()}):

        def ours(threads: int = threads) -> None:
            b = Batch.from_frames(frames, pool=pool, threads=threads)
            del b

        fb = frames[0].size
        best_memcpy: list[float] = []
        dst_frames = [dst[i * fb : (i + 1) * fb] for i in range(n_events)]

        def memcpy(
            threads: int = threads,
            dst_frames: list[np.ndarray] = dst_frames,
            best_memcpy: list[float] = best_memcpy,
        ) -> None:
            # glibc switches to non-temporal stores for one huge copy, which is slower here
            # than frame-sized copies: the baseline is the better of the two.
            t0 = time.perf_counter()
            _core.parallel_copy(dst, src, threads)
            t1 = time.perf_counter()
            for d, f in zip(dst_frames, frames, strict=True):
                _core.parallel_copy(d, f.reshape(-1), threads)
            t2 = time.perf_counter()
            best_memcpy.append(min(t1 - t0, t2 - t1))

        t, _ = time_pair(ours, memcpy, repeats)
        measured = best_memcpy[-repeats:]
        base = {
            "min": min(measured),
            "median": sorted(measured)[len(measured) // 2],
            "max": max(measured),
        }
        out.append(
            record(
                "batch",
                "JF4M x10 frames -> pooled batch",
                nbytes=nbytes,
                t=t,
                baseline="memcpy (C++, best)",
                baseline_t=base,
                threads=threads,
                target=TARGET,
                target_text=">= 0.8x memcpy",
            )
        )
    t1, tstack = time_pair(
        lambda: Batch.from_frames(frames, pool=pool, threads=1),
        lambda: np.stack(frames, out=stack_out),
        repeats,
    )
    out.append(
        record(
            "batch",
            "JF4M x10 frames -> pooled batch",
            nbytes=nbytes,
            t=t1,
            baseline="numpy.stack (warm out)",
            baseline_t=tstack,
            threads=1,
        )
    )
    return out


if __name__ == "__main__":
    main(run)
