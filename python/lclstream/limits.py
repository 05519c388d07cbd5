"""What a receiver accepts from the network: one typed set of limits, with safe defaults.

Why one place: bytes from the network are hostile. Every number a message declares (its
size once decoded, an array's rank and shape, a CBOR container's length or nesting, the
number of senders of its stream) is checked against these limits *before* any work or
allocation proportional to it, so a 16-byte message cannot cost a terabyte, a loop of
10^13 steps or a deep recursion. The parsers (``lclstream.formats``), the completeness
tracker and the receiver all take a :class:`Limits`; ``lclstream receive --limit KEY=VALUE``
changes one from the command line.

The defaults are sized for the largest LCLS detectors with room to spare (a Jungfrau 16M
float32 frame is 64 MiB; a batch of 10 such frames 640 MiB) while keeping one hostile
message well below a receiving node's memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lclstream.errors import ConfigError, FormatError

__all__ = ["DEFAULT_LIMITS", "Limits", "LimitExceeded"]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


class LimitExceeded(FormatError):
    """A message declares more than a :class:`Limits` allows (refused before any work)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one received message may declare or cost.

    Every field is a count or a byte size; each is checked before the work it would
    drive. ``max_expansion`` bounds decoded bytes relative to the message's own size
    (decompression bombs); the decoded size is refused when it exceeds
    ``max_decoded_bytes`` or ``max(expansion_floor, max_expansion * message bytes)``.
    """

    #: bytes of one received message (all its frames)
    max_message_bytes: int = 2 * GiB
    #: bytes one message may decode to (all its arrays)
    max_decoded_bytes: int = 4 * GiB
    #: bytes one compressed chunk (one event's frame) may decode to
    max_chunk_bytes: int = 512 * MiB
    #: decoded bytes per message byte (bitshuffle+LZ4 of an all-zero frame is ~250x)
    max_expansion: int = 4096
    #: decoded size always allowed, whatever the message size (small messages)
    expansion_floor: int = 64 * MiB
    #: dimensions of one array
    max_rank: int = 8
    #: elements along one dimension
    max_dim: int = 1 << 28
    #: nesting of CBOR arrays, maps and tags
    max_cbor_depth: int = 32
    #: items of one CBOR array or map
    max_cbor_length: int = 1 << 20
    #: bytes of one CBOR byte or text string
    max_cbor_string: int = 2 * GiB
    #: senders a stream may declare
    max_senders: int = 4096
    #: files one receiver writes (None: no bound)
    max_files: int | None = None
    #: messages from other streams, or unparseable, before the receiver gives up
    #: (None: never; ``--strict`` stops at the first)
    max_rejected: int | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None and f.name in ("max_files", "max_rejected"):
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"limits.{f.name}: must be a non-negative integer, got {v!r}")

    def decoded_limit(self, message_bytes: int) -> int:
        """The most bytes a message of ``message_bytes`` may decode to."""
        return min(
            self.max_decoded_bytes,
            max(self.expansion_floor, self.max_expansion * max(0, message_bytes)),
        )

    def check_message(self, nbytes: int, what: str = "message") -> None:
        if nbytes > self.max_message_bytes:
            raise LimitExceeded(
                f"{what}: {nbytes} bytes, more than max_message_bytes={self.max_message_bytes}"
            )

    def check_shape(self, shape: Iterable[Any], itemsize: int, what: str) -> tuple[int, ...]:
        """``shape`` as ints, checked (rank, each dimension, total bytes against
        ``max_decoded_bytes``) without computing anything proportional to it."""
        dims: list[int] = []
        for i, d in enumerate(shape):
            if i >= self.max_rank:
                raise LimitExceeded(f"{what}: rank above max_rank={self.max_rank}")
            if isinstance(d, bool) or not isinstance(d, int):
                try:
                    d = int(d)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise FormatError(f"{what}: dimension {d!r} is not an integer") from exc
            if d < 0 or d > self.max_dim:
                raise LimitExceeded(f"{what}: dimension {d} outside 0..max_dim={self.max_dim}")
            dims.append(d)
        total = max(1, int(itemsize))
        for d in dims:
            total *= d
        if total > self.max_decoded_bytes:
            raise LimitExceeded(
                f"{what}: {dims} declares {total} bytes, more than "
                f"max_decoded_bytes={self.max_decoded_bytes}"
            )
        return tuple(dims)

    def check_decoded(self, declared: int, message_bytes: int, what: str) -> None:
        """A message of ``message_bytes`` declaring ``declared`` decoded bytes."""
        lim = self.decoded_limit(message_bytes)
        if declared > lim:
            raise LimitExceeded(
                f"{what}: declares {declared} decoded bytes from a {message_bytes}-byte message, "
                f"more than {lim} (max_decoded_bytes / max_expansion)"
            )

    def check_chunk(self, declared: int, what: str) -> None:
        if declared > self.max_chunk_bytes:
            raise LimitExceeded(
                f"{what}: a chunk declares {declared} bytes, more than "
                f"max_chunk_bytes={self.max_chunk_bytes}"
            )

    def replace(self, **changes: Any) -> Limits:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(
                f"unknown limit(s) {', '.join(unknown)}; known: "
                + ", ".join(f.name for f in dataclasses.fields(self))
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_strings(cls, items: Iterable[str], base: Limits | None = None) -> Limits:
        """``["max_senders=16", "max_message_bytes=1GiB"]`` (the CLI's ``--limit``)."""
        changes: dict[str, Any] = {}
        for item in items:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"--limit {item!r}: expected KEY=VALUE")
            changes[key.strip()] = _parse_size(key.strip(), text.strip())
        return (base or cls()).replace(**changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_UNITS = {"": 1, "k": KiB, "kib": KiB, "m": MiB, "mib": MiB, "g": GiB, "gib": GiB, "t": GiB << 10}


def _parse_size(key: str, text: str) -> int | None:
    if text.lower() in ("none", "inf", "unlimited"):
        return None
    t = text.lower().replace("_", "")
    num = t.rstrip("kmgtib")
    unit = t[len(num) :]
    try:
        return int(num) * _UNITS[unit]
    except (KeyError, ValueError):
        raise ConfigError(
            f"--limit {key}={text!r}: expected an integer (units: KiB, MiB, GiB)"
        ) from None


#: The limits every parser uses unless given others.
DEFAULT_LIMITS = Limits()
