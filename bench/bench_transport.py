"""Transport throughput: lclstream Sender/Receiver vs pyzmq ``copy=False``, same setup.

Sender and receiver run in separate processes (spawned): the parent sends, a child
receives and times blocks of ``n`` messages after a warm-up (discarded), best block wins.
Both sides use one pre-touched buffer, sent again and again (zero copy on both sides);
the receiver only looks at each message's length (no copy, no touching the payload).
Message sizes 64 KiB .. 32 MiB over tcp loopback and ipc. The baseline (pyzmq PUSH ->
PULL, ``send(copy=False)`` / ``recv(copy=False)``) runs in the same run with the same
process layout, hwm and sizes, alternating with ours (2-3 times each) so that load from
other users of the machine hits both alike; each side's best block is compared. Both
receivers get the same glibc tuning (keep freed message buffers: ours by ``reuse_buffers``,
pyzmq's by the same three ``mallopt`` calls), so large messages are not faulted in afresh.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from typing import Any

import numpy as np
from common import keep_freed_buffers, main, record

SIZES = [64 << 10, 1 << 20, 8 << 20, 32 << 20]
HWM = 16


def _messages(size: int, quick: bool) -> tuple[int, int, int]:
    """(warm-up messages, messages per timed block, blocks) for about 256 MiB per block."""
    budget = (64 << 20) if quick else (256 << 20)
    n = max(8, min(4000, budget // size))
    return max(4, n // 4), n, 2 if quick else 3


def _receiver(lib: str, url: str, warm: int, n: int, blocks: int, q: Any) -> None:
    if lib == "lclstream":
        from lclstream.transport import Receiver

        r = Receiver(url, rcvhwm=HWM, timeout=60.0, reuse_buffers=True)
        q.put(r.endpoints[0])

        def recv() -> int:
            (f,) = r.recv_frames()
            return int(f.nbytes)

    else:
        import zmq

        keep_freed_buffers()  # the receivers' glibc tuning, as ours has (reuse_buffers)
        ctx = zmq.Context()
        s = ctx.socket(zmq.PULL)
        s.rcvhwm = HWM
        s.rcvtimeo = 60000
        s.bind(url)
        q.put(s.getsockopt_string(zmq.LAST_ENDPOINT))

        def recv() -> int:
            return len(s.recv(copy=False))

    for _ in range(warm):
        recv()
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(n):
            recv()
        times.append(time.perf_counter() - t0)
    q.put(times)


def _send_all(lib: str, endpoint: str, buf: np.ndarray, count: int) -> None:
    if lib == "lclstream":
        from lclstream.transport import Sender

        with Sender(endpoint, sndhwm=HWM, timeout=60.0) as s:
            for _ in range(count):
                s.send(buf)
            s.close(60.0)
    else:
        import zmq

        keep_freed_buffers()  # the receivers' glibc tuning, as ours has (reuse_buffers)
        ctx = zmq.Context()
        s = ctx.socket(zmq.PUSH)
        s.sndhwm = HWM
        s.connect(endpoint)
        for _ in range(count):
            s.send(buf, copy=False)
        s.close(linger=60000)
        ctx.term()


def _measure(lib: str, url: str, size: int, quick: bool) -> dict[str, Any]:
    warm, n, blocks = _messages(size, quick)
    mpc = mp.get_context("spawn")
    q = mpc.Queue()
    p = mpc.Process(target=_receiver, args=(lib, url, warm, n, blocks, q))
    p.start()
    try:
        endpoint = q.get(timeout=60)
        buf = np.ones(size, dtype=np.uint8)  # pre-touched
        _send_all(lib, endpoint, buf, warm + n * blocks)
        times = q.get(timeout=120)
    finally:
        p.join(30)
        if p.is_alive():
            p.kill()
    return {"times": times, "n": float(n)}


def _interleaved(url: str, size: int, quick: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Ours and pyzmq measured alternately (load from other users hits both alike)."""
    runs: dict[str, list[float]] = {"lclstream": [], "pyzmq": []}
    paired: list[float] = []  # per round: pyzmq's best block time / ours
    n = 0.0
    for _ in range(2 if quick else 5):
        best: dict[str, float] = {}
        for lib in ("lclstream", "pyzmq"):
            m = _measure(lib, url, size, quick)
            runs[lib] += m["times"]
            best[lib] = min(m["times"])
            n = m["n"]
        paired.append(best["pyzmq"] / best["lclstream"])

    def summary(times: list[float]) -> dict[str, float]:
        return {
            "min": min(times),
            "median": sorted(times)[len(times) // 2],
            "max": max(times),
            "n": n,
        }

    ours = summary(runs["lclstream"])
    ours["paired_ratio"] = sorted(paired)[len(paired) // 2]
    return ours, summary(runs["pyzmq"])


def run(quick: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tmp = tempfile.mkdtemp(prefix="lclstream-bench-")
    sizes = SIZES
    for transport in ("tcp", "ipc"):
        for size in sizes:
            url = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp}/b{size}.ipc"
            ours, base = _interleaved(url, size, quick)
            n = ours["n"]
            label = (
                f"{transport} {size >> 20} MiB"
                if size >= 1 << 20
                else f"{transport} {size >> 10} KiB"
            )
            out.append(
                record(
                    "transport",
                    label,
                    nbytes=float(size * n),
                    t=ours,
                    baseline="pyzmq copy=False",
                    baseline_t=base,
                    target=0.8,
                    target_text=">= 0.8x pyzmq copy=False throughput",
                    message_bytes=size,
                    messages=int(n),
                    layout="sender: parent process; receiver: spawned process",
                )
            )
            # Loopback throughput drifts by 2x within minutes on this VM, for pyzmq and us
            # alike; the ratio of two best-of-run times can pair our slow stretch with its
            # fast one. The headline is the median over rounds of the ratio measured within
            # each round (ours then pyzmq, back to back); the best-time ratio is kept.
            rec = out[-1]
            rec["ratio_best_times"] = rec["ratio"]
            rec["ratio"] = ours["paired_ratio"]
            rec["met"] = rec["ratio"] >= 0.8
            rec["notes"] = (
                f"median of per-round ratios {rec['ratio']:.2f} "
                f"(ratio of best times {rec['ratio_best_times']:.2f})"
            )
    try:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    except OSError:
        pass
    return out


if __name__ == "__main__":
    main(run)
