"""Hostile messages against the parsers: limits before allocation, CBOR pre-scan, forged
counts in O(1). Every message here is what an attacker could send; each must be refused
(typed error) or handled quickly, never allocated or looped over in proportion to its claims."""

from __future__ import annotations

import struct
import time
import tracemalloc

import cbor2
import numpy as np
import pytest
from fmt_helpers import batch, frames, info
from lclstream import formats
from lclstream.completeness import StreamTracker
from lclstream.errors import FormatError, RejectedMessage
from lclstream.formats import cbor_scan, raw, simplon
from lclstream.formats.lclstreamer_simplon import LclstreamerSimplonSerializer
from lclstream.formats.raw import RawBatchSerializer
from lclstream.formats.simplon import SimplonBinarySerializer
from lclstream.limits import DEFAULT_LIMITS, LimitExceeded, Limits
from lclstream.protocols import EventBatch, ParsedMessage, StreamTotals

SHAPE = (16, 32)


def _shared_bomb(levels: int = 40) -> bytes:
    """CBOR (value sharing, tags 28/29) of nested pairs that are each other's halves:
    ~0.3 KB that stands for 2^levels leaves once walked."""
    a: list = [1, 2]
    for _ in range(levels):
        a = [a, a]
    return cbor2.dumps(a, value_sharing=True)


def test_limits_defaults_are_typed_and_configurable() -> None:
    lim = Limits.from_strings(["max_senders=16", "max_message_bytes=1MiB", "max_files=none"])
    assert lim.max_senders == 16 and lim.max_message_bytes == 1 << 20 and lim.max_files is None
    assert DEFAULT_LIMITS.max_cbor_depth > 8 and DEFAULT_LIMITS.max_rank >= 4
    with pytest.raises(Exception, match="unknown limit"):
        Limits.from_strings(["max_sendrs=1"])
    with pytest.raises(Exception, match="non-negative"):
        Limits(max_senders=-1)


def test_cbor_scan_accepts_our_messages_and_counts_items() -> None:
    ser = SimplonBinarySerializer()
    msgs = ser.start(info(SHAPE, "uint16"))
    msgs += ser.serialize(batch(frames(2, SHAPE, "uint16")))
    for m in msgs:
        assert cbor_scan.scan(m.frames[0]) > 5


@pytest.mark.parametrize(
    "blob, match",
    [
        (b"\xd8\x1c\x81\x01", "tag 28"),
        (b"\x81\xd8\x1d\x00", "tag 29"),
        (b"\x81" * 100 + b"\x00", "nesting"),
        (b"\x9a\xff\xff\xff\xff\x00", "container"),  # 2^32 items declared, 1 present
        (b"\x5a\x7f\xff\xff\xff\x00", "string"),  # 2 GiB string declared
        (b"\x1c", "reserved"),
        (b"\x01\x02", "after"),
        (b"\xff", "break"),
        (b"\x82\x01", "truncated"),
    ],
)
def test_cbor_scan_refuses(blob: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        cbor_scan.scan(blob)


def test_value_sharing_message_refused_fast() -> None:
    """A ~1 KB stream2 / raw-batch / LCLStreamer message with shared references: < 1 s."""
    bomb = _shared_bomb()
    assert len(bomb) < 1100
    msgs = [
        [simplon.SELF_DESCRIBED + b"\xa2" + cbor2.dumps("type") + cbor2.dumps("image")
         + cbor2.dumps("data") + bomb],
        [b"\xa1" + cbor2.dumps("format") + bomb, b""],
        [b"m\xa1" + cbor2.dumps("type") + bomb],
    ]  # fmt: skip
    for m in msgs:
        t0 = time.perf_counter()
        with pytest.raises(FormatError, match="tag 2[89]"):
            kind = "raw" if len(m) == 2 else None
            formats.parse(m, kind=kind)
        assert time.perf_counter() - t0 < 1.0


def test_stream2_image_claiming_a_tebibyte_is_refused_before_allocation() -> None:
    chunk = struct.pack(">QI", 1 << 40, 8192) + b"\x00" * 4  # a 16-byte bslz4 chunk
    image = cbor2.CBORTag(
        40, [[1 << 20, 1 << 19], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 2, chunk]))]
    )
    msg = simplon.SELF_DESCRIBED + cbor2.dumps(
        {"type": "image", "series_id": 1, "series_unique_id": "x", "image_id": 0,
         "data": {"threshold_1": image}}
    )  # fmt: skip
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded, match="max_decoded_bytes"):
            simplon.parse([msg])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_stream2_image_within_limits_but_beyond_the_message_is_refused() -> None:
    """1 GiB declared by a 60-byte message: the expansion bound refuses it."""
    chunk = struct.pack(">QI", 1 << 30, 8192) + b"\x00" * 4
    image = cbor2.CBORTag(
        40, [[1 << 15, 1 << 14], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 2, chunk]))]
    )
    msg = simplon.SELF_DESCRIBED + cbor2.dumps(
        {"type": "image", "series_unique_id": "x", "data": {"c": image}}
    )
    with pytest.raises(LimitExceeded, match="decoded bytes"):
        simplon.parse([msg])


def test_raw_batch_shape_overflow_and_bad_dtype_are_refused() -> None:
    ser = RawBatchSerializer()
    ser.start(info(SHAPE, "uint16"))
    head_b, payload = ser.serialize(batch(frames(2, SHAPE, "uint16")))[0].frames
    head = cbor2.loads(head_b)
    for change, match in [
        ({"shape": [1 << 32, 1 << 32, 1]}, "max_dim|max_decoded"),  # int64 product wraps to 0
        ({"shape": [1] * 40}, "max_rank"),
        ({"dtype": "O"}, "plain numeric"),
        ({"dtype": "(1000000000,)i4"}, "dtype"),
    ]:
        forged = cbor2.dumps({**head, **change})
        with pytest.raises(FormatError, match=match):
            raw.parse([forged, payload])
    forged = cbor2.dumps({**head, "shape": [0, 1 << 20, 1 << 20], "dtype": "<u2"})
    with pytest.raises(FormatError):
        raw.parse([forged, b"x"])


def test_raw_batch_compressed_bomb_refused() -> None:
    ser = RawBatchSerializer(compression="bitshuffle_with_lz4")
    ser.start(info(SHAPE, "uint16"))
    head_b, payload = ser.serialize(batch(frames(1, SHAPE, "uint16")))[0].frames
    head = cbor2.loads(head_b)
    forged = cbor2.dumps({**head, "shape": [1, 1 << 18, 1 << 14]})  # 8 GiB from ~1 KB
    with pytest.raises(LimitExceeded):
        raw.parse([forged, payload])


def test_lclstreamer_simplon_limits() -> None:
    ser = LclstreamerSimplonSerializer()
    ser.start(info(SHAPE, "uint16"))
    msg = bytes(ser.serialize(batch(frames(1, SHAPE, "uint16")))[-1].frames[0])
    m = cbor2.loads(msg[1:])
    assert m["type"] == "image"
    formats.parse([msg])
    for change in ({"shape": [1 << 20, 1 << 20]}, {"dtype": "O"}, {"shape": [1] * 20}):
        with pytest.raises(FormatError):
            formats.parse([b"m" + cbor2.dumps({**m, **change})])


def test_tighter_limits_refuse_what_defaults_accept() -> None:
    ser = SimplonBinarySerializer()
    ser.start(info(SHAPE, "uint16"))
    msg = ser.serialize(batch(frames(1, SHAPE, "uint16")))[0].frames
    formats.parse(msg)
    with pytest.raises(LimitExceeded):
        formats.parse(msg, limits=Limits(max_message_bytes=16))
    with pytest.raises(LimitExceeded):
        formats.parse(msg, limits=Limits(max_cbor_depth=2))


# -- declared counts in O(1) ------------------------------------------------------------------
def _data(seq: int, senders: int = 1, sid: str = "s", sender: int = 0) -> ParsedMessage:
    ids = np.arange(2, dtype=np.uint64)
    b = EventBatch(ids, ids.copy(), {"detector_data": np.zeros((2, 2, 2))})
    return ParsedMessage("data", sid, sender, senders, seq, batch=b)


def test_end_claiming_1e13_messages_reports_in_bounded_time() -> None:
    t = StreamTracker()
    for q in range(3):
        t.add(_data(q))
    t.add(ParsedMessage("end", "s", 0, 1, 3, totals=StreamTotals(6, 10**13)))
    t0 = time.perf_counter()
    rep = t.report()
    s = t.summary()
    assert time.perf_counter() - t0 < 1.0
    assert rep.done and not rep.complete
    assert rep.per_sender[0].missing_count == 10**13 - 3
    assert rep.per_sender[0].missing[:3] == [3, 4, 5] and len(rep.per_sender[0].missing) <= 100
    assert any("missing" in p for p in s["problems"])


def test_data_claiming_1e12_senders_is_refused() -> None:
    t = StreamTracker()
    t0 = time.perf_counter()
    with pytest.raises(RejectedMessage, match="max_senders") as ei:
        t.add(_data(0, senders=10**12))
    assert ei.value.reason == "limit"
    with pytest.raises(RejectedMessage, match="outside"):
        t.add(_data(0, senders=2, sender=5))
    with pytest.raises(RejectedMessage, match="2\\^53"):
        t.add(_data(1 << 60))
    assert t.messages == 0 and time.perf_counter() - t0 < 1.0
    # a sequence number up to 2^53 is held in O(1)
    t.add(_data((1 << 53) - 1))
    t.add(ParsedMessage("end", "s", 0, 1, 0, totals=StreamTotals(2, 1 << 53)))
    t0 = time.perf_counter()
    assert not t.complete and time.perf_counter() - t0 < 1.0


def test_conflicting_second_end_message_refused() -> None:
    t = StreamTracker()
    t.add(ParsedMessage("end", "s", 0, 1, 0, totals=StreamTotals(0, 0)))
    t.add(ParsedMessage("end", "s", 0, 1, 0, totals=StreamTotals(0, 0)))  # a repeat: fine
    with pytest.raises(RejectedMessage, match="second end"):
        t.add(ParsedMessage("end", "s", 0, 1, 0, totals=StreamTotals(5, 5)))
