"""Raw batches: a small CBOR header frame + ONE payload frame holding the batch's memory.

Why: a consumer on the same site (GPU, Ray) wants the frames as an array, not a file. The
payload is the primary array's contiguous memory, sent as it is (no copy when
uncompressed); the receiver gets a numpy array that views the received frame (ready for
DLPack). Small per-event arrays (scalars, peak lists) travel in the header. See README.md.
"""

from __future__ import annotations

from typing import Any

import cbor2
import numpy as np

from lclstream.errors import FormatError
from lclstream.formats._common import (
    ChunkBuffer,
    as_frames,
    compress_events,
    compression,
    declares_size,
    decompress_events,
    frame_bytes,
    guarded,
    parsed_message,
    safe_dtype,
)
from lclstream.formats.base import (
    SerializerBase,
    end_fields,
    info_from_fields,
    totals_from_fields,
)
from lclstream.formats.cbor_scan import scan
from lclstream.limits import DEFAULT_LIMITS, Limits
from lclstream.protocols import (
    DetectorInfo,
    EventBatch,
    ParsedMessage,
    StreamTotals,
    WireMessage,
)

FORMAT_TAG = "lclstream-raw"
VERSION = 1


def _small(arr: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(arr)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def _unsmall(d: Any, where: str, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """A small array from the header: a view of its bytes (the shape must match them)."""
    try:
        dt = safe_dtype(d["dtype"], f"raw batch header: {where}")
        shape = limits.check_shape(d["shape"], dt.itemsize, f"raw batch header: {where}")
        arr = np.frombuffer(d["data"], dt).reshape(shape)
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"raw batch header: {where} is malformed: {exc}") from exc
    return arr


class RawBatchSerializer(SerializerBase):
    """Batches → [header, payload] messages. ``compression`` (default none) compresses each
    event's frame with lclstream.codec; the payload is then the chunks back to back."""

    type_name = "RawBatchSerializer"

    def __init__(
        self,
        compression: str | None = None,
        compression_level: int | None = None,
        *,
        primary: str | None = None,
        threads: int = 0,
    ) -> None:
        super().__init__()
        self.compression = _compression(compression, compression_level)
        self.primary = primary
        self.threads = int(threads)
        self._buffer = ChunkBuffer()

    def _head(self) -> dict[str, Any]:
        return {
            "format": FORMAT_TAG,
            "version": VERSION,
            **self.stream_facts(),
            "sequence": self.sequence,
        }

    def _primary(self, batch: EventBatch) -> str | None:
        if self.primary is not None:
            return self.primary
        if "detector_data" in batch.arrays:
            return "detector_data"
        big = [(v.nbytes, k) for k, v in batch.arrays.items()]
        return max(big)[1] if big else None

    def serialize(self, batch: EventBatch) -> list[WireMessage]:
        name = self._primary(batch)
        head = self._head()
        head["kind"] = "data"
        head["event_ids"] = _small(np.asarray(batch.event_ids, np.uint64))
        head["timestamps"] = _small(np.asarray(batch.timestamps, np.uint64))
        head["arrays"] = {k: _small(v) for k, v in batch.arrays.items() if k != name}
        head["results"] = {k: _small(v) for k, v in batch.results.items()}
        head["detectors"] = self._detectors()  # each batch is self-describing (Ray, GPUs)
        payload: Any = b""
        if name is not None:
            arr = batch.arrays[name]
            head["name"] = name
            head["dtype"] = arr.dtype.str
            head["shape"] = list(arr.shape)
            comp = self.compression
            if comp is None or len(arr) == 0:
                if not arr.flags.c_contiguous:
                    arr = np.ascontiguousarray(arr)
                payload = arr.data.cast("B") if arr.nbytes else b""
            else:
                chunks = compress_events(
                    np.ascontiguousarray(arr), comp, threads=self.threads, buffer=self._buffer
                )
                views = [memoryview(c).cast("B") for c in chunks]
                head["compression"] = comp
                head["chunk_sizes"] = [len(v) for v in views]
                payload = b"".join(views)
        return [self._data([cbor2.dumps(head), payload], len(batch))]

    def end(self, totals: StreamTotals) -> list[WireMessage]:
        head = self._head()
        head.update(
            kind="end",
            end_of_stream=True,
            **end_fields(totals),
            detectors=self._detectors(),
        )
        return [WireMessage("end", [cbor2.dumps(head), b""])]

    def _detectors(self) -> dict[str, dict[str, Any]]:
        return {
            k: {"kind": d.kind, "frame_shape": list(d.frame_shape), "dtype": d.dtype}
            for k, d in self.info.detectors.items()
        }


def _compression(name: str | None, level: int | None) -> str | None:
    comp = compression(name, level)
    if comp.name == "none":
        return None
    if comp.codec is None:
        raise FormatError(f"RawBatchSerializer: compression {name!r} is HDF5-only; use a codec")
    return comp.codec


def is_raw(frames: list[Any]) -> bool:
    if len(frames) != 2:
        return False
    head = bytes(frame_bytes(frames[0])[:32])
    return b"lclstream-raw" in head


@guarded("raw batch")
def parse(
    message: Any, *, decode: bool = True, threads: int = 0, limits: Limits = DEFAULT_LIMITS
) -> ParsedMessage:
    """[header, payload] → ParsedMessage; the primary array views the payload frame.

    The header's CBOR is pre-scanned (:mod:`.cbor_scan`) and every shape and size it
    declares is checked against ``limits`` and the payload before anything is allocated.
    """
    frames = as_frames(message)
    if len(frames) != 2:
        raise FormatError(f"raw batch: expected 2 frames (header, payload), got {len(frames)}")
    hb = frame_bytes(frames[0])
    limits.check_message(len(hb) + len(frame_bytes(frames[1])), "raw batch")
    scan(hb, limits, "raw batch header")
    try:
        head = cbor2.loads(hb)
    except Exception as exc:
        raise FormatError(f"raw batch: header ({len(hb)} bytes) is not valid CBOR: {exc}") from exc
    if not isinstance(head, dict) or head.get("format") != FORMAT_TAG:
        raise FormatError("raw batch: header lacks format='lclstream-raw'")
    if int(head.get("version", 0)) > VERSION:
        raise FormatError(f"raw batch: version {head.get('version')} is newer than {VERSION}")
    payload = frame_bytes(frames[1])
    info = info_from_fields(head)
    seq = int(head.get("sequence", -1))
    nbytes = len(hb) + len(payload)
    try:
        for k, d in dict(head.get("detectors", {})).items():
            fs = limits.check_shape(d["frame_shape"], 1, f"raw batch: detector {k!r}")
            info.detectors[str(k)] = DetectorInfo(str(k), str(d["kind"]), fs, str(d["dtype"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"raw batch: detectors: {exc!r}") from exc
    if head.get("kind") == "end":
        totals = totals_from_fields(head)
        return parsed_message("end", info, seq, nbytes, totals=totals)
    arrays = {
        k: _unsmall(v, f"array {k!r}", limits) for k, v in dict(head.get("arrays", {})).items()
    }
    results = {
        k: _unsmall(v, f"result {k!r}", limits) for k, v in dict(head.get("results", {})).items()
    }
    ids = _unsmall(head.get("event_ids"), "event_ids", limits)
    ts = _unsmall(head.get("timestamps"), "timestamps", limits)
    name = head.get("name")
    if name is not None:
        try:
            dt = safe_dtype(head["dtype"], "raw batch")
            shape = limits.check_shape(head["shape"], dt.itemsize, "raw batch")
        except KeyError as exc:
            raise FormatError(f"raw batch: header lacks {exc}") from exc
        if not shape:
            raise FormatError("raw batch: the primary array has no event axis")
        expected = dt.itemsize
        for d in shape:
            expected *= d
        comp = head.get("compression")
        if comp is None:
            if len(payload) != expected:
                raise FormatError(
                    f"raw batch: payload has {len(payload)} bytes, header says {list(shape)} "
                    f"{dt} = {expected} bytes (truncated?)"
                )
            arr = np.frombuffer(payload, dt).reshape(shape) if expected else np.zeros(shape, dt)
        else:
            sizes = [int(s) for s in head.get("chunk_sizes", [])]
            if sum(sizes) != len(payload) or len(sizes) != shape[0] or min(sizes, default=0) < 0:
                raise FormatError(
                    f"raw batch: payload has {len(payload)} bytes in {len(sizes)} chunks, "
                    f"header chunk sizes sum to {sum(sizes)} for {shape[0]} events"
                )
            frame_nbytes = expected // max(1, shape[0])
            limits.check_decoded(expected, nbytes, "raw batch")
            limits.check_chunk(frame_nbytes, "raw batch")
            if declares_size(comp):  # checked before anything is decoded
                off = 0
                for i, s in enumerate(sizes):
                    declared = int.from_bytes(bytes(payload[off : off + 8]), "big")
                    if declared != frame_nbytes:
                        raise FormatError(
                            f"raw batch: chunk {i} declares {declared} bytes, "
                            f"the frame has {frame_nbytes}"
                        )
                    off += s
            if decode and sizes:
                bounds = np.concatenate([[0], np.cumsum(sizes)])
                parts = [
                    payload[int(a) : int(b)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)
                ]
                arr = decompress_events(parts, comp, dt, shape[1:], threads)
            else:
                arr = np.empty(shape if decode else (shape[0], 0), dt)
        arrays = {name: arr, **arrays}
    batch = EventBatch(ids, ts, arrays, results, owners=[frames[1]])
    return parsed_message("data", info, seq, nbytes, batch=batch)
