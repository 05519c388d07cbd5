"""A run: a source, per-detector plans, a serializer and handlers, driven by three stages.

``Pipeline`` builds the parts from the typed config (each config model builds its own
component), starts the stage threads (:mod:`lclstream.run.stages`), waits for them while
reporting progress, and decides how the run ended — the one fact the end message adds to
the ledger's counts:

* ``failed`` when a stage raised (the first error's text goes into the end message, and
  :meth:`Pipeline.run` raises :class:`~lclstream.run.result.PipelineFailed`),
* ``cancelled`` after :meth:`Pipeline.cancel`, Ctrl-C or SIGTERM (a clean end message is
  still sent; Ctrl-C is re-raised afterwards, SIGTERM returns the result; during a run in
  the main thread SIGTERM is the run's, the previous handler comes back after it),
* ``truncated`` when the source ran out before the number of events asked for,
* ``completed`` otherwise.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from lclstream.config import BatchProcessingPipelineParameters, LclstreamConfig, load_config
from lclstream.errors import ConfigError, LclstreamError
from lclstream.protocols import (
    DataHandler,
    EndState,
    EventSource,
    Serializer,
    StreamInfo,
    StreamTotals,
)
from lclstream.run.assembler import BatchAssembler
from lclstream.run.hits import BatchHitFinding, hit_finders, sparse_detectors
from lclstream.run.ledger import Ledger
from lclstream.run.models import ModelStage, batch_models
from lclstream.run.plan import plan_detectors, stream_calibration
from lclstream.run.result import PipelineResult, failure
from lclstream.run.stages import EventFilter, ReadStage, RunControl, SendStage, SerializeStage
from lclstream.sources.base import IncompleteEvents

__all__ = ["Pipeline", "as_config", "run_pipeline"]


def as_config(config: LclstreamConfig | str | Path | Mapping[str, Any]) -> LclstreamConfig:
    """The typed config for a path, a mapping or an already loaded config."""
    return config if isinstance(config, LclstreamConfig) else load_config(config)


class Pipeline:
    """One sender's stream, run once by :meth:`run`.

    ``events`` caps the events read; ``source``/``serializer``/``handlers`` replace what the
    config would build (tests, embedding applications); ``worker``/``workers`` make this
    sender ``worker`` of ``workers`` (its share of the source's events). ``progress`` is
    called from the thread running :meth:`run` about ten times a second with
    :meth:`stats`.
    """

    def __init__(
        self,
        config: LclstreamConfig | str | Path | Mapping[str, Any] | None = None,
        *,
        events: int | None = None,
        source: EventSource | None = None,
        serializer: Serializer | None = None,
        handlers: Sequence[DataHandler] | None = None,
        batch_size: int | None = None,
        worker: int = 0,
        workers: int = 1,
        event_filter: EventFilter | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        stream_id: str | None = None,
    ) -> None:
        #: ``time.perf_counter()`` when the pipeline was made (start-up is measured from it)
        self.created_at = time.perf_counter()
        self._to_monotonic = time.monotonic() - self.created_at
        self.config = as_config(config if config is not None else {})
        pp = self.config.processing_pipeline
        if not isinstance(pp, BatchProcessingPipelineParameters):
            raise ConfigError(
                f"processing_pipeline.type: {pp.type} is accepted for LCLStreamer configs but "
                "does not run here yet; use BatchProcessingPipeline"
            )
        if not 0 <= worker < workers:
            raise ConfigError(f"worker {worker} is not within 0..{workers - 1}")
        self.max_events = events
        self.event_filter = event_filter
        self.progress = progress
        self.batch_size = int(batch_size or pp.batch_size)
        self.worker, self.workers = int(worker), int(workers)
        self.ledger = Ledger()
        self.control = RunControl()
        self._ran = False
        self._owned: list[Any] = []
        try:
            if source is None:
                from lclstream.sources import open_source

                source = open_source(
                    self.config,
                    totals=self.ledger.source_drops,
                    worker=self.worker,
                    workers=self.workers,
                )
                self._owned.append(source)
            self.source: EventSource = source
            self.serializer: Serializer = (
                serializer if serializer is not None else self.config.data_serializer.build()
            )
            if handlers is None:
                handlers = self._handlers_from_config()
                self._owned.extend(handlers)
            self.handlers: list[DataHandler] = list(handlers)
            plans = plan_detectors(pp, self.source)
            finders = hit_finders(pp, plans)
            # peaks_only needs a peakfinder or a model (config), so its detectors are among the
            # finders'
            unsent = frozenset(f.name for f in finders if pp.reduction[f.name].peaks_only)
            self.hits = BatchHitFinding(finders, unsent) if finders else None
            self.sparse, self.sparse_auto = sparse_detectors(pp, plans)
            self.models = batch_models(pp, plans)
            self.info = StreamInfo(
                stream_id=stream_id or uuid.uuid4().hex,
                sender=self.worker,
                senders=self.workers,
                source_identifier=self.config.source_identifier,
                calibration=stream_calibration(plans),
                detectors={p.name: p.info for p in plans.values()},
            )
            # One batch being filled, ``queue_depth`` waiting, one being serialized, one
            # being sent: more only lets the reader run further ahead.
            self.queue_depth = pp.queue_depth
            # a model stage adds its queue and the batch it works on
            model_slack = sum(m.queue_depth + 1 for m in self.models.values())
            pool = max(pp.pool_batches, self.queue_depth + 3 + model_slack)
            # batch-at-a-time calibration where the source's frames outlive their event and
            # no event filter reads calibrated frames one by one
            stays = getattr(self.source, "frames_stay_valid", None)
            defer = (
                frozenset(n for n in plans if stays(n))
                if callable(stays) and event_filter is None
                else frozenset()
            )
            self.assembler = BatchAssembler(plans, self.batch_size, pool, defer=defer)
            self.ledger.warm_after = (pool + 1) * self.batch_size
        except BaseException:
            self._close_owned()
            raise

    def _handlers_from_config(self) -> list[DataHandler]:
        from lclstream.handlers import create_handlers

        specs = self.config.data_handlers
        if not specs:
            raise ConfigError(
                "data_handlers: none configured, so nothing would receive the stream "
                "(add a BinaryDataStreamingDataHandler or BinaryFileWritingDataHandler)"
            )
        return create_handlers(specs, self.worker)

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Pipeline:
        """A pipeline for a config file path, YAML text mapping or loaded config model."""
        return cls(config, **kwargs)

    # ---- public state -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of per-stage statistics and totals (safe from any thread)."""
        return {**self.ledger.snapshot(), "max_events": self.max_events}

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop reading; what was read still goes out, then the end message (``cancelled``).

        A reader waiting for a pool buffer (held by a consumer that stopped reading: zero-copy
        messages keep their buffers until delivered) is woken too, so cancelling never hangs.
        """
        self.control.cancel(reason)
        asm = getattr(self, "assembler", None)
        if asm is not None:
            asm.cancel()

    # ---- running ----------------------------------------------------------------------------

    def run(self) -> PipelineResult:
        """Run to the end of the source (or ``events``); returns the summary or raises
        :class:`~lclstream.run.result.PipelineFailed`."""
        if self._ran:
            raise LclstreamError("Pipeline.run: a pipeline runs once")
        self._ran = True
        try:
            for h in self.handlers:
                h.start(self.info)
            start_msgs = self.serializer.start(self.info)
        except BaseException as e:
            self._close_owned()
            raise failure("start", e, self._result()) from e
        q_batches: queue.Queue[Any] = queue.Queue(self.queue_depth)
        q_read = q_batches
        if self.models:  # read -> model -> serialize
            q_read = queue.Queue(max(m.queue_depth for m in self.models.values()))
        q_messages: queue.Queue[Any] = queue.Queue(self.queue_depth)
        self._reader = ReadStage(
            self.source,
            self.assembler,
            self.ledger,
            self.control,
            q_read,
            incomplete=IncompleteEvents(
                self.config.skip_incomplete_events, self.ledger.drops_after_read
            ),
            max_events=self.max_events,
            event_filter=self.event_filter,
            count_hits=self.hits is None,  # else the hit finders say what a hit is
        )
        self._sender = SendStage(
            self.handlers,
            self.serializer,
            self.ledger,
            self.control,
            q_messages,
            start_msgs,
            self._end_totals,
        )
        modelling = (
            [("model", ModelStage(self.models, self.ledger, self.control, q_read, q_batches).run)]
            if self.models
            else []
        )
        stages = [
            ("read", self._reader.run),
            *modelling,
            ("serialize", SerializeStage(
                self.serializer, self.ledger, self.control, q_batches, q_messages,
                hits=self.hits, sparse=self.sparse, sparse_auto=self.sparse_auto).run),
            ("send", self._sender.run),
        ]  # fmt: skip
        threads = [threading.Thread(target=fn, name=f"lcls-{n}") for n, fn in stages]
        with _sigterm_cancels(self):
            for t in threads:
                t.start()
            try:
                while threads[-1].is_alive():
                    threads[-1].join(0.1)
                    if self.progress is not None:
                        self.progress(self.stats())
                for t in threads:
                    t.join()
                if self.progress is not None:
                    self.progress(self.stats())
            except BaseException:  # Ctrl-C or a failing progress callback: end cleanly first
                self.cancel("interrupted")
                for t in threads:
                    t.join()
                self._close_owned()
                raise
        self._close_owned()
        result = self._result()
        first = self.control.first_error
        if first is not None:
            stage, err = first
            raise failure(stage, err, result) from err
        return result

    def _end_state(self) -> tuple[EndState, str]:
        first = self.control.first_error
        if first is not None:
            stage, err = first
            return "failed", f"{stage}: {type(err).__name__}: {err}"
        if self.control.cancel_reason is not None:
            return "cancelled", self.control.cancel_reason
        reader = getattr(self, "_reader", None)
        if self.max_events is not None and reader is not None and reader.exhausted:
            read = self.ledger.events_read
            if read < self.max_events:
                return "truncated", f"the source ended after {read} of {self.max_events} events"
        return "completed", ""

    def _end_totals(self) -> StreamTotals:
        """Called by the send stage once everything before the end message is handed over."""
        state, error = self._end_state()
        self.totals = self.ledger.totals(state, error)
        return self.totals

    def _result(self) -> PipelineResult:
        st = self.stats()
        totals = getattr(self, "totals", None) or self.ledger.totals(*self._end_state())
        t0 = self.ledger.first_event_at
        t1 = self.ledger.ended_at
        sender = getattr(self, "_sender", None)
        complete = (
            totals.end_state == "completed"
            and sender is not None
            and sender.end_delivered
            and totals.events_sent + totals.events_dropped == totals.events_read
            and "aborted" not in totals.drop_reasons
            and self.control.first_error is None
        )
        first = self.control.first_error
        return PipelineResult(
            stream_id=self.info.stream_id if hasattr(self, "info") else "",
            events=totals.events_sent,
            events_read=totals.events_read,
            bytes_in=st["bytes_in"],
            bytes_out=st["bytes_out"],
            messages=totals.messages_sent,
            seconds=st["seconds"],
            startup_seconds=(t0 if t0 is not None else time.perf_counter()) - self.created_at,
            hits=st["hits"],
            totals=totals,
            stages=st["stages"],
            complete=complete,
            error=None if first is None else f"{first[0]}: {type(first[1]).__name__}: {first[1]}",
            first_event_at=None if t0 is None else t0 + self._to_monotonic,
            ended_at=None if t1 is None else t1 + self._to_monotonic,
            **self._warm(t1, totals.events_sent),
            senders=self.workers,
        )

    def _warm(self, ended: float | None, sent: int) -> dict[str, Any]:
        led = self.ledger
        if led.warm_at is None or ended is None or ended <= led.warm_at:
            return {}
        return {"warm_events": sent - led.warm_sent, "warm_seconds": ended - led.warm_at}

    def _close_owned(self) -> None:
        owned, self._owned = self._owned, []
        closed = set()
        for obj in owned:
            if id(obj) in closed:
                continue
            closed.add(id(obj))
            if self._ran and hasattr(self, "_sender") and obj in self.handlers:
                continue  # the send stage closed it (and reported a failure to close)
            try:
                obj.close()
            except BaseException as e:  # noqa: BLE001 - reported, not swallowed
                self.control.fail("close", e)


class _sigterm_cancels:
    """While a run is in the main thread, SIGTERM cancels it (a clean end message saying
    ``cancelled``) instead of killing the process mid-message; the previous handler is put
    back when the run ends."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        self.previous: Any = None
        self.installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.pipe.cancel("terminated (SIGTERM)")

    def __enter__(self) -> _sigterm_cancels:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)


def run_pipeline(config: Any, **kwargs: Any) -> PipelineResult:
    """Build a pipeline from a config (path, mapping or model) and run it.

    With ``processing_pipeline.workers`` > 1 (or ``workers=``), :func:`run_workers` runs that
    many producer processes instead.
    """
    cfg = as_config(config)
    pp = cfg.processing_pipeline
    workers = int(kwargs.pop("workers", 0) or getattr(pp, "workers", 1))
    if workers > 1:
        from lclstream.run.workers import run_workers

        return run_workers(cfg, workers, **kwargs)
    return Pipeline(cfg, **kwargs).run()
