"""Batch models at the edge: the classical spot segmenter through a real stream, plug-ins by
entry point, backpressure from a slow model, a failing or misbehaving model, and the hit rule's
intensity criterion. (PeakNet's torch runner: tests/test_peaknet.py.)"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from lclstream.errors import ConfigError
from lclstream.models import MODELS, ModelOutput, load_model
from lclstream.peaks import Peakfinder8, Peakfinder8Params, radius_map, raw_layout
from lclstream.pipeline import Pipeline
from lclstream.protocols import DetectorInfo
from lclstream.run.result import PipelineError
from proc_helpers import ReceiverThread
from test_hits import EVENTS, PEAKFINDER, config, truth
from test_hits import stream as hits_stream

JF4M = DetectorInfo("detector_data", "jungfrau", (8, 512, 1024), "uint16")


def stream(tmp_path: Path, reduction: dict[str, Any], **kw: Any) -> tuple[Any, Any, dict[str, Any]]:
    """test_hits' stream, with the time a CPU model needs."""
    return hits_stream(tmp_path, reduction, timeout=60, **kw)


def received(files: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for name in sorted(files):
        with h5py.File(name) as f:
            if "entry_1/result_1/nPeaks" not in f:
                continue
            out.setdefault("ids", []).append(f["LCLS/eventNumber"][()])
            for k in ("nPeaks", "peakXPosRaw", "peakYPosRaw", "peakMask"):
                if k in f["entry_1/result_1"]:  # the mask only with send_mask
                    out.setdefault(k, []).append(f[f"entry_1/result_1/{k}"][()])
            out.setdefault("frames", []).append(f["entry_1/data_1/data"][()])
    return {k: np.concatenate(v) for k, v in out.items()}


def agreement_with_peakfinder8(data: dict[str, np.ndarray]) -> list[tuple[float, float]]:
    """Per received frame: the share of peakfinder8's peaks the model found within 2 px, and
    the share of the model's peaks that are peakfinder8's."""
    pf = Peakfinder8(
        Peakfinder8Params(**PEAKFINDER, **raw_layout("jungfrau4M")), radius_map("jungfrau4M")
    )
    out = []
    for e, frame in enumerate(data["frames"]):
        ref = pf.find(frame.reshape(4096, 1024), threads=1)
        n = int(data["nPeaks"][e])
        x, y = data["peakXPosRaw"][e][:n], data["peakYPosRaw"][e][:n]
        d = np.hypot(ref.x[:, None] - x[None], ref.y[:, None] - y[None])
        out.append(((d.min(axis=1) < 2).mean(), (d.min(axis=0) < 2).mean()))
    return out


def test_the_spot_segmenter_vetoes_the_misses_and_finds_peakfinder8s_peaks(
    tmp_path: Path,
) -> None:
    """The built-in CPU model as a user configures it: its verdict keeps exactly the source's
    hits, its peaks (CXI lists) are peakfinder8's on the received frames (>= 90% of them
    within 2 px, and >= 85% of its own are peakfinder8's), its mask marks its peak pixels."""
    sent, got, cfg = stream(
        tmp_path,
        {"model": {"name": "spot_segmenter", "parameters": {"min_peaks": 30},
                   "send_mask": True},
         "hit_veto": {}},
        number_of_events_to_generate=16,
    )  # fmt: skip
    hits = truth(cfg)
    assert got.complete and got.events == sent.events == len(hits) > 0
    assert got.drop_reasons == {"miss": 16 - len(hits)}
    assert sent.stages["model"]["events"] == 16
    data = received(got.files)
    assert sorted(int(i) for i in data["ids"]) == sorted(hits)
    for e, (found, own) in enumerate(agreement_with_peakfinder8(data)):
        assert found >= 0.9 and own >= 0.85
        n = int(data["nPeaks"][e])
        x, y = data["peakXPosRaw"][e][:n], data["peakYPosRaw"][e][:n]
        mask = data["peakMask"][e].reshape(4096, 1024)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert mask[np.rint(y).astype(int), np.rint(x).astype(int)].mean() > 0.9


def _write_plugin(root: Path, body: str) -> None:
    """A real installed distribution on sys.path: a module and an entry point for it."""
    root.mkdir()
    (root / "site_models.py").write_text(textwrap.dedent(body))
    dist = root / "site_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: site-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[lclstream.models]\nbrightest_pixel = site_models:BrightestPixel\n"
    )


def test_a_model_from_an_entry_point_decides_the_hits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site's model, found through its distribution's entry point; it gives only a hit flag
    (no peaks), and that flag is the veto's verdict."""
    _write_plugin(
        tmp_path / "site",
        """
        import numpy as np
        from lclstream.models import ModelOutput

        class BrightestPixel:
            def __init__(self, detector, *, above):
                self.above = above

            def __call__(self, frames):
                return ModelOutput(hit=frames.reshape(len(frames), -1).max(axis=1) > self.above)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "brightest_pixel" in MODELS.names()
    reduction = {"model": {"name": "brightest_pixel", "parameters": {"above": 60}},
                 "hit_veto": {}}  # fmt: skip
    sent, got, _ = stream(tmp_path / "out", reduction)
    ref_sent, ref, _ = stream(tmp_path / "ref", {})
    frames = [h5py.File(n)["entry_1/data_1/data"][()] for n in sorted(ref.files)
              if "entry_1/data_1/data" in h5py.File(n)]  # fmt: skip
    bright = int((np.concatenate(frames).reshape(EVENTS, -1).max(axis=1) > 60).sum())
    assert 0 < bright < EVENTS
    assert got.complete and got.events == bright
    assert got.drop_reasons == {"miss": EVENTS - bright}
    with pytest.raises(ConfigError, match="brightest_pixel.*abvoe"):
        load_model("brightest_pixel", JF4M, {"abvoe": 3})


class _Slow:
    """Sleeps per batch and records how far the reader had got each time."""

    pipeline: Any = None

    def __init__(self, detector: DetectorInfo, *, seconds: float) -> None:
        self.seconds = seconds
        self.seen = 0
        self.ahead: list[int] = []

    def __call__(self, frames: np.ndarray) -> ModelOutput:
        time.sleep(self.seconds)
        self.seen += len(frames)
        self.ahead.append(self.pipeline.ledger.events_read - self.seen)
        return ModelOutput(hit=np.ones(len(frames), bool))


def test_a_slow_model_holds_the_reader_back_and_loses_nothing(tmp_path: Path) -> None:
    """Backpressure: the model takes 0.25 s a batch, far slower than reading. The reader is
    never more than the pooled buffers ahead of it (memory bounded), and every event read is
    sent."""
    made: list[_Slow] = []

    def factory(detector: DetectorInfo, **kw: Any) -> _Slow:
        made.append(_Slow(detector, **kw))
        return made[-1]

    MODELS.add("slow_for_test", factory, runtime=True)
    try:
        rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path, timeout=60)
        cfg = config(rx.endpoint(), {"model": {"name": "slow_for_test", "queue_depth": 1,
                                               "parameters": {"seconds": 0.25}}})  # fmt: skip
        cfg["event_source"]["number_of_events_to_generate"] = 60
        pipe = Pipeline(cfg)
        _Slow.pipeline = pipe
        res = pipe.run()
        got = rx.join()
    finally:
        MODELS.remove("slow_for_test")
    (model,) = made
    pooled = pipe.assembler.pool_stats()["detector_data"]
    bound = int(pooled["capacity"]) * pipe.batch_size
    assert res.complete and got.complete and got.events == res.events_read == 60
    assert model.seen == 60 and max(model.ahead) <= bound < 60 - 4
    assert max(model.ahead) > 0  # the reader did run ahead as far as it may


def test_a_failing_model_fails_the_run_and_counts_its_batch(tmp_path: Path) -> None:
    """Fault injected: the model raises on its second batch. That batch is dropped as
    ``model_failed``, the run ends failed, and the receiver calls the stream incomplete."""
    calls = {"n": 0}

    def flaky(detector: DetectorInfo) -> Any:
        def model(frames: np.ndarray) -> ModelOutput:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("injected model fault")
            return ModelOutput(hit=np.ones(len(frames), bool))

        return model

    MODELS.add("flaky_for_test", flaky, runtime=True)
    try:
        rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path, timeout=30)
        cfg = config(rx.endpoint(), {"model": {"name": "flaky_for_test"}})
        with pytest.raises(PipelineError, match="injected model fault") as failed:
            Pipeline(cfg).run()
        got = rx.join()
    finally:
        MODELS.remove("flaky_for_test")
    totals = failed.value.result.totals
    assert totals.drop_reasons.get("model_failed") == 4
    assert totals.events_sent + totals.events_dropped == totals.events_read
    assert not got.complete and got.end_states == {"failed": 1}


def test_a_model_answer_of_the_wrong_shape_is_refused_naming_the_model(tmp_path: Path) -> None:
    MODELS.add("short_for_test", lambda d: lambda f: ModelOutput(hit=np.ones(1, bool)),
               runtime=True)  # fmt: skip
    try:
        rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path, timeout=30)
        cfg = config(rx.endpoint(), {"model": {"name": "short_for_test"}})
        with pytest.raises(
            PipelineError,
            match=r"short_for_test \(detector_data\): hit has shape \(1,\), expected \(4,\)",
        ):
            Pipeline(cfg).run()
        rx.join()
    finally:
        MODELS.remove("short_for_test")


@pytest.mark.parametrize(
    ("reduction", "words"),
    [
        ({"model": {"name": "spot_segmentr"}}, "did you mean 'spot_segmenter'"),
        ({"model": {"name": "spot_segmenter", "parameters": {"min_snr_": 3}}}, "min_snr_"),
        ({"model": {"name": "spot_segmenter", "parameters": {"background_window": 4}}},
         "background_window"),
        ({"model": {"name": "spot_segmenter"}, "peakfinder": {}}, "choose one"),
    ],
)  # fmt: skip
def test_bad_model_configs_say_what(reduction: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Pipeline(config("tcp://127.0.0.1:1", reduction))


def test_the_hit_rule_can_ask_for_total_intensity(tmp_path: Path) -> None:
    """``min_peaks: 0`` + ``min_total_intensity``: an integrated-intensity hit finder. The
    threshold sits between the run's misses and hits, so exactly the hits are kept."""
    ref_sent, ref, cfg = stream(tmp_path / "ref", {})
    sums = {}
    for name in sorted(ref.files):
        with h5py.File(name) as f:
            if "entry_1/data_1/data" in f:
                for i, fr in zip(
                    f["LCLS/eventNumber"][()], f["entry_1/data_1/data"][()], strict=True
                ):
                    sums[int(i)] = int(fr.sum(dtype=np.uint64))
    hits = set(truth(cfg))
    cut = (max(v for k, v in sums.items() if k not in hits) + min(sums[k] for k in hits)) / 2
    sent, got, _ = stream(
        tmp_path / "cut",
        {"peakfinder": PEAKFINDER, "hit_veto": {"min_peaks": 0, "min_total_intensity": cut}},
    )
    expected = sum(1 for v in sums.values() if v >= cut)
    assert got.complete and got.events == expected == len(hits)


def test_model_stage_threads_end_with_the_run() -> None:
    """No model thread outlives its run (a leaked one would hold pooled frames)."""
    before = {t.name for t in threading.enumerate()}
    MODELS.add("noop_for_test", lambda d: lambda f: ModelOutput(), runtime=True)
    try:
        from lclstream.handlers import InProcessDataHandler

        h = InProcessDataHandler()
        drain = threading.Thread(target=lambda: [None for _ in iter(h.get, None)], daemon=True)
        drain.start()
        res = Pipeline(config("tcp://127.0.0.1:1", {"model": {"name": "noop_for_test"}}),
                       handlers=[h]).run()  # fmt: skip
        drain.join(10)
    finally:
        MODELS.remove("noop_for_test")
    assert res.complete and res.events == EVENTS
    assert "lcls-model" not in {t.name for t in threading.enumerate()} - before
    assert sys.modules.get("torch") is None or True  # the CPU model never needs torch
