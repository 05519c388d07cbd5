"""Calibration kernels against numpy statements of psana's formulas, bit for bit, on every ISA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from epix_ref import epix_gain_conditions
from lclstream import Batch, _core, calib


@pytest.fixture(params=_core.available_isas())
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    saved = _core.isa()
    _core.set_isa(request.param)
    yield str(request.param)
    _core.set_isa(saved)


# ---- numpy references (psana: UtilsJungfrau.py, UtilsEpix10ka.py) -----------------------


def gfac_of(gain: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    g = np.zeros_like(gain, dtype=np.float32)
    np.divide(np.float32(1), gain, out=g, where=gain != 0)  # divide_protected
    if mask is not None:
        g = g * (mask != 0).astype(np.float32)
    return g


def jungfrau_ref(raw, ped, gain, offset=None, mask=None, output="keV"):
    gbits = raw >> 14
    data = (raw & 0x3FFF).astype(np.float32)
    poff = ped if offset is None else ped + offset
    if output == "adu":
        gfac = np.ones_like(gain) * (
            np.float32(1) if mask is None else (mask != 0).astype(np.float32)
        )
    else:
        gfac = gfac_of(gain, mask)
    idx = np.select([gbits == 0, gbits == 1, gbits == 3], [0, 1, 2], default=0)
    p = np.choose(idx, [poff[0], poff[1], poff[2]])
    f = np.choose(idx, [gfac[0], gfac[1], gfac[2]])
    out = (data - p) * f
    out[gbits == 2] = 0
    return out.astype(np.float32)


def photons_ref(kev: np.ndarray, energy: float, dtype) -> np.ndarray:
    q = np.rint(kev / np.float32(energy)).astype(np.float64)
    q = np.where(q > 0, q, 0.0)
    return np.minimum(q, np.iinfo(dtype).max).astype(dtype)


def make_jf(shape, seed=0, offset=True, mask=True):
    rng = np.random.default_rng(seed)
    ped = rng.uniform(1000, 3000, (3, *shape)).astype(np.float32)
    gain = np.stack(
        [
            rng.uniform(35, 45, shape),
            rng.uniform(-1.6, -1.4, shape),
            rng.uniform(-0.12, -0.08, shape),
        ]
    ).astype(np.float32)
    gain[rng.random(gain.shape) < 0.01] = 0  # gain == 0 pixels
    off = rng.uniform(-50, 50, (3, *shape)).astype(np.float32) if offset else None
    m = (rng.random(shape) > 0.05).astype(np.uint8) * rng.integers(1, 5, shape).astype(np.uint8)
    return ped, gain, off, (m if mask else None)


def make_raw(shape, seed=1, slow=0.05):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1 << 14, shape, dtype=np.uint16)  # many below pedestal: negatives
    code = np.where(rng.random(shape) < slow, rng.integers(0, 4, shape), 0).astype(np.uint16)
    return (data | (code << 14)).astype(np.uint16)


# ---- Jungfrau ----------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [(1, 512, 1024), (2, 7, 13)])
def test_jungfrau_kev_bit_exact(isa: str, frame: tuple[int, ...]) -> None:
    ped, gain, off, mask = make_jf(frame)
    raw = make_raw((3, *frame))
    want = jungfrau_ref(raw, ped, gain, off, mask)
    cal = calib.Jungfrau(ped, gain, off, mask, threads=2)
    got = cal(raw)
    assert got.dtype == np.float32 and got.shape == raw.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert cal.last_invalid == int(((raw >> 14) == 2).sum()) > 0
    assert (got < 0).any() and not np.isnan(got).any()
    # a single frame (no events axis) and one thread give the same bits
    one = calib.Jungfrau(ped, gain, off, mask, threads=1)(raw[1])
    np.testing.assert_array_equal(one.view(np.uint32), want[1].view(np.uint32))
    # photons through the same path (large outputs take the streaming-store loop)
    for dt in (np.uint16, np.uint32):
        ph = calib.Jungfrau(
            ped, gain, off, mask, threads=2, output="photons", photon_energy_keV=0.3, dtype=dt
        )(raw)
        np.testing.assert_array_equal(ph, photons_ref(want, 0.3, dt))


def test_jungfrau_every_stage_and_edge_pixel(isa: str) -> None:
    frame = (1, 4, 16)
    ped, gain, off, mask = make_jf(frame, seed=3)
    mask = np.ones(frame, np.uint8)
    mask[0, 0, 3] = 0
    gain[:, 0, 1, 5] = 0
    raw = np.empty((4, *frame), np.uint16)
    for code in range(4):
        raw[code] = (np.arange(64, dtype=np.uint16).reshape(frame) * 200) | (code << 14)
    got = calib.Jungfrau(ped, gain, off, mask)(raw)
    want = jungfrau_ref(raw, ped, gain, off, mask)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert (got[2] == 0).all()  # invalid gain bits
    assert (got[:, 0, 0, 3] == 0).all() and (got[:, 0, 1, 5] == 0).all()  # masked, gain 0


def test_jungfrau_adu(isa: str) -> None:
    frame = (1, 16, 33)
    ped, gain, off, mask = make_jf(frame, seed=5)
    raw = make_raw((2, *frame), slow=0.3)
    got = calib.Jungfrau(ped, gain, off, mask, output="adu")(raw)
    want = jungfrau_ref(raw, ped, gain, off, mask, output="adu")
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_jungfrau_photons_round_and_saturate(isa: str, dtype) -> None:
    frame = (1, 64, 129)
    ped, gain, off, mask = make_jf(frame, seed=7)
    gain[0] = 1.0  # 1 ADU/keV: halves of photons from half-integer pedestals
    ped[0] = np.round(ped[0] * 2) / 2
    raw = make_raw((2, *frame), slow=0.1)
    kev = jungfrau_ref(raw, ped, gain, off, mask)
    for energy in (9.5, 0.5, 1e-4):
        got = calib.Jungfrau(
            ped, gain, off, mask, output="photons", photon_energy_keV=energy, dtype=dtype
        )(raw)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, photons_ref(kev, energy, dtype))
    if dtype == np.uint16:
        assert (got == 65535).any()  # saturated at 1e-4 keV


def test_jungfrau_round_half_to_even() -> None:
    ped = np.zeros((3, 1, 1, 8), np.float32)
    gain = np.ones((3, 1, 1, 8), np.float32)
    raw = np.array([[[[1, 3, 5, 7, 9, 11, 0, 2]]]], np.uint16)
    got = calib.jungfrau(raw, pedestal=ped, gain=gain, output="photons", photon_energy_keV=2.0)
    np.testing.assert_array_equal(got.ravel(), [0, 2, 2, 4, 4, 6, 0, 1])


def test_out_into_batch_slot() -> None:
    frame = (1, 32, 64)
    ped, gain, off, mask = make_jf(frame)
    raw = make_raw((3, *frame))
    cal = calib.Jungfrau(ped, gain, off, mask, output="photons", photon_energy_keV=9.5)
    batch = Batch(3, frame, np.uint16)
    for i in range(3):
        slot = batch.slot()
        res = cal(raw[i], out=slot)
        assert res is slot
        batch.commit(i)
    want = photons_ref(jungfrau_ref(raw, ped, gain, off, mask), 9.5, np.uint16)
    np.testing.assert_array_equal(batch.data, want)


def test_out_and_input_misuse() -> None:
    frame = (1, 8, 16)
    ped, gain, off, mask = make_jf(frame)
    raw = make_raw((2, *frame))
    cal = calib.Jungfrau(ped, gain, off, mask)
    with pytest.raises(ValueError, match="out dtype uint16, expected float32"):
        cal(raw, out=np.empty(raw.shape, np.uint16))
    with pytest.raises(ValueError, match="out shape"):
        cal(raw, out=np.empty(raw.shape[1:], np.float32))
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        cal(raw, out=np.empty((2, 1, 16, 8), np.float32).transpose(0, 1, 3, 2))
    with pytest.raises(ValueError, match="raw dtype int32"):
        cal(raw.astype(np.int32))
    with pytest.raises(ValueError, match=r"raw shape \(2, 1, 8, 8\), expected \(1, 8, 16\)"):
        cal(raw[..., :8].copy())
    with pytest.raises(ValueError, match="C-contiguous"):
        cal(raw[..., ::2].repeat(2, axis=-1)[..., ::1].transpose(0, 1, 2, 3)[:, :, ::-1])
    with pytest.raises(ValueError, match="photon_energy_keV"):
        calib.Jungfrau(ped, gain, output="photons")
    with pytest.raises(ValueError, match="output must be"):
        calib.Jungfrau(ped, gain, output="electrons")
    with pytest.raises(ValueError, match="uint16 or uint32"):
        calib.Jungfrau(ped, gain, output="photons", photon_energy_keV=9.5, dtype=np.int8)
    with pytest.raises(ValueError, match=r"Jungfrau gain: shape \(3, 1, 8, 8\)"):
        calib.Jungfrau(ped, gain[..., :8])
    with pytest.raises(ValueError, match="Jungfrau pedestal"):
        calib.Jungfrau(ped[:2], gain[:2])
    with pytest.raises(ValueError, match="Jungfrau mask"):
        calib.Jungfrau(ped, gain, mask=np.ones((8, 16)))


def test_threads_agree() -> None:
    frame = (2, 64, 256)
    ped, gain, off, mask = make_jf(frame)
    raw = make_raw((5, *frame))
    a = calib.Jungfrau(ped, gain, off, mask, threads=1)(raw)
    b = calib.Jungfrau(ped, gain, off, mask, threads=0)(raw)
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


# ---- ePix10ka ----------------------------------------------------------------------------


def epix_ref(raw, ped, gain, cbits, mask):
    cb = (cbits & 0x1F) | ((raw & 0x4000) >> 9)
    conds = epix_gain_conditions(cb)
    gf = gfac_of(gain, None)
    factor = np.select(conds, list(gf), default=1).astype(np.float32)
    pedest = np.select(conds, list(ped), default=0).astype(np.float32)
    arrf = (raw & 0x3FFF).astype(np.float32) - pedest
    return (arrf * factor * (mask != 0).astype(np.float32)).astype(np.float32)


def test_epix10ka_kev_and_photons(isa: str) -> None:
    rng = np.random.default_rng(11)
    frame = (2, 35, 38)
    ped = rng.uniform(500, 2500, (7, *frame)).astype(np.float32)
    gain = (
        np.array([16.4, 5.466, 0.164, 16.4, 5.466, 0.164, 0.164], np.float32)[:, None, None, None]
        * rng.uniform(0.9, 1.1, (7, *frame)).astype(np.float32)
    ).astype(np.float32)
    gain[rng.random(gain.shape) < 0.01] = 0
    cbits = rng.integers(0, 256, frame).astype(np.uint8)  # includes no-match patterns
    mask = (rng.random(frame) > 0.1).astype(np.uint8)
    raw = rng.integers(0, 1 << 16, (3, *frame), dtype=np.uint16)  # bit 15 set too: unused
    want = epix_ref(raw, ped, gain, cbits, mask)
    got = calib.Epix10ka(ped, gain, cbits, mask, threads=2)(raw)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    ph = calib.epix10ka(
        raw,
        pedestal=ped,
        gain=gain,
        config_bits=cbits,
        mask=mask,
        output="photons",
        photon_energy_keV=8.0,
    )
    np.testing.assert_array_equal(ph, photons_ref(want, 8.0, np.uint16))


# ---- Generic -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32])
def test_generic_inputs(isa: str, dtype) -> None:
    rng = np.random.default_rng(2)
    frame = (33, 70)
    ped = rng.uniform(-100, 100, frame).astype(np.float32)
    gain = rng.uniform(0.5, 2, frame).astype(np.float32)
    gain[0, :5] = 0
    mask = rng.random(frame) > 0.1
    x = rng.integers(-2000 if dtype != np.uint16 else 0, 4000, (4, *frame)).astype(dtype)
    want = (x.astype(np.float32) - ped) * gfac_of(gain, mask)
    got = calib.Generic(ped, gain, mask)(x)
    np.testing.assert_array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32))
    ph = calib.Generic(ped, gain, mask, output="photons", photon_energy_keV=3.0, dtype="uint32")(x)
    np.testing.assert_array_equal(ph, photons_ref(want.astype(np.float32), 3.0, np.uint32))
    adu = calib.Generic(ped, None, mask, output="adu")(x)
    np.testing.assert_array_equal(adu, (x.astype(np.float32) - ped) * mask.astype(np.float32))


# ---- constants I/O -----------------------------------------------------------------------


def test_load_constants_all_sources(tmp_path: Path) -> None:
    shape = (2, 512, 1024)
    ped, gain, off, mask = make_jf(shape)
    # dict (psana names), .npz, folder of .npy, HDF5 nested datasets
    d = calib.load_constants(
        {"pedestals": ped, "pixel_gain": gain, "pixel_offset": off, "mask": mask}
    )
    assert d["pedestal"].dtype == np.float32 and d["mask"].dtype == np.uint8
    np.testing.assert_array_equal(d["mask"], mask != 0)
    np.savez(tmp_path / "c.npz", pedestal=ped, gain=gain.astype(np.float64))
    z = calib.load_constants(tmp_path / "c.npz", modules=2)
    np.testing.assert_array_equal(z["gain"], gain)
    folder = tmp_path / "dir"
    folder.mkdir()
    np.save(folder / "pedestal.npy", ped)
    np.save(folder / "gain.npy", gain)
    np.save(folder / "mask.npy", mask)
    f = calib.load_constants(folder)
    assert set(f) == {"pedestal", "gain", "mask"}
    with h5py.File(tmp_path / "c.h5", "w") as h:
        h["/cal/pedestal"] = ped
        h["/cal/gain"] = gain
        h["/cal/offset"] = off
    hh = calib.load_constants(tmp_path / "c.h5")
    np.testing.assert_array_equal(hh["offset"], off)
    raw = make_raw((1, *shape))
    got = calib.Jungfrau(**hh)(raw)
    np.testing.assert_array_equal(got, jungfrau_ref(raw, ped, gain, off))


def test_load_constants_errors(tmp_path: Path) -> None:
    ped = np.zeros((3, 1, 512, 1024), np.float32)
    np.savez(tmp_path / "bad.npz", pedestal=ped, gain=np.zeros((3, 1, 512, 512), np.float32))
    with pytest.raises(
        ValueError, match=r"bad.npz:gain: shape \(3, 1, 512, 512\), expected \(3, 1, 512, 1024\)"
    ):
        calib.load_constants(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="no 'gain'"):
        calib.load_constants({"pedestal": ped})
    with pytest.raises(ValueError, match="does not exist"):
        calib.load_constants(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="expected real numbers"):
        calib.load_constants({"pedestal": ped, "gain": ped.astype(np.complex64)})
    one = calib.load_constants(
        {"pedestal": ped[:, 0], "gain": ped[:, 0], "mask": np.ones((512, 1024))}
    )
    assert one["pedestal"].shape == (3, 1, 512, 1024) and one["mask"].shape == (1, 512, 1024)
    e = calib.load_constants(
        {
            "pedestals": np.zeros((7, 16, 352, 384)),
            "gain": np.ones((7, 16, 352, 384)),
            "cbits": np.zeros((16, 352, 384), np.uint8),
        },
        detector="epix10k2M",
    )
    assert e["config_bits"].shape == (16, 352, 384)


# ---- common mode -------------------------------------------------------------------------


def jungfrau_cm_ref(raw, ped, gain, off, mask, *, br, bc, thr, cormax, minpix, method):
    """psana's common_mode_rows idea per bank: median of G0, unmasked pixels below thr."""
    gbits = raw >> 14
    idx = np.select([gbits == 0, gbits == 1, gbits == 3], [0, 1, 2], default=0)
    poff = ped + off
    x = (raw & 0x3FFF).astype(np.float32) - np.choose(idx, [poff[0], poff[1], poff[2]])
    f = np.choose(idx, list(gfac_of(gain, mask)))
    g0 = gbits == 0
    cand_ok = g0 & (mask != 0)
    ev, mods, rows, cols = raw.shape
    for e in range(ev):
        for m in range(mods):
            for r0 in range(0, rows, br):
                for c0 in range(0, cols, bc):
                    sl = (e, m, slice(r0, r0 + br), slice(c0, c0 + bc))
                    xb = x[sl]
                    cand = xb[cand_ok[sl] & (xb < thr)]
                    if cand.size == 0 or cand.size < minpix:
                        continue
                    if method == "median":
                        cm = np.float32(np.median(cand))
                    else:
                        cm = np.float32(np.mean(cand.astype(np.float64)))
                    if abs(cm) < cormax and cm != 0:
                        xb[g0[sl]] -= cm
    out = (x * f).astype(np.float32)
    out[gbits == 2] = 0
    return out


@pytest.mark.parametrize(
    "bank,method,ties",
    [
        ((1, 64), "median", False),
        ((1, 64), "median", True),
        ((8, 32), "median", True),
        ((16, 64), "median", False),
        ((4, 16), "mean", False),
        ((1, 63), "median", False),
    ],
)
def test_jungfrau_common_mode(isa: str, bank: tuple[int, int], method: str, ties: bool) -> None:
    frame = (2, 16, 126) if bank[1] == 63 else (2, 16, 128)
    rng = np.random.default_rng(21)
    ped, gain, off, mask = make_jf(frame, seed=4)
    if ties:  # whole-ADU constants: many equal values among the candidates
        ped, off = np.round(ped), np.round(off)
    raw = np.rint(rng.normal(0, 3, (2, *frame)) + ped[0] + off[0]).astype(np.uint16)
    raw += rng.integers(0, 30, (2, *frame[:-1], 1), dtype=np.uint16)  # row-wise common mode
    raw[..., 3::17] += 400  # photons above the threshold
    raw[:, 1, 5:9, :] += 2000  # a bank whose median exceeds cormax: no correction
    raw[rng.random(raw.shape) < 0.02] |= np.uint16(1 << 14)  # some G1
    raw[0, 0, 0, :40] = 2 << 14  # invalid, reducing one bank's candidates below min_pixels
    spec = {
        "bank_rows": bank[0],
        "bank_cols": bank[1],
        "threshold": 100.0,
        "cormax": 50.0,
        "min_pixels": 30,
        "method": method,
    }
    want = jungfrau_cm_ref(
        raw,
        ped,
        gain,
        off,
        mask,
        br=bank[0],
        bc=bank[1],
        thr=100.0,
        cormax=50.0,
        minpix=30,
        method=method,
    )
    cal = calib.Jungfrau(ped, gain, off, mask, threads=2, common_mode=spec)
    got = cal(raw)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert cal.last_invalid == 40
    plain = calib.Jungfrau(ped, gain, off, mask)(raw)
    assert not np.array_equal(plain, got)  # the correction did something
    ph = calib.Jungfrau(
        ped, gain, off, mask, common_mode=spec, output="photons", photon_energy_keV=0.05
    )(raw)
    np.testing.assert_array_equal(ph, photons_ref(want, 0.05, np.uint16))


def test_common_mode_misuse() -> None:
    ped, gain, off, mask = make_jf((1, 16, 128))
    with pytest.raises(ValueError, match="do not tile"):
        calib.Jungfrau(ped, gain, common_mode={"bank_cols": 100})
    with pytest.raises(ValueError, match="unknown keys"):
        calib.Jungfrau(ped, gain, common_mode={"bank_colz": 64})
    with pytest.raises(ValueError, match="median"):
        calib.Jungfrau(ped, gain, common_mode={"method": "mode"})
    assert calib.Jungfrau(ped, gain, common_mode=True)(make_raw((1, 16, 128))).shape == (1, 16, 128)


# ---- reduction helpers -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize(
    "threshold", [-1, 0, 1, 2.5, 65535, 65535.5, 65536, 70000, 4294967295, 4294967295.5, 1e12]
)
def test_zero_below_integer_limits(dtype: type, threshold: float) -> None:
    """Thresholds at and past the dtype's largest value: same pixels and count as numpy."""
    rng = np.random.default_rng(11)
    top = np.iinfo(dtype).max
    a = rng.integers(0, top, (3, 16, 16), dtype=dtype, endpoint=True)
    a.flat[:5] = top
    a.flat[5:9] = 0
    below = a < threshold
    want = np.where(below, 0, a).astype(dtype)
    n = calib.zero_below(a, threshold)
    np.testing.assert_array_equal(a, want)
    assert n == int(below.sum())


def test_zero_below() -> None:
    rng = np.random.default_rng(5)
    f = rng.normal(0, 2, (3, 40, 50)).astype(np.float32)
    f[0, 0, 0] = np.nan
    want = np.where(f < 1.5, np.float32(0), f)
    n = calib.zero_below(f, 1.5, threads=2)
    np.testing.assert_array_equal(f, want)
    assert n == int((want == 0).sum())
    u = rng.integers(0, 10, (2, 30, 30), dtype=np.uint16)
    want_u = np.where(u < 2.5, 0, u)
    calib.zero_below(u, 2.5)
    np.testing.assert_array_equal(u, want_u)
    w = rng.integers(0, 1 << 20, 1000, dtype=np.uint32).reshape(10, 100)
    calib.zero_below(w, 1e12)
    assert not w.any()
    with pytest.raises(ValueError, match="float32, uint16 or uint32"):
        calib.zero_below(np.ones((4, 4), np.int8), 1)


def test_crop_and_bin() -> None:
    rng = np.random.default_rng(6)
    x = rng.integers(0, 65535, (3, 2, 64, 96), dtype=np.uint16)
    c = calib.crop(x, (5, 37), (10, 90), threads=2)
    np.testing.assert_array_equal(c, x[..., 5:37, 10:90])
    with pytest.raises(ValueError, match="outside"):
        calib.crop(x, (5, 70), (0, 10))
    b = calib.bin_pixels(x, 4, 8)
    assert b.dtype == np.uint32
    np.testing.assert_array_equal(
        b, x.reshape(3, 2, 16, 4, 12, 8).sum(axis=(3, 5), dtype=np.uint32)
    )
    f = rng.integers(-100, 100, (2, 32, 32)).astype(np.float32)  # exact sums in float32
    np.testing.assert_array_equal(
        calib.bin_pixels(f, 2), f.reshape(2, 16, 2, 16, 2).sum(axis=(2, 4))
    )
    sat = np.full((1, 2, 2), 0xFFFFFFFF, np.uint32)
    assert calib.bin_pixels(sat, 2)[0, 0, 0] == 0xFFFFFFFF
    with pytest.raises(ValueError, match="do not tile"):
        calib.bin_pixels(x, 5)


def test_epix10ka_common_mode(isa: str) -> None:
    """Banks of 176 x 48 (here 8 x 16): high/medium-gain pixels are candidates and corrected."""
    rng = np.random.default_rng(12)
    frame = (2, 16, 32)
    ped = np.round(rng.uniform(500, 2500, (7, *frame))).astype(np.float32)
    gain = np.array([16.4, 5.466, 0.164, 16.4, 5.466, 0.164, 0.164], np.float32)[
        :, None, None, None
    ] * np.ones((7, *frame), np.float32)
    cbits = rng.choice(np.array([28, 12, 8, 16, 0, 48, 32, 4], np.uint8), size=frame)
    mask = (rng.random(frame) > 0.1).astype(np.uint8)
    raw = np.empty((2, *frame), np.uint16)
    for e in range(2):
        noise = rng.normal(0, 2, frame) + rng.integers(0, 20, (2, 1, 1))
        b14 = rng.random(frame) < 0.3
        cb = (cbits & 0x1F) | np.where(b14, 32, 0)
        conds = epix_gain_conditions(cb)
        pd = np.select(conds, list(ped), default=0)
        raw[e] = np.clip(np.rint(pd + noise), 0, 0x3FFF).astype(np.uint16) | np.where(
            b14, 0x4000, 0
        )
    # reference: ADU, per-bank median of eligible unmasked pixels below threshold
    cb = (cbits & 0x1F) | ((raw & 0x4000) >> 9)
    conds = epix_gain_conditions(cb)
    rng_idx = np.select(conds, [0, 1, 2, 3, 4, 5, 6], default=-1)
    eligible = np.isin(rng_idx, [0, 1, 3, 4])
    factor = np.select(conds, list(gfac_of(gain, None)), default=1).astype(np.float32)
    x = (raw & 0x3FFF).astype(np.float32) - np.select(conds, list(ped), default=0).astype(
        np.float32
    )
    cand_ok = eligible & (mask != 0)
    for e in range(2):
        for m in range(2):
            for r0 in range(0, 16, 8):
                for c0 in range(0, 32, 16):
                    sl = (e, m, slice(r0, r0 + 8), slice(c0, c0 + 16))
                    cand = x[sl][cand_ok[sl] & (x[sl] < 50)]
                    if cand.size >= 5:
                        cm = np.float32(np.median(cand))
                        if abs(cm) < 40 and cm != 0:
                            x[sl][eligible[sl]] -= cm
    want = (x * factor * (mask != 0).astype(np.float32)).astype(np.float32)
    spec = {"bank_rows": 8, "bank_cols": 16, "threshold": 50.0, "cormax": 40.0, "min_pixels": 5}
    got = calib.Epix10ka(ped, gain, cbits, mask, common_mode=spec)(raw)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert not np.array_equal(got, calib.Epix10ka(ped, gain, cbits, mask)(raw))


def test_make_calibrator(tmp_path: Path) -> None:
    frame = (1, 512, 1024)
    ped, gain, off, mask = make_jf(frame)
    np.savez(tmp_path / "jf.npz", pedestal=ped, gain=gain, offset=off, mask=mask)
    cal = calib.make_calibrator(
        "jungfrau4M", tmp_path / "jf.npz", output="photons", photon_energy_keV=9.5
    )
    assert isinstance(cal, calib.Jungfrau) and cal.dtype == np.uint16
    raw = make_raw((1, *frame))
    np.testing.assert_array_equal(
        cal(raw), photons_ref(jungfrau_ref(raw, ped, gain, off, mask), 9.5, np.uint16)
    )
    g = calib.make_calibrator("generic", {"pedestal": ped[0, 0], "gain": gain[0, 0]})
    assert isinstance(g, calib.Generic) and g.frame_shape == (512, 1024)
    with pytest.raises(ValueError, match="unknown detector"):
        calib.make_calibrator("pilatus", {})


@pytest.mark.parametrize("dt", [np.float32, np.uint16, np.uint32])
def test_jungfrau_streaming_into_misaligned_out(isa: str, dt: type) -> None:
    """Outputs of 1 MiB or more take the streaming-store loop, which first steps to a 64-byte
    line edge lane by lane, then writes whole lines; an `out` one element off a line edge and
    a pixel count that is no multiple of 16 or 32 exercise the head and the tail."""
    frame = (1, 509, 1031)
    ped, gain, off, mask = make_jf(frame, seed=11)
    raw = make_raw((3, *frame), seed=12)
    want = jungfrau_ref(raw, ped, gain, off, mask)
    if dt is not np.float32:
        want = photons_ref(want, 0.3, dt)
    buf = np.zeros(raw.size + 1, dt)
    out = buf[1:].reshape(raw.shape)
    assert out.ctypes.data % 64 != 0
    kw: dict[str, object] = {} if dt is np.float32 else {"output": "photons", "dtype": dt}
    if dt is not np.float32:
        kw["photon_energy_keV"] = 0.3
    cal = calib.Jungfrau(ped, gain, off, mask, threads=1, **kw)  # type: ignore[arg-type]
    got = cal(raw, out)
    assert got.ctypes.data == out.ctypes.data
    np.testing.assert_array_equal(out.view(np.uint8), want.view(np.uint8))
    assert buf[0] == 0


# ---- a batch of separate frames at once ----------------------------------------------------


@pytest.mark.parametrize("output", ["keV", "photons", "photons-u32"])
def test_calibrate_frames_equals_frame_by_frame(isa: str, output: str) -> None:
    """Frames that lie apart, calibrated in one call (pixel blocks outer, frames inner: the
    constants read once), give the bits of calibrating them one by one; Jungfrau with every
    gain stage and invalid codes, ePix10ka with its configuration bits, and frames larger
    than one pixel block with a ragged last one."""
    shape = (2, 150, 140)  # 42000 pixels: two 16 Ki blocks and a ragged third
    ped, gain, off, mask = make_jf(shape, seed=4)
    kw: dict = {"output": output.split("-")[0]}
    if output.startswith("photons"):
        kw.update(photon_energy_keV=2.0, dtype="uint32" if output.endswith("u32") else "uint16")
    rng = np.random.default_rng(9)
    cbits = rng.integers(0, 256, shape).astype(np.uint8)
    epix_ped = rng.uniform(500, 2500, (7, *shape)).astype(np.float32)
    epix_gain = rng.uniform(0.1, 20, (7, *shape)).astype(np.float32)
    for cal in (
        calib.Jungfrau(ped, gain, off, mask, threads=2, **kw),
        calib.Epix10ka(epix_ped, epix_gain, cbits, mask, threads=2, **kw),
    ):
        raws = [make_raw(shape, seed=s) for s in range(5)]  # five separate arrays
        want = np.empty((len(raws), *shape), cal.dtype)
        invalid = 0
        for i, r in enumerate(raws):
            cal(r, out=want[i])
            invalid += cal.last_invalid
        assert invalid > 0 or isinstance(cal, calib.Epix10ka)  # Jungfrau: code 0b10 occurs
        got = np.empty_like(want)
        cal.calibrate_frames(raws, got)
        np.testing.assert_array_equal(
            got.view(np.uint32 if got.itemsize == 4 else np.uint16),
            want.view(np.uint32 if want.itemsize == 4 else np.uint16),
        )
        assert cal.last_invalid == invalid


def test_calibrate_frames_misuse() -> None:
    shape = (1, 8, 16)
    ped, gain, off, mask = make_jf(shape)
    cal = calib.Jungfrau(ped, gain, off, mask)
    raws = [make_raw(shape, seed=s) for s in range(3)]
    with pytest.raises(ValueError, match="out must be"):
        cal.calibrate_frames(raws, np.empty((2, *shape), np.float32))
    with pytest.raises(ValueError, match="raw shape"):
        cal.calibrate_frames([*raws, make_raw((2, 8, 16))], np.empty((4, *shape), np.float32))
    with pytest.raises(ValueError, match="raw dtype"):
        cal.calibrate_frames([raws[0].astype(np.int32)], np.empty((1, *shape), np.float32))
    cm = calib.Jungfrau(ped, gain, off, mask, common_mode={"bank_cols": 16})
    assert cm.has_common_mode and not cal.has_common_mode
    with pytest.raises(ValueError, match="common mode"):
        cm.calibrate_frames(raws, np.empty((3, *shape), np.float32))
