"""lclstream.inspect: datasets, filters, ratios, stream attributes, completeness facts."""

from __future__ import annotations

import io
from pathlib import Path

from fmt_helpers import batch, frames, info
from lclstream.formats import HDF5BinarySerializer, SimplonBinarySerializer
from lclstream.inspect import inspect, render
from lclstream.protocols import StreamTotals
from lclstream.writer import FileWriter
from rich.console import Console

SHAPE = (2, 32, 64)


def _stream(ser_cls=HDF5BinarySerializer, senders: int = 1, n: int = 2):  # type: ignore[no-untyped-def]
    out = []
    for s in range(senders):
        ser = ser_cls()
        out += ser.start(info(SHAPE, "uint16", sender=s, senders=senders))
        sent = 0
        for k in range(n):
            msgs = ser.serialize(batch(frames(3, SHAPE, "uint16", seed=k), first_id=10 * k))
            sent += len(msgs)  # what a pipeline counts: the data messages it sent
            out += msgs
        out += ser.end(StreamTotals(events_sent=3 * n, messages_sent=sent))
    return out


def test_inspect_file_reports_datasets_compression_and_attrs(tmp_path: Path) -> None:
    with FileWriter(tmp_path) as w:
        for m in _stream():
            w.write_message(m)
    rep = inspect(w.files[0])
    (item,) = rep["items"]
    data = next(d for d in item["datasets"] if d["path"] == "/entry_1/data_1/data")
    assert data["shape"] == [3, *SHAPE] and data["dtype"] == "uint16"
    assert data["compression"] == "bitshuffle+lz4" and data["ratio"] > 3
    assert data["chunks"] == [1, *SHAPE]
    assert item["attrs"]["stream_id"] == "test-stream" and item["events"] == 3
    rep_dir = inspect(tmp_path)  # 2 data files + the end file: the directory proves itself
    assert rep_dir["messages"] == 3 and rep_dir["events"] == 6
    assert rep_dir["streams"]["test-stream"]["complete"] is True
    w.files[0].unlink()
    assert inspect(tmp_path)["streams"]["test-stream"]["complete"] is False


def test_inspect_messages_completeness() -> None:
    msgs = _stream(senders=2)
    rep = inspect(msgs)
    st = rep["streams"]["test-stream"]
    assert st["complete"] is True and st["events"] == 12 and len(st["ends"]) == 2
    missing_end = [m for i, m in enumerate(msgs) if i != len(msgs) - 1]
    st = inspect(missing_end)["streams"]["test-stream"]
    assert st["complete"] is False and st["missing_end_from"] == [1]
    lost_one = msgs[:1] + msgs[2:]
    assert inspect(lost_one)["streams"]["test-stream"]["complete"] is False


def test_inspect_stream2_and_render() -> None:
    rep = inspect(_stream(SimplonBinarySerializer))
    assert [it["kind"] for it in rep["items"]] == ["start"] + ["data"] * 6 + ["end"]
    assert rep["streams"]["test-stream"]["complete"] is True
    buf = io.StringIO()
    Console(file=buf, width=120).print(render(rep))
    assert "test-stream" in buf.getvalue()
    bad = inspect([[b"nonsense"]])
    assert bad["items"][0]["kind"] == "error"
