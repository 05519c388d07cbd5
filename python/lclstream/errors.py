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


class RejectedMessage(FormatError):
    """A received message the receiver refuses (unparseable, another stream's, forged or
    impossible); ``reason`` is a short category for counting (``corrupt``, ``foreign``,
    ``forged``, ``limit``, ``format``)."""

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason


class WriteError(LclstreamError, OSError):
    """A file could not be written (disk full, read-only folder, no permission); every file
    written before it is complete and valid. ``errno`` is the cause's."""

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


class SecurityWarning(UserWarning):
    """A configuration that works but does not protect what users may think it does
    (e.g. CURVE without an allow-list: encrypted, but any client may connect)."""


__all__ = [
    "RejectedMessage",
    "SecurityWarning",
    "WriteError",
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
