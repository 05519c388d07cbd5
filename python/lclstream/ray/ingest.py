"""The ingest actor: receives one stream and puts each batch into Ray's object store.

Why an actor with a thread: the stream's receive loop (:func:`lclstream.run.receive.receive`,
with its completeness accounting and its rejection of hostile messages) must run while the
driver dispatches work; its thread blocks when the bounded queue of put batches is full,
stops reading the socket, and ZeroMQ holds the producer back (at most ``rcvhwm`` messages
wait in libzmq). So the object store holds a bounded number of batches and never spills,
however far the consumers fall behind (SLAC's PeakNet pipeline spilled ~470 GB without it).

``ray.put`` (the one copy, into the object store) runs in a second thread, so that receiving
message N+1 overlaps putting message N: the receive waits for the put thread only when one
batch is already waiting to be put (a hand-off of one, so still bounded).

Feeding a pool, batches that are already waiting when the put thread comes back are put
together, as one *bundle* (one Ray object holding a list of batches, each still copied once,
up to ``bundle_bytes`` and :data:`BUNDLE_MAX` batches), and go to one actor in one task. Why:
Ray's cost per object and per task (create, seal, pin, fetch, release, free; submit, run,
reply) is ~4 ms of CPU here whatever the size, while copying a 32 MB batch takes ~3 ms: a
stream of 8 MB messages ran at 0.4x a plain PULL loop with one object per message. Bundles
form only while the consumers are behind (nothing waits to fill one), so they add no latency.

Feeding a pool (:func:`~lclstream.ray.consume.map_batches`), the ingest submits each batch to
the pool's actors itself (:meth:`Ingest.dispatch`) and tells the driver only how batches
ended, a few times a second (:meth:`Ingest.collect`). Why here and not in the driver: the
ingest owns every batch's object, so a batch handed on by the driver was a borrowed reference
with its own protocol messages, on top of one driver request per batch; measured on this
2-core machine with minimal prototypes of both, median of 6 interleaved rounds: 256 against
292 events/s of 32 MB batches.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import asdict
from typing import Any

__all__ = ["BUNDLE_MAX", "Ingest", "IngestStopped", "Outcome"]

#: the most batches in one bundle (beyond this, Ray's per-object cost is already < 0.1 ms a
#: batch, and a dying actor would take more batches with it)
BUNDLE_MAX = 64

#: how a dispatched batch ended: (index, events, state, value); state "done" (value: what
#: user code returned, when outputs are kept), "failed" (value: why), or "unprocessed" (never
#: handed to a consumer: every consumer had died)
Outcome = tuple[int, int, str, Any]


class IngestStopped(Exception):
    """The driver stopped the ingest before the stream ended (a consumer failed, or it was
    closed): the receive ends, and its result says the stream was not complete."""


class _Waiting:
    """Received batches waiting for ``ray.put``: one, or (while bundling) at most one bundle's
    worth; the receive waits beyond that, so the bound holds in bytes as in batches."""

    def __init__(self) -> None:
        self._items: collections.deque[tuple[Any, int]] = collections.deque()
        self._bytes = 0
        self._cv = threading.Condition()
        self._closed = False
        self.max_bytes = 0  # 0: one batch at a time (not bundling)

    def _room(self, nbytes: int) -> bool:
        if not self._items:
            return True  # one batch always fits, whatever its size
        return len(self._items) < BUNDLE_MAX and self._bytes + nbytes <= self.max_bytes

    def put(self, item: Any, nbytes: int, timeout: float) -> bool:
        with self._cv:
            if not self._cv.wait_for(lambda: self._room(nbytes), timeout):
                return False
            self._items.append((item, nbytes))
            self._bytes += nbytes
            self._cv.notify_all()
            return True

    def take(self) -> list[Any] | None:
        """What waits (at least one item, at most one bundle), or None once closed and empty."""
        with self._cv:
            self._cv.wait_for(lambda: bool(self._items) or self._closed)
            if not self._items:
                return None
            item, size = self._items.popleft()
            out = [item]
            while self._items and len(out) < BUNDLE_MAX:
                if size + self._items[0][1] > self.max_bytes:
                    break
                item, nbytes = self._items.popleft()
                out.append(item)
                size += nbytes
            self._bytes -= size
            self._cv.notify_all()
            return out

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()


class Ingest:
    """Wrapped with ``ray.remote`` by :mod:`lclstream.ray.consume`; usable on its own in tests.

    ``next(timeout)`` returns ``("batch", [ref], events, index)``, ``("end", result)`` once
    the receive ended (``result``: :class:`~lclstream.run.receive.ReceiveResult` as a dict),
    ``("error", text)`` when it failed, or ``("wait", None)`` when nothing came in time.
    The reference travels inside a list, so Ray passes it on instead of fetching the object.
    """

    def __init__(
        self,
        urls: list[str],
        *,
        bind: bool = True,
        max_queued: int = 2,
        rcvhwm: int = 2,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._q: queue.Queue[tuple[str, Any, Any, Any]] = queue.Queue(maxsize=max(1, max_queued))
        self._urls = list(urls)
        self._bind = bind
        self._rcvhwm = rcvhwm
        self._options = dict(options or {})
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._endpoints: list[str] = []
        self._failure: str | None = None
        self._batches = 0
        self._put_seconds = 0.0
        #: seconds each stage waited for the next (where backpressure holds the stream)
        self._waits = {"receive_on_put": 0.0, "put_on_queue": 0.0, "dispatch_on_pool": 0.0}
        #: received batches waiting for ray.put (the receive waits beyond)
        self._waiting = _Waiting()
        self._objects = 0  # ray.put calls: fewer than batches when bundles formed
        self._put_error: BaseException | None = None
        #: outcomes of dispatched batches the driver has not collected, and the final verdict
        self._outcomes: list[Outcome] = []
        self._final: tuple[str, Any] | None = None
        self._collected = threading.Condition()
        self._dispatcher: threading.Thread | None = None
        self._putter = threading.Thread(target=self._put_loop, name="lclstream-put", daemon=True)
        self._putter.start()
        self._thread = threading.Thread(target=self._run, name="lclstream-ingest", daemon=True)
        self._thread.start()

    def endpoints(self, timeout: float = 60.0) -> list[str]:
        """Where the ingest listens (bound endpoints, ports resolved) once it does."""
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the ingest did not open {self._urls} within {timeout} s")
        if self._failure is not None and not self._endpoints:
            raise RuntimeError(f"the ingest could not open {self._urls}: {self._failure}")
        return list(self._endpoints)

    def next(self, timeout: float = 0.5) -> tuple[str, Any, Any, Any]:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return ("wait", None, None, None)

    def stop(self) -> None:
        self._stop.set()

    def dispatch(
        self,
        workers: list[Any],
        per_actor: int = 2,
        keep_outputs: bool = False,
        bundle_bytes: int = 0,
    ) -> None:
        """From now on, hand every batch to the least-loaded of ``workers`` (actor handles
        with ``run(batch)`` and ``run_bundle(batches, keep)``), at most ``per_actor`` tasks
        at each, batches that wait together bundled up to ``bundle_bytes`` (0: one by one);
        ``next`` is then not to be used."""
        if self._dispatcher is not None:
            raise RuntimeError("this ingest already dispatches to a pool")
        self._waiting.max_bytes = max(0, bundle_bytes)
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop,
            args=(list(workers), max(1, per_actor), keep_outputs),
            name="lclstream-dispatch",
            daemon=True,
        )
        self._dispatcher.start()

    def collect(self, wait: float = 0.25) -> tuple[list[Outcome], tuple[str, Any] | None]:
        """The outcomes since the last call and, once every batch has one, the verdict:
        ``("end", receive result)`` or ``("error", why)``. Waits up to ``wait`` s for the
        verdict, so that the driver asks a few times a second, not once per batch."""
        with self._collected:
            self._collected.wait_for(lambda: self._final is not None, timeout=wait)
            out, self._outcomes = self._outcomes, []
            return out, self._final

    def _publish(self, outcome: Outcome) -> None:
        with self._collected:
            self._outcomes.append(outcome)

    def _dispatch_loop(self, workers: list[Any], per_actor: int, keep: bool) -> None:
        import ray

        load = [0] * len(workers)
        alive = [True] * len(workers)
        #: the future of each task -> (slot, [(batch index, events)], bundled, task)
        inflight: dict[Any, tuple[int, list[tuple[int, int]], bool, Any]] = {}
        finished: collections.deque[Any] = collections.deque()  # futures whose task ended
        wake = threading.Condition()
        verdict: tuple[str, Any] | None = None
        own_verdict = False  # the verdict is the dispatch's, not the receive's

        def on_done(fut: Any) -> None:  # on Ray's thread: only note it (no ray.wait polling)
            with wake:
                finished.append(fut)
                wake.notify()

        def settle(fut: Any) -> None:
            if fut not in inflight:
                return  # settled already (the end drains what the callback also noted)
            slot, members, bundled, _task = inflight.pop(fut)
            load[slot] -= 1
            try:
                out = fut.result()
            except ray.exceptions.RayActorError as e:
                alive[slot] = False
                out = [("failed", f"its actor died: {first_line(e)}")] * len(members)
            except ray.exceptions.RayTaskError as e:
                out = [("failed", f"it raised: {first_line(e)}")] * len(members)
            else:
                out = out if bundled else [("done", out)]
            for (index, events), (state, value) in zip(members, out, strict=True):
                self._publish((index, events, state, value if keep or state != "done" else None))

        def settle_finished(wait: float) -> None:
            with wake:
                if not finished and wait > 0:
                    wake.wait(wait)
                ready = list(finished)
                finished.clear()
            for fut in ready:
                settle(fut)

        try:
            while verdict is None:
                settle_finished(0)
                if not any(alive):
                    verdict, own_verdict = ("error", "every consumer actor died"), True
                    self._stop.set()  # the receive ends; what it queued is unprocessed
                    break
                free = [i for i in range(len(workers)) if alive[i] and load[i] < per_actor]
                if not free:
                    t0 = time.perf_counter()
                    settle_finished(0.5)
                    self._waits["dispatch_on_pool"] += time.perf_counter() - t0
                    continue
                try:
                    kind, value, events, index = self._q.get(timeout=0.05 if inflight else 0.5)
                except queue.Empty:
                    continue
                if kind in ("batch", "bundle"):
                    slot = min(free, key=load.__getitem__)
                    if kind == "batch":
                        task, members = workers[slot].run.remote(value[0]), [(index, events)]
                    else:
                        task, members = workers[slot].run_bundle.remote(value[0], keep), events
                    fut = task.future()
                    inflight[fut] = (slot, members, kind == "bundle", task)
                    load[slot] += 1
                    fut.add_done_callback(on_done)
                elif kind in ("end", "error"):
                    verdict = (kind, value)
            while inflight:  # every dispatched batch ends before the verdict
                settle(next(iter(inflight)))
            if own_verdict:  # stopped early: what the receive still queues is unprocessed
                while True:
                    try:
                        kind, value, events, index = self._q.get(timeout=0.5)
                    except queue.Empty:
                        if not self._thread.is_alive():
                            break
                        continue
                    if kind == "batch":
                        self._publish((index, events, "unprocessed", None))
                    elif kind == "bundle":
                        for i, n in events:
                            self._publish((i, n, "unprocessed", None))
                    else:
                        break
        except BaseException as e:  # noqa: BLE001 - the driver is told, and stops
            verdict = ("error", f"the ingest's dispatch failed: {type(e).__name__}: {e}")
            self._stop.set()
            for _slot, members, _bundled, _task in inflight.values():  # counted, never lost
                for index, events in members:
                    self._publish((index, events, "failed", verdict[1]))
        with self._collected:
            self._final = verdict
            self._collected.notify_all()

    def stats(self) -> dict[str, Any]:
        """Batches put so far and the Ray objects they went in (fewer when bundled), the time
        spent in ``ray.put`` (the one copy per batch), and the seconds each stage waited for
        the next."""
        return {
            "batches": self._batches,
            "objects": self._objects,
            "put_seconds": self._put_seconds,
            "waits": dict(self._waits),
        }

    def _ready_at(self, endpoints: list[str]) -> None:
        self._endpoints = list(endpoints)
        self._ready.set()

    def _hand_off(self, parsed: Any, frames: list[Any]) -> None:
        """The receive's on_batch: give the batch (and the frames its arrays view) to the put
        thread; an error there ends the receive."""
        b = parsed.batch
        nbytes = sum(a.nbytes for a in b.arrays.values()) + sum(
            a.nbytes for a in b.results.values()
        )
        t0 = time.perf_counter()
        while not self._stop.is_set():
            if self._put_error is not None:
                raise self._put_error
            if self._waiting.put((parsed, frames), nbytes, timeout=0.2):
                self._waits["receive_on_put"] += time.perf_counter() - t0
                return
        raise IngestStopped("the ingest was stopped before the stream ended")

    def _put_loop(self) -> None:
        while (items := self._waiting.take()) is not None:
            try:
                self._put(items)
            except BaseException as e:  # noqa: BLE001 - the receive thread raises it
                self._put_error = e
            del items

    def _drain_puts(self) -> None:
        """Every handed-off batch is put (and queued for the driver) before the verdict."""
        self._waiting.close()
        self._putter.join()
        if self._put_error is not None and not isinstance(self._put_error, IngestStopped):
            raise self._put_error

    def _put(self, items: list[tuple[Any, list[Any]]]) -> None:
        """One object: a batch, or (feeding a pool) a bundle of the batches that waited."""
        import ray

        from lclstream.ray.batch import RayBatch

        batches: list[RayBatch] = []
        for parsed, _frames in items:
            b = parsed.batch
            info = parsed.info
            batches.append(
                RayBatch(
                    arrays=dict(b.arrays),
                    event_ids=b.event_ids,
                    timestamps=b.timestamps,
                    results=dict(b.results),
                    stream_id=parsed.stream_id,
                    sender=parsed.sender,
                    sequence=parsed.sequence,
                    index=self._batches + len(batches),
                    detectors={k: asdict(d) for k, d in info.detectors.items()} if info else {},
                )
            )
        bundled = len(batches) > 1 or self._waiting.max_bytes > 0
        t0 = time.perf_counter()
        ref = ray.put(batches if bundled else batches[0])
        self._put_seconds += time.perf_counter() - t0
        if bundled:
            item: tuple[str, Any, Any, Any] = (
                "bundle", [ref], [(x.index, len(x)) for x in batches], None
            )  # fmt: skip
        else:
            item = ("batch", [ref], len(batches[0]), batches[0].index)
        self._batches += len(batches)
        self._objects += 1
        t0 = time.perf_counter()
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                self._waits["put_on_queue"] += time.perf_counter() - t0
                return
            except queue.Full:
                continue
        raise IngestStopped("the ingest was stopped before the stream ended")

    def _run(self) -> None:
        from lclstream.run.receive import receive

        try:
            res = receive(
                self._urls,
                bind=self._bind,
                on_ready=self._ready_at,
                on_batch=self._hand_off,
                rcvhwm=self._rcvhwm,
                **self._options,
            )
            self._drain_puts()
            item: tuple[str, Any, Any, Any] = ("end", res.as_dict(), None, None)
        except BaseException as e:  # noqa: BLE001 - handed to the driver as the reason
            self._failure = f"{type(e).__name__}: {e}"
            item = ("error", self._failure, None, None)
        finally:
            self._ready.set()
            if self._putter.is_alive():  # the receive failed: let the put thread end
                self._stop.set()
                self._waiting.close()
        while True:  # the driver must see how it ended, even if it is slow to ask
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                draining = self._dispatcher is not None and self._dispatcher.is_alive()
                if self._stop.is_set() and not draining:
                    try:  # a stopped driver drains nothing: make room for the verdict
                        self._q.get_nowait()
                    except queue.Empty:
                        pass


def first_line(e: BaseException) -> str:
    """The last line of a Ray error (the user's exception, not Ray's traceback), cut short."""
    text = str(e).strip().splitlines()
    return text[-1][:300] if text else type(e).__name__
