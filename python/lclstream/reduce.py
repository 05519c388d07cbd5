"""Reduction at the source: crop to a region of interest, zero values under a threshold, sum
pixel blocks — in place in the batch slot, with the C++ kernels.

Why here and not in the serializer: every byte removed before compression is a byte neither
compressed nor sent, and the reductions run on the frame while it is still in cache from
calibration. Peak finding and the hit veto run per batch (``run/hits.py``); other event
filters plug in via ``Pipeline(event_filter=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lclstream.errors import ConfigError

__all__ = ["Reduction"]


@dataclass
class Reduction:
    """Per-detector reduction, in this order: crop to ``roi`` (modules, y, x ranges), zero
    values under ``threshold``, sum ``binning`` x ``binning`` pixel blocks within each module."""

    modules: tuple[int, ...] | None = None
    y: tuple[int, int] | None = None
    x: tuple[int, int] | None = None
    threshold: float | None = None
    binning: int = 1

    @property
    def reshapes(self) -> bool:
        return (
            self.modules is not None
            or self.y is not None
            or self.x is not None
            or (self.binning > 1)
        )

    @property
    def active(self) -> bool:
        return self.reshapes or self.threshold is not None

    def out_shape(self, shape: tuple[int, ...], name: str = "") -> tuple[int, ...]:
        where = f"processing_pipeline.reduction.{name}" if name else "reduction"
        if not self.reshapes:
            return tuple(shape)  # nothing to crop or bin: 1-D arrays pass as they are
        if len(shape) < 2:
            raise ConfigError(f"{where}: frames of shape {shape} cannot be reduced")
        lead, (h, w) = list(shape[:-2]), shape[-2:]
        if self.modules is not None:
            if len(shape) < 3:
                raise ConfigError(f"{where}.roi.modules: frames of shape {shape} have no modules")
            bad = [m for m in self.modules if not 0 <= m < shape[0]]
            if bad or not self.modules:
                raise ConfigError(
                    f"{where}.roi.modules: {list(self.modules)} must be within 0..{shape[0] - 1}"
                )
            lead[0] = len(self.modules)
        for axis, rng, size in (("y", self.y, h), ("x", self.x, w)):
            if rng is not None and not 0 <= rng[0] < rng[1] <= size:
                raise ConfigError(
                    f"{where}.roi.{axis}: {list(rng)} is not a range within [0, {size}]"
                )
        if self.y is not None:
            h = self.y[1] - self.y[0]
        if self.x is not None:
            w = self.x[1] - self.x[0]
        b = self.binning
        if b < 1 or h % b or w % b:
            raise ConfigError(f"{where}.binning.factor: {b} does not divide the frame ({h} x {w})")
        return (*lead, h // b, w // b)

    def out_dtype(self, dtype: np.dtype[Any]) -> np.dtype[Any]:
        """Binned counts sum into uint32 (saturating); float32 stays float32."""
        if self.binning > 1:
            return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.uint32)
        return dtype

    def crop_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape after the ROI, before binning."""
        b = self.binning
        out = self.out_shape(shape)
        return (*out[:-2], out[-2] * b, out[-1] * b)

    def apply(
        self,
        frame: np.ndarray,
        out: np.ndarray,
        *,
        mutable: bool,
        buffer: np.ndarray | None = None,
        threads: int = 0,
    ) -> None:
        """Reduce ``frame`` into ``out`` with the C++ kernels (crop, zero_below, bin_pixels).

        ``frame`` may be ``out`` itself when nothing reshapes. ``mutable`` says whether
        ``frame`` may be changed in place (a calibrated scratch frame may, a source's raw
        frame may not); ``buffer`` holds the cropped frame when binning follows a crop.
        """
        from lclstream import calib

        src = frame
        owned = mutable
        if self.modules is not None:
            mods = list(self.modules)
            if mods == list(range(mods[0], mods[0] + len(mods))):
                src = src[mods[0] : mods[0] + len(mods)]
            else:
                src, owned = src[mods], True  # a copy (rare: scattered modules)
        if self.y is not None or self.x is not None:
            h, w = src.shape[-2:]
            rows, cols = self.y or (0, h), self.x or (0, w)
            dst = out if self.binning == 1 else buffer
            src = calib.crop(src, rows, cols, out=dst, threads=threads)
            owned = True
        if self.threshold is not None:
            if not owned:
                dst = out if self.binning == 1 else buffer
                if dst is None:
                    dst = np.empty_like(src)
                np.copyto(dst, src)
                src = dst
            calib.zero_below(src, self.threshold, threads=threads)
        if self.binning > 1:
            calib.bin_pixels(src, self.binning, out=out, threads=threads)
        elif src is not out:
            np.copyto(out, src)
