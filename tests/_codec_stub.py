"""Test-only stand-in for lclstream.codec while that branch has not landed.

It builds 32008 chunks with the `bitshuffle` PyPI package (same bytes hdf5plugin and
dectris-compression decode). Used only when `import lclstream.codec` fails; shipped code
always uses the real module.
"""

from __future__ import annotations

import struct
import sys
import types
from typing import Any

import numpy as np


def _block_elems(itemsize: int) -> int:
    # bitshuffle's default: 8 KiB per block, a multiple of 8 elements, at least 128
    n = 8192 // itemsize
    return max(128, n - n % 8)


def compress(
    array: Any, codec: str = "bslz4", *, level: int | None = None, threads: int = 0
) -> bytes:
    import bitshuffle

    a = np.ascontiguousarray(array).reshape(-1)
    bs = _block_elems(a.itemsize)
    if codec == "bslz4":
        body = bitshuffle.compress_lz4(a, bs)
    elif codec == "bszstd":
        body = bitshuffle.compress_zstd(a, bs, 3 if level is None else level)
    else:
        raise ValueError(f"stub codec: {codec} not available")
    return struct.pack(">QI", a.nbytes, bs * a.itemsize) + body.tobytes()


def compress_frames(stacked: Any, codec: str = "bslz4", threads: int = 0) -> list[bytes]:
    return [compress(f, codec) for f in stacked]


def decompress(chunk: Any, codec: str = "bslz4", *, dtype: Any, shape: Any, out: Any = None) -> Any:
    import bitshuffle

    dt = np.dtype(dtype)
    b = bytes(chunk)
    if len(b) < 12:
        raise ValueError("chunk shorter than its 12-byte header")
    size, bsb = struct.unpack(">QI", b[:12])
    n = int(np.prod(shape))
    if size != n * dt.itemsize:
        raise ValueError(f"chunk holds {size} bytes, expected {n * dt.itemsize}")
    body = np.frombuffer(b, np.uint8, offset=12)
    fn = bitshuffle.decompress_lz4 if codec == "bslz4" else bitshuffle.decompress_zstd
    arr = fn(body, (n,), dt, bsb // dt.itemsize).reshape(shape)
    if out is not None:
        out[...] = arr
        return out
    return arr


def install() -> bool:
    """Put the stub in place of lclstream.codec if the real one is missing; True if stubbed."""
    try:
        import lclstream.codec  # noqa: F401

        return False
    except ImportError:
        mod = types.ModuleType("lclstream.codec")
        mod.compress = compress  # type: ignore[attr-defined]
        mod.compress_frames = compress_frames  # type: ignore[attr-defined]
        mod.decompress = decompress  # type: ignore[attr-defined]
        mod.STUB = True  # type: ignore[attr-defined]
        sys.modules["lclstream.codec"] = mod
        import lclstream

        lclstream.codec = mod  # type: ignore[attr-defined]
        return True
