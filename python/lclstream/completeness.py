"""Stream accounting: did everything a stream's senders sent arrive, exactly once?

Format-agnostic: it only sees what a parser found in each message
(:class:`lclstream.protocols.ParsedMessage`): stream id, sender index, number of senders,
per-sender sequence number, kind (start / data / end), the events in a data message and the
totals of an end message. Conventions it relies on (those of ``lclstream.formats``):

* data messages of one sender are numbered 0, 1, 2, ... (``sequence``); start messages may
  carry any sequence (they are not counted);
* each sender's end message carries ``StreamTotals``: ``events_sent`` and
  ``messages_sent`` (data messages), what it dropped and why, and how its run ended
  (``end_state``).

A stream is *complete* when every sender ``0 .. senders-1`` has ended normally
(``end_state`` ``completed``: not cancelled, failed or truncated), no data message is
missing or duplicated, and the data messages and events that arrived equal the senders'
totals. With several consumers sharing one PUSH stream each sees only part of it: every
consumer tracks what it got and :meth:`StreamTracker.merge` combines their trackers (end
messages are broadcast, so each consumer has them; data messages must arrive exactly once
across all consumers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lclstream.protocols import ParsedMessage, StreamTotals

__all__ = ["SenderReport", "StreamReport", "StreamTracker"]


@dataclass
class _SenderState:
    events: dict[int, int] = field(default_factory=dict)  # sequence -> events in that message
    duplicates: int = 0
    ended: bool = False
    totals: StreamTotals | None = None
    end_sequence: int | None = None


@dataclass
class _StreamState:
    senders: int = 0
    senders_state: dict[int, _SenderState] = field(default_factory=dict)
    starts: int = 0

    def sender(self, i: int) -> _SenderState:
        s = self.senders_state.get(i)
        if s is None:
            s = self.senders_state[i] = _SenderState()
        return s


@dataclass(frozen=True)
class SenderReport:
    """What arrived from one sender."""

    sender: int
    messages_received: int
    events_received: int
    missing: list[int]  # data-message sequence numbers that did not arrive
    duplicates: int  # data messages that arrived more than once
    ended: bool
    events_sent: int | None  # from the end message
    messages_sent: int | None
    events_dropped: int
    drop_reasons: dict[str, int]
    end_state: str = ""  # from the end message ("" before it arrived)
    error: str = ""

    @property
    def complete(self) -> bool:
        return (
            self.ended
            and self.end_state == "completed"
            and not self.missing
            and self.duplicates == 0
            and self.events_sent == self.events_received
            and self.messages_sent == self.messages_received
        )


@dataclass(frozen=True)
class StreamReport:
    """What arrived of one stream, sender by sender."""

    stream_id: str
    senders: int
    per_sender: dict[int, SenderReport]

    @property
    def senders_ended(self) -> list[int]:
        return sorted(i for i, r in self.per_sender.items() if r.ended)

    @property
    def done(self) -> bool:
        """Every sender's end message is in (whether or not anything was lost)."""
        return self.senders > 0 and len(self.senders_ended) == self.senders

    @property
    def complete(self) -> bool:
        return self.done and all(
            i in self.per_sender and self.per_sender[i].complete for i in range(self.senders)
        )

    @property
    def gaps(self) -> dict[int, list[int]]:
        return {i: r.missing for i, r in self.per_sender.items() if r.missing}

    @property
    def events_received(self) -> int:
        return sum(r.events_received for r in self.per_sender.values())

    @property
    def events_sent(self) -> int:
        return sum(r.events_sent or 0 for r in self.per_sender.values())

    def problems(self) -> list[str]:
        """One line per thing that keeps the stream from being complete."""
        out: list[str] = []
        sid = self.stream_id
        for i in range(self.senders):
            r = self.per_sender.get(i)
            if r is None or not r.ended:
                out.append(f"stream {sid}: sender {i} has not sent its end message")
        for i, r in sorted(self.per_sender.items()):
            if r.missing:
                shown = ", ".join(map(str, r.missing[:10])) + (
                    " ..." if len(r.missing) > 10 else ""
                )
                out.append(
                    f"stream {sid}: sender {i}: {len(r.missing)} message(s) missing: {shown}"
                )
            if r.duplicates:
                out.append(f"stream {sid}: sender {i}: {r.duplicates} duplicate message(s)")
            if r.ended and r.end_state != "completed":
                why = f" ({r.error})" if r.error else ""
                out.append(f"stream {sid}: sender {i}: its run ended {r.end_state}{why}")
            if r.ended and r.events_sent != r.events_received:
                out.append(
                    f"stream {sid}: sender {i}: {r.events_received} events received, "
                    f"{r.events_sent} sent"
                )
            if r.ended and r.messages_sent != r.messages_received:
                out.append(
                    f"stream {sid}: sender {i}: {r.messages_received} data messages received, "
                    f"{r.messages_sent} sent"
                )
        return out


class StreamTracker:
    """Accounts for every message of one or more streams as it arrives (``add``)."""

    def __init__(self) -> None:
        self._streams: dict[str, _StreamState] = {}
        self.messages = 0

    def add(self, msg: ParsedMessage) -> None:
        """Records one parsed message."""
        self.messages += 1
        st = self._streams.setdefault(msg.stream_id, _StreamState())
        st.senders = max(st.senders, int(msg.senders))
        s = st.sender(int(msg.sender))
        if msg.kind == "start":
            st.starts += 1
        elif msg.kind == "data":
            n = len(msg.batch) if msg.batch is not None else 0
            seq = int(msg.sequence)
            if seq in s.events:
                s.duplicates += 1
            else:
                s.events[seq] = n
        elif msg.kind == "end":
            # Every consumer of a shared stream gets the end message: a repeat is expected.
            s.ended = True
            s.totals = msg.totals if msg.totals is not None else StreamTotals()
            s.end_sequence = int(msg.sequence)
        else:
            raise ValueError(f"StreamTracker: unknown message kind {msg.kind!r}")

    def merge(self, other: StreamTracker) -> StreamTracker:
        """Adds what another consumer of the same stream(s) received; returns self.

        A data message both trackers saw counts as a duplicate (PUSH delivers each message
        to one consumer); end messages may be in both.
        """
        self.messages += other.messages
        for sid, ost in other._streams.items():
            st = self._streams.setdefault(sid, _StreamState())
            st.senders = max(st.senders, ost.senders)
            st.starts += ost.starts
            for i, os_ in ost.senders_state.items():
                s = st.sender(i)
                for seq, n in os_.events.items():
                    if seq in s.events:
                        s.duplicates += 1
                    else:
                        s.events[seq] = n
                s.duplicates += os_.duplicates
                if os_.ended:
                    s.ended = True
                    s.totals = os_.totals
                    s.end_sequence = os_.end_sequence
        return self

    # ---- reports -------------------------------------------------------------------------

    @property
    def stream_ids(self) -> list[str]:
        return list(self._streams)

    def report(self, stream_id: str | None = None) -> StreamReport:
        """The report of one stream (the only one when ``stream_id`` is None)."""
        if stream_id is None:
            if len(self._streams) != 1:
                raise ValueError(
                    f"StreamTracker.report: {len(self._streams)} streams seen; name one of "
                    f"{sorted(self._streams)}"
                )
            stream_id = next(iter(self._streams))
        st = self._streams[stream_id]
        per: dict[int, SenderReport] = {}
        for i, s in st.senders_state.items():
            t = s.totals
            expected = max(s.events, default=-1) + 1
            if t is not None:
                expected = max(expected, t.messages_sent)
            missing = [q for q in range(expected) if q not in s.events]
            per[i] = SenderReport(
                sender=i,
                messages_received=len(s.events),
                events_received=sum(s.events.values()),
                missing=missing,
                duplicates=s.duplicates,
                ended=s.ended,
                events_sent=None if t is None else t.events_sent,
                messages_sent=None if t is None else t.messages_sent,
                events_dropped=0 if t is None else t.events_dropped,
                drop_reasons={} if t is None else dict(t.drop_reasons),
                end_state="" if t is None else t.end_state,
                error="" if t is None else t.error,
            )
        return StreamReport(stream_id, st.senders, per)

    def reports(self) -> list[StreamReport]:
        return [self.report(sid) for sid in self._streams]

    @property
    def done(self) -> bool:
        """Every sender of every stream seen has sent its end message."""
        return bool(self._streams) and all(r.done for r in self.reports())

    @property
    def complete(self) -> bool:
        """Every stream seen is complete (see the module docstring)."""
        return bool(self._streams) and all(r.complete for r in self.reports())

    def summary(self) -> dict[str, Any]:
        """Totals over all streams, for a command's ``--json`` output."""
        reps = self.reports()
        reasons: dict[str, int] = {}
        states: dict[str, int] = {}
        for r in reps:
            for s in r.per_sender.values():
                for k, v in s.drop_reasons.items():
                    reasons[k] = reasons.get(k, 0) + v
                if s.ended:
                    states[s.end_state] = states.get(s.end_state, 0) + 1
        return {
            "stream_ids": [r.stream_id for r in reps],
            "senders": sum(r.senders for r in reps),
            "senders_ended": sum(len(r.senders_ended) for r in reps),
            "messages_received": sum(
                s.messages_received for r in reps for s in r.per_sender.values()
            ),
            "events_received": sum(r.events_received for r in reps),
            "events_sent": sum(r.events_sent for r in reps),
            "events_dropped": sum(s.events_dropped for r in reps for s in r.per_sender.values()),
            "drop_reasons": reasons,
            "end_states": states,
            "gaps": {r.stream_id: r.gaps for r in reps if r.gaps},
            "duplicates": sum(s.duplicates for r in reps for s in r.per_sender.values()),
            "problems": [p for r in reps for p in r.problems()],
            "done": self.done,
            "complete": self.complete,
        }
