"""Event sources: synthetic SFX detectors, LCLStreamer's generic sources, HDF5/CXI files,
exp/run addressing, incomplete events and the plug-in registry."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import pytest
from epix_ref import epix_gain_conditions
from lclstream import registry as core_registry
from lclstream.config import load_config
from lclstream.errors import ConfigError, SourceError
from lclstream.protocols import EventSource, StreamTotals
from lclstream.sources import (
    SyntheticDetector,
    open_source,
    parse_source_identifier,
    register_source,
    resolve_source,
    unregister_source,
)
from lclstream.sources import registry as registry_mod

try:
    from lclstream import calib as lcalib
except ImportError:  # the calibration kernels live on another branch until merged
    lcalib = None  # type: ignore[assignment]

E = 9.5


@pytest.fixture(scope="module")
def jf1() -> SyntheticDetector:
    return SyntheticDetector(
        detector="jungfrau",
        seed=5,
        hit_fraction=0.5,
        pool_frames=4,
        keep_truth=True,
        peaks_per_hit=400,
    )


@pytest.fixture(scope="module")
def jf4m() -> SyntheticDetector:
    return SyntheticDetector(detector="jungfrau4M", seed=1, hit_fraction=0.1, keep_truth=True)


@pytest.fixture(scope="module")
def epix() -> SyntheticDetector:
    return SyntheticDetector(
        detector="epix10k2M",
        seed=2,
        hit_fraction=0.5,
        pool_frames=4,
        keep_truth=True,
        peaks_per_hit=400,
    )


def numpy_jungfrau_photons(raw: np.ndarray, c: dict[str, np.ndarray]) -> np.ndarray:
    """psana's formula with np.choose over the 3 gain stages (independent reference)."""
    gb = raw >> 14
    stage = np.choose(gb, [0, 1, 0, 2]).astype(np.intp)  # 2 is invalid -> 0 below
    adc = (raw & 0x3FFF).astype(np.float32)
    ped = np.choose(stage, c["pedestal"])
    gfac = np.float32(1) / np.choose(stage, c["gain"])
    kev = (adc - ped) * gfac * c["mask"].astype(np.float32)
    kev[gb == 2] = 0
    return np.maximum(0, np.rint(kev / np.float32(E)))


def numpy_epix_photons(raw: np.ndarray, c: dict[str, np.ndarray]) -> np.ndarray:
    cb = c["config_bits"].astype(np.int32) | (((raw >> 14) & 1).astype(np.int32) << 5)
    conds = epix_gain_conditions(cb)
    r = np.select(conds, list(range(7)), default=-1)
    assert (r >= 0).all()
    ped = np.choose(r, c["pedestal"])
    gfac = np.float32(1) / np.choose(r, c["gain"])
    kev = ((raw & 0x3FFF).astype(np.float32) - ped) * gfac * c["mask"]
    return np.maximum(0, np.rint(kev / np.float32(E)))


def first_hits(d: SyntheticDetector, n: int) -> list[int]:
    return [i for i in range(10_000) if d.is_hit(i)][:n]


# --------------------------------------------------------------------------- synthetic


def test_deterministic_from_seed() -> None:
    a = SyntheticDetector(detector="jungfrau", seed=11, pool_frames=3, hit_fraction=0.5)
    b = SyntheticDetector(detector="jungfrau", seed=11, pool_frames=3, hit_fraction=0.5)
    c = SyntheticDetector(detector="jungfrau", seed=12, pool_frames=3, hit_fraction=0.5)
    assert np.array_equal(a.pool, b.pool)
    assert np.array_equal(a.pedestal, b.pedestal) and np.array_equal(a.gain, b.gain)
    assert [a.frame_index(i) for i in range(200)] == [b.frame_index(i) for i in range(200)]
    assert not np.array_equal(a.pool, c.pool)
    assert [a.is_hit(i) for i in range(200)] != [c.is_hit(i) for i in range(200)]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_hit_fraction(fraction: float) -> None:
    d = SyntheticDetector(detector="jungfrau", hit_fraction=fraction, pool_frames=4, seed=3)
    hits = np.array([d.is_hit(i) for i in range(20_000)])
    assert abs(hits.mean() - fraction) < 0.012
    # hits use hit frames (with Bragg peaks), misses use miss frames
    for i in range(40):
        k = d.frame_index(i)
        assert (k < d._n_hit) == bool(hits[i])


def test_hits_have_peaks_misses_do_not(jf1: SyntheticDetector) -> None:
    hit = first_hits(jf1, 1)[0]
    miss = next(i for i in range(100) if not jf1.is_hit(i))
    assert jf1.truth(hit).max() > 50
    assert jf1.truth(miss).max() < 20  # background only


def test_shapes_dtypes_and_gain_bits(jf4m: SyntheticDetector, epix: SyntheticDetector) -> None:
    frame = jf4m.get_data(0)
    assert frame.shape == (8, 512, 1024) and frame.dtype == np.uint16
    info = jf4m.info()
    assert info.kind == "jungfrau" and info.frame_shape == (8, 512, 1024)
    assert info.photon_energy_keV == 9.5 and info.dtype == "uint16"
    bits = np.bincount((jf4m.pool >> 14).ravel(), minlength=4)
    assert bits[0] > 0.99 * bits.sum() and bits[1] > 0 and bits[3] > 0
    assert 0 < bits[2] < 0.001 * bits.sum()  # a few bad pixels with invalid gain bits
    c = jf4m.constants()
    assert c["pedestal"].shape == c["gain"].shape == (3, 8, 512, 1024)
    assert c["pedestal"].dtype == c["gain"].dtype == np.float32
    assert c["mask"].shape == (8, 512, 1024) and 0.999 < c["mask"].mean() < 1.0
    p = c["pedestal"]
    assert 1000 <= p[0].min() and p[0].max() <= 3000
    assert 14000 <= p[1:].min() and p[1:].max() <= 16000
    g = c["gain"]  # psana's signed convention: G1/G2 ADC falls with charge
    assert 35 < g[0].mean() < 45 and g[0].min() > 0
    assert -1.6 < g[1].mean() < -1.4 and g[1].max() < 0
    assert -0.11 < g[2].mean() < -0.09 and g[2].max() < 0
    e = epix.get_data(0)
    assert e.shape == (16, 352, 384) and e.dtype == np.uint16
    assert not (epix.pool & 0x8000).any()
    assert (epix.pool[: epix._n_hit] & 0x4000).any()  # gain switched on bright pixels
    ce = epix.constants()
    assert ce["pedestal"].shape == (7, 16, 352, 384) and ce["config_bits"].dtype == np.uint8


def test_pool_is_reused_read_only(jf1: SyntheticDetector) -> None:
    f0 = jf1.get_data(0)
    assert not f0.flags.writeable
    assert np.shares_memory(f0, jf1.pool)
    with pytest.raises(ValueError):
        f0[0, 0, 0] = 1


def _check_recovery(
    planted: np.ndarray, got: np.ndarray, raw: np.ndarray, mask: np.ndarray, stage2_bits: int
) -> None:
    expect = planted.astype(np.int64) * (mask != 0)
    got = got.astype(np.int64)
    exact = (raw >> 14) != stage2_bits
    assert np.array_equal(got[exact], expect[exact])
    assert np.abs(got - expect).max() <= 1  # the lowest gain stage cannot resolve 1 photon


def test_numpy_calibration_recovers_planted_photons_jungfrau(jf1: SyntheticDetector) -> None:
    c = jf1.constants()
    for i in first_hits(jf1, 2) + [next(i for i in range(50) if not jf1.is_hit(i))]:
        raw = jf1.get_data(i)
        got = numpy_jungfrau_photons(raw, c)
        _check_recovery(jf1.truth(i), got, raw, c["mask"], 3)
    assert ((jf1.pool >> 14) == 1).any()  # G1 pixels were exercised


def test_numpy_calibration_recovers_planted_photons_epix(epix: SyntheticDetector) -> None:
    c = epix.constants()
    for i in first_hits(epix, 2):
        raw = epix.get_data(i)
        got = numpy_epix_photons(raw, c)
        expect = epix.truth(i).astype(np.int64) * (c["mask"] != 0)
        hi = (raw & 0x4000) == 0
        assert np.array_equal(got[hi], expect[hi])
        assert np.abs(got - expect).max() <= 1


@pytest.mark.skipif(lcalib is None, reason="lclstream.calib not available on this branch")
def test_lclstream_calib_recovers_planted_photons(
    jf4m: SyntheticDetector, epix: SyntheticDetector
) -> None:
    c = jf4m.constants()
    cal = lcalib.Jungfrau(
        c["pedestal"],
        c["gain"],
        None,
        c["mask"],
        output="photons",
        photon_energy_keV=jf4m.info().photon_energy_keV,
    )
    for i in first_hits(jf4m, 2):
        raw = jf4m.get_data(i)
        got = cal(raw)
        assert got.dtype == np.uint16
        assert np.array_equal(got, numpy_jungfrau_photons(raw, c).astype(np.uint16))
        _check_recovery(jf4m.truth(i), got, raw, c["mask"], 3)
    ce = epix.constants()
    cal_e = lcalib.Epix10ka(
        ce["pedestal"],
        ce["gain"],
        ce["config_bits"],
        ce["mask"],
        output="photons",
        photon_energy_keV=E,
    )
    for i in first_hits(epix, 1):
        raw = epix.get_data(i)
        got = cal_e(raw)
        assert np.array_equal(got, numpy_epix_photons(raw, ce).astype(np.uint16))


# --------------------------------------------------------------------------- event sources


def test_internal_event_source_with_synthetic_detector() -> None:
    cfg = load_config(
        {
            "event_source": {
                "type": "InternalEventSource",
                "number_of_events_to_generate": 30,
                "first_event": 5,
            },
            "data_sources": {
                "detector_data": {
                    "type": "SyntheticDetector",
                    "detector": "jungfrau",
                    "pool_frames": 2,
                    "seed": 4,
                },
                "sid": {"type": "SourceIdentifier"},
            },
            "source_identifier": "exp=xpptut15,run=670",
        }
    )
    src = open_source(cfg)
    assert isinstance(src, EventSource)
    info = src.info()
    assert list(info) == ["detector_data"] and info["detector_data"].frame_shape == (1, 512, 1024)
    events = list(src.events())
    assert [e.event_id for e in events] == list(range(5, 35))
    ts = [e.timestamp for e in events]
    assert all(b - a == pytest.approx(1e9 / 120, abs=1) for a, b in zip(ts, ts[1:], strict=False))
    assert str(events[0].data["sid"]) == "exp=xpptut15,run=670"
    c = src.constants("detector_data")  # type: ignore[attr-defined]
    assert c["pedestal"].shape == (3, 1, 512, 1024)
    src.close()


def test_lclstreamer_generic_sources() -> None:
    src = open_source(
        Path(__file__).resolve().parent.parent / "examples" / "lclstreamer_generic.yaml"
    )
    events = list(src.events())
    assert len(events) == 50
    d = events[3].data
    assert d["random"].shape == (16, 8) and d["random"].dtype == np.float32
    assert 0 <= d["random"].min() and d["random"].max() < 1
    assert d["counter"] == 7 and d["energy"] == 9.5
    cfg = load_config(
        {
            "data_sources": {
                "r": {
                    "type": "GenericRandomNumpyArray",
                    "array_shape": "4,3",
                    "array_dtype": "uint8",
                }
            },
            "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 3},
        }
    )
    r = next(iter(open_source(cfg).events())).data["r"]
    assert r.shape == (4, 3) and r.dtype == np.uint8 and r.max() < 255
    bad = load_config(
        {"data_sources": {"r": {"type": "GenericRandomNumpyArray", "array_shape": "4,x"}}}
    )
    with pytest.raises(SourceError, match=r"data_sources.r.array_shape: '4,x'"):
        open_source(bad)


def test_psana_types_explain_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(
        {
            "source_identifier": "files=/nowhere.xtc2",
            "event_source": {"type": "Psana2EventSource"},
            "data_sources": {"d": {"type": "Psana2DetectorInterface", "psana_name": "jungfrau"}},
        }
    )
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "psana", None)  # as on a machine without the psana extra
        with pytest.raises(SourceError, match="Psana2EventSource needs psana"):
            open_source(cfg)
    cfg = load_config({"data_sources": {"d": {"type": "Psana1Timestamp"}}})
    with pytest.raises(SourceError, match=r"data_sources.d: Psana1Timestamp: LCLS-I psana"):
        open_source(cfg)
    cfg = load_config({"data_sources": {"d": {"type": "Psana2Timestamp"}}})
    with pytest.raises(SourceError, match=r"Psana2Timestamp needs event_source type Psana2Ev"):
        open_source(cfg)


def test_registered_and_entry_point_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    def factory(config: Any, totals: Any, **kw: int) -> Any:
        made.append(config.source_identifier)
        return SimpleNamespace(info=dict, events=lambda: iter(()), close=lambda: None)

    ep = SimpleNamespace(name="Psana2EventSource", value="plugin:factory", load=lambda: factory)
    monkeypatch.setattr(core_registry, "entry_points", lambda group: [ep])
    cfg = load_config(
        {
            "source_identifier": "exp=a,run=1",
            "event_source": {"type": "Psana2EventSource"},
            "data_sources": {},
        }
    )
    src = open_source(cfg)
    assert made == ["exp=a,run=1"] and list(src.events()) == []
    assert "Psana2EventSource" in registry_mod.source_types()
    monkeypatch.setattr(core_registry, "entry_points", lambda group: [])
    register_source("InternalEventSource", factory)
    try:
        open_source(load_config({}))
        assert len(made) == 2
    finally:
        unregister_source("InternalEventSource")
    with pytest.raises(ConfigError, match="did you mean 'InternalEventSource'"):
        registry_mod.get_source_factory("InternalEvntSource")


# --------------------------------------------------------------------------- HDF5 files


def write_cxi(
    path: Path,
    frames: np.ndarray,
    *,
    first_id: int = 0,
    compress: bool = False,
    energy_ev: float | None = 9500.0,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    with h5py.File(path, "w") as f:
        kw: dict[str, Any] = {"chunks": (1, *frames.shape[1:])}
        if compress:
            kw.update(hdf5plugin.Bitshuffle(cname="lz4"))
        f.create_dataset("/entry_1/data_1/data", data=frames, **kw)
        n = frames.shape[0]
        f.create_dataset(
            "/LCLS/eventNumber", data=np.arange(first_id, first_id + n, dtype=np.uint64)
        )
        f.create_dataset("/LCLS/timestamp", data=np.arange(n, dtype=np.uint64) * 1000 + 7)
        if energy_ev is not None:
            f.create_dataset("/LCLS/photon_energy_eV", data=np.full(n, energy_ev))
        for k, v in (extra or {}).items():
            f.create_dataset(k, data=v)


def hdf5_config(files: list[str], **kw: Any) -> Any:
    es = {"type": "Hdf5EventSource", "files": files, "chunk_events": 3}
    es.update(kw.pop("event_source", {}))
    cfg = {
        "event_source": es,
        "data_sources": kw.pop(
            "data_sources", {"detector_data": {"type": "Hdf5Dataset", "kind": "jungfrau"}}
        ),
    }
    cfg.update(kw)
    return load_config(cfg)


def test_hdf5_source_reads_several_files_chunkwise(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 60000, (7, 2, 6, 5), dtype=np.uint16)
    b = rng.integers(0, 60000, (4, 2, 6, 5), dtype=np.uint16)
    write_cxi(tmp_path / "r_000.h5", a, first_id=100)
    write_cxi(tmp_path / "r_001.h5", b, first_id=200, compress=True)  # filter 32008
    with h5py.File(tmp_path / "r_001.h5") as f:
        assert "32008" in f["/entry_1/data_1/data"]._filters
    src = open_source(hdf5_config([str(tmp_path / "r_*.h5")]))
    info = src.info()["detector_data"]
    assert info.frame_shape == (2, 6, 5) and info.dtype == "uint16"
    assert info.photon_energy_keV == pytest.approx(9.5) and info.kind == "jungfrau"
    seen = []
    for ev in src.events():
        seen.append((ev.event_id, ev.timestamp, ev.data["detector_data"].copy()))
    assert [s[0] for s in seen] == list(range(100, 107)) + list(range(200, 204))
    assert seen[8][1] == 1007
    assert np.array_equal(np.stack([s[2] for s in seen]), np.concatenate([a, b]))
    src.close()


def test_hdf5_views_stay_valid_for_a_chunk(tmp_path: Path) -> None:
    frames = np.arange(10 * 4, dtype=np.float32).reshape(10, 2, 2)
    write_cxi(tmp_path / "x.h5", frames)
    src = open_source(hdf5_config([str(tmp_path / "x.h5")]))
    held = list(enumerate(src.events()))
    valid = src.views_valid_for  # type: ignore[attr-defined]
    assert valid == 3
    # the last `valid` events are still intact after the source finished
    for i, ev in held[-valid:]:
        assert np.array_equal(ev.data["detector_data"], frames[i])


def test_hdf5_first_and_number_of_events(tmp_path: Path) -> None:
    write_cxi(tmp_path / "a.h5", np.arange(5, dtype=np.int32).reshape(5, 1))
    write_cxi(tmp_path / "b.h5", np.arange(5, 10, dtype=np.int32).reshape(5, 1), first_id=5)
    cfg = hdf5_config(
        [str(tmp_path / "a.h5"), str(tmp_path / "b.h5")],
        event_source={"first_event": 3, "number_of_events": 4},
    )
    got = [int(ev.data["detector_data"][0]) for ev in open_source(cfg).events()]
    assert got == [3, 4, 5, 6]


def test_hdf5_incomplete_events(tmp_path: Path) -> None:
    write_cxi(
        tmp_path / "a.h5",
        np.zeros((6, 2), np.uint16),
        extra={"/entry_1/energy": np.arange(4, dtype=np.float64)},
    )
    ds = {
        "detector_data": {"type": "Hdf5Dataset"},
        "energy": {"type": "Hdf5Dataset", "path": "/entry_1/energy"},
    }
    totals = StreamTotals()
    cfg = hdf5_config([str(tmp_path / "a.h5")], data_sources=ds, skip_incomplete_events=True)
    events = list(open_source(cfg, totals=totals).events())
    assert [e.event_id for e in events] == [0, 1, 2, 3]
    assert totals.events_dropped == 2
    assert totals.drop_reasons == {"incomplete: energy missing": 2}
    cfg = hdf5_config([str(tmp_path / "a.h5")], data_sources=ds, skip_incomplete_events=False)
    with pytest.raises(SourceError, match=r"event 4: data source 'energy' has no data"):
        list(open_source(cfg).events())


def test_hdf5_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.h5: no such file"):
        open_source(hdf5_config([str(tmp_path / "nope.h5")]))
    with pytest.raises(SourceError, match=r"no file matches .*/\*\.cxi"):
        open_source(hdf5_config([str(tmp_path / "*.cxi")]))
    write_cxi(tmp_path / "a.h5", np.zeros((3, 4, 4), np.uint16))
    cfg = hdf5_config(
        [str(tmp_path / "a.h5")],
        data_sources={"d": {"type": "Hdf5Dataset", "path": "/entry_1/data_2/data"}},
    )
    with pytest.raises(SourceError) as e:
        open_source(cfg)
    msg = str(e.value)
    assert str(tmp_path / "a.h5") in msg and "/entry_1/data_2/data" in msg
    assert "/entry_1/data_1/data" in msg  # lists what is there
    write_cxi(tmp_path / "b.h5", np.zeros((3, 4, 5), np.uint16))
    with pytest.raises(SourceError, match=r"b\.h5:/entry_1/data_1/data: frames of shape \(4, 5\)"):
        open_source(hdf5_config([str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(SourceError, match=r"junk\.h5: cannot open as HDF5"):
        open_source(hdf5_config([str(tmp_path / "junk.h5")]))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["/entry_1/data_1/data"] = 3.0
    with pytest.raises(SourceError, match="a scalar, not one entry per event"):
        open_source(hdf5_config([str(tmp_path / "s.h5")]))


# --------------------------------------------------------------------------- addressing


def test_parse_source_identifier() -> None:
    a = parse_source_identifier("exp=xpptut15,run=670")
    assert (a.exp, a.runs, a.is_demo) == ("xpptut15", [670], True)
    a = parse_source_identifier("exp=mfx100903824:run=27:smd")
    assert (a.exp, a.runs, a.flags) == ("mfx100903824", [27], ["smd"])
    assert parse_source_identifier("exp=x,run=3,5-7").runs == [3, 5, 6, 7]
    a = parse_source_identifier("files=/d/a.h5,/d/b.h5")
    assert a.files == ["/d/a.h5", "/d/b.h5"] and a.exp is None
    assert parse_source_identifier("exp=x,run=2,dir=/data/x").dir == "/data/x"
    with pytest.raises(SourceError, match="run 'abc' is not a run number"):
        parse_source_identifier("exp=x,run=abc")


def test_resolve_run_under_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "mfxabc" / "run0012"
    run.mkdir(parents=True)
    write_cxi(run / "part1.h5", np.ones((2, 3), np.uint16))
    write_cxi(run / "part0.h5", np.zeros((2, 3), np.uint16))
    r = resolve_source("exp=mfxabc,run=12", tmp_path)
    assert r.kind == "files" and [p.name for p in r.files] == ["part0.h5", "part1.h5"]
    assert resolve_source(f"exp=mfxabc,run=12,dir={tmp_path / 'mfxabc'}").files == r.files
    with pytest.raises(SourceError, match=r"no data files in .*run0013"):
        resolve_source("exp=mfxabc,run=13", tmp_path)
    with pytest.raises(SourceError, match="no data root"):
        resolve_source("exp=mfxabc,run=12", None)
    # through a config: data_root from the environment
    monkeypatch.setenv("LCLSTREAM_DATA_ROOT", str(tmp_path))
    cfg = load_config(
        {
            "source_identifier": "exp=mfxabc,run=12",
            "event_source": {"type": "Hdf5EventSource"},
            "data_sources": {"detector_data": {"type": "Hdf5Dataset"}},
        }
    )
    got = [ev.data["detector_data"].copy() for ev in open_source(cfg).events()]
    assert np.array_equal(np.stack(got), np.array([[0, 0, 0]] * 2 + [[1, 1, 1]] * 2))


def test_demo_run_needs_no_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LCLSTREAM_DATA_ROOT", raising=False)
    assert resolve_source("exp=xpptut15,run=670").kind == "synthetic"
    cfg = load_config(
        {
            "source_identifier": "exp=xpptut15,run=670",
            "event_source": {"type": "Hdf5EventSource", "number_of_events": 3},
            "data_sources": {"detector_data": {"type": "Hdf5Dataset"}},
        }
    )
    src = open_source(cfg)
    assert src.info()["detector_data"].frame_shape == (8, 512, 1024)
    assert len(list(src.events())) == 3


def test_workers_share_every_event_once(tmp_path: Path) -> None:
    cfg = load_config(
        {
            "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 11},
            "data_sources": {"v": {"type": "IntValue", "value": 1}},
        }
    )
    ids = [[e.event_id for e in open_source(cfg, worker=w, workers=3).events()] for w in range(3)]
    assert sorted(sum(ids, [])) == list(range(11)) and all(ids)
    write_cxi(tmp_path / "a.h5", np.arange(10, dtype=np.int32).reshape(10, 1))
    write_cxi(tmp_path / "b.h5", np.arange(10, 17, dtype=np.int32).reshape(7, 1), first_id=10)
    h = hdf5_config([str(tmp_path / "a.h5"), str(tmp_path / "b.h5")])
    got = []
    for w in range(2):
        for ev in open_source(h, worker=w, workers=2).events():
            assert int(ev.data["detector_data"][0]) == ev.event_id
            got.append(ev.event_id)
    assert sorted(got) == list(range(17))
    with pytest.raises(SourceError, match="worker 2 is not within 0..1"):
        open_source(cfg, worker=2, workers=2)


def test_reads_files_lclstream_wrote(tmp_path: Path) -> None:
    formats = pytest.importorskip("lclstream.formats")
    from lclstream.protocols import EventBatch, StreamInfo

    d = SyntheticDetector(detector="jungfrau", seed=9, pool_frames=2, hit_fraction=0.5)
    frames = np.stack([d.get_data(i) for i in range(7)])
    ser = formats.make_serializer("HDF5BinarySerializer", compression="bitshuffle_with_lz4")
    info = StreamInfo(stream_id="t", detectors={"detector_data": d.info()})
    ser.start(info)
    written = []
    for k, (lo, hi) in enumerate([(0, 4), (4, 7)]):
        batch = EventBatch(
            event_ids=np.arange(lo, hi, dtype=np.uint64) + 1000,
            timestamps=np.array([d.timestamp(i) for i in range(lo, hi)], np.uint64),
            arrays={"detector_data": frames[lo:hi]},
        )
        for msg in ser.serialize(batch):
            path = tmp_path / f"msg_{k:03d}.h5"
            path.write_bytes(bytes(msg[-1]))
            written.append(path)
    for msg in ser.end(StreamTotals(events_sent=7, messages_sent=2)):
        (tmp_path / "msg_999.h5").write_bytes(bytes(msg[-1]))
    with h5py.File(written[0]) as f:
        assert "32008" in f["/entry_1/data_1/data"]._filters
    src = open_source(hdf5_config([str(tmp_path / "msg_*.h5")]))
    got_info = src.info()["detector_data"]
    assert got_info.photon_energy_keV == pytest.approx(9.5)
    assert got_info.pixel_size_m == pytest.approx(75e-6)
    assert got_info.detector_distance_m == pytest.approx(0.1)
    assert got_info.beam_center_px == pytest.approx(d.info().beam_center_px)
    got = [(ev.event_id, ev.timestamp, ev.data["detector_data"].copy()) for ev in src.events()]
    assert [g[0] for g in got] == list(range(1000, 1007))
    assert [g[1] for g in got] == [d.timestamp(i) for i in range(7)]
    assert np.array_equal(np.stack([g[2] for g in got]), frames)


@pytest.mark.parametrize("layout", ["bslz4", "bszstd", "two_per_chunk", "gzip"])
def test_hdf5_compressed_layouts(tmp_path: Path, layout: str) -> None:
    """One event per bitshuffle chunk is decoded by lclstream's codec; anything else by HDF5."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 3, (5, 2, 64, 32), dtype=np.uint16)
    kw: dict[str, Any] = {"chunks": (1, 2, 64, 32)}
    if layout == "bslz4":
        kw.update(hdf5plugin.Bitshuffle(cname="lz4"))
    elif layout == "bszstd":
        kw.update(hdf5plugin.Bitshuffle(cname="zstd"))
    elif layout == "two_per_chunk":
        kw = {"chunks": (2, 2, 64, 32), **hdf5plugin.Bitshuffle(cname="lz4")}
    else:
        kw["compression"] = "gzip"
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("/entry_1/data_1/data", data=frames, **kw)
    src = open_source(hdf5_config([str(tmp_path / "c.h5")]))
    got = np.stack([ev.data["detector_data"].copy() for ev in src.events()])
    assert np.array_equal(got, frames)


def test_hdf5_corrupt_chunk_is_a_source_error(tmp_path: Path) -> None:
    frames = np.ones((3, 1, 64, 64), np.uint16)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        ds = f.create_dataset(
            "/entry_1/data_1/data",
            data=frames,
            chunks=(1, 1, 64, 64),
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        ds.id.write_direct_chunk((1, 0, 0, 0), b"\x00\x00\x00\x00\x00\x00\x20\x00garbage")
    with pytest.raises(SourceError, match=r"bad\.h5:/entry_1/data_1/data: cannot read events"):
        list(open_source(hdf5_config([str(tmp_path / "bad.h5")])).events())


def test_plugin_types_with_new_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plug-in may bring event/data source types the schema does not know by name."""
    from lclstream.errors import ConfigError

    monkeypatch.setattr(core_registry, "entry_points", lambda group: [])
    seen: list[Any] = []

    def factory(config: Any, totals: Any, **kw: int) -> Any:
        seen.append((config.event_source, config.data_sources["det"]))
        return SimpleNamespace(info=dict, events=lambda: iter(()), close=lambda: None)

    cfg = {
        "event_source": {"type": "XtcEventSource", "path": "/x", "shards": 4},
        "data_sources": {"det": {"type": "XtcDetector", "name": "jf"}},
    }
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert "event_source.type: 'XtcEventSource' is not allowed" in str(e.value)
    register_source("XtcEventSource", factory)
    registry_mod.register_data_source_type("XtcDetector")
    try:
        c = load_config(cfg)
        open_source(c)
        es, det = seen[0]
        assert es.type == "XtcEventSource" and es.model_extra == {"path": "/x", "shards": 4}
        assert det.type == "XtcDetector" and det.model_extra == {"name": "jf"}
        with pytest.raises(ConfigError) as e:
            load_config({"event_source": {"type": "XtcEvntSource"}})
        assert "did you mean 'XtcEventSource'?" in str(e.value)
        assert "XtcEventSource" in str(e.value).split("allowed: ")[1]
        # a plug-in data source cannot be read by the built-in in-process source
        with pytest.raises(SourceError, match="XtcDetector is not available"):
            open_source(load_config({"data_sources": {"det": {"type": "XtcDetector"}}}))
    finally:
        unregister_source("XtcEventSource")
        registry_mod.unregister_data_source_type("XtcDetector")


def test_write_run_then_stream_it_by_exp_and_run(tmp_path: Path) -> None:
    from lclstream.sources.runs import write_run

    files = write_run(tmp_path, "mfxdemo", 7, events=5, events_per_file=2, detector="jungfrau")
    assert [p.name for p in files] == [f"mfxdemo_r0007_{i:03d}.h5" for i in range(3)]
    cfg = load_config(
        {
            "source_identifier": "exp=mfxdemo,run=7",
            "data_root": str(tmp_path),
            "event_source": {"type": "Hdf5EventSource"},
            "data_sources": {"detector_data": {"type": "Hdf5Dataset", "kind": "jungfrau"}},
        }
    )
    src = open_source(cfg)
    info = src.info()["detector_data"]
    assert info.frame_shape == (1, 512, 1024) and info.photon_energy_keV == pytest.approx(9.5)
    ref = SyntheticDetector(detector="jungfrau", seed=1, hit_fraction=0.1, pool_frames=4)
    for ev in src.events():
        assert np.array_equal(ev.data["detector_data"], ref.get_data(ev.event_id))
        assert ev.timestamp == ref.timestamp(ev.event_id)
