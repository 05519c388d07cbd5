"""Checks of calibration inputs (outputs, dtypes, constants' shapes, masks), in numpy alone.

Why a module of its own: the C++-backed calibrators (:mod:`lclstream.calib`) and the device
path (:mod:`lclstream.ray.gpu`, which must import where lclstream's compiled core is not
built, as on a GPU node with only torch) refuse the same inputs with the same words.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lclstream import detectors

__all__ = [
    "OUTPUTS",
    "constants_array",
    "constants_text",
    "jungfrau_constants",
    "mask_array",
    "output_dtype",
    "shape_text",
    "stage_constants",
]

OUTPUTS = ("keV", "adu", "photons")


def shape_text(shape: tuple[int, ...]) -> str:
    """``(3, 8, 512, 1024)``: shapes in error messages, as users write them."""
    return "(" + ", ".join(str(s) for s in shape) + ")"


def output_dtype(
    output: str, dtype: npt.DTypeLike | None, photon_energy_keV: float | None
) -> np.dtype[Any]:
    """The output's dtype, refusing what the kernels cannot write (photon counts are uint16 or
    uint32, keV and ADU float32) before any constant is prepared."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {output!r}")
    if output == "photons":
        if photon_energy_keV is None or not photon_energy_keV > 0:
            raise ValueError(
                f"output='photons' needs photon_energy_keV > 0; got {photon_energy_keV!r}"
            )
        dt = np.dtype(np.uint16 if dtype is None else dtype)
        if dt not in (np.dtype(np.uint16), np.dtype(np.uint32)):
            raise ValueError(f"photon counts are uint16 or uint32; dtype={dt} is not supported")
        return dt
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt != np.dtype(np.float32):
        raise ValueError(f"output={output!r} is float32; dtype={dt} is not supported")
    return dt


def constants_array(name: str, a: npt.ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    """Constants as the kernels read them: real numbers of exactly ``shape``, float32,
    contiguous; the error names the constant and both shapes."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "uif":
        raise ValueError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name}: shape {shape_text(arr.shape)}, expected {shape_text(shape)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def mask_array(
    mask: npt.ArrayLike | None, shape: tuple[int, ...], name: str = "mask"
) -> np.ndarray | None:
    """A frame-shaped mask as 0/1 bytes (psana: nonzero = good pixel), or None."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"{name}: shape {shape_text(m.shape)}, expected {shape_text(shape)}")
    return np.ascontiguousarray(m != 0, dtype=np.uint8)  # psana: nonzero = good pixel


def constants_text(kind: detectors.DetectorKind, modules: str) -> str:
    """The constants shape a kind's kernel expects, e.g. ``(3, modules, 512, 1024)``."""
    ny, nx = kind.module_shape or (0, 0)
    return f"({kind.n_gains}, {modules}, {ny}, {nx})"


def stage_constants(
    kind: detectors.DetectorKind,
    name: str,
    units: str,
    pedestal: npt.ArrayLike,
    gain: npt.ArrayLike,
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """(frame shape, pedestal, gain) of a gain-switching detector, checked and laid out as its
    kernel reads them: float32 ``(n_gains, *frame)``; ``name`` and ``units`` ("modules",
    "panels") word the error."""
    ped = np.asarray(pedestal)
    if ped.ndim < 2 or ped.shape[0] != kind.n_gains:
        raise ValueError(
            f"{name} pedestal: shape {shape_text(ped.shape)}, expected "
            f"{constants_text(kind, units)}"
        )
    shape = tuple(int(s) for s in ped.shape)
    p = constants_array(f"{name} pedestal", ped, shape)
    return shape[1:], p, constants_array(f"{name} gain", gain, shape)


def jungfrau_constants(
    pedestal: npt.ArrayLike,
    gain: npt.ArrayLike,
    offset: npt.ArrayLike | None,
    mask: npt.ArrayLike | None,
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(frame shape, pedestal, gain, offset or None, mask or None) checked and laid out as the
    Jungfrau kernels read them: constants ``(3, *frame)`` float32, the mask frame-shaped."""
    frame, p, g = stage_constants(detectors.JUNGFRAU, "Jungfrau", "modules", pedestal, gain)
    shape = (len(p), *frame)
    o = None if offset is None else constants_array("Jungfrau offset", offset, shape)
    return frame, p, g, o, mask_array(mask, frame, "Jungfrau mask")
