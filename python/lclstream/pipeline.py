"""The pipeline's public names, where users and LCLStreamer-style scripts look for them.

The machinery lives in :mod:`lclstream.run` (one module per part); this module only gathers
what a caller needs: ``Pipeline(config).run()``, ``run_pipeline``, ``run_workers``,
``receive`` and their results and errors.
"""

from __future__ import annotations

from lclstream.protocols import message_nbytes
from lclstream.reduce import Reduction
from lclstream.run import (
    Pipeline,
    PipelineError,
    PipelineFailed,
    PipelineResult,
    ReceiveResult,
    StageStats,
    receive,
    run_pipeline,
    run_workers,
)

__all__ = [
    "Pipeline",
    "PipelineError",
    "PipelineFailed",
    "PipelineResult",
    "ReceiveResult",
    "Reduction",
    "StageStats",
    "message_nbytes",
    "receive",
    "run_pipeline",
    "run_workers",
]
