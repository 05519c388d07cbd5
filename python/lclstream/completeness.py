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

from lclstream.errors import RejectedMessage
from lclstream.limits import DEFAULT_LIMITS, Limits
from lclstream.protocols import ParsedMessage, StreamTotals

__all__ = ["SenderReport", "StreamReport", "StreamTracker"]

#: Missing sequence numbers listed per sender (the count is always exact).
MAX_LISTED = 100
#: Largest sequence number or count a message may carry (2^53: exact in a float, far more
#: messages than any stream sends).
MAX_COUNT = 1 << 53


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
    missing: list[int]  # data-message sequence numbers that did not arrive (the first 100)
    duplicates: int  # data messages that arrived more than once
    ended: bool
    events_sent: int | None  # from the end message
    messages_sent: int | None
    events_dropped: int
    drop_reasons: dict[str, int]
    end_state: str = ""  # from the end message ("" before it arrived)
    error: str = ""
    missing_count: int = 0  # how many sequence numbers are missing (``missing`` lists some)
    hits: int = 0  # the reduction the end message reports (0: older sender or none)
    bytes_read: int = 0
    bytes_sent: int = 0

    @property
    def complete(self) -> bool:
        return (
            self.ended
            and self.end_state == "completed"
            and not self.missing
            and self.missing_count == 0
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
        # O(senders seen), never O(senders declared): done means every index 0..senders-1
        # has ended, and indices outside that range are refused by the tracker
        return self.done and all(r.complete for r in self.per_sender.values())

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
        silent = [i for i in range(min(self.senders, 10)) if i not in self.senders_ended]
        n_silent = self.senders - len(self.senders_ended)
        for i in silent:
            out.append(f"stream {sid}: sender {i} has not sent its end message")
        if n_silent > len(silent):
            out.append(f"stream {sid}: {n_silent} senders in all have not sent their end message")
        for i, r in sorted(self.per_sender.items()):
            if r.missing_count:
                shown = ", ".join(map(str, r.missing[:10])) + (
                    " ..." if r.missing_count > 10 else ""
                )
                out.append(
                    f"stream {sid}: sender {i}: {r.missing_count} message(s) missing: {shown}"
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


def _count(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT:
        raise RejectedMessage(f"{what} {v!r:.40} is not a count in 0..2^53", "forged")
    return v


class StreamTracker:
    """Accounts for every message of one or more streams as it arrives (``add``).

    Declared numbers never drive work: a message claiming ``senders=10**12``, a sender
    index outside its stream, a sequence number or an end total beyond 2^53, or an end
    message contradicting one already recorded is refused (:class:`RejectedMessage`) before
    anything is recorded; memory and time are proportional to the messages that arrived,
    never to what they claim.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._streams: dict[str, _StreamState] = {}
        self.messages = 0
        self.limits = limits

    def check(self, msg: ParsedMessage) -> None:
        """Raise :class:`RejectedMessage` if ``msg`` cannot belong to a stream; records nothing."""
        if msg.kind not in ("start", "data", "end"):
            raise ValueError(f"StreamTracker: unknown message kind {msg.kind!r}")
        where = f"stream {msg.stream_id!r:.60}"
        senders = msg.senders
        if isinstance(senders, bool) or not isinstance(senders, int):
            raise RejectedMessage(f"{where}: senders {senders!r:.40} is not an integer", "forged")
        if not 1 <= senders <= self.limits.max_senders:
            raise RejectedMessage(
                f"{where}: declares {senders} senders (1..max_senders={self.limits.max_senders})",
                "limit",
            )
        sender = msg.sender
        if isinstance(sender, bool) or not isinstance(sender, int) or not 0 <= sender < senders:
            raise RejectedMessage(
                f"{where}: sender index {sender!r:.40} outside 0..{senders - 1}", "forged"
            )
        if msg.kind == "data":
            _count(msg.sequence, f"{where}: sender {sender}: sequence number")
        elif msg.kind == "end":
            t = msg.totals
            if t is not None:
                for name in (
                    "events_sent", "messages_sent", "events_dropped", "events_read", "hits",
                    "bytes_read", "bytes_sent",
                ):  # fmt: skip
                    _count(getattr(t, name), f"{where}: sender {sender}: {name}")
                st = self._streams.get(msg.stream_id)
                s = st.senders_state.get(sender) if st is not None else None
                if s is not None and s.ended and s.totals is not None and s.totals != t:
                    raise RejectedMessage(
                        f"{where}: sender {sender}: a second end message with other totals",
                        "forged",
                    )

    def add(self, msg: ParsedMessage) -> None:
        """Records one parsed message (after :meth:`check`, which may refuse it)."""
        self.check(msg)
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
        else:
            # Every consumer of a shared stream gets the end message: a repeat is expected.
            s.ended = True
            s.totals = msg.totals if msg.totals is not None else StreamTotals()
            s.end_sequence = int(msg.sequence)

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
            # O(messages received) whatever ``expected`` claims: count, then list a few
            missing_count = expected - len(s.events)
            missing: list[int] = []
            q = 0
            while len(missing) < min(MAX_LISTED, missing_count) and q < expected:
                if q not in s.events:
                    missing.append(q)
                q += 1
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
                missing_count=missing_count,
                hits=0 if t is None else t.hits,
                bytes_read=0 if t is None else t.bytes_read,
                bytes_sent=0 if t is None else t.bytes_sent,
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
            "hits": sum(s.hits for r in reps for s in r.per_sender.values()),
            "bytes_read": sum(s.bytes_read for r in reps for s in r.per_sender.values()),
            "bytes_sent": sum(s.bytes_sent for r in reps for s in r.per_sender.values()),
            "gaps": {r.stream_id: r.gaps for r in reps if r.gaps},
            "duplicates": sum(s.duplicates for r in reps for s in r.per_sender.values()),
            "problems": [p for r in reps for p in r.problems()],
            "done": self.done,
            "complete": self.complete,
        }
