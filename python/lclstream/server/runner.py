"""Each transfer in its own worker process, watched by a monitor thread.

Why a process: a transfer that crashes (a segfault in a plug-in, an out-of-memory kill) must
not take the server down; the monitor sees the process end without a result and marks the
transfer ``failed`` with the exit status. Progress, the bound endpoint and the result come
back over a queue; cancelling sets an event the worker's pipeline polls, so the stream ends
with an end message that says ``cancelled``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lclstream.server.store import TransferStore

__all__ = ["TransferRunner"]

#: How often a worker reports progress (seconds).
PROGRESS_PERIOD = 0.25
#: How often a worker writes its progress to its log (seconds).
LOG_PERIOD = 10.0
#: Modules a spare worker imports before it is "warm".
_WARM_MODULES = (
    "lclstream.calib",
    "lclstream.codec",
    "lclstream.formats.hdf5",
    "lclstream.formats.simplon",
    "lclstream.formats.raw",
    "lclstream.handlers",
    "lclstream.sources",
    "lclstream.sources.synthetic",
    "lclstream.transport",
)


#: Memory a spare worker faults in (and keeps in its heap) before it counts as warm.
WARM_MEMORY_BYTES = 384 << 20


def _warm_memory(nbytes: int) -> None:
    """Fault in ``nbytes`` now and keep them in this process's heap for the transfer.

    Why: a transfer's first steps (detector constants, batch buffers: a few hundred MB for a
    Jungfrau 4M) ran 3-5x slower in a fresh process than in the next one: every page was
    a fresh fault, and the kernel compacted memory for huge pages while the requester
    waited (the first POST after start-up got its first message after 2 s, later ones after
    0.5 s). glibc is told to serve large blocks from its heap and keep freed memory
    (``reuse_message_buffers``, the receiver's tuning), so what is faulted in here is what
    the transfer's arrays reuse. glibc only; elsewhere a no-op.
    """
    import numpy as np

    from lclstream import _core

    if not _core.reuse_message_buffers():
        return
    block = np.empty(nbytes, np.uint8)
    block.fill(0)  # written, so every page is faulted in (calloc'd pages would not be)
    del block


def _log(text: str) -> None:
    """One line of the worker's log (its stdout is the log file once a job arrived)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    print(f"{stamp}Z {text}", flush=True)


def _log_to(path: str | None) -> None:
    """Send this process's stdout and stderr, file descriptors included, to ``path``.

    Why the descriptors: psana, HDF5 and libzmq write to fds 1 and 2 from C, and what they
    say just before a transfer fails is what its owner needs; it stays on disk after the
    process is gone (killed, crashed) and after a server restart."""
    if path is None:
        return
    import sys

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for std in (1, 2):
        os.dup2(fd, std)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - own streams


def _worker(jobs: Any, q: Any, cancel: Any, warm: Any) -> None:
    """The worker process: import what a transfer needs, wait for its job on ``jobs``
    (spare workers wait here, warm, so a request does not pay for interpreter start-up and
    imports), run the pipeline, report what happens on ``q`` and in its log file."""
    try:
        import importlib
        import json

        from lclstream.config import load_config
        from lclstream.run.pipeline import Pipeline

        # what every transfer loads anyway, loaded while nobody waits
        for name in _WARM_MODULES:
            importlib.import_module(name)
        _warm_memory(WARM_MEMORY_BYTES)
        warm.set()
        job = jobs.get()
        if job is None:  # the spare is no longer needed
            return
        config, log_path = job
        _log_to(log_path)
        _log(f"transfer starting: {config.get('source_identifier', '')} (worker pid {os.getpid()})")
        last = [0.0, time.monotonic()]

        def progress(st: dict[str, Any]) -> None:
            now = time.monotonic()
            if cancel.is_set():
                pipe.cancel("canceled by the user")
            if now - last[0] >= PROGRESS_PERIOD:
                last[0] = now
                q.put(("progress", _progress(st)))
            if now - last[1] >= LOG_PERIOD:
                last[1] = now
                p = _progress(st)
                _log(f"sent {p['events_sent']} events ({p['bytes_sent']:,} bytes), "
                     f"dropped {p['events_dropped']}, {p['rate']:.1f} events/s")  # fmt: skip

        pipe = Pipeline(load_config(config), progress=progress)
        endpoints: list[str] = []
        for h in pipe.handlers:
            eps = getattr(h, "endpoints", None)  # streaming handlers say where they are
            if eps:
                endpoints.extend(eps)
        _log(f"streaming to {', '.join(endpoints) or 'the configured handlers'}")
        q.put(("ready", endpoints))
        if cancel.is_set():
            pipe.cancel("canceled by the user")
        res = pipe.run()
        summary = res.summary()
        verdict = "complete" if res.complete else f"incomplete ({res.incomplete_reason()})"
        _log(f"ended {res.end_state}, {verdict}: {res.events} of {res.events_read} events sent, "
             f"{summary['events_dropped']} dropped, {res.bytes_out:,} bytes in "
             f"{res.seconds:.2f} s")  # fmt: skip
        _log(f"summary {json.dumps(summary, default=str)}")
        q.put(("progress", {**_progress(pipe.stats()), "complete": res.complete}))
        q.put(("done", summary))
    except BaseException as e:  # noqa: BLE001 - reported to the server as the reason
        import traceback

        traceback.print_exc()  # into the log, when the job got that far
        result = getattr(e, "result", None)
        if result is not None:
            q.put(("progress", {**_progress(result.summary()), "complete": False}))
        q.put(("error", f"{type(e).__name__}: {e}"))


def _progress(st: dict[str, Any]) -> dict[str, Any]:
    secs = float(st.get("seconds", 0.0) or 0.0)
    sent = int(st.get("events_sent", st.get("events", 0)) or 0)
    return {
        "events_read": int(st.get("events_read", 0) or 0),
        "events_sent": sent,
        "events_dropped": int(st.get("events_dropped", 0) or 0),
        "bytes_sent": int(st.get("bytes_out", 0) or 0),
        "rate": sent / secs if secs > 0 else 0.0,
    }


@dataclass
class _Job:
    process: Any
    queue: Any
    cancel: Any
    thread: threading.Thread
    #: the worker's other synchronisation objects, alive as long as the worker
    keep: tuple[Any, ...] = ()


#: Seconds after a transfer takes the spare worker before its replacement starts. Why wait:
#: the replacement's interpreter start-up and imports (~0.5 s of CPU) would otherwise compete
#: with the transfer's own start (source, constants, first batch) on a small node, and the
#: first message came 2.2 s after the POST instead of under 1 s.
SPARE_DELAY = 2.0


class TransferRunner:
    """Starts, watches and cancels transfer processes; writes what happens to the store."""

    def __init__(
        self,
        store: TransferStore,
        *,
        on_change: Callable[[str], None] | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        self.store = store
        #: each transfer's worker log is ``log_dir/<id>.log`` (None: no log files)
        self.log_dir = None if log_dir is None else Path(log_dir)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.on_change = on_change
        self._ctx = mp.get_context("spawn")
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stopping = False
        #: a worker process waiting for the next transfer's config: (process, jobs queue,
        #: status queue, cancel event, warm event: set once its imports are done)
        self._spare: tuple[Any, Any, Any, Any, Any] | None = None

    def warm_up(self) -> None:
        """Start the spare worker now (the server calls this at start-up)."""
        with self._lock:
            if self._spare is None and not self._stopping:
                self._spare = self._spawn()

    def _spawn(self) -> tuple[Any, Any, Any, Any, Any]:
        # every synchronisation object lives as long as its worker: one freed here before
        # the child has unpickled it is gone for the child (FileNotFoundError at start)
        jobs: Any = self._ctx.Queue()
        q: Any = self._ctx.Queue()
        cancel = self._ctx.Event()
        warm = self._ctx.Event()
        proc = self._ctx.Process(
            target=_worker, args=(jobs, q, cancel, warm), name="transfer-worker", daemon=True
        )
        proc.start()
        return proc, jobs, q, cancel, warm

    def warm(self) -> bool:
        """Whether a spare worker has done its imports and waits for the next transfer."""
        with self._lock:
            spare = self._spare
        return spare is not None and spare[0].is_alive() and spare[4].is_set()

    def start(self, transfer_id: str, config: dict[str, Any]) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None or not spare[0].is_alive():
            spare = self._spawn()
        proc, jobs, q, cancel, warm = spare
        log = self.log_path(transfer_id)
        jobs.put((config, None if log is None else str(log)))
        # the next request finds a warm worker waiting, made once this transfer is under way
        timer = threading.Timer(SPARE_DELAY, self.warm_up)
        timer.daemon = True
        timer.start()
        thread = threading.Thread(
            target=self._monitor, args=(transfer_id, proc, q), daemon=True, name="transfer-monitor"
        )
        with self._lock:
            self._jobs[transfer_id] = _Job(proc, q, cancel, thread, (jobs, warm))
        thread.start()

    def log_path(self, transfer_id: str) -> Path | None:
        """Where the transfer's worker writes its log (kept after it ends, however it ends)."""
        return None if self.log_dir is None else self.log_dir / f"{transfer_id}.log"

    def cancel(self, transfer_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(transfer_id)
        if job is None:
            return False
        job.cancel.set()
        return True

    def pid(self, transfer_id: str) -> int | None:
        """The process id of a running transfer (operators, tests), else None."""
        with self._lock:
            job = self._jobs.get(transfer_id)
        return None if job is None else int(job.process.pid)

    def running(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.process.is_alive())

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every running transfer and wait for them (server shutdown)."""
        with self._lock:
            jobs = list(self._jobs.items())
            self._stopping = True
            spare, self._spare = self._spare, None
        if spare is not None:
            spare[1].put(None)
            spare[0].join(5)
            if spare[0].is_alive():
                spare[0].terminate()
        for _, job in jobs:
            job.cancel.set()
        deadline = time.monotonic() + timeout
        for _, job in jobs:
            job.process.join(max(0.0, deadline - time.monotonic()))
            if job.process.is_alive():
                job.process.terminate()
            job.thread.join(max(0.0, deadline - time.monotonic()))

    def _changed(self, transfer_id: str) -> None:
        if self.on_change is not None:
            self.on_change(transfer_id)

    def _monitor(self, transfer_id: str, proc: Any, q: Any) -> None:
        store = self.store
        result: dict[str, Any] | None = None
        error: str | None = None
        while True:
            try:
                kind, value = q.get(timeout=0.2)
            except queue_mod.Empty:
                if not proc.is_alive():
                    try:  # what it said just before it ended
                        kind, value = q.get(timeout=0.5)
                    except queue_mod.Empty:
                        break
                else:
                    continue
            if kind == "ready":
                info = {"uri": value[0] if value else "", "endpoints": value, "socket": "push"}
                store.set_connection_info(transfer_id, info)
                store.transition(
                    transfer_id, "ready", "streaming", "producer", only_from=("provisioning",)
                )
            elif kind == "progress":
                rec = store.get(transfer_id)
                if rec is not None:
                    store.set_progress(transfer_id, {**rec.progress, **value})
            elif kind == "done":
                result = value
            elif kind == "error":
                error = value
            self._changed(transfer_id)
            if kind in ("done", "error"):
                break
        proc.join(5.0)
        rec = store.get(transfer_id)
        canceling = rec is not None and rec.state == "canceling"
        if result is not None:
            if result.get("end_state") == "cancelled" or canceling:
                store.transition(transfer_id, "canceled", "canceled by the user", "producer")
            elif result.get("complete"):
                store.transition(transfer_id, "completed", "every event sent", "producer")
            else:
                why = result.get("error") or f"ended {result.get('end_state')}"
                store.transition(transfer_id, "failed", str(why), "producer")
        elif error is not None:
            store.transition(transfer_id, "canceled" if canceling else "failed", error, "producer")
        else:
            store.transition(
                transfer_id,
                "failed",
                f"the transfer's process ended without a result (exit status {proc.exitcode})",
                "orchestrator",
            )
        with self._lock:
            self._jobs.pop(transfer_id, None)
        self._changed(transfer_id)
