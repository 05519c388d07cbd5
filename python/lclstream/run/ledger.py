"""The ledger: the only owner of a run's counts, stage statistics and drop reasons.

Why one owner: the promise that makes a stream trustworthy is that every event read is
either sent or dropped with a reason, and that the end message says so. Counts kept in
several places drift (an event counted as read and then lost by a failing stage). Here every
stage reports what happened in the words of its job — ``read``, ``calibrated``,
``serialized``, ``sent``, ``dropped`` — and :meth:`Ledger.totals` derives the end message's
totals from those facts alone. Thread-safe: the stages report from their own threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from lclstream.protocols import DropCounter, EndState, StreamTotals

__all__ = ["STAGES", "Ledger", "StageStats"]

#: The stages of a run, in order.
STAGES = ("read", "calibrate", "model", "serialize", "send")


@dataclass
class StageStats:
    """What one stage did: events and items (batches/messages) through it, bytes, busy time."""

    name: str
    events: int = 0
    items: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    busy_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Counts of one sender's run. Times are ``time.perf_counter()`` values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages = {n: StageStats(n) for n in STAGES}
        self._read = 0
        self._sent = 0
        self._messages = 0
        self._dropped: dict[str, int] = {}
        self._hits = 0
        self.first_event_at: float | None = None
        self.ended_at: float | None = None
        #: events sent once the run is warm (every pooled buffer used once: their fresh pages,
        #: ~0.5 GB/s to touch, are behind it), when that was, and how many were sent by then
        self.warm_after = 0
        self.warm_at: float | None = None
        self.warm_sent = 0

    # ---- what the stages report ------------------------------------------------------------

    def read(self, nbytes: int, started: float, seconds: float) -> None:
        """One event came from the source (``nbytes`` of detector data)."""
        with self._lock:
            if self.first_event_at is None:
                self.first_event_at = started
            self._read += 1
            st = self._stages["read"]
            st.events += 1
            st.bytes_in += nbytes
            st.bytes_out += nbytes
            st.busy_seconds += seconds

    def dropped_by_source(self, reason: str, n: int = 1) -> None:
        """Events the source read and dropped itself (incomplete events): read and dropped."""
        with self._lock:
            self._read += n
            self._dropped[reason] = self._dropped.get(reason, 0) + n

    @property
    def source_drops(self) -> DropCounter:
        """The :class:`~lclstream.protocols.DropCounter` a source counts its drops into."""
        return _Drops(self.dropped_by_source)

    @property
    def drops_after_read(self) -> DropCounter:
        """A :class:`~lclstream.protocols.DropCounter` for events this run has counted as
        read already (the pipeline's own skip_incomplete_events check)."""
        return _Drops(self.dropped)

    def calibrated(self, bytes_in: int, bytes_out: int, seconds: float) -> None:
        with self._lock:
            st = self._stages["calibrate"]
            st.events += 1
            st.bytes_in += bytes_in
            st.bytes_out += bytes_out
            st.busy_seconds += seconds

    def calibrate_busy(self, seconds: float) -> None:
        """Calibration time not tied to one event (a batch calibrated at once)."""
        with self._lock:
            self._stages["calibrate"].busy_seconds += seconds

    def modelled(self, events: int, seconds: float) -> None:
        """A batch went through the run's batch models (the model stage)."""
        with self._lock:
            st = self._stages["model"]
            st.events += events
            st.items += 1
            st.busy_seconds += seconds

    def hit(self, n: int = 1) -> None:
        with self._lock:
            self._hits += n

    def dropped(self, reason: str, n: int = 1) -> None:
        """``n`` events read by this run will not be sent, for ``reason``."""
        if n <= 0:
            return
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n

    def serialized(
        self, events: int, messages: int, bytes_in: int, bytes_out: int, seconds: float
    ) -> None:
        with self._lock:
            st = self._stages["serialize"]
            st.events += events
            st.items += messages
            st.bytes_in += bytes_in
            st.bytes_out += bytes_out
            st.busy_seconds += seconds

    def sent(self, events: int, messages: int, nbytes: int, seconds: float) -> None:
        """Data messages carrying ``events`` events went out to every live handler."""
        with self._lock:
            self._sent += events
            self._messages += messages
            if self.warm_at is None and self.warm_after and self._sent >= self.warm_after:
                self.warm_at, self.warm_sent = time.perf_counter(), self._sent
            st = self._stages["send"]
            st.events += events
            st.items += messages
            st.bytes_in += nbytes
            st.bytes_out += nbytes
            st.busy_seconds += seconds

    def send_busy(self, seconds: float) -> None:
        """Time the send stage spent on messages that did not go out."""
        with self._lock:
            self._stages["send"].busy_seconds += seconds

    def ended(self) -> None:
        with self._lock:
            self.ended_at = time.perf_counter()

    # ---- what the run reports --------------------------------------------------------------

    @property
    def events_read(self) -> int:
        with self._lock:
            return self._read

    @property
    def unaccounted(self) -> int:
        """Events read that are neither sent nor dropped (0 once a run ended in order)."""
        with self._lock:
            return self._read - self._sent - sum(self._dropped.values())

    def totals(self, end_state: EndState = "completed", error: str = "") -> StreamTotals:
        """The end message's totals. Events still unaccounted for (a stage failed while they
        were in flight) are dropped here with the reason ``aborted``, so that
        ``events_read == events_sent + events_dropped`` always holds in the message."""
        with self._lock:
            dropped = dict(self._dropped)
            lost = self._read - self._sent - sum(dropped.values())
            if lost > 0:
                dropped["aborted"] = dropped.get("aborted", 0) + lost
            return StreamTotals(
                events_sent=self._sent,
                messages_sent=self._messages,
                events_dropped=sum(dropped.values()),
                drop_reasons=dropped,
                events_read=self._read,
                end_state=end_state,
                error=error,
                hits=self._hits,
                bytes_read=self._stages["read"].bytes_out,
                bytes_sent=self._stages["send"].bytes_in,
            )

    def snapshot(self) -> dict[str, Any]:
        """A consistent view of the counts (progress displays, ``stats()``)."""
        with self._lock:
            now = time.perf_counter()
            t0 = self.first_event_at
            t1 = self.ended_at if self.ended_at is not None else now
            return {
                "stages": {n: s.as_dict() for n, s in self._stages.items()},
                "events_read": self._read,
                "events_sent": self._sent,
                "events_dropped": sum(self._dropped.values()),
                "messages_sent": self._messages,
                "bytes_in": self._stages["read"].bytes_out,
                "bytes_out": self._stages["send"].bytes_in,
                "hits": self._hits,
                "seconds": (t1 - t0) if t0 is not None else 0.0,
            }


class _Drops:
    def __init__(self, count: Callable[[str, int], None]) -> None:
        self._count = count

    def drop(self, reason: str, n: int = 1) -> None:
        self._count(reason, n)
