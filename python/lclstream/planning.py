"""Planning a pipeline from its config: sources, serializer, calibration and reductions.

Split out of :mod:`lclstream.pipeline` so the running machinery (threads, queues, workers)
and the one-time decisions made before the first event (which calibrator, which reduction,
what each detector's frames look like on the wire) can be read separately. The pipeline
imports everything here; ``lclstream.pipeline.Reduction`` stays the public name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lclstream.errors import ConfigError
from lclstream.protocols import (
    Calibration,
    DetectorInfo,
    EventSource,
    Serializer,
    StreamTotals,
)

__all__ = ["Calibrator", "Reduction"]


# --------------------------------------------------------------------------------------------
# Configuration access. The config model (lclstream.config) is pydantic; these helpers read it
# by attribute or key so plain mappings (tests, the REST job runner) work as well.


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _options(obj: Any) -> dict[str, Any]:
    """A component's options as a plain dict (``type`` included)."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        out: dict[str, Any] = dump()
        return out
    return dict(vars(obj))


# --------------------------------------------------------------------------------------------
# Reduction steps (in place or into the batch slot). Peak finding and hit vetoes plug in via
# ``Pipeline(event_filter=...)``: a callable (name -> frame) -> bool | None deciding per event.


@dataclass
class Reduction:
    """Per-detector reduction, in this order: crop to ``roi`` (modules, y, x ranges), zero
    values under ``threshold``, sum ``binning`` x ``binning`` pixel blocks within each module."""

    modules: tuple[int, ...] | None = None
    y: tuple[int, int] | None = None
    x: tuple[int, int] | None = None
    threshold: float | None = None
    binning: int = 1

    @property
    def reshapes(self) -> bool:
        return (
            self.modules is not None
            or self.y is not None
            or self.x is not None
            or (self.binning > 1)
        )

    @property
    def active(self) -> bool:
        return self.reshapes or self.threshold is not None

    def out_shape(self, shape: tuple[int, ...], name: str = "") -> tuple[int, ...]:
        where = f"processing_pipeline.reduction.{name}" if name else "reduction"
        if len(shape) < 2:
            raise ConfigError(f"{where}: frames of shape {shape} cannot be reduced")
        lead, (h, w) = list(shape[:-2]), shape[-2:]
        if self.modules is not None:
            if len(shape) < 3:
                raise ConfigError(f"{where}.roi.modules: frames of shape {shape} have no modules")
            bad = [m for m in self.modules if not 0 <= m < shape[0]]
            if bad or not self.modules:
                raise ConfigError(
                    f"{where}.roi.modules: {list(self.modules)} must be within 0..{shape[0] - 1}"
                )
            lead[0] = len(self.modules)
        for axis, rng, size in (("y", self.y, h), ("x", self.x, w)):
            if rng is not None and not 0 <= rng[0] < rng[1] <= size:
                raise ConfigError(
                    f"{where}.roi.{axis}: {list(rng)} is not a range within [0, {size}]"
                )
        if self.y is not None:
            h = self.y[1] - self.y[0]
        if self.x is not None:
            w = self.x[1] - self.x[0]
        b = self.binning
        if b < 1 or h % b or w % b:
            raise ConfigError(f"{where}.binning.factor: {b} does not divide the frame ({h} x {w})")
        return (*lead, h // b, w // b)

    def out_dtype(self, dtype: np.dtype[Any]) -> np.dtype[Any]:
        """Binned counts sum into uint32 (saturating); float32 stays float32."""
        if self.binning > 1:
            return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.uint32)
        return dtype

    def crop_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape after the ROI, before binning."""
        b = self.binning
        out = self.out_shape(shape)
        return (*out[:-2], out[-2] * b, out[-1] * b)

    def apply(
        self,
        frame: np.ndarray,
        out: np.ndarray,
        *,
        mutable: bool,
        buffer: np.ndarray | None = None,
        threads: int = 0,
    ) -> None:
        """Reduce ``frame`` into ``out`` with the C++ kernels (crop, zero_below, bin_pixels).

        ``frame`` may be ``out`` itself when nothing reshapes. ``mutable`` says whether
        ``frame`` may be changed in place (a calibrated scratch frame may, a source's raw
        frame may not); ``buffer`` holds the cropped frame when binning follows a crop.
        """
        from lclstream import calib

        src = frame
        owned = mutable
        if self.modules is not None:
            mods = list(self.modules)
            if mods == list(range(mods[0], mods[0] + len(mods))):
                src = src[mods[0] : mods[0] + len(mods)]
            else:
                src, owned = src[mods], True  # a copy (rare: scattered modules)
        if self.y is not None or self.x is not None:
            h, w = src.shape[-2:]
            rows, cols = self.y or (0, h), self.x or (0, w)
            dst = out if self.binning == 1 else buffer
            src = calib.crop(src, rows, cols, out=dst, threads=threads)
            owned = True
        if self.threshold is not None:
            if not owned:
                dst = out if self.binning == 1 else buffer
                if dst is None:
                    dst = np.empty_like(src)
                np.copyto(dst, src)
                src = dst
            calib.zero_below(src, self.threshold, threads=threads)
        if self.binning > 1:
            calib.bin_pixels(src, self.binning, out=out, threads=threads)
        elif src is not out:
            np.copyto(out, src)


def _reduction_from(spec: Any) -> Reduction:
    if spec is None:
        return Reduction()
    roi, thr, binning = _get(spec, "roi"), _get(spec, "threshold"), _get(spec, "binning")
    mods, y, x = _get(roi, "modules"), _get(roi, "y"), _get(roi, "x")
    return Reduction(
        modules=tuple(int(m) for m in mods) if mods is not None else None,
        y=(int(y[0]), int(y[1])) if y is not None else None,
        x=(int(x[0]), int(x[1])) if x is not None else None,
        threshold=float(_get(thr, "min", 1.0)) if thr is not None else None,
        binning=int(_get(binning, "factor", 2)) if binning is not None else 1,
    )


# --------------------------------------------------------------------------------------------
# Building the parts from a config.


def _open_source(config: Any, totals: StreamTotals, worker: int, workers: int) -> EventSource:
    from lclstream.sources import open_source

    if workers == 1:
        return open_source(config, totals=totals)
    return open_source(config, totals=totals, worker=worker, workers=workers)


def _make_serializer(config: Any) -> Serializer:
    from lclstream import formats

    spec = _get(config, "data_serializer")
    options = _options(spec) or {"type": "HDF5BinarySerializer"}
    type_name = str(options.pop("type", "HDF5BinarySerializer"))
    if "compression_threads" in options:  # the config's name for the codec's ``threads``
        options["threads"] = options.pop("compression_threads")
    ser: Serializer = formats.make_serializer(type_name, **options)
    return ser


Calibrator = Callable[..., np.ndarray]


@dataclass
class _DetectorPlan:
    """How one detector's frames travel: calibrator, reduction, output dtype/shape."""

    name: str
    info: DetectorInfo
    calibrator: Calibrator | None
    reduction: Reduction
    in_shape: tuple[int, ...]
    cal_dtype: np.dtype[Any]  # after calibration, before reduction
    out_shape: tuple[int, ...]
    out_dtype: np.dtype[Any]
    scratch: np.ndarray | None = None  # calibrated frame when the reduction reshapes
    buffer: np.ndarray | None = None  # cropped frame before binning


def _make_calibrator(
    name: str, spec: Any, info: DetectorInfo, source: EventSource
) -> tuple[Calibrator, np.dtype[Any], Calibration]:
    """The prepared calibration of one detector (constants folded once) and its output."""
    from lclstream import calib

    where = f"processing_pipeline.calibration.{name}"
    detector = str(_get(spec, "detector", "auto") or "auto").lower()
    if detector == "auto":
        detector = info.kind.lower()
    output = str(_get(spec, "output", "photons") or "photons")
    energy = _get(spec, "photon_energy_keV") or info.photon_energy_keV
    constants = _get(spec, "constants", "synthetic")
    threads = int(_get(spec, "threads", 0) or 0)
    dtype = _get(spec, "dtype")
    if output == "photons" and energy is None:
        raise ConfigError(
            f"{where}.photon_energy_keV: needed for photon output (the source gives none)"
        )
    source_of: Any
    if constants in (None, "synthetic"):
        loader = getattr(source, "constants", None)
        if loader is None:
            raise ConfigError(
                f"{where}.constants: 'synthetic' needs a source with built-in constants "
                "(SyntheticDetector); give a constants file instead"
            )
        source_of = dict(loader(name))
    else:
        source_of = str(constants)
    kwargs: dict[str, Any] = {"threads": threads, "output": output}
    if energy is not None:
        kwargs["photon_energy_keV"] = float(energy)
    if dtype is not None:
        kwargs["dtype"] = dtype
    common_mode = _get(spec, "common_mode")
    if common_mode is not None:
        kwargs["common_mode"] = common_mode
    try:
        obj: Any = calib.make_calibrator(detector, source_of, **kwargs)
    except KeyError as e:
        raise ConfigError(f"{where}.constants: no {e.args[0]} in the constants") from None
    except (OSError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where}: {e}") from None
    cal: Calibration = "photons" if output == "photons" else ("adu" if output == "adu" else "keV")
    return obj, np.dtype(obj.dtype), cal
