"""lclstream: stream science-ready X-ray detector data from LCLS to wherever it is analysed.

Events are read, calibrated, reduced, batched into pooled contiguous buffers, compressed
losslessly by the C++ core and streamed over ZeroMQ as HDF5 file images, DECTRIS SIMPLON
stream2 or raw batches. See DESIGN.md in the repository for the contracts.

The package namespace is lazy: ``import lclstream`` loads nothing heavy, and each public
name imports its module on first use. A consumer that only needs ``lclstream.transport``
or the CLI's ``--help`` does not pay for numpy, pydantic, h5py or the C++ core it does not
touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers and IDEs see them
    from lclstream import calib, codec, completeness, transport
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

    __version__: str

#: public name -> module that defines it ("" : the name is the submodule itself).
_LAZY: dict[str, str] = {
    "Batch": "lclstream.batch",
    "BufferPool": "lclstream.batch",
    "pool_for": "lclstream.batch",
    "LclstreamConfig": "lclstream.config",
    "example_config": "lclstream.config",
    "load_config": "lclstream.config",
    "CapacityError": "lclstream.errors",
    "ConfigError": "lclstream.errors",
    "CorruptDataError": "lclstream.errors",
    "FormatError": "lclstream.errors",
    "LclstreamError": "lclstream.errors",
    "SourceError": "lclstream.errors",
    "TransportError": "lclstream.errors",
    "calib": "",
    "codec": "",
    "completeness": "",
    "transport": "",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from lclstream import _core

        return _core.__version__
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'lclstream' has no attribute {name!r}")
    if where == "":
        return importlib.import_module(f"lclstream.{name}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "__version__"])


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
