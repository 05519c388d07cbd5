"""Sparse photon lists: a photon-count frame sent as the (pixel index, count) pairs of its
nonzero pixels.

Why: at the occupancies of high-repetition-rate experiments (0.001-0.01 photons per pixel,
XPCS, weak diffuse scattering) most of a frame is zero and the lists are several times smaller
than the best-compressed frame (``bench/`` measures where the two cross). Made by one C++ pass
over each frame, on the serialize stage's threads, after the hit veto.

Layout in an HDF5 message (docs/formats.md): where the detector's frames would be a dataset
(``/entry_1/data_1/data`` by default) there is a **group** instead, with attributes
``lclstream_sparse = "lclstream-sparse-1"`` and ``frame_shape``, and three datasets:

* ``offsets`` uint64, events + 1: event ``e`` owns entries ``offsets[e]:offsets[e+1]``;
* ``index`` uint32: each entry's pixel as a flat index into ``frame_shape`` (C order),
  increasing within an event;
* ``values``: the counts, in the frames' dtype (uint16 or uint32).

``index`` and ``values`` are compressed with the stream's codec (one chunk each), so hdf5plugin
reads them. A consumer that indexes the path as a dataset fails loudly instead of reading zeros.
:func:`read_frames` gives frames from either layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lclstream import _core
from lclstream.errors import FormatError

__all__ = ["LAYOUT", "SparseFrames", "encode", "is_sparse_group", "read_frames", "read_group"]

LAYOUT = "lclstream-sparse-1"
_DTYPES = (np.dtype(np.uint16), np.dtype(np.uint32))


@dataclass
class SparseFrames:
    """The nonzero pixels of a batch of frames (see the module docstring)."""

    offsets: np.ndarray  # uint64, events + 1
    index: np.ndarray  # uint32
    values: np.ndarray  # uint16 / uint32
    frame_shape: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.values.dtype

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.index.nbytes + self.values.nbytes)

    @classmethod
    def empty(cls, dtype: Any, frame_shape: tuple[int, ...]) -> SparseFrames:
        return cls(
            np.zeros(1, np.uint64),
            np.zeros(0, np.uint32),
            np.zeros(0, np.dtype(dtype)),
            tuple(frame_shape),
        )

    def event(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        """(flat pixel indices, counts) of event ``e``."""
        a, b = int(self.offsets[e]), int(self.offsets[e + 1])
        return self.index[a:b], self.values[a:b]

    def to_dense(self, out: np.ndarray | None = None, threads: int = 0) -> np.ndarray:
        """The frames, (events, *frame_shape). The lists are checked first (bytes from the
        network): a FormatError names what is wrong."""
        shape = (len(self), *self.frame_shape)
        if out is None:
            out = np.empty(shape, self.dtype)
        elif out.shape != shape or out.dtype != self.dtype:
            raise ValueError(f"to_dense: out is {out.dtype}{list(out.shape)}, needs {shape}")
        try:
            _core.sparse_decode(
                np.ascontiguousarray(self.offsets, np.uint64),
                np.ascontiguousarray(self.index, np.uint32),
                np.ascontiguousarray(self.values),
                out,
                _pixels(self.frame_shape),
                threads,
            )
        except ValueError as exc:
            raise FormatError(f"sparse photon lists: {exc}") from exc
        return out


def _pixels(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def encode(frames: np.ndarray, threads: int = 0) -> SparseFrames:
    """The nonzero pixels of ``frames`` (events first; uint16 or uint32 photon counts)."""
    a = np.ascontiguousarray(frames)
    if a.dtype not in _DTYPES:
        raise ValueError(f"sparse lists hold photon counts (uint16/uint32), not {a.dtype}")
    shape = tuple(int(s) for s in a.shape[1:])
    offsets, index, values = _core.sparse_encode(a, _pixels(shape), threads)
    return SparseFrames(offsets, index, values, shape)


def is_sparse_group(obj: Any) -> bool:
    import h5py

    return isinstance(obj, h5py.Group) and _attr(obj, "lclstream_sparse") == LAYOUT


def _attr(obj: Any, key: str) -> str:
    v = obj.attrs.get(key, "")
    return v.decode() if isinstance(v, bytes) else str(v)


def read_group(group: Any, *, limit: int | None = None) -> SparseFrames:
    """The lists of one sparse group (h5py), checked: the attributes, the dtypes, ``limit``
    (bytes the dense frames may take), then every offset and index when decoded."""
    where = f"sparse group {group.name}"
    if _attr(group, "lclstream_sparse") != LAYOUT:
        raise FormatError(f"{where}: lclstream_sparse is not {LAYOUT!r}")
    try:
        shape = tuple(int(s) for s in np.asarray(group.attrs["frame_shape"]).ravel())
        parts = {k: group[k] for k in ("offsets", "index", "values")}
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{where}: {exc}") from exc
    if any(s <= 0 for s in shape):
        raise FormatError(f"{where}: frame_shape {list(shape)} is not a frame")
    if np.dtype(parts["values"].dtype) not in _DTYPES:
        raise FormatError(f"{where}: values are {parts['values'].dtype}, not uint16/uint32")
    for k, dt in (("offsets", np.uint64), ("index", np.uint32)):
        if parts[k].dtype != np.dtype(dt) or parts[k].ndim != 1:
            raise FormatError(
                f"{where}: {k} is {parts[k].dtype}{list(parts[k].shape)}, not 1-D {dt}"
            )
    n = int(parts["offsets"].shape[0]) - 1
    if n < 0:
        raise FormatError(f"{where}: offsets is empty (it has events + 1 entries)")
    dense = n * _pixels(shape) * np.dtype(parts["values"].dtype).itemsize
    if limit is not None and dense > limit:
        raise FormatError(f"{where}: {n} frames of {list(shape)} declare {dense} bytes, too many")
    return SparseFrames(
        np.asarray(parts["offsets"][()]),
        np.asarray(parts["index"][()]),
        np.asarray(parts["values"][()]),
        shape,
    )


def read_frames(f: Any, path: str = "/entry_1/data_1/data", threads: int = 0) -> np.ndarray:
    """The frames at ``path`` of an open HDF5 message or file, whether stored as frames or as
    sparse lists: what a consumer calls instead of ``f[path][()]``."""
    obj = f[path]
    if is_sparse_group(obj):
        return read_group(obj).to_dense(threads=threads)
    return np.asarray(obj[()])
