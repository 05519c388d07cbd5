"""The model stage: each batch's frames through the run's batch models, in a thread of its
own between the read and serialize stages.

Why a stage and not a call inside serialization: a network may take longer per batch than
anything else in the pipeline, and on a GPU it should run while the CPU compresses the batch
before. Its queue is bounded (``model.queue_depth``), so a slow model fills it, the reader
then waits for a pooled buffer, and the source stops being read: backpressure all the way up,
no event lost, memory bounded. The model only annotates the batch
(``EventBatch.model_outputs``); the serialize stage turns that into CXI lists and the veto,
like peakfinder8's, so the accounting has one place.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any

from lclstream.models import BatchModel, load_model
from lclstream.protocols import EventBatch
from lclstream.run.ledger import Ledger
from lclstream.run.stages import BatchStage, RunControl

__all__ = ["ModelStage", "Modelled", "batch_models"]


@dataclass
class Modelled:
    """One detector's model in a run."""

    model: BatchModel
    name: str  # as configured (the registry's name)
    queue_depth: int


def batch_models(pp: Any, plans: dict[str, Any]) -> dict[str, Modelled]:
    """detector -> its model, built now so that a bad model config fails before the run
    starts."""
    out: dict[str, Modelled] = {}
    for det, spec in pp.reduction.items():
        if spec.model is None or det not in plans:
            continue
        m = spec.model
        model = load_model(m.name, plans[det].info, dict(m.parameters))
        out[det] = Modelled(model, m.name, m.queue_depth)
    return out


class ModelStage(BatchStage):
    """Batches in → each detector's model on its frames → the same batches out, annotated."""

    name = "model"

    def __init__(
        self,
        models: dict[str, Modelled],
        ledger: Ledger,
        control: RunControl,
        inq: queue.Queue[Any],
        out: queue.Queue[Any],
    ) -> None:
        self.models = models
        self.ledger = ledger
        self.control = control
        self.inq = inq
        self.out = out

    def _one(self, batch: EventBatch) -> None:
        n = len(batch)
        t0 = time.perf_counter()
        try:
            for det, m in self.models.items():
                frames = batch.arrays[det]
                out = m.model(frames)
                out.check(n, tuple(frames.shape[1:]), f"{m.name} ({det})")
                batch.model_outputs[det] = out
        except BaseException as e:  # noqa: BLE001 - the model is user code
            self.ledger.dropped("model_failed", n)
            self.control.fail("model", e)
            return
        self.ledger.modelled(n, time.perf_counter() - t0)
        self.out.put(batch)  # blocks while the serializer is behind
