"""lclstream: stream science-ready X-ray detector data from LCLS to wherever it is analysed.

Events are read, calibrated, reduced, batched into pooled contiguous buffers, compressed
losslessly by the C++ core and streamed over ZeroMQ as HDF5 file images, DECTRIS SIMPLON
stream2 or raw batches. See DESIGN.md in the repository for the contracts.
"""

from __future__ import annotations

from lclstream import _core, calib, codec, completeness, transport
from lclstream.batch import Batch, BufferPool, pool_for
from lclstream.config import LclstreamConfig, example_config, load_config
from lclstream.errors import (
    CapacityError,
    ConfigError,
    CorruptDataError,
    FormatError,
    LclstreamError,
    SourceError,
    TransportError,
)

__version__: str = _core.__version__

__all__ = [
    "Batch",
    "BufferPool",
    "CapacityError",
    "ConfigError",
    "CorruptDataError",
    "FormatError",
    "LclstreamConfig",
    "LclstreamError",
    "SourceError",
    "TransportError",
    "__version__",
    "codec",
    "calib",
    "completeness",
    "example_config",
    "load_config",
    "pool_for",
    "transport",
]
