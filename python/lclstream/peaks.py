"""Bragg peak finding at the source: psana's peakfinder8 in the C++ core.

Why a prepared object: the radius bins, the mask and the ring layout depend on the
geometry only, so they are built once per run (a sort of every pixel) and every frame then
costs one gather and a few passes over cache-resident blocks. The peaks are the same as
psana's ``psana.peakfinder8.peakfinder_8`` on the same frame, mask and radius map (see
docs/peaks.md for how that is proved and for the reference's quirks that are kept).

Frames are laid out as psana and OM lay them out for peakfinder8: a 2-D array of
``nasics_y * asic_ny`` rows by ``nasics_x * asic_nx`` columns (modules stacked along the
rows); :func:`raw_layout` and :func:`radius_map` give both for the detector models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lclstream.detectors import model

__all__ = ["Peakfinder8", "Peakfinder8Params", "Peaks", "radius_map", "raw_layout"]

#: ASIC size (rows, cols) per detector kind, as the raw layout tiles it.
_ASIC: dict[str, tuple[int, int]] = {"jungfrau": (256, 256), "epix10ka": (176, 192)}


class Peakfinder8Params(BaseModel):
    """peakfinder8 parameters, named as OM's ``peakfinder8_peak_detection`` names them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adc_threshold: float = Field(0.0, description="a ring's threshold never goes below this")
    minimum_snr: float = Field(
        5.0, description="ring threshold = mean + this * sigma; peak SNR cut"
    )
    min_pixel_count: int = Field(2, description="fewest pixels in a peak")
    max_pixel_count: int = Field(20, ge=1, description="most pixels in a peak")
    local_bg_radius: int = Field(3, ge=0, le=1024, description="local background disk radius / 2")
    max_num_peaks: int = Field(2048, ge=0, description="peaks kept per frame")
    min_res: float = Field(0.0, description="pixels nearer the beam than this (px) are masked")
    max_res: float = Field(
        1e30, description="pixels farther from the beam than this (px) are masked"
    )
    asic_nx: int = Field(..., gt=0, description="ASIC columns (fast scan)")
    asic_ny: int = Field(..., gt=0, description="ASIC rows (slow scan)")
    nasics_x: int = Field(..., gt=0, description="ASICs along the columns")
    nasics_y: int = Field(..., gt=0, description="ASICs along the rows")


@dataclass(frozen=True)
class Peaks:
    """Peaks of a stack of frames, flat: event ``e`` owns ``[offsets[e], offsets[e + 1])``.

    ``x`` is the fast-scan (column) and ``y`` the slow-scan (row) centre of mass in the raw
    layout; ``total_intensity`` and ``max_intensity`` are above the local background;
    ``index`` is the pixel nearest the centre of mass (psana's order and meaning)."""

    offsets: np.ndarray
    x: np.ndarray
    y: np.ndarray
    total_intensity: np.ndarray
    max_intensity: np.ndarray
    sigma: np.ndarray
    snr: np.ndarray
    npix: np.ndarray
    index: np.ndarray

    @property
    def n_peaks(self) -> np.ndarray:
        """Peaks per event (int64)."""
        return np.diff(self.offsets).astype(np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def event(self, e: int) -> Peaks:
        """The peaks of one event (views, offsets rebased to 0)."""
        if not 0 <= e < len(self):
            raise IndexError(f"event {e} out of range for {len(self)} events")
        a, b = int(self.offsets[e]), int(self.offsets[e + 1])
        return Peaks(
            np.array([0, b - a], np.uint64),
            *(getattr(self, f)[a:b] for f in _FIELDS),
        )


_FIELDS = ("x", "y", "total_intensity", "max_intensity", "sigma", "snr", "npix", "index")


class Peakfinder8:
    """psana's peakfinder8 on a fixed geometry: ``radius`` (rows, cols) is each pixel's distance
    from the beam in pixels (its ring is ``rint(radius)``), ``mask`` is 0 for bad pixels.

    ``find`` takes float32 frames (keV/ADU) or uint16/uint32 photon counts, one frame or a
    stack, and runs frames in parallel on ``threads`` (0 = all cores) without the GIL."""

    def __init__(
        self, params: Peakfinder8Params, radius: np.ndarray, mask: np.ndarray | None = None
    ) -> None:
        from lclstream import _core

        self.params = params
        r = np.ascontiguousarray(radius, dtype=np.float32)
        m = None if mask is None else np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8)
        self._core = _core.Peakfinder8(r, m, **params.model_dump())

    @property
    def shape(self) -> tuple[int, int]:
        return self._core.shape

    def find(self, frames: np.ndarray, threads: int = 0) -> Peaks:
        return Peaks(*self._core.find(frames, threads))

    def ring_stats(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offset, threshold) per radial bin after psana's sigma clipping of one frame: what
        a pixel must exceed to seed a peak, for inspecting a run's thresholds."""
        off, thr = self._core.ring_stats(frame)
        return off, thr


def raw_layout(detector: str) -> dict[str, int]:
    """``asic_nx``, ``asic_ny``, ``nasics_x``, ``nasics_y`` of a model's frames with the modules
    stacked along the rows (a (modules, ny, nx) frame reshaped to (modules * ny, nx))."""
    d = model(detector)
    ay, ax = _ASIC[d.kind]
    ny, nx = d.module_shape
    return {"asic_nx": ax, "asic_ny": ay, "nasics_x": nx // ax, "nasics_y": d.modules * ny // ay}


def radius_map(detector: str, beam_center: tuple[float, float] | None = None) -> np.ndarray:
    """Radius in pixels of every pixel of the raw layout (modules * ny, nx), with the modules
    placed as the model's gap-free assembled image places them (the synthetic source's
    geometry); ``beam_center`` (x, y) in assembled pixels, default the image centre."""
    d = model(detector)
    ny, nx = d.module_shape
    rows, cols = d.layout
    cx, cy = beam_center if beam_center is not None else (cols * nx / 2.0, rows * ny / 2.0)
    m = np.arange(d.modules)
    yy = ((m // cols) * ny)[:, None, None] + np.arange(ny)[None, :, None]
    xx = ((m % cols) * nx)[:, None, None] + np.arange(nx)[None, None, :]
    r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    return r.reshape(d.modules * ny, nx).astype(np.float32)


def synthetic_frames(
    radius: np.ndarray,
    frames: int,
    *,
    peaks: int = 50,
    noise: float = 1.0,
    seed: int = 0,
    asic: tuple[int, int] = (256, 256),
    edge_fraction: float = 0.2,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Frames for tests and benchmarks: a ring-shaped background (a water ring on a floor) with
    Gaussian noise of ``noise`` and ``peaks`` Gaussian Bragg spots per frame, a fraction of them
    on ASIC edges (where psana's scan and growth rules matter). Returns (frames float32,
    per-frame (x, y) truth arrays)."""
    rng = np.random.default_rng(seed)
    rows, cols = radius.shape
    bg = (10.0 + 8.0 * np.exp(-0.5 * ((radius - 0.35 * radius.max()) / 60.0) ** 2)).astype(
        np.float32
    )
    out = np.empty((frames, rows, cols), np.float32)
    truth: list[np.ndarray] = []
    ay, ax = asic
    yy, xx = np.mgrid[-3:4, -3:4]
    for f in range(frames):
        img = bg + rng.normal(0.0, noise, size=(rows, cols)).astype(np.float32)
        n_edge = int(peaks * edge_fraction)
        py = rng.uniform(4, rows - 4, peaks)
        px = rng.uniform(4, cols - 4, peaks)
        # Snap some spots onto an ASIC border row or column.
        e = rng.integers(0, 2, n_edge)
        py[:n_edge] = np.where(
            e == 0,
            (rng.integers(1, rows // ay, n_edge) * ay) + rng.uniform(-1, 0.5, n_edge),
            py[:n_edge],
        )
        px[:n_edge] = np.where(
            e == 1,
            (rng.integers(1, cols // ax, n_edge) * ax) + rng.uniform(-1, 0.5, n_edge),
            px[:n_edge],
        )
        py = np.clip(py, 4, rows - 5)
        px = np.clip(px, 4, cols - 5)
        amp = rng.uniform(8.0, 80.0, peaks) * noise
        wid = rng.uniform(0.6, 1.3, peaks)
        for y0, x0, a, w in zip(py, px, amp, wid, strict=True):
            iy, ix = int(y0), int(x0)
            g = a * np.exp(-((yy + iy - y0) ** 2 + (xx + ix - x0) ** 2) / (2 * w * w))
            img[iy - 3 : iy + 4, ix - 3 : ix + 4] += g.astype(np.float32)
        out[f] = img
        truth.append(np.stack([px, py], axis=1))
    return out, truth
