"""Realistic synthetic SFX detector frames: the embedded default source.

Frames are *raw* as the detector writes them (uint16 with gain bits), made from a known photon
map so calibration can be checked against the photons that were planted:

* **Jungfrau** (modules of 512×1024): ``raw = gain_bits << 14 | adc``; gain bits 0 → G0,
  1 → G1, 3 → G2 (2 never occurs on a good pixel; we put it on a few bad ones). Each pixel has
  a pedestal per gain (G0 ≈ 1000–3000 ADU, G1 and G2 ≈ 14000–16000 ADU) and a gain per gain
  stage in ADU/keV: G0 ≈ +40, G1 ≈ −1.5, G2 ≈ −0.1. **Sign convention**: in G1 and G2 the
  Jungfrau's ADC output *falls* as charge grows (PSI's gain files hold magnitudes, and their
  Jungfraujoch back end multiplies G1/G2 by −1); psana's ``DetCache`` takes ``gfac = 1/gain``
  for every stage with no sign of its own, so ``keV = (adc − pedestal[g]) × gfac[g]`` is
  positive in G1/G2 only with negative G1/G2 gains: psana's constants are signed. We follow it.
  A pixel leaves G0 when its ADC would pass ~15000 and leaves G1 below ~1000.
* **ePix10ka** (ePix10k2M: 16 panels of 352×384): ``raw = switch_bit14 | adc``; the per-pixel
  configuration (trbit = 0x10: auto-ranging high→low) plus bit 14 select gain range AHL_H (4)
  or AHL_L (6) of the 7 psana ranges (FH, FM, FL, AHL_H, AML_M, AHL_L, AML_L). Gains are
  positive (16.4 and 0.164 ADU/keV).

Each event is SFX-like: Poisson water-ring + diffuse background, and on hits (a deterministic,
seeded schedule with the configured hit fraction) Bragg peaks spread over 3×3 pixels with a
long-tailed intensity distribution, so bright peaks switch gain. A few pixels are bad (hot,
dead, or invalid gain bits) and masked in the constants.

Speed: a pool of ``pool_frames`` base frames (half hits, half misses) is made at start-up;
each event then picks one by its schedule and gets its own id and timestamp. Events are
read-only views of the pool: no per-event allocation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from lclstream.detectors import EPIX10KA, JUNGFRAU, MODELS, Detector
from lclstream.protocols import DetectorInfo

#: Unix time (ns) of the synthetic run's first event: 2026-01-01T00:00:00Z.
T0_NS = 1_767_225_600_000_000_000


#: The synthetic source's detectors: the models of the detector table.
DetectorGeometry = Detector
DETECTORS: dict[str, Detector] = MODELS

# Jungfrau gain stages: bits (raw >> 14) per stage from the table; ADC thresholds for switching.
_JF_BITS = tuple(int(st.gain_bits or 0) for st in JUNGFRAU.stages)
_JF_G0_MAX = 15000.0  # leave G0 when the ADC would pass this
_JF_G1_MIN = 1000.0  # leave G1 when the ADC would fall below this
# ePix10ka ranges (psana order, from the table) and the auto-ranging pair we simulate.
EPIX_RANGES = EPIX10KA.stage_names
_EPIX_GAINS = EPIX10KA.default_gains
_EPIX_H, _EPIX_L = EPIX10KA.stage("AHL_H"), EPIX10KA.stage("AHL_L")
_EPIX_TRBIT = 0x10
_EPIX_H_MAX = 12000.0
_NOISE_KEV = 0.15  # per-pixel electronic noise (sigma), keV equivalent
_NOISE_STRIDE = 7919  # offsets into one shared noise field (prime: frames do not align)


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a counter-based hash for the per-event schedule."""
    x &= 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class SyntheticDetector:
    """A synthetic detector data source (``type: SyntheticDetector``)."""

    def __init__(
        self,
        name: str = "detector_data",
        *,
        detector: str = "jungfrau4M",
        hit_fraction: float = 0.1,
        seed: int = 1,
        photon_energy_keV: float = 9.5,
        pool_frames: int = 16,
        peaks_per_hit: int = 80,
        background_photons: float = 0.08,
        rate_hz: float = 120.0,
        detector_distance_m: float = 0.1,
        keep_truth: bool = False,
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"unknown synthetic detector {detector!r} (one of {list(DETECTORS)})")
        if not 0.0 <= hit_fraction <= 1.0:
            raise ValueError(f"hit_fraction {hit_fraction} must be within [0, 1]")
        self.name = name
        self.geometry = g = DETECTORS[detector]
        self.detector = detector
        self.hit_fraction = float(hit_fraction)
        self.seed = int(seed)
        self.photon_energy_keV = float(photon_energy_keV)
        self.rate_hz = float(rate_hz)
        self.detector_distance_m = float(detector_distance_m)
        self.peaks_per_hit = int(peaks_per_hit)
        self.background_photons = float(background_photons)
        self._rng = np.random.default_rng([self.seed, 0x5F5])
        n = int(np.prod(g.shape))
        self._n = n
        # One shared standard-normal field; windows at different offsets are independent
        # enough for noise and per-pixel constants, and cost one draw instead of dozens.
        self._normal = self._rng.standard_normal(n + 64 * _NOISE_STRIDE, dtype=np.float32)
        self._make_constants()
        self._make_background_profile()
        if hit_fraction <= 0.0:
            n_hit = 0
        elif hit_fraction >= 1.0:
            n_hit = pool_frames
        else:
            n_hit = min(pool_frames - 1, max(1, pool_frames // 2)) if pool_frames > 1 else 1
        if pool_frames == 1 and 0.0 < hit_fraction < 1.0:
            pool_frames = 2
        self._n_hit = n_hit
        self._n_miss = pool_frames - n_hit
        self.pool = np.empty((pool_frames, *g.shape), dtype=np.uint16)
        self._truth: list[tuple[np.ndarray, np.ndarray]] = []
        self._keep_truth = keep_truth
        hi = 0 if g.kind == "jungfrau" else _EPIX_H
        self._gain_sigma = (self.gain[hi] * np.float32(_NOISE_KEV)).reshape(-1)
        # one scratch frame reused by every base frame (fresh pages fault in slowly), and one
        # uniform field whose windows drive the background of every base frame
        self._scratch = np.empty(self._n, np.float32)
        self._uniform = self._rng.random(self._n + 64 * _NOISE_STRIDE, dtype=np.float32)
        for k in range(pool_frames):
            idx, counts = self._photon_map(hit=k < n_hit)
            self._encode(idx, counts, noise_offset=(k + 1) * _NOISE_STRIDE, out=self.pool[k])
            if keep_truth:
                self._truth.append((idx, counts.astype(np.uint16)))
        del self._gain_sigma, self._scratch, self._uniform
        self.pool.flags.writeable = False
        del self._normal

    # ------------------------------------------------------------------ constants

    def _window(self, k: int) -> np.ndarray:
        off = (k % 60 + 1) * _NOISE_STRIDE + 13 * (k // 60)
        return self._normal[off : off + self._n].reshape(self.geometry.shape)

    def _make_constants(self) -> None:
        g = self.geometry
        rng = self._rng
        shape = g.shape
        mods = g.modules
        f32 = np.float32
        if g.kind == "jungfrau":
            ped = np.empty((JUNGFRAU.n_gains, *shape), f32)
            gain = np.empty((JUNGFRAU.n_gains, *shape), f32)
            centres = (rng.uniform(1300, 2700, mods), rng.uniform(14500, 15500, mods))
            ped[0] = centres[0][:, None, None] + f32(120) * self._window(1)
            ped[1] = centres[1][:, None, None] + f32(150) * self._window(2)
            ped[2] = rng.uniform(14500, 15500, mods)[:, None, None] + f32(150) * self._window(3)
            np.clip(ped[0], 1000, 3000, out=ped[0])
            np.clip(ped[1:], 14000, 16000, out=ped[1:])
            for s, mean in enumerate(JUNGFRAU.default_gains):
                gain[s] = f32(mean) * (f32(1) + f32(0.03) * self._window(4 + s))
        else:
            ped = np.empty((EPIX10KA.n_gains, *shape), f32)
            gain = np.empty((EPIX10KA.n_gains, *shape), f32)
            for r in range(EPIX10KA.n_gains):
                base = (
                    rng.uniform(1500, 2800, mods)
                    if r in (0, 1, 3, 4)
                    else rng.uniform(1000, 2200, mods)
                )
                ped[r] = base[:, None, None] + f32(100) * self._window(10 + r)
                gain[r] = f32(_EPIX_GAINS[r]) * (f32(1) + f32(0.02) * self._window(20 + r))
        # Bad pixels: ~0.05% hot, dead or (Jungfrau) with invalid gain bits; masked.
        n = self._n
        nbad = max(1, n // 2000)
        bad = rng.choice(n, size=nbad, replace=False)
        mask = np.ones(n, np.uint8)
        mask[bad] = 0
        self._bad = bad
        self._bad_kind = rng.integers(0, 3, size=nbad)
        self.mask = mask.reshape(shape)
        self.pedestal = ped
        self.gain = gain
        if g.kind == "epix10ka":
            self.config_bits = np.full(shape, _EPIX_TRBIT, np.uint8)

    def constants(self) -> dict[str, np.ndarray]:
        """Calibration constants matching the frames (psana shapes and conventions).

        ``pedestal``/``gain``: float32 (n_gains, *frame_shape) in ADU and ADU/keV;
        ``mask``: uint8, nonzero = good pixel; ePix10ka adds ``config_bits`` (uint8 per pixel).
        """
        out: dict[str, np.ndarray] = {
            "pedestal": self.pedestal,
            "gain": self.gain,
            "mask": self.mask,
        }
        if self.geometry.kind == "epix10ka":
            out["config_bits"] = self.config_bits
        return out

    # ------------------------------------------------------------------ photons

    def _assembled_rc(self) -> tuple[np.ndarray, np.ndarray]:
        """Row/column of every pixel in the assembled (gap-free) image, per module."""
        g = self.geometry
        ny, nx = g.module_shape
        rows, cols = g.layout
        m = np.arange(g.modules)
        y0 = (m // cols) * ny
        x0 = (m % cols) * nx
        yy = y0[:, None, None] + np.arange(ny, dtype=np.float32)[None, :, None]
        xx = x0[:, None, None] + np.arange(nx, dtype=np.float32)[None, None, :]
        return yy, xx

    def beam_center_px(self) -> tuple[float, float]:
        g = self.geometry
        return (g.layout[1] * g.module_shape[1] / 2.0, g.layout[0] * g.module_shape[0] / 2.0)

    def _make_background_profile(self) -> None:
        g = self.geometry
        yy, xx = self._assembled_rc()
        cx, cy = self.beam_center_px()
        r_m = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2, dtype=np.float32) * np.float32(
            g.pixel_size_m
        )
        tth = np.arctan(r_m / np.float32(self.detector_distance_m))
        wavelength_a = 12.398 / self.photon_energy_keV
        tth0 = 2.0 * math.asin(min(1.0, wavelength_a / (2 * 3.2)))  # water ring, d ≈ 3.2 Å
        w = math.radians(3.0)
        prof = np.float32(0.3) + np.float32(2.5) * np.exp(
            np.float32(-0.5) * ((tth - np.float32(tth0)) / np.float32(w)) ** 2
        )
        # Mean photons per pixel, and P(at least one) for inverse-CDF Poisson sampling.
        lam = prof.reshape(-1)
        lam *= np.float32(self.background_photons * lam.size / float(lam.sum(dtype=np.float64)))
        self._bg_lam = lam
        self._bg_p1 = -np.expm1(-lam)

    def _photon_map(self, *, hit: bool) -> tuple[np.ndarray, np.ndarray]:
        """Planted photons as (sorted unique flat pixel indices, counts): frames are sparse."""
        g = self.geometry
        rng = self._rng
        n = self._n
        idx_parts: list[np.ndarray] = []
        cnt_parts: list[np.ndarray] = []
        bg_idx = np.zeros(0, np.int64)
        bg_cnt = np.zeros(0, np.int64)
        if self.background_photons > 0:
            # Poisson per pixel by inverse CDF on one uniform: u < P(k >= 1) selects the few
            # pixels with photons (sorted, no sort needed); P(k >= 2), P(k >= 3) count them.
            off = int(rng.integers(0, 64 * _NOISE_STRIDE))
            u = self._uniform[off : off + n]
            bg_idx = np.flatnonzero(u < self._bg_p1)
            us = u[bg_idx]
            lam = self._bg_lam[bg_idx]
            e = np.exp(-lam)
            bg_cnt = (
                1
                + (us < 1 - e * (1 + lam)).astype(np.int64)
                + (us < 1 - e * (1 + lam + lam * lam / 2)).astype(np.int64)
            )
        if hit and self.peaks_per_hit:
            npk = max(1, int(rng.poisson(self.peaks_per_hit)))
            ny, nx = g.module_shape
            m = rng.integers(0, g.modules, npk)
            y = rng.integers(1, ny - 1, npk)
            x = rng.integers(1, nx - 1, npk)
            # Long-tailed intensities: most peaks tens of photons, a few bright enough to
            # switch gain (Jungfrau G1/G2, ePix low range).
            inten = rng.exponential(60.0, npk)
            bright = rng.random(npk) < 0.08
            inten[bright] *= rng.uniform(10, 60, int(bright.sum()))
            kern = np.array([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]])
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    lam = np.minimum(inten * kern[dy + 1, dx + 1], 8000.0)
                    idx_parts.append((m * ny + y + dy) * nx + x + dx)
                    cnt_parts.append(rng.poisson(lam))
        if not idx_parts:
            return bg_idx, bg_cnt
        pk_all = np.concatenate(idx_parts)
        pk_idx, inv = np.unique(pk_all, return_inverse=True)
        pk_cnt = np.bincount(inv, weights=np.concatenate(cnt_parts)).astype(np.int64)
        pos = np.searchsorted(bg_idx, pk_idx)
        hit_bg = np.zeros(pk_idx.size, bool)
        ok = pos < bg_idx.size
        hit_bg[ok] = bg_idx[pos[ok]] == pk_idx[ok]
        bg_cnt[pos[hit_bg]] += pk_cnt[hit_bg]
        new = ~hit_bg & (pk_cnt > 0)
        idx = np.insert(bg_idx, pos[new], pk_idx[new])
        counts = np.insert(bg_cnt, pos[new], pk_cnt[new])
        # keep G2 / the low range inside its ADC range
        return idx, np.minimum(counts, 9000)

    # ------------------------------------------------------------------ encoding

    def _encode(
        self, idx: np.ndarray, counts: np.ndarray, *, noise_offset: int, out: np.ndarray
    ) -> None:
        """Raw frame: the dark frame (pedestal + noise, high gain) in a few whole-frame passes,
        then the photon pixels (a few percent) encoded with gain switching, sparsely."""
        g = self.geometry
        k = g.kind_info
        f32 = np.float32
        noise = self._normal[noise_offset : noise_offset + self._n]
        ped, gain = self.pedestal, self.gain
        hi = 0 if g.kind == "jungfrau" else _EPIX_H
        ped_hi = ped[hi].reshape(-1)
        dark = np.multiply(self._gain_sigma, noise, out=self._scratch)
        dark += ped_hi
        np.rint(dark, out=dark)
        flat = out.reshape(-1)
        flat[...] = dark  # dark ADC stays well inside 0..16383 in the high-gain stage
        if idx.size:
            e = counts.astype(f32) * f32(self.photon_energy_keV) + f32(_NOISE_KEV) * noise[idx]
            adc = ped_hi[idx] + gain[hi].reshape(-1)[idx] * e
            bits = np.zeros(idx.size, np.uint16)
            if g.kind == "jungfrau":
                sw = np.nonzero(adc > f32(_JF_G0_MAX))[0]
                if sw.size:
                    p, es = idx[sw], e[sw]
                    a1 = ped[1].reshape(-1)[p] + gain[1].reshape(-1)[p] * es
                    a2 = ped[2].reshape(-1)[p] + gain[2].reshape(-1)[p] * es
                    in2 = a1 < f32(_JF_G1_MIN)
                    adc[sw] = np.where(in2, a2, a1)
                    bits[sw] = np.where(in2, _JF_BITS[2], _JF_BITS[1])
            else:
                sw = np.nonzero(adc > f32(_EPIX_H_MAX))[0]
                if sw.size:
                    p = idx[sw]
                    adc[sw] = ped[_EPIX_L].reshape(-1)[p] + gain[_EPIX_L].reshape(-1)[p] * e[sw]
                    bits[sw] = 1
            np.rint(adc, out=adc)
            np.clip(adc, 0, k.adc_max, out=adc)
            flat[idx] = adc.astype(np.uint16) | (bits << k.adc_bits)
        # Bad pixels: 0 → hot (G0 near full scale), 1 → dead (0), 2 → invalid gain bits.
        bk = self._bad_kind
        flat[self._bad[bk == 0]] = 16000
        flat[self._bad[bk == 1]] = 0
        if g.kind == "jungfrau":
            flat[self._bad[bk == 2]] = (2 << k.adc_bits) | 1234  # gain bits 0b10: invalid
        else:
            flat[self._bad[bk == 2]] = k.adc_max

    # ------------------------------------------------------------------ events

    def info(self) -> DetectorInfo:
        g = self.geometry
        return DetectorInfo(
            name=self.name,
            kind=g.kind,
            frame_shape=g.shape,
            dtype="uint16",
            pixel_size_m=g.pixel_size_m,
            detector_distance_m=self.detector_distance_m,
            photon_energy_keV=self.photon_energy_keV,
            beam_center_px=self.beam_center_px(),
            serial=f"synthetic-{self.detector}-seed{self.seed}",
            module_layout=g.layout,
        )

    def is_hit(self, index: int) -> bool:
        """Whether event ``index`` is a hit (deterministic from the seed)."""
        return self._u(index) < self.hit_fraction

    def _u(self, index: int) -> float:
        return (_mix64(self.seed * 0x9E3779B97F4A7C15 + index) >> 11) / float(1 << 53)

    def frame_index(self, index: int) -> int:
        """Which pool frame event ``index`` uses."""
        h = _mix64(index * 0xD1B54A32D192ED03 + self.seed + 1)
        if self._n_miss == 0 or (self._n_hit and self.is_hit(index)):
            return h % self._n_hit
        return self._n_hit + h % self._n_miss

    #: get_data hands out read-only views of the pool, which is never rewritten
    frames_stay_valid = True

    def get_data(self, index: int, out: np.ndarray | None = None) -> np.ndarray:
        """The raw frame of event ``index``: a read-only view of the pool, or copied into
        ``out`` (uint16, frame-shaped) when given."""
        frame = self.pool[self.frame_index(index)]
        if out is None:
            return frame
        np.copyto(out, frame)
        return out

    def truth(self, index: int) -> np.ndarray:
        """The photons planted in event ``index`` (needs ``keep_truth=True``)."""
        if not self._keep_truth:
            raise RuntimeError("construct with keep_truth=True to get the planted photons")
        idx, counts = self._truth[self.frame_index(index)]
        out = np.zeros(self._n, np.uint16)
        out[idx] = counts
        return out.reshape(self.geometry.shape)

    def timestamp(self, index: int) -> int:
        return T0_NS + int(round(index * 1e9 / self.rate_hz))

    def frames(self, n: int, first: int = 0) -> Iterator[np.ndarray]:
        for i in range(first, first + n):
            yield self.get_data(i)

    def close(self) -> None:
        pass


def synthetic_from_params(name: str, params: Any, **extra: Any) -> SyntheticDetector:
    """Build from a ``SyntheticDetectorParameters`` model."""
    return SyntheticDetector(
        name,
        detector=params.detector,
        hit_fraction=params.hit_fraction,
        seed=params.seed,
        photon_energy_keV=params.photon_energy_keV,
        pool_frames=params.pool_frames,
        peaks_per_hit=params.peaks_per_hit,
        background_photons=params.background_photons,
        rate_hz=params.rate_hz,
        detector_distance_m=params.detector_distance_m,
        **extra,
    )
