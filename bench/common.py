"""Shared helpers for benchmarks: timing (warm-up discarded, best/median/max of repeats),
result records, and a main() that prints a table and writes JSON.

Every benchmark module exposes ``run(quick: bool = False) -> list[dict]``; each record is
made by :func:`record` so that the harness (``lclstream bench``) can merge and tabulate them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def summarize(times: list[float]) -> dict[str, float]:
    """min / median / max of repeated timings (one timing gives all three equal)."""
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def keep_freed_buffers() -> None:
    """glibc: serve large blocks from the heap and keep freed ones (the tuning lclstream's
    receivers use), so that each large message does not fault in fresh pages; plain ctypes,
    for the pyzmq baselines (a baseline without it pays ~8,000 faults per 32 MB message)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4  # <malloc.h>; the core's three calls
    ok = (
        libc.mallopt(m_mmap_max, 0) == 1
        and libc.mallopt(m_trim_threshold, 1 << 30) == 1
        and libc.mallopt(m_top_pad, 64 << 20) == 1
    )
    if not ok:
        raise RuntimeError("mallopt refused the baseline's buffer tuning")


def lclstream_cmd() -> list[str]:
    """The installed ``lclstream`` command beside this Python, else ``python -m``."""
    exe = Path(sys.executable).with_name("lclstream")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "lclstream.cli"]


def time_it(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Seconds per call: min, median and max over ``repeats`` after ``warmup`` discarded runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return summarize(times)


def time_pair(
    ours: Callable[[], Any], baseline: Callable[[], Any], repeats: int = 5, warmup: int = 1
) -> tuple[dict[str, float], dict[str, float]]:
    """Times two functions alternately (A, B, A, B, ...) so that load from other processes
    on a shared machine hits both alike; returns (ours, baseline) as :func:`time_it` does."""
    for _ in range(warmup):
        ours()
        baseline()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        baseline()
        tb.append(time.perf_counter() - t0)

    return summarize(ta), summarize(tb)


def record(
    benchmark: str,
    case: str,
    *,
    nbytes: float,
    t: dict[str, float],
    baseline: str,
    baseline_t: dict[str, float],
    threads: int = 1,
    target: float | None = None,
    target_text: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One result: our throughput against a baseline on the same bytes, as a ratio of best times."""
    gbps = nbytes / t["min"] / 1e9
    base_gbps = nbytes / baseline_t["min"] / 1e9
    ratio = baseline_t["min"] / t["min"]
    rec: dict[str, Any] = {
        "benchmark": benchmark,
        "case": case,
        "threads": threads,
        "bytes": nbytes,
        "seconds": t,
        "gbps": gbps,
        "baseline": baseline,
        "baseline_seconds": baseline_t,
        "baseline_gbps": base_gbps,
        "ratio": ratio,
        "target": target,
        "target_text": target_text,
        "met": None if target is None else ratio >= target,
    }
    rec.update(extra)
    return rec


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = round(os.getloadavg()[0], 2)  # 1-minute load when the run started: how quiet it was
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": load,
    }


def print_table(records: list[dict[str, Any]]) -> None:
    print(
        f"{'benchmark':<14} {'case':<34} {'thr':>3} {'GB/s':>8} {'baseline':<22} {'GB/s':>8} {'ratio':>7} target"
    )
    for r in records:
        tgt = (
            "" if r.get("target") is None else f"≥{r['target']:g} {'ok' if r['met'] else 'MISSED'}"
        )
        print(
            f"{r['benchmark']:<14} {r['case']:<34} {r['threads']:>3} {r['gbps']:>8.2f} "
            f"{r['baseline']:<22} {r['baseline_gbps']:>8.2f} {r['ratio']:>7.2f} {tgt}"
        )


def main(run: Callable[[bool], list[dict[str, Any]]]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    records = run(args.quick)
    print_table(records)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"machine": machine(), "results": records}, f, indent=1)
