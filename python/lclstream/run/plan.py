"""The one-time decisions made before the first event: per detector, which calibrator, which
reduction, and what its frames look like on the wire (shape, dtype, calibration).

Why apart from the running machinery: these are pure functions of the config and the
source's :class:`~lclstream.protocols.DetectorInfo`, testable without threads, and every
mistake they can find (a calibration for a data source that does not exist, a crop outside
the frame) is a :class:`~lclstream.errors.ConfigError` before anything is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from lclstream.errors import ConfigError
from lclstream.protocols import Calibration, DetectorInfo, EventSource
from lclstream.reduce import Reduction

if TYPE_CHECKING:
    from lclstream.config import BatchProcessingPipelineParameters

__all__ = ["Calibrator", "DetectorPlan", "plan_detectors", "stream_calibration"]

Calibrator = Callable[..., np.ndarray]


@dataclass
class DetectorPlan:
    """How one detector's frames travel: calibrator, reduction, output dtype/shape."""

    name: str
    info: DetectorInfo  # as sent: shape and dtype after calibration and reduction
    calibrator: Calibrator | None
    calibration: Calibration
    reduction: Reduction
    in_shape: tuple[int, ...]
    cal_dtype: np.dtype[Any]  # after calibration, before reduction
    out_shape: tuple[int, ...]
    out_dtype: np.dtype[Any]
    scratch: np.ndarray | None = None  # calibrated frame when the reduction reshapes
    buffer: np.ndarray | None = None  # cropped frame before binning

    @property
    def batch_calibrates(self) -> bool:
        """Whether a whole batch's frames can be calibrated in one call (:meth:`calibrate_batch`):
        calibration and nothing else (no reduction, no common mode)."""
        cal = self.calibrator
        return (
            cal is not None
            and hasattr(cal, "calibrate_frames")
            and not getattr(cal, "has_common_mode", True)
            and not self.reduction.active
            and not self.reduction.reshapes
        )

    def check_raw(self, raw: np.ndarray) -> None:
        """A SourceError unless ``raw`` is one frame as the source declared it."""
        if raw.shape != self.in_shape:
            from lclstream.errors import SourceError

            raise SourceError(
                f"data source {self.name!r}: frame shape {raw.shape} differs from the "
                f"declared {self.in_shape}"
            )

    def calibrate_batch(self, raws: list[np.ndarray], out: np.ndarray) -> None:
        """Calibrate a batch's raw frames into ``out`` (its slots), constants read once."""
        self.calibrator.calibrate_frames(raws, out)  # type: ignore[union-attr]

    def calibrate_into(self, raw: np.ndarray, slot: np.ndarray) -> None:
        """Calibrate and reduce one raw frame into ``slot`` (a batch slot), no allocation."""
        self.check_raw(raw)
        red = self.reduction
        if self.calibrator is not None:
            if red.reshapes:
                assert self.scratch is not None
                self.calibrator(raw, out=self.scratch)
                red.apply(self.scratch, slot, mutable=True, buffer=self.buffer)
            else:
                self.calibrator(raw, out=slot)
                if red.active:
                    red.apply(slot, slot, mutable=True)
        elif red.active:
            red.apply(raw, slot, mutable=False, buffer=self.buffer)
        else:
            from lclstream import _core

            _core.parallel_copy(slot, np.ascontiguousarray(raw, dtype=self.out_dtype), 1)


def plan_detectors(
    pp: BatchProcessingPipelineParameters, source: EventSource
) -> dict[str, DetectorPlan]:
    """A plan for every detector the source describes, from the pipeline's config."""
    plans: dict[str, DetectorPlan] = {}
    for name, info in source.info().items():
        shape = tuple(int(s) for s in info.frame_shape)
        spec = pp.calibration.get(name)
        calibrator: Calibrator | None = None
        cal_dtype = np.dtype(info.dtype)
        calibration: Calibration = "raw"
        if spec is not None and spec.mode != "raw":
            built: Any = spec.build(name, info, source)
            calibrator, cal_dtype = built, np.dtype(built.dtype)
            calibration = spec.calibration
        red_spec = pp.reduction.get(name)
        reduction = red_spec.build() if red_spec is not None else Reduction()
        out_shape = reduction.out_shape(shape, name)
        out_dtype = reduction.out_dtype(cal_dtype)
        plan = DetectorPlan(
            name,
            replace(info, frame_shape=out_shape, dtype=out_dtype.name),
            calibrator,
            calibration,
            reduction,
            shape,
            cal_dtype,
            out_shape,
            out_dtype,
        )
        # Buffers made once: the calibrated frame when a reduction reshapes it, the
        # cropped frame when binning follows a crop (or a threshold on raw frames).
        if reduction.reshapes and calibrator is not None:
            plan.scratch = np.zeros(shape, cal_dtype)
        if reduction.binning > 1:
            plan.buffer = np.zeros(reduction.crop_shape(shape), cal_dtype)
        plans[name] = plan
    for name in pp.calibration:
        if name not in plans:
            raise ConfigError(
                f"processing_pipeline.calibration.{name}: no detector data source named "
                f"{name!r} (detectors: {sorted(plans) or 'none'})"
            )
    return plans


def stream_calibration(plans: dict[str, DetectorPlan]) -> Calibration:
    """The stream's ``calibration`` fact: the detectors' common one, else ``raw``."""
    kinds = {p.calibration for p in plans.values()}
    return kinds.pop() if len(kinds) == 1 else "raw"
