"""A raw (zero-copy) stream into a consumer that stops reading ends on cancel() and SIGTERM.

The fault: zero-copy messages keep their pooled buffers until libzmq delivers them, so once
the consumer stops reading every buffer sits in libzmq's queue (below the high-water mark,
so no send blocks and no send timeout fires) and the reader waits for a free buffer. That
wait had no deadline and ignored cancel(), Ctrl-C and SIGTERM; now cancelling the pipeline
cancels its pools (BufferPool.cancel), which wakes the reader at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq
from lclstream.pipeline import Pipeline, PipelineFailed
from proc_helpers import cli_env, synthetic_jungfrau


def stalled_consumer() -> tuple[zmq.Socket[Any], str]:
    """A PULL socket that binds and will read one message, then nothing: tiny queues."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 65536)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def raw_config(url: str) -> dict[str, Any]:
    return {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 10**6},
        "data_sources": {"detector_data": synthetic_jungfrau(9.5)},
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 2},
        "data_serializer": {"type": "RawBatchSerializer"},
        "data_handlers": [
            {
                "type": "BinaryDataStreamingDataHandler",
                "urls": [url],
                "role": "client",
                "buffer": 65536,
                "close_timeout_s": 1.0,
            }
        ],
    }


def wait_until_reader_waits(pipe: Pipeline, limit: float = 30.0) -> None:
    """Until the reader is blocked on its pool (every buffer held by libzmq)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        stats = pipe.assembler.pool_stats()
        if any(s["waits"] > 0 and s["available"] == 0 for s in stats.values()):
            time.sleep(0.3)  # well into the wait
            return
        time.sleep(0.05)
    raise AssertionError(f"the reader never waited on its pool: {pipe.assembler.pool_stats()}")


def test_cancel_ends_a_raw_stream_into_a_consumer_that_stopped_reading() -> None:
    sock, url = stalled_consumer()
    try:
        pipe = Pipeline(raw_config(url))
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = pipe.run()
            except PipelineFailed as e:  # close() could not deliver: reported, not hung
                outcome["result"] = e.result
            except BaseException as e:  # noqa: BLE001
                outcome["error"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        assert sock.poll(30_000), "no message arrived"
        sock.recv_multipart()  # one message, then the consumer stops reading
        wait_until_reader_waits(pipe)
        assert t.is_alive()
        t0 = time.monotonic()
        pipe.cancel()
        t.join(30)
        assert not t.is_alive(), "the pipeline did not end after cancel()"
        assert time.monotonic() - t0 < 30
        assert "error" not in outcome, outcome.get("error")
        res = outcome["result"]
        assert res.totals.end_state == "cancelled" and not res.complete
        assert res.totals.events_read == res.totals.events_sent + res.totals.events_dropped
    finally:
        sock.close(0)


def test_sigterm_ends_lclstream_stream_into_a_consumer_that_stopped_reading(
    tmp_path: Path,
) -> None:
    sock, url = stalled_consumer()
    path = tmp_path / "raw.yaml"
    path.write_text(json.dumps(raw_config(url)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "stream", str(path), "--json"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sock.poll(60_000), "no message arrived"
        sock.recv_multipart()
        time.sleep(3.0)  # the reader is now waiting on its pool (buffers held by libzmq)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sock.close(0)
    assert proc.returncode != 0, err  # cancelled: not complete
    summary = json.loads(out) if out.strip() else {}
    if summary:
        assert summary["end_state"] == "cancelled" and summary["complete"] is False
