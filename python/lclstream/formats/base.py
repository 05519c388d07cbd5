"""What every serializer shares: the stream facts each format writes, the sender's message
numbering and the end-of-stream accounting fields.

Why a base: the stream id, sender index, sender count, sequence number and the end totals
(``events_read``, ``events_sent``, ``messages_sent``, ``events_dropped``, ``drop_reasons``,
``end_state``, ``error``) are the same facts in HDF5 attributes, stream2 ``user_data`` and
CBOR headers. Written once here, they cannot drift between formats, and the pipeline counts
messages from the typed :class:`~lclstream.protocols.WireMessage` a serializer returns
instead of guessing from its numbering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lclstream import _core
from lclstream.protocols import (
    EventBatch,
    Message,
    StreamInfo,
    StreamTotals,
    WireMessage,
    end_state_of,
)

__all__ = ["SerializerBase", "end_fields", "info_from_fields", "totals_from_fields"]


class SerializerBase:
    """Base of the built-in serializers: ``start`` remembers the stream, ``_data`` numbers each
    data message (0, 1, 2, ... per sender: what receivers check for gaps), and the end
    message's fields come from :func:`end_fields`. Subclasses implement ``serialize`` and
    ``end`` and may return start frames from :meth:`_start_frames`."""

    type_name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.info = StreamInfo(stream_id="")
        #: Data messages made so far: the sequence number of the next one.
        self.sequence = 0

    def start(self, info: StreamInfo) -> list[WireMessage]:
        self.info = info
        self.sequence = 0
        return [WireMessage("start", f) for f in self._start_frames()]

    def _start_frames(self) -> list[Message]:
        return []

    def serialize(self, batch: EventBatch) -> list[WireMessage]:
        raise NotImplementedError

    def end(self, totals: StreamTotals) -> list[WireMessage]:
        raise NotImplementedError

    def _data(self, frames: Message, events: int) -> WireMessage:
        """A data message built with the current ``sequence``; the next one gets the next."""
        self.sequence += 1
        return WireMessage("data", frames, events)

    def stream_facts(self) -> dict[str, Any]:
        """The facts every message of every format carries (besides its sequence)."""
        i = self.info
        return {
            "stream_id": i.stream_id,
            "sender": i.sender,
            "senders": i.senders,
            "source_identifier": i.source_identifier,
            "calibration": i.calibration,
            "lclstream_version": _core.__version__,
        }


def end_fields(totals: StreamTotals) -> dict[str, Any]:
    """An end message's accounting, as plain values (CBOR maps; HDF5 attributes via the
    HDF5 serializer, which JSON-encodes ``drop_reasons``). ``cancelled`` is kept for
    consumers older than ``end_state``."""
    return {
        "events_read": totals.events_read,
        "events_sent": totals.events_sent,
        "messages_sent": totals.messages_sent,
        "events_dropped": totals.events_dropped,
        "drop_reasons": dict(totals.drop_reasons),
        "end_state": totals.end_state,
        "error": totals.error,
        "cancelled": totals.cancelled,
        "hits": totals.hits,
        "bytes_read": totals.bytes_read,
        "bytes_sent": totals.bytes_sent,
    }


def info_from_fields(fields: Mapping[str, Any]) -> StreamInfo:
    """The stream facts of :meth:`SerializerBase.stream_facts` read back from a header
    (CBOR map, JSON object), with the defaults of a single-sender stream."""
    return StreamInfo(
        stream_id=str(fields.get("stream_id", "")),
        sender=int(fields.get("sender", 0)),
        senders=int(fields.get("senders", 1)),
        source_identifier=str(fields.get("source_identifier", "")),
        calibration=fields.get("calibration", "raw"),
    )


def totals_from_fields(
    fields: Mapping[str, Any], drop_reasons: Mapping[str, Any] | None = None
) -> StreamTotals:
    """Inverse of :func:`end_fields` (any format). ``drop_reasons`` overrides
    ``fields["drop_reasons"]`` where a format stores it encoded. Missing ``events_read``
    (older senders) reads as sent + dropped."""
    reasons = dict(fields.get("drop_reasons", {})) if drop_reasons is None else drop_reasons
    sent = int(fields.get("events_sent", 0))
    dropped = int(fields.get("events_dropped", 0))
    error = fields.get("error", "")
    return StreamTotals(
        events_sent=sent,
        messages_sent=int(fields.get("messages_sent", 0)),
        events_dropped=dropped,
        drop_reasons={str(k): int(v) for k, v in reasons.items()},
        events_read=int(fields.get("events_read", sent + dropped)),
        end_state=end_state_of(fields.get("end_state"), fields.get("cancelled", False)),
        error=error.decode() if isinstance(error, bytes) else str(error),
        hits=int(fields.get("hits", 0)),
        bytes_read=int(fields.get("bytes_read", 0)),
        bytes_sent=int(fields.get("bytes_sent", 0)),
    )
