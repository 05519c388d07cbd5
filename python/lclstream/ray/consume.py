"""Consume a stream in Ray: an iterator for a driver script, or a pool of actors.

Both start one ingest actor (:mod:`lclstream.ray.ingest`) that binds (or connects to) the
stream's endpoints. Batches in flight are bounded everywhere: the ingest holds at most
``max_queued`` put batches, libzmq at most ``rcvhwm`` received ones, and the pool at most
``per_actor`` per actor; beyond that the producer waits. The result says whether every
event of the stream was processed: the receive's own verdict (every sender's end message,
events matching their totals) and every batch handed to user code returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lclstream.ray.batch import RayBatch
from lclstream.ray.ingest import Ingest, Outcome, first_line

__all__ = ["BUNDLE_BYTES", "BatchStream", "FailedBatch", "StreamResult", "map_batches"]

#: the largest bundle by default (see :mod:`lclstream.ray.ingest`); smaller when the object
#: store is small
BUNDLE_BYTES = 64 << 20


@dataclass
class FailedBatch:
    """A batch user code did not finish: its events are not processed, and say so."""

    index: int
    events: int
    reason: str


@dataclass
class StreamResult:
    """How a Ray consumption of one stream ended."""

    #: the receive's summary (``ReceiveResult.as_dict()``); empty when it never ended
    receive: dict[str, Any] = field(default_factory=dict)
    batches: int = 0
    events_received: int = 0
    events_processed: int = 0
    #: events received but never handed to user code (the consumption stopped first)
    events_unprocessed: int = 0
    failed: list[FailedBatch] = field(default_factory=list)
    #: what user code returned, by batch index (``map_batches(keep_outputs=True)``)
    outputs: dict[int, Any] = field(default_factory=dict)
    #: why the consumption stopped early, else empty
    error: str = ""
    seconds: float = 0.0
    #: the ingest's counters at the end (:meth:`BatchStream.stats`): batches put, seconds in
    #: ``ray.put``, and how long each stage waited for the next (where backpressure held)
    ingest: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every event of the stream arrived and was processed."""
        return (
            bool(self.receive.get("complete"))
            and not self.failed
            and not self.error
            and self.events_processed == self.events_received == int(self.receive["events"])
        )

    def incomplete_reason(self) -> str:
        if self.complete:
            return ""
        if self.error:
            return f"stopped: {self.error}"
        if self.failed:
            f = self.failed[0]
            lost = sum(x.events for x in self.failed)
            return (
                f"{len(self.failed)} batches ({lost} events) not processed; first: batch "
                f"{f.index}: {f.reason}"
            )
        if not self.receive.get("complete"):
            return f"the stream was incomplete: {self.receive.get('problems') or self.receive}"
        return f"{self.events_processed} of {self.events_received} events processed"


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("lclstream.ray needs Ray: pip install 'lclstream[ray]'") from e
    if not ray.is_initialized():
        ray.init()
    return ray


class BatchStream:
    """Iterate over a stream's batches in a driver: ``for batch in BatchStream(url): ...``.

    Each item is a :class:`RayBatch` whose arrays view Ray's object store (read-only, no
    copy). ``endpoints`` says where the ingest listens (a bound port 0 resolved); after the
    loop, ``result`` says whether the stream was complete. ``refs()`` yields the object
    references instead, to hand them to tasks without fetching them here.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        bind: bool = True,
        max_queued: int = 2,
        rcvhwm: int = 2,
        ingest_options: dict[str, Any] | None = None,
        **receive_options: Any,
    ) -> None:
        ray = _ray()
        url_list = [urls] if isinstance(urls, str) else list(urls)
        actor = ray.remote(Ingest).options(num_cpus=0, **(ingest_options or {}))
        # the ingest's process only receives: glibc may keep freed message buffers for the
        # next ones (a fresh 33 MB buffer is 8,000 page faults)
        options = {"reuse_buffers": True, **receive_options}
        self._ingest = actor.remote(
            url_list, bind=bind, max_queued=max_queued, rcvhwm=rcvhwm, options=options
        )
        self._max_queued = max_queued
        self.endpoints: list[str] = ray.get(self._ingest.endpoints.remote())
        self.result = StreamResult()
        self._t0 = time.perf_counter()
        self._done = False
        self._closed = False
        self._iterating = False  # batches come to this driver (``next``)
        self._dispatching = False  # the ingest feeds a pool (``dispatch``)
        self._keep_outputs = False

    def _items(self) -> Iterator[tuple[Any, int, int]]:
        """(ref, events, index) per batch, until the receive ends."""
        ray = _ray()
        if self._dispatching:
            raise RuntimeError("this stream feeds a pool: its batches do not come here")
        self._iterating = True
        # one request ahead: the ingest answers the next while this batch is dispatched
        pending = self._ingest.next.remote(0.5)
        while not self._done:
            kind, value, events, index = ray.get(pending)
            if kind in ("batch", "wait"):
                pending = self._ingest.next.remote(0.5)
            if kind == "batch":
                self.result.batches += 1
                self.result.events_received += int(events)
                yield value[0], int(events), int(index)
            elif kind in ("end", "error"):
                self._verdict(kind, value)

    def _finish(self) -> None:
        self._done = True
        self.result.seconds = time.perf_counter() - self._t0

    def _dispatch(
        self, pool: list[Any], per_actor: int, keep_outputs: bool, bundle_bytes: int | None
    ) -> Iterator[Outcome]:
        """Have the ingest feed ``pool`` itself; yield each batch's outcome as it is known,
        until the verdict (which lands in ``result``)."""
        if self._iterating or self._done:
            raise RuntimeError("this stream is already being consumed")
        self._dispatching = True
        self._keep_outputs = keep_outputs
        if bundle_bytes is None:
            bundle_bytes = _bundle_bytes(self._max_queued, per_actor * len(pool))
        _ray().get(self._ingest.dispatch.remote(pool, per_actor, keep_outputs, bundle_bytes))
        return self._dispatch_outcomes()

    def _dispatch_outcomes(self) -> Iterator[Outcome]:
        ray = _ray()
        while not self._done:
            try:
                outcomes, final = ray.get(self._ingest.collect.remote(0.25))
            except ray.exceptions.RayActorError as e:
                self.result.error = f"the ingest actor died: {first_line(e)}"
                self._finish()
                return
            for outcome in outcomes:
                self._account(*outcome)
                yield outcome
            if final is not None:
                self._verdict(*final)

    def _account(self, index: int, events: int, state: str, value: Any) -> None:
        """A dispatched batch's outcome, in the result (also when ``close`` drains them)."""
        res = self.result
        res.batches += 1
        res.events_received += events
        if state == "done":
            res.events_processed += events
            if self._keep_outputs:
                res.outputs[index] = value
        elif state == "failed":
            res.failed.append(FailedBatch(index, events, str(value)))
        else:
            res.events_unprocessed += events

    def _verdict(self, kind: str, value: Any) -> None:
        if kind == "end":
            self.result.receive = dict(value)
        elif not self.result.error:  # the first reason given is the one that explains
            self.result.error = str(value)
        self._finish()

    def refs(self) -> Iterator[Any]:
        """Object references of the batches (each counted as processed when yielded)."""
        for ref, events, _ in self._items():
            self.result.events_processed += events
            yield ref

    def __iter__(self) -> Iterator[RayBatch]:
        ray = _ray()
        for ref, events, _ in self._items():
            batch: RayBatch = ray.get(ref)
            yield batch
            self.result.events_processed += events  # the loop body came back for more

    def stats(self) -> dict[str, Any]:
        """The ingest's counters (batches put, seconds in ``ray.put``, stage waits)."""
        stats: dict[str, Any] = _ray().get(self._ingest.stats.remote())
        return stats

    def close(self) -> None:
        """Stop the ingest (an unfinished stream ends incomplete) and free its actor."""
        if self._closed:
            return
        self._closed = True
        ray = _ray()
        if not self._done:
            ray.get(self._ingest.stop.remote())
            drain = self._dispatch_outcomes() if self._dispatching else self._items()
            for _ in drain:  # what it had queued, then its verdict
                pass
        try:
            self.result.ingest = ray.get(self._ingest.stats.remote(), timeout=10)
        except (ray.exceptions.RayError, TimeoutError):
            pass  # a dead ingest has no counters left; its verdict already says why
        ray.kill(self._ingest)

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Worker:
    """One pool actor: calls the user's function, or an instance of the user's class."""

    def __init__(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn = fn(*args, **kwargs) if isinstance(fn, type) else fn

    def run(self, batch: RayBatch) -> Any:
        return self.fn(batch)

    def run_bundle(self, batches: list[RayBatch], keep: bool) -> list[tuple[str, Any]]:
        """Each batch of a bundle on its own: one that raises fails alone, as its own task
        would have (``("failed", why)``); the others are ``("done", output or None)``."""
        out: list[tuple[str, Any]] = []
        for batch in batches:
            try:
                value = self.fn(batch)
            except Exception as e:  # noqa: BLE001 - counted as this batch's failure
                out.append(("failed", f"it raised: {_raised(e)}"))
            else:
                out.append(("done", value if keep else None))
        return out


def _raised(e: BaseException) -> str:
    """``Type: message`` of an exception user code raised in a bundle, its first line, cut
    short (what a task's own ``RayTaskError`` would have said, without the traceback)."""
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300]


def _bundle_bytes(max_queued: int, in_flight: int) -> int:
    """The largest bundle such that every bundle the stream can hold at once (put, queued,
    at the actors, being put) fits in half of Ray's object store (the smallest node's: the
    ingest's may be any): Ray spills beyond it."""
    import ray

    stores = [
        int(n.get("Resources", {}).get("object_store_memory", 0))
        for n in ray.nodes()
        if n.get("Alive")
    ]
    store = min((x for x in stores if x > 0), default=0)
    slots = max_queued + in_flight + 2
    return min(BUNDLE_BYTES, store // (2 * slots)) if store > 0 else 0


def map_batches(
    source: BatchStream | str | Sequence[str],
    fn: Callable[[RayBatch], Any] | type,
    *,
    actors: int = 2,
    per_actor: int = 2,
    actor_options: dict[str, Any] | None = None,
    fn_args: tuple[Any, ...] = (),
    fn_kwargs: dict[str, Any] | None = None,
    keep_outputs: bool = False,
    bundle_bytes: int | None = None,
    **stream_options: Any,
) -> StreamResult:
    """Feed every batch of a stream to a pool of ``actors`` Ray actors, least-loaded first.

    ``fn`` is a function of a :class:`RayBatch` or a class (instantiated once per actor with
    ``fn_args``/``fn_kwargs``) with ``__call__(batch)``. The stream is closed on return. At
    most ``per_actor`` batches wait at each actor (default 2: one running and the next already
    there, so an actor never waits for a round trip); when all are busy the ingest stops
    reading and the producer waits. The ingest submits the batches itself (it owns them) and
    the driver only collects outcomes, a few times a second. A batch whose actor dies, or
    whose call raises, is reported in ``result.failed`` (never silently lost); the others go
    on to the live actors. The stream is stopped (and the result incomplete) when no actor is
    left; what the ingest had received by then is counted in ``result.events_unprocessed``.

    Batches that wait at the ingest while every actor is busy go on together, as one Ray
    object and one task (a *bundle*, up to ``bundle_bytes``; by default 64 MiB, or less so
    that whatever the stream holds fits in half the object store; 0: never). Ray's cost per
    object and task is then paid once per bundle; user code still gets one batch per call,
    and a batch that raises fails alone. An actor that dies fails every batch it held.
    """
    ray = _ray()
    stream = source if isinstance(source, BatchStream) else BatchStream(source, **stream_options)
    remote = ray.remote(_Worker).options(**{"num_cpus": 1, **(actor_options or {})})
    pool = [remote.remote(fn, fn_args, fn_kwargs or {}) for _ in range(max(1, actors))]
    try:
        for _ in stream._dispatch(pool, per_actor, keep_outputs, bundle_bytes):
            pass  # the stream's result accounts for each outcome
    finally:
        stream.close()  # consumed (or given up): its ingest actor is no longer needed
        for actor in pool:
            ray.kill(actor)
    return stream.result
