"""Format adapters: serializers (EventBatch → messages) and parsers (messages → ParsedMessage).

Serializers are found by LCLStreamer-style type name (or short alias) in
:data:`lclstream.registry.SERIALIZERS`; :func:`parse` recognises any of our formats from
the message itself (HDF5 signature, stream2's self-described CBOR tag, LCLStreamer's
one-letter prefix, the raw batch's two frames). Format specs: README.md next to this file.
"""

from __future__ import annotations

from typing import Any

from lclstream.errors import FormatError
from lclstream.formats._common import COMPRESSION_NAMES, as_frames, compression, frame_bytes
from lclstream.formats.hdf5 import HDF5_SIGNATURE, HDF5BinarySerializer
from lclstream.formats.lclstreamer_simplon import LclstreamerSimplonSerializer
from lclstream.formats.raw import RawBatchSerializer
from lclstream.formats.simplon import SimplonBinarySerializer
from lclstream.limits import DEFAULT_LIMITS, Limits
from lclstream.protocols import ParsedMessage
from lclstream.registry import SERIALIZERS, format_names


def serializer_class(type_name: str) -> type:
    """The serializer class for a config ``type:`` (or a short ``--format`` name)."""
    cls: type = SERIALIZERS.get(type_name)
    return cls


def make_serializer(type_name: str, **options: Any) -> Any:
    """A serializer by name, its options validated by its config model (as in a config's
    ``data_serializer``)."""
    from lclstream.config import load_config

    spec = {"type": SERIALIZERS.canonical(type_name), **options}
    return load_config({"data_serializer": spec}).data_serializer.build()


def detect(message: Any) -> str:
    """Which format a received message is in: 'hdf5', 'simplon', 'lclstreamer_simplon', 'raw',
    'npz'."""
    frames = as_frames(message)
    if not frames:
        raise FormatError("empty message: no frames")
    if len(frames) == 2:
        from lclstream.formats.raw import is_raw

        if is_raw(frames):
            return "raw"
    if len(frames) != 1:
        raise FormatError(
            f"message with {len(frames)} frames is none of our formats "
            "(HDF5 and stream2 are single-frame, raw batches have 2)"
        )
    head = bytes(frame_bytes(frames[0])[:8])
    if head == HDF5_SIGNATURE:
        return "hdf5"
    if head[:4] == b"PK\x03\x04":
        return "npz"
    if head[:3] == b"\xd9\xd9\xf7":
        return "simplon"
    if head[:1] in (b"c", b"m") and len(head) > 1 and 0xA0 <= head[1] <= 0xBF:
        return "lclstreamer_simplon"
    raise FormatError(
        f"unrecognised message: {len(frame_bytes(frames[0]))} bytes starting {head!r} "
        "(not an HDF5 image, stream2 CBOR, LCLStreamer SIMPLON or raw batch)"
    )


def parse(
    message: Any,
    *,
    decode: bool = True,
    threads: int = 0,
    kind: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ParsedMessage:
    """Parse one received message of any of our formats (frames: list of bytes-likes).

    ``kind``: what :func:`detect` already said of this message (so it is not asked twice).
    ``limits``: what the message may declare (checked before any work it would drive).
    """
    if kind is None:
        kind = detect(message)
    frames = as_frames(message)
    if kind == "hdf5":
        from lclstream.formats import hdf5

        return hdf5.parse(frames, decode=decode, threads=threads, limits=limits)
    if kind == "raw":
        from lclstream.formats import raw

        return raw.parse(frames, decode=decode, threads=threads, limits=limits)
    if kind == "npz":
        from lclstream.formats import npz

        return npz.parse(frames, decode=decode, limits=limits)
    if kind == "simplon":
        from lclstream.formats import simplon

        return simplon.parse(frames, decode=decode, limits=limits)
    from lclstream.formats import lclstreamer_simplon

    return lclstreamer_simplon.parse(frames, decode=decode, limits=limits)


__all__ = [
    "COMPRESSION_NAMES",
    "SERIALIZERS",
    "HDF5BinarySerializer",
    "LclstreamerSimplonSerializer",
    "RawBatchSerializer",
    "SimplonBinarySerializer",
    "compression",
    "detect",
    "format_names",
    "make_serializer",
    "parse",
    "serializer_class",
]
