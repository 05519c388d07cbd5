"""Lossless chunk codecs: bitshuffle+LZ4/zstd, LZ4 and zstd in the HDF5 filters' own layouts.

Chunks are made by the C++ core (``_core.codec_*``) in exactly the bytes the HDF5 filters
write (32008 bitshuffle for ``bslz4``/``bszstd``, 32004 for ``lz4``, 32015 for ``zstd``;
layout in ``cpp/src/codec/FORMAT.md``), so a serializer stores them with a direct chunk write
and any reader with hdf5plugin, the ``bitshuffle`` package or DECTRIS' bslz4 decoders reads
them. Inputs are used in place (C-contiguous), the GIL is released while compressing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lclstream import _core

#: The C++ core's codec table (``kCodecTable`` in ``cpp/include/lclstream/codec.hpp``), by
#: name: the one source of codec names, HDF5 filter ids and options, chunk framing and
#: stream2 names. Everything below, and the formats, derive from it.
TABLE: dict[str, _core.CodecInfo] = {c.name: c for c in _core.codecs()}

CODECS: tuple[str, ...] = tuple(TABLE)

#: LCLStreamer's compression names for the codecs they share with us: configuration
#: vocabulary, not codec facts, so it lives here and not in the core. Values are TABLE names.
ALIASES: dict[str, str] = {
    "bitshuffle_with_lz4": "bslz4",
    "bitshuffle_with_zstd": "bszstd",
}
LCLSTREAMER_NAMES = ALIASES  # the name this table had first

#: HDF5 filter ids, as registered with The HDF Group.
FILTER_IDS: dict[str, int] = {n: c.hdf5_filter_id for n, c in TABLE.items()}

#: Decoded bytes a chunk may declare and one call may produce (the C++ ``DecodeLimits``).
DecodeLimits = _core.DecodeLimits

#: The limits :func:`decompress` applies when given none: 1 GiB per chunk and per call.
DEFAULT_LIMITS = _core.DecodeLimits()


def max_decoded_bytes(nbytes: int, codec: str = "bslz4") -> int:
    """The most bytes ``nbytes`` of a chunk can decode to by the format's own limits (LZ4
    255:1, zstd 32768:1): a declared size above it is refused as corrupt."""
    return int(_core.codec_max_decoded_bytes(resolve(codec), nbytes))


def resolve(codec: str) -> str:
    """The core's name for a codec name or LCLStreamer alias (LclstreamValueError if none)."""
    name = ALIASES.get(codec, codec)
    if name not in TABLE:
        raise _core.LclstreamValueError(
            f"unknown codec {codec!r}; expected one of {', '.join(CODECS)}"
        )
    return name


def info(codec: str) -> _core.CodecInfo:
    """The table's row for a codec name or alias."""
    return TABLE[resolve(codec)]


def from_hdf5_filter(filter_id: int, cd_values: Sequence[int]) -> str | None:
    """The codec whose chunks a dataset's filter decodes, from the filter id and the
    cd_values HDF5 stored (after set_local); None when none of ours (e.g. plain bitshuffle)."""
    for c in TABLE.values():
        if c.hdf5_filter_id != int(filter_id):
            continue
        slot = c.hdf5_compressor_slot
        if slot < 0 or (len(cd_values) > slot and int(cd_values[slot]) == c.hdf5_compressor):
            return c.name
    return None


def from_stream2(algorithm: str) -> str | None:
    """The codec DECTRIS stream2 calls ``algorithm`` in tag 56500 (None if none of ours)."""
    for c in TABLE.values():
        if c.stream2_name is not None and c.stream2_name == algorithm:
            return c.name
    return None


def _level(level: int | None) -> int:
    return 0 if level is None else int(level)


def compress(
    array: npt.ArrayLike,
    codec: str = "bslz4",
    *,
    level: int | None = None,
    threads: int = 0,
    out: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8]:
    """One chunk for the whole array, header included, in the HDF5 filter's layout.

    ``level`` is the zstd level (default 3; ignored by LZ4). ``threads`` shares the blocks of
    the chunk among threads (0 = all cores). Returns a uint8 array (a view into ``out`` when
    given, which must hold :func:`compress_bound` bytes).
    """
    a = np.asarray(array)
    if not a.flags.c_contiguous:
        raise _core.LclstreamValueError("compress: array must be C-contiguous")
    return _core.codec_compress(a, resolve(codec), _level(level), threads, 0, out)


def decompress(
    chunk: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    codec: str = "bslz4",
    *,
    dtype: npt.DTypeLike,
    shape: int | tuple[int, ...],
    out: npt.NDArray[np.generic] | None = None,
    threads: int = 1,
    limits: DecodeLimits | None = None,
) -> npt.NDArray[np.generic]:
    """Decodes one chunk into an array of ``dtype`` and ``shape`` (or into ``out``).

    Raises CorruptDataError when the chunk is truncated or corrupt, declares a size other
    than ``dtype`` x ``shape``, or claims more than its bytes can produce; CapacityError when
    the size is over ``limits`` (default :data:`DEFAULT_LIMITS`, 1 GiB). All of it is checked
    before anything is allocated or written: chunk bytes come from the network.
    """
    shp = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    return _core.codec_decompress(
        chunk, resolve(codec), np.dtype(dtype), list(shp), threads, out, limits
    )


def compress_bound(nbytes: int, elem_size: int, codec: str = "bslz4") -> int:
    """The largest chunk :func:`compress` can return for ``nbytes`` of ``elem_size`` elements."""
    return int(_core.codec_compress_bound(resolve(codec), nbytes, elem_size))


def compress_frames_bound(
    frames: int, frame_bytes: int, elem_size: int, codec: str = "bslz4"
) -> int:
    """Bytes a buffer (``out=`` or a BufferPool's buffers) needs for :func:`compress_frames`."""
    return int(_core.codec_compress_frames_bound(resolve(codec), frames, frame_bytes, elem_size))


def compress_frames_pooled(
    frames: npt.NDArray[np.generic],
    pool: _core.BufferPool,
    codec: str = "bslz4",
    *,
    level: int | None = None,
    threads: int = 0,
) -> _core.CompressedFrames:
    """:func:`compress_frames` into a buffer borrowed from ``pool`` (no allocation per batch).

    The result's ``buffer()`` / ``chunk(i)`` are views that keep the buffer borrowed; it goes
    back to the pool when they and the result are gone (or at ``release()``).
    """
    if not frames.flags.c_contiguous:
        raise _core.LclstreamValueError("compress_frames: array must be C-contiguous")
    return _core.codec_compress_frames_pooled(frames, pool, resolve(codec), _level(level), threads)


def compress_frames(
    frames: npt.NDArray[np.generic],
    codec: str = "bslz4",
    *,
    level: int | None = None,
    threads: int = 0,
    out: npt.NDArray[np.uint8] | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """One chunk per event of a stacked (events first) array, packed back to back.

    Returns ``(buffer, offsets, sizes)``: event ``i``'s chunk is
    ``buffer[offsets[i]:offsets[i] + sizes[i]]``, ready for ``write_direct_chunk``. Events
    are compressed in parallel on ``threads`` threads (0 = all cores).
    """
    if not frames.flags.c_contiguous:
        raise _core.LclstreamValueError("compress_frames: array must be C-contiguous")
    buf, offsets, sizes = _core.codec_compress_frames(
        frames, resolve(codec), _level(level), threads, 0, out
    )
    return buf, offsets, sizes


def decompress_frames(
    chunks: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    offsets: npt.ArrayLike,
    sizes: npt.ArrayLike,
    codec: str = "bslz4",
    *,
    dtype: npt.DTypeLike,
    frame_shape: tuple[int, ...],
    out: npt.NDArray[np.generic] | None = None,
    threads: int = 0,
    limits: DecodeLimits | None = None,
) -> npt.NDArray[np.generic]:
    """Inverse of :func:`compress_frames`: one array shaped ``(events, *frame_shape)``.

    Every chunk's header is checked (declared size, what its bytes can produce, ``limits``
    per chunk) and the whole output against ``limits.max_message_bytes`` before allocating.
    """
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    siz = np.ascontiguousarray(sizes, dtype=np.int64)
    shape = [len(off), *(int(s) for s in frame_shape)]
    return _core.codec_decompress_frames(
        chunks, off, siz, resolve(codec), np.dtype(dtype), shape, threads, out, limits
    )


def hdf5_filter(
    codec: str = "bslz4", dtype: npt.DTypeLike | None = None, level: int | None = None
) -> tuple[int, tuple[int, ...]]:
    """``(filter_id, cd_values)`` for h5py ``create_dataset(compression=, compression_opts=)``.

    The values are those hdf5plugin uses (``Bitshuffle(cname=...)``, ``LZ4()``, ``Zstd()``),
    so HDF5 records the filter that decodes the chunks we write directly. The element size is
    not part of them: HDF5 adds it (set_local) from the dataset's dtype, so ``dtype`` is only
    checked to be one the codecs handle.
    """
    if dtype is not None and np.dtype(dtype).kind not in "uif":
        raise _core.LclstreamValueError(f"hdf5_filter: unsupported dtype {np.dtype(dtype)}")
    fid, opts = _core.codec_hdf5_filter(resolve(codec), _level(level))
    return int(fid), tuple(int(v) for v in opts)


def bitshuffle(array: npt.NDArray[np.generic], block_size: int = 0) -> npt.NDArray[np.generic]:
    """bshuf_bitshuffle: bit-transposed blocks, the same bytes as the bitshuffle package."""
    return _core.bitshuffle(np.ascontiguousarray(array), block_size)


def bitunshuffle(array: npt.NDArray[np.generic], block_size: int = 0) -> npt.NDArray[np.generic]:
    """Inverse of :func:`bitshuffle`."""
    return _core.bitunshuffle(np.ascontiguousarray(array), block_size)


def default_block_size(elem_size: int) -> int:
    """bitshuffle's default block size in elements (bshuf_default_block_size)."""
    return int(_core.bitshuffle_default_block_size(elem_size))


__all__ = [
    "ALIASES",
    "CODECS",
    "DEFAULT_LIMITS",
    "FILTER_IDS",
    "DecodeLimits",
    "TABLE",
    "bitshuffle",
    "bitunshuffle",
    "compress",
    "compress_bound",
    "compress_frames",
    "compress_frames_bound",
    "compress_frames_pooled",
    "decompress",
    "decompress_frames",
    "default_block_size",
    "from_hdf5_filter",
    "from_stream2",
    "hdf5_filter",
    "info",
    "max_decoded_bytes",
    "resolve",
]
