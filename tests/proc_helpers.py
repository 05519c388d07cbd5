"""Shared helpers for tests that start ``lclstream`` processes or stream synthetic Jungfrau."""

from __future__ import annotations

import os
import queue
import socket
import threading
from pathlib import Path
from typing import Any

import lclstream
import numpy as np
from lclstream import calib
from lclstream.pipeline import ReceiveResult, receive

#: The directory holding the ``lclstream`` package, for a child process's PYTHONPATH.
PYTHON_DIR = str(Path(lclstream.__file__).resolve().parent.parent)


def free_port() -> int:
    """A TCP port on 127.0.0.1 the OS just reported free."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env() -> dict[str, str]:
    """This process's environment with the tested package first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    return env


def synthetic_jungfrau(photon_energy_keV: float) -> dict[str, Any]:
    """``data_sources`` entry: one synthetic Jungfrau module, half the events hits."""
    return {
        "type": "SyntheticDetector",
        "detector": "jungfrau",
        "hit_fraction": 0.5,
        "pool_frames": 4,
        "photon_energy_keV": photon_energy_keV,
    }


def photon_stream_config(
    serializer: str,
    handlers: list[dict[str, Any]],
    events: int,
    *,
    photon_energy_keV: float,
    batch_size: int = 5,
    **ser: Any,
) -> dict[str, Any]:
    """A stream config: :func:`synthetic_jungfrau` events calibrated to photons, batched,
    serialized by ``serializer`` (with options ``ser``), sent to ``handlers``."""
    return {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": events},
        "data_sources": {"detector_data": synthetic_jungfrau(photon_energy_keV)},
        "processing_pipeline": {
            "type": "BatchProcessingPipeline",
            "batch_size": batch_size,
            "calibration": {"detector_data": {"detector": "jungfrau", "output": "photons"}},
        },
        "data_serializer": {"type": serializer, **ser},
        "data_handlers": handlers,
    }


def photon_calibrator(consts: dict[str, np.ndarray], photon_energy_keV: float) -> calib.Jungfrau:
    """The calibration the pipeline should apply to a synthetic source's raw frames."""
    return calib.Jungfrau(
        consts["pedestal"],
        consts["gain"],
        None,
        consts["mask"],
        output="photons",
        photon_energy_keV=photon_energy_keV,
    )


class ReceiverThread:
    """lclstream.pipeline.receive in a thread, as a consumer process would run it."""

    def __init__(self, url: str, **kw: Any) -> None:
        self.ready: queue.Queue[list[str]] = queue.Queue()
        self.result: ReceiveResult | None = None
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, args=(url,), kwargs=kw, daemon=True)
        self.t.start()

    def _run(self, url: str, **kw: Any) -> None:
        try:
            self.result = receive(url, on_ready=self.ready.put, **kw)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test
            self.error = e
            self.ready.put([])

    def endpoint(self) -> str:
        eps = self.ready.get(timeout=10)
        if self.error is not None:
            raise self.error
        return eps[0]

    def join(self) -> ReceiveResult:
        self.t.join(60)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
