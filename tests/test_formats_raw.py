"""Raw batches: header + one payload frame that is the batch's memory; zero-copy parsing."""

from __future__ import annotations

import cbor2
import numpy as np
import pytest
from fmt_helpers import batch, frames, info
from lclstream.errors import ConfigError, FormatError
from lclstream.formats import RawBatchSerializer, detect, make_serializer, parse, serializer_class
from lclstream.protocols import StreamTotals

SHAPE = (2, 16, 32)


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "float32"])
def test_raw_payload_is_the_batch_memory_and_parse_views_the_frame(dtype: str) -> None:
    data = frames(3, SHAPE, dtype)
    ser = RawBatchSerializer()
    ser.start(info(SHAPE, dtype))
    b = batch(data, photon_energy=np.array([9.5, 9.6, 9.7]))
    (msg,) = ser.serialize(b)
    head, payload = msg
    assert np.shares_memory(np.frombuffer(payload, np.uint8), data)  # no copy when sending
    h = cbor2.loads(head)
    assert h["format"] == "lclstream-raw" and h["dtype"] == np.dtype(dtype).str
    assert h["shape"] == [3, *SHAPE] and h["sequence"] == 0 and h["stream_id"] == "test-stream"
    received = bytearray(bytes(payload))  # what a receiver holds
    p = parse([bytes(head), received])
    arr = p.batch.arrays["detector_data"]  # type: ignore[union-attr]
    assert np.shares_memory(arr, np.frombuffer(received, np.uint8))  # a view, no copy
    np.testing.assert_array_equal(arr, data)
    np.testing.assert_array_equal(p.batch.arrays["photon_energy"], [9.5, 9.6, 9.7])  # type: ignore[union-attr]
    np.testing.assert_array_equal(p.batch.event_ids, b.event_ids)  # type: ignore[union-attr]
    assert arr.__dlpack_device__() == (1, 0)


def test_raw_compressed_roundtrip() -> None:
    data = frames(4, SHAPE, "uint16")
    ser = RawBatchSerializer(compression="bitshuffle_with_lz4")
    ser.start(info(SHAPE, "uint16"))
    (msg,) = ser.serialize(batch(data))
    assert len(msg[1]) < data.nbytes
    p = parse(msg)
    np.testing.assert_array_equal(p.batch.arrays["detector_data"], data)  # type: ignore[union-attr]


def test_raw_end_message() -> None:
    ser = RawBatchSerializer()
    ser.start(info(SHAPE, "uint16", sender=2, senders=4))
    ser.serialize(batch(frames(1, SHAPE, "uint16")))
    totals = StreamTotals(1, 1, 2, {"queue_full": 2})
    ((head, payload),) = ser.end(totals)
    assert payload == b""
    p = parse([head, payload])
    assert p.kind == "end" and p.totals == totals and p.sender == 2 and p.senders == 4
    assert p.sequence == 1
    assert detect([head, payload]) == "raw"


def test_raw_corrupt() -> None:
    data = frames(2, SHAPE, "uint16")
    ser = RawBatchSerializer()
    ser.start(info(SHAPE, "uint16"))
    ((head, payload),) = ser.serialize(batch(data))
    with pytest.raises(FormatError, match="truncated"):
        parse([head, bytes(payload)[:-10]])
    from lclstream.formats import raw

    # refused by the CBOR pre-scan (before cbor2 sees it) or by cbor2 itself
    with pytest.raises(FormatError, match="not valid CBOR|break code"):
        raw.parse([b"\xff\xfe", bytes(payload)])
    with pytest.raises(FormatError, match="2 frames"):
        raw.parse([head])


def test_registry() -> None:
    assert serializer_class("hdf5").__name__ == "HDF5BinarySerializer"
    for name in (
        "HDF5BinarySerializer",
        "SimplonBinarySerializer",
        "RawBatchSerializer",
        "LclstreamerSimplonSerializer",
    ):
        assert serializer_class(name).__name__ == name
        make_serializer(name)  # every option has a default
    with pytest.raises(ConfigError, match="available"):
        serializer_class("NoSuchSerializer")
