"""peakfinder8 against psana's own ``peakfinder_8`` on the same Jungfrau 4M-sized frames.

Frames are float32 4096 x 1024 (8 modules stacked, 256 x 256 ASICs) with a ring-shaped
background, Gaussian noise and planted Bragg spots (``lclstream.peaks.synthetic_frames``), 0.5%
bad pixels masked. Rows sweep the hit density (spots per frame: a miss, a typical hit, a
crowded hit), the noise level and the thresholds (a low-SNR row grows many noise seeds).
Both run one thread on the same frames, alternately (``time_pair``); each row also checks that
the peaks are identical (``identical`` in the record). Target: >= 20x per thread in every row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import main, record, time_pair
from lclstream.peaks import Peakfinder8, Peakfinder8Params, radius_map, raw_layout, synthetic_frames

try:
    from psana.peakfinder8 import peakfinder_8  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - the psana extra is not installed
    peakfinder_8 = None

BASE = dict(
    adc_threshold=12.0,
    minimum_snr=5.0,
    min_pixel_count=2,
    max_pixel_count=30,
    local_bg_radius=3,
    max_num_peaks=2048,
)
ROWS: list[tuple[str, int, float, dict[str, Any]]] = [
    ("miss (0 spots)", 0, 1.0, {}),
    ("hit (50 spots)", 50, 1.0, {}),
    ("crowded (500 spots)", 500, 1.0, {}),
    ("noisy (150 spots, noise 3)", 150, 3.0, {}),
    ("low thresholds (snr 3.5, adc 0)", 150, 1.0, {"minimum_snr": 3.5, "adc_threshold": 0.0}),
]


def run(quick: bool) -> list[dict[str, Any]]:
    if peakfinder_8 is None:
        print("bench_peaks: psana is not installed (pip install 'lclstream[psana]'); skipped")
        return []
    lay = raw_layout("jungfrau4M")
    r = radius_map("jungfrau4M")
    mask = (np.random.default_rng(99).random(r.shape) > 0.005).astype(np.uint8)
    mask8 = mask.astype(np.int8)
    n_frames = 2 if quick else 4
    repeats = 2 if quick else 4
    rows = ROWS[:3] if quick else ROWS
    out: list[dict[str, Any]] = []
    for case, spots, noise, extra in rows:
        p = dict(BASE, **extra)
        frames, _ = synthetic_frames(r, n_frames, peaks=spots, noise=noise, seed=len(out))
        finder = Peakfinder8(Peakfinder8Params(**p, **lay), r, mask)

        def ours(finder: Peakfinder8 = finder, frames: np.ndarray = frames) -> Any:
            return finder.find(frames, threads=1)

        def psana(frames: np.ndarray = frames, p: dict[str, Any] = p) -> list[Any]:
            return [
                peakfinder_8(
                    p["max_num_peaks"],
                    fr,
                    mask8,
                    r,
                    lay["asic_nx"],
                    lay["asic_ny"],
                    lay["nasics_x"],
                    lay["nasics_y"],
                    p["adc_threshold"],
                    p["minimum_snr"],
                    p["min_pixel_count"],
                    p["max_pixel_count"],
                    p["local_bg_radius"],
                )
                for fr in frames
            ]

        got, ref = ours(), psana()
        identical = all(
            np.array_equal(got.event(e).x, np.asarray(ref[e][0], np.float64).astype(np.float32))
            and np.array_equal(
                got.event(e).total_intensity, np.asarray(ref[e][2], np.float64).astype(np.float32)
            )
            for e in range(n_frames)
        )
        t, tb = time_pair(ours, psana, repeats=repeats)
        out.append(
            record(
                "peakfinder8",
                case,
                nbytes=float(frames.nbytes),
                t=t,
                baseline="psana peakfinder_8",
                baseline_t=tb,
                threads=1,
                target=20.0,
                target_text="≥ 20× psana per thread",
                frames=n_frames,
                peaks_per_frame=float(got.n_peaks.mean()),
                ms_per_frame=1e3 * t["min"] / n_frames,
                baseline_ms_per_frame=1e3 * tb["min"] / n_frames,
                identical=identical,
                notes=(
                    f"{1e3 * t['min'] / n_frames:.2f} ms/frame vs psana "
                    f"{1e3 * tb['min'] / n_frames:.1f} ms; {got.n_peaks.mean():.0f} peaks/frame; "
                    f"{'identical peaks' if identical else 'PEAKS DIFFER'}"
                ),
            )
        )
    return out


if __name__ == "__main__":
    main(run)
