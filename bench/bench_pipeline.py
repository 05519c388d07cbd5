"""End to end: raw Jungfrau 4M frames -> photon counts -> bslz4 -> HDF5 message -> ZeroMQ ->
a receiver process that opens every message.

Headline (DESIGN.md target, >= 5x): raw-input bytes/s of lclstream's pipeline against a plain
Python pipeline doing the same work the way it is done without lclstream: numpy calibration
(``np.choose`` over the three gain stages), one h5py ``BytesIO`` file per batch of 10 with
hdf5plugin's bitshuffle+LZ4 filter, pyzmq PUSH, run with ONE PRODUCER PROCESS PER CORE, into
a receiver process that opens every message with h5py (+ hdf5plugin) and reads the frames.
Same frames (the synthetic detector, same seed), same machine, same run.

Both are timed the same way: from "go" (producers/pipeline built, receiver bound, frames and
constants ready, pools touched) until the receiver has opened the last event's message. Start-up
(interpreters, frame generation) is excluded for both, as ``lclstream demo --json``'s
``seconds`` excludes it.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import socket
import time
from typing import Any

import numpy as np
from common import main, record

BATCH = 10
DETECTOR = {"detector": "jungfrau4M", "hit_fraction": 0.1, "seed": 1, "pool_frames": 8}
ENERGY = 9.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _detector() -> Any:
    from lclstream.sources.synthetic import SyntheticDetector

    return SyntheticDetector("detector_data", photon_energy_keV=ENERGY, **DETECTOR)


# ----------------------------------------------------------------- the plain-Python pipeline


def _numpy_photons(raw: np.ndarray, ped: np.ndarray, gfac: np.ndarray) -> np.ndarray:
    stage = np.minimum(raw >> 14, 2)
    adc = (raw & 0x3FFF).astype(np.float32)
    kev = (adc - np.choose(stage, ped)) * np.choose(stage, gfac)
    ph = np.rint(kev / np.float32(ENERGY))
    np.clip(ph, 0, 65535, out=ph)
    return ph.astype(np.uint16)


def _h5_message(data: np.ndarray) -> bytes:
    import h5py
    import hdf5plugin

    with io.BytesIO() as bio:
        with h5py.File(bio, "w") as fh:
            fh.create_dataset(
                "/entry_1/data_1/data",
                data=data,
                chunks=(1, *data.shape[1:]),
                compression=hdf5plugin.Bitshuffle(cname="lz4"),
            )
        return bio.getvalue()


def _plain_producer(url: str, worker: int, workers: int, n: int, ready: Any, go: Any) -> None:
    import zmq

    det = _detector()
    c = det.constants()
    ped = c["pedestal"]
    with np.errstate(divide="ignore"):
        gfac = np.where(c["gain"] != 0, 1.0 / c["gain"], 0).astype(np.float32) * c["mask"]
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.connect(url)
    mine = list(range(worker, n, workers))
    ready.put(worker)
    go.wait()
    for lo in range(0, len(mine), BATCH):
        ids = mine[lo : lo + BATCH]
        frames = np.stack([_numpy_photons(det.get_data(i), ped, gfac) for i in ids])
        sock.send(_h5_message(frames), copy=False)
    sock.close(linger=30_000)


def _plain_receiver(port: int, n: int, out: Any) -> None:
    import h5py
    import hdf5plugin  # noqa: F401
    import zmq

    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.bind(f"tcp://127.0.0.1:{port}")
    out.put(("ready", 0.0))
    got = 0
    while got < n:
        msg = sock.recv(copy=False)
        with h5py.File(io.BytesIO(msg.buffer), "r") as f:
            got += f["/entry_1/data_1/data"][()].shape[0]
    out.put(("done", time.monotonic()))


def plain_pipeline(n: int, producers: int) -> float:
    """Seconds from go to the receiver having opened all ``n`` events."""
    ctx = mp.get_context("spawn")
    port = _free_port()
    q, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    rx = ctx.Process(target=_plain_receiver, args=(port, n, q), daemon=True)
    rx.start()
    assert q.get(timeout=120)[0] == "ready"
    url = f"tcp://127.0.0.1:{port}"
    procs = [
        ctx.Process(target=_plain_producer, args=(url, w, producers, n, ready, go), daemon=True)
        for w in range(producers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    t0 = time.monotonic()
    go.set()
    kind, t1 = q.get(timeout=600)
    for p in procs:
        p.join(60)
    rx.join(10)
    return float(t1) - t0


# ------------------------------------------------------------------------------ lclstream


def _our_receiver(url: str, n: int, out: Any) -> None:
    from lclstream.pipeline import receive

    res = receive(
        url, bind=True, expect=n, timeout=120, on_ready=lambda eps: out.put(("ready", 0.0))
    )
    out.put(("done", time.monotonic(), res.complete, res.events))


def lclstream_pipeline(n: int) -> tuple[float, dict[str, Any]]:
    """Seconds from go to the receiver having opened all ``n`` events, and the run's summary."""
    from lclstream.cli import demo_config
    from lclstream.config import load_config
    from lclstream.pipeline import Pipeline

    ctx = mp.get_context("spawn")
    url = f"tcp://127.0.0.1:{_free_port()}"
    q = ctx.Queue()
    rx = ctx.Process(target=_our_receiver, args=(url, n, q), daemon=True)
    rx.start()
    assert q.get(timeout=120)[0] == "ready"
    cfg = demo_config(url, n, "hdf5")
    cfg["data_sources"]["detector_data"].update(DETECTOR)
    pipe = Pipeline(load_config(cfg))
    t0 = time.monotonic()
    res = pipe.run()
    _, t1, complete, events = q.get(timeout=600)
    rx.join(10)
    if not complete or events != n:
        raise RuntimeError(f"lclstream pipeline incomplete: {events}/{n} events")
    return float(t1) - t0, {
        "pipeline_seconds": res.seconds,
        "compression_ratio": res.compression_ratio,
        "stages": {k: round(v["busy_seconds"], 3) for k, v in res.stages.items()},
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 40 if quick else 200
    reps = 1 if quick else 2
    producers = os.cpu_count() or 1
    nbytes = float(n * 8 * 512 * 1024 * 2)
    lclstream_pipeline(min(n, 20))  # warm-up (page cache, imports), discarded
    ours: list[float] = []
    base: list[float] = []
    extra: dict[str, Any] = {}
    for _ in range(reps):  # interleaved so that machine load hits both alike
        t, extra = lclstream_pipeline(n)
        ours.append(t)
        base.append(plain_pipeline(n, producers))

    def stats(ts: list[float]) -> dict[str, float]:
        return {"min": min(ts), "median": float(np.median(ts)), "max": max(ts)}

    return [
        record(
            "pipeline",
            "JF4M raw->photons->bslz4 HDF5->zmq->rx",
            nbytes=nbytes,
            t=stats(ours),
            baseline=f"plain Python x{producers} proc",
            baseline_t=stats(base),
            threads=0,
            target=5.0,
            target_text="end to end >= 5x plain-Python pipeline (one producer per core)",
            events=n,
            events_per_second=n / min(ours),
            baseline_events_per_second=n / min(base),
            **extra,
        )
    ]


if __name__ == "__main__":
    main(run)
