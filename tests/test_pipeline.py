"""The pipeline: real sources, calibration, codecs, serializers and handlers wired together.

References are independent: photon counts are checked against the numpy formula from
DESIGN.md (and bit-exactly against a direct call of the calibration kernel), reductions
against numpy slicing/summing, messages are opened with the format parsers, totals against
what went in. Detectors are small (one Jungfrau module) to keep this file fast.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from lclstream import calib, formats
from lclstream.config import load_config
from lclstream.errors import ConfigError, SourceError, TransportError
from lclstream.handlers import (
    BinaryFileWritingDataHandler,
    InProcessDataHandler,
    create_handler,
)
from lclstream.pipeline import Pipeline, PipelineError, PipelineFailed, Reduction
from lclstream.protocols import DetectorInfo, Event, Message, ParsedMessage, StreamInfo
from lclstream.registry import HANDLERS
from lclstream.sources import open_source
from proc_helpers import photon_calibrator, synthetic_jungfrau

ENERGY = 9.5


def jf_config(events: int = 12, **pp: Any) -> dict[str, Any]:
    """One-module synthetic Jungfrau -> photons -> bslz4 HDF5 (no handlers: tests add them)."""
    processing: dict[str, Any] = {
        "type": "BatchProcessingPipeline",
        "batch_size": 5,
        "calibration": {
            "detector_data": {"detector": "jungfrau", "constants": "synthetic", "output": "photons"}
        },
    }
    processing.update(pp)
    return {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": events},
        "data_sources": {"detector_data": synthetic_jungfrau(ENERGY)},
        "processing_pipeline": processing,
        "data_serializer": {"type": "HDF5BinarySerializer", "compression": "bitshuffle_with_lz4"},
        "data_handlers": [],
    }


def drain(h: InProcessDataHandler) -> list[ParsedMessage]:
    out = []
    while (m := h.get(timeout=5)) is not None:
        out.append(formats.parse(m))
    return out


def run_collect(cfg: dict[str, Any], **kw: Any) -> tuple[Any, list[ParsedMessage]]:
    h = InProcessDataHandler(maxsize=1000)
    res = Pipeline(cfg, handlers=[h], **kw).run()
    return res, drain(h)


def raw_frames(cfg: dict[str, Any], n: int) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """The same events straight from the source, and its constants."""
    src = open_source(load_config(cfg))
    try:
        events = zip(range(n), src.events(), strict=False)
        frames = [np.array(ev.data["detector_data"]) for _, ev in events]
        consts = src.constants("detector_data")  # type: ignore[attr-defined]
    finally:
        src.close()
    return frames, consts


def numpy_photons(raw: np.ndarray, c: dict[str, np.ndarray], energy: float) -> np.ndarray:
    """DESIGN.md's formula, in numpy: psana's keV, then max(0, rint(keV / E)) saturating."""
    g = (raw >> 14).astype(np.intp)
    stage = np.choose(g, [0, 1, 0, 2])
    invalid = g == 2
    adc = (raw & 0x3FFF).astype(np.float32)
    ped = np.take_along_axis(c["pedestal"], stage[None], 0)[0].astype(np.float32)
    gain = np.take_along_axis(c["gain"], stage[None], 0)[0].astype(np.float32)
    with np.errstate(divide="ignore"):
        gfac = np.where(gain != 0, (np.float32(1) / gain).astype(np.float32), np.float32(0))
    gfac = gfac * (c["mask"] != 0).astype(np.float32)
    kev = ((adc - ped) * gfac).astype(np.float32)
    kev[invalid] = 0
    ph = np.rint(kev / np.float32(energy))
    return np.clip(ph, 0, 65535).astype(np.uint16)


def data_batches(msgs: list[ParsedMessage]) -> list[ParsedMessage]:
    return [m for m in msgs if m.kind == "data"]


# ------------------------------------------------------------------------------ happy path


def test_photons_match_kernel_and_numpy_reference() -> None:
    cfg = jf_config(events=12)
    res, msgs = run_collect(cfg)
    assert res.complete and res.events == 12 and res.events_read == 12
    data = data_batches(msgs)
    assert [m.sequence for m in data] == [0, 1, 2]
    assert [len(m.batch) for m in data if m.batch is not None] == [5, 5, 2]
    got = np.concatenate([m.batch.arrays["detector_data"] for m in data if m.batch is not None])
    ids = np.concatenate([m.batch.event_ids for m in data if m.batch is not None])
    assert ids.tolist() == list(range(12))
    frames, consts = raw_frames(cfg, 12)
    assert got.dtype == np.uint16 and got.shape == (12, 1, 512, 1024)
    kernel = photon_calibrator(consts, ENERGY)
    for i, raw in enumerate(frames):
        np.testing.assert_array_equal(got[i], kernel(raw))
        ref = numpy_photons(raw, consts, ENERGY)
        # Same formula; the kernel may multiply by 1/E where numpy divides (ties at .5).
        assert np.count_nonzero(got[i] != ref) <= 1e-5 * ref.size
        assert np.abs(got[i].astype(int) - ref).max() <= 1
    assert got.sum() > 0  # photons were there (hits planted)
    end = msgs[-1]
    assert end.kind == "end" and end.totals is not None
    assert end.totals.events_sent == 12 and end.totals.messages_sent == 3
    assert end.totals.events_dropped == 0


def test_result_statistics_and_pool_reuse() -> None:
    cfg = jf_config(events=23)
    h = InProcessDataHandler(maxsize=1000)
    pipe = Pipeline(cfg, handlers=[h])
    res = pipe.run()
    frame_bytes = 512 * 1024 * 2
    assert res.bytes_in == 23 * frame_bytes
    assert 0 < res.bytes_out < res.bytes_in  # compressed photons
    assert res.seconds > 0 and res.startup_seconds > 0
    st = pipe.stats()
    assert set(st["stages"]) == {"read", "calibrate", "model", "serialize", "send"}
    assert st["stages"]["calibrate"]["events"] == 23
    assert st["stages"]["serialize"]["items"] == 5
    assert st["stages"]["send"]["bytes_in"] == res.bytes_out
    assert res.hits == sum(
        open_source(load_config(cfg)).data_sources["detector_data"].is_hit(i)  # type: ignore[attr-defined]
        for i in range(23)
    )
    pool = pipe.assembler.pool_stats()["detector_data"]
    assert pool["allocated"] <= pool["capacity"] < 23 // 5 + 1 + 10
    assert pool["acquires"] == 5  # one pooled buffer per batch, no other allocation
    assert len(data_batches(drain(h))) == 5


def test_generic_lclstreamer_config_runs_unchanged(tmp_path: Path) -> None:
    """LCLStreamer's own example (generic sources, fields, file writer) runs as it is."""
    cfg = {
        "source_identifier": "",
        "skip_incomplete_events": False,
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 17},
        "data_sources": {
            "random": {
                "type": "GenericRandomNumpyArray",
                "array_shape": "20,2",
                "array_dtype": "float32",
            },
            "int": {"type": "IntValue", "value": 3},
            "float": {"type": "FloatValue", "value": 4.5},
        },
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 10},
        "data_serializer": {
            "type": "HDF5BinarySerializer",
            "compression_level": 3,
            "compression": None,
            "fields": {"random": "/data/random", "int": "/data/int", "float": "/data/float"},
        },
        "data_handlers": [
            {
                "type": "BinaryFileWritingDataHandler",
                "file_prefix": "",
                "file_suffix": "h5",
                "write_directory": str(tmp_path / "out"),
            }
        ],
    }
    res = Pipeline(cfg).run()
    assert res.complete and res.events == 17
    files = sorted((tmp_path / "out").glob("*.h5"))
    assert files
    seen = 0
    for f in files:
        with h5py.File(f, "r") as h:
            if "/data/random" in h:
                r = h["/data/random"][()]
                assert r.shape[1:] == (20, 2) and r.dtype == np.float32
                np.testing.assert_array_equal(h["/data/int"][()], 3)
                np.testing.assert_array_equal(h["/data/float"][()], 4.5)
                seen += r.shape[0]
    assert seen == 17


# ------------------------------------------------------------------------------- reduction


def test_reduction_roi_threshold_binning_match_numpy() -> None:
    red = {
        "detector_data": {
            "roi": {"y": [0, 256], "x": [128, 640]},
            "threshold": {"min": 2},
            "binning": {"factor": 4},
        }
    }
    cfg = jf_config(events=6, reduction=red)
    res, msgs = run_collect(cfg)
    assert res.complete
    got = np.concatenate(
        [m.batch.arrays["detector_data"] for m in data_batches(msgs) if m.batch is not None]
    )
    assert got.shape == (6, 1, 64, 128)
    frames, consts = raw_frames(cfg, 6)
    kernel = photon_calibrator(consts, ENERGY)
    for i, raw in enumerate(frames):
        ph = kernel(raw)[:, 0:256, 128:640].astype(np.int64)
        ph[ph < 2] = 0
        ref = ph.reshape(1, 64, 4, 128, 4).sum(axis=(2, 4))
        np.testing.assert_array_equal(got[i], ref)


def test_reduction_shape_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"reduction\.det\.roi\.y"):
        Reduction(y=(0, 600)).out_shape((1, 512, 1024), "det")
    with pytest.raises(ConfigError, match=r"binning\.factor"):
        Reduction(binning=3).out_shape((1, 512, 1024), "det")
    assert Reduction(modules=(0, 2)).out_shape((4, 8, 8)) == (2, 8, 8)


def test_calibration_of_unknown_source_is_config_error() -> None:
    cfg = jf_config()
    cfg["processing_pipeline"]["calibration"]["detectr_data"] = {"output": "keV"}
    with pytest.raises(ConfigError, match="detectr_data"):
        Pipeline(cfg, handlers=[])


def test_kev_output_is_float32() -> None:
    cfg = jf_config(events=3)
    cfg["processing_pipeline"]["calibration"]["detector_data"]["output"] = "keV"
    res, msgs = run_collect(cfg)
    b = data_batches(msgs)[0].batch
    assert b is not None and b.arrays["detector_data"].dtype == np.float32
    assert msgs[-1].info is None or msgs[-1].info.calibration in ("keV", "raw")


# ----------------------------------------------------------------- drops, errors, handlers


class HoleySource:
    """A source whose event 3 lacks its detector frame (as a psana source can)."""

    def __init__(self, n: int = 8, bad: int = 3) -> None:
        self.n, self.bad = n, bad

    def info(self) -> dict[str, DetectorInfo]:
        return {"det": DetectorInfo("det", "generic", (4, 8), "uint16")}

    def events(self) -> Iterator[Event]:
        for i in range(self.n):
            frame = None if i == self.bad else np.full((4, 8), i, np.uint16)
            yield Event(i, 1_000 + i, {"det": frame})

    def close(self) -> None:
        pass


def small_cfg(**kw: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 3},
        "data_serializer": {"type": "HDF5BinarySerializer", "compression": None},
        "data_handlers": [],
    }
    cfg.update(kw)
    return cfg


def test_skip_incomplete_events_counts_the_drop_in_end_totals() -> None:
    h = InProcessDataHandler(maxsize=100)
    res = Pipeline(small_cfg(skip_incomplete_events=True), source=HoleySource(), handlers=[h]).run()
    assert res.events == 7 and res.complete
    msgs = drain(h)
    ids = np.concatenate([m.batch.event_ids for m in data_batches(msgs) if m.batch is not None])
    assert ids.tolist() == [0, 1, 2, 4, 5, 6, 7]
    end = msgs[-1].totals
    assert end is not None and end.events_sent == 7 and end.events_dropped == 1
    assert end.drop_reasons == {"incomplete: det missing": 1}


def test_incomplete_event_is_an_error_but_accepted_events_go_out() -> None:
    h = InProcessDataHandler(maxsize=100)
    pipe = Pipeline(small_cfg(), source=HoleySource(), handlers=[h])
    with pytest.raises(SourceError, match="event 3"):
        pipe.run()
    msgs = drain(h)
    ids = np.concatenate([m.batch.event_ids for m in data_batches(msgs) if m.batch is not None])
    assert ids.tolist() == [0, 1, 2]  # read before the bad event: delivered
    assert msgs[-1].kind == "end" and msgs[-1].totals is not None
    assert msgs[-1].totals.events_sent == 3


class FailingHandler:
    """A handler whose second message fails as an unreachable consumer would."""

    def __init__(self) -> None:
        self.n = 0
        self.closed = False

    def start(self, info: StreamInfo) -> None:
        pass

    def handle(self, message: Message) -> None:
        self.n += 1
        if self.n == 2:
            raise TransportError("consumer tcp://127.0.0.1:1 went away")

    def end(self, message: Message) -> None:
        raise AssertionError("a failed handler gets nothing more")

    def close(self) -> None:
        self.closed = True


def test_handler_error_stops_cleanly_and_raises_typed() -> None:
    bad, good = FailingHandler(), InProcessDataHandler(maxsize=100)
    pipe = Pipeline(small_cfg(), source=HoleySource(n=20, bad=-1), handlers=[bad, good])
    with pytest.raises(TransportError, match="went away") as info:
        pipe.run()
    assert bad.closed
    msgs = drain(good)
    assert msgs[-1].kind == "end"  # the healthy handler still got the end message
    assert isinstance(info.value, PipelineFailed)
    result = info.value.result
    assert not result.complete and "send" in result.error


class BrokenSource(HoleySource):
    def events(self) -> Iterator[Event]:
        yield from list(super().events())[:4]
        raise KeyError("psana lost the run")


def test_foreign_error_is_wrapped_with_the_stage() -> None:
    h = InProcessDataHandler(maxsize=100)
    with pytest.raises(PipelineError, match="read stage failed: KeyError"):
        Pipeline(small_cfg(), source=BrokenSource(bad=-1), handlers=[h]).run()
    msgs = drain(h)
    assert msgs[-1].kind == "end" and msgs[-1].totals is not None
    assert msgs[-1].totals.events_sent == 4


def test_cancel_sends_what_was_read_and_marks_totals() -> None:
    cfg = jf_config(events=10_000)
    h = InProcessDataHandler(maxsize=2)
    pipe = Pipeline(cfg, handlers=[h])
    got: list[ParsedMessage] = []

    def consume() -> None:
        while (m := h.get(timeout=30)) is not None:
            got.append(formats.parse(m))
            if len(got) == 2:
                pipe.cancel()

    t = threading.Thread(target=consume)
    t.start()
    res = pipe.run()
    t.join()
    assert res.events < 10_000 and res.totals.end_state == "cancelled"
    assert (
        got[-1].kind == "end"
        and got[-1].totals is not None
        and got[-1].totals.end_state == "cancelled"
    )
    assert got[-1].totals.events_sent == sum(len(m.batch) for m in data_batches(got) if m.batch)


# ---------------------------------------------------------------------------------- handlers


def test_handler_registry_and_config_errors(tmp_path: Path) -> None:
    assert set(HANDLERS.names()) >= {
        "BinaryDataStreamingDataHandler",
        "BinaryFileWritingDataHandler",
    }
    h = create_handler({"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path)})
    assert isinstance(h, BinaryFileWritingDataHandler)
    h.close()
    with pytest.raises(ConfigError, match="NoSuchHandler"):
        create_handler({"type": "NoSuchHandler"})
    with pytest.raises(ConfigError, match="role"):
        create_handler(
            {
                "type": "BinaryDataStreamingDataHandler",
                "urls": ["tcp://127.0.0.1:1"],
                "role": "both",
            }
        )


def test_file_writing_handler_writes_openable_h5(tmp_path: Path) -> None:
    cfg = jf_config(events=7)
    cfg["data_handlers"] = [
        {"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path)}
    ]
    res = Pipeline(cfg).run()
    assert res.complete
    total = 0
    for f in sorted(tmp_path.glob("*.h5")):
        with h5py.File(f, "r") as h5:
            if "/entry_1/data_1/data" in h5:
                d = h5["/entry_1/data_1/data"]
                total += d.shape[0]
                assert d.dtype == np.uint16
                d[()]  # decodes through hdf5plugin's bitshuffle filter
    assert total == 7


def test_raw_mode_with_modules_threshold_binning_match_numpy() -> None:
    """``mode: raw`` passes raw frames; reductions then work on a copy, never the source's."""
    cfg = jf_config(events=4)
    cfg["data_sources"]["detector_data"]["detector"] = "jungfrau1M"
    cfg["processing_pipeline"]["calibration"]["detector_data"]["mode"] = "raw"
    cfg["processing_pipeline"]["reduction"] = {
        "detector_data": {
            "roi": {"modules": [1]},
            "threshold": {"min": 3000},
            "binning": {"factor": 2},
        }
    }
    res, msgs = run_collect(cfg)
    assert res.complete
    batches = [m.batch for m in data_batches(msgs) if m.batch is not None]
    got = np.concatenate([b.arrays["detector_data"] for b in batches])
    assert got.shape == (4, 1, 256, 512) and got.dtype == np.uint32
    frames, _ = raw_frames(cfg, 4)
    for i, raw in enumerate(frames):
        sel = raw[1:2].astype(np.int64)
        sel[sel < 3000] = 0
        np.testing.assert_array_equal(got[i], sel.reshape(1, 256, 2, 512, 2).sum(axis=(2, 4)))
    again, _ = raw_frames(cfg, 4)
    for a, b in zip(frames, again, strict=True):
        np.testing.assert_array_equal(a, b)  # the source's frames were not changed in place


def test_failing_progress_callback_stops_cleanly() -> None:
    h = InProcessDataHandler(maxsize=10_000)

    def progress(st: dict[str, Any]) -> None:
        raise RuntimeError("display went away")

    pipe = Pipeline(jf_config(events=2_000), handlers=[h], progress=progress)
    with pytest.raises(RuntimeError, match="display went away"):
        pipe.run()
    msgs = drain(h)
    assert msgs[-1].kind == "end" and msgs[-1].totals is not None
    assert msgs[-1].totals.end_state == "cancelled"
    sent = sum(len(m.batch) for m in data_batches(msgs) if m.batch is not None)
    assert msgs[-1].totals.events_sent == sent < 2_000


def test_constants_from_a_file_give_the_same_photons(tmp_path: Path) -> None:
    cfg = jf_config(events=5)
    _, consts = raw_frames(cfg, 1)
    path = tmp_path / "constants.npz"
    np.savez(path, **consts)
    _, synth = run_collect(cfg)
    cfg["processing_pipeline"]["calibration"]["detector_data"]["constants"] = str(path)
    _, from_file = run_collect(cfg)
    a = [m.batch.arrays["detector_data"] for m in data_batches(synth) if m.batch is not None]
    b = [m.batch.arrays["detector_data"] for m in data_batches(from_file) if m.batch is not None]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


def test_missing_constants_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = jf_config(events=5)
    cfg["processing_pipeline"]["calibration"]["detector_data"]["constants"] = str(
        tmp_path / "nope.h5"
    )
    with pytest.raises(ConfigError, match=r"calibration\.detector_data.*nope\.h5"):
        Pipeline(cfg, handlers=[])


def test_two_detectors_and_a_scalar_in_one_batch() -> None:
    """A Jungfrau (photons) and an ePix10ka panel (keV) calibrated side by side, plus a scalar."""
    cfg = jf_config(events=6)
    cfg["data_sources"]["epix"] = {
        "type": "SyntheticDetector",
        "detector": "epix10ka",
        "pool_frames": 2,
        "photon_energy_keV": ENERGY,
    }
    cfg["data_sources"]["energy"] = {"type": "FloatValue", "value": 9.5}
    cfg["processing_pipeline"]["calibration"]["epix"] = {"output": "keV"}
    res, msgs = run_collect(cfg)
    assert res.complete and res.events == 6
    batches = [m.batch for m in data_batches(msgs) if m.batch is not None]
    epix = np.concatenate([b.arrays["epix"] for b in batches])
    energy = np.concatenate([b.arrays["energy"] for b in batches])
    assert epix.dtype == np.float32 and epix.shape == (6, 1, 352, 384)
    np.testing.assert_array_equal(energy, 9.5)
    src = open_source(load_config(cfg))
    try:
        c = src.constants("epix")  # type: ignore[attr-defined]
        k = calib.Epix10ka(c["pedestal"], c["gain"], c["config_bits"], c["mask"], output="keV")
        for i, ev in zip(range(6), src.events(), strict=False):
            np.testing.assert_array_equal(epix[i], k(ev.data["epix"]))
    finally:
        src.close()


def test_in_process_handler_iterates_until_the_stream_ends() -> None:
    h = InProcessDataHandler(maxsize=2)  # smaller than the stream: the pipeline waits for us
    got: list[ParsedMessage] = []
    t = threading.Thread(target=lambda: got.extend(formats.parse(m) for m in h))
    t.start()
    res = Pipeline(jf_config(events=23), handlers=[h]).run()
    t.join(30)
    assert res.complete
    assert [m.kind for m in got] == ["data"] * 5 + ["end"]
    assert sum(len(m.batch) for m in got if m.batch is not None and m.kind == "data") == 23


def test_file_handler_img_per_file_from_config(tmp_path: Path) -> None:
    """``img_per_file`` in the YAML config regroups events into files of that many events."""
    cfg = jf_config(events=12)
    cfg["data_handlers"] = [
        {
            "type": "BinaryFileWritingDataHandler",
            "write_directory": str(tmp_path / "out"),
            "img_per_file": 4,
        }
    ]
    res = Pipeline(load_config(cfg)).run()
    assert res.complete and res.events == 12
    files = sorted((tmp_path / "out").glob("*.h5"))
    counts = []
    for f in files:
        with h5py.File(f, "r") as h:
            if "/entry_1/data_1/data" in h:
                counts.append(h["/entry_1/data_1/data"].shape[0])
    # batches of 5 regrouped 4 a file (the end-of-stream file holds no events)
    assert [c for c in counts if c] == [4, 4, 4]


def test_batch_calibration_gives_the_frames_of_calibrating_each_event() -> None:
    """Where the source's frames outlive their event (the synthetic detector), a batch is
    calibrated at once when full; its frames equal calibrating every event as it comes, also
    with an event whose raw frame must be calibrated at once (not contiguous) in the middle
    of a batch, and for the last, partial batch."""
    from dataclasses import replace

    from lclstream.demo import demo_config
    from lclstream.run.assembler import BatchAssembler
    from lclstream.run.plan import plan_detectors

    cfg = load_config(demo_config("tcp://127.0.0.1:9", 25))
    source = open_source(cfg)
    plans = plan_detectors(cfg.processing_pipeline, source)
    assert source.frames_stay_valid("detector_data")
    batched = BatchAssembler(plans, 10, 2, defer=frozenset(plans))
    each = BatchAssembler(plans, 10, 2)
    assert batched.defer == {"detector_data"} and not each.defer
    compared = 0
    for i, ev in enumerate(source.events()):
        if i == 13:  # not a numpy array (a buffer): calibrated at once, not with the batch
            ev = replace(
                ev, data={**ev.data, "detector_data": memoryview(ev.data["detector_data"])}
            )
        got = []
        for asm in (batched, each):
            asm.calibrate(ev)
            got.append(asm.commit(ev))
        if got[0] is not None:
            np.testing.assert_array_equal(
                got[0].arrays["detector_data"], got[1].arrays["detector_data"]
            )
            compared += 1
    last = [batched.flush(), each.flush()]
    np.testing.assert_array_equal(last[0].arrays["detector_data"], last[1].arrays["detector_data"])
    assert compared == 2 and len(last[0].event_ids) == 5
    source.close()


def test_batch_calibration_only_without_an_event_filter() -> None:
    from lclstream.demo import demo_config

    cfg = demo_config("tcp://127.0.0.1:9", 5)
    assert Pipeline(cfg, handlers=[]).assembler.defer == {"detector_data"}
    filtered = Pipeline(cfg, handlers=[], event_filter=lambda ev, frames: True)
    assert not filtered.assembler.defer  # a filter reads each event's calibrated frames


def test_warm_rate_leaves_out_the_pools_first_use() -> None:
    """A run long enough to use every pooled buffer once reports its rate from then on
    (``warm_events_per_second``: the first touch of fresh pages is a one-time cost); a run
    that never gets there reports its whole window's rate."""
    h = InProcessDataHandler(maxsize=1000)
    pipe = Pipeline(jf_config(events=120), handlers=[h], batch_size=5)
    res = pipe.run()
    pool = pipe.assembler.pool_stats()["detector_data"]["capacity"]
    warm_after = (pool + 1) * 5
    assert pipe.ledger.warm_after == warm_after < 120
    assert warm_after <= pipe.ledger.warm_sent < warm_after + 5
    assert res.warm_events == 120 - pipe.ledger.warm_sent
    assert 0 < res.warm_seconds < res.seconds
    assert res.warm_events_per_second == pytest.approx(res.warm_events / res.warm_seconds)
    assert res.summary()["warm_events_per_second"] == res.warm_events_per_second
    short = Pipeline(jf_config(events=7), handlers=[InProcessDataHandler(maxsize=100)]).run()
    assert short.warm_events == 0
    assert short.warm_events_per_second == short.events_per_second
