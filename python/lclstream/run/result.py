"""What a run reports: :class:`PipelineResult`, and :class:`PipelineFailed` when it failed.

Why a declared error type: a failed run still has a result that callers need (how many
events went out before the failure, what the end message said), and a result carried on an
exception through an undeclared attribute is one nobody can rely on. ``PipelineFailed``
carries it as ``.result``; raised for a source error it is also a
:class:`~lclstream.errors.SourceError` (and so on for every lclstream error type), so
``except SourceError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lclstream.errors import LclstreamError
from lclstream.protocols import EndState, StreamTotals

__all__ = ["PipelineError", "PipelineFailed", "PipelineResult", "failure"]


@dataclass
class PipelineResult:
    """Summary of one run (what ``--json`` prints, plus per-stage statistics)."""

    stream_id: str
    events: int  # events sent
    events_read: int
    bytes_in: int  # raw detector bytes read
    bytes_out: int  # bytes handed to the handlers (sum over messages, once per message)
    messages: int
    seconds: float  # first event read -> end of stream sent
    startup_seconds: float  # pipeline construction -> first event read
    hits: int
    totals: StreamTotals
    stages: dict[str, dict[str, Any]]
    #: the run ended as asked (end_state completed), every event read was sent and the end
    #: message went out
    complete: bool
    error: str | None = None
    #: time.monotonic() of the first event read and of the end (to merge workers' windows)
    first_event_at: float | None = None
    ended_at: float | None = None
    senders: int = 1
    #: events sent and seconds from the moment the run was warm (every pooled buffer used
    #: once) to its end; 0 when it never got there (short runs, merged workers)
    warm_events: int = 0
    warm_seconds: float = 0.0

    @property
    def end_state(self) -> EndState:
        return self.totals.end_state

    @property
    def compression_ratio(self) -> float:
        return self.bytes_in / self.bytes_out if self.bytes_out else 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def warm_events_per_second(self) -> float:
        """The rate once warm: without the first touch of the pools' fresh pages (what a run
        pays once, at its start), the number to compare kernels and formats by. The whole
        window's rate when the run never got warm."""
        if self.warm_events > 0 and self.warm_seconds > 0:
            return self.warm_events / self.warm_seconds
        return self.events_per_second

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PipelineResult:
        """Inverse of :meth:`as_dict` (results travel between processes as dicts)."""
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        t = dict(d["totals"])
        t.pop("cancelled", None)
        kw["totals"] = StreamTotals(**t)
        return cls(**kw)

    def summary(self) -> dict[str, Any]:
        """The flat summary a user or a script reads (``--json``): counts, rates, the end
        state and per-stage statistics, without the nested totals."""
        t = self.totals
        return {
            "events": self.events,
            "events_read": self.events_read,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "messages": self.messages,
            "seconds": self.seconds,
            "startup_seconds": self.startup_seconds,
            "complete": self.complete,
            "end_state": t.end_state,
            "hits": self.hits,
            "events_dropped": t.events_dropped,
            "drop_reasons": dict(t.drop_reasons),
            "compression_ratio": self.compression_ratio,
            "events_per_second": self.events_per_second,
            "warm_events_per_second": self.warm_events_per_second,
            "warm_events": self.warm_events,
            "warm_seconds": self.warm_seconds,
            "stream_id": self.stream_id,
            "stages": self.stages,
            "senders": self.senders,
        }

    def incomplete_reason(self) -> str:
        """Why this run's stream is not complete, in one line (empty when it is)."""
        if self.complete:
            return ""
        t = self.totals
        if t.end_state != "completed":
            why = f": {t.error}" if t.error else ""
            return (
                f"stream incomplete: the run ended {t.end_state}{why} ({t.events_sent} of "
                f"{t.events_read} events read were sent)"
            )
        return "stream incomplete: the end-of-stream message was not delivered"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["totals"] = asdict(self.totals)
        d["end_state"] = self.end_state
        d["compression_ratio"] = self.compression_ratio
        d["events_per_second"] = self.events_per_second
        d["warm_events_per_second"] = self.warm_events_per_second
        return d


class PipelineFailed(LclstreamError):
    """A run failed; ``result`` is what it did before (its end message said ``failed``),
    ``stage`` the stage that failed first and ``cause`` that stage's exception."""

    def __init__(
        self, message: str, result: PipelineResult, stage: str, cause: BaseException
    ) -> None:
        super().__init__(message)
        self.result = result
        self.stage = stage
        self.cause = cause


class PipelineError(PipelineFailed):
    """A stage failed with an error that is not one of lclstream's own (a bug or a plug-in's)."""


_FAILED_TYPES: dict[type[BaseException], type[PipelineFailed]] = {}


def failure(stage: str, cause: BaseException, result: PipelineResult) -> PipelineFailed:
    """The exception a failed run raises: a :class:`PipelineFailed` that is also the cause's
    lclstream type (``SourceError``, ``TransportError``...), or :class:`PipelineError` for a
    foreign exception."""
    if isinstance(cause, PipelineFailed):
        return type(cause)(str(cause), result, cause.stage, cause.cause)
    if not isinstance(cause, LclstreamError):
        return PipelineError(
            f"{stage} stage failed: {type(cause).__name__}: {cause}", result, stage, cause
        )
    base = type(cause)
    cls = _FAILED_TYPES.get(base)
    if cls is None:
        cls = type(base.__name__, (PipelineFailed, base), {"__module__": base.__module__})
        _FAILED_TYPES[base] = cls
    return cls(str(cause), result, stage, cause)
