"""Hit finding at the source: peakfinder8 on each calibrated frame, a veto on its peaks.

Why here, in the read stage, one event at a time: in serial crystallography most frames are
misses, and an event vetoed before it is committed to a batch costs no serialization, no
compression and no bandwidth; its slot is reused by the next event. Every vetoed event is
counted as dropped with reason ``miss``, so the stream's completeness stays exact. The
peaks of kept events travel with them as CXI peak lists (``nPeaks``, ``peakXPosRaw``,
``peakYPosRaw``, ``peakTotalIntensity``, ``peakNPixels``, ``peakSNR``: what CrystFEL and
OM read under ``/entry_1/result_1``), padded to ``max_num_peaks`` per event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lclstream.errors import ConfigError
from lclstream.protocols import DetectorInfo, Event

__all__ = ["HitFinder", "PEAK_RESULTS", "chain_filters", "hit_finders"]

#: CXI result name -> Peaks field (nPeaks is the count)
PEAK_RESULTS = {
    "peakXPosRaw": "x",
    "peakYPosRaw": "y",
    "peakTotalIntensity": "total_intensity",
    "peakNPixels": "npix",
    "peakSNR": "snr",
}


def _model_of(info: DetectorInfo) -> Any:
    """The detector model whose frames have this shape (the peak finder's geometry)."""
    from lclstream.detectors import MODELS

    shape = tuple(info.frame_shape)
    for m in MODELS.values():
        if m.kind == info.kind and (m.modules, *m.module_shape) == shape:
            return m
    raise ConfigError(
        f"processing_pipeline.reduction.{info.name}.peakfinder: no {info.kind} model has "
        f"frames of shape {list(shape)} (peakfinder8 needs the unreduced frames of a "
        "Jungfrau or ePix10ka model; put roi/binning after it in another stream)"
    )


class HitFinder:
    """The event filter of one detector: peaks, the hit verdict, the CXI peak lists."""

    def __init__(
        self,
        info: DetectorInfo,
        peakfinder: dict[str, Any],
        *,
        min_peaks: int,
        veto: bool,
        keep_every_miss: int | None = None,
    ) -> None:
        from lclstream.peaks import Peakfinder8, Peakfinder8Params, radius_map, raw_layout

        m = _model_of(info)
        self.name = info.name
        self.params = Peakfinder8Params(**peakfinder, **raw_layout(m.name))
        self.finder = Peakfinder8(self.params, radius_map(m.name))
        self.rows, self.cols = self.finder.shape
        self.min_peaks = int(min_peaks)
        self.veto = veto
        self.keep_every_miss = keep_every_miss
        self.misses = 0
        self.width = max(1, self.params.max_num_peaks)

    def __call__(self, ev: Event, frames: dict[str, np.ndarray]) -> bool | str:
        frame = frames[self.name].reshape(self.rows, self.cols)
        peaks = self.finder.find(frame, threads=1)
        n = int(peaks.n_peaks[0])
        ev.is_hit = n >= self.min_peaks
        if not ev.is_hit and self.veto:
            self.misses += 1
            k = self.keep_every_miss
            if not (k and self.misses % k == 0):  # every kth miss is kept for background
                return "miss"
        out = ev.results
        out["nPeaks"] = np.int32(n)
        for cxi, field in PEAK_RESULTS.items():
            col = np.zeros(self.width, np.float32)
            vals = getattr(peaks, field)[: self.width]
            col[: len(vals)] = vals
            out[cxi] = col
        return True


def chain_filters(
    filters: list[Callable[[Event, dict[str, np.ndarray]], bool | str | None]],
) -> Callable[[Event, dict[str, np.ndarray]], bool | str | None] | None:
    """One event filter that applies ``filters`` in order; the first veto wins."""
    if not filters:
        return None
    if len(filters) == 1:
        return filters[0]

    def both(ev: Event, frames: dict[str, np.ndarray]) -> bool | str | None:
        for f in filters:
            verdict = f(ev, frames)
            if verdict is not None and verdict is not True:
                return verdict
        return True

    return both


def hit_finders(pp: Any, plans: dict[str, Any]) -> list[HitFinder]:
    """A hit finder per detector whose reduction asks for a peakfinder (the pipeline's
    ``processing_pipeline.reduction.NAME.peakfinder`` and ``hit_veto``)."""
    from lclstream.config import HitVetoParameters

    out: list[HitFinder] = []
    for name, spec in pp.reduction.items():
        if spec.peakfinder is None or name not in plans:
            continue
        veto = spec.hit_veto
        rule = veto if veto is not None else HitVetoParameters.model_validate({})  # no veto
        out.append(
            HitFinder(
                plans[name].info,
                spec.peakfinder.model_dump(),
                min_peaks=rule.min_peaks,
                veto=veto is not None,
                keep_every_miss=rule.keep_every_miss,
            )
        )
    return out
