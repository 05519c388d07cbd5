"""The stage threads of a run: read (+ calibrate, reduce, batch), serialize, send.

Why threads and bounded queues: the expensive work (calibration kernels, compression,
socket sends) runs in C++ with the GIL released, so three threads overlap it, and the
queues between them are bounded so the slowest stage sets the rate and memory stays fixed
(batches live in pools sized to what the queues hold).

Each stage only reports to the :class:`~lclstream.run.ledger.Ledger` and the shared
:class:`RunControl`; none reads another's state. A failing stage records its error and
stops the reader; the stages after it keep consuming so nothing upstream blocks, and the
send stage still sends the end message (saying ``failed``) where it can.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from lclstream.batch import PoolCancelled
from lclstream.protocols import (
    DataHandler,
    Event,
    EventBatch,
    EventSource,
    Serializer,
    StreamTotals,
    WireMessage,
)
from lclstream.run.assembler import BatchAssembler
from lclstream.run.hits import BatchHitFinding
from lclstream.run.ledger import Ledger
from lclstream.sources.base import IncompleteEvents

__all__ = ["STOP", "BatchStage", "ReadStage", "RunControl", "SendStage", "SerializeStage"]

#: Ends a queue: every stage passes it on once it has handed over everything before it.
STOP = object()

#: ``filter(event, calibrated frames)``: True/None keeps the event, False drops it (reason
#: ``vetoed``), a string drops it with that reason (a hit finder says ``miss``).
EventFilter = Callable[[Event, dict[str, np.ndarray]], "bool | str | None"]


class RunControl:
    """What the stages of one run share: the stop flag, cancellation and the errors."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.cancel_reason: str | None = None
        self._lock = threading.Lock()
        self.errors: list[tuple[str, BaseException]] = []

    def fail(self, stage: str, err: BaseException) -> None:
        with self._lock:
            self.errors.append((stage, err))
        self.stop.set()

    def cancel(self, reason: str = "cancelled") -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.stop.set()

    def failed(self, stage: str) -> bool:
        with self._lock:
            return any(s == stage for s, _ in self.errors)

    @property
    def first_error(self) -> tuple[str, BaseException] | None:
        with self._lock:
            return self.errors[0] if self.errors else None


class ReadStage:
    """Source → calibrate/reduce into pooled slots → full batches on ``out``.

    ``exhausted`` says afterwards whether the source ran out (as opposed to the event cap
    being reached or the run being stopped): with a cap the caller asked for, running out
    first means the run was ``truncated``.
    """

    def __init__(
        self,
        source: EventSource,
        assembler: BatchAssembler,
        ledger: Ledger,
        control: RunControl,
        out: queue.Queue[Any],
        *,
        incomplete: IncompleteEvents | None = None,
        max_events: int | None = None,
        event_filter: EventFilter | None = None,
        count_hits: bool = True,
    ) -> None:
        self.source = source
        #: the sources' own hit flags count as hits (not when hit finders run later)
        self.count_hits = count_hits
        self.incomplete = incomplete
        self.assembler = assembler
        self.ledger = ledger
        self.control = control
        self.out = out
        self.max_events = max_events
        self.event_filter = event_filter
        self.exhausted = False
        self._names = list(assembler.plans)

    def run(self) -> None:
        try:
            self._read()
        except PoolCancelled as e:
            # The run was cancelled while waiting for a pool buffer: a stop, not a failure.
            if self.control.cancel_reason is None:
                self.control.fail("read", e)
        except BaseException as e:  # noqa: BLE001 - recorded; the run raises it
            self.control.fail("read", e)
        finally:
            try:
                batch = self.assembler.flush()  # events already accepted go out
                if batch is not None:
                    self.out.put(batch)
            except BaseException as e:  # noqa: BLE001 - e.g. the batch's deferred calibration
                self.control.fail("read", e)
            finally:
                self.out.put(STOP)

    def _read(self) -> None:
        ledger, asm, stop = self.ledger, self.assembler, self.control.stop
        events: Iterator[Event] = iter(self.source.events())
        read = 0
        while not stop.is_set():
            if self.max_events is not None and read >= self.max_events:
                return
            t0 = time.perf_counter()
            try:
                ev = next(events)
            except StopIteration:
                self.exhausted = True
                return
            t1 = time.perf_counter()
            raw_bytes = 0
            for n in self._names:
                raw_bytes += int(getattr(ev.data.get(n), "nbytes", 0))
            ledger.read(raw_bytes, t0, t1 - t0)
            read += 1
            # The same skip_incomplete_events rule the built-in sources apply themselves, for
            # sources that yield events with missing data.
            if self.incomplete is not None and not self.incomplete.accept(ev):
                continue
            try:
                frames = asm.calibrate(ev)
                keep, why = True, "vetoed"
                if self.event_filter is not None:
                    verdict = self.event_filter(ev, frames)
                    if isinstance(verdict, str):
                        keep, why = False, verdict
                    else:
                        keep = verdict is None or bool(verdict)
            except PoolCancelled:
                ledger.dropped("cancelled")  # read, then the run was cancelled
                raise
            except BaseException:
                ledger.dropped("calibration_failed")
                raise
            t2 = time.perf_counter()
            ledger.calibrated(
                raw_bytes, sum(f.nbytes for f in frames.values()) if keep else 0, t2 - t1
            )
            del frames
            if not keep:
                ledger.dropped(why)
                continue
            if ev.is_hit and self.count_hits:
                ledger.hit()
            t3 = time.perf_counter()
            batch = asm.commit(ev)
            if batch is not None and asm.defer:  # the batch's deferred calibration ran here
                ledger.calibrate_busy(time.perf_counter() - t3)
            if batch is not None:
                self.out.put(batch)  # blocks while the serializer is behind


class BatchStage:
    """A stage between two bounded queues, one batch at a time. Once the stage has failed
    (``_one`` recorded a failure under the stage's ``name``), later batches are dropped as
    ``aborted``; a bug in ``_one`` fails the run and the stage keeps taking batches off its
    queue (counted as aborted by the ledger later), so the stage before it never blocks; STOP
    always passes on."""

    name = ""
    inq: queue.Queue[Any]
    out: queue.Queue[Any]
    control: RunControl
    ledger: Ledger

    def run(self) -> None:
        try:
            while (item := self.inq.get()) is not STOP:
                if self.control.failed(self.name):
                    self.ledger.dropped("aborted", len(item))
                else:
                    self._one(item)
                del item  # only the batch in flight may hold its pooled buffer
        except BaseException as e:  # noqa: BLE001 - a bug here must not hang the reader
            self.control.fail(self.name, e)
            while self.inq.get() is not STOP:  # keep the reader moving; counted as aborted
                pass
        finally:
            self.out.put(STOP)

    def _one(self, batch: EventBatch) -> None:
        raise NotImplementedError


class SerializeStage(BatchStage):
    """Full batches → messages (the serializer compresses with the codec's threads)."""

    name = "serialize"

    def __init__(
        self,
        serializer: Serializer,
        ledger: Ledger,
        control: RunControl,
        inq: queue.Queue[Any],
        out: queue.Queue[Any],
        hits: BatchHitFinding | None = None,
        sparse: frozenset[str] = frozenset(),
        sparse_auto: frozenset[str] = frozenset(),
    ) -> None:
        self.serializer = serializer
        self.ledger = ledger
        self.control = control
        self.inq = inq
        self.out = out
        #: the run's hit finders: peaks found, misses (and peaks_only frames) cut out before
        #: serializing
        self.hits = hits
        #: detectors sent as sparse photon lists (made here, after the veto)
        self.sparse = sparse
        #: ``sparse: auto`` detectors not decided yet (the first batch decides)
        self.sparse_auto = sparse_auto

    def _one(self, batch: EventBatch) -> None:
        n = len(batch)
        t0 = time.perf_counter()
        if self.hits is not None:
            try:
                batch, hits, misses = self.hits.apply(batch)
            except BaseException as e:  # noqa: BLE001
                self.ledger.dropped("peakfinder_failed", n)
                self.control.fail("serialize", e)
                return
            self.ledger.hit(hits)
            self.ledger.dropped("miss", misses)
            n = len(batch)
            if n == 0:
                self.ledger.serialized(0, 0, 0, 0, time.perf_counter() - t0)
                return
        nin = sum(a.nbytes for a in batch.arrays.values())
        try:
            if self.sparse_auto:
                self.sparse = self.sparse | _smaller_as_lists(
                    batch, self.sparse_auto, self.serializer
                )
                self.sparse_auto = frozenset()
            if self.sparse:
                batch = _to_sparse(batch, self.sparse)
            msgs = self.serializer.serialize(batch)
        except BaseException as e:  # noqa: BLE001
            self.ledger.dropped("serialize_error", n)
            self.control.fail("serialize", e)
            return
        t1 = time.perf_counter()
        nout = sum(m.nbytes for m in msgs)
        data = sum(1 for m in msgs if m.kind == "data")
        self.ledger.serialized(n, data, nin, nout, t1 - t0)
        self.out.put(msgs)


def _smaller_as_lists(
    batch: EventBatch, names: frozenset[str], serializer: Serializer
) -> frozenset[str]:
    """Of ``names``, the detectors whose frames in this batch are smaller as sparse lists than
    as the serializer's compressed frames (both compressed with its codec: exact sizes)."""
    from lclstream import codec as codecs
    from lclstream.formats._common import compress_events
    from lclstream.sparse import encode

    comp = getattr(serializer, "compression", None)
    name = getattr(comp, "codec", None)
    level = getattr(comp, "level", None)
    out = []
    for det in names:
        frames = batch.arrays.get(det)
        if frames is None or len(frames) == 0:
            continue
        sp = encode(frames)
        if name is None:
            dense, lists = frames.nbytes, sp.nbytes
        else:
            dense = sum(
                len(c) for c in compress_events(np.ascontiguousarray(frames), name, level=level)
            )
            lists = sp.offsets.nbytes + sum(
                len(codecs.compress(a, name, level=level)) for a in (sp.index, sp.values) if a.size
            )
        if lists < dense:
            out.append(det)
    return frozenset(out)


def _to_sparse(batch: EventBatch, names: frozenset[str]) -> EventBatch:
    """The batch with the frames of ``names`` replaced by their sparse photon lists."""
    from lclstream.sparse import encode

    arrays = {k: v for k, v in batch.arrays.items() if k not in names}
    sparse = {**batch.sparse, **{k: encode(batch.arrays[k]) for k in names if k in batch.arrays}}
    return EventBatch(
        batch.event_ids, batch.timestamps, arrays, batch.results, batch.owners, sparse
    )


class SendStage:
    """Messages → every live handler, in order; then the end message and ``close()``.

    A message counts as sent when every live handler delivered it; a handler that drops it
    by design (PUB) makes its events dropped (``pub_drop``); a handler that raises is
    closed off for the rest of the run (``send_error``). ``end_totals`` is called once
    everything before the end is handed over: it decides how the run ended.
    """

    def __init__(
        self,
        handlers: Sequence[DataHandler],
        serializer: Serializer,
        ledger: Ledger,
        control: RunControl,
        inq: queue.Queue[Any],
        start_messages: list[WireMessage],
        end_totals: Callable[[], StreamTotals],
    ) -> None:
        self.handlers = list(handlers)
        self.alive = list(handlers)
        self.serializer = serializer
        self.ledger = ledger
        self.control = control
        self.inq = inq
        self.start_messages = start_messages
        self.end_totals = end_totals
        #: the end message went out to at least one handler and every handler closed cleanly
        self.end_delivered = False

    def run(self) -> None:
        try:
            for m in self.start_messages:
                self._deliver(m)
            while (msgs := self.inq.get()) is not STOP:
                self._send(msgs)
        except BaseException as e:  # noqa: BLE001 - a bug here must not hang the stages above
            self.control.fail("send", e)
            while self.inq.get() is not STOP:
                pass
        finally:
            self._finish()

    def _deliver(self, message: WireMessage, *, end: bool = False) -> bool | None:
        """True: every live handler has it; False: one dropped it by design; None: none
        could take it (all failed)."""
        delivered = True
        took = False
        for h in list(self.alive):
            try:
                if end:
                    h.end(message)
                    ok = True
                else:
                    ok = h.handle(message) is not False
            except BaseException as e:  # noqa: BLE001
                self.control.fail("send", e)
                self.alive.remove(h)
                continue
            took = True
            delivered = delivered and ok
        return delivered if took else None

    def _send(self, msgs: list[WireMessage]) -> None:
        t0 = time.perf_counter()
        for m in msgs:
            if m.kind != "data":
                self._deliver(m)
                continue
            verdict = self._deliver(m) if self.alive else None
            if verdict is True:
                self.ledger.sent(m.events, 1, m.nbytes, 0.0)
            elif verdict is False:
                self.ledger.dropped("pub_drop", m.events)
            else:
                reason = "send_error" if self.control.failed("send") else "aborted"
                self.ledger.dropped(reason, m.events)
        self.ledger.send_busy(time.perf_counter() - t0)

    def _finish(self) -> None:
        sent_end = False
        try:
            end_msgs = self.serializer.end(self.end_totals())
        except BaseException as e:  # noqa: BLE001
            self.control.fail("serialize", e)
            end_msgs = []
        for m in end_msgs:
            sent_end = bool(self._deliver(m, end=True)) or sent_end
        closed_clean = True
        for h in self.handlers:  # close() delivers what is queued: the stream is sent after it
            try:
                h.close()
            except BaseException as e:  # noqa: BLE001
                self.control.fail("send", e)
                closed_clean = False
        self.ledger.ended()
        self.end_delivered = sent_end and closed_clean and bool(self.alive)
