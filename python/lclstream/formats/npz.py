"""numpy ``.npz`` messages: LCLStreamer's ``NumpyBinarySerializer``, which SLAC's PeakNet
consumers read with ``np.load(io.BytesIO(msg))``.

Why this layout: a consumer that knows only numpy gets every data source's events-first
array by its name, as LCLStreamer sends it (``use_compression`` chooses ``savez_compressed``).
lclstream adds what its accounting needs without disturbing such a consumer: each message
holds ``lclstream_event_id`` and ``lclstream_timestamp`` arrays and one ``lclstream`` entry (a 0-d bytes array of
JSON: format tag, message kind, the stream facts, the sequence number, and in the end message
the sender's totals). The end message is an .npz holding only that entry.

Received bytes are hostile: entries are read with ``allow_pickle=False``; the declared
uncompressed sizes (zip headers) and every ``.npy`` header's shape and dtype are checked
against :class:`~lclstream.limits.Limits` and against each other before anything is
inflated or allocated.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from lclstream.errors import FormatError
from lclstream.formats._common import as_frames, frame_bytes, guarded, parsed_message
from lclstream.formats.base import (
    SerializerBase,
    end_fields,
    info_from_fields,
    totals_from_fields,
)
from lclstream.limits import DEFAULT_LIMITS, LimitExceeded, Limits
from lclstream.protocols import EventBatch, ParsedMessage, StreamTotals, WireMessage

FORMAT_TAG = "lclstream-npz"
VERSION = 1
META_KEY = "lclstream"
#: Per-event ids and timestamps; prefixed so LCLStreamer's own data source names (its
#: configs call a Psana2Timestamp source ``timestamp``) never clash with them.
EVENT_ID_KEY = "lclstream_event_id"
TIMESTAMP_KEY = "lclstream_timestamp"
ZIP_MAGIC = b"PK\x03\x04"


class NumpyBinarySerializer(SerializerBase):
    """Batches → one ``.npz`` image each (``use_compression``: deflate, numpy's own)."""

    type_name = "NumpyBinarySerializer"

    def __init__(self, use_compression: bool = False) -> None:
        super().__init__()
        self.use_compression = bool(use_compression)

    def _npz(self, arrays: dict[str, Any], meta: dict[str, Any]) -> bytes:
        head = {"format": FORMAT_TAG, "version": VERSION, **self.stream_facts(), **meta}
        entries = {**arrays, META_KEY: np.array(json.dumps(head).encode())}
        buf = io.BytesIO()
        (np.savez_compressed if self.use_compression else np.savez)(buf, **entries)
        return buf.getvalue()

    def serialize(self, batch: EventBatch) -> list[WireMessage]:
        arrays: dict[str, Any] = {
            EVENT_ID_KEY: np.asarray(batch.event_ids),
            TIMESTAMP_KEY: np.asarray(batch.timestamps),
        }
        for name, arr in {**batch.arrays, **batch.results}.items():
            if name in arrays or name == META_KEY:
                raise FormatError(f"npz: data source name {name!r} is reserved")
            arrays[name] = arr
        meta = {"kind": "data", "sequence": self.sequence, "events": len(batch)}
        return [self._data([self._npz(arrays, meta)], len(batch))]

    def end(self, totals: StreamTotals) -> list[WireMessage]:
        meta = {"kind": "end", "sequence": self.sequence, **end_fields(totals)}
        return [WireMessage("end", [self._npz({}, meta)])]


def is_npz(frame: Any) -> bool:
    return bytes(frame_bytes(frame)[:4]) == ZIP_MAGIC


def _check_entries(zf: zipfile.ZipFile, nbytes: int, limits: Limits) -> None:
    """Before anything is inflated: the archive's declared sizes, and each .npy header's
    shape and dtype against the limits and against its entry's declared size (numpy
    allocates the array a header declares before it reads the data)."""
    infos = zf.infolist()
    if len(infos) > limits.max_cbor_length:
        raise LimitExceeded(f"npz: {len(infos)} entries")
    declared = sum(i.file_size for i in infos)
    if declared > limits.decoded_limit(nbytes):
        raise LimitExceeded(
            f"npz: entries declare {declared} bytes from a {nbytes}-byte message (a zip bomb?)"
        )
    fmt = np.lib.format
    for info in infos:
        with zf.open(info) as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                raise FormatError(f"npz: entry {info.filename!r}: .npy version {version}")
        if dtype.hasobject:
            raise FormatError(f"npz: entry {info.filename!r} holds Python objects (pickles)")
        dims = limits.check_shape(shape, dtype.itemsize, f"npz entry {info.filename!r}")
        need = dtype.itemsize
        for d in dims:
            need *= d
        if need > info.file_size:
            raise FormatError(
                f"npz: entry {info.filename!r} declares {list(dims)} {dtype} = {need} bytes "
                f"but holds {info.file_size}"
            )


@guarded("npz message")
def parse(message: Any, *, decode: bool = True, limits: Limits = DEFAULT_LIMITS) -> ParsedMessage:
    frames = as_frames(message)
    if len(frames) != 1:
        raise FormatError(f"npz: expected 1 frame, got {len(frames)}")
    data = frame_bytes(frames[0])
    nbytes = len(data)
    limits.check_message(nbytes, "npz message")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise FormatError(f"npz: not a zip archive ({nbytes} bytes): {exc}") from exc
    _check_entries(zf, nbytes, limits)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        if META_KEY not in npz.files:
            raise FormatError("npz: no 'lclstream' entry (not an lclstream stream)")
        try:
            head = json.loads(bytes(npz[META_KEY].item()))
        except (ValueError, TypeError) as exc:
            raise FormatError(f"npz: the 'lclstream' entry is not JSON: {exc}") from exc
        if not isinstance(head, dict) or head.get("format") != FORMAT_TAG:
            raise FormatError("npz: the 'lclstream' entry lacks format='lclstream-npz'")
        if int(head.get("version", 0)) > VERSION:
            raise FormatError(f"npz: version {head.get('version')} is newer than {VERSION}")
        info = info_from_fields(head)
        seq = int(head.get("sequence", -1))
        if head.get("kind") == "end":
            return parsed_message("end", info, seq, nbytes, totals=totals_from_fields(head))
        names = [n for n in npz.files if n not in (META_KEY, EVENT_ID_KEY, TIMESTAMP_KEY)]
        arrays = {n: npz[n] for n in names} if decode else {}
        if EVENT_ID_KEY not in npz.files or TIMESTAMP_KEY not in npz.files:
            raise FormatError("npz: data message without lclstream_event_id / lclstream_timestamp")
        ids = np.asarray(npz[EVENT_ID_KEY], np.uint64)
        ts = np.asarray(npz[TIMESTAMP_KEY], np.uint64)
    events = int(head.get("events", len(ids)))
    if events != len(ids) or len(ts) != len(ids):
        raise FormatError(f"npz: {len(ids)} event ids, {len(ts)} timestamps, {events} declared")
    for n, a in arrays.items():
        if a.ndim == 0 or a.shape[0] != events:
            raise FormatError(f"npz: array {n!r} has shape {a.shape}, not {events} events first")
    batch = EventBatch(event_ids=ids, timestamps=ts, arrays=arrays)
    return parsed_message("data", info, seq, nbytes, batch=batch)
