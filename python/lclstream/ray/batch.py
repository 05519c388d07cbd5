"""What a Ray consumer receives: one stream batch, its arrays read from Ray's object store.

Why a dataclass of numpy arrays: Ray pickles with protocol 5 and stores numpy buffers out
of band, so ``ray.get`` hands back arrays that view the object store's shared memory (no
copy, read-only), while a ``bytes`` object or a torch tensor would be copied on every
read. Each batch is put once (one copy: from the received ZeroMQ frame into the store).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RayBatch"]


@dataclass
class RayBatch:
    """One data message of a stream: contiguous arrays, events first."""

    #: the batch's arrays by data source name, the primary (detector frames) first
    arrays: dict[str, np.ndarray]
    event_ids: np.ndarray
    #: ns since the Unix epoch, per event
    timestamps: np.ndarray
    #: per-event results that travelled with the batch (peaks, hit flags), by name
    results: dict[str, np.ndarray] = field(default_factory=dict)
    stream_id: str = ""
    sender: int = 0
    sequence: int = -1
    #: the batch's place in the order the ingest received batches (0, 1, ...)
    index: int = 0
    #: detector name -> {kind, frame_shape, dtype, serial} from the stream's messages
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.event_ids))

    @property
    def data(self) -> np.ndarray:
        """The primary array (the first: detector frames), shape (events, ...)."""
        return next(iter(self.arrays.values()))
