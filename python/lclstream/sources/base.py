"""What every source shares: the per-data-source protocol and incomplete-event handling.

An event source (``InternalEventSource``, ``Hdf5EventSource``, a plugin) yields
:class:`~lclstream.protocols.Event` objects whose ``data`` holds one entry per configured
data source. A data source that has nothing for an event gives ``None``; then, as in
LCLStreamer, ``skip_incomplete_events: true`` drops the event (counted in the stream's totals
with the reason ``incomplete: <name> missing``) and ``false`` stops with a SourceError that
names the event and the data source.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from lclstream.errors import SourceError
from lclstream.protocols import DetectorInfo, DropCounter, Event


@runtime_checkable
class DataSource(Protocol):
    """One named quantity per event (a detector's frames, a scalar...)."""

    name: str

    def info(self) -> DetectorInfo | None:
        """Detector facts for array sources; None for scalars."""
        ...

    def get_data(self, index: int) -> Any:
        """The value for event ``index`` (0-based within the run), or None if missing."""
        ...

    def close(self) -> None: ...


def check_worker(worker: int, workers: int) -> None:
    """A source split over ``workers`` processes reads only its share ``worker`` of it."""
    if not 0 <= worker < workers:
        raise SourceError(f"worker {worker} is not within 0..{workers - 1}")


class IncompleteEvents:
    """Applies ``skip_incomplete_events`` and keeps the counts (also into a StreamTotals)."""

    def __init__(self, skip: bool, totals: DropCounter | None = None) -> None:
        self.skip = skip
        self.totals = totals
        self.dropped: dict[str, int] = {}

    def accept(self, event: Event) -> bool:
        missing = [k for k, v in event.data.items() if v is None]
        if not missing:
            return True
        reason = "incomplete: " + ",".join(missing) + " missing"
        if not self.skip:
            raise SourceError(
                f"event {event.event_id}: data source {missing[0]!r} has no data "
                "(set skip_incomplete_events: true to drop such events)"
            )
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if self.totals is not None:
            self.totals.drop(reason)
        return False


class CompositeEventSource:
    """Events numbered ``first..first+n``; each data source asked for its value by index.

    This is LCLStreamer's ``InternalEventSource``: no external framework, data sources are
    synthetic detectors, random arrays, constants. With ``workers`` > 1, worker ``w`` gets
    the events ``first + w``, ``first + w + workers``, ... (together: every event once).
    """

    def __init__(
        self,
        data_sources: dict[str, DataSource],
        *,
        number_of_events: int,
        first_event: int = 0,
        skip_incomplete: bool = False,
        totals: DropCounter | None = None,
        timestamp_source: Any | None = None,
        rate_hz: float = 120.0,
        worker: int = 0,
        workers: int = 1,
    ) -> None:
        check_worker(worker, workers)
        self.worker = worker
        self.workers = workers
        self.data_sources = data_sources
        self.number_of_events = number_of_events
        self.first_event = first_event
        self.incomplete = IncompleteEvents(skip_incomplete, totals)
        self._timestamp_source = timestamp_source
        self._period_ns = 1e9 / rate_hz

    def info(self) -> dict[str, DetectorInfo]:
        out: dict[str, DetectorInfo] = {}
        for name, ds in self.data_sources.items():
            i = ds.info()
            if i is not None:
                out[name] = i
        return out

    def constants(self, name: str) -> dict[str, Any]:
        """Calibration constants a data source provides (the synthetic detector does)."""
        ds = self.data_sources.get(name)
        fn = getattr(ds, "constants", None)
        if fn is None:
            raise SourceError(
                f"data source {name!r} has no built-in calibration constants "
                "(constants: synthetic needs a SyntheticDetector; give a constants file)"
            )
        return dict(fn())

    def frames_stay_valid(self, name: str) -> bool:
        """Whether data source ``name``'s frames stay unchanged after the next event is read
        (the synthetic detector hands out read-only views of its pool): then the pipeline
        may calibrate a batch of them at once."""
        return bool(getattr(self.data_sources.get(name), "frames_stay_valid", False))

    def _is_hit(self, index: int) -> bool | None:
        """The synthetic detector's ground truth, where the events come from one."""
        fn = getattr(self._timestamp_source, "is_hit", None)
        return bool(fn(index)) if fn is not None else None

    def _timestamp(self, index: int) -> int:
        if self._timestamp_source is not None:
            return int(self._timestamp_source.timestamp(index))
        from lclstream.sources.synthetic import T0_NS

        return T0_NS + int(round(index * self._period_ns))

    def events(self) -> Iterator[Event]:
        sources = list(self.data_sources.items())
        end = self.first_event + self.number_of_events
        for index in range(self.first_event + self.worker, end, self.workers):
            data = {name: ds.get_data(index) for name, ds in sources}
            event = Event(
                event_id=index,
                timestamp=self._timestamp(index),
                data=data,
                is_hit=self._is_hit(index),
            )
            if self.incomplete.accept(event):
                yield event

    def close(self) -> None:
        for ds in self.data_sources.values():
            ds.close()
