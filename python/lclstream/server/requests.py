"""What a client may POST, and the stream config each request becomes.

Two bodies, as the transfer API and the LCLStream talk use them:

* LCLS' transfer API v2: ``{parameters: <an LCLStreamer config>, cache_mode, consumer_socket,
  job_spec_override}``. The server binds a socket for the consumer (``connection_info`` says
  where) and rewrites the config's handlers to stream there.
* The talk's short body: ``{exp, run, detector_name, mode: raw|calib, addr, ...}``. The
  streamer connects to ``addr`` (the consumer binds), as in LCLStream's demo.

Both are validated here with one-line errors naming the field (422).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["RequestError", "ShortRequest", "TransferRequest", "config_for", "experiment_and_run"]

_URL = re.compile(r"^(tcp|ipc|inproc)://\S+$")


class TransferRequest(BaseModel):
    """LCLS' transfer API v2 body."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any]
    cache_mode: Literal["per_transfer", "shared"] = "per_transfer"
    consumer_socket: Literal["pull", "dealer", "req"] = "pull"
    job_spec_override: dict[str, Any] | None = None


class ShortRequest(BaseModel):
    """The LCLStream talk's body (plus lclstream's optional keys)."""

    model_config = ConfigDict(extra="forbid")

    exp: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    run: int = Field(ge=0)
    access_mode: Literal["smd", "idx", "files"] = "smd"
    detector_name: str = Field("jungfrau4M", min_length=1, max_length=64)
    mode: Literal["raw", "calib"] = "calib"
    addr: str
    img_per_file: int | None = Field(None, ge=1)
    format: Literal["hdf5", "simplon", "raw", "npz"] = "hdf5"
    compression: str | None = "bitshuffle_with_lz4"
    events: int | None = Field(None, ge=0)
    first_event: int = Field(0, ge=0)
    hit_filter: bool = False

    @field_validator("addr")
    @classmethod
    def _zmq_url(cls, v: str) -> str:
        if not _URL.match(v):
            raise ValueError("must be a ZeroMQ URL such as tcp://host:5000")
        return v


def experiment_and_run(source_identifier: str) -> tuple[str | None, int | None]:
    """``exp=NAME,run=N`` (``:`` also separates, as LCLS-I identifiers do)."""
    exp = run = None
    for part in re.split(r"[,:]", source_identifier):
        k, _, v = part.strip().partition("=")
        if k == "exp" and v:
            exp = v
        elif k == "run" and v.isdigit():
            run = int(v)
    return exp, run


class RequestError(ValueError):
    """A short request names something this server cannot stream (422, the message says)."""


def config_for(req: ShortRequest, data_root: str | None = None) -> dict[str, Any]:
    """The stream config a short request asks for: a run of the data root (XTC2 through
    psana2, or HDF5/CXI files), or the synthetic demo experiment."""
    from pathlib import Path

    from lclstream.registry import format_names
    from lclstream.server.catalog import find_run

    entry = find_run(data_root, req.exp, req.run)
    if entry is None:
        raise RequestError(f"run: experiment {req.exp!r} has no run {req.run} on this server")

    serializer: dict[str, Any] = {"type": format_names()[req.format]}
    if req.compression and req.format != "npz":
        serializer["compression"] = req.compression
    synthetic = {
        "type": "SyntheticDetector",
        "detector": req.detector_name,
        "hit_fraction": 0.1,
        "seed": req.run,
        "pool_frames": 4,
    }
    events = 1000 if req.events is None else req.events
    cfg: dict[str, Any] = {
        "source_identifier": f"exp={req.exp},run={req.run}",
        "event_source": {
            "type": "InternalEventSource",
            "number_of_events_to_generate": events,
            "first_event": req.first_event,
        },
        "data_sources": {"detector_data": synthetic},
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 10},
        "data_serializer": serializer,
        "data_handlers": [
            {
                "type": "BinaryDataStreamingDataHandler",
                "urls": [req.addr],
                "role": "client",
                "socket_type": "push",
            }
        ],
    }
    calibration: dict[str, Any] = {"constants": "synthetic", "output": "photons"}
    if entry.kind != "synthetic":
        if req.detector_name not in entry.detectors:
            raise RequestError(
                f"detector_name: run {req.run} of {req.exp} has no {req.detector_name!r} "
                f"(it has: {', '.join(entry.detectors) or 'none'})"
            )
        constants = Path(data_root or ".") / req.exp / "calib" / f"{req.detector_name}.npz"
        if req.mode == "calib":
            if not constants.is_file():
                raise RequestError(
                    f"mode: calib needs constants for {req.detector_name} "
                    f"({req.exp}/calib/{req.detector_name}.npz); ask for mode: raw"
                )
            calibration = {"constants": str(constants), "output": "keV"}
        if entry.kind == "xtc2":
            ident = f"exp={req.exp},run={req.run},dir={entry.path}"
            if req.events is not None:  # psana's max_events counts the passed-over events too
                ident += f",max_events={req.first_event + req.events}"
            cfg["source_identifier"] = ident
            cfg["event_source"] = {"type": "Psana2EventSource", "first_event": req.first_event}
            cfg["data_sources"] = {
                "timestamp": {"type": "Psana2Timestamp"},
                "detector_data": {
                    "type": "Psana2DetectorInterface",
                    "psana_name": req.detector_name,
                    "psana_fields": "raw.raw",
                },
            }
        else:
            cfg["data_root"] = str(data_root)
            cfg["event_source"] = {
                "type": "Hdf5EventSource",
                "first_event": req.first_event,
                "number_of_events": req.events,
            }
            cfg["data_sources"] = {
                "detector_data": {"type": "Hdf5Dataset", "path": "/" + req.detector_name}
            }
    if req.mode == "calib":
        cfg["processing_pipeline"]["calibration"] = {"detector_data": calibration}
    if req.hit_filter:  # peakfinder8 with OM's defaults; misses dropped (reason "miss")
        if req.mode != "calib":
            raise RequestError("hit_filter: finds peaks in calibrated frames; ask for mode: calib")
        cfg["processing_pipeline"]["reduction"] = {
            "detector_data": {"peakfinder": {}, "hit_veto": {}}
        }
    return cfg
