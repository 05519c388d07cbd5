"""LCLS-II runs through psana2: ``Psana2EventSource`` and its data sources, as LCLStreamer's
configs name them.

Why it looks the way it does:

* The vocabulary is LCLStreamer's (``source_identifier`` keys ``exp= run= files= dir=
  max_events= live ffb``; ``Psana2DetectorInterface`` with ``psana_name`` and dotted
  ``psana_fields``; ``Psana2Timestamp``; ``Psana2RunInfo``), so its configs run unchanged.
* ``exp=,run=`` is psana's MPI path. psana asks the LCLS logbook web service for the run's
  file list first and fails when that host cannot be reached, even with ``dir=``. With
  ``dir=`` (and not ``live``) an unreachable logbook here means "use the files on disk",
  which is psana's own fallback for runs the logbook does not know; psana's files are not
  changed, only that one lookup is wrapped while the DataSource is built.
* Under ``mpirun`` psana gives ranks roles (rank 0 reads small data, ``PS_EB_NODES`` ranks
  build events, the rest yield them). :func:`psana2_roles` computes them with psana's rules
  before psana starts, so only the ranks that yield events become senders, each knowing the
  stream's sender count; the source checks the role psana actually gave it.
* An event's ``event_id`` is its LCLS timestamp (psana's ``evt.timestamp``: seconds since
  1990 in the upper 32 bits, nanoseconds in the lower): it identifies the event across ranks
  and files. ``timestamp`` is the same instant in nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lclstream.errors import ConfigError, SourceError
from lclstream.protocols import DetectorInfo, DropCounter, Event
from lclstream.sources.base import IncompleteEvents, check_worker

if TYPE_CHECKING:
    from lclstream.config import LclstreamConfig

__all__ = [
    "EPICS_EPOCH_UNIX_S",
    "Psana2EventSource",
    "Psana2Roles",
    "lcls_to_unix_ns",
    "open_psana2",
    "parse_psana2_identifier",
    "psana2_roles",
]

#: 1990-01-01 (the EPICS epoch LCLS timestamps count from) in Unix seconds.
EPICS_EPOCH_UNIX_S = 631_152_000
#: Where ``ffb`` points psana (LCLS' fast-feedback file system), as LCLStreamer does.
FFB_DATA_ROOT = "/sdf/data/lcls/drpsrcf/ffb"
_KEYS = ("exp", "run", "files", "dir", "max_events", "live", "ffb")


def lcls_to_unix_ns(ts: int) -> int:
    """An LCLS-II timestamp (EPICS seconds << 32 | ns) in nanoseconds since the Unix epoch."""
    return ((int(ts) >> 32) + EPICS_EPOCH_UNIX_S) * 1_000_000_000 + (int(ts) & 0xFFFFFFFF)


def parse_psana2_identifier(text: str) -> dict[str, Any]:
    """``exp=mfx100852324,run=355,dir=/path`` -> psana ``DataSource`` keywords (plus ``ffb``).

    Raises ConfigError naming the part it cannot use (LCLStreamer exits on the same input).
    """
    out: dict[str, Any] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        where = f"source_identifier: {item!r}"
        if key in ("shmem", "drp"):
            raise ConfigError(f"{where}: psana2 {key} mode is not supported by lclstream")
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown psana2 key {key!r} (known: {', '.join(_KEYS)})")
        if key in ("live", "ffb"):
            if sep:
                raise ConfigError(f"{where}: {key} is a flag and takes no value")
            out[key] = True
            continue
        if not value:
            raise ConfigError(f"{where}: {key}= needs a value")
        if key in ("run", "max_events"):
            try:
                number = int(value)
            except ValueError:
                raise ConfigError(f"{where}: {key} must be an integer") from None
            if number < 0:
                raise ConfigError(f"{where}: {key} must not be negative")
            out[key] = number
        elif key == "files":
            out[key] = [f for f in value.split(":") if f] if ":" in value else value
        else:
            out[key] = value
    if "files" not in out and "exp" not in out:
        raise ConfigError("source_identifier: psana2 needs exp=...,run=... or files=...")
    if "exp" in out and "run" not in out and "files" not in out:
        raise ConfigError("source_identifier: exp= needs run= (lclstream streams one run)")
    return out


# ------------------------------------------------------------------------------- MPI roles


@dataclass(frozen=True)
class Psana2Roles:
    """This rank's role in psana's MPI layout, computed as psana computes it."""

    rank: int
    size: int
    eb_nodes: int = 1
    srv_nodes: int = 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    @property
    def node_type(self) -> str:
        """``serial``, ``smd0``, ``eb``, ``bd`` or ``srv`` (psana's names)."""
        if not self.parallel:
            return "serial"
        if self.rank == 0:
            return "smd0"
        if self.rank >= self.size - self.srv_nodes:
            return "srv"
        # psana: bd_main = psana ranks without rank 0, split by (index % PS_EB_NODES); the
        # first of each split builds events, the others yield them.
        return "eb" if (self.rank - 1) < self.eb_nodes else "bd"

    @property
    def streams(self) -> bool:
        """Whether this rank yields events (and so is a sender)."""
        return self.node_type in ("serial", "bd")

    @property
    def senders(self) -> int:
        return 1 if not self.parallel else self.size - self.srv_nodes - 1 - self.eb_nodes

    @property
    def sender(self) -> int:
        return 0 if not self.parallel else self.rank - 1 - self.eb_nodes


def psana2_roles(rank: int, size: int, env: dict[str, str] | None = None) -> Psana2Roles:
    """Roles for ``rank`` of ``size`` under psana's environment knobs (``PS_EB_NODES``,
    ``PS_SRV_NODES``). Raises SourceError for layouts psana itself refuses."""
    env = dict(os.environ) if env is None else env
    try:
        eb = int(env.get("PS_EB_NODES", "1"))
        srv = int(env.get("PS_SRV_NODES", "0"))
    except ValueError as e:
        raise SourceError(f"PS_EB_NODES / PS_SRV_NODES must be integers: {e}") from None
    if env.get("PS_EB_NODE_LOCAL", "0").strip().lower() in ("1", "true", "yes", "on"):
        raise SourceError("PS_EB_NODE_LOCAL (co-located event builders) is not supported")
    roles = Psana2Roles(rank, size, eb, srv)
    if roles.parallel and size - srv < 3:
        raise SourceError(f"psana2 needs at least 3 + PS_SRV_NODES MPI ranks, not {size}")
    if roles.parallel and roles.senders < 1:
        raise SourceError(
            f"no psana big-data ranks: {size} ranks, PS_EB_NODES={eb}, PS_SRV_NODES={srv}"
        )
    return roles


# ----------------------------------------------------------------------------- psana calls


@contextmanager
def _offline_file_lookup(enabled: bool) -> Iterator[None]:
    """While psana builds a DataSource with ``dir=``: an unreachable logbook means "no file
    list from the logbook", so psana scans ``dir=`` as it does for runs the logbook lacks."""
    if not enabled:
        yield
        return
    import requests
    from psana.psexp import ds_base  # type: ignore[import-untyped]

    original = ds_base.DataSourceBase._get_file_info_from_db

    def lookup(self: Any, runnum: int) -> dict[str, Any]:
        try:
            return dict(original(self, runnum))
        except requests.exceptions.RequestException:
            return {}

    ds_base.DataSourceBase._get_file_info_from_db = lookup
    try:
        yield
    finally:
        ds_base.DataSourceBase._get_file_info_from_db = original


def _detector_kind(det: Any) -> str:
    """jungfrau / epix10ka / generic, from the class psana picked for the detector."""
    raw = getattr(det, "raw", None)
    name = type(raw).__name__ if raw is not None else ""
    if name.startswith("jungfrau"):
        return "jungfrau"
    if name.startswith("epix10k"):
        return "epix10ka"
    return "generic"


def _field_names(name: str, params: Any) -> list[tuple[str, str]]:
    """(event data key, dotted field) per field of one ``Psana2DetectorInterface``: one field
    keeps the data source's name; a list gives one entry per field named as LCLStreamer's
    event dicts name them, ``<psana_name>.<field>``."""
    fields = params.psana_fields
    if not isinstance(fields, list):
        return [(name, str(fields) if fields else "")]
    if len(fields) == 1:
        return [(name, str(fields[0]))]
    if not fields:
        raise ConfigError(f"data_sources.{name}.psana_fields: an empty list")
    return [(f"{params.psana_name}.{f}", str(f)) for f in fields]


class _Field:
    """One ``Psana2DetectorInterface``: a detector (or EPICS PV) and one dotted field."""

    def __init__(self, name: str, psana_name: str, path: str, dtype: str | None, run: Any) -> None:
        self.name = name
        self.psana_name = psana_name
        #: ``dtype: str`` (LCLStreamer's, e.g. for geometry text): UTF-8 bytes, which every
        #: format carries (HDF5 has no numpy unicode type)
        self.text = dtype in ("str", "string", "U")
        self.dtype = None if dtype is None or self.text else np.dtype(dtype)
        self.path = path
        try:
            det = run.Detector(self.psana_name)
        except Exception as e:  # noqa: BLE001 - psana raises bare Exceptions for unknown names
            raise SourceError(
                f"data_sources.{name}: psana has no detector {self.psana_name!r} in this run "
                f"(it has: {', '.join(sorted(run.detnames))}): {e}"
            ) from None
        self.det = det
        self.kind = _detector_kind(det)
        target: Any = det
        if not self.path:
            if ":" not in self.psana_name:
                raise ConfigError(
                    f"data_sources.{name}.psana_fields is required (only EPICS PVs, names "
                    "with ':', are read without one)"
                )
        else:
            for part in self.path.split("."):
                if not hasattr(target, part):
                    raise SourceError(
                        f"data_sources.{name}: {self.psana_name}.{self.path}: "
                        f"{type(target).__name__} has no {part!r}"
                    )
                target = getattr(target, part)
        self.fast_raw = self.path == "raw.raw"
        #: The frame shape the stream declares (set by info()); psana gives single-segment
        #: detectors as 2-D frames, reshaped (a view) to the declared (1, rows, cols).
        self.shape: tuple[int, ...] | None = None
        self._call: Callable[[Any], Any]
        if self.fast_raw:
            raw = det.raw
            # psana's own buffer: the assembler copies the frame into its batch slot before
            # the next event is read, so no per-event copy is needed here.
            self._call = lambda evt: raw.raw(evt, copy=False)
        elif callable(target):
            code = getattr(target, "__code__", None)
            argc = code.co_argcount - (1 if hasattr(target, "__self__") else 0) if code else 1
            self._call = target if argc > 0 else (lambda evt: target())
        else:
            self._call = lambda evt: target

    @property
    def is_frame(self) -> bool:
        """Area-detector images (raw.raw, raw.calib, raw.image) are frames, calibrated and
        batched in pooled buffers; every other field (PVs, scalars, text, small arrays)
        travels per event as it is."""
        return not self.text and self.path in ("raw.raw", "raw.calib", "raw.image")

    def get(self, evt: Any) -> Any:
        value = self._call(evt)
        if value is None:
            return None
        if self.text or isinstance(value, str):
            return np.array(str(value).encode())
        if self.dtype is not None:
            value = np.asarray(value, dtype=self.dtype)
        shape = self.shape
        if shape is not None and isinstance(value, np.ndarray) and value.shape != shape:
            if value.size == int(np.prod(shape)):
                value = value.reshape(shape)
        return value

    def shape_without_events(self) -> tuple[int, ...] | None:
        """The frame shape psana knows before an event (raw / calib: segments as the DAQ
        wrote them); None where only an event can tell (images)."""
        if self.path in ("raw.raw", "raw.calib"):
            try:
                return tuple(int(s) for s in self.det.raw._shape_as_daq())
            except Exception:  # noqa: BLE001 - psana's geometry may be absent offline
                return None
        return None


def open_psana_run(
    source_identifier: str, *, load_constants: bool = False
) -> tuple[dict[str, Any], Any, Any]:
    """(parsed identifier, psana DataSource, its first run): the one place psana is opened.

    ``load_constants``: let psana load the run's calibration constants from LCLS' database
    (``constants: psana``); otherwise it is told not to. Every MPI rank must call this with
    the same arguments (psana's ranks cooperate from here on)."""
    identifier = parse_psana2_identifier(source_identifier)
    kwargs = {k: v for k, v in identifier.items() if k != "ffb"}
    if identifier.get("ffb"):
        os.environ["SIT_PSDM_DATA"] = FFB_DATA_ROOT  # read by psana, as LCLStreamer does
    if not load_constants:  # constants come from the config's files: none from the web
        kwargs.setdefault("skip_calib_load", "all")
    offline = "dir" in identifier and not identifier.get("live")
    try:
        from psana import DataSource
    except ImportError as e:
        raise SourceError("Psana2EventSource needs psana: pip install 'lclstream[psana]'") from e
    try:
        with _offline_file_lookup(offline):
            ds = DataSource(**kwargs)
        run = next(ds.runs())
    except StopIteration:
        raise SourceError(f"psana found no run for {source_identifier!r}") from None
    except (ConfigError, SourceError):
        raise
    except Exception as e:  # noqa: BLE001 - psana raises assertion/bare errors here
        raise SourceError(
            f"psana could not open {source_identifier!r}: {type(e).__name__}: {e}"
        ) from e
    return identifier, ds, run


def drive_psana_run(config: LclstreamConfig) -> None:
    """A small-data or event-builder rank: psana does its work inside the event loop (which
    yields nothing there); the rank must still open the run and loop for the others to run."""
    _, _, run = open_psana_run(
        config.source_identifier, load_constants=wants_psana_constants(config)
    )
    for _ in run.events():
        raise SourceError("psana yielded an event on a rank that does not stream")


def wants_psana_constants(config: LclstreamConfig) -> bool:
    """Whether a calibration entry asks for the constants psana loads (``constants: psana``)."""
    from lclstream.config import BatchProcessingPipelineParameters

    pp = config.processing_pipeline
    if not isinstance(pp, BatchProcessingPipelineParameters):
        return False
    return any(c.constants == "psana" for c in pp.calibration.values())


class Psana2EventSource:
    """Events of one run through psana2 (see the module docstring)."""

    def __init__(
        self,
        config: LclstreamConfig,
        totals: DropCounter | None = None,
        *,
        worker: int = 0,
        workers: int = 1,
        mpi: tuple[int, int] | None = None,
    ) -> None:
        check_worker(worker, workers)
        self.rank, self.size = mpi if mpi is not None else (0, 1)
        self.identifier, self._ds, self._run = open_psana_run(
            config.source_identifier, load_constants=wants_psana_constants(config)
        )
        self.psana_parallel = self.size > 1 and "files" not in self.identifier
        # files= is psana's single-process mode: every rank would read every event, so the
        # ranks split the events (worker of workers); exp/run: psana gives each rank its own.
        self.worker, self.workers = (0, 1) if self.psana_parallel else (worker, workers)
        if self.psana_parallel:
            self._check_role()
        es = config.event_source
        self.first_event = int(getattr(es, "first_event", 0) or 0)
        if self.first_event and self.psana_parallel:
            raise SourceError(
                f"event_source.first_event: {self.first_event} needs one reader; with psana's "
                f"event builders ({self.size} ranks) no rank knows an event's index in the run"
            )
        self.incomplete = IncompleteEvents(config.skip_incomplete_events, totals)
        self.fields: dict[str, _Field] = {}
        self.run_info: dict[str, np.ndarray] = {}
        self.timestamps: list[str] = []
        self.plain: dict[str, Any] = {}
        from lclstream.config import (
            Psana2DetectorInterfaceParameters,
            Psana2RunInfoParameters,
            Psana2TimestampParameters,
        )

        for name, params in config.data_sources.items():
            if isinstance(params, Psana2DetectorInterfaceParameters):
                for key, path in _field_names(name, params):
                    self.fields[key] = _Field(
                        key, str(params.psana_name), path, params.dtype, self._run
                    )
            elif isinstance(params, Psana2TimestampParameters):
                self.timestamps.append(name)
            elif isinstance(params, Psana2RunInfoParameters):
                facts = {  # LCLStreamer's keys; one JSON string per event (it sends a dict)
                    "experiment": str(getattr(self._run, "expt", "")),
                    "run_timestamp": str(getattr(self._run, "timestamp", "")),
                    "run_number": str(getattr(self._run, "runnum", "")),
                    "source_identifier": config.source_identifier,
                }
                self.run_info[name] = np.array(json.dumps(facts).encode())  # HDF5: bytes
            else:
                from lclstream.sources import _plain_data_source

                self.plain[name] = _plain_data_source(name, params, config)
        self._events = self._run.events()
        self._first: Any = None
        self._peeked = False
        self._index = 0

    def _check_role(self) -> None:
        from psana.psexp import mpi_ds

        expected = psana2_roles(self.rank, self.size).node_type
        actual = getattr(mpi_ds, "nodetype", None)
        if actual is not None and actual != expected:
            raise SourceError(
                f"rank {self.rank}: psana made this rank {actual!r}, lclstream expected "
                f"{expected!r} (PS_EB_NODES / PS_SRV_NODES layouts must match)"
            )

    def _next(self) -> Any:
        return next(self._events, None)

    def _peek(self) -> Any:
        if not self._peeked:
            self._first = self._next()
            self._peeked = True
        return self._first

    def info(self) -> dict[str, DetectorInfo]:
        out: dict[str, DetectorInfo] = {}
        frames = {n: f for n, f in self.fields.items() if f.is_frame}
        if not frames:
            return out
        first = None
        if any(f.shape_without_events() is None for f in frames.values()):
            first = self._peek()
        for name, f in frames.items():
            shape = f.shape_without_events()
            dtype: np.dtype[Any] | None = None
            if first is not None:
                value = f.get(first)
                if value is not None:
                    arr = np.asarray(value)
                    shape, dtype = tuple(arr.shape), arr.dtype
            if shape is None:
                raise SourceError(
                    f"data_sources.{name}: {f.psana_name}.{f.path} has no known shape before "
                    "an event and this rank got no event"
                )
            if dtype is None:
                dtype = f.dtype or np.dtype(np.uint16 if f.path == "raw.raw" else np.float32)
            f.shape = shape
            serial = str(getattr(f.det.raw, "_uniqueid", "") or "")
            out[name] = DetectorInfo(
                name=name, kind=f.kind, frame_shape=shape, dtype=dtype.name, serial=serial
            )
        return out

    def constants(self, name: str) -> dict[str, Any]:
        """``constants: psana``: the constants psana holds for the run (its calibconst, as
        ``det.raw.calib`` uses them): pedestals, pixel_gain, pixel_offset, psana's own mask
        (from pixel_status and the rest of its mask rules) and, for ePix10ka, the per-pixel
        gain control bits psana derives from the run's configuration."""
        f = self.fields.get(name)
        if f is None:
            raise SourceError(f"data_sources.{name}: constants: psana needs a psana detector")
        if f.kind not in ("jungfrau", "epix10ka"):
            raise SourceError(
                f"data_sources.{name}: constants: psana is implemented for Jungfrau and "
                f"ePix10ka, not {f.kind}; give the constants as a file"
            )
        raw = f.det.raw
        cc = getattr(raw, "_calibconst", None) or {}
        if "pedestals" not in cc:
            raise SourceError(
                f"data_sources.{name}: psana has no pedestals for {f.psana_name} in this run "
                "(no constants in LCLS' calibration database, or it was unreachable); give "
                "the constants as a file"
            )
        peds = np.asarray(cc["pedestals"][0], np.float32)
        out: dict[str, Any] = {"pedestal": peds}
        out["gain"] = (
            np.asarray(cc["pixel_gain"][0], np.float32)
            if "pixel_gain" in cc
            else np.ones_like(peds)
        )
        if "pixel_offset" in cc:
            out["offset"] = np.asarray(cc["pixel_offset"][0], np.float32)
        mask = raw._mask()
        if mask is not None:
            out["mask"] = np.asarray(mask, np.uint8).reshape(peds.shape[1:])
        if f.kind == "epix10ka":
            cbits = raw._cbits_config_detector()
            if cbits is None:
                raise SourceError(
                    f"data_sources.{name}: the run has no ePix10ka configuration for "
                    f"{f.psana_name} (asicPixelConfig / trbit), so no gain control bits"
                )
            out["config_bits"] = np.asarray(cbits, np.uint8).reshape(peds.shape[1:])
        return out

    def _event_data(self, evt: Any, index: int) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, f in self.fields.items():
            try:
                data[name] = f.get(evt)
            except (TypeError, AttributeError, KeyError):
                data[name] = None  # psana's way of saying "not in this event"
        ts = int(evt.timestamp)
        for name in self.timestamps:
            data[name] = np.uint64(ts)
        for name, info in self.run_info.items():
            data[name] = info
        for name, ds in self.plain.items():
            data[name] = ds.get_data(index)
        return data

    def events(self) -> Iterator[Event]:
        pending = self._first if self._peeked else None
        self._first = None
        while True:
            evt, pending = (pending, None) if pending is not None else (self._next(), None)
            if evt is None:
                return
            index = self._index  # the event's index in the run
            self._index += 1
            nth = index - self.first_event  # counted from the first event asked for
            if nth < 0 or (self.workers > 1 and nth % self.workers != self.worker):
                continue
            ts = int(evt.timestamp)
            event = Event(event_id=ts, timestamp=lcls_to_unix_ns(ts), data={}, is_hit=None)
            event.data = self._event_data(evt, index)
            if self.incomplete.accept(event):
                yield event

    def close(self) -> None:
        for ds in self.plain.values():
            ds.close()
        self._events = iter(())


def open_psana2(
    config: LclstreamConfig, totals: DropCounter | None, *, worker: int = 0, workers: int = 1
) -> Psana2EventSource:
    """The ``Psana2EventSource`` factory of the source registry."""
    from lclstream.run.mpi import mpi_world

    return Psana2EventSource(config, totals, worker=worker, workers=workers, mpi=mpi_world())
