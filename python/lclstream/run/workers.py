"""Several producer processes, one stream: each a :class:`Pipeline` over its share of the
events with its own sender index (LCLStreamer's MPI ranks, without MPI).

Why processes: calibration and compression release the GIL, but the Python around them
(batching, HDF5 layout) does not; one process per core removes that ceiling. Every worker
sends its own end message, so a receiver proves completeness across all of them.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

from lclstream import _core
from lclstream.config import LclstreamConfig
from lclstream.errors import ConfigError, FormatError, LclstreamError, SourceError
from lclstream.protocols import EndState, StreamTotals
from lclstream.run.pipeline import Pipeline, as_config
from lclstream.run.result import PipelineError, PipelineFailed, PipelineResult, failure

__all__ = ["merge_results", "run_workers"]


def _worker_main(
    config: LclstreamConfig, worker: int, workers: int, events: int | None, stream_id: str, q: Any
) -> None:
    """A producer process: its share of the events as sender ``worker`` of ``workers``."""
    last = [0.0]

    def progress(st: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2:
            last[0] = now
            q.put(("stats", worker, st))

    try:
        pipe = Pipeline(
            config,
            events=events,
            worker=worker,
            workers=workers,
            stream_id=stream_id,
            progress=progress,
        )
        res = pipe.run()
        q.put(("stats", worker, pipe.stats()))
        q.put(("done", worker, res.as_dict()))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        cause = e.cause if isinstance(e, PipelineFailed) else e
        partial = e.result.as_dict() if isinstance(e, PipelineFailed) else None
        q.put(("error", worker, type(cause).__name__, str(e), partial))


#: Exception types a worker's error is raised as in the parent (by name).
_ERROR_TYPES: dict[str, type[LclstreamError]] = {
    t.__name__: t
    for t in (
        ConfigError,
        SourceError,
        FormatError,
        _core.TransportError,
        _core.LclstreamTimeoutError,
        _core.CorruptDataError,
        _core.CapacityError,
        _core.LclstreamValueError,
        LclstreamError,
    )
}


def _check_workers_config(config: LclstreamConfig, workers: int) -> None:
    for i, h in enumerate(config.data_handlers):
        if h.type == "BinaryDataStreamingDataHandler" and h.role == "server":
            raise ConfigError(
                f"data_handlers[{i}].role: 'server' binds its URLs, which {workers} producer "
                "processes (processing_pipeline.workers) cannot share; use role: client with a "
                "consumer that binds"
            )


def run_workers(
    config: Any,
    workers: int,
    *,
    events: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    stream_id: str | None = None,
) -> PipelineResult:
    """Run ``workers`` producer processes into one stream (same ``stream_id``).

    ``events`` caps the total (shared out); ``progress`` gets the summed statistics. Returns
    the merged result; after every worker has finished, the first worker error is raised as
    :class:`PipelineFailed` (of its lclstream type where it is one) carrying the merged
    result. SIGTERM to this process is passed on to the workers, which end cleanly.
    """
    import multiprocessing as mp
    import queue as queue_mod

    cfg = as_config(config)
    if workers < 1:
        raise ConfigError(f"processing_pipeline.workers must be >= 1, got {workers}")
    _check_workers_config(cfg, workers)
    t_created = time.monotonic()
    sid = stream_id or uuid.uuid4().hex
    shares: list[int | None] = (
        [events // workers + (1 if i < events % workers else 0) for i in range(workers)]
        if events is not None
        else [None] * workers
    )
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(cfg, i, workers, shares[i], sid, q),
            name=f"lclstream-worker-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    stats: dict[int, dict[str, Any]] = {}
    results: dict[int, PipelineResult] = {}
    errors: dict[int, tuple[str, str]] = {}

    def forward(signum: int, frame: FrameType | None) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()  # SIGTERM: the worker's pipeline cancels cleanly

    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, forward)
    try:
        while len(set(results) | set(errors)) < workers:
            try:
                msg = q.get(timeout=0.1)
            except queue_mod.Empty:
                for i, p in enumerate(procs):
                    if not p.is_alive() and i not in results and i not in errors and q.empty():
                        errors[i] = ("PipelineError", f"worker {i} exited with code {p.exitcode}")
                msg = None
            if msg is not None:
                kind, i = msg[0], msg[1]
                if kind == "stats":
                    stats[i] = msg[2]
                elif kind == "done":
                    results[i] = PipelineResult.from_dict(msg[2])
                else:
                    errors[i] = (msg[2], msg[3])
                    if msg[4] is not None:
                        results[i] = PipelineResult.from_dict(msg[4])
            if progress is not None:
                progress(sum_stats(list(stats.values())))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(2)
    merged = merge_results(sid, [results[i] for i in sorted(results)], workers, t_created)
    if errors:
        i = min(errors)
        name, text = errors[i]
        merged.complete = False
        merged.error = f"worker {i}: {name}: {text}"
        cls = _ERROR_TYPES.get(name)
        cause: BaseException = (
            cls(f"worker {i}: {text}") if cls is not None else RuntimeError(f"{name}: {text}")
        )
        exc = failure(f"worker {i}", cause, merged)
        if isinstance(exc, PipelineError):
            exc = PipelineError(f"worker {i}: {name}: {text}", merged, f"worker {i}", cause)
        raise exc
    return merged


_STATS_KEYS = (
    "events_read",
    "events_sent",
    "events_dropped",
    "messages_sent",
    "bytes_in",
    "bytes_out",
    "hits",
)
_STAGE_KEYS = ("events", "items", "bytes_in", "bytes_out", "busy_seconds")


def sum_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Workers' ``stats()`` snapshots added up (the run's seconds: the longest window)."""
    out: dict[str, Any] = {"stages": {}, **dict.fromkeys(_STATS_KEYS, 0), "seconds": 0.0}
    out["max_events"] = None
    for st in parts:
        for k in _STATS_KEYS:
            out[k] += st.get(k, 0)
        out["seconds"] = max(out["seconds"], st.get("seconds", 0.0))
        for name, s in st["stages"].items():
            agg = out["stages"].setdefault(name, {**s, **dict.fromkeys(_STAGE_KEYS, 0)})
            for k in _STAGE_KEYS:
                agg[k] += s[k]
    return out


#: When workers ended differently, the merged run ended as the worst of them.
_SEVERITY: dict[EndState, int] = {"completed": 0, "truncated": 1, "cancelled": 2, "failed": 3}


def merge_results(
    stream_id: str, parts: list[PipelineResult], workers: int, t_created: float
) -> PipelineResult:
    """One result for the whole stream from the workers' results."""
    totals = StreamTotals()
    for r in parts:
        t = r.totals
        totals.events_sent += t.events_sent
        totals.messages_sent += t.messages_sent
        totals.events_read += t.events_read
        for reason, n in t.drop_reasons.items():
            totals.drop(reason, n)
        if _SEVERITY[t.end_state] > _SEVERITY[totals.end_state]:
            totals.end_state, totals.error = t.end_state, t.error
    if len(parts) < workers:
        totals.end_state = "failed"
        totals.error = totals.error or f"{workers - len(parts)} worker(s) reported nothing"
    firsts = [r.first_event_at for r in parts if r.first_event_at is not None]
    ends = [r.ended_at for r in parts if r.ended_at is not None]
    first = min(firsts) if firsts else None
    stages = sum_stats([{"stages": r.stages} for r in parts])["stages"]
    return PipelineResult(
        stream_id=stream_id,
        events=sum(r.events for r in parts),
        events_read=sum(r.events_read for r in parts),
        bytes_in=sum(r.bytes_in for r in parts),
        bytes_out=sum(r.bytes_out for r in parts),
        messages=sum(r.messages for r in parts),
        seconds=(max(ends) - first) if first is not None and ends else 0.0,
        startup_seconds=(first - t_created) if first is not None else 0.0,
        hits=sum(r.hits for r in parts),
        totals=totals,
        stages=stages,
        complete=len(parts) == workers and all(r.complete for r in parts),
        error=next((r.error for r in parts if r.error), None),
        first_event_at=first,
        ended_at=max(ends) if ends else None,
        senders=workers,
    )
