"""Contiguous batches of detector events.

A batch holds N frames of one detector in one pooled buffer (events first) plus per-event
ids, timestamps and metadata. Contiguity lets a codec, a socket or a GPU take the batch in
one call; pooling keeps page faults off the hot path. ``Batch.data`` is a numpy view of the
pooled memory: the buffer returns to its pool only when the batch and every view are gone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lclstream import _core

BufferPool = _core.BufferPool

#: Raised by a wait for a pool buffer once the pool is cancelled (``BufferPool.cancel()``).
PoolCancelled = _core.CancelledError


def pool_for(
    capacity: int,
    frame_shape: Sequence[int],
    dtype: npt.DTypeLike,
    count: int,
    *,
    prefault: bool = True,
) -> _core.BufferPool:
    """A pool of ``count`` buffers, each large enough for one batch of ``capacity`` frames.

    ``prefault=False`` creates (and faults in) each buffer when it is first needed: a run
    then starts after one buffer's page faults instead of all of them (eight 84 MB batch
    buffers of a Jungfrau 4M took 1.3 s before the first event could be read), and the rest
    are made while the first batches are already under way."""
    nbytes = int(capacity) * int(np.prod(frame_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return _core.BufferPool(max(nbytes, 1), int(count), prefault)


class Batch:
    """N events of one detector, contiguous, with ids, timestamps and metadata.

    ``pool`` shares buffers between batches (a pipeline passes one so that memory is
    reused); without it the batch gets a private buffer. Waiting for a pool buffer obeys
    Ctrl-C (main thread), ``timeout`` (seconds, None: no deadline; ``TimeoutError``) and
    ``pool.cancel()`` (:data:`PoolCancelled`).
    """

    __slots__ = ("_b", "metadata", "source")

    def __init__(
        self,
        capacity: int,
        frame_shape: Sequence[int],
        dtype: npt.DTypeLike,
        *,
        pool: _core.BufferPool | None = None,
        source: str = "detector_data",
        timeout: float | None = None,
    ) -> None:
        dt = np.dtype(dtype)
        if dt.byteorder == ">":
            raise _core.LclstreamValueError(f"Batch: big-endian dtype {dt} is not supported")
        if capacity < 1:
            raise _core.LclstreamValueError(f"Batch: capacity must be >= 1, got {capacity}")
        self._b = _core.Batch(pool, dt.name, [int(s) for s in frame_shape], int(capacity), timeout)
        self.metadata: dict[str, list[Any]] = {}
        self.source = source

    @classmethod
    def from_frames(
        cls,
        frames: Sequence[np.ndarray] | np.ndarray,
        event_ids: Iterable[int] | None = None,
        timestamps: Iterable[int] | None = None,
        *,
        pool: _core.BufferPool | None = None,
        threads: int = 0,
        source: str = "detector_data",
    ) -> Batch:
        """Assemble a batch from a list of frames (or a stacked array) in one parallel copy."""
        if isinstance(frames, np.ndarray):
            if frames.ndim < 1:
                raise _core.LclstreamValueError("Batch.from_frames: need an array of frames")
            n, shape, dtype = frames.shape[0], frames.shape[1:], frames.dtype
        else:
            if len(frames) == 0:
                raise _core.LclstreamValueError("Batch.from_frames: no frames given")
            n, shape, dtype = len(frames), frames[0].shape, frames[0].dtype
        batch = cls(n, shape, dtype, pool=pool, source=source)
        batch.extend(frames, event_ids, timestamps, threads=threads)
        return batch

    def append(
        self,
        frame: np.ndarray,
        event_id: int | None = None,
        timestamp: int = 0,
        metadata: dict[str, Any] | None = None,
        *,
        threads: int = 1,
    ) -> None:
        """Copy one frame into place (event id defaults to its position in the batch)."""
        eid = len(self) if event_id is None else int(event_id)
        self._b.append(frame, eid, int(timestamp), threads)
        self._add_metadata(metadata, 1)

    def extend(
        self,
        frames: Sequence[np.ndarray] | np.ndarray,
        event_ids: Iterable[int] | None = None,
        timestamps: Iterable[int] | None = None,
        *,
        threads: int = 0,
    ) -> None:
        """Copy many frames into place at once, the copy spread over ``threads`` threads."""
        n = frames.shape[0] if isinstance(frames, np.ndarray) else len(frames)
        start = len(self)
        ids = list(range(start, start + n)) if event_ids is None else [int(i) for i in event_ids]
        ts = [0] * n if timestamps is None else [int(t) for t in timestamps]
        if isinstance(frames, np.ndarray):
            self._b.extend_stacked(frames, ids, ts, threads)
        else:
            self._b.extend(list(frames), ids, ts, threads)
        self._add_metadata(None, n)

    def slot(self) -> np.ndarray:
        """Writable view of the next frame's place, for kernels that write in place."""
        out: np.ndarray = self._b.next_slot()
        return out

    def commit(
        self,
        event_id: int | None = None,
        timestamp: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Make the frame written into ``slot()`` part of the batch."""
        self._b.commit(len(self) if event_id is None else int(event_id), int(timestamp))
        self._add_metadata(metadata, 1)

    def _add_metadata(self, metadata: dict[str, Any] | None, n: int) -> None:
        before = len(self) - n
        for values in self.metadata.values():
            values.extend([None] * (before + n - len(values)))
        for key, value in (metadata or {}).items():
            col = self.metadata.setdefault(key, [None] * before)
            col.extend([None] * (before - len(col)))
            col.extend([value] * n)

    @property
    def data(self) -> np.ndarray:
        """The filled frames, shape (events, *frame_shape), viewing the pooled buffer."""
        out: np.ndarray = self._b.array()
        return out

    @property
    def ids(self) -> np.ndarray:
        out: np.ndarray = self._b.event_ids
        return out

    @property
    def timestamps(self) -> np.ndarray:
        out: np.ndarray = self._b.timestamps
        return out

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self._b.dtype)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self._b.frame_shape)

    @property
    def capacity(self) -> int:
        return int(self._b.capacity)

    @property
    def nbytes(self) -> int:
        return len(self) * int(self._b.frame_bytes)

    @property
    def full(self) -> bool:
        return len(self) == self.capacity

    def __len__(self) -> int:
        return len(self._b)

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        data = self.data
        if dtype is not None and np.dtype(dtype) != data.dtype:
            return data.astype(dtype)
        return data.copy() if copy else data

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.data.__dlpack_device__()  # type: ignore[no-any-return]

    def release(self) -> None:
        """Return the buffer to its pool now, rather than when the batch is collected.

        Refused while numpy views of the data exist (they would see reused memory).
        """
        if sys.getrefcount(self._b) > 2:  # our attribute + the call's argument
            raise _core.LclstreamValueError(
                "Batch.release: views of this batch's data still exist; drop them first"
            )
        self._b.release()
        self.metadata.clear()

    def __repr__(self) -> str:
        return (
            f"Batch({len(self)}/{self.capacity} x {self.frame_shape} {self.dtype}, "
            f"source={self.source!r})"
        )
