"""Batch models at the edge: PeakNet-style networks (or classical finders) that see a whole
batch of frames and say, per event, where its peaks are, which pixels are Bragg spots, or
whether it is a hit.

Why a plug-in point: SLAC's PeakNet (ConvNeXt-V2 + BiFPN segmentation, weights not public) is
fed today through hand-built Ray actors. Here a model is a name in YAML; the pipeline gives it
the batch's contiguous frames (numpy; a torch model takes them zero-copy with
``torch.from_numpy`` and moves them to its device), runs it in its own thread behind a bounded
queue (a slow model makes the reader wait: backpressure, never lost events) and turns its
answer into CXI peak lists, a segmentation mask and the hit veto's verdict.

A model is a factory registered by entry point (group ``lclstream.models``)::

    [project.entry-points."lclstream.models"]
    my_net = "my_site.models:MyNet"

called as ``factory(detector, **parameters)`` (``detector`` is the frames'
:class:`~lclstream.protocols.DetectorInfo`) and returning a :class:`BatchModel`. Built-ins:
``spot_segmenter`` (classical, CPU, no download) and ``peaknet`` (the PeakNet architecture in
torch; the ``peaknet`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lclstream.errors import ConfigError
from lclstream.peaks import Peaks
from lclstream.protocols import DetectorInfo
from lclstream.registry import Registry

__all__ = ["MODELS", "BatchModel", "ModelOutput", "label_spots", "load_model", "peaks_from_labels"]


@dataclass
class ModelOutput:
    """What a model says about a batch of ``n`` events; any field may be None.

    ``peaks``: per-event peak lists in the raw layout (modules stacked along y, as the CXI
    lists are); ``mask``: per-pixel labels (uint8, events x frame; 1 = Bragg spot);
    ``hit``: the model's own verdict per event (bool), which, when given, is what the hit veto
    uses instead of counting peaks.
    """

    peaks: Peaks | None = None
    mask: np.ndarray | None = None
    hit: np.ndarray | None = None

    def check(self, n: int, frame_shape: tuple[int, ...], name: str) -> None:
        """A model is user code: its answer is checked before anything is sent."""
        where = f"batch model {name}"
        if self.peaks is not None and len(self.peaks) != n:
            raise ValueError(f"{where}: peaks for {len(self.peaks)} events, the batch has {n}")
        if self.hit is not None and np.shape(self.hit) != (n,):
            raise ValueError(f"{where}: hit has shape {np.shape(self.hit)}, expected ({n},)")
        if self.mask is not None and tuple(np.shape(self.mask)) != (n, *frame_shape):
            raise ValueError(
                f"{where}: mask has shape {list(np.shape(self.mask))}, expected {[n, *frame_shape]}"
            )


@runtime_checkable
class BatchModel(Protocol):
    """``model(frames)`` with frames (events, *frame_shape), C-contiguous, in the dtype the
    stream sends (photon counts or float32 keV/ADU); valid only during the call."""

    def __call__(self, frames: np.ndarray) -> ModelOutput: ...


MODELS = Registry("batch model", "processing_pipeline.reduction.*.model.name", "lclstream.models")
MODELS.add("spot_segmenter", "lclstream.models.spots:SpotSegmenter")
MODELS.add("peaknet", "lclstream.models.peaknet:PeakNetRunner")


def load_model(name: str, detector: DetectorInfo, parameters: dict[str, Any]) -> BatchModel:
    """The model ``name`` built for ``detector``; a ConfigError that names the key when its
    parameters are wrong or what it needs is missing."""
    factory = MODELS.get(name)
    where = f"processing_pipeline.reduction.{detector.name}.model"
    try:
        model = factory(detector, **parameters)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {name}: {exc}") from exc
    except ImportError as exc:
        raise ConfigError(f"{where}: {name} needs {exc.name or exc} ({exc})") from exc
    if not callable(model):
        raise ConfigError(f"{where}: {name} built {type(model).__name__}, which is not callable")
    return model  # type: ignore[no-any-return]


def peaks_from_labels(
    frames: np.ndarray, labels: np.ndarray, count: int, background: np.ndarray | None = None
) -> Peaks:
    """Peak lists from a labelled segmentation (0 = background, 1..count = spots, each within
    one module of one event): intensity-weighted centre (raw layout), total intensity above
    ``background``, pixel count, and the brightest pixel; ordered by event, then label.

    Why shared: every segmentation model (PeakNet's argmax + connected components, the
    classical segmenter) ends the same way, and the CXI lists must mean the same whatever
    made them.
    """
    n = frames.shape[0]
    if count == 0:
        return _empty_peaks(n)
    modules, rows, cols = _module_view(frames.shape)
    # only the labelled pixels (a few per mille of a frame) are looked at
    at = np.flatnonzero(labels.ravel())
    lab = labels.ravel()[at].astype(np.int64) - 1
    v = frames.ravel()[at].astype(np.float64)
    if background is not None:
        v = v - background.ravel()[at]
    plane, rest = np.divmod(at, rows * cols)
    r, c = np.divmod(rest, cols)
    w = np.clip(v, 0, None)
    total = np.bincount(lab, v, count)
    wsum = np.bincount(lab, w, count)
    npix = np.bincount(lab, minlength=count)
    norm = np.where(wsum > 0, wsum, 1.0)
    # unweighted centre where nothing is above the background
    cy = np.where(wsum > 0, np.bincount(lab, w * r, count), np.bincount(lab, r, count)) / np.where(
        wsum > 0, norm, npix
    )
    cx = np.where(wsum > 0, np.bincount(lab, w * c, count), np.bincount(lab, c, count)) / np.where(
        wsum > 0, norm, npix
    )
    order = np.lexsort((-v, lab))  # by label, brightest first
    first = order[np.searchsorted(lab[order], np.arange(count))]
    event, module = plane[first] // modules, plane[first] % modules
    counts = np.bincount(event, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    by_event = np.argsort(event, kind="stable")  # labels are numbered in raster order already
    return Peaks(
        offsets=offsets,
        x=cx.astype(np.float32)[by_event],
        y=(module * rows + cy).astype(np.float32)[by_event],
        total_intensity=total.astype(np.float32)[by_event],
        max_intensity=v[first].astype(np.float32)[by_event],
        sigma=np.zeros(count, np.float32),
        snr=np.zeros(count, np.float32),
        npix=npix.astype(np.int32)[by_event],
        index=((module * rows + r[first]) * cols + c[first]).astype(np.int64)[by_event],
    )


def label_spots(spot: np.ndarray, min_pixels: int, max_pixels: int) -> tuple[np.ndarray, int]:
    """Connected spot pixels of a (planes, rows, cols) mask, 8-connected within a plane (a
    module of one event), never across; components of ``min_pixels`` to ``max_pixels`` pixels
    are numbered 1..count, everything else is 0."""
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True
    labels, count = ndimage.label(spot, structure=structure)
    if not count:
        return labels, 0
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = (sizes >= min_pixels) & (sizes <= max_pixels)
    keep[0] = False
    relabel = np.zeros(count + 1, np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1)
    return relabel[labels], int(keep.sum())


def _module_view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(modules, rows, cols) of frames shaped (events, [modules,] rows, cols)."""
    if len(shape) == 4:
        return int(shape[1]), int(shape[2]), int(shape[3])
    if len(shape) == 3:
        return 1, int(shape[1]), int(shape[2])
    raise ValueError(f"frames of shape {list(shape)} are not (events, [modules,] rows, cols)")


def _empty_peaks(n: int) -> Peaks:
    f = np.zeros(0, np.float32)
    return Peaks(np.zeros(n + 1, np.uint64), f, f, f, f, f, f, np.zeros(0, np.int32),
                 np.zeros(0, np.int64))  # fmt: skip
