"""The demo's two-process run as library code: synthetic JF4M frames -> photons -> bslz4 ->
ZeroMQ -> a receiver process that opens every message and checks completeness.

It lives here, not in the CLI, because the demo is also what the tests and the end-to-end
benchmark measure: ``lclstream demo``, ``bench/bench_e2e.py`` and ``tests/test_demo.py`` all
run exactly this function, so a number in ``bench/RESULTS.md`` is the number a user sees.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lclstream.errors import LclstreamError
from lclstream.run.result import PipelineResult

__all__ = ["DemoRun", "demo_config", "fresh_dir", "run_demo"]

#: Seconds the demo waits for its receiver (start-up, and the result after the stream ended).
RECEIVER_TIMEOUT = 60.0


#: The demo's hit finding (``--hits``): peakfinder8 on the photon frames; the synthetic hits
#: show 60-90 peaks, its misses (stray photons) 10-15.
DEMO_HITS = {"peakfinder": {"adc_threshold": 2, "minimum_snr": 5}, "hit_veto": {"min_peaks": 30}}


def demo_config(
    endpoint: str, events: int, fmt: str = "hdf5", *, hits: bool = False
) -> dict[str, Any]:
    """The demo's stream: synthetic JF4M SFX frames -> photons -> bslz4 -> ``endpoint``;
    with ``hits``, peakfinder8 and a hit veto drop the misses (reason ``miss``)."""
    from lclstream.registry import format_names

    serializer: dict[str, Any] = {"type": format_names()[fmt]}
    if fmt in ("hdf5", "raw", "simplon"):
        serializer["compression"] = "bitshuffle_with_lz4"
    reduction = {"reduction": {"detector_data": DEMO_HITS}} if hits else {}
    return {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": events},
        "data_sources": {
            "detector_data": {
                "type": "SyntheticDetector",
                "detector": "jungfrau4M",
                "hit_fraction": 0.1,
                "seed": 1,
                "pool_frames": 8,  # base frames made at start-up (events cycle through them)
            }
        },
        "processing_pipeline": {
            "type": "BatchProcessingPipeline",
            "batch_size": 10,
            "calibration": {
                "detector_data": {
                    "detector": "jungfrau",
                    "constants": "synthetic",
                    "output": "photons",
                }
            },
            **reduction,
        },
        "data_serializer": serializer,
        "data_handlers": [
            {
                "type": "BinaryDataStreamingDataHandler",
                "urls": [endpoint],
                "role": "client",
                "socket_type": "push",
            }
        ],
    }


@dataclass
class DemoRun:
    """Both ends of one demo run: the streamer's result and the receiver's summary."""

    result: PipelineResult
    received: dict[str, Any]
    fmt: str
    out_dir: Path
    #: process start-up of the streamer (pipeline construction included) -> first event
    startup_seconds: float
    files: list[str] = field(default_factory=list)
    #: where the stream went when it went to a consumer of the user's (``run_demo(to=...)``),
    #: which then proves completeness itself; empty: the demo's own receiver
    consumer: str = ""

    @property
    def complete(self) -> bool:
        if self.consumer:  # all the demo can know: every event was read and sent
            return bool(self.result.complete)
        return bool(self.received["complete"] and self.result.complete)

    def as_dict(self) -> dict[str, Any]:
        d = self.result.summary()
        d["startup_seconds"] = self.startup_seconds
        d["format"] = self.fmt
        d["received_events"] = self.received.get("events")
        d["received_bytes"] = self.received.get("bytes")
        d["consumer"] = self.consumer
        d["complete"] = self.complete
        d["out_dir"] = str(self.out_dir)
        d["files"] = self.files
        return d


def fresh_dir(base: Path) -> Path:
    """``base``, or ``base-1``, ``base-2``… whichever does not exist yet."""
    for i in range(1000):
        p = base if i == 0 else base.with_name(f"{base.name}-{i}")
        if not p.exists():
            return p
    raise LclstreamError(f"no free directory name next to {base}")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def _receiver_main(
    q: Any, url: str, out: str, fmt: str, expect: int | None, timeout: float, max_files: int
) -> None:
    """The receiver process: binds ``url``, reports progress and its result on ``q``."""
    try:
        from lclstream.run.receive import receive

        last = [0.0]

        def on_ready(eps: list[str]) -> None:
            q.put(("ready", eps))

        def on_msg(r: Any) -> None:
            now = time.perf_counter()
            if now - last[0] > 0.1:
                last[0] = now
                q.put(("progress", r.events, r.bytes))

        res = receive(
            url,
            bind=True,
            out=out,
            format=fmt,
            expect=expect,
            timeout=timeout,
            max_files=max_files,
            reuse_buffers=True,  # the receiver process only receives: keep buffers warm
            decode_threads=1,  # the streamer uses the machine's other cores
            on_ready=on_ready,
            on_message=on_msg,
        )
        q.put(("done", res.as_dict()))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
        q.put(("error", f"{type(e).__name__}: {e}"))


class _ReceiverLink:
    """The parent's view of the receiver process: its progress, result or error."""

    def __init__(self, q: Any, child: Any) -> None:
        self.q, self.child = q, child
        self.events = 0
        self.bytes = 0
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.ready = False

    def drain(self, wait: float = 0.0) -> None:
        while True:
            try:
                msg = self.q.get(timeout=wait) if wait > 0 else self.q.get_nowait()
            except queue_mod.Empty:
                return
            wait = 0.0
            if msg[0] == "ready":
                self.ready = True
            elif msg[0] == "progress":
                self.events, self.bytes = msg[1], msg[2]
            elif msg[0] == "done":
                self.result = msg[1]
                self.events, self.bytes = msg[1]["events"], msg[1]["bytes"]
            elif msg[0] == "error":
                self.error = msg[1]

    def await_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready:
            if self.error is not None:
                raise LclstreamError(f"demo receiver failed: {self.error}")
            if time.monotonic() > deadline:
                raise LclstreamError(f"demo receiver not ready after {timeout:.0f} s")
            if not self.child.is_alive() and self.q.empty():
                raise LclstreamError("demo receiver exited before it was ready")
            self.drain(0.1)

    def await_result(self, timeout: float, tick: Callable[[], None]) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while self.result is None and self.error is None:
            if time.monotonic() > deadline or (not self.child.is_alive() and self.q.empty()):
                break
            self.drain(0.05)
            tick()
        if self.error is not None:
            raise LclstreamError(f"demo receiver failed: {self.error}")
        if self.result is None:
            raise LclstreamError(f"demo receiver gave no result within {timeout:.0f} s")
        return self.result


def run_demo(
    events: int = 200,
    out: Path | None = None,
    fmt: str = "hdf5",
    *,
    on_sent: Callable[[dict[str, Any]], None] | None = None,
    on_received: Callable[[int, int], None] | None = None,
    max_files: int = 3,
    started_at: float | None = None,
    hits: bool = False,
    to: str | None = None,
) -> DemoRun:
    """Stream ``events`` synthetic events to a receiver process and wait for its verdict.

    ``on_sent`` gets the pipeline's progress dicts, ``on_received`` (events, bytes) as the
    receiver reports them; ``started_at`` (a ``time.perf_counter()`` value) is when the
    caller's process started, so start-up includes the imports the caller paid for.
    ``to``: stream to that bound endpoint instead (a consumer of one's own, such as a Ray
    example), with no receiver of the demo's; that consumer gives the verdict.
    """
    from lclstream.config import load_config
    from lclstream.run.pipeline import Pipeline

    t_start = time.perf_counter() if started_at is None else started_at
    if to is not None:
        pipe = Pipeline(load_config(demo_config(to, events, fmt, hits=hits)), progress=on_sent)
        res = pipe.run()
        return DemoRun(
            result=res,
            received={},
            fmt=fmt,
            out_dir=Path(),
            startup_seconds=(pipe.created_at - t_start) + res.startup_seconds,
            consumer=to,
        )
    out_dir = out if out is not None else fresh_dir(Path.cwd() / "lclstream-demo-out")
    # The streamer connects, so it may start before the receiver has bound: pick the port
    # here and let the receiver's start-up (a fresh interpreter) overlap the pipeline's.
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    child = ctx.Process(
        target=_receiver_main,
        # with a hit veto the receiver cannot know how many events to expect: the end
        # message's totals say how many were sent and how many dropped as misses
        args=(
            q,
            endpoint,
            str(out_dir),
            fmt,
            None if hits else events,
            RECEIVER_TIMEOUT,
            max_files,
        ),  # fmt: skip
        name="lclstream-demo-receiver",
        daemon=True,
    )
    link = _ReceiverLink(q, child)

    def tick() -> None:
        if on_received is not None:
            on_received(link.events, link.bytes)

    def on_progress(st: dict[str, Any]) -> None:
        if on_sent is not None:
            on_sent(st)
        link.drain()
        tick()

    child.start()
    try:
        pipe = Pipeline(
            load_config(demo_config(endpoint, events, fmt, hits=hits)), progress=on_progress
        )
        link.await_ready(RECEIVER_TIMEOUT)
        res = pipe.run()
        received = link.await_result(RECEIVER_TIMEOUT, tick)
        tick()
    finally:
        child.join(5)
        if child.is_alive():
            child.terminate()
            child.join(2)
    return DemoRun(
        result=res,
        received=received,
        fmt=fmt,
        out_dir=out_dir,
        startup_seconds=(pipe.created_at - t_start) + res.startup_seconds,
        files=list(received.get("files", [])),
    )
