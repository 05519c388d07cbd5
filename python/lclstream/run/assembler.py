"""The batch assembler: events in, full :class:`~lclstream.protocols.EventBatch` es out.

Why it exists: a batch is the unit everything downstream works on (one message, one chunk
set, one socket send), and building it is where the hot path could allocate per event. Here
every detector frame is calibrated straight into the next slot of a pooled
:class:`lclstream.Batch` (contiguous, pre-touched memory), ids and timestamps ride along,
and non-detector values (scalars, small arrays) are copied into per-batch lists. No thread,
no queue: the read stage drives it, and tests drive it directly.

Detectors in ``defer`` are calibrated when their batch is full, all its frames in one call:
their constants (four times the raw frame's bytes for Jungfrau) then stream from memory once
a batch instead of once a frame. The pipeline defers only where the source keeps its raw
frames valid (``frames_stay_valid``) and no event filter looks at calibrated frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lclstream.batch import Batch, pool_for
from lclstream.errors import SourceError
from lclstream.protocols import Event, EventBatch
from lclstream.run.plan import DetectorPlan

__all__ = ["BatchAssembler"]


def _deferrable(raw: Any) -> bool:
    """A raw frame the batch calibration takes as it is (else it is calibrated at once)."""
    return isinstance(raw, np.ndarray) and raw.dtype == np.uint16 and raw.flags.c_contiguous


class BatchAssembler:
    """Fills batches of ``batch_size`` events from pooled buffers (``pool_batches`` batches
    per detector: when all are in flight downstream, :meth:`calibrate` waits for one to
    come back — that is the pipeline's backpressure, never an allocation)."""

    def __init__(
        self,
        plans: dict[str, DetectorPlan],
        batch_size: int,
        pool_batches: int,
        *,
        defer: frozenset[str] = frozenset(),
    ) -> None:
        self.plans = plans
        self.batch_size = int(batch_size)
        #: detectors calibrated a batch at a time when the batch is full (their raw frames
        #: stay valid until then and nothing reads a calibrated frame before)
        self.defer = frozenset(n for n in defer if n in plans and plans[n].batch_calibrates)
        self._pools = {
            p.name: pool_for(
                self.batch_size, p.out_shape, p.out_dtype, pool_batches, prefault=False
            )
            for p in plans.values()
        }
        self._reset()

    def cancel(self) -> None:
        """Wake a :meth:`calibrate` waiting for a pool buffer (it raises
        :data:`~lclstream.batch.PoolCancelled`): the buffers may be held by a consumer that
        stopped reading, and a cancelled run must not wait for them."""
        for p in self._pools.values():
            p.cancel()

    def pool_stats(self) -> dict[str, dict[str, Any]]:
        """Per detector: the buffer pool's counters (allocations, acquires, capacity)."""
        return {n: dict(p.stats()) for n, p in self._pools.items()}

    def _reset(self) -> None:
        self._batches: dict[str, Batch] = {}
        # deferred detectors: each committed event's raw frame (None: calibrated at once)
        self._raws: dict[str, list[np.ndarray | None]] = {n: [] for n in self.defer}
        self._pending: dict[str, np.ndarray | None] = {}
        self._ids: list[int] = []
        self._stamps: list[int] = []
        self._scalars: dict[str, list[Any]] = {}
        self._results: dict[str, list[Any]] = {}

    @property
    def pending(self) -> int:
        """Events committed to the batch being filled."""
        return len(self._ids)

    def calibrate(self, event: Event) -> dict[str, np.ndarray]:
        """Calibrate and reduce the event's detector frames into the next slots; returns the
        slots (views). Nothing is committed: :meth:`commit` keeps the event, and not
        committing (a vetoed event) leaves the slots to the next one."""
        if not self._batches:
            self._batches = {
                n: Batch(self.batch_size, p.out_shape, p.out_dtype, pool=self._pools[n], source=n)
                for n, p in self.plans.items()
            }
        frames: dict[str, np.ndarray] = {}
        for n, plan in self.plans.items():
            raw = event.data.get(n)
            if raw is None:  # sources apply skip_incomplete_events; this one broke the rule
                raise SourceError(
                    f"event {event.event_id}: the source yielded no data for detector {n!r}"
                )
            slot = self._batches[n].slot()
            if n in self.defer and _deferrable(raw):
                plan.check_raw(raw)
                self._pending[n] = raw  # calibrated with its batch (flush)
            else:
                plan.calibrate_into(raw, slot)
                if n in self.defer:
                    self._pending[n] = None
            frames[n] = slot
        return frames

    def commit(self, event: Event) -> EventBatch | None:
        """Keep the event just calibrated; returns the batch when it is full."""
        for b in self._batches.values():
            b.commit(event.event_id, event.timestamp)
        for n in self.defer:
            self._raws[n].append(self._pending.pop(n, None))
        self._ids.append(int(event.event_id))
        self._stamps.append(int(event.timestamp))
        for key, value in event.data.items():
            if key not in self.plans:
                # a copy: sources may hand out views of buffers they reuse
                self._scalars.setdefault(key, []).append(np.array(value))
        for key, value in event.results.items():
            self._results.setdefault(key, []).append(value)
        if len(self._ids) >= self.batch_size:
            return self.flush()
        return None

    def flush(self) -> EventBatch | None:
        """The batch being filled (if it holds any event); the next event starts a new one."""
        if not self._ids:
            return None
        arrays: dict[str, np.ndarray] = {n: b.data for n, b in self._batches.items()}
        for n, raws in self._raws.items():
            # runs of consecutive deferred events, each into its slots at once
            i = 0
            while i < len(raws):
                if raws[i] is None:
                    i += 1
                    continue
                j = i
                while j < len(raws) and raws[j] is not None:
                    j += 1
                run = [r for r in raws[i:j] if r is not None]
                self.plans[n].calibrate_batch(run, arrays[n][i:j])
                i = j
        for key, values in self._scalars.items():
            arrays[key] = np.asarray(values)
        results: dict[str, np.ndarray] = {}
        for key, values in self._results.items():
            if len(values) != len(self._ids):
                raise SourceError(
                    f"result {key!r}: {len(values)} of the batch's {len(self._ids)} events "
                    "have it (an event filter must give every kept event the same results)"
                )
            results[key] = np.stack(values)
        eb = EventBatch(
            event_ids=np.asarray(self._ids, dtype=np.uint64),
            timestamps=np.asarray(self._stamps, dtype=np.uint64),
            arrays=arrays,
            results=results,
            owners=list(self._batches.values()),
        )
        self._reset()
        return eb
