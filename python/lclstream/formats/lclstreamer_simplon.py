"""LCLStreamer's own SIMPLON variant, for consumers written against LCLStreamer.

LCLStreamer's ``SimplonBinarySerializer`` (``data_serializers/dectris/simplon.py``) sends
CBOR maps prefixed with one ASCII byte: ``b"c"`` + start/stop control maps (from the last
rank only) and ``b"m"`` + one image map per event, with the frame as bitshuffle+LZ4 blocks
*without* the 12-byte HDF5 header (``bitshuffle.compress_lz4(array, block_size=4096)``).
This is not DECTRIS stream2; :mod:`lclstream.formats.simplon` is. Differences are listed in
docs/formats.md. We add ``block_size``, ``shape``, ``event_id`` and lclstream stream facts
to the maps (extra keys; LCLStreamer's consumers read only the keys they know).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from typing import Any

import cbor2
import numpy as np

from lclstream.errors import FormatError
from lclstream.formats._common import (
    ChunkBuffer,
    as_frames,
    compress_events,
    decompress_chunk,
    frame_bytes,
    guarded,
    safe_dtype,
)
from lclstream.formats.base import SerializerBase, end_fields, totals_from_fields
from lclstream.formats.cbor_scan import scan
from lclstream.limits import DEFAULT_LIMITS, Limits
from lclstream.protocols import EventBatch, ParsedMessage, StreamInfo, StreamTotals, WireMessage

#: LCLStreamer calls bitshuffle.compress_lz4 with this block size (elements).
LCLSTREAMER_BLOCK = 4096


def _run_info(source_identifier: str) -> dict[str, str]:
    """'exp=mfx100852324,run=51' → {'exp': ..., 'run': ...}."""
    out: dict[str, str] = {}
    for part in source_identifier.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


class LclstreamerSimplonSerializer(SerializerBase):
    """Batches → LCLStreamer's prefixed-CBOR SIMPLON messages (options as LCLStreamer's)."""

    type_name = "LclstreamerSimplonSerializer"

    def __init__(
        self,
        data_source_to_serialize: str = "detector_data",
        polarization_fraction: float = 0.0,
        polarization_axis: list[float] | None = None,
        data_collection_rate: str = "120Hz",
        detector_name: str = "jungfrau",
        detector_type: str = "AreaDetector",
        *,
        threads: int = 0,
    ) -> None:
        super().__init__()
        self.source = data_source_to_serialize
        self.polarization = {
            "fraction": float(polarization_fraction),
            "axis": [float(v) for v in (polarization_axis or [0.0, 0.0, 0.0])],
        }
        self.rate = data_collection_rate
        self.detector_name = detector_name
        self.detector_type = detector_type
        self.threads = int(threads)
        self._buffer = ChunkBuffer()
        self._started = False

    def _message_id(self) -> int:
        # LCLStreamer: rank * 10000 + per-rank count (from 1)
        return self.info.sender * 10000 + self.sequence + 1

    def _facts(self) -> dict[str, Any]:
        return {**self.stream_facts(), "sequence": self.sequence}

    def _run(self) -> tuple[int, str]:
        run = _run_info(self.info.source_identifier)
        try:
            number = int(run.get("run", "0"))
        except ValueError:
            number = 0
        return number, run.get("exp", "")

    def start(self, info: StreamInfo) -> list[WireMessage]:
        """Nothing yet: LCLStreamer's start map describes the first array (dtype, shape)."""
        self._started = False
        return super().start(info)

    def _start_message(self, arr: np.ndarray) -> bytes:
        run, exp = self._run()
        det = self.info.detectors.get(self.source)
        msg = {
            "type": "start",
            "run_number": run,
            "start_time": time.time(),
            "duration": "N/A",
            "beamline": exp[:3].upper(),
            "experiment": exp,
            "beam_type": "X-ray",
            "polarization": self.polarization,
            "data_collection_rate": self.rate,
            "datatype": str(arr.dtype),
            "shape": "x".join(str(s) for s in arr.shape[1:]),
            "algorithm": "bitshuffle-lz4",
            "detector": {
                "name": self.detector_name,
                "id": det.serial if det else "",
                "type": self.detector_type,
                "geometry": "",
                "pixel_coords": "",
                "material": "???",
                "thickness": "???",
            },
            "message_id": self._message_id(),
            "timestamp": time.time(),
            "lclstream": self._facts(),
        }
        return b"c" + cbor2.dumps(msg)

    def serialize(self, batch: EventBatch) -> list[WireMessage]:
        arr = batch.arrays.get(self.source)
        if arr is None:
            raise FormatError(
                f"LclstreamerSimplonSerializer: the batch has no {self.source!r} "
                f"(data_source_to_serialize); it has {sorted(batch.arrays)}"
            )
        arr = np.ascontiguousarray(arr)
        out: list[WireMessage] = []
        if not self._started and self.info.sender == self.info.senders - 1:
            out.append(WireMessage("start", [self._start_message(arr)]))
        self._started = True
        chunks = (
            compress_events(arr, "bslz4", threads=self.threads, buffer=self._buffer)
            if len(arr)
            else []
        )
        run, _ = self._run()
        sums = arr.reshape(len(arr), -1).sum(axis=1) if len(arr) else []
        for i, chunk in enumerate(chunks):
            mv = memoryview(chunk).cast("B")
            block = struct.unpack(">I", mv[8:12])[0] // arr.dtype.itemsize
            s = sums[i]
            msg = {
                "type": "image",
                "run": run,
                "compressed_data": bytes(mv[12:]),
                "dtype": str(arr.dtype),
                "sum": float(s) if arr.dtype.kind == "f" else int(s),
                "message_id": self._message_id(),
                "timestamp": int(batch.timestamps[i]) / 1e9,
                "block_size": int(block),
                "shape": list(arr.shape[1:]),
                "event_id": int(batch.event_ids[i]),
                # LCLStreamer's float seconds lose ~0.2 us at today's epoch: the exact value
                "timestamp_ns": int(batch.timestamps[i]),
                "lclstream": self._facts(),
            }
            out.append(self._data([b"m" + cbor2.dumps(msg)], 1))
        return out

    def end(self, totals: StreamTotals) -> list[WireMessage]:
        run, _ = self._run()
        msg = {
            "type": "stop",
            "run": run,
            "timestamp": time.time(),
            "lclstream": {
                **self._facts(),
                "end_of_stream": True,
                **end_fields(totals),
            },
        }
        return [WireMessage("end", [b"c" + cbor2.dumps(msg)])]


@guarded("LCLStreamer SIMPLON")
def parse(message: Any, *, decode: bool = True, limits: Limits = DEFAULT_LIMITS) -> ParsedMessage:
    frames = as_frames(message)
    if len(frames) != 1:
        raise FormatError(f"LCLStreamer SIMPLON: a message is one frame, got {len(frames)}")
    mv = frame_bytes(frames[0])
    prefix = bytes(mv[:1])
    if prefix not in (b"c", b"m"):
        raise FormatError(f"LCLStreamer SIMPLON: prefix {prefix!r} is neither b'c' nor b'm'")
    limits.check_message(len(mv), "LCLStreamer SIMPLON")
    scan(mv, limits, "LCLStreamer SIMPLON", offset=1)
    try:
        msg = cbor2.loads(mv[1:])
    except Exception as exc:
        raise FormatError(
            f"LCLStreamer SIMPLON: {len(mv)}-byte message is not CBOR: {exc}"
        ) from exc
    if not isinstance(msg, Mapping):
        raise FormatError("LCLStreamer SIMPLON: content is not a CBOR map")
    ours = dict(msg.get("lclstream", {}))
    info = StreamInfo(
        stream_id=str(ours.get("stream_id", "")),
        sender=int(ours.get("sender", 0)),
        senders=int(ours.get("senders", 1)),
        calibration=ours.get("calibration", "raw"),
    )
    seq = int(ours.get("sequence", -1))
    kind = msg.get("type")
    args = (info.stream_id, info.sender, info.senders, seq)
    if kind == "start":
        return ParsedMessage("start", *args, info=info, nbytes=len(mv))
    if kind == "stop":
        totals = totals_from_fields(ours)
        return ParsedMessage("end", *args, totals=totals, info=info, nbytes=len(mv))
    if kind != "image":
        raise FormatError(f"LCLStreamer SIMPLON: unknown message type {kind!r}")
    try:
        dt = safe_dtype(msg["dtype"], "LCLStreamer SIMPLON")
        shape = limits.check_shape(msg["shape"], dt.itemsize, "LCLStreamer SIMPLON image")
        data = msg["compressed_data"]
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("compressed_data is not a byte string")
        blocks = bytes(data)
        block = int(msg.get("block_size", LCLSTREAMER_BLOCK))
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(
            f"LCLStreamer SIMPLON: image map lacks dtype/shape/compressed_data: {exc}"
        ) from exc
    nbytes = dt.itemsize
    for d in shape:
        nbytes *= d
    limits.check_decoded(nbytes, len(mv), "LCLStreamer SIMPLON image")
    limits.check_chunk(nbytes, "LCLStreamer SIMPLON image")
    if not 0 < block * dt.itemsize < 1 << 32:
        raise FormatError(f"LCLStreamer SIMPLON: block_size {block} is out of range")
    if decode:
        chunk = struct.pack(">QI", nbytes, block * dt.itemsize) + blocks
        arr = decompress_chunk(chunk, "bslz4", dt, shape).reshape((1, *shape))
    else:
        arr = np.empty((1, 0), dt)
    exact = msg.get("timestamp_ns")
    ts = (
        int(exact) if isinstance(exact, int) else int(round(float(msg.get("timestamp", 0.0)) * 1e9))
    )
    batch = EventBatch(
        np.array([int(msg.get("event_id", seq))], np.uint64),
        np.array([ts], np.uint64),
        {"detector_data": arr},
    )
    return ParsedMessage("data", *args, batch=batch, info=info, nbytes=len(mv))
