"""The receiver keeps going: garbage, foreign and forged messages through real sockets on
127.0.0.1 are counted under ``rejected`` and decide nothing; ``--strict`` stops at the first;
messages already received are not lost when the receiver stops."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import zmq
from fmt_helpers import batch, frames, info
from lclstream.errors import RejectedMessage
from lclstream.formats.hdf5 import HDF5BinarySerializer
from lclstream.formats.simplon import SimplonBinarySerializer
from lclstream.protocols import StreamTotals
from proc_helpers import ReceiverThread, cli_env, free_port

SHAPE = (8, 16)
GARBAGE = b"not a message"  # 13 bytes


def stream(sid: str = "A", n: int = 3, per: int = 2, ser_cls: Any = HDF5BinarySerializer,
           totals: StreamTotals | None = None, senders: int = 1) -> list[list[bytes]]:  # fmt: skip
    """A whole stream's messages (frames as bytes)."""
    ser = ser_cls()
    out = list(ser.start(info(SHAPE, "uint16", stream_id=sid, senders=senders)))
    data = frames(max(1, n * per), SHAPE, "uint16")
    for k in range(n):
        out += ser.serialize(batch(data[k * per : (k + 1) * per], first_id=k * per))
    sent = n * per
    out += ser.end(totals or StreamTotals(sent, ser.sequence, events_read=sent))
    return [[bytes(memoryview(f)) for f in m.frames] for m in out]


class Pusher:
    def __init__(self, url: str) -> None:
        self.ctx = zmq.Context()
        self.s = self.ctx.socket(zmq.PUSH)
        self.s.setsockopt(zmq.LINGER, 5000)
        self.s.connect(url)

    def send(self, msgs: list[list[bytes]]) -> None:
        for m in msgs:
            self.s.send_multipart(m)

    def close(self) -> None:
        self.s.close()
        self.ctx.term()


def run(msgs: list[list[bytes]], **kw: Any) -> Any:
    url = f"tcp://127.0.0.1:{free_port()}"
    rt = ReceiverThread(url, timeout=kw.pop("timeout", 5.0), **kw)
    ep = rt.endpoint()
    p = Pusher(ep)
    try:
        p.send(msgs)
        return rt.join()
    finally:
        p.close()


def test_garbage_message_is_counted_and_the_stream_completes() -> None:
    a = stream("A")
    t0 = time.perf_counter()
    res = run([a[0], [GARBAGE], a[1], [b"\x89HDF\r\n\x1a\n" + b"\0" * 40], *a[2:]])
    assert time.perf_counter() - t0 < 10
    assert res.complete and res.events == 6 and not res.timed_out
    assert res.rejected == 2 and res.rejected_reasons == {"corrupt": 2}
    assert "message 1: corrupt" in res.rejections[0]


def test_strict_makes_the_first_rejected_message_an_error() -> None:
    a = stream("A")
    with pytest.raises(RejectedMessage, match="message 1 rejected"):
        run([a[0], [GARBAGE], *a[1:]], strict=True)


def test_foreign_stream_is_rejected_and_does_not_change_the_verdict() -> None:
    a, b = stream("A"), stream("B", n=2)
    res = run([a[0], b[0], a[1], b[1], b[2], a[2], a[3]])
    assert res.complete and res.stream_id == "A" and res.events == 6
    assert res.rejected == 3 and res.rejected_reasons == {"foreign": 3}
    assert res.stream_ids == ["A"]


def test_stream_id_pins_the_stream() -> None:
    a, b = stream("A"), stream("B", n=2)
    res = run([*b, *a], stream_id="A")
    assert res.complete and res.stream_id == "A" and res.rejected == len(b)


def test_forged_end_of_another_stream_sent_first_does_not_end_the_receive() -> None:
    """An end message alone (what a forger sends first) does not choose the stream."""
    forged = stream("F", n=0, totals=StreamTotals())[-1]
    a = stream("A")
    res = run([forged, *a])
    assert res.complete and res.stream_id == "A" and res.events == 6
    assert res.rejected_reasons == {"foreign": 1}


def test_forged_end_with_impossible_counts_is_refused_and_the_stream_completes() -> None:
    a = stream("A")
    forged_senders = stream("A", n=0, senders=10**12)[-1]  # a data-less end, 10^12 senders
    forged_data = stream("A", n=1, senders=10**12)[0]
    t0 = time.perf_counter()
    res = run([a[0], forged_senders, forged_data, *a[1:]])
    assert time.perf_counter() - t0 < 10
    assert res.complete and res.events == 6 and res.senders == 1
    assert res.rejected == 2 and res.rejected_reasons == {"limit": 2}


def test_forged_end_claiming_1e13_messages_does_not_complete_the_stream() -> None:
    a = stream("A")
    forged = stream("A", n=0, totals=StreamTotals(events_sent=6, messages_sent=10**13))[-1]
    t0 = time.perf_counter()
    res = run([a[0], a[1], forged, *a[2:]])
    assert time.perf_counter() - t0 < 10
    assert not res.complete  # the verdict is never complete on a forged end
    assert any("missing" in p for p in res.problems)


def test_empty_stream_of_end_messages_only_completes_after_the_grace() -> None:
    only_end = stream("E", n=0, totals=StreamTotals())
    assert len(only_end) == 1
    t0 = time.perf_counter()
    res = run(only_end, end_grace=0.3)
    assert res.complete and res.stream_id == "E" and time.perf_counter() - t0 < 5


def test_simplon_start_message_pins_the_stream() -> None:
    a, b = (
        stream("A", ser_cls=SimplonBinarySerializer),
        stream("B", ser_cls=SimplonBinarySerializer),
    )
    res = run([a[0], *b, *a[1:]])
    assert res.complete and res.stream_id == "A" and res.rejected == len(b)


def test_messages_already_received_are_processed_when_interrupted() -> None:
    """Ctrl-C after the whole stream is queued: every queued message is still accounted for
    (before, close() with LINGER 0 discarded them)."""
    a = stream("A", n=6)
    calls = []

    def slow_then_interrupt(res: Any) -> None:
        calls.append(res.messages)
        if len(calls) == 1:
            time.sleep(1.0)  # the rest of the stream queues up meanwhile
            raise KeyboardInterrupt("interrupted (test)")

    res = run(a, on_message=slow_then_interrupt)
    assert res.interrupted == "interrupted (test)"
    assert res.events == 12 and res.messages == 7  # all of it, though interrupted


def _cli(args: list[str], msgs: list[list[bytes]]) -> subprocess.CompletedProcess[str]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "receive", url, "--json", "--timeout", "10", *args],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    p = Pusher(url)  # connects when the receiver has bound; messages queue meanwhile
    try:
        p.send(msgs)
        out, err = proc.communicate(timeout=60)
    finally:
        p.close()
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_cli_receive_keeps_going_and_strict_stops() -> None:
    a, b = stream("A"), stream("B", n=1)
    cp = _cli([], [a[0], [GARBAGE], b[0], *a[1:]])
    assert cp.returncode == 0, cp.stderr
    d = json.loads(cp.stdout)
    assert d["complete"] and d["events"] == 6 and d["rejected"] == 2
    assert d["rejected_reasons"] == {"corrupt": 1, "foreign": 1}
    cp = _cli(["--strict"], [a[0], [GARBAGE], *a[1:]])
    assert cp.returncode == 1 and "rejected" in cp.stderr and len(cp.stderr.splitlines()) == 1
