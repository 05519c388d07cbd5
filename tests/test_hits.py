"""Hit finding at the source: peakfinder8 per event, the veto (reason ``miss``), CXI peak
lists in the messages, exact completeness; over real loopback sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from lclstream.config import load_config
from lclstream.errors import ConfigError
from lclstream.peaks import Peakfinder8, Peakfinder8Params, radius_map, raw_layout
from lclstream.pipeline import Pipeline
from lclstream.sources import open_source
from proc_helpers import ReceiverThread

EVENTS = 30
PEAKFINDER = {"adc_threshold": 2, "minimum_snr": 5}


def config(url: str, reduction: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": EVENTS},
        "data_sources": {"detector_data": {"type": "SyntheticDetector", "detector": "jungfrau4M",
                                           "hit_fraction": 0.3, "seed": 3}},
        "processing_pipeline": {
            "type": "BatchProcessingPipeline",
            "batch_size": 4,
            "calibration": {"detector_data": {"constants": "synthetic", "output": "photons"}},
            "reduction": {"detector_data": reduction},
        },
        "data_serializer": {"type": "HDF5BinarySerializer"},
        "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": [url]}],
    }  # fmt: skip


def truth(cfg: dict[str, Any]) -> list[int]:
    """The synthetic source's own hit flags: the ids of the events it made as hits."""
    src = open_source(load_config(cfg))
    try:
        return [int(ev.event_id) for ev in src.events() if ev.is_hit]
    finally:
        src.close()


def stream(
    tmp_path: Path, reduction: dict[str, Any], timeout: float = 30, **event_source: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """(what the pipeline sent, what the receiver got, the config), ``event_source`` options
    overriding the test run's."""
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=timeout)
    cfg = config(rx.endpoint(), reduction)
    cfg["event_source"].update(event_source)
    sent = Pipeline(cfg).run()
    return sent, rx.join(), cfg


def received(files: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for name in sorted(files):
        with h5py.File(name) as f:
            if "entry_1/data_1/data" not in f:
                continue
            out.setdefault("ids", []).append(f["LCLS/eventNumber"][()])
            out.setdefault("frames", []).append(f["entry_1/data_1/data"][()])
            for k in ("nPeaks", "peakXPosRaw", "peakYPosRaw", "peakTotalIntensity"):
                out.setdefault(k, []).append(f[f"entry_1/result_1/{k}"][()])
    return {k: np.concatenate(v) for k, v in out.items()}


def test_the_veto_keeps_the_hits_and_counts_every_miss(tmp_path: Path) -> None:
    sent, got, cfg = stream(tmp_path, {"peakfinder": PEAKFINDER, "hit_veto": {"min_peaks": 30}})
    hits = truth(cfg)
    assert 0 < len(hits) < EVENTS
    assert got.complete, got.incomplete_reason()
    assert got.events == sent.events == len(hits)  # the source's hits, found by their peaks
    assert got.drop_reasons == {"miss": EVENTS - len(hits)} == sent.totals.drop_reasons
    assert sent.events_read == EVENTS and sent.hits == len(hits)
    data = received(got.files)
    assert sorted(int(i) for i in data["ids"]) == sorted(hits)


def test_every_kth_miss_is_kept_for_background(tmp_path: Path) -> None:
    sent, got, cfg = stream(
        tmp_path, {"peakfinder": PEAKFINDER, "hit_veto": {"min_peaks": 30, "keep_every_miss": 3}}
    )
    misses = EVENTS - len(truth(cfg))
    assert got.complete and got.events == EVENTS - (misses - misses // 3)
    assert got.drop_reasons == {"miss": misses - misses // 3}


def test_cxi_peak_lists_equal_peakfinder8_on_the_received_frames(tmp_path: Path) -> None:
    """No veto: every event is sent with its peaks; the peaks in the message are those the
    peak finder finds again on the frames the receiver decoded."""
    sent, got, _ = stream(tmp_path, {"peakfinder": PEAKFINDER})
    assert got.complete and got.events == EVENTS and not got.drop_reasons
    data = received(got.files)
    params = Peakfinder8Params(**PEAKFINDER, **raw_layout("jungfrau4M"))
    pf = Peakfinder8(params, radius_map("jungfrau4M"))
    rows, cols = pf.shape
    for e, frame in enumerate(data["frames"]):
        p = pf.find(frame.reshape(rows, cols), threads=1)
        n = int(p.n_peaks[0])
        assert data["nPeaks"][e] == n
        np.testing.assert_array_equal(data["peakXPosRaw"][e][:n], p.x)
        np.testing.assert_array_equal(data["peakYPosRaw"][e][:n], p.y)
        np.testing.assert_array_equal(data["peakTotalIntensity"][e][:n], p.total_intensity)
        assert not data["peakXPosRaw"][e][n:].any()  # padded with zeros
    assert sent.hits == int((data["nPeaks"] >= 10).sum())  # OM's default min_num_peaks_for_hit


@pytest.mark.parametrize(
    ("reduction", "words"),
    [
        ({"hit_veto": {"min_peaks": 3}}, "hit_veto needs a peakfinder"),
        ({"peakfinder": {}, "binning": {"factor": 2}}, "peakfinder needs the whole frame"),
        ({"peakfinder": {"minimum_snrr": 5}}, "minimum_snrr"),
        ({"peaks_only": True}, "peaks_only needs a peakfinder"),
    ],
)
def test_bad_hit_finding_configs_name_the_key(reduction: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Pipeline(config("tcp://127.0.0.1:1", reduction))


def test_stream2_images_carry_their_peaks_in_user_data(tmp_path: Path) -> None:
    """DECTRIS stream2 (per-image messages): each image's user_data holds its peaks, cut to
    its nPeaks, as CBOR numbers a stream2 client reads with cbor2 alone."""
    import cbor2
    import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    cfg = config(f"tcp://127.0.0.1:{port}", {"peakfinder": PEAKFINDER,
                                             "hit_veto": {"min_peaks": 30}})  # fmt: skip
    cfg["event_source"]["number_of_events_to_generate"] = 8
    cfg["data_serializer"] = {"type": "SimplonBinarySerializer"}
    import threading

    res: list[Any] = []
    t = threading.Thread(target=lambda: res.append(Pipeline(cfg).run()))
    t.start()
    images = []
    while True:
        assert sock.poll(30000), "no message"
        msg = cbor2.loads(sock.recv())
        if msg["type"] == "image":
            images.append(msg["user_data"]["lclstream"]["results"])
        if msg["type"] == "end":
            break
    t.join(30)
    sock.close(0)
    assert res[0].complete and len(images) == res[0].events > 0
    for r in images:
        n = r["nPeaks"]
        assert n >= 30 and len(r["peakXPosRaw"]) == len(r["peakSNR"]) == n
        assert all(isinstance(x, float) for x in r["peakYPosRaw"])


def test_peaks_only_sends_the_peak_lists_without_frames(tmp_path: Path) -> None:
    """Monitoring: the frames feed the peak finder but are not sent; each kept event's peaks
    are, with exact completeness. The same peaks as a full stream of the same run."""
    full_sent, full, _ = stream(tmp_path / "full", {"peakfinder": PEAKFINDER})
    sent, got, _ = stream(tmp_path / "peaks", {"peakfinder": PEAKFINDER, "peaks_only": True})
    assert got.complete and got.events == sent.events == EVENTS
    assert got.bytes < full.bytes / 50  # kB of peak lists instead of MB of frames
    ids, n, x = [], [], []
    for name in sorted(got.files):
        with h5py.File(name) as f:
            if "entry_1/result_1/nPeaks" not in f:
                continue
            assert "entry_1/data_1/data" not in f  # no frames
            ids.append(f["LCLS/eventNumber"][()])
            n.append(f["entry_1/result_1/nPeaks"][()])
            x.append(f["entry_1/result_1/peakXPosRaw"][()])
    ref = received(full.files)
    order = np.argsort(np.concatenate(ids))
    ref_order = np.argsort(ref["ids"])
    np.testing.assert_array_equal(np.concatenate(n)[order], ref["nPeaks"][ref_order])
    np.testing.assert_array_equal(np.concatenate(x)[order], ref["peakXPosRaw"][ref_order])


def test_peaks_only_raw_batches_and_stream2_refusal(tmp_path: Path) -> None:
    """Raw batches carry the peak lists in the header and no payload for the detector;
    stream2, whose image messages are frames, refuses peaks_only at configuration."""
    import zmq
    from lclstream.formats.raw import parse

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    cfg = config(f"tcp://127.0.0.1:{port}", {"peakfinder": PEAKFINDER, "peaks_only": True})
    cfg["event_source"]["number_of_events_to_generate"] = 8
    cfg["data_serializer"] = {"type": "RawBatchSerializer"}
    import threading

    res: list[Any] = []
    t = threading.Thread(target=lambda: res.append(Pipeline(cfg).run()))
    t.start()
    events = 0
    try:
        while True:
            assert sock.poll(30000), "no message"
            msg = parse(sock.recv_multipart())
            if msg.kind == "end":
                break
            if msg.kind != "data":
                continue
            batch = msg.batch
            assert batch is not None and "detector_data" not in batch.arrays
            assert len(batch.results["nPeaks"]) == len(batch)
            events += len(batch)
    finally:
        t.join(30)
        sock.close(0)
    assert res[0].complete and events == 8
    bad = config("tcp://127.0.0.1:1", {"peakfinder": PEAKFINDER, "peaks_only": True})
    bad["data_serializer"] = {"type": "SimplonBinarySerializer"}
    with pytest.raises(ConfigError, match="peaks_only"):
        Pipeline(bad)


def test_a_failing_peak_finder_ends_the_stream_failed_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injected: the finder raises on the second batch. The run ends ``failed``, that
    batch's events are dropped as ``peakfinder_failed`` (later ones ``aborted``), every event
    read is accounted for, and the receiver does not call the stream complete."""
    from lclstream.run.hits import HitFinder

    real = HitFinder.judge
    calls = {"n": 0}

    def flaky(self: HitFinder, batch: Any, threads: int = 0) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected peak finder fault")
        return real(self, batch, threads)

    monkeypatch.setattr(HitFinder, "judge", flaky)
    rx = ReceiverThread("tcp://127.0.0.1:0", out=tmp_path / "out", timeout=30)
    cfg = config(rx.endpoint(), {"peakfinder": PEAKFINDER, "hit_veto": {"min_peaks": 30}})
    from lclstream.run.result import PipelineError

    with pytest.raises(PipelineError, match="injected") as failed:
        Pipeline(cfg).run()
    assert failed.value.result.totals.drop_reasons.get("peakfinder_failed") == 4
    got = rx.join()
    assert not got.complete
    assert got.end_states == {"failed": 1}
    assert got.drop_reasons.get("peakfinder_failed") == 4  # the second batch of 4
    totals = failed.value.result.totals
    assert totals.events_sent + totals.events_dropped == totals.events_read > 4
    assert got.events_sent == totals.events_sent and got.events == totals.events_sent


def test_the_end_message_carries_the_reduction(tmp_path: Path) -> None:
    """Events in and kept, bytes in and out and the hits reach the consumer in the senders' end
    messages (what ``lclstream receive`` shows), equal to the sender's own summary."""
    sent, got, cfg = stream(tmp_path, {"peakfinder": PEAKFINDER, "hit_veto": {"min_peaks": 30}})
    hits = truth(cfg)
    assert got.complete
    assert got.hits == sent.hits == len(hits) == got.events
    assert got.events_sent + got.events_dropped == EVENTS
    assert got.bytes_read == sent.bytes_in == EVENTS * 8 * 512 * 1024 * 2  # raw JF4M words
    assert got.bytes_sent == sent.bytes_out and 0 < got.bytes_sent < got.bytes_read / 20
    from lclstream.cli._display import receive_rows

    rows = dict(receive_rows(got.as_dict()))
    assert rows["hits (senders)"].startswith(f"{len(hits)} of {EVENTS} read")
