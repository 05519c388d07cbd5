"""Accounting that tells the truth: every way a run can end, with the fault injected for real.

Each test makes one thing go wrong (a source that raises, cancel, SIGTERM to a real
``lclstream stream`` process, a calibration that fails, PUB with nobody subscribed, a
``with Sender`` into a consumer that is not there, a source shorter than asked) and checks
what the end message says, what the producer reports, and what a receiver concludes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lclstream import formats
from lclstream.completeness import StreamTracker
from lclstream.errors import SourceError, TransportError
from lclstream.handlers import BinaryDataStreamingDataHandler, InProcessDataHandler
from lclstream.pipeline import Pipeline, PipelineFailed
from lclstream.protocols import DetectorInfo, Event, ParsedMessage
from lclstream.run.assembler import BatchAssembler
from lclstream.run.ledger import Ledger
from lclstream.run.plan import plan_detectors
from lclstream.transport import Receiver, Sender
from proc_helpers import ReceiverThread, cli_env, free_port, synthetic_jungfrau


def small_cfg(**kw: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 3},
        "data_serializer": {"type": "HDF5BinarySerializer", "compression": None},
        "data_handlers": [],
    }
    cfg.update(kw)
    return cfg


class CountingSource:
    """``n`` small generic frames; raises ``error`` after ``fail_after`` events if given."""

    def __init__(self, n: int = 10, fail_after: int | None = None, shape: Any = (4, 8)) -> None:
        self.n, self.fail_after, self.shape = n, fail_after, shape

    def info(self) -> dict[str, DetectorInfo]:
        return {"det": DetectorInfo("det", "generic", (4, 8), "uint16")}

    def events(self) -> Iterator[Event]:
        for i in range(self.n):
            if self.fail_after is not None and i == self.fail_after:
                raise SourceError(f"file lost at event {i}")
            yield Event(i, 1_000 + i, {"det": np.full(self.shape, i, np.uint16)})

    def constants(self, name: str) -> dict[str, Any]:
        raise SourceError("no constants")

    def close(self) -> None:
        pass


def drain(h: InProcessDataHandler) -> list[ParsedMessage]:
    out = []
    while (m := h.get(timeout=10)) is not None:
        out.append(formats.parse(m))
    return out


def verdict(msgs: list[ParsedMessage]) -> StreamTracker:
    t = StreamTracker()
    for m in msgs:
        t.add(m)
    return t


def check_balanced(totals: Any) -> None:
    assert totals.events_read == totals.events_sent + totals.events_dropped
    assert sum(totals.drop_reasons.values()) == totals.events_dropped


# ------------------------------------------------------------------------ parts alone


def test_ledger_alone_accounts_for_every_event() -> None:
    led = Ledger()
    for _ in range(5):
        led.read(100, time.perf_counter(), 0.0)
    led.dropped_by_source("incomplete: x missing", 2)  # read and dropped inside the source
    led.dropped("vetoed")
    led.sent(4, 1, 1000, 0.0)
    assert led.unaccounted == 0
    t = led.totals()
    assert (t.events_read, t.events_sent, t.events_dropped) == (7, 4, 3)
    assert t.drop_reasons == {"incomplete: x missing": 2, "vetoed": 1}
    led.read(100, time.perf_counter(), 0.0)  # in flight when a stage failed
    t = led.totals("failed", "send: boom")
    assert t.drop_reasons["aborted"] == 1 and t.end_state == "failed" and t.error == "send: boom"
    check_balanced(t)


def test_assembler_alone_fills_pooled_batches_and_skips_uncommitted_slots() -> None:
    from lclstream.config import load_config

    src = CountingSource(n=7)
    pp = load_config(small_cfg()).processing_pipeline
    plans = plan_detectors(pp, src)  # type: ignore[arg-type]
    asm = BatchAssembler(plans, batch_size=3, pool_batches=4)
    full = []
    for ev in src.events():
        asm.calibrate(ev)
        if ev.event_id == 4:
            continue  # vetoed: its slot is reused by the next event
        b = asm.commit(ev)
        if b is not None:
            full.append(b)
    assert asm.pending == 0 and asm.flush() is None  # 6 kept events: two full batches
    assert [b.event_ids.tolist() for b in full] == [[0, 1, 2], [3, 5, 6]]
    assert full[1].arrays["det"][1, 0, 0] == 5


# ------------------------------------------------------------------ how a run ends


def test_source_error_ends_failed_with_the_error_text() -> None:
    h = InProcessDataHandler(maxsize=100)
    pipe = Pipeline(small_cfg(), source=CountingSource(n=10, fail_after=5), handlers=[h])
    with pytest.raises(SourceError, match="file lost at event 5") as info:
        pipe.run()
    assert isinstance(info.value, PipelineFailed) and info.value.stage == "read"
    assert not info.value.result.complete and info.value.result.end_state == "failed"
    msgs = drain(h)
    end = msgs[-1].totals
    assert end is not None and end.end_state == "failed" and "file lost at event 5" in end.error
    assert end.events_read == 5 and end.events_sent == 5
    t = verdict(msgs)
    assert not t.complete  # all 5 announced events arrived, but the run did not end as asked
    assert any("ended failed" in p for p in t.summary()["problems"])


def test_cancel_ends_cancelled_and_the_receiver_says_incomplete() -> None:
    h = InProcessDataHandler(maxsize=2)
    pipe = Pipeline(small_cfg(), source=CountingSource(n=100_000), handlers=[h])
    got: list[ParsedMessage] = []

    import threading

    def consume() -> None:
        while (m := h.get(timeout=30)) is not None:
            got.append(formats.parse(m))
            if len(got) == 3:
                pipe.cancel()

    t = threading.Thread(target=consume)
    t.start()
    res = pipe.run()
    t.join(30)
    assert res.end_state == "cancelled" and not res.complete
    end = got[-1].totals
    assert end is not None and end.end_state == "cancelled"
    check_balanced(end)
    assert end.events_sent == sum(len(m.batch) for m in got if m.kind == "data" and m.batch)
    assert not verdict(got).complete


class FailingCalibrator:
    """A calibrator whose fourth call fails, as a kernel given a corrupt frame would."""

    dtype = np.dtype(np.float32)

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == 4:
            raise ValueError("corrupt frame")
        out[...] = raw
        return out


def test_calibration_failure_is_counted_as_dropped_with_its_reason() -> None:
    h = InProcessDataHandler(maxsize=100)
    pipe = Pipeline(small_cfg(), source=CountingSource(n=10), handlers=[h])
    pipe.assembler.plans["det"].calibrator = FailingCalibrator()
    pipe.assembler.plans["det"].out_dtype = np.dtype(np.uint16)
    with pytest.raises(PipelineFailed, match="corrupt frame"):
        pipe.run()
    end = drain(h)[-1].totals
    assert end is not None and end.end_state == "failed"
    assert end.drop_reasons.get("calibration_failed") == 1
    assert end.events_read == 4 and end.events_sent == 3
    check_balanced(end)


def test_truncated_when_the_source_has_fewer_events_than_asked() -> None:
    h = InProcessDataHandler(maxsize=100)
    res = Pipeline(small_cfg(), source=CountingSource(n=4), handlers=[h], events=10).run()
    assert res.end_state == "truncated" and not res.complete and res.events == 4
    end = drain(h)[-1].totals
    assert end is not None and end.end_state == "truncated" and end.events_read == 4
    assert "4 of 10" in end.error
    # asking for exactly what there is (or less) completes
    h2 = InProcessDataHandler(maxsize=100)
    assert Pipeline(small_cfg(), source=CountingSource(n=4), handlers=[h2], events=4).run().complete


def test_pub_with_no_subscriber_counts_drops_not_sends() -> None:
    port = free_port()
    pub = BinaryDataStreamingDataHandler(
        [f"tcp://127.0.0.1:{port}"], role="server", socket_type="pub", close_timeout_s=1.0
    )
    res = Pipeline(small_cfg(), source=CountingSource(n=9), handlers=[pub]).run()
    assert res.events == 0 and res.messages == 0
    assert res.totals.drop_reasons == {"pub_drop": 9}
    check_balanced(res.totals)


def test_with_sender_into_a_consumer_that_stopped_reading_raises() -> None:
    chunk = np.zeros(1 << 20, dtype=np.uint8)
    with Receiver("tcp://127.0.0.1:*", timeout=5, rcvhwm=1, rcvbuf=65536) as r:
        with pytest.raises(TransportError, match="could not be delivered"):
            with Sender(r.endpoints, timeout=0.5, sndhwm=50, sndbuf=65536) as s:
                for _ in range(10):  # queued: the consumer never reads them
                    s.send(chunk)
    # an error already on its way out is the one raised, with the loss noted on it
    with Receiver("tcp://127.0.0.1:*", timeout=5, rcvhwm=1, rcvbuf=65536) as r:
        with pytest.raises(KeyError) as info:
            with Sender(r.endpoints, timeout=0.5, sndhwm=50, sndbuf=65536) as s:
                for _ in range(10):
                    s.send(chunk)
                raise KeyError("user code failed")
    assert any("could not be delivered" in n for n in info.value.__notes__)


# ------------------------------------------------------------------------- SIGTERM


def test_sigterm_to_lclstream_stream_sends_an_end_message_saying_so(tmp_path: Path) -> None:
    import threading

    streaming = threading.Event()
    rx = ReceiverThread("tcp://127.0.0.1:*", timeout=60, on_message=lambda r: streaming.set())
    url = rx.endpoint()
    cfg = {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 10**6},
        "data_sources": {"detector_data": synthetic_jungfrau(9.5)},
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 2},
        "data_serializer": {"type": "HDF5BinarySerializer"},
        "data_handlers": [
            {"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"}
        ],
    }
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "stream", str(path), "--json"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert streaming.wait(60), "no message arrived"
        time.sleep(0.5)  # well into the stream
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err  # the stream did not end as asked
    summary = json.loads(out)
    assert summary["end_state"] == "cancelled" and summary["complete"] is False
    res = rx.join()
    assert res.ended and not res.complete and res.end_states == {"cancelled": 1}
    assert any("SIGTERM" in p for p in res.problems)
    assert res.events == res.events_sent > 0


def test_receiver_complete_only_when_every_sender_completed() -> None:
    """A stream whose end messages all arrived and whose events all arrived is still not
    complete when one sender says it was cancelled."""
    from lclstream.formats.hdf5 import HDF5BinarySerializer
    from lclstream.protocols import EventBatch, StreamInfo, StreamTotals

    msgs = []
    for sender, state in ((0, "completed"), (1, "cancelled")):
        ser = HDF5BinarySerializer(compression=None)
        ser.start(StreamInfo("s", sender=sender, senders=2))
        b = EventBatch(
            np.arange(2, dtype=np.uint64),
            np.zeros(2, np.uint64),
            {"det": np.zeros((2, 4, 8), np.uint16)},
        )
        msgs += ser.serialize(b)
        msgs += ser.end(
            StreamTotals(2, 1, 0, {}, events_read=2, end_state=state)  # type: ignore[arg-type]
        )
    t = verdict([formats.parse(m) for m in msgs])
    assert t.done and not t.complete
    assert t.summary()["end_states"] == {"completed": 1, "cancelled": 1}


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_in_a_library_run_cancels_cleanly() -> None:
    """Pipeline.run in the main thread turns SIGTERM into a clean cancel."""
    import threading

    h = InProcessDataHandler(maxsize=1000)
    pipe = Pipeline(small_cfg(), source=CountingSource(n=10**7), handlers=[h])
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    res = pipe.run()
    assert res.end_state == "cancelled" and "SIGTERM" in res.totals.error
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored
    msgs = drain(h)
    assert msgs[-1].totals is not None and msgs[-1].totals.end_state == "cancelled"


def test_stages_alone_run_synchronously_in_order() -> None:
    """Each stage is a plain object: fed a queue holding everything and STOP, ``run()``
    returns — no threads needed to test one."""
    import queue

    from lclstream.config import load_config
    from lclstream.formats.hdf5 import HDF5BinarySerializer
    from lclstream.protocols import StreamInfo
    from lclstream.run.stages import STOP, ReadStage, RunControl, SendStage, SerializeStage

    src = CountingSource(n=7)
    pp = load_config(small_cfg()).processing_pipeline
    asm = BatchAssembler(plan_detectors(pp, src), batch_size=3, pool_batches=4)  # type: ignore[arg-type]
    led, ctl = Ledger(), RunControl()
    q1: queue.Queue[Any] = queue.Queue()
    q2: queue.Queue[Any] = queue.Queue()
    reader = ReadStage(src, asm, led, ctl, q1, max_events=10)
    reader.run()
    assert reader.exhausted and q1.qsize() == 4 and q1.queue[-1] is STOP  # 3 + 3 + 1, STOP
    ser = HDF5BinarySerializer(compression=None)
    ser.start(StreamInfo("s"))
    SerializeStage(ser, led, ctl, q1, q2).run()
    h = InProcessDataHandler(maxsize=100)
    sender = SendStage([h], ser, led, ctl, q2, [], lambda: led.totals("completed"))
    sender.run()
    assert sender.end_delivered and ctl.first_error is None
    msgs = drain(h)
    assert [m.kind for m in msgs] == ["data", "data", "data", "end"]
    assert msgs[-1].totals is not None and msgs[-1].totals.events_sent == 7
