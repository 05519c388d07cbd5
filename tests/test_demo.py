"""``lclstream.demo.run_demo``: the library call behind ``lclstream demo`` and the end-to-end
benchmark. Two real processes over loopback TCP; the receiver opens every message."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from lclstream.demo import DemoRun, fresh_dir, run_demo


def test_run_demo_is_complete_and_counts_match(tmp_path: Path) -> None:
    sent: list[dict[str, object]] = []
    got: list[tuple[int, int]] = []
    run = run_demo(
        20,
        tmp_path / "out",
        "hdf5",
        on_sent=sent.append,
        on_received=lambda e, b: got.append((e, b)),
    )
    assert isinstance(run, DemoRun)
    assert run.complete, run.as_dict()
    d = run.as_dict()
    assert d["events_read"] == 20 and d["received_events"] == 20
    assert d["received_bytes"] > 0 and d["format"] == "hdf5"
    assert d["startup_seconds"] > 0
    assert got and got[-1][0] == 20  # the receiver's progress reached the caller
    assert sent  # the streamer's progress too
    assert 1 <= len(run.files) <= 3
    for f in run.files:  # files the receiver kept are real, self-describing HDF5
        with h5py.File(f, "r") as h5:
            assert len(h5.keys()) > 0


@pytest.mark.parametrize("fmt", ["simplon", "raw"])
def test_run_demo_other_formats(tmp_path: Path, fmt: str) -> None:
    run = run_demo(10, tmp_path / fmt, fmt)
    assert run.complete and run.received["events"] == 10


def test_run_demo_with_hits_drops_the_misses_and_stays_complete(tmp_path: Path) -> None:
    """``demo --hits``: the synthetic source's hits (10%) are kept, the misses counted."""
    from lclstream.config import load_config
    from lclstream.demo import demo_config
    from lclstream.sources import open_source

    src = open_source(load_config(demo_config("tcp://127.0.0.1:1", 40)))
    truth = sum(1 for ev in src.events() if ev.is_hit)
    src.close()
    run = run_demo(40, tmp_path / "hits", "hdf5", hits=True)
    d = run.as_dict()
    assert run.complete, d
    assert d["events_read"] == 40 and d["events"] == d["received_events"] == truth
    assert d["drop_reasons"] == {"miss": 40 - truth} and d["hits"] == truth
    for f in run.files:
        with h5py.File(f, "r") as h5:
            if "entry_1/data_1/data" in h5:
                assert (h5["entry_1/result_1/nPeaks"][()] >= 30).all()


def test_fresh_dir_never_reuses(tmp_path: Path) -> None:
    base = tmp_path / "d"
    assert fresh_dir(base) == base
    base.mkdir()
    assert fresh_dir(base) == tmp_path / "d-1"
