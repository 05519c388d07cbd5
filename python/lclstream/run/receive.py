"""The consumer side: receive a stream, open every message, prove completeness, write files.

Why in the library (the CLI's ``receive`` is a thin wrapper): tests, benchmarks, the demo and
embedding applications receive the same way, and the completeness verdict must be one
implementation. Each message is detected once (a signature check) and parsed once; the
file writer takes the parsed message, so no HDF5 image is opened twice.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lclstream.completeness import StreamTracker
from lclstream.errors import ConfigError, FormatError, RejectedMessage
from lclstream.limits import DEFAULT_LIMITS, Limits
from lclstream.protocols import EventBatch, ParsedMessage, message_nbytes

if TYPE_CHECKING:
    from lclstream.transport import Curve

__all__ = ["ReceiveResult", "receive"]


@dataclass
class ReceiveResult:
    """What a receiver saw: counts, the senders' end-of-stream totals and the verdict."""

    events: int = 0
    messages: int = 0
    bytes: int = 0
    seconds: float = 0.0  # first message -> last message
    startup_seconds: float = 0.0  # receiver ready -> first message
    complete: bool = False
    ended: bool = False  # every sender's end message arrived
    timed_out: bool = False
    stream_ids: list[str] = field(default_factory=list)
    senders: int = 0
    senders_ended: int = 0
    events_sent: int = 0  # from the end messages
    events_dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    #: the reduction the senders report in their end messages: hits, raw bytes they read,
    #: bytes of data messages they sent
    hits: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0
    expected: int | None = None
    files: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: how each sender's run ended (from the end messages): state -> senders
    end_states: dict[str, int] = field(default_factory=dict)
    #: why the receiver stopped early (Ctrl-C, SIGTERM), else empty
    interrupted: str = ""
    #: the stream this receive accounted for (``stream_id=`` or the first one seen)
    stream_id: str = ""
    #: messages refused (unparseable, another stream's, forged, beyond the limits): they
    #: are counted here and change nothing else
    rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    #: the first refused messages, one line each (message index, reason, sender if known)
    rejections: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def incomplete_reason(self) -> str:
        """Why the stream is not complete, in one line (empty when it is)."""
        if self.complete:
            return ""
        why = (
            self.interrupted
            or ("timed out" if self.timed_out else "")
            or "; ".join(self.problems[:3])
            or "totals do not match"
        )
        exp = f", {self.expected} expected" if self.expected is not None else ""
        return (
            f"stream incomplete ({why}): {self.events} events received, end totals say "
            f"{self.events_sent} from {self.senders_ended}/{self.senders or '?'} senders{exp}"
        )


def receive(
    urls: str | Sequence[str],
    *,
    bind: bool = True,
    out: str | Path | None = None,
    format: str | None = None,
    expect: int | None = None,
    timeout: float = 30.0,
    first_timeout: float | None = None,
    max_files: int | None = None,
    img_per_file: int | None = None,
    socket_type: str = "pull",
    curve: Curve | None = None,
    reuse_buffers: bool = False,
    on_ready: Callable[[list[str]], None] | None = None,
    on_message: Callable[[ReceiveResult], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    strict: bool = False,
    stream_id: str | None = None,
    end_grace: float = 1.0,
    on_batch: Callable[[ParsedMessage, list[Any]], None] | None = None,
    rcvhwm: int | None = None,
    decode_threads: int = 0,
) -> ReceiveResult:
    """Receive one stream until every sender's end message is in (or ``timeout`` s of silence).

    Every message is parsed and its data decoded (``formats.parse``, within ``limits``).
    A message that cannot be parsed, belongs to another stream or is impossible (see
    :class:`~lclstream.completeness.StreamTracker`) is *rejected*: counted in
    ``result.rejected`` with its reason, and the receive goes on; with ``strict`` the first
    one raises instead. The stream is ``stream_id`` when given, else the first stream
    whose start or data message arrives; an end message alone does not choose the stream
    (a forged one could end the receive), unless nothing else arrived within ``end_grace``
    seconds of it (a stream with no data messages). ``expect`` is the number of events the
    caller expects; the stream is complete when all end messages arrived, the events
    received equal the senders' ``events_sent`` and (if given) ``expect``. With ``out``,
    messages are written as numbered .h5 files (at most ``max_files``), or
    ``img_per_file`` events a file. Messages already received when the receive is
    interrupted are still processed before it returns.

    ``on_batch(parsed, frames)`` is called with every data message the stream accounted
    for (never a rejected one), in order; while it runs nothing more is received, so a
    consumer that blocks in it holds the producer back (at most ``rcvhwm`` messages wait in
    libzmq, the transport's default otherwise). An exception from it ends the receive.

    ``decode_threads`` decode each message's chunks (0: all cores). A receiver that shares
    its machine with the streamer (the demo) does better with 1: threads that wait on
    each other's blocks cost the streamer's cores more than they save.
    """
    from lclstream import formats
    from lclstream.transport import Receiver

    url_list = [urls] if isinstance(urls, str) else list(urls)
    result = ReceiveResult(expected=expect)
    if max_files is None:
        max_files = limits.max_files
    wanted = None if format is None else _FORMAT_KINDS.get(format)
    if format is not None and wanted is None:
        raise ConfigError(f"format {format!r} is not one of {', '.join(_FORMAT_KINDS)}")
    from lclstream.transport import DEFAULT_HWM

    rx = Receiver(
        url_list,
        bind=bind,
        socket_type=socket_type,
        rcvhwm=DEFAULT_HWM if rcvhwm is None else rcvhwm,
        timeout=timeout,
        curve=curve,
        reuse_buffers=reuse_buffers,
    )
    writer = None
    try:
        result.endpoints = list(getattr(rx, "endpoints", url_list))
        if on_ready is not None:
            on_ready(result.endpoints)
        if out is not None:
            from lclstream.writer import FileWriter

            writer = FileWriter(Path(out), img_per_file=img_per_file)
        tracker = StreamTracker(limits)
        gate = _StreamGate(stream_id, tracker)
        seen = 0  # messages received, rejected ones included (their index in rejections)

        def take(frames: list[Any]) -> bool:
            """Process one message; True when the stream is done."""
            nonlocal seen
            seen += 1
            try:
                accepted, foreign = _accept(
                    frames, formats, wanted, format, limits, gate, decode_threads
                )
            except FormatError as exc:
                reason = exc.reason if isinstance(exc, RejectedMessage) else "corrupt"
                _reject(result, seen - 1, reason, str(exc), strict, limits)
                return False
            for p in foreign:
                _reject(result, -1, "foreign", _foreign_text(p, gate), strict, limits)
            return _record_all(
                accepted, tracker, result, writer, max_files, strict, limits, on_batch
            )

        t_ready = time.perf_counter()
        t_first: float | None = None
        t_last = t_ready
        with _sigterm_interrupts():
            try:
                while True:
                    wait = (
                        timeout if t_first is not None or first_timeout is None else first_timeout
                    )
                    if gate.pending:
                        wait = min(wait, max(0.0, gate.grace_left(end_grace)))
                    try:
                        frames = rx.recv(wait)
                    except TimeoutError:
                        if gate.pending and gate.grace_left(end_grace) <= 0:
                            # only end messages arrived, of one stream: an empty stream
                            if _apply_pending(gate, result, writer, max_files, strict, limits):
                                break
                            if gate.pending:  # ends of several streams: wait for data
                                gate.t_pending = float("inf")
                            continue
                        result.timed_out = True
                        break
                    now = time.perf_counter()
                    if t_first is None:
                        t_first = now
                    t_last = now
                    if take(frames):
                        break
                    if on_message is not None:
                        on_message(result)
            except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: stop, report what arrived
                result.interrupted = str(e) or "interrupted (Ctrl-C)"
                # what libzmq already holds was received: process it (bounded), not drop it
                t_stop = time.perf_counter() + 2.0
                for _ in range(100_000):
                    if time.perf_counter() > t_stop:
                        break
                    frames_or_none = rx.try_recv(0)
                    if frames_or_none is None:
                        break
                    t_last = time.perf_counter()
                    if take(frames_or_none):
                        break
            if gate.pending and not result.interrupted:
                _apply_pending(gate, result, writer, max_files, strict, limits)
        result.stream_id = gate.pinned or ""
        result.seconds = (t_last - t_first) if t_first is not None else 0.0
        result.startup_seconds = (t_first - t_ready) if t_first is not None else 0.0
        _update_from_tracker(result, tracker)
    finally:
        try:
            rx.close()
        finally:
            if writer is not None:
                writer.close()
                result.files = [str(f) for f in getattr(writer, "files", [])]
    return result


#: --format name -> what formats.detect() says for such messages.
_FORMAT_KINDS: dict[str, tuple[str, ...]] = {
    "hdf5": ("hdf5",),
    "simplon": ("simplon", "lclstreamer_simplon"),
    "raw": ("raw",),
    "lclstreamer_simplon": ("lclstreamer_simplon",),
    "npz": ("npz",),
}


class _StreamGate:
    """Which stream this receive accounts for, and the end messages waiting for it.

    Why: the verdict must come from the stream's own messages. A message of another stream
    is refused as foreign; an end message that arrives before any start or data message
    waits (an end message alone is what a forger sends to stop a receiver with
    ``complete: true``)."""

    def __init__(self, stream_id: str | None, tracker: StreamTracker) -> None:
        self.pinned = stream_id
        self.tracker = tracker
        self.pending: list[tuple[ParsedMessage, list[Any]]] = []
        self.t_pending = 0.0

    def grace_left(self, grace: float) -> float:
        return self.t_pending + grace - time.perf_counter()

    def admit(self, parsed: ParsedMessage, frames: list[Any]) -> list[tuple[ParsedMessage, Any]]:
        """The messages to record now (this one, and pending ends once the stream is known)."""
        if self.pinned is None:
            if parsed.kind == "end":
                self.tracker.check(parsed)
                if len(self.pending) >= 1024:
                    raise RejectedMessage("more than 1024 end messages before any data", "forged")
                if not self.pending:
                    self.t_pending = time.perf_counter()
                self.pending.append((parsed, _keep(frames)))
                return []
            self.tracker.check(parsed)
            self.pinned = parsed.stream_id
        if parsed.stream_id != self.pinned:
            raise RejectedMessage(
                f"message of stream {parsed.stream_id!r:.60} (sender {parsed.sender}), "
                f"this receiver accounts for stream {self.pinned!r}",
                "foreign",
            )
        self.tracker.check(parsed)
        return [(parsed, frames)]

    def release(self) -> tuple[list[tuple[ParsedMessage, Any]], list[ParsedMessage]]:
        """Pending end messages: (those of the pinned stream, the foreign ones)."""
        mine, foreign = [], []
        for p, fr in self.pending:
            if p.stream_id == self.pinned:
                mine.append((p, fr))
            else:
                foreign.append(p)
        self.pending = []
        return mine, foreign


def _keep(frames: list[Any]) -> list[Any]:
    """Frames that outlive the receive buffer (pending end messages are small)."""
    return [bytes(memoryview(f)) for f in frames]


def _foreign_text(p: ParsedMessage, gate: _StreamGate) -> str:
    return (
        f"end message of stream {p.stream_id!r:.60} (sender {p.sender}), "
        f"this receiver accounts for stream {gate.pinned!r}"
    )


def _accept(
    frames: list[Any],
    formats: Any,
    wanted: tuple[str, ...] | None,
    format: str | None,
    limits: Limits,
    gate: _StreamGate,
    threads: int = 0,
) -> tuple[list[tuple[ParsedMessage, Any]], list[ParsedMessage]]:
    """Parse one message and decide whether it is the stream's (FormatError if not).

    Returns the messages to record now (pending end messages of the stream once it is
    known, then this one) and the pending end messages that turned out foreign."""
    limits.check_message(message_nbytes(frames))
    got = formats.detect(frames)
    if wanted is not None and got not in wanted:
        raise RejectedMessage(f"message is {got}, not the expected {format}", "format")
    parsed = formats.parse(frames, kind=got, limits=limits, threads=threads)
    if parsed.kind == "data" and parsed.batch is not None:
        _touch(parsed.batch)
    was_pinned = gate.pinned is not None
    out = gate.admit(parsed, frames)
    if not was_pinned and gate.pinned is not None and gate.pending:
        mine, foreign = gate.release()
        return mine + out, foreign
    return out, []


def _record_all(
    accepted: list[tuple[ParsedMessage, Any]],
    tracker: StreamTracker,
    result: ReceiveResult,
    writer: Any,
    max_files: int | None,
    strict: bool,
    limits: Limits,
    on_batch: Callable[[ParsedMessage, list[Any]], None] | None = None,
) -> bool:
    """Account for and write accepted messages, hand data to ``on_batch``; True when the
    stream is done."""
    ended = False
    for parsed, frames in accepted:
        try:
            tracker.add(parsed)
        except RejectedMessage as exc:
            _reject(result, -1, exc.reason, str(exc), strict, limits)
            continue
        result.messages += 1
        result.bytes += message_nbytes(frames)
        if parsed.kind == "data" and parsed.batch is not None:
            result.events += len(parsed.batch)
        if writer is not None and (max_files is None or len(writer.files) < max_files):
            writer.write_parsed(parsed, frames)
        if on_batch is not None and parsed.kind == "data" and parsed.batch is not None:
            on_batch(parsed, frames)
        ended = ended or parsed.kind == "end"
    return ended and tracker.done  # reports cost O(messages): only after an end message


def _reject(
    result: ReceiveResult, index: int, reason: str, text: str, strict: bool, limits: Limits
) -> None:
    if strict:
        raise RejectedMessage(f"message {index} rejected ({reason}): {text}", reason)
    result.rejected += 1
    result.rejected_reasons[reason] = result.rejected_reasons.get(reason, 0) + 1
    if len(result.rejections) < 20:
        result.rejections.append(f"message {index}: {reason}: {text[:300]}")
    if limits.max_rejected is not None and result.rejected > limits.max_rejected:
        raise RejectedMessage(
            f"{result.rejected} messages rejected, more than max_rejected={limits.max_rejected}"
            f" (last: {reason}: {text[:200]})",
            reason,
        )


def _apply_pending(
    gate: _StreamGate,
    result: ReceiveResult,
    writer: Any,
    max_files: int | None,
    strict: bool,
    limits: Limits,
) -> bool:
    """No start or data message came: if the waiting end messages are all of one stream,
    that stream (empty) is the one; returns True when it is done."""
    ids = {p.stream_id for p, _ in gate.pending}
    if gate.pinned is None and len(ids) == 1:
        gate.pinned = next(iter(ids))
    if gate.pinned is None:  # ends of several streams and nothing else: none is chosen
        return False
    mine, foreign = gate.release()
    for p in foreign:
        _reject(result, -1, "foreign", _foreign_text(p, gate), strict, limits)
    return _record_all(mine, gate.tracker, result, writer, max_files, strict, limits)


def _touch(batch: EventBatch) -> None:
    """Make sure every array of a parsed batch is really there (lazy readers decode now)."""
    for arr in batch.arrays.values():
        np.asarray(arr)


def _update_from_tracker(result: ReceiveResult, tracker: StreamTracker) -> None:
    summary = tracker.summary()
    result.senders = int(summary["senders"])
    result.senders_ended = int(summary["senders_ended"])
    result.events_sent = int(summary["events_sent"])
    result.events_dropped = int(summary["events_dropped"])
    result.drop_reasons = dict(summary["drop_reasons"])
    result.hits = int(summary["hits"])
    result.bytes_read = int(summary["bytes_read"])
    result.bytes_sent = int(summary["bytes_sent"])
    result.stream_ids = list(summary["stream_ids"])
    result.problems = list(summary["problems"])
    result.ended = bool(summary["done"])
    result.end_states = dict(summary["end_states"])
    complete = bool(summary["complete"])
    if result.interrupted:
        complete = False
        result.problems.append(f"receiver stopped: {result.interrupted}")
    if result.expected is not None and result.events != result.expected:
        complete = False
        result.problems.append(f"{result.events} events received, {result.expected} expected")
    result.complete = complete


class _sigterm_interrupts:
    """SIGTERM stops a receive like Ctrl-C does (in the main thread, where the default
    handler is set): the summary still says what arrived."""

    def __init__(self) -> None:
        self.previous: Any = None

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("terminated (SIGTERM)")

    def __enter__(self) -> None:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        ):
            self.previous = signal.signal(signal.SIGTERM, self._raise)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
