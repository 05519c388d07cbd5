"""Pieces shared by the format adapters: compression names, the codec, frame helpers.

Compression is named as in LCLStreamer's configuration (``bitshuffle_with_lz4``, ...). Each
name maps to a chunk codec of :mod:`lclstream.codec` (the C++ compressors) and to the HDF5
filter that decodes those chunks, so that a reader with ``hdf5plugin`` opens our files as if
HDF5 itself had compressed them. Codec names, filter ids and options are the C++ codec
table's (``lclstream.codec.TABLE``); only the HDF5-only choices are named here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from lclstream import codec as _codec
from lclstream.errors import ConfigError, FormatError
from lclstream.protocols import EventBatch, ParsedMessage, StreamInfo, StreamTotals


@dataclass(frozen=True)
class Compression:
    """One compression choice: how chunks are made and how HDF5 is told to decode them.

    ``codec`` is the lclstream.codec name (None: chunks are the raw bytes, or HDF5's own
    filter does the work, as for gzip). ``h5_filter``/``h5_opts`` are what the dataset is
    created with (user-level options, before the filter's set_local adds its own).
    """

    name: str  # LCLStreamer's name, normalised
    codec: str | None
    level: int | None
    h5_filter: int | str | None
    h5_opts: tuple[int, ...] | int | None
    h5_shuffle: bool = False

    @property
    def direct(self) -> bool:
        """Chunks are made by us and written with direct chunk writes (no HDF5 filter work)."""
        return self.codec is not None or self.h5_filter is None


#: Choices HDF5 itself (h5py's filters) compresses, by LCLStreamer's names: no codec of ours.
_HDF5_ONLY = ("gzip", "gzip_with_shuffle", "zfp")


def _compression_names() -> dict[str, str]:
    """Accepted name -> normalised name. Codec-backed names come from the C++ codec table
    (each codec by its own name and by LCLStreamer's alias, normalised to the alias)."""
    alias_of = {c: a for a, c in _codec.ALIASES.items()}
    names: dict[str, str] = {}
    for c in _codec.CODECS:
        names[c] = names[alias_of.get(c, c)] = alias_of.get(c, c)
    names.update({h: h for h in _HDF5_ONLY})
    names.update({"null": "none", "none": "none"})
    return names


_ALIASES = _compression_names()

COMPRESSION_NAMES = sorted(set(_ALIASES) | {"None"})


def compression(name: str | None, level: int | None = None) -> Compression:
    """Resolve an LCLStreamer compression name (or None) to a :class:`Compression`."""
    key = "none" if name is None else _ALIASES.get(str(name).lower())
    if key is None:
        allowed = dict.fromkeys(_ALIASES.values())
        raise ConfigError(
            f"data_serializer.compression: {name!r} is not supported; allowed: "
            + ", ".join("null" if k == "none" else k for k in allowed)
        )
    codec = _codec.ALIASES.get(key, key)
    if codec in _codec.TABLE:  # one of the core's codecs: filter and options from its table
        default = _codec.TABLE[codec].default_level  # 0: the codec takes no level
        lvl = None if not default else default if level is None else int(level)
        fid, opts = _codec.hdf5_filter(codec, level=lvl)
        return Compression(key, codec, lvl, fid, opts)
    if key in ("gzip", "gzip_with_shuffle"):
        lvl = 4 if level is None else int(level)
        return Compression(key, None, lvl, "gzip", lvl, h5_shuffle=key == "gzip_with_shuffle")
    if key == "zfp":  # hdf5plugin's Zfp() as LCLStreamer uses it: h5py's filter path
        return Compression(key, None, None, "zfp", None)
    return Compression("none", None, None, None, None)


def declares_size(codec: str) -> bool:
    """Whether ``codec``'s chunks start with their uncompressed size (8 bytes, big-endian),
    which a parser checks before decoding; unknown names: True (the decoder refuses them)."""
    row = _codec.TABLE.get(codec)
    return True if row is None else row.size_header


def codec_module() -> Any:
    """lclstream.codec (imported with this module: the compression names come from its table)."""
    return _codec


class ChunkBuffer:
    """A reusable output buffer for a batch's chunks (one per serializer).

    Fresh pages fault in at ~0.5 GB/s on these machines, so the codec writes every batch's
    chunks into the same warm buffer; serializers copy the chunks into their message before
    the next batch, so reusing it is safe.
    """

    def __init__(self) -> None:
        self.buf: np.ndarray | None = None

    def get(self, nbytes: int) -> np.ndarray:
        if self.buf is None or self.buf.nbytes < nbytes:
            self.buf = np.empty(nbytes, np.uint8)
            self.buf[::4096] = 0  # touch once
        return self.buf


def compress_events(
    data: np.ndarray,
    codec: str,
    *,
    level: int | None = None,
    threads: int = 0,
    buffer: ChunkBuffer | None = None,
) -> list[Any]:
    """One chunk per event (events first), in the HDF5 filter layout of ``codec``.

    Chunks are views of one packed buffer (``buffer``'s when given): use them before the
    next call with the same buffer.
    """
    mod = codec_module()
    if len(data) == 0:
        return []
    out = None
    if buffer is not None:
        frame_bytes_ = data[0].nbytes
        bound = int(mod.compress_bound(frame_bytes_, data.dtype.itemsize, codec))
        out = buffer.get(bound * len(data))
    buf, offsets, sizes = mod.compress_frames(data, codec, level=level, threads=threads, out=out)
    return [buf[int(o) : int(o) + int(s)] for o, s in zip(offsets, sizes, strict=True)]


def decompress_chunk(
    chunk: Any,
    codec: str,
    dtype: np.dtype[Any],
    shape: Sequence[int],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode one chunk; any codec failure becomes a FormatError naming the codec."""
    mod = codec_module()
    try:
        arr: np.ndarray = mod.decompress(chunk, codec, dtype=dtype, shape=tuple(shape), out=out)
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"{codec} chunk of {len(chunk)} bytes cannot be decoded: {exc}") from exc
    return arr


def decompress_events(
    chunks: Sequence[Any],
    codec: str,
    dtype: np.dtype[Any],
    frame_shape: Sequence[int],
    threads: int = 0,
) -> np.ndarray:
    """Decode one chunk per event into one (events, *frame_shape) array, events in parallel."""
    mod = codec_module()
    views = [frame_bytes(c) for c in chunks]
    if not hasattr(mod, "decompress_frames"):
        out = np.empty((len(views), *frame_shape), dtype)
        for i, v in enumerate(views):
            decompress_chunk(v, codec, dtype, frame_shape, out=out[i])
        return out
    sizes = np.array([len(v) for v in views], np.int64)
    offsets = np.zeros(len(views), np.int64)
    np.cumsum(sizes[:-1], out=offsets[1:])
    packed = np.frombuffer(b"".join(views), np.uint8)
    return decompress_located(packed, offsets, sizes, codec, dtype, frame_shape, threads)


def decompress_located(
    buffer: np.ndarray,
    offsets: np.ndarray,
    sizes: np.ndarray,
    codec: str,
    dtype: np.dtype[Any],
    frame_shape: Sequence[int],
    threads: int = 0,
) -> np.ndarray:
    """Decode one chunk per event where it lies in ``buffer`` (``offsets``/``sizes``, as a
    message's index says: bounds are checked by the decoder before any chunk is read)."""
    mod = codec_module()
    try:
        arr: np.ndarray = mod.decompress_frames(
            buffer, offsets, sizes, codec, dtype=dtype, frame_shape=tuple(frame_shape),
            threads=threads,
        )  # fmt: skip
    except Exception as exc:
        raise FormatError(
            f"{codec} chunks of {len(offsets)} events cannot be decoded: {exc}"
        ) from exc
    return arr


def frame_bytes(frame: Any) -> memoryview:
    """A flat byte view of one received frame (bytes, memoryview, zmq.Frame, numpy array)."""
    if hasattr(frame, "buffer") and not isinstance(frame, (bytes, bytearray, memoryview)):
        frame = frame.buffer  # zmq.Frame
    mv = memoryview(frame)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    return mv


def as_frames(message: Any) -> list[Any]:
    """Accept one frame or a list of frames (a Message)."""
    if isinstance(message, (bytes, bytearray, memoryview, np.ndarray)) or hasattr(
        message, "buffer"
    ):
        return [message]
    return list(message)


_F = TypeVar("_F", bound=Callable[..., Any])

#: A message may declare at most this many times its own size once decoded (corrupt shapes,
#: decompression bombs); bitshuffle+LZ4 of an all-zero frame is ~250x.
MAX_EXPANSION = 4096


def expansion_limit(nbytes: int) -> int:
    return max(64 << 20, MAX_EXPANSION * nbytes)


#: numpy kinds a message may name: booleans, integers, floats, complex (no objects, strings,
#: structured or subarray dtypes, whose meaning or size a sender should not choose).
#: numbers, and fixed-length bytes (text data sources: run info, geometry): no objects, no
#: structured or sub-array dtypes
_SAFE_KINDS = frozenset("biufcS")


def safe_dtype(spec: Any, what: str) -> np.dtype[Any]:
    """A dtype named by a message (``"<u2"``, ``"uint16"``), refused unless plain numeric."""
    if not isinstance(spec, str) or len(spec) > 16:
        raise FormatError(f"{what}: dtype {spec!r:.40} is not a short dtype name")
    try:
        dt = np.dtype(spec)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{what}: dtype {spec!r} is not a numpy dtype") from exc
    if dt.kind not in _SAFE_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise FormatError(f"{what}: dtype {spec!r} is not a plain numeric or bytes dtype")
    return dt


def guarded(what: str) -> Callable[[_F], _F]:
    """Make a parser raise only FormatError (with ``what`` and the size) for bad input."""

    def deco(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(message: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(message, *args, **kwargs)
            except (FormatError, ImportError, MemoryError):
                raise
            except Exception as exc:
                try:
                    n = sum(len(frame_bytes(f)) for f in as_frames(message))
                except Exception:
                    n = -1
                raise FormatError(
                    f"{what}: {n}-byte message is corrupt: {type(exc).__name__}: {exc}"
                ) from exc

        return wrapper  # type: ignore[return-value]

    return deco


def parsed_message(
    kind: Literal["start", "data", "end"],
    info: StreamInfo,
    seq: int,
    nbytes: int,
    *,
    batch: EventBatch | None = None,
    totals: StreamTotals | None = None,
) -> ParsedMessage:
    """A ParsedMessage whose stream id and sender come from ``info``."""
    return ParsedMessage(
        kind,
        info.stream_id,
        info.sender,
        info.senders,
        seq,
        batch=batch,
        totals=totals,
        info=info,
        nbytes=nbytes,
    )
