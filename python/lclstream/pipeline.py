"""The running pipeline: read -> calibrate -> reduce -> batch -> serialize -> handlers.

Why threads and bounded queues: the expensive stages (calibration kernels, compression,
socket sends) run in C++ with the GIL released, so three kinds of thread overlap them:

* one *reader* thread pulls events from the source, calibrates each detector frame straight
  into the next slot of a pooled :class:`lclstream.Batch` (no per-event allocation) and
  applies the configured reductions in place;
* ``workers`` *serializer* threads turn full batches into messages;
* one *sender* thread hands messages to every handler in batch order (a small reorder buffer
  keeps sequence numbers in order when several serializers finish out of order).

Queues between them are bounded, so the slowest stage sets the rate and memory stays fixed:
batches live in a :class:`lclstream.BufferPool` sized to what the queues can hold.

Every event read is either sent or counted as dropped with a reason, and the totals go out in
the end-of-stream message. An error in any stage stops reading, lets what was already
accepted drain through the healthy stages, still sends the end message where it can and is
then raised to the caller (the original typed exception, or :class:`PipelineError`).
"""

from __future__ import annotations

import heapq
import inspect
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lclstream import _core
from lclstream.batch import Batch, pool_for
from lclstream.completeness import StreamTracker
from lclstream.errors import ConfigError, FormatError, LclstreamError, SourceError
from lclstream.planning import (
    Calibrator,
    Reduction,
    _DetectorPlan,
    _get,
    _make_calibrator,
    _make_serializer,
    _open_source,
    _reduction_from,
)
from lclstream.protocols import (
    Calibration,
    DataHandler,
    DetectorInfo,
    Event,
    EventBatch,
    EventSource,
    Message,
    Serializer,
    StreamInfo,
    StreamTotals,
)

__all__ = [
    "IncompleteEventError",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "Reduction",
    "StageStats",
    "message_nbytes",
    "ReceiveResult",
    "receive",
    "run_pipeline",
    "run_workers",
]

if TYPE_CHECKING:
    from lclstream.transport import Curve


class PipelineError(LclstreamError):
    """A stage failed with an error that is not one of lclstream's own (a bug or a plug-in's)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage} stage failed: {type(cause).__name__}: {cause}")
        self.stage = stage


class IncompleteEventError(SourceError):
    """An event lacks a configured data source and ``skip_incomplete_events`` is false."""


def message_nbytes(message: Message) -> int:
    """Bytes a message puts on the wire (sum of its frames)."""
    total = 0
    for frame in message:
        total += memoryview(frame).nbytes
    return total


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
    complete: bool  # every event read was sent and the end message went out
    error: str | None = None
    #: time.monotonic() of the first event read and of the end (to merge workers' windows)
    first_event_at: float | None = None
    ended_at: float | None = None
    senders: int = 1

    @property
    def compression_ratio(self) -> float:
        return self.bytes_in / self.bytes_out if self.bytes_out else 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PipelineResult:
        """Inverse of :meth:`as_dict` (results travel between processes as dicts)."""
        names = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in names}
        kw["totals"] = StreamTotals(**d["totals"])
        return cls(**kw)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["totals"] = asdict(self.totals)
        d["compression_ratio"] = self.compression_ratio
        d["events_per_second"] = self.events_per_second
        return d


# --------------------------------------------------------------------------------------------


_STOP = object()


class Pipeline:
    """One stream: a source, calibrations, a serializer and handlers, run by :meth:`run`.

    Build from a config (``Pipeline.from_config(path_or_mapping)``) or from parts. ``events``
    caps the number of events read. ``progress`` is called from the thread running
    :meth:`run` about ten times a second with :meth:`stats`.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        events: int | None = None,
        source: EventSource | None = None,
        serializer: Serializer | None = None,
        handlers: Sequence[DataHandler] | None = None,
        batch_size: int | None = None,
        worker: int = 0,
        workers: int = 1,
        serializer_threads: int = 1,
        queue_depth: int = 2,
        event_filter: Callable[[Event, dict[str, np.ndarray]], bool | None] | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        stream_id: str | None = None,
    ) -> None:
        self._t_created = time.perf_counter()
        self._to_monotonic = time.monotonic() - self._t_created
        if isinstance(config, (str, Path, Mapping)):
            from lclstream.config import load_config

            config = load_config(config)
        self.config = config
        self.max_events = events
        self.event_filter = event_filter
        self.progress = progress
        pp = _get(config, "processing_pipeline")
        self.batch_size = int(batch_size or _get(pp, "batch_size", 10) or 10)
        if self.batch_size < 1:
            raise ConfigError(f"processing_pipeline.batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= worker < workers:
            raise ConfigError(f"worker {worker} is not within 0..{workers - 1}")
        self.worker, self.n_workers = int(worker), int(workers)
        self.workers = max(1, int(serializer_threads))  # serializer threads in this process
        self.queue_depth = max(1, queue_depth)
        self.skip_incomplete = bool(_get(config, "skip_incomplete_events", False))
        self._stats = {n: StageStats(n) for n in ("read", "calibrate", "serialize", "send")}
        self._lock = threading.Lock()
        self._errors: list[tuple[str, BaseException]] = []
        self._stop = threading.Event()
        self._cancelled = False
        self.totals = StreamTotals()
        self._events_read = 0
        self._dropped_after_read = 0
        self._messages_made = 0  # everything serialize() returned (data + any start message)
        self._hits = 0
        self._t_first: float | None = None
        self._t_end: float | None = None
        self._ran = False
        self._end_sent = False
        self._start_messages: list[Message] = []
        self._owned: list[Any] = []
        try:
            self._source_totals = StreamTotals()  # drops inside the source (incomplete events)
            self.source = (
                source
                if source is not None
                else _open_source(config, self._source_totals, self.worker, self.n_workers)
            )
            if source is None:
                self._owned.append(self.source)
            self.serializer = serializer if serializer is not None else _make_serializer(config)
            params = _signature_params(self.serializer.serialize)
            self._serialize_takes_sequence = "sequence" in params
            if not self._serialize_takes_sequence:
                # The serializer numbers messages in call order: parallel calls could number
                # them out of batch order, so one serializer thread (its codec uses all cores).
                self.workers = 1
            if handlers is None:
                from lclstream.handlers import create_handlers

                specs = _get(config, "data_handlers") or []
                if not specs:
                    raise ConfigError(
                        "data_handlers: none configured, so nothing would receive the stream "
                        "(add a BinaryDataStreamingDataHandler or BinaryFileWritingDataHandler)"
                    )
                handlers = create_handlers(specs)
                self._owned.extend(handlers)
            self.handlers: list[DataHandler] = list(handlers)
            self._plans = self._plan_detectors(pp)
            self.info = StreamInfo(
                stream_id=stream_id or uuid.uuid4().hex,
                sender=self.worker,
                senders=self.n_workers,
                source_identifier=str(_get(config, "source_identifier", "") or ""),
                calibration=self._calibration,
                detectors={p.name: p.info for p in self._plans.values()},
            )
            self._hit_fn = self._hit_oracle()
            self._pools = {
                p.name: pool_for(self.batch_size, p.out_shape, p.out_dtype, self._pool_count())
                for p in self._plans.values()
            }
        except BaseException:
            self._close_owned()
            raise

    # ---- construction helpers --------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Pipeline:
        """A pipeline for a config file path, YAML text mapping or loaded config model."""
        return cls(config, **kwargs)

    def _pool_count(self) -> int:
        # One batch being filled, ``queue_depth`` waiting, one per serializer. More buffers
        # only let the reader run further ahead; fewer make it wait (backpressure), never hang.
        pp = _get(self.config, "processing_pipeline")
        configured = int(_get(pp, "pool_batches", 0) or 0)
        return max(configured, self.queue_depth + self.workers + 1)

    def _plan_detectors(self, pp: Any) -> dict[str, _DetectorPlan]:
        cal_specs = _get(pp, "calibration") or {}
        red_specs = _get(pp, "reduction") or {}
        plans: dict[str, _DetectorPlan] = {}
        calibrations: set[Calibration] = set()
        for name, info in self.source.info().items():
            shape = tuple(int(s) for s in info.frame_shape)
            spec = _get(cal_specs, name)
            calibrator: Calibrator | None = None
            cal_dtype = np.dtype(info.dtype)
            calibration: Calibration = "raw"
            if spec is not None and _get(spec, "mode", "calib") != "raw":
                calibrator, cal_dtype, calibration = _make_calibrator(name, spec, info, self.source)
            calibrations.add(calibration)
            reduction = _reduction_from(_get(red_specs, name))
            out_shape = reduction.out_shape(shape, name)
            out_dtype = reduction.out_dtype(cal_dtype)
            out_info = DetectorInfo(**{**asdict(info), "frame_shape": out_shape})
            out_info.dtype = out_dtype.name
            plan = _DetectorPlan(
                name, out_info, calibrator, reduction, shape, cal_dtype, out_shape, out_dtype
            )
            # Buffers made once: the calibrated frame when a reduction reshapes it, the
            # cropped frame when binning follows a crop (or a threshold on raw frames).
            if reduction.reshapes and calibrator is not None:
                plan.scratch = np.zeros(shape, cal_dtype)
            if reduction.binning > 1:
                plan.buffer = np.zeros(reduction.crop_shape(shape), cal_dtype)
            plans[name] = plan
        for name in cal_specs if isinstance(cal_specs, Mapping) else []:
            if name not in plans:
                raise ConfigError(
                    f"processing_pipeline.calibration.{name}: no detector data source named "
                    f"{name!r} (detectors: {sorted(plans) or 'none'})"
                )
        self._calibration: Calibration = calibrations.pop() if len(calibrations) == 1 else "raw"
        return plans

    def _hit_oracle(self) -> Callable[[int], bool] | None:
        """Ground truth of the synthetic detector (``is_hit(index)``), where there is one."""
        by_name = getattr(self.source, "data_sources", None)
        if not isinstance(by_name, Mapping):
            return None
        for name in self._plans:
            fn = getattr(by_name.get(name), "is_hit", None)
            if callable(fn):
                return fn  # type: ignore[no-any-return]
        return None

    def _is_hit(self, ev: Event) -> bool:
        """A hit finder's verdict (``ev.data['is_hit']``) or the source's ground truth."""
        v = ev.data.get("is_hit")
        if v is not None:
            return bool(v)
        return self._hit_fn is not None and bool(self._hit_fn(ev.event_id))

    # ---- public state -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of per-stage statistics and totals (safe from any thread)."""
        with self._lock:
            now = time.perf_counter()
            t0 = self._t_first
            t1 = self._t_end if self._t_end is not None else now
            return {
                "stages": {n: s.as_dict() for n, s in self._stats.items()},
                "events_read": self._events_read,
                "events_sent": self.totals.events_sent,
                "events_dropped": self.totals.events_dropped,
                "messages_sent": self.totals.messages_sent,
                "bytes_in": self._stats["read"].bytes_out,
                "bytes_out": self._stats["send"].bytes_in,
                "hits": self._hits,
                "seconds": (t1 - t0) if t0 is not None else 0.0,
                "max_events": self.max_events,
            }

    def cancel(self) -> None:
        """Stop reading; what was read still goes out, then the end message (cancelled=True)."""
        self._cancelled = True
        self._stop.set()

    # ---- running ----------------------------------------------------------------------------

    def run(self) -> PipelineResult:
        """Run to the end of the source (or ``events``); returns the summary or raises."""
        if self._ran:
            raise LclstreamError("Pipeline.run: a pipeline runs once")
        self._ran = True
        q_batches: queue.Queue[Any] = queue.Queue(self.queue_depth)
        q_messages: queue.Queue[Any] = queue.Queue(self.queue_depth + self.workers)
        threads = [threading.Thread(target=self._read_loop, args=(q_batches,), name="lcls-read")]
        threads += [
            threading.Thread(
                target=self._serialize_loop, args=(q_batches, q_messages), name=f"lcls-ser{i}"
            )
            for i in range(self.workers)
        ]
        threads.append(
            threading.Thread(target=self._send_loop, args=(q_messages,), name="lcls-send")
        )
        try:
            for h in self.handlers:
                h.start(self.info)
            start_msgs = self.serializer.start(self.info)
        except BaseException as e:
            self._close_owned()
            raise _typed("start", e) from e
        self._start_messages = start_msgs
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                threads[-1].join(0.1)
                if self.progress is not None:
                    self.progress(self.stats())
            if self.progress is not None:
                self.progress(self.stats())
        except BaseException:  # Ctrl-C or a failing progress callback: stop cleanly first
            self.cancel()
            for t in threads:
                t.join()
            self._close_owned()
            raise
        self._close_owned()
        result = self._result()
        if self._errors:
            stage, err = self._errors[0]
            exc = _typed(stage, err)
            exc.pipeline_result = result  # type: ignore[attr-defined]
            raise exc from (err if exc is not err else None)
        return result

    def _result(self) -> PipelineResult:
        st = self.stats()
        t0 = self._t_first
        startup = (t0 if t0 is not None else time.perf_counter()) - self._t_created
        error = None
        if self._errors:
            stage, err = self._errors[0]
            error = f"{stage}: {type(err).__name__}: {err}"
        complete = (
            not self._errors
            and self._end_sent
            and self.totals.events_sent + self._dropped_after_read == self._events_read
        )
        return PipelineResult(
            stream_id=self.info.stream_id,
            events=self.totals.events_sent,
            events_read=self._events_read,
            bytes_in=st["bytes_in"],
            bytes_out=st["bytes_out"],
            messages=self.totals.messages_sent,
            seconds=st["seconds"],
            startup_seconds=startup,
            hits=self._hits,
            totals=self.totals,
            stages=st["stages"],
            complete=complete,
            error=error,
            first_event_at=None if t0 is None else t0 + self._to_monotonic,
            ended_at=None if self._t_end is None else self._t_end + self._to_monotonic,
            senders=self.n_workers,
        )

    def _drop_locked(self, reason: str, n: int = 1) -> None:
        """Count events read but not sent (the caller holds the lock)."""
        self.totals.drop(reason, n)
        self._dropped_after_read += n

    def _fail(self, stage: str, err: BaseException) -> None:
        with self._lock:
            self._errors.append((stage, err))
        self._stop.set()

    def _close_owned(self) -> None:
        owned, self._owned = self._owned, []
        for obj in owned:
            close = getattr(obj, "close", None)
            if close is None:
                continue
            try:
                close()
            except BaseException as e:  # noqa: BLE001 - reported, not swallowed
                self._fail("close", e)

    # ---- reader: source -> calibrate -> reduce -> pooled batches ---------------------------

    def _read_loop(self, out: queue.Queue[Any]) -> None:
        index = 0
        try:
            index = self._read(out)
        except BaseException as e:  # noqa: BLE001
            self._fail("read", e)
        finally:
            out.put(_STOP)
        del index

    def _read(self, out: queue.Queue[Any]) -> int:
        plans = self._plans
        read_st, cal_st = self._stats["read"], self._stats["calibrate"]
        names = list(plans)
        batches: dict[str, Batch] = {}
        ids: list[int] = []
        stamps: list[int] = []
        scalars: dict[str, list[Any]] = {}
        index = 0
        pending = 0

        def flush() -> None:
            nonlocal batches, ids, stamps, scalars, index, pending
            if not ids:
                return
            arrays: dict[str, np.ndarray] = {n: b.data for n, b in batches.items()}
            for key, values in scalars.items():
                arrays[key] = np.asarray(values)
            eb = EventBatch(
                event_ids=np.asarray(ids, dtype=np.uint64),
                timestamps=np.asarray(stamps, dtype=np.uint64),
                arrays=arrays,
                owners=list(batches.values()),
            )
            out.put((index, eb))  # blocks while the serializers are behind
            index += 1
            batches, ids, stamps, scalars, pending = {}, [], [], {}, 0

        try:
            events: Iterator[Event] = iter(self.source.events())
            while not self._stop.is_set():
                if self.max_events is not None and self._events_read >= self.max_events:
                    break
                t0 = time.perf_counter()
                try:
                    ev = next(events)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                raw_bytes = 0
                for n in names:
                    a = ev.data.get(n)
                    if a is not None:
                        raw_bytes += int(getattr(a, "nbytes", 0))
                with self._lock:
                    if self._t_first is None:
                        self._t_first = t0
                    self._events_read += 1
                    read_st.events += 1
                    read_st.bytes_in += raw_bytes
                    read_st.bytes_out += raw_bytes
                    read_st.busy_seconds += t1 - t0
                missing = [n for n in names if ev.data.get(n) is None]
                if missing:
                    if not self.skip_incomplete:
                        with self._lock:
                            self._drop_locked("incomplete")
                        raise IncompleteEventError(
                            f"event {ev.event_id} has no data for {', '.join(missing)} "
                            "(set skip_incomplete_events: true to skip such events)"
                        )
                    with self._lock:
                        self._drop_locked("incomplete")
                    continue
                if not batches:
                    batches = {
                        n: Batch(
                            self.batch_size, p.out_shape, p.out_dtype, pool=self._pools[n], source=n
                        )
                        for n, p in plans.items()
                    }
                t2 = time.perf_counter()
                frames: dict[str, np.ndarray] = {}
                for n, p in plans.items():
                    frames[n] = self._calibrate_into(p, ev.data[n], batches[n])
                keep = True
                if self.event_filter is not None:
                    verdict = self.event_filter(ev, frames)
                    keep = verdict is None or bool(verdict)
                t3 = time.perf_counter()
                with self._lock:
                    cal_st.events += 1
                    cal_st.bytes_in += raw_bytes
                    cal_st.busy_seconds += t3 - t2
                    if keep:
                        cal_st.bytes_out += sum(f.nbytes for f in frames.values())
                if not keep:
                    with self._lock:
                        self._drop_locked("vetoed")
                    continue
                if self._is_hit(ev):
                    with self._lock:
                        self._hits += 1
                for b in batches.values():
                    b.commit(ev.event_id, ev.timestamp)
                ids.append(int(ev.event_id))
                stamps.append(int(ev.timestamp))
                for key, value in ev.data.items():
                    if key not in plans:
                        # a copy: sources may hand out views of buffers they reuse
                        scalars.setdefault(key, []).append(np.array(value))
                pending += 1
                del frames
                if pending >= self.batch_size:
                    flush()
            if self._stop.is_set() and self._cancelled:
                self.totals.cancelled = True
        finally:
            flush()  # events already accepted go out, also when reading failed
        return index

    @staticmethod
    def _calibrate_into(plan: _DetectorPlan, raw: np.ndarray, batch: Batch) -> np.ndarray:
        slot = batch.slot()
        if raw.shape != plan.in_shape:
            raise SourceError(
                f"data source {plan.name!r}: frame shape {raw.shape} differs from the "
                f"declared {plan.in_shape}"
            )
        red = plan.reduction
        if plan.calibrator is not None:
            if red.reshapes:
                assert plan.scratch is not None
                plan.calibrator(raw, out=plan.scratch)
                red.apply(plan.scratch, slot, mutable=True, buffer=plan.buffer)
            else:
                plan.calibrator(raw, out=slot)
                if red.active:
                    red.apply(slot, slot, mutable=True)
        elif red.active:
            red.apply(raw, slot, mutable=False, buffer=plan.buffer)
        else:
            from lclstream import _core

            _core.parallel_copy(slot, np.ascontiguousarray(raw, dtype=plan.out_dtype), 1)
        return slot

    # ---- serializers --------------------------------------------------------------------------

    def _serialize_loop(self, inq: queue.Queue[Any], outq: queue.Queue[Any]) -> None:
        try:
            self._serialize(inq, outq)
        except BaseException as e:  # noqa: BLE001 - a bug here must not hang the other stages
            self._fail("serialize", e)
            while True:
                item = inq.get()
                if item is _STOP:
                    inq.put(_STOP)
                    outq.put(_STOP)
                    return
                outq.put((item[0], None, len(item[1]), "aborted"))

    def _serialize(self, inq: queue.Queue[Any], outq: queue.Queue[Any]) -> None:
        st = self._stats["serialize"]
        while True:
            item = inq.get()
            if item is _STOP:
                inq.put(_STOP)  # let the other workers see it too
                outq.put(_STOP)
                return
            index, eb = item
            del item  # only ``eb`` may keep the batch's pooled buffer alive
            n = len(eb)
            if self._serialize_failed():
                outq.put((index, None, n, "aborted"))
                continue
            t0 = time.perf_counter()
            try:
                if self._serialize_takes_sequence:
                    msgs = self.serializer.serialize(eb, sequence=index)  # type: ignore[call-arg]
                else:
                    msgs = self.serializer.serialize(eb)
            except BaseException as e:  # noqa: BLE001
                self._fail("serialize", e)
                outq.put((index, None, n, "serialize_error"))
                continue
            t1 = time.perf_counter()
            nin = sum(a.nbytes for a in eb.arrays.values())
            nout = sum(message_nbytes(m) for m in msgs)
            del eb
            with self._lock:
                st.events += n
                st.items += 1
                st.bytes_in += nin
                st.bytes_out += nout
                st.busy_seconds += t1 - t0
                self._messages_made += len(msgs)
            outq.put((index, msgs, n, None))

    def _serialize_failed(self) -> bool:
        return any(stage == "serialize" for stage, _ in self._errors)

    # ---- sender -------------------------------------------------------------------------------

    def _send_loop(self, inq: queue.Queue[Any]) -> None:
        try:
            self._send(inq)
        except BaseException as e:  # noqa: BLE001 - a bug here must not hang the stages above
            self._fail("send", e)
            stops = 0
            while stops < self.workers:  # drain so that serializers and the reader finish
                item = inq.get()
                if item is _STOP:
                    stops += 1
                else:
                    with self._lock:
                        self._drop_locked("aborted", item[2])

    def _send(self, inq: queue.Queue[Any]) -> None:
        st = self._stats["send"]
        alive = list(self.handlers)
        stops = 0
        heap: list[tuple[int, int, Any, int, str | None]] = []
        next_index = 0
        tie = 0

        def deliver(message: Message, *, end: bool = False) -> bool:
            nonlocal alive
            ok = False
            for h in list(alive):
                try:
                    if end:
                        h.end(message)
                    else:
                        h.handle(message)
                    ok = True
                except BaseException as e:  # noqa: BLE001
                    self._fail("send", e)
                    alive.remove(h)
            return ok

        for m in self._start_messages:
            deliver(m)
        while stops < self.workers:
            item = inq.get()
            if item is _STOP:
                stops += 1
                continue
            index, msgs, n, reason = item
            heapq.heappush(heap, (index, tie, msgs, n, reason))
            tie += 1
            while heap and heap[0][0] == next_index:
                _, _, msgs, n, reason = heapq.heappop(heap)
                next_index += 1
                self._send_batch(msgs, n, reason, deliver, st, alive)
        while heap:  # indices missing only if a worker died; send the rest in order
            _, _, msgs, n, reason = heapq.heappop(heap)
            self._send_batch(msgs, n, reason, deliver, st, alive)
        if self._cancelled:
            self.totals.cancelled = True
        with self._lock:  # the reader is done: fold in what the source itself dropped
            for reason, n in self._source_totals.drop_reasons.items():
                self.totals.drop(reason, n)
            self._source_totals = StreamTotals()
            # ``messages_sent`` counts data messages. A serializer may return a start message
            # from its first serialize() (LCLStreamer's SIMPLON does); its ``sequence`` says
            # how many data messages it made, so the rest were not data.
            seq = getattr(self.serializer, "sequence", None)
            if isinstance(seq, int) and 0 <= seq <= self._messages_made:
                extra = self._messages_made - seq
                self.totals.messages_sent = max(0, self.totals.messages_sent - extra)
        try:
            end_msgs = self.serializer.end(self.totals)
        except BaseException as e:  # noqa: BLE001
            self._fail("serialize", e)
            end_msgs = []
        sent_end = bool(end_msgs)
        for m in end_msgs:
            sent_end = deliver(m, end=True) and sent_end
        for h in self.handlers:  # close() delivers what is queued: the stream is sent after it
            try:
                h.close()
            except BaseException as e:  # noqa: BLE001
                self._fail("send", e)
                sent_end = False
        t_end = time.perf_counter()
        closed = {id(h) for h in self.handlers}
        with self._lock:
            self._owned = [o for o in self._owned if id(o) not in closed]
            self._t_end = t_end
            self._end_sent = sent_end and bool(alive)

    def _send_batch(
        self,
        msgs: list[Message] | None,
        n: int,
        reason: str | None,
        deliver: Callable[..., bool],
        st: StageStats,
        alive: list[DataHandler],
    ) -> None:
        if msgs is None:
            with self._lock:
                self._drop_locked(reason or "aborted", n)
            return
        if not alive:
            with self._lock:
                self._drop_locked("aborted", n)
            return
        t0 = time.perf_counter()
        ok = True
        nbytes = 0
        for m in msgs:
            ok = deliver(m) and ok
            nbytes += message_nbytes(m)
        t1 = time.perf_counter()
        with self._lock:
            st.busy_seconds += t1 - t0
            if ok:
                st.events += n
                st.items += len(msgs)
                st.bytes_in += nbytes
                st.bytes_out += nbytes
                self.totals.events_sent += n
                self.totals.messages_sent += len(msgs)
            else:
                self._drop_locked("send_error", n)


def _signature_params(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _typed(stage: str, err: BaseException) -> BaseException:
    """The exception to raise for a stage's error: lclstream's own as is, anything else wrapped."""
    if isinstance(err, LclstreamError):
        return err
    return PipelineError(stage, err)


def run_pipeline(config: Any, **kwargs: Any) -> PipelineResult:
    """Build a pipeline from a config (path, mapping or model) and run it.

    With ``processing_pipeline.workers`` > 1 (or ``workers=``), :func:`run_workers` runs that
    many producer processes instead.
    """
    if isinstance(config, (str, Path, Mapping)):
        from lclstream.config import load_config

        config = load_config(config)
    workers = int(
        kwargs.pop("workers", 0) or _get(_get(config, "processing_pipeline"), "workers", 1)
    )
    if workers > 1:
        return run_workers(config, workers, **kwargs)
    return Pipeline(config, **kwargs).run()


# --------------------------------------------------------------------------------------------
# Several producer processes: one stream, one sender index each (LCLStreamer's MPI ranks).


def _worker_main(
    config: Any, worker: int, workers: int, events: int | None, stream_id: str, q: Any
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
        partial = getattr(e, "pipeline_result", None)
        q.put(("error", worker, type(e).__name__, str(e), partial.as_dict() if partial else None))


#: Exception types a worker's error is raised as in the parent (by name).
_ERROR_TYPES: dict[str, type[LclstreamError]] = {
    t.__name__: t
    for t in (
        ConfigError,
        SourceError,
        IncompleteEventError,
        FormatError,
        _core.TransportError,
        _core.LclstreamTimeoutError,
        _core.CorruptDataError,
        _core.CapacityError,
        _core.LclstreamValueError,
        LclstreamError,
    )
}


def _check_workers_config(config: Any, workers: int) -> None:
    for i, h in enumerate(_get(config, "data_handlers") or []):
        if _get(h, "type") == "BinaryDataStreamingDataHandler" and _get(h, "role") == "server":
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
    """Run ``workers`` producer processes, each a :class:`Pipeline` over its share of the
    events with its own sender index, into one stream (same ``stream_id``; every sender sends
    its own end message, so a receiver proves completeness across all of them).

    ``events`` caps the total (shared out); ``progress`` gets the summed statistics. Returns
    the merged result; the first worker error is raised (as its lclstream type where it is
    one, else :class:`PipelineError`) after every worker has finished.
    """
    import multiprocessing as mp
    import queue as queue_mod

    if isinstance(config, (str, Path, Mapping)):
        from lclstream.config import load_config

        config = load_config(config)
    if workers < 1:
        raise ConfigError(f"processing_pipeline.workers must be >= 1, got {workers}")
    _check_workers_config(config, workers)
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
            args=(config, i, workers, shares[i], sid, q),
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
                progress(_sum_stats(list(stats.values())))
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(2)
    merged = _merge_results(sid, [results[i] for i in sorted(results)], workers, t_created)
    if errors:
        i = min(errors)
        name, text = errors[i]
        cls = _ERROR_TYPES.get(name)
        exc: LclstreamError = (
            cls(f"worker {i}: {text}")
            if cls is not None
            else PipelineError(f"worker {i}", RuntimeError(f"{name}: {text}"))
        )
        merged.complete = False
        merged.error = f"worker {i}: {name}: {text}"
        exc.pipeline_result = merged  # type: ignore[attr-defined]
        raise exc
    return merged


def _sum_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"stages": {}, **_EMPTY_STATS, "max_events": None}
    for st in parts:
        for k in _EMPTY_STATS:
            if k != "seconds":
                out[k] += st[k]
        out["seconds"] = max(out["seconds"], st["seconds"])
        for name, s in st["stages"].items():
            agg = out["stages"].setdefault(name, {**s, "events": 0, "items": 0, "bytes_in": 0,
                                                 "bytes_out": 0, "busy_seconds": 0.0})  # fmt: skip
            for k in ("events", "items", "bytes_in", "bytes_out", "busy_seconds"):
                agg[k] += s[k]
    return out


def _merge_results(
    stream_id: str, parts: list[PipelineResult], workers: int, t_created: float
) -> PipelineResult:
    totals = StreamTotals()
    for r in parts:
        totals.events_sent += r.totals.events_sent
        totals.messages_sent += r.totals.messages_sent
        for reason, n in r.totals.drop_reasons.items():
            totals.drop(reason, n)
        totals.cancelled = totals.cancelled or r.totals.cancelled
    firsts = [r.first_event_at for r in parts if r.first_event_at is not None]
    ends = [r.ended_at for r in parts if r.ended_at is not None]
    first = min(firsts) if firsts else None
    stages = _sum_stats([{**_EMPTY_STATS, "stages": r.stages} for r in parts])["stages"]
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


_EMPTY_STATS: dict[str, Any] = {
    "events_read": 0,
    "events_sent": 0,
    "events_dropped": 0,
    "messages_sent": 0,
    "bytes_in": 0,
    "bytes_out": 0,
    "hits": 0,
    "seconds": 0.0,
}


# --------------------------------------------------------------------------------------------
# The consumer side: receive a stream, open every message, prove completeness, write files.


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        while True:
            wait = timeout if t_first is not None or first_timeout is None else first_timeout
            try:
                frames = rx.recv(wait)
            except TimeoutError:
                result.timed_out = True
                break
            now = time.perf_counter()
            if t_first is None:
                t_first = now
            t_last = now
            if wanted is not None:
                got = formats.detect(frames)
                if got not in wanted:
                    raise FormatError(
                        f"message {result.messages} is {got}, not the expected {format}"
                    )
            parsed = formats.parse(frames)
            tracker.add(parsed)
            result.messages += 1
            result.bytes += message_nbytes(frames)
            if parsed.kind == "data" and parsed.batch is not None:
                result.events += len(parsed.batch)
                _touch(parsed.batch)
            if writer is not None and (max_files is None or len(writer.files) < max_files):
                writer.write_message(frames)
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
    complete = bool(summary["complete"])
    if result.expected is not None and result.events != result.expected:
        complete = False
        result.problems.append(f"{result.events} events received, {result.expected} expected")
    result.complete = complete
