"""Detector calibration: raw ADC frames to float32 keV / ADU or photon counts.

The constants are prepared once per run (pedestal + offset, 1/gain with the mask folded in,
float32, exactly as psana computes them), then every call runs a C++ kernel with the GIL
released, writing into ``out`` when given (e.g. a slot of a pooled :class:`lclstream.Batch`)
so that the pipeline never copies a frame. Conventions and their psana / Jungfraujoch
references are in ``docs/calibration.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lclstream import _core, detectors
from lclstream.calib_inputs import constants_array as _constants
from lclstream.calib_inputs import jungfrau_constants, stage_constants
from lclstream.calib_inputs import mask_array as _mask
from lclstream.calib_inputs import output_dtype as _output_dtype
from lclstream.calib_inputs import shape_text as _shape_text

__all__ = [
    "Epix10ka",
    "Generic",
    "Jungfrau",
    "bin_pixels",
    "crop",
    "epix10ka",
    "jungfrau",
    "load_constants",
    "make_calibrator",
    "zero_below",
]

# Geometry of the kernels' detectors: the detector table's.
JUNGFRAU_MODULE = detectors.JUNGFRAU.module_shape or (0, 0)
EPIX10KA_PANEL = detectors.EPIX10KA.module_shape or (0, 0)


#: Common-mode defaults per detector (ADU): Jungfrau per row within 64-column banks (G0
#: pixels), ePix10ka per 176 x 48 bank (high/medium gain pixels), as in psana.
COMMON_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    name: {"bank_rows": k.common_mode_bank[0], "bank_cols": k.common_mode_bank[1]}
    for name, k in detectors.KINDS.items()
}
_CM_KEYS = ("method", "bank_rows", "bank_cols", "threshold", "cormax", "min_pixels")


def _set_common_mode(
    core: _core.Calibrator,
    spec: bool | Mapping[str, Any] | None,
    frame: tuple[int, ...],
    detector: str,
) -> None:
    """Validates a ``common_mode=`` argument (True or a dict of _CM_KEYS) and enables it."""
    if spec is None or spec is False:
        return
    opts: dict[str, Any] = {
        "method": "median",
        "threshold": 100.0,
        "cormax": 100.0,
        "min_pixels": 10,
    }
    opts.update(COMMON_MODE_DEFAULTS[detector])
    if spec is not True:
        if not isinstance(spec, Mapping):
            raise ValueError(f"common_mode must be None, True or a dict, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(_CM_KEYS))
        if unknown:
            raise ValueError(
                f"common_mode: unknown keys {unknown} (allowed: {', '.join(_CM_KEYS)})"
            )
        opts.update(spec)
    if len(frame) < 2:
        raise ValueError("common_mode needs frames of at least 2 dimensions (rows, columns)")
    core.set_common_mode(
        str(opts["method"]),
        int(frame[-2]),
        int(frame[-1]),
        int(opts["bank_rows"]),
        int(opts["bank_cols"]),
        float(opts["threshold"]),
        float(opts["cormax"]),
        int(opts["min_pixels"]),
    )


class _Calibration:
    """Shared call path: shape checks, output allocation or validation, the kernel call."""

    _in_dtypes: tuple[np.dtype[Any], ...] = (np.dtype(np.uint16),)

    def __init__(
        self,
        core: _core.Calibrator,
        frame_shape: tuple[int, ...],
        output: str,
        out_dtype: np.dtype[Any],
        threads: int,
    ) -> None:
        self._core = core
        self.frame_shape = frame_shape
        self.output = output
        self.dtype = out_dtype
        self.threads = int(threads)
        self.photon_energy_keV: float | None = (
            float(core.photon_energy_keV) if output == "photons" else None
        )
        #: Invalid-gain pixels (Jungfrau gain bits 0b10) seen by the last call.
        self.last_invalid = 0

    def _check_raw(self, raw: np.ndarray) -> None:
        name = type(self).__name__
        if raw.dtype not in self._in_dtypes:
            allowed = ", ".join(str(d) for d in self._in_dtypes)
            raise ValueError(f"{name}: raw dtype {raw.dtype}, expected {allowed}")
        fs = self.frame_shape
        if raw.shape[-len(fs) :] != fs or raw.ndim not in (len(fs), len(fs) + 1):
            raise ValueError(
                f"{name}: raw shape {_shape_text(raw.shape)}, expected {_shape_text(fs)} "
                f"or (events, {_shape_text(fs)[1:]}"
            )
        if not raw.flags.c_contiguous:
            raise ValueError(f"{name}: raw must be C-contiguous (use numpy.ascontiguousarray)")

    def __call__(self, raw: npt.ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Calibrates one frame or a stack of frames; writes into ``out`` when given."""
        r = np.asarray(raw)
        self._check_raw(r)
        name = type(self).__name__
        if out is None:
            out = np.empty(r.shape, dtype=self.dtype)
        else:
            if not isinstance(out, np.ndarray):
                raise ValueError(f"{name}: out must be a numpy array, got {type(out).__name__}")
            if out.dtype != self.dtype:
                raise ValueError(
                    f"{name}: out dtype {out.dtype}, expected {self.dtype} "
                    f"for output={self.output!r}"
                )
            if out.shape != r.shape:
                raise ValueError(
                    f"{name}: out shape {_shape_text(out.shape)} does not match raw shape "
                    f"{_shape_text(r.shape)}"
                )
            if not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError(f"{name}: out must be a writeable C-contiguous array")
        self.last_invalid = int(self._core.apply(r, out, self.threads))
        return out

    def calibrate_frames(self, raws: list[np.ndarray], out: np.ndarray) -> None:
        """Calibrate separate raw frames (one array per event) into the stack ``out``.

        Why: a detector's constants are several times its raw frame (8 bytes a pixel
        against 2 for the Jungfrau fast path), and frame by frame they stream from memory
        once per frame; here each block of pixels is calibrated for every frame while its
        constants are in cache (a batch of 10 JF4M frames: 0.8 against 1.3 ms a frame).
        The same bits as calling the calibrator on each frame. Not with common mode.
        """
        name = type(self).__name__
        for r in raws:
            self._check_raw(r)
            if r.shape != self.frame_shape:
                raise ValueError(f"{name}: frame shape {_shape_text(r.shape)}, expected one frame")
        want = (len(raws), *self.frame_shape)
        if out.shape != want or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(
                f"{name}: out must be a C-contiguous {self.dtype} array shaped {_shape_text(want)}"
            )
        self.last_invalid = int(self._core.apply_frames(list(raws), out, self.threads))

    @property
    def has_common_mode(self) -> bool:
        return bool(self._core.has_common_mode)


class Jungfrau(_Calibration):
    """PSI Jungfrau: 3 gain stages selected per pixel by the top two bits of each word.

    Constants are float32 shaped ``(3, modules, 512, 1024)`` (any ``(3, *frame_shape)`` is
    accepted), gain in ADU/keV; ``mask`` is shaped like one frame, nonzero = good.
    """

    def __init__(
        self,
        pedestal: npt.ArrayLike,
        gain: npt.ArrayLike,
        offset: npt.ArrayLike | None = None,
        mask: npt.ArrayLike | None = None,
        *,
        threads: int = 0,
        output: str = "keV",
        photon_energy_keV: float | None = None,
        dtype: npt.DTypeLike | None = None,
        common_mode: bool | Mapping[str, Any] | None = None,
    ) -> None:
        out_dtype = _output_dtype(output, dtype, photon_energy_keV)
        frame, p, g, o, m = jungfrau_constants(pedestal, gain, offset, mask)
        n = int(np.prod(frame))
        core = _core.Calibrator.jungfrau(p, g, o, m, n, output, float(photon_energy_keV or 0.0))
        _set_common_mode(core, common_mode, frame, "jungfrau")
        super().__init__(core, frame, output, out_dtype, threads)


class Epix10ka(_Calibration):
    """ePix10ka / ePix10k2M: 7 gain ranges from per-pixel configuration bits + data bit 14.

    Constants are float32 shaped ``(7, panels, 352, 384)`` in psana's order (FH, FM, FL,
    AHL_H, AML_M, AHL_L, AML_L), gain in ADU/keV; ``config_bits`` is shaped like one frame
    (bit 2 = g, bit 3 = ga, bit 4 = trbit, as psana's ``cbits``).
    """

    def __init__(
        self,
        pedestal: npt.ArrayLike,
        gain: npt.ArrayLike,
        config_bits: npt.ArrayLike,
        mask: npt.ArrayLike | None = None,
        *,
        threads: int = 0,
        output: str = "keV",
        photon_energy_keV: float | None = None,
        dtype: npt.DTypeLike | None = None,
        common_mode: bool | Mapping[str, Any] | None = None,
    ) -> None:
        out_dtype = _output_dtype(output, dtype, photon_energy_keV)
        frame, p, g = stage_constants(detectors.EPIX10KA, "Epix10ka", "panels", pedestal, gain)
        cb = np.asarray(config_bits)
        if cb.shape != frame or cb.dtype.kind not in "ui":
            raise ValueError(
                f"Epix10ka config_bits: shape {_shape_text(cb.shape)} dtype {cb.dtype}, expected "
                f"integers shaped {_shape_text(frame)}"
            )
        cbits = np.ascontiguousarray(cb & 0xFF, dtype=np.uint8)
        m = _mask(mask, frame, "Epix10ka mask")
        n = int(np.prod(frame))
        core = _core.Calibrator.epix10ka(p, g, cbits, m, n, output, float(photon_energy_keV or 0.0))
        _set_common_mode(core, common_mode, frame, "epix10ka")
        super().__init__(core, frame, output, out_dtype, threads)


class Generic(_Calibration):
    """One gain stage: ``(x - pedestal) * (1/gain) * mask`` for uint16, int16 or float32 input.

    ``gain`` is in ADU/keV (output keV) and is multiplied as its float32 reciprocal, 0 where
    gain is 0; without ``gain`` the result is in ADU. Pedestal, gain and mask are shaped
    like one frame; give ``frame_shape`` when none of them is given.
    """

    _in_dtypes = (np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))

    def __init__(
        self,
        pedestal: npt.ArrayLike | None = None,
        gain: npt.ArrayLike | None = None,
        mask: npt.ArrayLike | None = None,
        *,
        frame_shape: tuple[int, ...] | None = None,
        threads: int = 0,
        output: str = "keV",
        photon_energy_keV: float | None = None,
        dtype: npt.DTypeLike | None = None,
        common_mode: bool | Mapping[str, Any] | None = None,
    ) -> None:
        out_dtype = _output_dtype(output, dtype, photon_energy_keV)
        if frame_shape is None:
            for a in (pedestal, gain, mask):
                if a is not None:
                    frame_shape = tuple(int(s) for s in np.shape(a))
                    break
        if frame_shape is None:
            raise ValueError("Generic: give frame_shape, or at least one of pedestal, gain, mask")
        frame = tuple(int(s) for s in frame_shape)
        p = None if pedestal is None else _constants("pedestal", pedestal, frame)
        g = None if gain is None else _constants("gain", gain, frame)
        m = _mask(mask, frame)
        n = int(np.prod(frame))
        core = _core.Calibrator.generic(p, g, m, n, output, float(photon_energy_keV or 0.0))
        _set_common_mode(core, common_mode, frame, "generic")
        super().__init__(core, frame, output, out_dtype, threads)


def jungfrau(
    raw: npt.ArrayLike,
    *,
    pedestal: npt.ArrayLike,
    gain: npt.ArrayLike,
    offset: npt.ArrayLike | None = None,
    mask: npt.ArrayLike | None = None,
    threads: int = 0,
    output: str = "keV",
    photon_energy_keV: float | None = None,
    dtype: npt.DTypeLike | None = None,
    common_mode: bool | Mapping[str, Any] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One-off ``Jungfrau(...)(raw)``; prepare a :class:`Jungfrau` to calibrate many frames."""
    cal = Jungfrau(
        pedestal,
        gain,
        offset,
        mask,
        threads=threads,
        output=output,
        photon_energy_keV=photon_energy_keV,
        dtype=dtype,
        common_mode=common_mode,
    )
    return cal(raw, out)


def epix10ka(
    raw: npt.ArrayLike,
    *,
    pedestal: npt.ArrayLike,
    gain: npt.ArrayLike,
    config_bits: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    threads: int = 0,
    output: str = "keV",
    photon_energy_keV: float | None = None,
    dtype: npt.DTypeLike | None = None,
    common_mode: bool | Mapping[str, Any] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One-off ``Epix10ka(...)(raw)``."""
    cal = Epix10ka(
        pedestal,
        gain,
        config_bits,
        mask,
        threads=threads,
        output=output,
        photon_energy_keV=photon_energy_keV,
        dtype=dtype,
        common_mode=common_mode,
    )
    return cal(raw, out)


# ---- constants I/O ----------------------------------------------------------------------

_ALIASES = {
    "pedestal": ("pedestal", "pedestals"),
    "gain": ("gain", "pixel_gain", "gains"),
    "offset": ("offset", "pixel_offset", "offsets"),
    "mask": ("mask", "pixel_mask"),
    "config_bits": ("config_bits", "cbits"),
}
#: Kinds with constants files: (gain stages, module shape), from the detector table.
_DETECTORS = {
    name: (detectors.KINDS[name].n_gains, detectors.KINDS[name].module_shape or (0, 0))
    for name in detectors.CALIBRATED_KINDS
}
_REQUIRED = {"jungfrau": ("pedestal", "gain"), "epix10ka": ("pedestal", "gain", "config_bits")}


def _read_named(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Arrays by name from a mapping, .npz, HDF5 file or folder; each value is (array, where)."""
    found: dict[str, tuple[Any, str]] = {}
    if isinstance(source, Mapping):
        for k, v in source.items():
            found[str(k)] = (v, f"<dict>[{k!r}]")
        return found
    path = Path(source)
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.suffix == ".npy":
                found[f.stem] = (np.load(f, allow_pickle=False), str(f))
            elif f.suffix in (".npz", ".h5", ".hdf5"):
                for k, v in _read_named(f).items():
                    found.setdefault(k, v)
        return found
    if not path.exists():
        raise ValueError(f"constants: {path} does not exist")
    if path.suffix == ".npy":
        return {path.stem: (np.load(path, allow_pickle=False), str(path))}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: (z[k], f"{path}:{k}") for k in z.files}
    if path.suffix in (".h5", ".hdf5", ".cxi"):
        import h5py

        with h5py.File(path, "r") as h:

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    found.setdefault(name.rsplit("/", 1)[-1], (obj[()], f"{path}:/{name}"))

            h.visititems(visit)
        return found
    raise ValueError(f"constants: {path}: unknown file type (expected .npy, .npz, .h5 or a folder)")


def load_constants(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    detector: str = "jungfrau",
    modules: int | None = None,
) -> dict[str, np.ndarray]:
    """Pedestal, gain, offset, mask (and ePix config_bits) from files or a dict of arrays.

    ``source`` is a .npz, an HDF5 file (datasets found anywhere by name), a folder of
    ``pedestal.npy``/``gain.npy``/... files, or a mapping. psana's names (``pedestals``,
    ``pixel_gain``, ``pixel_offset``) are accepted. Gain is ADU/keV; mask nonzero = good
    (psana's ``pixel_status`` has the opposite sense and is not read). Returns float32
    constants shaped ``(stages, modules, ny, nx)`` and a uint8 mask ``(modules, ny, nx)``;
    wrong shapes or dtypes raise ValueError naming the file and the expected shape.
    """
    det = detectors.kind_of(detector) or detector.lower()
    if det not in _DETECTORS:
        raise ValueError(
            f"constants: unknown detector {detector!r} (allowed: {', '.join(_DETECTORS)})"
        )
    stages, module = _DETECTORS[det]
    named = _read_named(source)
    picked: dict[str, tuple[Any, str]] = {}
    for key, names in _ALIASES.items():
        for n in names:
            if n in named:
                picked[key] = named[n]
                break
    for key in _REQUIRED[det]:
        if key not in picked:
            raise ValueError(
                f"constants: no {key!r} in {source} (found: {', '.join(sorted(named))})"
            )
    ped, where = picked["pedestal"]
    ped = np.asarray(ped)
    if modules is None:
        if ped.ndim == 4:
            modules = int(ped.shape[1])
        elif ped.ndim == 3:
            modules = 1
        else:
            raise ValueError(
                f"constants: {where}: shape {_shape_text(ped.shape)}, expected "
                f"({stages}, modules, {module[0]}, {module[1]})"
            )
    cshape = (stages, modules, *module)
    fshape = (modules, *module)
    out: dict[str, np.ndarray] = {}
    for key, (arr, where) in picked.items():
        a = np.asarray(arr)
        want = cshape if key in ("pedestal", "gain", "offset") else fshape
        if a.dtype.kind not in "uifb":
            raise ValueError(f"constants: {where}: dtype {a.dtype}, expected real numbers")
        if modules == 1 and a.ndim == len(want) - 1 and a.size == int(np.prod(want)):
            a = a.reshape(want)  # one module stored without its module axis
        if a.shape != want:
            raise ValueError(
                f"constants: {where}: shape {_shape_text(a.shape)}, expected {_shape_text(want)}"
            )
        if key in ("mask", "config_bits"):
            if a.dtype.kind == "f" and key == "config_bits":
                raise ValueError(f"constants: {where}: config_bits must be integers, got {a.dtype}")
            out[key] = np.ascontiguousarray(a != 0 if key == "mask" else a, dtype=np.uint8)
        else:
            out[key] = np.ascontiguousarray(a, dtype=np.float32)
    return out


# ---- reduction helpers ------------------------------------------------------------------


def zero_below(data: np.ndarray, threshold: float, *, threads: int = 0) -> int:
    """In place: values below ``threshold`` become 0 (float32, uint16, uint32); returns how many.

    Zeroing the noise floor is what makes calibrated frames compress: runs of zeros are
    constant bit planes for bitshuffle.
    """
    if not isinstance(data, np.ndarray):
        raise ValueError("zero_below: data must be a numpy array (it is changed in place)")
    return int(_core.zero_below(data, float(threshold), threads))


def crop(
    data: np.ndarray,
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    out: np.ndarray | None = None,
    threads: int = 0,
) -> np.ndarray:
    """The region rows [r0, r1) x cols [c0, c1) of every frame (last two axes), contiguous."""
    a = np.asarray(data)
    if a.ndim < 2:
        raise ValueError(f"crop: data shape {_shape_text(a.shape)} has no (rows, cols) axes")
    r0, r1 = (int(v) for v in rows)
    c0, c1 = (int(v) for v in cols)
    if not (0 <= r0 < r1 <= a.shape[-2] and 0 <= c0 < c1 <= a.shape[-1]):
        raise ValueError(
            f"crop: rows {rows} cols {cols} is empty or outside frames of "
            f"{a.shape[-2]} x {a.shape[-1]}"
        )
    shape = (*a.shape[:-2], r1 - r0, c1 - c0)
    if out is None:
        out = np.empty(shape, a.dtype)
    elif out.shape != shape or out.dtype != a.dtype:
        raise ValueError(
            f"crop: out is {out.dtype} {_shape_text(out.shape)}, "
            f"expected {a.dtype} {_shape_text(shape)}"
        )
    _core.crop(a, out, r0, r1, c0, c1, threads)
    return out


def bin_pixels(
    data: np.ndarray,
    by: int,
    bx: int | None = None,
    *,
    out: np.ndarray | None = None,
    threads: int = 0,
) -> np.ndarray:
    """Sums ``by`` x ``bx`` pixel blocks of every frame (last two axes).

    float32 sums in float32 (row-major order within a block); uint16 / uint32 counts sum
    into uint32, saturating.
    """
    a = np.asarray(data)
    bx = by if bx is None else bx
    if a.ndim < 2 or by <= 0 or bx <= 0 or a.shape[-2] % by or a.shape[-1] % bx:
        raise ValueError(
            f"bin_pixels: {by} x {bx} bins do not tile data shaped {_shape_text(a.shape)}"
        )
    odt = np.dtype(np.float32) if a.dtype == np.float32 else np.dtype(np.uint32)
    shape = (*a.shape[:-2], a.shape[-2] // by, a.shape[-1] // bx)
    if out is None:
        out = np.empty(shape, odt)
    elif out.shape != shape or out.dtype != odt:
        raise ValueError(
            f"bin_pixels: out is {out.dtype} {_shape_text(out.shape)}, "
            f"expected {odt} {_shape_text(shape)}"
        )
    _core.bin(a, out, int(by), int(bx), threads)
    return out


# ---- construction from configuration ----------------------------------------------------

DETECTORS = tuple(detectors.KINDS)


def make_calibrator(
    detector: str,
    constants: str | os.PathLike[str] | Mapping[str, Any],
    *,
    modules: int | None = None,
    **options: Any,
) -> Jungfrau | Epix10ka | Generic:
    """A prepared calibrator from a detector name and constants (file, folder or dict).

    This is what a pipeline's ``calibration:`` entry maps onto, e.g.
    ``make_calibrator("jungfrau", "constants.h5", output="photons", photon_energy_keV=9.5)``;
    ``options`` are the class's keyword arguments (threads, output, photon_energy_keV,
    dtype, common_mode). ``epix10k2M``/``epix10k`` name the ePix10ka kernel.
    """
    det = detectors.kind_of(detector) or detector.lower()  # kinds, models (jungfrau4M ...)
    if det not in DETECTORS:
        raise ValueError(
            f"calibration: unknown detector {detector!r} (allowed: {', '.join(DETECTORS)})"
        )
    if det == "generic":
        named = {k: v for k, (v, _) in _read_named(constants).items()}
        pick = {
            key: np.asarray(named[n])
            for key, names in _ALIASES.items()
            for n in names
            if n in named
        }
        return Generic(pick.get("pedestal"), pick.get("gain"), pick.get("mask"), **options)
    c = load_constants(constants, detector=det, modules=modules)
    if det == "jungfrau":
        return Jungfrau(c["pedestal"], c["gain"], c.get("offset"), c.get("mask"), **options)
    return Epix10ka(c["pedestal"], c["gain"], c["config_bits"], c.get("mask"), **options)
