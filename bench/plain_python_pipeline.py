"""The baseline for the end-to-end benchmark: a plain-Python streaming pipeline doing what
LCLStreamer does, written the straightforward way.

Producers (one process per core): numpy calibration of raw Jungfrau frames to photon counts
(constants selected per pixel among the 3 gains with ``np.choose``), one h5py ``BytesIO``
file per batch of 10 with hdf5plugin's bitshuffle+LZ4 filter (one chunk per event), pyzmq
PUSH. One receiver process (PULL) opens every message with h5py and reads the data.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import time
from typing import Any

import numpy as np

END = b"END"


def prepare_numpy(gain: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Once per run, as psana does: 1/gain as float32 (0 where gain is 0), mask folded in."""
    with np.errstate(divide="ignore"):
        gfac = np.where(gain == 0, np.float32(0), np.float32(1) / gain).astype(np.float32)
    return gfac * (mask != 0)


def calibrate_numpy(
    raw: np.ndarray, pedestal: np.ndarray, gfac: np.ndarray, energy_kev: float
) -> np.ndarray:
    """psana's Jungfrau formula, vectorised with numpy (constants chosen per pixel among the
    3 gains with np.choose), then photon counts."""
    gbits = raw >> 14
    stage = np.where(gbits == 3, 2, gbits).astype(np.intp)  # 0->G0, 1->G1, 3->G2 (2 invalid)
    stage[gbits == 2] = 0
    kev = ((raw & 0x3FFF).astype(np.float32) - np.choose(stage, pedestal)) * np.choose(stage, gfac)
    kev[gbits == 2] = 0
    return np.maximum(0, np.rint(kev / np.float32(energy_kev))).astype(np.uint16)


def h5_message(photons: np.ndarray, sequence: int) -> bytes:
    import h5py
    import hdf5plugin

    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        f.attrs["sequence"] = sequence
        f.create_dataset(
            "/entry_1/data_1/data",
            data=photons,
            chunks=(1, *photons.shape[1:]),
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
    return bio.getvalue()


def _producer(
    url: str,
    frames: np.ndarray,
    pedestal: np.ndarray,
    gfac: np.ndarray,
    energy: float,
    n_events: int,
    batch: int,
    start: Any,
) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 4)
    sock.connect(url)
    start.wait()
    seq = 0
    for first in range(0, n_events, batch):
        n = min(batch, n_events - first)
        raw = np.stack([frames[(first + i) % len(frames)] for i in range(n)])
        photons = np.stack([calibrate_numpy(r, pedestal, gfac, energy) for r in raw])
        sock.send(h5_message(photons, seq), copy=False)
        seq += 1
    sock.send(END)
    sock.close(linger=-1)
    ctx.term()


def _receiver(url_q: Any, producers: int, result_q: Any) -> None:
    import h5py
    import hdf5plugin  # noqa: F401  (registers the filter)
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    url_q.put(f"tcp://127.0.0.1:{port}")
    ended = events = nbytes = 0
    t_first = None
    while ended < producers:
        msg = sock.recv(copy=False)
        if t_first is None:
            t_first = time.perf_counter()
        if bytes(msg.buffer[:3]) == END and len(msg.buffer) == 3:
            ended += 1
            continue
        nbytes += len(msg.buffer)
        with h5py.File(io.BytesIO(msg.buffer), "r") as f:
            data = f["/entry_1/data_1/data"][()]
            events += data.shape[0]
    result_q.put({"events": events, "bytes_out": nbytes, "t_end": time.perf_counter()})
    sock.close()
    ctx.term()


def run_baseline(
    frames: np.ndarray,
    pedestal: np.ndarray,
    gain: np.ndarray,
    mask: np.ndarray,
    energy: float,
    events_per_producer: int,
    producers: int,
    batch: int = 10,
) -> dict[str, Any]:
    """Runs the plain-Python pipeline; returns events, raw bytes in, seconds, bytes out."""
    ctx = mp.get_context("fork")
    url_q, result_q = ctx.Queue(), ctx.Queue()
    start = ctx.Event()
    recv = ctx.Process(target=_receiver, args=(url_q, producers, result_q))
    recv.start()
    url = url_q.get(timeout=60)
    gfac = prepare_numpy(gain, mask)
    procs = [
        ctx.Process(
            target=_producer,
            args=(url, frames, pedestal, gfac, energy, events_per_producer, batch, start),
        )
        for _ in range(producers)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)  # producers connected and idle: start-up is not part of the window
    t0 = time.perf_counter()
    start.set()
    res = result_q.get(timeout=3600)
    for p in procs:
        p.join()
    recv.join()
    seconds = res["t_end"] - t0
    return {
        "events": res["events"],
        "bytes_in": res["events"] * frames[0].nbytes,
        "bytes_out": res["bytes_out"],
        "seconds": seconds,
    }
