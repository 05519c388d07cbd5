"""The shapes that flow between pipeline stages.

source -> (Event) -> calibrate/reduce -> (EventBatch) -> Serializer -> (Message) -> DataHandler

Each stage is a small protocol so that sources (synthetic, HDF5, psana2), serializers (HDF5,
SIMPLON stream2, raw) and handlers (ZeroMQ stream, file writer) plug in without the
pipeline knowing which one it runs. Names follow LCLStreamer's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

#: One ZeroMQ message: its frames, in order (only raw batches use more than one frame).
#: Frames are bytes-like (bytes, memoryview, numpy uint8 arrays) and are never copied.
Message = Sequence[Any]

Calibration = Literal["raw", "adu", "keV", "photons"]


@dataclass
class Event:
    """One event: what each configured data source gave for it."""

    event_id: int
    timestamp: int  # nanoseconds since the Unix epoch
    data: dict[str, Any]  # data source name -> ndarray (detectors) or scalar


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

    def __len__(self) -> int:
        return int(self.event_ids.shape[0])


@dataclass
class StreamTotals:
    """End-of-stream accounting of one sender: what it sent and what it dropped, why."""

    events_sent: int = 0
    messages_sent: int = 0
    events_dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    cancelled: bool = False

    def drop(self, reason: str, n: int = 1) -> None:
        self.events_dropped += n
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + n


@runtime_checkable
class EventSource(Protocol):
    """Yields events in order; ``info()`` describes the detectors before the first one."""

    def info(self) -> dict[str, DetectorInfo]: ...

    def events(self) -> Iterator[Event]: ...

    def close(self) -> None: ...


@runtime_checkable
class Serializer(Protocol):
    """Turns batches into messages. One instance per sender (it numbers its messages)."""

    def start(self, info: StreamInfo) -> list[Message]: ...

    def serialize(self, batch: EventBatch) -> list[Message]: ...

    def end(self, totals: StreamTotals) -> list[Message]: ...


@runtime_checkable
class DataHandler(Protocol):
    """Consumes serialized messages (sends them, writes them)."""

    def start(self, info: StreamInfo) -> None: ...

    def handle(self, message: Message) -> None: ...

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
