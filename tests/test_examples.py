"""Every config shipped in examples/ streams as shipped: only its endpoints are moved to
free loopback ports (and output folders to a temporary one), and the event count is kept
small. A receiver opens every message and checks completeness from the end totals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lclstream.config import load_config
from lclstream.pipeline import Pipeline
from proc_helpers import ReceiverThread, free_port

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))
EVENTS = 12


def test_there_are_example_configs() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_config_streams(path: Path, tmp_path: Path) -> None:
    cfg: dict[str, Any] = yaml.safe_load(path.read_text())
    load_config(cfg)  # valid exactly as shipped
    receivers: list[ReceiverThread] = []
    for h in cfg["data_handlers"]:
        if h["type"] == "BinaryDataStreamingDataHandler":
            if h.get("role", "server") == "client":  # the consumer binds
                rx = ReceiverThread("tcp://127.0.0.1:*", expect=None)
                h["urls"] = [rx.endpoint()]
            else:  # the streamer binds, the consumer connects
                url = f"tcp://127.0.0.1:{free_port()}"
                h["urls"] = [url]
                rx = ReceiverThread(url, bind=False)
                rx.endpoint()
            receivers.append(rx)
        elif h["type"] == "BinaryFileWritingDataHandler":
            h["write_directory"] = str(tmp_path / "out")
    res = Pipeline(cfg, events=EVENTS).run()
    assert res.complete, res
    assert res.events > 0
    for rx in receivers:
        got = rx.join()
        assert got.complete, got
        assert got.events == res.events
    if any(h["type"] == "BinaryFileWritingDataHandler" for h in cfg["data_handlers"]):
        assert list((tmp_path / "out").glob("*.h5"))
