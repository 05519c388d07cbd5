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
from lclstream.errors import ConfigError, FormatError
from lclstream.protocols import EventBatch, message_nbytes

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
    expected: int | None = None
    files: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: how each sender's run ended (from the end messages): state -> senders
    end_states: dict[str, int] = field(default_factory=dict)
    #: why the receiver stopped early (Ctrl-C, SIGTERM), else empty
    interrupted: str = ""

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
) -> ReceiveResult:
    """Receive one stream until every sender's end message is in (or ``timeout`` s of silence).

    Every message is parsed and its data decoded (``formats.parse``), so a corrupt message is
    an error here, not downstream. ``expect`` is the number of events the caller expects;
    the stream is complete when all end messages arrived, the events received equal the
    senders' ``events_sent`` and (if given) ``expect``. With ``out``, messages are written as
    numbered .h5 files (at most ``max_files``), or ``img_per_file`` events a file.
    """
    from lclstream import formats
    from lclstream.transport import Receiver

    url_list = [urls] if isinstance(urls, str) else list(urls)
    result = ReceiveResult(expected=expect)
    wanted = None if format is None else _FORMAT_KINDS.get(format)
    if format is not None and wanted is None:
        raise ConfigError(f"format {format!r} is not one of {', '.join(_FORMAT_KINDS)}")
    rx = Receiver(
        url_list,
        bind=bind,
        socket_type=socket_type,
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
        tracker = StreamTracker()
        t_ready = time.perf_counter()
        t_first: float | None = None
        t_last = t_ready
        with _sigterm_interrupts():
            while True:
                wait = timeout if t_first is not None or first_timeout is None else first_timeout
                try:
                    frames = rx.recv(wait)
                except TimeoutError:
                    result.timed_out = True
                    break
                except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: stop, report what arrived
                    result.interrupted = str(e) or "interrupted (Ctrl-C)"
                    break
                now = time.perf_counter()
                if t_first is None:
                    t_first = now
                t_last = now
                got = formats.detect(frames)
                if wanted is not None and got not in wanted:
                    raise FormatError(
                        f"message {result.messages} is {got}, not the expected {format}"
                    )
                parsed = formats.parse(frames, kind=got)
                tracker.add(parsed)
                result.messages += 1
                result.bytes += message_nbytes(frames)
                if parsed.kind == "data" and parsed.batch is not None:
                    result.events += len(parsed.batch)
                    _touch(parsed.batch)
                if writer is not None and (max_files is None or len(writer.files) < max_files):
                    writer.write_parsed(parsed, frames)
                if parsed.kind == "end" and tracker.done:  # reports cost O(messages): only here
                    break
                if on_message is not None:
                    on_message(result)
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
