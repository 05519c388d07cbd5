"""numpy ``.npz`` messages: LCLStreamer's ``NumpyBinarySerializer``, which SLAC's PeakNet
consumers read with ``np.load(io.BytesIO(msg))``.

Why this layout: a consumer that knows only numpy gets every data source's events-first
array by its name, as LCLStreamer sends it (``use_compression`` chooses ``savez_compressed``).
lclstream adds what its accounting needs without disturbing such a consumer: each message
holds ``lclstream_event_id`` and ``lclstream_timestamp`` arrays and one ``lclstream`` entry (a 0-d bytes array of
JSON: format tag, message kind, the stream facts, the sequence number, and in the end message
the sender's totals). The end message is an .npz holding only that entry.

Received bytes are hostile: entries are read with ``allow_pickle=False``, and their declared
uncompressed sizes (zip headers) are checked against the expansion limit before anything is
inflated.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from lclstream.errors import FormatError
from lclstream.formats._common import (
    as_frames,
    expansion_limit,
    frame_bytes,
    guarded,
    parsed_message,
)
from lclstream.formats.base import (
    SerializerBase,
    end_fields,
    info_from_fields,
    totals_from_fields,
)
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


@guarded("npz message")
def parse(message: Any, *, decode: bool = True) -> ParsedMessage:
    frames = as_frames(message)
    if len(frames) != 1:
        raise FormatError(f"npz: expected 1 frame, got {len(frames)}")
    data = frame_bytes(frames[0])
    nbytes = len(data)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise FormatError(f"npz: not a zip archive ({nbytes} bytes): {exc}") from exc
    declared = sum(i.file_size for i in zf.infolist())
    if declared > expansion_limit(nbytes):
        raise FormatError(f"npz: entries declare {declared} bytes from {nbytes} (a zip bomb?)")
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
