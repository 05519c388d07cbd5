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

__all__ = ["ShortRequest", "TransferRequest", "config_for", "experiment_and_run"]

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


def config_for(req: ShortRequest) -> dict[str, Any]:
    """The stream config a short request asks for: the synthetic demo experiment, its
    detector of the requested kind (serving run directories from a data root comes with
    ``lclstream serve --data-root``)."""
    from lclstream.registry import format_names

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
    if req.mode == "calib":
        cfg["processing_pipeline"]["calibration"] = {
            "detector_data": {"constants": "synthetic", "output": "photons"}
        }
    return cfg
