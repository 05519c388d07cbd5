"""``spot_segmenter``: a classical Bragg-spot segmentation that runs on any CPU, no download.

Why this one: it has the shape of PeakNet's output (a per-pixel spot mask, then connected
components into peaks) without weights, so the model plug-in path is exercised end to end on
every machine, and a beamline without a trained network still gets a second opinion on
peakfinder8's. Per module of each frame: a local background and noise from box means over
``background_window`` pixels (scipy's separable uniform filter, C speed), a pixel is a spot
pixel when it is ``min_snr`` noise levels and ``min_value`` above that background; 8-connected
spot pixels (within a module, never across) make a peak when there are ``min_pixels`` to
``max_pixels`` of them. A hit is an event with at least ``min_peaks`` peaks. ``noise_floor``
keeps single photons on a near-empty background from counting as spots.

On the synthetic SFX run's calibrated photon frames (hits with 67-75 peakfinder8 peaks) the
defaults find 94-100% of peakfinder8's peaks within 2 px, and 88-97% of what they find is one
of them (``tests/test_models.py``), at ~190 ms per Jungfrau 4M frame on one core: a reference
and a fallback, not a beam-rate finder (that is peakfinder8's job; PeakNet's on a GPU).
"""

from __future__ import annotations

import numpy as np

from lclstream.models import ModelOutput, _module_view, label_spots, peaks_from_labels
from lclstream.protocols import DetectorInfo

__all__ = ["SpotSegmenter"]


class SpotSegmenter:
    def __init__(
        self,
        detector: DetectorInfo,
        *,
        min_snr: float = 5.0,
        min_value: float = 2.0,
        background_window: int = 51,
        min_pixels: int = 2,
        max_pixels: int = 200,
        min_peaks: int = 10,
        noise_floor: float = 0.5,
    ) -> None:
        _module_view((1, *detector.frame_shape))  # frames it can take
        if background_window < 3 or background_window % 2 == 0:
            raise ValueError(f"background_window: {background_window} must be odd and >= 3")
        if not 1 <= min_pixels <= max_pixels:
            raise ValueError(f"min_pixels {min_pixels} .. max_pixels {max_pixels} is empty")
        self.detector = detector
        self.min_snr = float(min_snr)
        self.min_value = float(min_value)
        self.window = int(background_window)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.min_peaks = int(min_peaks)
        self.noise_floor = float(noise_floor)

    def __call__(self, frames: np.ndarray) -> ModelOutput:
        from scipy import ndimage

        n = frames.shape[0]
        modules, rows, cols = _module_view(frames.shape)
        v = frames.reshape(n * modules, rows, cols).astype(np.float32)
        size = (1, self.window, self.window)
        mean = ndimage.uniform_filter(v, size=size, mode="nearest")
        var = ndimage.uniform_filter(v * v, size=size, mode="nearest") - mean * mean
        noise = np.sqrt(np.maximum(var, self.noise_floor**2))
        excess = v - mean
        spot = (excess > self.min_snr * noise) & (excess > self.min_value)
        labels, count = label_spots(spot, self.min_pixels, self.max_pixels)
        peaks = peaks_from_labels(v.reshape(frames.shape), labels, count, background=mean)
        mask = (labels > 0).astype(np.uint8).reshape(frames.shape)
        return ModelOutput(peaks=peaks, mask=mask, hit=peaks.n_peaks >= self.min_peaks)
