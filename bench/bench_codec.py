"""Codec benchmark: our bslz4 against the ``bitshuffle`` package (OMP_NUM_THREADS=1) and
hdf5plugin via h5py, on raw Jungfrau frames, photon counts and float32 keV frames.

Headline (DESIGN.md targets): bslz4 compress on raw Jungfrau frames, one thread, >= 1.5x the
package at a compression ratio within 3% of the package's; decompress >= 1.0x.

The family (``bslz4 family``): speed that must hold on data this benchmark did not design.
Raw Jungfrau frames (4 modules, uint16) over noise sigma 2-20 ADU, pedestals flat (3000 ADU) or
per pixel within +-1000 / +-2000 ADU, photon pixels 0-10% at 6, 9.5 or 12 keV (40 ADU/keV),
gain-switched pixels; and photon-count frames at 0.001-1 photons/pixel. Per row: compress and
decompress speed-up over the package (one thread each, alternated), both ratios, and how the
encoder took each bit plane (``_core.bslz4_plane_paths``). The summary row's target
(DESIGN.md): median >= 2x and minimum >= 1.5x, ratio within 3% and decompression >= 2x on every
row.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before bitshuffle is imported: its OpenMP runs one thread

import io
from typing import Any

import bitshuffle
import h5py
import hdf5plugin
import numpy as np
from common import main, record, time_it, time_pair
from lclstream import _core, codec

MODULE = (512, 1024)


def jungfrau_raw(modules: int, seed: int = 0) -> np.ndarray:
    """Raw Jungfrau ADC words: per-pixel pedestal 1000-3000 ADU, gaussian noise (4 ADU), 1% of
    pixels with a photon (~380 ADU at 9.5 keV), 0.05% in gain stage 1 (bits 14-15 = 01)."""
    rng = np.random.default_rng(seed)
    shape = (modules, *MODULE)
    ped = rng.uniform(1000, 3000, shape)
    adu = ped + rng.normal(0, 4, shape) + (rng.random(shape) < 0.01) * rng.normal(380, 40, shape)
    words = np.clip(adu, 0, 0x3FFF).astype(np.uint16)
    words[rng.random(shape) < 0.0005] |= 1 << 14
    return words


def photon_counts(modules: int, seed: int = 1) -> np.ndarray:
    """Photon counts: mostly 0, a diffuse background of ~0.02 photons/pixel, a few Bragg peaks."""
    rng = np.random.default_rng(seed)
    shape = (modules, *MODULE)
    counts = rng.poisson(0.02, shape).astype(np.uint16)
    for _ in range(60 * modules):
        m, y, x = rng.integers(0, modules), rng.integers(2, 510), rng.integers(2, 1022)
        counts[m, y - 1 : y + 2, x - 1 : x + 2] += rng.poisson(30, (3, 3)).astype(np.uint16)
    return counts


def kev_frames(modules: int, seed: int = 2) -> np.ndarray:
    """Calibrated float32 keV: photons x 9.5 keV plus 0.3 keV of residual noise."""
    rng = np.random.default_rng(seed)
    return (photon_counts(modules, seed) * 9.5 + rng.normal(0, 0.3, (modules, *MODULE))).astype(
        np.float32
    )


def _h5plugin_write(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("d", data=a, chunks=a.shape, **hdf5plugin.Bitshuffle(cname="lz4"))
    return buf.getvalue()


def _h5plugin_read(image: bytes) -> np.ndarray:
    with h5py.File(io.BytesIO(image), "r") as f:
        return np.asarray(f["d"][...])


def _bslz4_case(name: str, a: np.ndarray, repeats: int, headline: bool) -> list[dict[str, Any]]:
    """Ours against the package on one array, compress and decompress (more for the headline)."""
    records: list[dict[str, Any]] = []
    isa = _core.isa()
    out = np.empty(codec.compress_bound(a.nbytes, a.itemsize), np.uint8)
    dec = np.empty_like(a)
    ours_chunk = codec.compress(a, "bslz4", threads=1).copy()
    pkg_chunk = bitshuffle.compress_lz4(a)
    ratio_ours = a.nbytes / len(ours_chunk)
    ratio_pkg = a.nbytes / (len(pkg_chunk) + 12)

    def ours() -> object:
        return codec.compress(a, "bslz4", threads=1, out=out)

    def ours_dec() -> object:
        return codec.decompress(ours_chunk, dtype=a.dtype, shape=a.shape, out=dec)

    t_ours = time_it(ours, repeats)
    t_pkg = time_it(lambda: bitshuffle.compress_lz4(a), repeats)
    records.append(
        record(
            "codec", f"bslz4 compress {name}", nbytes=a.nbytes, t=t_ours,
            baseline="bitshuffle pkg (1 thr)", baseline_t=t_pkg,
            target=1.5 if headline else None,
            target_text="≥1.5x bitshuffle package, ratio within 3%" if headline else "",
            ratio_ours=ratio_ours, ratio_baseline=ratio_pkg,
            ratio_change=ratio_ours / ratio_pkg - 1, isa=isa,
        )
    )  # fmt: skip
    t_dec = time_it(ours_dec, repeats)
    t_pdec = time_it(lambda: bitshuffle.decompress_lz4(pkg_chunk, a.shape, a.dtype), repeats)
    records.append(
        record(
            "codec", f"bslz4 decompress {name}", nbytes=a.nbytes, t=t_dec,
            baseline="bitshuffle pkg (1 thr)", baseline_t=t_pdec,
            target=1.0 if headline else None,
            target_text="≥1.0x bitshuffle package" if headline else "", isa=isa,
        )
    )  # fmt: skip
    if not headline:
        return records
    t_h5 = time_it(lambda: _h5plugin_write(a), max(3, repeats // 2))
    records.append(
        record(
            "codec", f"bslz4 compress {name} vs h5py", nbytes=a.nbytes, t=t_ours,
            baseline="h5py+hdf5plugin write", baseline_t=t_h5, isa=isa,
        )
    )  # fmt: skip
    image = _h5plugin_write(a)
    t_h5r = time_it(lambda: _h5plugin_read(image), max(3, repeats // 2))
    records.append(
        record(
            "codec", f"bslz4 decompress {name} vs h5py", nbytes=a.nbytes, t=t_dec,
            baseline="h5py+hdf5plugin read", baseline_t=t_h5r, isa=isa,
        )
    )  # fmt: skip
    t2 = time_it(lambda: codec.compress(a, "bslz4", threads=2, out=out), repeats)
    records.append(
        record(
            "codec", f"bslz4 compress {name} 2 thr", nbytes=a.nbytes, t=t2, threads=2,
            baseline="ours, 1 thread", baseline_t=t_ours, isa=isa,
        )
    )  # fmt: skip
    frames = jungfrau_raw(8, seed=5)  # 8 distinct single-module events
    fout = np.empty(8 * codec.compress_bound(frames[0].nbytes, 2), np.uint8)
    t1f = time_it(lambda: codec.compress_frames(frames, threads=1, out=fout), repeats)
    t2f = time_it(lambda: codec.compress_frames(frames, threads=2, out=fout), repeats)
    records.append(
        record(
            "codec", "compress_frames 8 modules 2 thr", nbytes=frames.nbytes, t=t2f,
            threads=2, baseline="compress_frames 1 thr", baseline_t=t1f, isa=isa,
        )
    )  # fmt: skip
    for alt in _core.available_isas()[1:]:  # the fallbacks for older CPUs
        _core.set_isa(alt)
        try:
            t_alt = time_it(ours, repeats)
            t_altd = time_it(ours_dec, repeats)
        finally:
            _core.set_isa(isa)
        for what, tt, tb in (("compress", t_alt, t_pkg), ("decompress", t_altd, t_pdec)):
            records.append(
                record(
                    "codec", f"bslz4 {what} {name} [{alt}]", nbytes=a.nbytes, t=tt,
                    baseline="bitshuffle pkg (1 thr)", baseline_t=tb, isa=alt,
                )
            )  # fmt: skip
    zout = np.empty(codec.compress_bound(a.nbytes, a.itemsize, "bszstd"), np.uint8)
    t_z = time_it(lambda: codec.compress(a, "bszstd", level=3, threads=1, out=zout), repeats)
    t_pz = time_it(lambda: bitshuffle.compress_zstd(a, comp_lvl=3), max(3, repeats // 3))
    zsize = len(codec.compress(a, "bszstd", level=3, threads=1))
    pzsize = len(bitshuffle.compress_zstd(a, comp_lvl=3)) + 12
    records.append(
        record(
            "codec", f"bszstd compress {name}", nbytes=a.nbytes, t=t_z,
            baseline="bitshuffle pkg zstd (1 thr)", baseline_t=t_pz,
            ratio_ours=a.nbytes / zsize, ratio_baseline=a.nbytes / pzsize,
            ratio_change=pzsize / zsize - 1, isa=isa,
        )
    )  # fmt: skip
    for other in ("lz4", "zstd"):
        t_o = time_it(lambda o=other: codec.compress(a, o, threads=1), max(3, repeats // 3))
        size = len(codec.compress(a, other, threads=1))
        records.append(
            record(
                "codec", f"{other} compress {name}", nbytes=a.nbytes, t=t_o,
                baseline="bitshuffle pkg lz4", baseline_t=t_pkg,
                ratio_ours=a.nbytes / size, isa=isa,
            )
        )  # fmt: skip
    return records


def family_frames(quick: bool) -> list[tuple[str, np.ndarray]]:
    """The family's frames, seeded: (label, frame)."""
    shape = (4, *MODULE)
    rows: list[tuple[str, np.ndarray]] = []
    spreads = (0, 1000) if quick else (0, 1000, 2000)
    sigmas = (2, 20) if quick else (2, 5, 20)
    hits = (
        ((0.0, 0.0), (0.1, 12.0)) if quick else ((0.0, 0.0), (0.02, 6.0), (0.1, 9.5), (0.1, 12.0))
    )
    seed = 0
    for spread in spreads:
        for sigma in sigmas:
            for frac, kev in hits:
                for gain in (0.0, 0.001) if (spread, sigma) == (0, 5) or not quick else (0.0,):
                    if gain and quick:
                        continue
                    rng = np.random.default_rng(seed)
                    seed += 1
                    ped = (
                        np.full(shape, 3000.0)
                        if spread == 0
                        else rng.uniform(3000 - spread, 3000 + spread, shape)
                    )
                    adu = ped + rng.normal(0, sigma, shape)
                    adu += (rng.random(shape) < frac) * rng.normal(40 * kev, 20, shape)
                    w = np.clip(adu, 0, 0x3FFF).astype(np.uint16)
                    g = rng.random(shape) < gain
                    w[g] = (w[g] & 0x3FFF) | (1 << 14)
                    label = (
                        f"raw: pedestal {'flat' if spread == 0 else f'+-{spread}'}, noise {sigma}, "
                        f"photons {frac:.0%}" + (f" at {kev:g} keV" if frac else "")
                        + (f", gain-switched {gain:.1%}" if gain else "")
                    )  # fmt: skip
                    rows.append((label, w))
    for lam in (0.001, 0.1) if quick else (0.001, 0.01, 0.1, 1.0):
        frame = np.random.default_rng(100 + int(lam * 1000)).poisson(lam, shape).astype(np.uint16)
        rows.append((f"photon counts, {lam:g} photons/pixel", frame))
    return rows


def family_rows(quick: bool) -> list[dict[str, Any]]:
    repeats = 3 if quick else 5
    out: list[dict[str, Any]] = []
    speed, dspeed, dratio = [], [], []
    for label, a in family_frames(quick):
        buf = np.empty(codec.compress_bound(a.nbytes, a.itemsize), np.uint8)
        dec = np.empty_like(a)
        ours_chunk = codec.compress(a, "bslz4", threads=1).copy()
        pkg_chunk = bitshuffle.compress_lz4(a)
        back = codec.decompress(ours_chunk, "bslz4", dtype=a.dtype, shape=a.shape)
        exact = bool(np.array_equal(back, a)) and bool(
            np.array_equal(
                bitshuffle.decompress_lz4(np.asarray(ours_chunk[12:]), a.shape, a.dtype), a
            )
        )
        t, tb = time_pair(
            lambda a=a, buf=buf: codec.compress(a, "bslz4", threads=1, out=buf),
            lambda a=a: bitshuffle.compress_lz4(a),
            repeats=repeats,
        )
        td, tbd = time_pair(
            lambda a=a, c=ours_chunk, d=dec: codec.decompress(
                c, "bslz4", dtype=a.dtype, shape=a.shape, out=d
            ),
            lambda a=a, c=pkg_chunk: bitshuffle.decompress_lz4(c, a.shape, a.dtype),
            repeats=repeats,
        )
        r_ours, r_pkg = a.nbytes / len(ours_chunk), a.nbytes / (len(pkg_chunk) + 12)
        paths = _core.bslz4_plane_paths(a)
        total = max(1, sum(paths.values()))
        share = ", ".join(f"{k} {v / total:.0%}" for k, v in paths.items() if v)
        rec = record(
            "codec",
            f"bslz4 family: {label}",
            nbytes=float(a.nbytes),
            t=t,
            baseline="bitshuffle pkg (1 thr)",
            baseline_t=tb,
            threads=1,
            target=None,
            target_text="a row of the family (summary row below)",
            ratio_ours=r_ours,
            ratio_package=r_pkg,
            size_vs_package=r_pkg / r_ours - 1,
            decompress_speedup=tbd["min"] / td["min"],
            plane_paths=paths,
            exact=exact,
            notes=(
                f"compress {tb['min'] / t['min']:.2f}x, decompress {tbd['min'] / td['min']:.2f}x; "
                f"ratio {r_ours:.2f} vs {r_pkg:.2f} ({(r_pkg / r_ours - 1) * 100:+.1f}% size); "
                f"planes: {share}{'' if exact else '; NOT EXACT'}"
            ),
        )
        out.append(rec)
        speed.append(rec["ratio"])
        dspeed.append(rec["decompress_speedup"])
        dratio.append(rec["size_vs_package"])
    med, low = float(np.median(speed)), float(min(speed))
    worst = out[int(np.argmin(speed))]
    ok = med >= 2.0 and low >= 1.5 and max(dratio) <= 0.03 and min(dspeed) >= 2.0
    summary = dict(worst)
    summary.update(
        case="bslz4 family: worst row (summary)",
        target=1.5,
        target_text="family median >= 2x, min >= 1.5x, size within 3%, decompress >= 2x, every row",
        met=ok,
        family_median=med,
        family_min=low,
        family_worst_size=max(dratio),
        family_min_decompress=min(dspeed),
        notes=(
            f"median {med:.2f}x, min {low:.2f}x ({worst['case'][14:]}); size vs package at worst "
            f"{max(dratio) * 100:+.1f}%; decompress at least {min(dspeed):.2f}x; {len(out)} rows"
        ),
    )
    return [*out, summary]


def run(quick: bool = False) -> list[dict[str, Any]]:
    modules = 2 if quick else 4
    repeats = 5 if quick else 9
    records: list[dict[str, Any]] = []
    records += _bslz4_case("raw Jungfrau u16", jungfrau_raw(modules), repeats, True)
    records += _bslz4_case("photons u16", photon_counts(modules), repeats, False)
    records += _bslz4_case("keV f32", kev_frames(modules), repeats, False)
    records += family_rows(quick)
    return records


if __name__ == "__main__":
    main(run)
