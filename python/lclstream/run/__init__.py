"""The running pipeline, in parts with one job each (docs/architecture.md draws them):

* :mod:`~lclstream.run.plan` — per-detector decisions made once (calibrator, reduction,
  output shape/dtype);
* :mod:`~lclstream.run.assembler` — events into pooled, contiguous batches;
* :mod:`~lclstream.run.ledger` — the only owner of counts, stage statistics, drop reasons;
* :mod:`~lclstream.run.stages` — the read, serialize and send threads;
* :mod:`~lclstream.run.pipeline` — one sender's run, and how it ended;
* :mod:`~lclstream.run.workers` — several producer processes into one stream;
* :mod:`~lclstream.run.receive` — the consumer side and its completeness verdict;
* :mod:`~lclstream.run.result` — what a run reports, and the error a failed run raises.
"""

from __future__ import annotations

from lclstream.run.ledger import Ledger, StageStats
from lclstream.run.pipeline import Pipeline, run_pipeline
from lclstream.run.receive import ReceiveResult, receive
from lclstream.run.result import PipelineError, PipelineFailed, PipelineResult
from lclstream.run.workers import run_workers

__all__ = [
    "Ledger",
    "Pipeline",
    "PipelineError",
    "PipelineFailed",
    "PipelineResult",
    "ReceiveResult",
    "StageStats",
    "receive",
    "run_pipeline",
    "run_workers",
]
