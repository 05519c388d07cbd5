"""Events from HDF5/CXI files, one event per index of each dataset's first axis.

Reads chunk-wise (``read_direct`` of ``chunk_events`` events into reused buffers, two of
them in turn), so a frame handed out stays valid while the next ``chunk_events`` events are
read: long enough for a pipeline that copies or calibrates each event into its batch.
With ``workers`` > 1, worker ``w`` reads the chunks ``w``, ``w + workers``, ... (together:
every event once, each chunk read by one worker). Reads files lclstream wrote (compressed
with HDF5 filter 32008: ``hdf5plugin`` is imported here) and CXI files from other tools;
default dataset ``/entry_1/data_1/data``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4/zstd filters with h5py)
import numpy as np

from lclstream.errors import CorruptDataError, SourceError
from lclstream.protocols import DetectorInfo, DropCounter, Event
from lclstream.sources.base import DataSource, IncompleteEvents, check_worker
from lclstream.sources.synthetic import T0_NS

EV_TO_J = 1.602176634e-19
SOURCE_ENERGY_J_PATH = "/entry_1/instrument_1/source_1/energy"
DETECTOR_GROUP = "/entry_1/instrument_1/detector_1"


def _direct_codec(ds: h5py.Dataset) -> str | None:
    """'bslz4'/'bszstd' when ``ds`` holds one event per chunk behind the bitshuffle filter
    (32008) alone, as lclstream writes it; then chunks are decoded by lclstream's codec."""
    if ds.chunks is None or ds.ndim < 2 or tuple(ds.chunks) != (1, *ds.shape[1:]):
        return None
    plist = ds.id.get_create_plist()
    if plist.get_nfilters() != 1:
        return None
    fid, _flags, cd, _name = plist.get_filter(0)
    if fid != 32008 or len(cd) < 5 or cd[2] != ds.dtype.itemsize:
        return None
    if ds.dtype.kind not in "uif":
        return None
    try:
        from lclstream import codec  # noqa: F401
    except ImportError:
        return None
    return {2: "bslz4", 3: "bszstd"}.get(int(cd[4]))


@dataclass
class DatasetSpec:
    """One ``Hdf5Dataset`` data source."""

    path: str = "/entry_1/data_1/data"
    kind: str = "generic"
    photon_energy_keV: float | None = None
    photon_energy_path: str | None = "/LCLS/photon_energy_eV"


def _list_datasets(f: h5py.File, limit: int = 8) -> str:
    names: list[str] = []

    def visit(name: str, obj: Any) -> Any:
        if isinstance(obj, h5py.Dataset):
            names.append("/" + name)
        return True if len(names) >= limit else None

    f.visititems(visit)
    return ", ".join(names) if names else "none"


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise SourceError(f"{path}: cannot open as HDF5 ({e})") from None


class Hdf5EventSource:
    """Events from several HDF5 files in order (``type: Hdf5EventSource``)."""

    def __init__(
        self,
        files: list[Path] | list[str],
        datasets: dict[str, DatasetSpec],
        *,
        others: dict[str, DataSource] | None = None,
        chunk_events: int = 8,
        first_event: int = 0,
        number_of_events: int | None = None,
        event_id_path: str | None = "/LCLS/eventNumber",
        timestamp_path: str | None = "/LCLS/timestamp",
        skip_incomplete: bool = False,
        totals: DropCounter | None = None,
        worker: int = 0,
        workers: int = 1,
    ) -> None:
        check_worker(worker, workers)
        self.worker = worker
        self.workers = workers
        if not files:
            raise SourceError("Hdf5EventSource: no files given")
        if not datasets:
            raise SourceError(
                "Hdf5EventSource: no Hdf5Dataset data source configured (e.g. "
                "detector_data: {type: Hdf5Dataset, path: /entry_1/data_1/data})"
            )
        self.files = [Path(f) for f in files]
        self.datasets = datasets
        self.others = others or {}
        self.chunk_events = int(chunk_events)
        self.first_event = int(first_event)
        self.number_of_events = number_of_events
        self.event_id_path = event_id_path
        self.timestamp_path = timestamp_path
        self.incomplete = IncompleteEvents(skip_incomplete, totals)
        #: A frame handed out stays valid while this many further events are read.
        self.views_valid_for = self.chunk_events
        self._shapes: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
        self._lengths: list[int] = []
        self._energy: dict[str, float | None] = {}
        primary = next(iter(datasets))
        self._geometry: dict[str, Any] = {}
        for path in self.files:
            with _open(path) as f:
                for name, spec in datasets.items():
                    if spec.path not in f or not isinstance(f[spec.path], h5py.Dataset):
                        raise SourceError(
                            f"{path}: no dataset {spec.path} for data source {name!r} "
                            f"(datasets there: {_list_datasets(f)})"
                        )
                    ds = f[spec.path]
                    if ds.ndim < 1:
                        raise SourceError(
                            f"{path}:{spec.path}: a scalar, not one entry per event "
                            "(the first axis must index events)"
                        )
                    frame = (tuple(ds.shape[1:]), ds.dtype)
                    first = self._shapes.setdefault(name, frame)
                    if first != frame:
                        raise SourceError(
                            f"{path}:{spec.path}: frames of shape {frame[0]} {frame[1]}, but "
                            f"{self.files[0]} has {first[0]} {first[1]} (frames must match "
                            "across files)"
                        )
                    if name not in self._energy:
                        self._energy[name] = self._photon_energy(f, spec)
                        if name == primary:
                            self._geometry = self._cxi_geometry(f)
                self._lengths.append(int(f[datasets[primary].path].shape[0]))
        self._bufs: dict[str, list[np.ndarray]] = {}
        self._chunk_scratch: np.ndarray | None = None

    @staticmethod
    def _photon_energy(f: h5py.File, spec: DatasetSpec) -> float | None:
        if spec.photon_energy_keV is not None:
            return spec.photon_energy_keV
        try:
            if spec.photon_energy_path and spec.photon_energy_path in f:
                v = np.asarray(f[spec.photon_energy_path]).reshape(-1)
                if v.size:
                    return float(v[0]) / 1000.0
            if SOURCE_ENERGY_J_PATH in f:
                v = np.asarray(f[SOURCE_ENERGY_J_PATH]).reshape(-1)
                if v.size:
                    return float(v[0]) / EV_TO_J / 1000.0
        except (TypeError, ValueError):
            return None
        return None

    @staticmethod
    def _cxi_geometry(f: h5py.File) -> dict[str, Any]:
        """Detector facts from the CXI detector group (lclstream writes them), if present."""
        out: dict[str, Any] = {}
        g = f.get(DETECTOR_GROUP)
        if not isinstance(g, h5py.Group):
            return out

        def num(key: str) -> float | None:
            d = g.get(key)
            try:
                return float(np.asarray(d).reshape(-1)[0]) if isinstance(d, h5py.Dataset) else None
            except (TypeError, ValueError, IndexError):
                return None

        out["detector_distance_m"] = num("distance")
        out["pixel_size_m"] = num("x_pixel_size")
        bx, by = num("beam_center_x"), num("beam_center_y")
        if bx is not None and by is not None:
            out["beam_center_px"] = (bx, by)
        serial = g.attrs.get("serial")
        if serial is not None:
            out["serial"] = serial.decode() if isinstance(serial, bytes) else str(serial)
        return {k: v for k, v in out.items() if v is not None}

    @property
    def total_events(self) -> int:
        n = max(0, sum(self._lengths) - self.first_event)
        return n if self.number_of_events is None else min(n, self.number_of_events)

    def info(self) -> dict[str, DetectorInfo]:
        out: dict[str, DetectorInfo] = {}
        primary = next(iter(self.datasets))
        for name, spec in self.datasets.items():
            shape, dtype = self._shapes[name]
            out[name] = DetectorInfo(
                name=name,
                kind=spec.kind,
                frame_shape=shape,
                dtype=dtype.name,
                photon_energy_keV=self._energy.get(name),
                **(self._geometry if name == primary else {}),
            )
        for name, ds in self.others.items():
            i = ds.info()
            if i is not None:
                out[name] = i
        return out

    def _buffers(self, name: str) -> list[np.ndarray]:
        bufs = self._bufs.get(name)
        if bufs is None:
            shape, dtype = self._shapes[name]
            bufs = [np.zeros((self.chunk_events, *shape), dtype) for _ in range(2)]
            self._bufs[name] = bufs
        return bufs

    def events(self) -> Iterator[Event]:
        remaining = self.total_events
        skip = self.first_event
        global_index = 0
        flip = 0
        chunk_no = -1
        for path, length in zip(self.files, self._lengths, strict=True):
            if remaining <= 0:
                break
            if skip >= length:
                skip -= length
                global_index += length
                continue
            with _open(path) as f:
                ids_ds = self._optional_1d(f, self.event_id_path, length)
                ts_ds = self._optional_1d(f, self.timestamp_path, length)
                start = skip
                skip = 0
                while start < length and remaining > 0:
                    n = min(self.chunk_events, length - start, remaining)
                    chunk_no += 1
                    if chunk_no % self.workers != self.worker:  # another worker's chunk
                        start += n
                        remaining -= n
                        continue
                    views: dict[str, np.ndarray] = {}
                    avail: dict[str, int] = {}
                    for name, spec in self.datasets.items():
                        ds = f[spec.path]
                        buf = self._buffers(name)[flip]
                        m = max(0, min(n, int(ds.shape[0]) - start))
                        if m:
                            try:
                                codec_name = _direct_codec(ds)
                                if codec_name is not None:
                                    self._read_chunks(ds, codec_name, buf, start, m)
                                else:
                                    ds.read_direct(
                                        buf,
                                        source_sel=np.s_[start : start + m],
                                        dest_sel=np.s_[0:m],
                                    )
                            except (OSError, ValueError, CorruptDataError) as e:
                                raise SourceError(
                                    f"{path}:{spec.path}: cannot read events {start}..."
                                    f"{start + m - 1} ({e})"
                                ) from None
                        views[name] = buf
                        avail[name] = m
                    ids = (
                        np.asarray(ids_ds[start : start + n], np.uint64)
                        if ids_ds is not None
                        else None
                    )
                    ts = (
                        np.asarray(ts_ds[start : start + n], np.uint64)
                        if ts_ds is not None
                        else None
                    )
                    for j in range(n):
                        index = global_index + start + j
                        data: dict[str, Any] = {
                            name: (views[name][j] if j < avail[name] else None)
                            for name in self.datasets
                        }
                        for name, ds_other in self.others.items():
                            data[name] = ds_other.get_data(index)
                        event = Event(
                            event_id=int(ids[j]) if ids is not None else index,
                            timestamp=int(ts[j])
                            if ts is not None
                            else T0_NS + int(round(index * 1e9 / 120.0)),
                            data=data,
                        )
                        if self.incomplete.accept(event):
                            yield event
                    start += n
                    remaining -= n
                    flip ^= 1
            global_index += length

    def _read_chunks(
        self, ds: h5py.Dataset, codec_name: str, buf: np.ndarray, start: int, m: int
    ) -> None:
        """One event per chunk, bitshuffle-compressed: read each chunk's bytes as stored and
        decode them with lclstream's codec straight into ``buf`` (faster than the filter)."""
        from lclstream import codec

        frame = buf.shape[1:]
        need = codec.compress_bound(int(buf[0].nbytes), buf.dtype.itemsize, codec_name)
        if self._chunk_scratch is None or self._chunk_scratch.size < need:
            self._chunk_scratch = np.empty(need, np.uint8)
        scratch = self._chunk_scratch
        zeros = (0,) * len(frame)
        for j in range(m):
            mask, chunk = ds.id.read_direct_chunk((start + j, *zeros), out=scratch)
            if mask & 1:  # stored without the filter (HDF5 does so when it would not shrink)
                buf[j] = np.frombuffer(chunk, buf.dtype).reshape(frame)
            else:
                codec.decompress(chunk, codec_name, dtype=buf.dtype, shape=frame, out=buf[j])

    @staticmethod
    def _optional_1d(f: h5py.File, path: str | None, length: int) -> h5py.Dataset | None:
        if not path or path not in f:
            return None
        ds = f[path]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.shape[0] < length:
            return None
        return ds

    def constants(self, name: str) -> dict[str, Any]:
        """HDF5/CXI files carry no calibration constants: a config gives a constants file."""
        raise SourceError(
            f"data source {name!r}: HDF5 files carry no calibration constants "
            "(processing_pipeline.calibration.<name>.constants: give a constants file)"
        )

    def close(self) -> None:
        self._bufs.clear()
        for ds in self.others.values():
            ds.close()
