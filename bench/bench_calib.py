"""Calibration kernels against numpy versions of the same formula, and against the memory bound.

Jungfrau 4M (8 x 512 x 1024), 3 gain stages: the prepared ``lclstream.calib.Jungfrau`` against
numpy selecting each pixel's constants with ``np.choose`` over the prepared (3, ...) arrays
(the DESIGN target: >= 10x, one thread), and against the memory-traffic bound: the bytes the
kernel must touch (raw in + G0 pedestal + G0 factor + output) moved at the speed of one large
warm copy (``_core.parallel_copy``, one thread) measured in the same run (targets: >= 70% for
keV, >= 55% for photons). ePix10k2M and the generic kernel are compared with numpy too.

Raw frames: 14-bit noise around the pedestal with 0.1% of pixels in G1/G2 (scattered, so
~1.6% of 16-pixel groups take the patch branch) and a few invalid codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import main, record, time_it, time_pair
from lclstream import _core, calib

JF4M = (8, 512, 1024)
EPIX2M = (16, 352, 384)


def jf_constants(frame: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    ped = np.stack([rng.normal(m, 30, frame) for m in (1500, 11000, 12500)]).astype(np.float32)
    gain = np.stack([rng.normal(m, s, frame) for m, s in ((40, 1), (-1.5, 0.05), (-0.1, 0.003))])
    return {"pedestal": ped, "gain": gain.astype(np.float32)}


def jf_raw(
    shape: tuple[int, ...], rng: np.random.Generator, stage_fraction: float = 1e-3
) -> np.ndarray:
    raw = np.clip(rng.normal(1500, 40, shape), 0, 0x3FFF).astype(np.uint16)
    sel = rng.random(shape) < stage_fraction
    code = rng.choice(np.array([1, 3, 2], np.uint16), size=int(sel.sum()), p=[0.6, 0.39, 0.01])
    raw[sel] |= code << 14
    return raw


def numpy_jungfrau(raw: np.ndarray, poff: np.ndarray, gfac: np.ndarray) -> np.ndarray:
    """The plain numpy way: pick each pixel's constants among the 3 gains with np.choose."""
    g = raw >> 14
    idx = np.where(g == 3, 2, g & 1)
    out = ((raw & 0x3FFF).astype(np.float32) - np.choose(idx, poff)) * np.choose(idx, gfac)
    out[g == 2] = 0
    return out


class CopyBound:
    """The memory speed the bound is taken at: one thread copying a large warm array
    (``_core.parallel_copy``, memcpy; 64 MiB each way, on huge pages like every large numpy
    array), in bytes moved (read + write) per second.

    Memory speed on this (virtual, shared-host) machine drifts by up to 30% within seconds,
    so the copy is not timed once but interleaved with every kernel's repeats (A, B, A, B, ...
    via ``time_pair``, warm-up discarded), and the bound is the fastest copy of the whole run:
    the best over every moment the kernels were timed in, so it errs high. Each record also
    keeps the copy interleaved with it (``paired_gbps``, ``ratio_paired``).
    The kernels are timed on a cold cache, as in use: each copy moves 128 MiB through the
    32 MiB L3, so kernel repeats do not find their 40-56 MB of inputs left in cache (back to
    back they did, which flattered them).
    """

    def __init__(self, nbytes: int) -> None:
        self.src = np.ones(nbytes // 4, np.float32)
        self.dst = np.zeros_like(self.src)
        self.best_gbps = 0.0

    def copy(self) -> None:
        _core.parallel_copy(self.dst, self.src, threads=1)

    def gbps(self, t: dict[str, float]) -> float:
        return 2 * self.src.nbytes / t["min"] / 1e9

    def time(self, fn: Any, repeats: int) -> tuple[dict[str, float], float]:
        """Times ``fn`` interleaved with the copy: (fn's times, that copy's GB/s)."""
        t, tc = time_pair(fn, self.copy, repeats=repeats, warmup=2)
        g = self.gbps(tc)
        self.best_gbps = max(self.best_gbps, g)
        return t, g


def bound_record(
    case: str,
    nbytes: float,
    t: dict[str, float],
    gbps: float,
    threads: int,
    target: float | None,
) -> dict[str, Any]:
    """A record against the bound at the speed of the copy timed interleaved with it."""
    bound_t = {k: nbytes / (gbps * 1e9) for k in ("min", "median", "max")}
    return record(
        "calib",
        case,
        nbytes=nbytes,
        t=t,
        baseline="copy bound (1 thr)",
        baseline_t=bound_t,
        threads=threads,
        target=target,
        target_text="fraction of the memory-traffic bound",
        paired_gbps=gbps,
    )


def run(quick: bool = False) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    reps = 3 if quick else 7
    nrep = 1 if quick else 3
    records: list[dict[str, Any]] = []
    bound = CopyBound(64 << 20)
    breps = 5 if quick else 15  # repeats of a kernel timed against the bound
    bound.time(bound.copy, breps)

    # ---- Jungfrau 4M ---------------------------------------------------------------------
    c = jf_constants(JF4M, rng)
    raw = jf_raw(JF4M, rng)
    npx = raw.size
    poff = c["pedestal"]
    gfac = np.where(c["gain"] == 0, 0, np.float32(1) / c["gain"]).astype(np.float32)
    t_np = time_it(lambda: numpy_jungfrau(raw, poff, gfac), repeats=nrep)
    for output, dtype, out_bytes, bound_target in (
        ("keV", np.float32, 4, 0.70),
        ("photons", np.uint16, 2, 0.55),
    ):
        touched = npx * (2 + 4 + 4 + out_bytes)
        for threads in (1, 2):
            for isa in _core.available_isas():
                _core.set_isa(isa)
                cal = calib.Jungfrau(
                    c["pedestal"],
                    c["gain"],
                    threads=threads,
                    output=output,
                    photon_energy_keV=9.5 if output == "photons" else None,
                )
                out = np.empty(raw.shape, dtype)
                cal(raw, out)  # touch out once
                best = isa == _core.available_isas()[0]
                headline = best and threads == 1  # the rows with a target: more repeats
                t, gbps = bound.time(
                    lambda cal=cal, out=out: cal(raw, out), 3 * breps if headline else breps
                )
                case = f"jungfrau4M {output} {isa}"
                if threads == 1:
                    records.append(
                        record(
                            "calib",
                            case,
                            nbytes=raw.nbytes,
                            t=t,
                            baseline="numpy np.choose",
                            baseline_t=t_np,
                            threads=threads,
                            target=10.0 if isa == _core.available_isas()[0] else None,
                            target_text="x numpy np.choose, one thread",
                        )
                    )
                records.append(
                    bound_record(
                        case,
                        touched,
                        t,
                        gbps,
                        threads,
                        bound_target if best and threads == 1 else None,
                    )
                )
        _core.set_isa(_core.available_isas()[0])

    # ---- Jungfrau 4M with common mode (median per row in 64-column banks) ----------------
    xg = raw >> 14

    def numpy_cm() -> np.ndarray:
        idx = np.where(xg == 3, 2, xg & 1)
        x = (raw & 0x3FFF).astype(np.float32) - np.choose(idx, poff)
        g0 = (xg == 0).reshape(-1, 64)
        xr = x.reshape(-1, 64)
        cand = np.where(g0 & (xr < 100), xr, np.nan)
        n = (~np.isnan(cand)).sum(axis=1)
        cm = np.nanmedian(cand, axis=1).astype(np.float32)
        cm = np.where((n >= 10) & (np.abs(cm) < 100), cm, np.float32(0))
        xr -= np.where(g0, cm[:, None], np.float32(0))
        out = x * np.choose(idx, gfac)
        out[xg == 2] = 0
        return out

    t_npcm = time_it(numpy_cm, repeats=1 if quick else 2)
    for threads in (1, 2):
        cmcal = calib.Jungfrau(c["pedestal"], c["gain"], threads=threads, common_mode=True)
        cmout = np.empty(raw.shape, np.float32)
        cmcal(raw, cmout)
        t_cm, gbps = bound.time(lambda cmcal=cmcal, cmout=cmout: cmcal(raw, cmout), reps)
        records.append(
            record(
                "calib",
                "jungfrau4M keV common mode",
                nbytes=raw.nbytes,
                t=t_cm,
                baseline="numpy nanmedian",
                baseline_t=t_npcm,
                threads=threads,
            )
        )
        records.append(
            bound_record("jungfrau4M keV common mode", npx * 14, t_cm, gbps, threads, None)
        )

    # ---- reduction helpers ---------------------------------------------------------------
    kev = np.empty(raw.shape, np.float32)
    calib.Jungfrau(c["pedestal"], c["gain"], threads=1)(raw, kev)
    work = kev.copy()

    def ours_zero() -> None:
        np.copyto(work, kev)
        calib.zero_below(work, 4.0, threads=1)

    def numpy_zero() -> None:
        np.copyto(work, kev)
        np.copyto(work, 0, where=work < 4.0)

    t_z = time_it(ours_zero, repeats=reps)
    t_zn = time_it(numpy_zero, repeats=reps)
    records.append(
        record(
            "calib",
            "zero_below float32 (+copy)",
            nbytes=kev.nbytes,
            t=t_z,
            baseline="numpy copyto where",
            baseline_t=t_zn,
        )
    )
    counts = np.empty(raw.shape, np.uint16)
    t_b = time_it(lambda: calib.bin_pixels(counts, 2, 2, threads=1), repeats=reps)
    t_bn = time_it(
        lambda: counts.reshape(8, 256, 2, 512, 2).sum(axis=(2, 4), dtype=np.uint32), repeats=nrep
    )
    records.append(
        record(
            "calib",
            "bin_pixels 2x2 uint16",
            nbytes=counts.nbytes,
            t=t_b,
            baseline="numpy reshape-sum",
            baseline_t=t_bn,
        )
    )

    # ---- ePix10k2M ------------------------------------------------------------------------
    ped7 = rng.normal(1500, 30, (7, *EPIX2M)).astype(np.float32)
    gain7 = np.array([16.4, 5.466, 0.164, 16.4, 5.466, 0.164, 0.164], np.float32)[
        :, None, None, None
    ] * np.ones((7, *EPIX2M), np.float32)
    cbits = np.full(EPIX2M, 16, np.uint8)  # auto-ranging high/low (AHL)
    eraw = np.clip(rng.normal(1500, 40, EPIX2M), 0, 0x3FFF).astype(np.uint16)
    eraw[rng.random(EPIX2M) < 1e-3] |= 0x4000
    gf7 = np.float32(1) / gain7

    def numpy_epix() -> np.ndarray:
        cb = cbits | ((eraw & 0x4000) >> 9)
        conds = [
            cb & 28 == 28,
            cb & 28 == 12,
            cb & 12 == 8,
            cb & 60 == 16,
            cb & 60 == 0,
            cb & 60 == 48,
            cb & 60 == 32,
        ]
        f = np.select(conds, list(gf7), default=1)
        p = np.select(conds, list(ped7), default=0)
        return ((eraw & 0x3FFF).astype(np.float32) - p) * f

    t_npe = time_it(numpy_epix, repeats=nrep)
    ecal = calib.Epix10ka(ped7, gain7, cbits, threads=1)
    eout = np.empty(eraw.shape, np.float32)
    t_e, gbps = bound.time(lambda: ecal(eraw, eout), reps)
    records.append(
        record(
            "calib",
            "epix10k2M keV",
            nbytes=eraw.nbytes,
            t=t_e,
            baseline="numpy np.select",
            baseline_t=t_npe,
        )
    )
    records.append(bound_record("epix10k2M keV", eraw.size * 14, t_e, gbps, 1, None))

    # ---- generic --------------------------------------------------------------------------
    gped = rng.normal(100, 5, JF4M[1:]).astype(np.float32)
    ggain = rng.normal(2, 0.1, JF4M[1:]).astype(np.float32)
    graw = rng.integers(-500, 2000, (16, *JF4M[1:])).astype(np.int16)
    ggf = np.float32(1) / ggain
    t_npg = time_it(lambda: (graw.astype(np.float32) - gped) * ggf, repeats=nrep)
    gcal = calib.Generic(gped, ggain, threads=1)
    gout = np.empty(graw.shape, np.float32)
    t_g, gbps = bound.time(lambda: gcal(graw, gout), reps)
    records.append(
        record(
            "calib",
            "generic int16 keV",
            nbytes=graw.nbytes,
            t=t_g,
            baseline="numpy formula",
            baseline_t=t_npg,
        )
    )
    records.append(bound_record("generic int16 keV", graw.size * 14, t_g, gbps, 1, None))
    # Every bound ratio against the fastest copy of the whole run (all interleaved repeats):
    # the copy interleaved with one kernel can catch a slow moment of the memory system that
    # the kernel does not feel alike (ratios above 1 were seen), so that per-kernel view is
    # kept only as ``ratio_paired``; the bound errs high.
    bound.time(bound.copy, breps)
    gbps = bound.best_gbps
    for r in records:
        r["copy_gbps"] = gbps
        if r["baseline"].startswith("copy bound"):
            r["ratio_paired"] = r["ratio"]
            r["baseline_seconds"] = {k: r["bytes"] / (gbps * 1e9) for k in ("min", "median", "max")}
            r["baseline_gbps"] = gbps
            r["ratio"] = r["gbps"] / gbps
            if r["target"] is not None:
                r["met"] = r["ratio"] >= r["target"]
    return records


if __name__ == "__main__":
    main(run)
