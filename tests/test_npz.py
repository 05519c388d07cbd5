"""NumpyBinarySerializer (.npz messages, LCLStreamer's and PeakNet's): a numpy-only consumer
reads every array by name; lclstream's receiver parses and accounts for the stream; hostile
archives are refused before they are inflated."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from lclstream import formats
from lclstream.errors import FormatError
from lclstream.formats.npz import NumpyBinarySerializer
from lclstream.pipeline import Pipeline
from lclstream.protocols import EventBatch, StreamInfo, StreamTotals
from proc_helpers import ReceiverThread


def batch(n: int = 3) -> EventBatch:
    rng = np.random.default_rng(0)
    return EventBatch(
        event_ids=np.arange(n, dtype=np.uint64),
        timestamps=np.arange(n, dtype=np.uint64) * 1000,
        arrays={
            "detector_data": rng.integers(0, 9, (n, 2, 8, 8)).astype(np.uint16),
            "photon_energy": np.full(n, 9.5),
        },
    )


@pytest.mark.parametrize("compressed", [False, True])
def test_a_numpy_consumer_reads_arrays_by_name(compressed: bool) -> None:
    ser = NumpyBinarySerializer(compressed)
    ser.start(StreamInfo(stream_id="s1", sender=1, senders=2))
    b = batch()
    (msg,) = ser.serialize(b)
    with np.load(io.BytesIO(bytes(msg.frames[0]))) as npz:  # what PeakNet's consumer does
        np.testing.assert_array_equal(npz["detector_data"], b.arrays["detector_data"])
        np.testing.assert_array_equal(npz["lclstream_event_id"], b.event_ids)
    p = formats.parse(msg.frames)
    assert (p.kind, p.stream_id, p.sender, p.senders, p.sequence) == ("data", "s1", 1, 2, 0)
    assert p.batch is not None and len(p.batch) == 3
    np.testing.assert_array_equal(p.batch.arrays["photon_energy"], b.arrays["photon_energy"])
    (end,) = ser.end(
        StreamTotals(events_sent=3, messages_sent=1, events_read=4, end_state="truncated")
    )
    e = formats.parse(end.frames)
    assert e.kind == "end" and e.totals is not None
    assert (e.totals.events_read, e.totals.end_state, e.sequence) == (4, "truncated", 1)


def test_stream_of_npz_messages_is_complete() -> None:
    rx = ReceiverThread("tcp://127.0.0.1:0", timeout=30)
    cfg = {
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 23},
        "data_sources": {
            "detector_data": {"type": "SyntheticDetector", "detector": "jungfrau", "pool_frames": 2}
        },
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 5},
        "data_serializer": {"type": "NumpyBinarySerializer", "use_compression": True},
        "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": [rx.endpoint()]}],
    }
    res = Pipeline(cfg).run()
    got = rx.join()
    assert res.complete and got.complete and got.events == 23 and got.messages == 6


def test_zip_bomb_is_refused_before_inflating() -> None:
    """An entry whose zip header declares 4 GB in a 200-byte message: refused from the
    header, nothing inflated (a real deflate stream expands at most ~1000x, within limits)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("detector_data.npy", b"\0" * 1000)
    data = bytearray(buf.getvalue())
    cd = data.index(b"PK\x01\x02")  # central directory entry: uncompressed size at +24
    data[cd + 24 : cd + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    with pytest.raises(FormatError, match="zip bomb"):
        formats.parse([bytes(data)])


def test_pickles_and_foreign_archives_are_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, lclstream=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FormatError):
        formats.parse([buf.getvalue()])
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros(3))
    with pytest.raises(FormatError, match="no 'lclstream' entry"):
        formats.parse([buf.getvalue()])
    with pytest.raises(FormatError, match="not a zip"):
        formats.parse([b"PK\x03\x04garbage"])


@pytest.mark.parametrize("shape", [(1 << 40,), (1 << 20, 64)])
def test_npy_header_claiming_more_than_it_holds_is_refused_before_allocation(
    shape: tuple[int, ...],
) -> None:
    """numpy allocates what a .npy header declares before reading: checked first."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("detector_data.npy", head.getvalue() + b"\0" * 64)
    with pytest.raises(FormatError, match="declares|max_decoded_bytes|max_dim"):
        formats.parse([buf.getvalue()])
