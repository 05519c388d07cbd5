"""peakfinder8: the C++ finder against psana's own ``peakfinder_8`` on the same frames, bit for
bit, plus the properties that do not need psana (recall of planted spots, threads, dtypes, ISAs,
bad input)."""

from __future__ import annotations

import numpy as np
import pytest
from lclstream import _core
from lclstream.peaks import (
    Peakfinder8,
    Peakfinder8Params,
    Peaks,
    radius_map,
    raw_layout,
    synthetic_frames,
)

try:
    from psana.peakfinder8 import peakfinder_8  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - psana is installed by scripts/setup.sh
    peakfinder_8 = None

needs_psana = pytest.mark.skipif(
    peakfinder_8 is None,
    reason="psana is not installed (pip install 'lclstream[psana]'; scripts/setup.sh installs it)",
)

JF4M = raw_layout("jungfrau4M")
OM_PARAMS = dict(
    adc_threshold=12.0,
    minimum_snr=5.0,
    min_pixel_count=2,
    max_pixel_count=30,
    local_bg_radius=3,
    max_num_peaks=2048,
)


def _mask(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Random bad pixels, a dead column and a dead block crossing an ASIC corner."""
    rng = np.random.default_rng(seed + 1000)
    m = (rng.random(shape) > 0.005).astype(np.uint8)
    m[:, shape[1] * 3 // 10] = 0
    m[shape[0] // 2 - 6 : shape[0] // 2 + 6, shape[1] // 2 - 6 : shape[1] // 2 + 6] = 0
    return m


def _psana(
    frame: np.ndarray, mask: np.ndarray, r: np.ndarray, lay: dict[str, int], p: dict
) -> Peaks:
    x, y, tot, index, npix, maxi, sigma, snr = peakfinder_8(
        p["max_num_peaks"],
        np.ascontiguousarray(frame, np.float32),
        np.ascontiguousarray(mask, np.int8),
        r,
        lay["asic_nx"],
        lay["asic_ny"],
        lay["nasics_x"],
        lay["nasics_y"],
        p["adc_threshold"],
        p["minimum_snr"],
        p["min_pixel_count"],
        p["max_pixel_count"],
        p["local_bg_radius"],
    )
    f32 = lambda v: np.asarray(v, np.float64).astype(np.float32)  # noqa: E731 - psana gives floats as doubles
    return Peaks(
        np.array([0, len(x)], np.uint64),
        f32(x),
        f32(y),
        f32(tot),
        f32(maxi),
        f32(sigma),
        f32(snr),
        np.asarray(npix, np.float64).astype(np.int32),
        np.asarray(index, np.int64),
    )


def _assert_same(ours: Peaks, ref: Peaks) -> None:
    assert len(ours.x) == len(ref.x), f"{len(ours.x)} peaks, psana {len(ref.x)}"
    for f in ("x", "y", "total_intensity", "max_intensity", "sigma", "snr", "npix", "index"):
        a, b = getattr(ours, f), getattr(ref, f)
        assert np.array_equal(a, b), (
            f"{f} differs: max |d| = {np.max(np.abs(a - b.astype(a.dtype)))}"
        )


@needs_psana
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_psana_on_jungfrau4m_frames(seed: int) -> None:
    r = radius_map("jungfrau4M")
    mask = _mask(r.shape, seed)
    frames, _ = synthetic_frames(r, 1, peaks=150, noise=1.0, seed=seed)
    params = Peakfinder8Params(**OM_PARAMS, **JF4M)
    ours = Peakfinder8(params, r, mask).find(frames, threads=1)
    ref = _psana(frames[0], mask, r, JF4M, OM_PARAMS)
    assert len(ref.x) > 50  # a meaningful frame
    _assert_same(ours.event(0), ref)


@needs_psana
@pytest.mark.parametrize(
    "seed,noise,peaks,p",
    [
        (
            3,
            1.0,
            400,
            dict(OM_PARAMS, max_pixel_count=8),
        ),  # big spots rejected, pixels stay claimed
        (4, 3.0, 40, dict(OM_PARAMS, adc_threshold=0.0, minimum_snr=3.0)),  # noisy: many seeds
        (5, 1.0, 300, dict(OM_PARAMS, max_num_peaks=25)),  # truncation
        (6, 0.5, 80, dict(OM_PARAMS, local_bg_radius=1, min_pixel_count=1)),
    ],
)
def test_equal_to_psana_on_varied_parameters(seed: int, noise: float, peaks: int, p: dict) -> None:
    lay = dict(asic_nx=64, asic_ny=32, nasics_x=4, nasics_y=8)  # 256 x 256, many ASIC edges
    rows, cols = lay["asic_ny"] * lay["nasics_y"], lay["asic_nx"] * lay["nasics_x"]
    yy, xx = np.mgrid[0:rows, 0:cols]
    r = np.hypot(xx - 100.3, yy - 140.7).astype(np.float32)
    mask = _mask(r.shape, seed)
    frames, _ = synthetic_frames(r, 3, peaks=peaks, noise=noise, seed=seed, asic=(32, 64))
    finder = Peakfinder8(Peakfinder8Params(**p, **lay), r, mask)
    ours = finder.find(frames, threads=2)
    for e in range(3):
        _assert_same(ours.event(e), _psana(frames[e], mask, r, lay, p))


@needs_psana
def test_psana_growth_quirk_reproduced() -> None:
    """psana grows a peak from list slot num_pix_in_peak too, which holds a stale (or, in the
    first peak of a frame, calloc-zero) ASIC position: here the zero slot reaches a bright pair
    on the ASIC's top border row that touches nothing, and psana merges it into the peak.
    A plain connected-component finder would report 4 pixels; psana (and we) report 6."""
    lay = dict(asic_nx=32, asic_ny=32, nasics_x=2, nasics_y=2)
    r = np.full((64, 64), 5.0, np.float32)
    yy, xx = np.mgrid[0:64, 0:64]
    img = (1.0 + 0.1 * ((xx + yy) % 3)).astype(np.float32)  # flat, a little structure
    img[0, 1:3] = 50.0  # border row of ASIC 0: never a seed, not connected to the spot
    img[20:22, 20:22] = 100.0  # the spot
    mask = np.ones((64, 64), np.uint8)
    p = dict(OM_PARAMS, adc_threshold=10.0, min_pixel_count=1)
    ref = _psana(img, mask, r, lay, p)
    ours = Peakfinder8(Peakfinder8Params(**p, **lay), r, mask).find(img)
    _assert_same(ours.event(0), ref)
    assert list(ours.npix) == [6]


def test_finds_planted_spots() -> None:
    """Independent of psana: most bright planted spots are found within a pixel."""
    r = radius_map("jungfrau4M")
    frames, truth = synthetic_frames(r, 1, peaks=100, noise=1.0, seed=7)
    got = Peakfinder8(Peakfinder8Params(**OM_PARAMS, **JF4M), r).find(frames)
    xy = np.stack([got.x, got.y], axis=1)
    d = np.min(np.linalg.norm(truth[0][:, None, :] - xy[None, :, :], axis=2), axis=1)
    assert np.mean(d < 1.0) > 0.8
    assert 80 <= got.n_peaks[0] <= 110


def test_threads_isas_and_count_dtypes_agree() -> None:
    lay = dict(asic_nx=64, asic_ny=64, nasics_x=2, nasics_y=4)
    yy, xx = np.mgrid[0:256, 0:128]
    r = np.hypot(xx - 64, yy - 128).astype(np.float32)
    frames, _ = synthetic_frames(r, 4, peaks=40, noise=2.0, seed=9, asic=(64, 64))
    counts = np.rint(np.clip(frames, 0, None)).astype(np.uint16)
    finder = Peakfinder8(Peakfinder8Params(**OM_PARAMS, **lay), r)
    one = finder.find(frames, threads=1)
    assert one.n_peaks.sum() > 40
    many = finder.find(frames, threads=4)
    for f in ("offsets", "x", "y", "total_intensity", "npix", "snr"):
        assert np.array_equal(getattr(one, f), getattr(many, f))
    as_float = finder.find(counts.astype(np.float32))
    for dt in (np.uint16, np.uint32):
        c = finder.find(counts.astype(dt))
        assert np.array_equal(c.x, as_float.x) and np.array_equal(
            c.total_intensity, as_float.total_intensity
        )
    before = _core.isa()
    try:
        results = []
        for isa in _core.available_isas():
            _core.set_isa(isa)
            results.append(finder.find(frames, threads=1))
    finally:
        _core.set_isa(before)
    for res in results[1:]:
        assert np.array_equal(res.x, results[0].x) and np.array_equal(res.sigma, results[0].sigma)


def test_bad_input_is_refused() -> None:
    lay = dict(asic_nx=8, asic_ny=8, nasics_x=2, nasics_y=2)
    p = Peakfinder8Params(**OM_PARAMS, **lay)
    r = np.ones((16, 16), np.float32)
    with pytest.raises(ValueError, match="layout"):
        Peakfinder8(p, np.ones((16, 17), np.float32))
    bad = r.copy()
    bad[3, 3] = -1
    with pytest.raises(ValueError, match="radius"):
        Peakfinder8(p, bad)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="radius"):
        Peakfinder8(p, bad)
    with pytest.raises(ValueError, match="mask"):
        Peakfinder8(p, r, np.ones((4, 4), np.uint8))
    f = Peakfinder8(p, r)
    with pytest.raises(ValueError, match="frames"):
        f.find(np.zeros((16, 15), np.float32))
    with pytest.raises(ValueError, match="float32"):
        f.find(np.zeros((16, 16), np.float64))
    assert len(f.find(np.zeros((0, 16, 16), np.float32))) == 0


def _psana_ring_stats(
    frame: np.ndarray, mask: np.ndarray | None, r: np.ndarray, p: dict
) -> tuple[np.ndarray, np.ndarray]:
    """psana's compute_radial_stats and its five passes, in numpy: each ring's float32 sums
    taken strictly in row-major order (np.cumsum is sequential), to check the finder's ring
    statistics bit for bit on any path it takes."""
    f32 = np.float32
    bins = np.rint(r).astype(np.int64).ravel()
    good = np.ones(bins.size, bool) if mask is None else mask.ravel() != 0
    order = np.argsort(bins, kind="stable")
    order = order[good[order]]
    vals = frame.ravel().astype(f32)[order]
    b = bins[order]
    nb = int(np.ceil(r.max())) + 1
    starts = np.searchsorted(b, np.arange(nb + 1))
    off = np.zeros(nb, f32)
    hi = np.full(nb, f32(1e9))
    lo = np.full(nb, f32(-1e9))
    snr, adc = f32(p["minimum_snr"]), f32(p["adc_threshold"])
    for _ in range(5):
        for k in range(nb):
            v = vals[starts[k] : starts[k + 1]]
            if v.size == 0:
                off[k], hi[k], lo[k] = 0, np.finfo(f32).max, np.finfo(f32).tiny
                continue
            inside = v[(v < hi[k]) & (v > lo[k])]
            if inside.size == 0:
                off[k], hi[k], lo[k] = 0, np.finfo(f32).max, np.finfo(f32).tiny
                continue
            s = np.cumsum(inside, dtype=f32)[-1]
            q = np.cumsum(inside * inside, dtype=f32)[-1]
            n = f32(inside.size)
            o = f32(s / n)
            sig = f32(f32(q / n) - f32(o * o))
            if sig >= 0:
                sig = np.sqrt(sig, dtype=f32)
            up = f32(o + f32(snr * sig))
            off[k], hi[k], lo[k] = o, (adc if up < adc else up), f32(o - f32(snr * sig))
    return off, hi


def _photon_frame(r: np.ndarray, seed: int, spots: int = 80) -> np.ndarray:
    """Photon counts as a calibrated SFX frame has them: sparse Poisson background (0.08 per
    pixel) and Bragg spots of tens to hundreds of photons, some above the finder's histogram
    (64) so they take its list of large values."""
    rng = np.random.default_rng(seed)
    img = rng.poisson(0.08, r.shape).astype(np.float64)
    yy, xx = np.mgrid[-3:4, -3:4]
    for _ in range(spots):
        y, x = rng.integers(4, r.shape[0] - 4), rng.integers(4, r.shape[1] - 4)
        amp = rng.uniform(10, 300)
        img[y - 3 : y + 4, x - 3 : x + 4] += amp * np.exp(-(xx**2 + yy**2) / 1.5)
    return np.rint(img).astype(np.uint16)


DEMO_PF = dict(OM_PARAMS, adc_threshold=2.0, minimum_snr=5.0)


@needs_psana
@pytest.mark.parametrize("case", ["counts", "bright ring", "fractional adc"])
def test_photon_counts_equal_to_psana(case: str) -> None:
    """uint16/uint32 photon frames take the histogram path; a ring whose squared counts sum
    past 2^24 (float sums no longer exact) must fall back to the ordered path and still give
    psana's bits. Checked on the peaks and on every ring's offset and threshold, for every ISA."""
    r = radius_map("jungfrau4M")
    mask = _mask(r.shape, 7)
    frame = _photon_frame(r, seed=11)
    p = dict(DEMO_PF)
    if case == "bright ring":
        # A powder ring of ~100 photons per pixel: its squared counts sum past 2^24, so psana's
        # float sums round there, in its order; and one pixel of 5001 (5001^2 alone is past it)
        ring = np.rint(r) == 500
        frame[ring] = np.random.default_rng(5).poisson(100.0, int(ring.sum()))
        frame[1000, 300] = 5001
    if case == "fractional adc":
        p["adc_threshold"] = 2.5
    finder = Peakfinder8(Peakfinder8Params(**p, **JF4M), r, mask)
    ref = _psana(frame, mask, r, JF4M, p)
    assert len(ref.x) > 30
    ref_off, ref_thr = _psana_ring_stats(frame, mask, r, p)
    before = _core.isa()
    try:
        for isa in _core.available_isas():
            _core.set_isa(isa)
            for dt in (np.uint16, np.uint32, np.float32):
                ours = finder.find(frame.astype(dt), threads=1)
                _assert_same(ours.event(0), ref)
                off, thr = finder.ring_stats(frame.astype(dt))
                assert np.array_equal(off, ref_off), f"{isa} {dt.__name__}: ring offsets differ"
                assert np.array_equal(thr, ref_thr), f"{isa} {dt.__name__}: ring thresholds differ"
    finally:
        _core.set_isa(before)


def test_ring_stats_follow_psanas_float_order() -> None:
    """The ring statistics of float frames (the transposed path) against the numpy model of
    psana's passes, bit for bit; no psana needed."""
    lay = dict(asic_nx=64, asic_ny=64, nasics_x=2, nasics_y=4)
    yy, xx = np.mgrid[0:256, 0:128]
    r = np.hypot(xx - 64.2, yy - 120.9).astype(np.float32)
    mask = _mask(r.shape, 3)
    frames, _ = synthetic_frames(r, 1, peaks=30, noise=2.0, seed=4, asic=(64, 64))
    finder = Peakfinder8(Peakfinder8Params(**OM_PARAMS, **lay), r, mask)
    off, thr = finder.ring_stats(frames[0])
    ref_off, ref_thr = _psana_ring_stats(frames[0], mask, r, OM_PARAMS)
    assert np.array_equal(off, ref_off) and np.array_equal(thr, ref_thr)
