"""HDF5 messages: one complete HDF5 file image per ZeroMQ message (the default format).

Why this shape: ``h5py.File(io.BytesIO(msg))`` is all a consumer needs (LCLStreamer's
consumers, OM, CrystFEL via files), while the expensive part, compression, happens in the
C++ codecs: each event is one chunk, compressed by :mod:`lclstream.codec` (HDF5 filter
layout) and placed with a direct chunk write, so HDF5 only lays out the file image in
memory (core driver, no backing store). The dataset carries the matching filter id and
options, so any reader with ``hdf5plugin`` decodes it.

Layout (defaults in docs/formats.md): CXI — detector frames at ``/entry_1/data_1/data``,
peaks under ``/entry_1/result_1``, per-event ids/timestamps under ``/LCLS``; stream facts
as root attributes. With ``fields`` (LCLStreamer's data source name → dataset path) exactly
the listed entries are written; a name mapped to ``None`` or ``""`` is left out.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import json
import os
import posixpath
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers filters 32008/32004/32015 for create and read)
import numpy as np
from h5py._objects import phil as _h5py_lock

from lclstream.codec import from_hdf5_filter
from lclstream.errors import ConfigError, FormatError
from lclstream.formats._common import (
    ChunkBuffer,
    Compression,
    compress_events,
    compression,
    declares_size,
    decompress_chunk,
    decompress_events,
    decompress_located,
    frame_bytes,
    parsed_message,
)
from lclstream.formats.base import SerializerBase, end_fields, totals_from_fields
from lclstream.formats.hdf5_heaps import Image, check_groups, check_vlen
from lclstream.limits import DEFAULT_LIMITS, LimitExceeded, Limits
from lclstream.protocols import (
    DetectorInfo,
    EventBatch,
    ParsedMessage,
    StreamInfo,
    StreamTotals,
    WireMessage,
)
from lclstream.sparse import LAYOUT as SPARSE_LAYOUT
from lclstream.sparse import SparseFrames, read_group

#: The first 8 bytes of every HDF5 file (superblock at offset 0 in our images).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Default dataset paths (CXI / psocake / OM conventions); see docs/formats.md.
DATA_PATH = "/entry_1/data_1/data"
RESULT_GROUP = "/entry_1/result_1"
EVENT_ID_PATH = "/LCLS/eventNumber"
TIMESTAMP_PATH = "/LCLS/timestamp"
MACHINE_TIME_PATH = "/LCLS/machineTime"
MACHINE_TIME_NS_PATH = "/LCLS/machineTimeNanoSeconds"
PHOTON_ENERGY_EV_PATH = "/LCLS/photon_energy_eV"
SOURCE_ENERGY_J_PATH = "/entry_1/instrument_1/source_1/energy"
DETECTOR_GROUP = "/entry_1/instrument_1/detector_1"
EV_TO_J = 1.602176634e-19

_EVENT_ID_NAMES = ("event_id", "event_ids")
_TIMESTAMP_NAMES = ("timestamp", "timestamps")
_ids = itertools.count()


def _default_array_path(name: str, ndim: int, detector_index: int) -> str:
    if ndim >= 3:
        return f"/entry_1/data_{detector_index}/data"
    return f"/LCLS/{name}"


class _Layout:
    """Where each entry of a batch goes; fixed at the first batch so END has the same datasets."""

    def __init__(self) -> None:
        self.arrays: dict[
            str, tuple[str, str, tuple[int, ...]]
        ] = {}  # name -> (path, dtype, shape)
        self.results: dict[str, tuple[str, str, tuple[int, ...]]] = {}
        #: detectors sent as sparse photon lists: name -> (group path, dtype, frame shape)
        self.sparse: dict[str, tuple[str, str, tuple[int, ...]]] = {}
        self.event_id: str | None = EVENT_ID_PATH
        self.timestamp: str | None = TIMESTAMP_PATH
        self.instrument = True  # CXI instrument metadata (default layout only)

    def to_json(self) -> str:
        return json.dumps(
            {
                "arrays": {k: v[0] for k, v in self.arrays.items()},
                "results": {k: v[0] for k, v in self.results.items()},
                "sparse": {k: v[0] for k, v in self.sparse.items()},
                "event_id": self.event_id,
                "timestamp": self.timestamp,
            }
        )


class HDF5BinarySerializer(SerializerBase):
    """Batches → HDF5 file images (see module docstring). One instance per sender.

    Options are LCLStreamer's (``compression``, ``compression_level``, ``fields``) plus
    ``threads`` (codec threads; 0 = all cores) and ``primary`` (the data source whose
    frames go to ``/entry_1/data_1/data``; default ``detector_data`` or the first
    multi-dimensional array).
    """

    type_name = "HDF5BinarySerializer"

    def __init__(
        self,
        compression: str | None = "bitshuffle_with_lz4",
        compression_level: int | None = None,
        fields: dict[str, str | None] | None = None,
        *,
        threads: int = 0,
        primary: str | None = None,
    ) -> None:
        super().__init__()
        self.compression: Compression = _resolve(compression, compression_level)
        self.fields: dict[str, str | None] = dict(fields or {})
        self.threads = int(threads)
        self.primary = primary
        self._layout: _Layout | None = None
        self._buffers: dict[str, ChunkBuffer] = {}
        self._fields_json: str | None = None
        self._detectors_json: str | None = None
        self._name = f"lclstream-{next(_ids)}".encode()

    # -- Serializer protocol -------------------------------------------------------------
    def start(self, info: StreamInfo) -> list[WireMessage]:
        """Remember the stream facts; HDF5 streams have no start message."""
        self._detectors_json = None
        if self.compression.h5_filter == "zfp":
            narrow = {
                n: d.dtype for n, d in info.detectors.items() if np.dtype(d.dtype).itemsize < 4
            }
            if narrow:
                name, dtype = next(iter(narrow.items()))
                raise ConfigError(
                    f"data_serializer.compression: zfp compresses 32- and 64-bit numbers only, "
                    f"and {name} is {dtype} (use bitshuffle_with_lz4 for raw frames, or a "
                    "float32 field such as raw.calib)"
                )
        return super().start(info)

    def serialize(self, batch: EventBatch) -> list[WireMessage]:
        layout = self._layout_for(batch)
        return [self._data([self._build(batch, layout, end=None)], len(batch))]

    def end(self, totals: StreamTotals) -> list[WireMessage]:
        """An image with the same datasets holding zero events, plus the sender's totals."""
        layout = self._layout or self._layout_from_info()
        empty = EventBatch(
            event_ids=np.zeros(0, np.uint64),
            timestamps=np.zeros(0, np.uint64),
            arrays={
                k: np.zeros((0, *shape), dtype) for k, (_, dtype, shape) in layout.arrays.items()
            },
            results={
                k: np.zeros((0, *shape), dtype) for k, (_, dtype, shape) in layout.results.items()
            },
            sparse={
                k: SparseFrames.empty(dtype, shape)
                for k, (_, dtype, shape) in layout.sparse.items()
            },
        )
        return [WireMessage("end", [self._build(empty, layout, end=totals)])]

    # -- layout -----------------------------------------------------------------------------
    def _path(self, name: str, default: str | None) -> str | None:
        if name in self.fields:
            p = self.fields[name]
            return p if p else None
        return default

    def _primary_name(self, arrays: dict[str, np.ndarray]) -> str | None:
        if self.primary is not None:
            return self.primary
        if "detector_data" in arrays:
            return "detector_data"
        for k, v in arrays.items():
            if v.ndim >= 3:
                return k
        return None

    def _layout_for(self, batch: EventBatch) -> _Layout:
        """Fix the layout at the first batch. With ``fields`` given, exactly those entries
        are written (LCLStreamer's rule, so its consumers see only what they asked for);
        without, everything goes to the CXI defaults plus instrument metadata."""
        if self._layout is not None:
            self._check(batch, self._layout)
            return self._layout
        layout = _Layout()
        explicit = bool(self.fields)
        layout.instrument = not explicit
        # sparse detectors take the place their frames would have had: a zero-stride
        # stand-in gives them the frames' dtype and shape without memory
        entries = dict(batch.arrays)
        for name, sp in batch.sparse.items():
            entries[name] = np.broadcast_to(np.zeros((), sp.dtype), (len(sp), *sp.frame_shape))
        primary = self._primary_name(entries)
        det_index = 2
        used: dict[str, str] = {}

        def claim(path: str, name: str) -> None:
            if path in used:
                raise FormatError(
                    f"HDF5BinarySerializer: fields map both {used[path]!r} and {name!r} to {path}"
                )
            used[path] = name

        for name, arr in entries.items():
            if name == primary:
                default: str | None = DATA_PATH
            else:
                default = _default_array_path(name, arr.ndim, det_index)
                if arr.ndim >= 3:
                    det_index += 1
            path = self._path(name, None if explicit else default)
            if path is None:
                continue
            claim(path, name)
            where = layout.sparse if name in batch.sparse else layout.arrays
            where[name] = (path, arr.dtype.str, tuple(arr.shape[1:]))
        for name, arr in batch.results.items():
            path = self._path(name, None if explicit else f"{RESULT_GROUP}/{name}")
            if path is not None:
                claim(path, name)
                layout.results[name] = (path, arr.dtype.str, tuple(arr.shape[1:]))
        # ids and timestamps, unless a data source of that name is written instead
        layout.event_id = layout.timestamp = None
        for names, default, attr in (
            (_EVENT_ID_NAMES, EVENT_ID_PATH, "event_id"),
            (_TIMESTAMP_NAMES, TIMESTAMP_PATH, "timestamp"),
        ):
            if any(n in layout.arrays for n in names):
                continue
            path = self._path(names[0], self._path(names[1], None if explicit else default))
            if path is not None:
                claim(path, names[0])
                setattr(layout, attr, path)
        self._layout = layout
        self._fields_json = layout.to_json()
        return layout

    def _layout_from_info(self) -> _Layout:
        """END before any batch: the datasets the detectors would have had."""
        arrays = {
            name: np.zeros((0, *d.frame_shape), d.dtype) for name, d in self.info.detectors.items()
        }
        batch = EventBatch(np.zeros(0, np.uint64), np.zeros(0, np.uint64), arrays)
        return self._layout_for(batch)

    @staticmethod
    def _check(batch: EventBatch, layout: _Layout) -> None:
        for name, (path, dtype, shape) in layout.arrays.items():
            arr = batch.arrays.get(name)
            if arr is None:
                raise FormatError(f"HDF5BinarySerializer: batch lacks {name!r} (for {path})")
            if arr.dtype.str != dtype or tuple(arr.shape[1:]) != shape:
                raise FormatError(
                    f"HDF5BinarySerializer: {name!r} changed from {dtype}{list(shape)} to "
                    f"{arr.dtype.str}{list(arr.shape[1:])} within a stream"
                )
        for name, (path, dtype, shape) in layout.sparse.items():
            sp = batch.sparse.get(name)
            if sp is None or sp.dtype.str != dtype or sp.frame_shape != shape:
                raise FormatError(
                    f"HDF5BinarySerializer: sparse lists of {name!r} ({dtype}{list(shape)}, "
                    f"for {path}) missing or changed within a stream"
                )

    # -- building ---------------------------------------------------------------------------
    def _root_attrs(self, w: _LowLevel, layout: _Layout, end: StreamTotals | None) -> None:
        info = self.info
        attrs: dict[str, Any] = {
            **self.stream_facts(),
            "sequence": self.sequence,
            "lclstream_fields": self._fields_json or layout.to_json(),
        }
        if info.detectors:
            if self._detectors_json is None:
                self._detectors_json = json.dumps({k: asdict(v) for k, v in info.detectors.items()})
            attrs["lclstream_detectors"] = self._detectors_json
        if end is not None:
            fields = end_fields(end)
            fields["drop_reasons"] = json.dumps(end.drop_reasons, sort_keys=True)
            attrs.update(end_of_stream=True, **fields)
        # Integers as int64 and flags as HDF5 booleans, as every version wrote them.
        w.attrs(
            {
                k: np.bool_(v) if isinstance(v, bool) else np.int64(v) if isinstance(v, int) else v
                for k, v in attrs.items()
            }
        )

    def _build(self, batch: EventBatch, layout: _Layout, end: StreamTotals | None) -> bytes:
        n = len(batch)
        comp = self.compression
        chunks: dict[str, list[Any]] = {}
        est = 65536
        for name, (_path, _dtype, shape) in layout.arrays.items():
            arr = batch.arrays[name]
            if len(arr) != n:
                raise FormatError(
                    f"HDF5BinarySerializer: {name!r} has {len(arr)} events, the batch has {n}"
                )
            if _is_frames(shape) and comp.direct:
                arr = np.ascontiguousarray(arr)
                if comp.codec is not None:
                    buf = self._buffers.setdefault(name, ChunkBuffer())
                    chunks[name] = compress_events(
                        arr, comp.codec, level=comp.level, threads=self.threads, buffer=buf
                    )
                else:
                    chunks[name] = [memoryview(a).cast("B") for a in arr] if n else []
                est += sum(len(memoryview(c).cast("B")) for c in chunks[name])
            else:
                est += arr.nbytes
        est += sum(a.nbytes for a in batch.results.values())
        est += sum(sp.nbytes for sp in batch.sparse.values())
        block = max(65536, (est * 5 // 4 + 65535) // 65536 * 65536)
        with h5py.File(self._name, "w", driver="core", backing_store=False, block_size=block) as f:
            w = _LowLevel(f)
            self._root_attrs(w, layout, end)
            for name, (path, dtype, shape) in layout.arrays.items():
                arr = batch.arrays[name]
                if name in chunks:
                    d = w.frames(path, n, shape, np.dtype(dtype), comp)
                    zeros = (0,) * len(shape)
                    for i, c in enumerate(chunks[name]):
                        d.write_direct_chunk((i, *zeros), c)
                elif _is_frames(shape):  # h5py's own filter (gzip): the slower path
                    w.paths.add(path)
                    dset = f.create_dataset(
                        path,
                        shape=(n, *shape),
                        dtype=np.dtype(dtype),
                        chunks=(1, *shape),
                        maxshape=(None, *shape),
                        **_filter_kwargs(comp),
                    )
                    if n:
                        dset[...] = arr
                else:
                    w.put(path, np.asarray(arr, dtype=np.dtype(dtype)))
            for name, (path, _dtype, _shape) in layout.sparse.items():
                self._sparse(w, path, batch.sparse[name], comp)
            for name, (path, dtype, shape) in layout.results.items():
                res = np.ascontiguousarray(batch.results[name], dtype=np.dtype(dtype))
                if shape and n and comp.direct and comp.codec is not None:
                    # CXI peak lists are padded to max_num_peaks per event: one compressed
                    # chunk per event keeps a peaks-only stream at its peaks' size
                    d = w.frames(path, n, shape, np.dtype(dtype), comp)
                    zeros = (0,) * len(shape)
                    for i, c in enumerate(compress_events(res, comp.codec, level=comp.level)):
                        d.write_direct_chunk((i, *zeros), c)
                else:
                    w.put(path, res)
            if layout.event_id:
                w.put(layout.event_id, np.asarray(batch.event_ids, np.uint64))
            if layout.timestamp:
                ts = np.asarray(batch.timestamps, np.uint64)
                w.put(layout.timestamp, ts)
                if layout.timestamp == TIMESTAMP_PATH:  # psocake's split seconds / nanoseconds
                    w.put(MACHINE_TIME_PATH, (ts // 10**9).astype(np.uint32))
                    w.put(MACHINE_TIME_NS_PATH, (ts % 10**9).astype(np.uint32))
            if layout.instrument:
                self._instrument(w, layout, n)
            f.flush()
            image: bytes = f.id.get_file_image()
        return image

    def _sparse(self, w: _LowLevel, path: str, sp: SparseFrames, comp: Compression) -> None:
        """A sparse group where the frames would be (layout in lclstream.sparse)."""
        w.put(f"{path}/offsets", np.asarray(sp.offsets, np.uint64))
        for part, arr in (("index", sp.index), ("values", sp.values)):
            if arr.size and comp.direct and comp.codec is not None:
                a = np.ascontiguousarray(arr)
                (chunk,) = compress_events(a[None], comp.codec, level=comp.level)
                w.list_chunk(f"{path}/{part}", len(a), a.dtype, comp).write_direct_chunk(
                    (0,), chunk
                )
            else:
                w.put(f"{path}/{part}", arr)
        g = w.f[path]
        g.attrs["lclstream_sparse"] = SPARSE_LAYOUT
        g.attrs["frame_shape"] = np.asarray(sp.frame_shape, np.int64)

    def _instrument(self, w: _LowLevel, layout: _Layout, n: int) -> None:
        """Per-event photon energy and the detector geometry, where the stream knows them."""
        det = self._primary_info(layout)
        if det is None:
            return
        if det.photon_energy_keV is not None:
            ev = np.full(n, det.photon_energy_keV * 1e3, np.float64)
            w.put(PHOTON_ENERGY_EV_PATH, ev, replace=False)
            w.put(SOURCE_ENERGY_J_PATH, ev * EV_TO_J, replace=False)
        g = DETECTOR_GROUP
        if det.detector_distance_m is not None:
            w.put(f"{g}/distance", np.float64(det.detector_distance_m), replace=False)
        if det.pixel_size_m is not None:
            w.put(f"{g}/x_pixel_size", np.float64(det.pixel_size_m), replace=False)
            w.put(f"{g}/y_pixel_size", np.float64(det.pixel_size_m), replace=False)
        if det.beam_center_px is not None:
            w.put(f"{g}/beam_center_x", np.float64(det.beam_center_px[0]), replace=False)
            w.put(f"{g}/beam_center_y", np.float64(det.beam_center_px[1]), replace=False)
        prim = next((p for p, _, _ in layout.arrays.values() if p == DATA_PATH), None)
        if prim is not None:
            w.soft_link(f"{g}/data", DATA_PATH)
        if det.serial and g in w.f:
            w.f[g].attrs["serial"] = det.serial

    def _primary_info(self, layout: _Layout) -> DetectorInfo | None:
        dets = self.info.detectors
        if not dets:
            return None
        for name, (path, _, _) in layout.arrays.items():
            if path == DATA_PATH and name in dets:
                return dets[name]
        return next(iter(dets.values()))


class _LowLevel:
    """Dataset creation through h5py's low-level API: ~4x less overhead per dataset than
    ``create_dataset`` (a message has a dozen small datasets; this is per message cost)."""

    _lcpl: Any = None

    def __init__(self, f: h5py.File) -> None:
        self.f = f
        self.paths: set[str] = set()
        if _LowLevel._lcpl is None:
            lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
            lcpl.set_create_intermediate_group(True)
            _LowLevel._lcpl = lcpl

    def _claim(self, path: str, replace: bool) -> bool:
        if path in self.paths:
            if replace:
                raise FormatError(f"HDF5BinarySerializer: two entries map to {path}")
            return False
        self.paths.add(path)
        return True

    def put(self, path: str, arr: Any, *, replace: bool = True) -> None:
        """A contiguous dataset holding ``arr`` (0-d arrays become scalar datasets)."""
        if not self._claim(path, replace):
            return
        a = np.ascontiguousarray(arr)
        space = h5py.h5s.create_simple(a.shape) if a.ndim else h5py.h5s.create(h5py.h5s.SCALAR)
        d = h5py.h5d.create(
            self.f.id, path.encode(), h5py.h5t.py_create(a.dtype), space, lcpl=self._lcpl
        )
        if a.size:
            d.write(h5py.h5s.ALL, h5py.h5s.ALL, a)

    def frames(
        self, path: str, n: int, shape: tuple[int, ...], dtype: np.dtype[Any], comp: Compression
    ) -> Any:
        """A chunked (1 event per chunk), extendible dataset with the codec's filter."""
        self._claim(path, True)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1, *shape))
        if comp.h5_filter is not None:
            opts = comp.h5_opts if isinstance(comp.h5_opts, tuple) else (comp.h5_opts,)
            dcpl.set_filter(int(comp.h5_filter), h5py.h5z.FLAG_OPTIONAL, opts)
        space = h5py.h5s.create_simple((n, *shape), (h5py.h5s.UNLIMITED, *shape))
        return h5py.h5d.create(
            self.f.id, path.encode(), h5py.h5t.py_create(dtype), space, dcpl=dcpl, lcpl=self._lcpl
        )

    def list_chunk(self, path: str, length: int, dtype: np.dtype[Any], comp: Compression) -> Any:
        """A 1-D dataset of ``length`` entries stored as one chunk with the codec's filter."""
        self._claim(path, True)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((length,))
        if comp.h5_filter is not None:
            opts = comp.h5_opts if isinstance(comp.h5_opts, tuple) else (comp.h5_opts,)
            dcpl.set_filter(int(comp.h5_filter), h5py.h5z.FLAG_OPTIONAL, opts)
        space = h5py.h5s.create_simple((length,))
        return h5py.h5d.create(
            self.f.id, path.encode(), h5py.h5t.py_create(dtype), space, dcpl=dcpl, lcpl=self._lcpl
        )

    _str_tid: Any = None

    def attrs(self, values: dict[str, Any]) -> None:
        """Root attributes: str as variable-length UTF-8 (as h5py writes them), numbers as
        their numpy type."""
        if _LowLevel._str_tid is None:
            _LowLevel._str_tid = h5py.h5t.py_create(h5py.string_dtype(), logical=True)
        scalar = h5py.h5s.create(h5py.h5s.SCALAR)
        fid = self.f.id
        for k, v in values.items():
            if isinstance(v, str):
                a = h5py.h5a.create(fid, k.encode(), self._str_tid, scalar)
                a.write(np.array(v, dtype=h5py.string_dtype()))
            else:
                arr = np.asarray(v)
                a = h5py.h5a.create(fid, k.encode(), h5py.h5t.py_create(arr.dtype), scalar)
                a.write(arr)

    def soft_link(self, path: str, target: str) -> None:
        if self._claim(path, False):
            self.f.id.links.create_soft(path.encode(), target.encode(), lcpl=self._lcpl)


def _is_frames(shape: tuple[int, ...]) -> bool:
    """Per-event arrays of at least 2 dimensions are stored one event per chunk, compressed."""
    return len(shape) >= 2


def _resolve(name: str | None, level: int | None) -> Compression:
    return compression(name, level)


def _filter_kwargs(comp: Compression) -> dict[str, Any]:
    if comp.h5_filter is None:
        return {}
    if comp.h5_filter == "zfp":
        return dict(hdf5plugin.Zfp())
    if comp.h5_filter == "gzip":
        return {"compression": "gzip", "compression_opts": comp.h5_opts, "shuffle": comp.h5_shuffle}
    return {"compression": comp.h5_filter, "compression_opts": comp.h5_opts}


# -- parsing ------------------------------------------------------------------------------
def is_hdf5(frame: Any) -> bool:
    return bytes(frame_bytes(frame)[:8]) == HDF5_SIGNATURE


def open_image(frame: Any) -> h5py.File:
    """Open a received HDF5 message read-only, in memory.

    Where h5py ships its own HDF5 (the PyPI wheels), the library reads the received buffer
    in place (``H5LTopen_file_image`` without copy or release): no copy of the image, and
    no fresh multi-megabyte allocation per message, whose page faults cost 2.6 ms for a
    2.4 MB message once glibc serves such blocks from mmap. Elsewhere the image is copied
    into HDF5's own buffer (``H5Pset_file_image``).
    """
    mv = frame_bytes(frame)
    if bytes(mv[:8]) != HDF5_SIGNATURE:
        raise FormatError(
            f"not an HDF5 message: {len(mv)} bytes starting {bytes(mv[:8])!r} "
            "(expected the HDF5 signature)"
        )
    in_place = _open_in_place()
    try:
        if in_place is not None:
            view = np.frombuffer(mv, np.uint8)
            # h5py's lock: HDF5 is not thread-safe, and h5py serialises every call with it
            with _h5py_lock:
                hid = in_place(view.ctypes.data, view.nbytes, _IMAGE_READ_IN_PLACE)
            if hid < 0:
                raise OSError("H5LTopen_file_image failed (not an HDF5 image)")
            f = h5py.File(h5py.h5f.FileID(hid))
            f._lclstream_image = view  # the library reads it until the file is closed
            return f
        fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        fapl.set_fapl_core(backing_store=False)
        fapl.set_file_image(mv)
        # a unique name: HDF5 shares an already-open file of the same name (it would hand
        # back the other image)
        fid = h5py.h5f.open(f"lclstream-rx-{next(_ids)}".encode(), h5py.h5f.ACC_RDONLY, fapl=fapl)
    except Exception as exc:
        raise FormatError(
            f"HDF5 message of {len(mv)} bytes is truncated or corrupt: {exc}"
        ) from exc
    f = h5py.File(fid)
    f._lclstream_image = np.frombuffer(mv, np.uint8)  # HDF5's copy has the same bytes
    return f


#: H5LT_FILE_IMAGE_DONT_COPY | H5LT_FILE_IMAGE_DONT_RELEASE, read-only
_IMAGE_READ_IN_PLACE = 0x2 | 0x4


@functools.cache
def _open_in_place() -> Any:
    """``H5LTopen_file_image`` of the HDF5 that h5py itself loaded, or None.

    Only the copy of HDF5 bundled with h5py's wheel (``h5py.libs``) is certain to be the
    instance h5py uses; with any other build the copying path is taken.
    ``LCLSTREAM_HDF5_IN_PLACE=0`` turns it off.
    """
    if os.environ.get("LCLSTREAM_HDF5_IN_PLACE", "1") == "0":
        return None
    libs = Path(h5py.__file__).resolve().parent.parent / "h5py.libs"
    found = sorted(libs.glob("libhdf5_hl-*.so*"))
    if len(found) != 1:
        return None
    try:
        fn = ctypes.CDLL(str(found[0])).H5LTopen_file_image
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int64  # hid_t
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    return fn


def _codec_of(dset: h5py.Dataset) -> str | None:
    """The lclstream.codec name that decodes this dataset's chunks, if we know the filter."""
    plist = dset.id.get_create_plist()
    nf = plist.get_nfilters()
    if nf != 1:
        return None
    fid, _flags, vals, _name = plist.get_filter(0)
    return from_hdf5_filter(fid, vals)


def read_dataset(
    dset: h5py.Dataset,
    threads: int = 0,
    *,
    limit: int | None = None,
    image: np.ndarray | None = None,
) -> np.ndarray:
    """Read a dataset; chunks of our codecs are decoded by lclstream.codec, others by h5py.

    ``limit`` caps the bytes a dataset may declare (checked before anything is allocated).
    ``image``: the bytes of the file (an in-memory message): chunks are then decoded where
    they lie in it, found by their file offsets (no copy of each chunk, no joined buffer).
    """
    try:
        nbytes = int(dset.size) * dset.dtype.itemsize
        if limit is not None and nbytes > limit:
            raise FormatError(
                f"HDF5 message: dataset {dset.name} declares {nbytes} bytes "
                f"{list(dset.shape)}, more than the message can hold (corrupt?)"
            )
        codec = _codec_of(dset) if dset.chunks is not None and dset.ndim >= 3 else None
        if codec is None or dset.chunks != (1, *dset.shape[1:]):
            return np.asarray(dset[()])
        zeros = (0,) * (dset.ndim - 1)
        frame_nbytes = nbytes // max(1, dset.shape[0])
        if image is not None:
            found = _chunks_in_image(dset, image, codec, frame_nbytes)
            if found is not None:
                offsets, sizes = found
                return decompress_located(
                    image, offsets, sizes, codec, dset.dtype, dset.shape[1:], threads
                )
        chunks = []
        for i in range(dset.shape[0]):
            mask, chunk = dset.id.read_direct_chunk((i, *zeros))
            if not mask and declares_size(codec):  # checked before decoding
                declared = int.from_bytes(bytes(chunk[:8]), "big")
                if declared != frame_nbytes:
                    raise FormatError(
                        f"HDF5 message: {dset.name} chunk {i} declares {declared} bytes, "
                        f"the frame has {frame_nbytes}"
                    )
            chunks.append((mask, chunk))
        if chunks and not any(m & 1 for m, _ in chunks):
            return decompress_events(
                [c for _, c in chunks], codec, dset.dtype, dset.shape[1:], threads
            )
        # A chunk whose mask says the one filter was skipped is stored as it is: copied,
        # never handed to HDF5's pipeline (a plug-in there meets the sender's parameters).
        out = np.empty(dset.shape, dset.dtype)
        for i, (mask, chunk) in enumerate(chunks):
            if mask & 1:
                if len(chunk) != frame_nbytes:
                    raise FormatError(
                        f"HDF5 message: {dset.name} chunk {i} is stored unfiltered in "
                        f"{len(chunk)} bytes, the frame has {frame_nbytes}"
                    )
                out[i] = np.frombuffer(chunk, dset.dtype).reshape(dset.shape[1:])
            else:
                decompress_chunk(chunk, codec, dset.dtype, dset.shape[1:], out=out[i])
        return out
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"HDF5 message: dataset {dset.name} cannot be read: {exc}") from exc


def _chunks_in_image(
    dset: h5py.Dataset, image: np.ndarray, codec: str, frame_nbytes: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each event's chunk lies in the message (file offsets, sizes), one per event;
    None when a chunk skipped its filter (the copying path handles those). Offsets come from
    the file: the decoder checks every chunk against the buffer before it reads one."""
    n = dset.shape[0]
    offsets = np.full(n, -1, np.int64)
    sizes = np.zeros(n, np.int64)
    unfiltered = False

    def one(info: Any) -> None:
        nonlocal unfiltered
        first, rest = info.chunk_offset[0], info.chunk_offset[1:]
        if any(rest) or not 0 <= first < n or offsets[first] >= 0:
            raise FormatError(
                f"HDF5 message: {dset.name} has a chunk at {tuple(info.chunk_offset)}, "
                f"not one per event of {n}"
            )
        unfiltered |= bool(info.filter_mask & 1)
        offsets[first], sizes[first] = info.byte_offset, info.size

    dset.id.chunk_iter(one)
    missing = np.flatnonzero(offsets < 0)
    if missing.size:
        raise FormatError(f"HDF5 message: {dset.name} has no chunk for event {int(missing[0])}")
    if unfiltered:
        return None
    if declares_size(codec):  # checked before decoding, as on the copying path
        for i in range(n):
            o = int(offsets[i])
            if o < 0 or o + 8 > image.size:
                raise FormatError(
                    f"HDF5 message: {dset.name} chunk {i} lies outside the {image.size}-byte "
                    "message"
                )
            declared = int.from_bytes(image[o : o + 8].tobytes(), "big")
            if declared != frame_nbytes:
                raise FormatError(
                    f"HDF5 message: {dset.name} chunk {i} declares {declared} bytes, "
                    f"the frame has {frame_nbytes}"
                )
    return offsets, sizes


def _attr_str(attrs: Any, key: str, default: str = "") -> str:
    v = attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def _info_from_attrs(attrs: Any) -> StreamInfo:
    dets: dict[str, DetectorInfo] = {}
    raw = attrs.get("lclstream_detectors")
    if raw is not None:
        for k, d in json.loads(raw).items():
            d["frame_shape"] = tuple(d["frame_shape"])
            if d.get("beam_center_px") is not None:
                d["beam_center_px"] = tuple(d["beam_center_px"])
            if d.get("module_layout") is not None:
                d["module_layout"] = tuple(d["module_layout"])
            dets[k] = DetectorInfo(**d)
    return StreamInfo(
        stream_id=_attr_str(attrs, "stream_id"),
        sender=int(attrs.get("sender", 0)),
        senders=int(attrs.get("senders", 1)),
        source_identifier=_attr_str(attrs, "source_identifier"),
        calibration=_attr_str(attrs, "calibration", "raw"),  # type: ignore[arg-type]
        detectors=dets,
    )


#: HDF5 filters a message may use: what lclstream writes (``formats._common.compression``:
#: deflate and shuffle for gzip, 32004 lz4, 32008 bitshuffle, 32013 zfp, 32015 zstd).
ALLOWED_FILTERS = frozenset({1, 2, 32004, 32008, 32013, 32015})


def _check_filter_values(name: str, filter_id: int, values: tuple[int, ...], itemsize: int) -> None:
    """Refuse filter parameters the filter plug-ins do not survive.

    Why: a plug-in trusts its ``cd_values`` (HDF5 fills them in from the dataset when the
    file is written): bitshuffle divides by the element size it is given, so a fuzzed 0
    killed the receiver with SIGFPE the moment a chunk went through HDF5's pipeline.
    """
    if filter_id == 32008:
        # (major, minor, element size, block size in elements, compression[, level])
        ok = (
            len(values) >= 5
            and values[2] == itemsize
            and values[3] % 8 == 0
            and values[3] <= 1 << 24
            and values[4] in (0, 2, 3)
        )
    elif filter_id == 32004:  # (block size in bytes[, ...]); 0 = the plug-in's default
        ok = len(values) >= 1 and 0 <= values[0] <= 1 << 30
    elif filter_id == 2:  # shuffle: (element size)
        ok = not values or values[0] == itemsize
    else:
        ok = True
    if not ok:
        raise FormatError(
            f"HDF5 message: {name} gives filter {filter_id} the parameters {list(values)}, "
            f"which do not fit its {itemsize}-byte elements (refused)"
        )


def check_image(f: h5py.File, image: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse an image that reaches outside itself or declares too much, before any read.

    Why: HDF5 follows what a file says. External storage (an H5D external file list) makes
    a read open a local file the sender names (or block forever on a FIFO), external links
    open other HDF5 files, virtual datasets map other files' data, unknown filters run
    plug-ins, and a 3 KB image may declare gigabytes of fill-value data or chunks far
    larger than the dataset. So every link is walked (without following any) and every
    dataset's creation properties and declared sizes are checked first, and every heap ID
    of variable-length data (``str`` attributes) must resolve within the image
    (:func:`lclstream.formats.hdf5_heaps.check_vlen`).
    """
    mv = frame_bytes(image)
    nbytes = len(mv)
    fid = f.id
    objects: list[tuple[str, Any]] = [("/", fid)]
    total = 0
    found: list[tuple[str, int]] = []

    def visit(name: bytes, info: Any) -> None:
        found.append((name.decode("utf-8", "replace"), int(info.type)))
        if len(found) > limits.max_cbor_length:
            raise LimitExceeded(f"HDF5 message: more than {limits.max_cbor_length} links")

    img = Image(f, mv)
    check_groups(img, f)  # before HDF5 walks them
    fid.links.visit(visit, info=True)
    hard = {"/" + name for name, ltype in found if ltype == h5py.h5l.TYPE_HARD}
    soft = {"/" + name for name, ltype in found if ltype == h5py.h5l.TYPE_SOFT}
    for name, ltype in found:
        if ltype == h5py.h5l.TYPE_SOFT:
            # resolved against the links the walk found, never by following it (a target
            # path through an external link would open another file)
            target = fid.links.get_val(name.encode()).decode("utf-8", "replace")
            if not target.startswith("/"):
                target = "/" + "/".join([*name.split("/")[:-1], target])
            target = posixpath.normpath(target)
            if target not in hard and target not in soft and target != "/":
                raise FormatError(f"HDF5 message: soft link {name} -> {target} points nowhere")
            continue
        if ltype != h5py.h5l.TYPE_HARD:
            what = "external link" if ltype == h5py.h5l.TYPE_EXTERNAL else "user-defined link"
            raise FormatError(
                f"HDF5 message: {what} {name} is refused (messages are self-contained)"
            )
        oid = h5py.h5o.open(fid, name.encode())
        objects.append((name, oid))
        if not isinstance(oid, h5py.h5d.DatasetID):
            continue
        dcpl = oid.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5py.h5d.VIRTUAL:
            raise FormatError(f"HDF5 message: {name} is a virtual dataset (refused)")
        if dcpl.get_external_count() > 0:
            raise FormatError(f"HDF5 message: {name} has external storage (refused)")
        itemsize = oid.get_type().get_size()
        for i in range(dcpl.get_nfilters()):
            fid_, _flags, values, _fname = dcpl.get_filter(i)
            if int(fid_) not in ALLOWED_FILTERS:
                raise FormatError(
                    f"HDF5 message: {name} uses filter {fid_}, not one lclstream writes "
                    f"({', '.join(map(str, sorted(ALLOWED_FILTERS)))})"
                )
            _check_filter_values(name, int(fid_), tuple(values), itemsize)
        shape = oid.shape
        limits.check_shape(shape, itemsize, f"HDF5 message: {name}")
        size = itemsize
        for d in shape:
            size *= int(d)
        total += size
        if layout == h5py.h5d.CHUNKED:
            chunk = itemsize
            for d in dcpl.get_chunk():
                chunk *= int(d)
            limits.check_chunk(chunk, f"HDF5 message: {name}")
            limits.check_decoded(chunk, nbytes, f"HDF5 message: {name} chunk")
    limits.check_decoded(total, nbytes, "HDF5 message")
    check_vlen(img, objects, limits)


def parse(
    frames: Any, *, decode: bool = True, threads: int = 0, limits: Limits = DEFAULT_LIMITS
) -> ParsedMessage:
    """One HDF5 message → ParsedMessage (data or end). Foreign images (e.g. LCLStreamer's)
    parse too: every dataset whose first axis is the event axis becomes an array.
    The image is checked first (:func:`check_image`): self-contained, allowed filters,
    declared sizes within ``limits``. Anything wrong with it is a FormatError saying what."""
    frame = frames[-1] if isinstance(frames, list) else frames
    nbytes = len(frame_bytes(frame))
    try:
        limits.check_message(nbytes, "HDF5 message")
        return _parse(frame, nbytes, decode, threads, limits)
    except FormatError:
        raise
    except (ImportError, MemoryError):
        raise
    except Exception as exc:
        raise FormatError(
            f"HDF5 message of {nbytes} bytes is corrupt: {type(exc).__name__}: {exc}"
        ) from exc


def _parse(
    frame: Any, nbytes: int, decode: bool, threads: int, limits: Limits = DEFAULT_LIMITS
) -> ParsedMessage:
    limit = limits.decoded_limit(nbytes)
    with open_image(frame) as f:
        check_image(f, frame, limits)
        attrs = f.attrs
        info = _info_from_attrs(attrs)
        try:
            fields = json.loads(attrs["lclstream_fields"]) if "lclstream_fields" in attrs else None
        except (ValueError, TypeError) as exc:
            raise FormatError(f"HDF5 message: bad lclstream_fields attribute: {exc}") from exc
        arrays: dict[str, np.ndarray] = {}
        results: dict[str, np.ndarray] = {}
        if fields is not None:
            for name, path in fields["arrays"].items():
                arrays[name] = _read(f, path, decode, threads, limit)
            for name, path in fields["results"].items():
                results[name] = _read(f, path, decode, threads, limit)
            for name, path in fields.get("sparse", {}).items():
                arrays[name] = _read_sparse(f, path, decode, threads, limit)
            ids_path, ts_path = fields.get("event_id"), fields.get("timestamp")
        else:
            ids_path, ts_path = None, None
            for path, ds in _walk(f):
                arrays[path] = (
                    _read(f, path, decode, threads, limit) if decode else np.empty((ds.shape[0], 0))
                )
        n = next(iter(arrays.values())).shape[0] if arrays else 0
        ids = (
            _read(f, ids_path, True, threads, limit) if ids_path else np.arange(n, dtype=np.uint64)
        )
        ts = _read(f, ts_path, True, threads, limit) if ts_path else np.zeros(n, np.uint64)
        batch = EventBatch(np.asarray(ids, np.uint64), np.asarray(ts, np.uint64), arrays, results)
        seq = int(attrs.get("sequence", -1))
        if bool(attrs.get("end_of_stream", False)):
            try:
                reasons = json.loads(_attr_str(attrs, "drop_reasons", "{}"))
            except ValueError as exc:
                raise FormatError(f"HDF5 END message: bad drop_reasons: {exc}") from exc
            totals = totals_from_fields(attrs, reasons)
            return parsed_message("end", info, seq, nbytes, batch=batch, totals=totals)
        return parsed_message("data", info, seq, nbytes, batch=batch)


def _open(f: h5py.File, path: str, kind: type, what: str) -> Any:
    """The object at ``path`` if it is a ``kind``; a FormatError naming it otherwise."""
    try:
        obj = f.get(path)
    except Exception as exc:
        raise FormatError(f"HDF5 message: {path} cannot be opened: {exc}") from exc
    if not isinstance(obj, kind):
        raise FormatError(f"HDF5 message: {what} {path} is missing")
    return obj


def _read(f: h5py.File, path: str, decode: bool, threads: int, limit: int) -> np.ndarray:
    obj = _open(f, path, h5py.Dataset, "dataset")
    if not decode and obj.ndim >= 3:
        return np.empty((obj.shape[0], 0), obj.dtype)
    return read_dataset(obj, threads, limit=limit, image=getattr(f, "_lclstream_image", None))


def _read_sparse(f: h5py.File, path: str, decode: bool, threads: int, limit: int) -> np.ndarray:
    """Sparse lists back to frames (the consumer sees frames whichever way they travelled)."""
    sp = read_group(_open(f, path, h5py.Group, "sparse group"), limit=limit)
    if not decode:
        return np.empty((len(sp), 0), sp.dtype)
    return sp.to_dense(threads=threads)


def _walk(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    out: list[tuple[str, h5py.Dataset]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 1:
            out.append(("/" + name, obj))

    f.visititems(visit)
    return out
