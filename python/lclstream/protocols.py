"""The shapes that flow between pipeline stages: the whole contract between them.

source -> (Event) -> calibrate/reduce -> (EventBatch) -> Serializer -> (WireMessage)
       -> DataHandler

Each stage is a small protocol so that sources (synthetic, HDF5, psana2), serializers (HDF5,
SIMPLON stream2, raw) and handlers (ZeroMQ stream, file writer) plug in without the
pipeline knowing which one it runs, and without any module reading another's private
attributes: what a stage needs from its neighbour is declared here. Names follow
LCLStreamer's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np

#: One ZeroMQ message: its frames, in order (only raw batches use more than one frame).
#: Frames are bytes-like (bytes, memoryview, numpy uint8 arrays) and are never copied.
Message = Sequence[Any]

Calibration = Literal["raw", "adu", "keV", "photons"]

#: How a sender's run ended, as its end message says (DESIGN.md "HDF5 message"):
#: ``completed`` — the source was exhausted or the requested number of events read, and every
#: event read was sent or dropped with a reason; ``cancelled`` — cancel(), Ctrl-C or SIGTERM;
#: ``failed`` — a stage raised (``error`` holds the text); ``truncated`` — the source ended
#: before the requested number of events (``events_read`` says how many there were).
EndState = Literal["completed", "cancelled", "failed", "truncated"]
END_STATES: tuple[str, ...] = get_args(EndState)


@dataclass
class Event:
    """One event: what each configured data source gave for it."""

    event_id: int
    timestamp: int  # nanoseconds since the Unix epoch
    data: dict[str, Any]  # data source name -> ndarray (detectors) or scalar
    #: Hit truth or a hit finder's verdict, when the source knows one (the synthetic detector
    #: does); None: unknown. Counted as ``hits`` in the run's summary.
    is_hit: bool | None = None
    #: Per-event results a filter found (a hit finder's CXI peak lists), by name: they
    #: travel as the batch's ``results``.
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectorInfo:
    """What a consumer needs to interpret one detector's frames."""

    name: str  # data source name, e.g. "detector_data"
    kind: str  # "jungfrau", "epix10ka", "generic"
    frame_shape: tuple[int, ...]  # e.g. (8, 512, 1024)
    dtype: str  # of the frames as sent (after calibration)
    pixel_size_m: float | None = None
    detector_distance_m: float | None = None
    photon_energy_keV: float | None = None
    beam_center_px: tuple[float, float] | None = None  # (x, y)
    serial: str = ""
    #: (rows, cols) of modules in the assembled, gap-free image (module m at row m // cols,
    #: column m % cols); None when the source knows no layout.
    module_layout: tuple[int, int] | None = None


@dataclass
class StreamInfo:
    """Per-stream facts every message format carries."""

    stream_id: str
    sender: int = 0  # this sender's index
    senders: int = 1  # how many senders feed the stream
    source_identifier: str = ""
    calibration: Calibration = "raw"
    detectors: dict[str, DetectorInfo] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventBatch:
    """Events grouped for one message: arrays events-first, one entry per data source.

    Detector arrays are usually ``lclstream.Batch.data`` views of pooled memory; scalars
    (photon energy, timestamps of other sources, peak counts) are 1-D arrays.
    """

    event_ids: np.ndarray  # uint64, shape (n,)
    timestamps: np.ndarray  # uint64 ns, shape (n,)
    arrays: dict[str, np.ndarray]
    #: Peak lists etc. by name (CXI result fields), each events-first.
    results: dict[str, np.ndarray] = field(default_factory=dict)
    #: Objects that must stay alive while the arrays are in use (pooled Batches).
    owners: list[Any] = field(default_factory=list)
    #: Detectors sent as sparse photon lists (``lclstream.sparse.SparseFrames``) instead of
    #: frames: a name is in ``arrays`` or here, never both.
    sparse: dict[str, Any] = field(default_factory=dict)
    #: What each detector's batch model said (``lclstream.models.ModelOutput``), from the
    #: model stage to the serialize stage's hit finding, which turns it into results.
    model_outputs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.event_ids.shape[0])


@dataclass
class StreamTotals:
    """End-of-stream accounting of one sender: what it read, sent and dropped (and why), and
    how its run ended. ``events_read == events_sent + events_dropped`` for every run that
    ended in order; the end message of every format carries all of it."""

    events_sent: int = 0
    messages_sent: int = 0
    events_dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    events_read: int = 0
    end_state: EndState = "completed"
    error: str = ""
    #: The reduction at the source: events called hits (by a hit finder, or the source's own
    #: flag), raw detector bytes read, bytes of the data messages sent. 0 from older senders.
    hits: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0

    @property
    def cancelled(self) -> bool:
        """The pre-``end_state`` flag, still written for older consumers."""
        return self.end_state == "cancelled"

    def drop(self, reason: str, n: int = 1) -> None:
        self.events_dropped += n
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + n


def end_state_of(value: Any, cancelled: Any = False) -> EndState:
    """An end message's ``end_state`` field, checked (messages from before the field existed
    say only ``cancelled``). Anything not in :data:`END_STATES` reads as ``failed``: a
    receiver must never take an unknown state for a normal end."""
    if value is None or value == "":
        return "cancelled" if bool(cancelled) else "completed"
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text if text in END_STATES else "failed"  # type: ignore[return-value]


class DropCounter(Protocol):
    """Where a source counts the events it reads and drops itself (incomplete events)."""

    def drop(self, reason: str, n: int = 1) -> None: ...


@runtime_checkable
class EventSource(Protocol):
    """Yields events in order; ``info()`` describes the detectors before the first one.

    ``constants(name)`` gives the calibration constants the source itself carries for a
    detector data source (pedestal, gain, mask[, offset, config_bits] as arrays shaped
    ``(stages, *frame_shape)``), or raises :class:`~lclstream.errors.SourceError` when it
    has none (``constants: synthetic`` / ``psana`` in a config ask for them).
    """

    def info(self) -> dict[str, DetectorInfo]: ...

    def events(self) -> Iterator[Event]: ...

    def constants(self, name: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class WireMessage(Sequence[Any]):
    """One message a serializer made, with what the sender must know to account for it:
    its kind (only ``data`` messages are numbered and counted in ``messages_sent``) and how
    many events it carries. ``frames`` are bytes-likes, never copied. It is itself the
    sequence of its frames, so it goes to a handler or a socket as it is."""

    kind: Literal["start", "data", "end"]
    frames: Message
    events: int = 0

    @property
    def nbytes(self) -> int:
        return message_nbytes(self.frames)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: Any) -> Any:
        return self.frames[i]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.frames)


def message_nbytes(message: Message) -> int:
    """Bytes a message puts on the wire (sum of its frames)."""
    total = 0
    for frame in message:
        total += memoryview(frame).nbytes
    return total


@runtime_checkable
class Serializer(Protocol):
    """Turns batches into messages. One instance per sender (it numbers its messages)."""

    def start(self, info: StreamInfo) -> list[WireMessage]: ...

    def serialize(self, batch: EventBatch) -> list[WireMessage]: ...

    def end(self, totals: StreamTotals) -> list[WireMessage]: ...


@runtime_checkable
class DataHandler(Protocol):
    """Consumes serialized messages (sends them, writes them)."""

    def start(self, info: StreamInfo) -> None: ...

    def handle(self, message: Message) -> bool:
        """Deliver one message: True when it went out (or was written), False when the
        transport dropped it by design (PUB with no subscriber or a full queue). Errors
        raise."""
        ...

    def end(self, message: Message) -> None:
        """The end-of-stream message: stream handlers give it to every consumer."""
        ...

    def close(self) -> None:
        """Deliver or write everything accepted, then release resources."""
        ...


@dataclass
class ParsedMessage:
    """What a parser found in one received message (any format)."""

    kind: Literal["start", "data", "end"]
    stream_id: str
    sender: int
    senders: int
    sequence: int
    batch: EventBatch | None = None
    totals: StreamTotals | None = None
    info: StreamInfo | None = None
    nbytes: int = 0
