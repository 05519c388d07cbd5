"""psana2 source: our per-rank overhead over a plain psana loop on the same XTC2 run.

The run is real XTC2 written by psana's own tools (xtcwriter + DgramEdit: a Jungfrau 4M,
8 raw uint16 segments per event). Both sides open the run and hand every event's frame on:

* baseline: the loop a psana user writes, ``for evt in run.events(): det.raw.raw(evt)``
  (psana's default copy), touching each frame;
* ours: ``Psana2EventSource.events()`` (psana underneath; Event objects with ids, timestamps
  and the frame), each frame copied into a reused batch-sized buffer as the pipeline's
  assembler does.

Target (DESIGN.md / the psana2 issue): our overhead <= 10% per rank, i.e. ratio >= 0.9.
The sweep varies the run length (psana's per-run start-up weighs more on short runs); the
headline is the worst row.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from common import lclstream_cmd, main, record, time_pair

SEGMENTS = 8
FRAME_BYTES = SEGMENTS * 512 * 1024 * 2


def _plain_psana(path: Path) -> int:
    from psana import DataSource

    ds = DataSource(files=[str(path)], skip_calib_load="all")
    run = next(ds.runs())
    det = run.Detector("jungfrau")
    n = 0
    for evt in run.events():
        frame = det.raw.raw(evt)
        n += int(frame[0, 0, :8].sum() >= 0)
    return n


def _source_config(identifier: str) -> dict[str, Any]:
    """A psana2 source reading the jungfrau's raw frames."""
    return {
        "source_identifier": identifier,
        "event_source": {"type": "Psana2EventSource"},
        "data_sources": {
            "detector_data": {
                "type": "Psana2DetectorInterface",
                "psana_name": "jungfrau",
                "psana_fields": "raw.raw",
            }
        },
    }


def _ours(path: Path) -> int:
    from lclstream.config import load_config
    from lclstream.sources import open_source

    src = open_source(load_config(_source_config(f"files={path}")))
    slots = np.empty((10, SEGMENTS, 512, 1024), np.uint16)  # a batch, as the assembler has
    n = 0
    try:
        for ev in src.events():
            frame = ev.data["detector_data"]
            np.copyto(slots[n % 10], frame)
            n += int(slots[n % 10, 0, 0, :8].sum() >= 0)
    finally:
        src.close()
    return n


def _stream(identifier: str, events: int, ranks: int) -> tuple[float, list[dict[str, Any]]]:
    """``lclstream stream`` (under ``mpirun -n ranks`` when ranks > 1) into ``lclstream
    receive``; returns (seconds of the slowest sender, every rank's JSON line)."""
    url = f"tcp://127.0.0.1:{_free_port()}"
    cfg = {
        **_source_config(identifier),
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 10},
        "data_serializer": {"type": "HDF5BinarySerializer", "compression": "bitshuffle_with_lz4"},
        "data_handlers": [{"type": "BinaryDataStreamingDataHandler", "urls": [url]}],
    }
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "psana.yaml"
        path.write_text(yaml.safe_dump(cfg))
        recv = subprocess.Popen(
            [*lclstream_cmd(), "receive", url, "--expect", str(events), "--json", "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # the receiver binds before the streamer connects
        launcher = [str(Path(sys.executable).with_name("mpirun")), "-n", str(ranks)]
        st = subprocess.run(
            [*(launcher if ranks > 1 else []), *lclstream_cmd(), "stream", str(path), "--json"],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PS_SMD_N_EVENTS": "10"},
        )
        rout, rerr = recv.communicate(timeout=300)
    if st.returncode != 0 or recv.returncode != 0:
        raise RuntimeError(f"psana stream failed: {st.stderr.strip()[-400:]} {rerr[-200:]}")
    if not json.loads(rout.strip().splitlines()[-1])["complete"]:
        raise RuntimeError("the receiver reported the psana stream incomplete")
    lines = [json.loads(ln) for ln in st.stdout.splitlines() if ln.startswith("{")]
    senders = [ln for ln in lines if ln.get("streams", True)]
    return max(ln["seconds"] for ln in senders), lines


def _free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def run(quick: bool = False) -> list[dict[str, Any]]:
    try:
        import psana  # noqa: F401
    except ImportError:
        return []  # the psana extra is not installed: nothing to compare with
    from lclstream.sources.xtc2_files import make_xtc2_run

    records: list[dict[str, Any]] = []
    lengths = [10, 40] if quick else [20, 60, 150]
    repeats = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        for n_events in lengths:
            xtc = make_xtc2_run(Path(tmp) / f"r{n_events}", n_events, segments=SEGMENTS)
            assert _ours(xtc.bigdata) == n_events == _plain_psana(xtc.bigdata)
            # alternated (ours, baseline, ours, ...) so machine load hits both alike
            t_ours, t_base = time_pair(
                lambda p=xtc.bigdata: _ours(p),
                lambda p=xtc.bigdata: _plain_psana(p),
                repeats=repeats,
            )
            records.append(
                record(
                    "psana",
                    f"psana2 source JF4M, {n_events}-event XTC2 run",
                    nbytes=n_events * FRAME_BYTES,
                    t=t_ours,
                    baseline="plain psana loop det.raw.raw",
                    baseline_t=t_base,
                    target=0.9,
                    target_text="overhead <= 10% per rank (ratio >= 0.9)",
                    events_per_s=n_events / t_ours["min"],
                    baseline_events_per_s=n_events / t_base["min"],
                )
            )
        # mpirun -n 4: psana's roles (1 small-data, 1 event builder, 2 big-data ranks)
        n_events = lengths[-1]
        xtc = make_xtc2_run(Path(tmp) / "mpi", n_events, segments=SEGMENTS)
        serial_s, _ = _stream(xtc.source_identifier, n_events, 1)
        mpi_s, lines = _stream(xtc.source_identifier, n_events, 4)
        ranks = [
            {
                "rank": ln["rank"],
                "role": ln["role"],
                "events_read": ln.get("events_read", 0),
                "seconds": ln.get("seconds", 0.0),
                "busy_s": {k: round(v["busy_seconds"], 3) for k, v in ln.get("stages", {}).items()},
            }
            for ln in sorted(lines, key=lambda ln: ln["rank"])
        ]
        records.append(
            record(
                "psana",
                f"mpirun -n 4 lclstream stream, {n_events}-event JF4M run -> receive",
                nbytes=n_events * FRAME_BYTES,
                t={"min": mpi_s, "median": mpi_s, "max": mpi_s},
                baseline="the same stream, one process",
                baseline_t={"min": serial_s, "median": serial_s, "max": serial_s},
                threads=4,
                notes=(
                    f"{n_events / mpi_s:.1f} events/s with 4 ranks vs {n_events / serial_s:.1f} "
                    "in one process; "
                    + "; ".join(
                        f"rank {r['rank']} ({r['role']}): {r['events_read']} events"
                        + (
                            ", busy " + ", ".join(f"{k} {v:.2f} s" for k, v in r["busy_s"].items())
                            if r["busy_s"]
                            else ""
                        )
                        for r in ranks
                    )
                    + f". {os.cpu_count()} cores: psana's small-data and event-builder ranks "
                    "poll MPI and take cores the big-data ranks need"
                ),
                events_per_s=n_events / mpi_s,
                baseline_events_per_s=n_events / serial_s,
                ranks=ranks,
            )
        )
    return records


if __name__ == "__main__":
    main(run)
