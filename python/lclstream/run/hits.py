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

__all__ = [
    "BatchHitFinding",
    "HitFinder",
    "ModelFinder",
    "PEAK_RESULTS",
    "Veto",
    "cxi_results",
    "hit_finders",
    "sparse_detectors",
]

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


class Veto:
    """The hit rule of one detector and its count of misses: a hit has at least
    ``min_peaks`` peaks (or the model says so) and, with ``min_total_intensity``, frame values
    summing to at least that; with ``veto`` misses are dropped except every
    ``keep_every_miss``-th of the run (counted in event order, whatever the batch
    boundaries)."""

    def __init__(
        self,
        *,
        min_peaks: int,
        veto: bool,
        keep_every_miss: int | None = None,
        min_total_intensity: float | None = None,
    ) -> None:
        self.min_peaks = int(min_peaks)
        self.veto = veto
        self.keep_every_miss = keep_every_miss
        self.min_total_intensity = min_total_intensity
        self.misses = 0

    def judge(
        self, n_peaks: np.ndarray, frames: np.ndarray, model_hit: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(hit, keep) per event."""
        n = len(frames)
        hit = np.asarray(model_hit, bool) if model_hit is not None else n_peaks >= self.min_peaks
        if self.min_total_intensity is not None:
            flat = frames.reshape(n, -1)
            acc = np.uint64 if flat.dtype.kind == "u" else np.float64
            hit = hit & (flat.sum(axis=1, dtype=acc) >= self.min_total_intensity)
        keep = np.ones(n, bool)
        if self.veto:
            k = self.keep_every_miss
            for e in np.flatnonzero(~hit):
                self.misses += 1
                keep[e] = bool(k and self.misses % k == 0)
        return hit, keep


def cxi_results(peaks: Any, width: int) -> dict[str, np.ndarray]:
    """CXI peak lists of a batch: ``nPeaks`` and each list padded with zeros to ``width``
    per event (what CrystFEL and OM read)."""
    counts = peaks.n_peaks
    n = len(counts)
    offsets = peaks.offsets.astype(np.int64)
    shown = np.minimum(counts, width)
    rows = np.repeat(np.arange(n), shown)
    cols = np.arange(int(shown.sum())) - np.repeat(np.cumsum(shown) - shown, shown)
    at = np.repeat(offsets[:-1], shown) + cols
    results: dict[str, np.ndarray] = {"nPeaks": counts.astype(np.int32)}
    for cxi, field in PEAK_RESULTS.items():
        col = np.zeros((n, width), np.float32)
        col[rows, cols] = getattr(peaks, field)[at]
        results[cxi] = col
    return results


class HitFinder:
    """The event filter of one detector: peakfinder8's peaks, the hit verdict, the CXI
    peak lists."""

    def __init__(self, info: DetectorInfo, peakfinder: dict[str, Any], veto: Veto) -> None:
        from lclstream.peaks import Peakfinder8, Peakfinder8Params, radius_map, raw_layout

        m = _model_of(info)
        self.name = info.name
        self.params = Peakfinder8Params(**peakfinder, **raw_layout(m.name))
        self.finder = Peakfinder8(self.params, radius_map(m.name))
        self.rows, self.cols = self.finder.shape
        self.veto = veto
        self.width = max(1, self.params.max_num_peaks)

    def judge(
        self, batch: EventBatch, threads: int = 0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(hit per event, keep per event, CXI results of every event)."""
        frames = batch.arrays[self.name]
        n = len(frames)
        peaks = self.finder.find(frames.reshape(n, self.rows, self.cols), threads=threads)
        hit, keep = self.veto.judge(peaks.n_peaks, frames)
        return hit, keep, cxi_results(peaks, self.width)


class ModelFinder:
    """The event filter of a detector whose batch model ran upstream (``run/models.py``):
    its peaks as CXI lists, its mask (``peakMask``) when asked for, its verdict."""

    def __init__(self, name: str, veto: Veto, width: int, send_mask: bool) -> None:
        self.name = name
        self.veto = veto
        self.width = max(1, width)
        self.send_mask = send_mask

    def judge(
        self, batch: EventBatch, threads: int = 0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        out = batch.model_outputs[self.name]
        n = len(batch)
        results: dict[str, np.ndarray] = {}
        counts = np.zeros(n, np.int64)
        if out.peaks is not None:
            results = cxi_results(out.peaks, self.width)
            counts = out.peaks.n_peaks
        if self.send_mask and out.mask is not None:
            results["peakMask"] = np.ascontiguousarray(out.mask, np.uint8)
        hit, keep = self.veto.judge(counts, batch.arrays[self.name], out.hit)
        return hit, keep, results


class BatchHitFinding:
    """Every hit finder of a run, applied to whole batches: an event is kept when every
    finder keeps it, and is a hit when every finder calls it one."""

    def __init__(
        self,
        finders: list[HitFinder | ModelFinder],
        unsent: frozenset[str] = frozenset(),
        threads: int = 0,
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
            h, k, r = f.judge(batch, self.threads)
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


def hit_finders(pp: Any, plans: dict[str, Any]) -> list[HitFinder | ModelFinder]:
    """A hit finder per detector whose reduction asks for a peakfinder or a batch model (the
    pipeline's ``processing_pipeline.reduction.NAME.{peakfinder, model, hit_veto}``)."""
    from lclstream.config import HitVetoParameters

    out: list[HitFinder | ModelFinder] = []
    for name, spec in pp.reduction.items():
        if (spec.peakfinder is None and spec.model is None) or name not in plans:
            continue
        rule = spec.hit_veto if spec.hit_veto is not None else HitVetoParameters.model_validate({})
        veto = Veto(
            min_peaks=rule.min_peaks,
            veto=spec.hit_veto is not None,
            keep_every_miss=rule.keep_every_miss,
            min_total_intensity=rule.min_total_intensity,
        )
        if spec.peakfinder is not None:
            out.append(HitFinder(plans[name].info, spec.peakfinder.model_dump(), veto))
        else:
            m = spec.model
            out.append(ModelFinder(name, veto, m.max_num_peaks, m.send_mask))
    return out


def sparse_detectors(pp: Any, plans: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(detectors whose reduction asks for sparse photon lists, those that leave it to the
    first batch: ``sparse: auto``); their frames must be photon counts."""
    names: list[str] = []
    auto: list[str] = []
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
        (auto if spec.sparse == "auto" else names).append(name)
    return frozenset(names), frozenset(auto)
