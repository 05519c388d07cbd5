"""Scaling study: end-to-end events/s of ``lclstream stream`` into a ``lclstream receive``
process (which opens every message and checks completeness) as one parameter moves at a
time away from the reference run (synthetic Jungfrau 4M, photons, bslz4 HDF5, batch 10,
1 worker): batch size (= events per message), workers, and detector size (ePix10k2M,
Jungfrau 1M/4M/16M). Ratios are against the reference run measured in the same study.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import lclstream_cmd, record, summarize


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_one(config: dict[str, Any], events: int) -> dict[str, Any]:
    """Streams ``events`` events with ``config`` into a receiver process; returns the
    streamer's JSON summary plus the receiver's."""
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    cfg = copy.deepcopy(config)
    cfg["event_source"]["number_of_events_to_generate"] = events
    cfg["data_handlers"][0]["urls"] = [url]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "stream.yaml"
        path.write_text(yaml.safe_dump(cfg))
        recv = subprocess.Popen(
            [
                *lclstream_cmd(),
                "receive",
                url,
                "--expect",
                str(events),
                "--json",
                "--quiet",
                "--timeout",
                "120",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # the receiver binds before the streamer connects
        st = subprocess.run(
            [*lclstream_cmd(), "stream", str(path), "--json"],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        rout, rerr = recv.communicate(timeout=300)
    if st.returncode != 0:
        raise RuntimeError(f"lclstream stream failed: {st.stderr.strip()[-400:]}")
    if recv.returncode != 0:
        raise RuntimeError(f"lclstream receive failed: {rerr.strip()[-400:]}")
    doc: dict[str, Any] = json.loads(st.stdout.strip().splitlines()[-1])
    doc["receiver"] = json.loads(rout.strip().splitlines()[-1])
    return doc


def _reference(events_hint: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from lclstream.demo import demo_config

    return demo_config("tcp://127.0.0.1:1", events_hint, "hdf5")


def run(quick: bool = False) -> list[dict[str, Any]]:
    base = _reference(100)
    frames_4m = 60 if quick else 300
    studies: list[tuple[str, dict[str, Any], int]] = [
        ("reference: JF4M, batch 10, 1 worker", base, frames_4m)
    ]
    for bs in (1, 4, 20, 40):
        c = copy.deepcopy(base)
        c["processing_pipeline"]["batch_size"] = bs
        studies.append((f"batch_size={bs}", c, frames_4m))
    c = copy.deepcopy(base)
    c["processing_pipeline"]["workers"] = 2
    studies.append(("workers=2", c, frames_4m))
    for det, kind, n in (
        ("epix10k2M", "epix10ka", 4 * frames_4m // 2),
        ("jungfrau1M", "jungfrau", 4 * frames_4m),
        ("jungfrau16M", "jungfrau", max(20, frames_4m // 4)),
    ):
        c = copy.deepcopy(base)
        c["data_sources"]["detector_data"]["detector"] = det
        c["processing_pipeline"]["calibration"]["detector_data"]["detector"] = kind
        if det == "jungfrau16M":
            c["data_sources"]["detector_data"]["pool_frames"] = 4
        studies.append((f"detector={det}", c, n))
    out = []
    ref: dict[str, Any] | None = None
    for name, cfg, n in studies:
        doc = run_one(cfg, n)
        if not doc.get("complete") or not doc["receiver"].get("complete", True):
            raise RuntimeError(f"{name}: incomplete stream {doc}")
        if ref is None:
            ref = doc
        t = summarize([doc["seconds"]])
        scale = doc["bytes_in"] / ref["bytes_in"]
        bt = {k: ref["seconds"] * scale for k in ("min", "median", "max")}
        out.append(
            record(
                "scaling",
                name,
                nbytes=float(doc["bytes_in"]),
                t=t,
                baseline="reference run (same study)",
                baseline_t=bt,
                threads=int(cfg["processing_pipeline"].get("workers", 1)),
                events=doc["events"],
                events_per_s=doc["events"] / doc["seconds"],
                message_bytes=doc["bytes_out"] / max(1, doc.get("messages", 1)),
                compression_ratio=doc["bytes_in"] / max(1, doc["bytes_out"]),
                stages={k: v.get("busy_seconds") for k, v in doc.get("stages", {}).items()},
                notes=(
                    f"{doc['events'] / doc['seconds']:.1f} events/s, "
                    f"{doc['bytes_out'] / max(1, doc.get('messages', 1)) / 1e6:.2f} MB/message, "
                    "stage busy s: "
                    + ", ".join(
                        f"{k} {v.get('busy_seconds', 0):.2f}"
                        for k, v in doc.get("stages", {}).items()
                    )
                ),
            )
        )
    return out


if __name__ == "__main__":
    from common import main

    main(run)
