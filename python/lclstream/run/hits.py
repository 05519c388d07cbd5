"""Hit finding at the source: peakfinder8 on each calibrated frame, a veto on its peaks.

Why per batch, at the start of the serialize stage: the read stage (source, calibration) is
the pipeline's critical path, and in serial crystallography most frames are misses, so the
serialize stage has little else to do. There the finder runs over the batch's frames on all
cores, the misses are cut out before anything is compressed or sent (a vetoed event costs no
serialization and no bandwidth), and each is counted as dropped with reason ``miss``, so the
stream's completeness stays exact. The peaks of kept events travel with them as CXI peak
lists (``nPeaks``, ``peakXPosRaw``, ``peakYPosRaw``, ``peakTotalIntensity``,
``peakNPixels``, ``peakSNR``: what CrystFEL and OM read under ``/entry_1/result_1``), padded
to ``max_num_peaks`` per event.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lclstream.errors import ConfigError
from lclstream.protocols import DetectorInfo, EventBatch

__all__ = ["BatchHitFinding", "HitFinder", "PEAK_RESULTS", "hit_finders", "sparse_detectors"]

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

    def find_batch(
        self, frames: np.ndarray, threads: int = 0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Peaks of a batch's frames: (hit per event, keep per event, CXI results of every
        event). Misses are counted in event order, so every ``keep_every_miss``-th one of the
        run is kept whatever the batch boundaries."""
        n = len(frames)
        peaks = self.finder.find(frames.reshape(n, self.rows, self.cols), threads=threads)
        counts = peaks.n_peaks
        hit = counts >= self.min_peaks
        keep = np.ones(n, bool)
        if self.veto:
            k = self.keep_every_miss
            for e in np.flatnonzero(~hit):
                self.misses += 1
                keep[e] = bool(k and self.misses % k == 0)
        offsets = peaks.offsets.astype(np.int64)
        shown = np.minimum(counts, self.width)
        rows = np.repeat(np.arange(n), shown)
        cols = np.arange(int(shown.sum())) - np.repeat(np.cumsum(shown) - shown, shown)
        at = np.repeat(offsets[:-1], shown) + cols
        results: dict[str, np.ndarray] = {"nPeaks": counts.astype(np.int32)}
        for cxi, field in PEAK_RESULTS.items():
            col = np.zeros((n, self.width), np.float32)
            col[rows, cols] = getattr(peaks, field)[at]
            results[cxi] = col
        return hit, keep, results


class BatchHitFinding:
    """Every hit finder of a run, applied to whole batches: an event is kept when every
    finder keeps it, and is a hit when every finder calls it one."""

    def __init__(
        self, finders: list[HitFinder], unsent: frozenset[str] = frozenset(), threads: int = 0
    ) -> None:
        self.finders = finders
        #: detectors whose frames feed a finder but are not sent (``peaks_only``)
        self.unsent = unsent
        self.threads = threads

    def apply(self, batch: EventBatch) -> tuple[EventBatch, int, int]:
        """(the batch of kept events with their peaks, hits kept, misses dropped). The arrays
        of ``unsent`` detectors are left out of the returned batch."""
        n = len(batch)
        keep = np.ones(n, bool)
        hit = np.ones(n, bool)
        results = dict(batch.results)
        for f in self.finders:
            h, k, r = f.find_batch(batch.arrays[f.name], self.threads)
            hit &= h
            keep &= k
            results.update(r)
        arrays = {k: v for k, v in batch.arrays.items() if k not in self.unsent}
        hits = int((hit & keep).sum())
        if keep.all():
            out = EventBatch(batch.event_ids, batch.timestamps, arrays, results, batch.owners)
            return out, hits, 0
        idx = np.flatnonzero(keep)
        out = EventBatch(
            batch.event_ids[idx],
            batch.timestamps[idx],
            {k: v[idx] for k, v in arrays.items()},
            {k: v[idx] for k, v in results.items()},
            batch.owners,
        )
        return out, hits, n - len(idx)


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


def sparse_detectors(pp: Any, plans: dict[str, Any]) -> frozenset[str]:
    """Detectors whose reduction asks for sparse photon lists (``sparse: true``); their frames
    must be photon counts."""
    names = []
    for name, spec in pp.reduction.items():
        if not spec.sparse or name not in plans:
            continue
        dtype = np.dtype(plans[name].info.dtype)
        if dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
            raise ConfigError(
                f"processing_pipeline.reduction.{name}.sparse: sparse lists hold photon counts "
                f"(uint16/uint32) and {name} sends {dtype} (calibrate to photons: "
                "calibration.NAME.output: photons)"
            )
        names.append(name)
    return frozenset(names)
