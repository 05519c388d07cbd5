"""Exception types of lclstream.

Library code raises these instead of exiting, so that a caller (the CLI, the REST job
runner, a user's script) decides what an error means for it. Each core error is also the
builtin a caller would naturally catch: a bad shape is a ``ValueError``, a deadline a
``TimeoutError``.
"""

from __future__ import annotations

from lclstream._core import (
    CapacityError,
    CorruptDataError,
    LclstreamError,
    LclstreamTimeoutError,
    LclstreamValueError,
    TransportError,
)


class ConfigError(LclstreamValueError):
    """A configuration file or mapping is invalid; the message names every bad key path."""


class SourceError(LclstreamError):
    """An event source cannot be opened or read (missing file, bad dataset path...)."""


class FormatError(CorruptDataError):
    """A message does not follow the format it claims (HDF5 image, stream2, raw batch)."""


__all__ = [
    "CapacityError",
    "ConfigError",
    "CorruptDataError",
    "FormatError",
    "LclstreamError",
    "LclstreamTimeoutError",
    "LclstreamValueError",
    "SourceError",
    "TransportError",
]
