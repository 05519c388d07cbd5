"""End to end over real loopback sockets: stream -> receive -> files -> inspect.

Every format (HDF5, SIMPLON stream2, raw batches, LCLStreamer's SIMPLON) and both handler
roles (streamer connects to a binding consumer; streamer binds, consumer connects), through
the library and through the ``lclstream`` command in separate processes. Frames are one
synthetic Jungfrau module (the full JF4M path runs in the demo test) and every received
event is checked against a direct call of the calibration kernel on the source's raw frame.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
import yaml
from lclstream.cli import app
from lclstream.config import load_config
from lclstream.pipeline import Pipeline
from lclstream.sources import open_source
from proc_helpers import (
    ReceiverThread,
    cli_env,
    free_port,
    photon_calibrator,
    photon_stream_config,
)
from typer.testing import CliRunner

ENERGY = 9.5
N = 13  # events: batches of 5, 5, 3


def config(
    serializer: str, handlers: list[dict[str, Any]], events: int = N, **ser: Any
) -> dict[str, Any]:
    return photon_stream_config(serializer, handlers, events, photon_energy_keV=ENERGY, **ser)


def reference(cfg: dict[str, Any], n: int) -> np.ndarray:
    """Photon counts of the first ``n`` events, by the kernel called directly."""
    src = open_source(load_config(cfg))
    try:
        c = src.constants("detector_data")  # type: ignore[attr-defined]
        k = photon_calibrator(c, ENERGY)
        events = zip(range(n), src.events(), strict=False)
        return np.stack([k(ev.data["detector_data"]) for _, ev in events])
    finally:
        src.close()


def frames_in_files(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Event ids and detector frames from written .h5 files (opened with h5py+hdf5plugin)."""
    ids, data = [], []
    for f in files:
        with h5py.File(f, "r") as h5:
            d = h5["/entry_1/data_1/data"][()]
            if d.shape[0] == 0:
                continue
            data.append(d)
            ids.append(h5["/LCLS/eventNumber"][()])
    return np.concatenate(ids), np.concatenate(data)


SERIALIZERS = [
    ("HDF5BinarySerializer", "hdf5", {"compression": "bitshuffle_with_lz4"}),
    ("SimplonBinarySerializer", "simplon", {}),
    ("RawBatchSerializer", "raw", {"compression": "bitshuffle_with_lz4"}),
    ("RawBatchSerializer", "raw", {}),
    ("LclstreamerSimplonSerializer", "simplon", {}),
]


@pytest.mark.parametrize(
    ("serializer", "fmt", "options"),
    SERIALIZERS,
    ids=["hdf5", "simplon", "raw-bslz4", "raw", "lclstreamer-simplon"],
)
def test_stream_receive_files_inspect(
    serializer: str, fmt: str, options: dict[str, Any], tmp_path: Path
) -> None:
    rx = ReceiverThread("tcp://127.0.0.1:*", out=tmp_path / "recv", format=fmt, expect=N)
    url = rx.endpoint()
    handlers = [
        {"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"},
        {"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path / "local")},
    ]
    cfg = config(serializer, handlers, **options)
    res = Pipeline(cfg).run()
    got = rx.join()
    assert res.complete and res.events == N
    assert got.complete, got.problems
    assert got.events == N and got.events_sent == N and got.senders_ended == got.senders == 1
    assert got.bytes > 0 and not got.timed_out

    ref = reference(cfg, N)
    for where in ("recv", "local"):
        files = sorted((tmp_path / where).glob("*.h5"))
        assert files, where
        ids, data = frames_in_files(files)
        assert ids.tolist() == list(range(N)), where
        np.testing.assert_array_equal(data, ref, err_msg=where)

    r = CliRunner().invoke(app, ["inspect", str(tmp_path / "recv"), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["events"] == N and report["messages"] >= 3


def test_streamer_binds_consumer_connects(tmp_path: Path) -> None:
    """role: server (LCLStreamer's default): the streamer binds and the consumer connects."""
    url = f"tcp://127.0.0.1:{free_port()}"
    rx = ReceiverThread(url, bind=False, expect=N)
    handlers = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "server"}]
    res = Pipeline(config("HDF5BinarySerializer", handlers)).run()
    got = rx.join()
    assert res.complete and got.complete and got.events == N


def test_two_consumers_share_a_push_stream_and_both_get_the_end() -> None:
    """PUSH to two binding consumers: data split between them, the end message to both.

    (The second consumer is a process of its own, as consumers are: HDF5 names in-memory
    file images per process, so two parsers in one process's threads would collide.)
    """
    a = ReceiverThread("tcp://127.0.0.1:*")
    b_url = f"tcp://127.0.0.1:{free_port()}"
    b = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "receive", b_url, "--json", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        wait_listening(b_url)  # so that the data is shared, not all sent to the first one up
        urls = [a.endpoint(), b_url]
        handlers = [{"type": "BinaryDataStreamingDataHandler", "urls": urls, "role": "client"}]
        res = Pipeline(config("HDF5BinarySerializer", handlers, events=40)).run()
        ra = a.join()
        out, err = b.communicate(timeout=60)
    finally:
        if b.poll() is None:
            b.kill()
    rb = json.loads(out)
    assert res.complete
    assert ra.senders_ended == rb["senders_ended"] == 1  # both have the end message
    assert ra.events + rb["events"] == 40 and ra.events_sent == rb["events_sent"] == 40
    # Each alone is complete only if it got everything, and the command says which it was.
    assert ra.complete == (ra.events == 40) and rb["complete"] == (rb["events"] == 40)
    assert b.returncode == (0 if rb["complete"] else 3), err


def wait_listening(url: str, timeout: float = 20.0) -> None:
    host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {url}")


# ------------------------------------------------------------------------ the command line


def write_yaml(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_stream_to_cli_receive(tmp_path: Path) -> None:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    rx = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "receive", url, "--json", "--expect", str(N),
         "--out", str(tmp_path / "recv"), "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        handlers = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"}]
        cfg = write_yaml(tmp_path / "s.yaml", config("HDF5BinarySerializer", handlers))
        st = subprocess.run(
            [sys.executable, "-m", "lclstream.cli", "stream", str(cfg), "--json"],
            capture_output=True, text=True, env=cli_env(), timeout=60,
        )  # fmt: skip
        out, err = rx.communicate(timeout=60)
    finally:
        if rx.poll() is None:
            rx.kill()
    assert st.returncode == 0, st.stderr
    sent = json.loads(st.stdout)
    assert sent["events"] == N and sent["complete"] is True
    assert rx.returncode == 0, err
    got = json.loads(out)
    assert got["events"] == N and got["complete"] is True
    files = sorted((tmp_path / "recv").glob("*.h5"))
    assert len([f for f in files if not f.name.endswith("_end.h5")]) == 3  # + the end message


def test_receive_img_per_file_regroups_events(tmp_path: Path) -> None:
    """``receive(out=..., img_per_file=4)`` (CLI ``--img-per-file``): files of 4 events."""
    rx = ReceiverThread("tcp://127.0.0.1:*", out=tmp_path / "recv", img_per_file=4, expect=N)
    url = rx.endpoint()
    handlers = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"}]
    assert Pipeline(config("SimplonBinarySerializer", handlers)).run().complete
    assert rx.join().complete
    counts = []
    for f in sorted((tmp_path / "recv").glob("*.h5")):
        with h5py.File(f, "r") as h:
            if "/entry_1/data_1/data" in h and h["/entry_1/data_1/data"].shape[0]:
                counts.append(h["/entry_1/data_1/data"].shape[0])
    assert counts == [4, 4, 4, 1]  # 13 events, one image message each, regrouped
    r = CliRunner().invoke(app, ["receive", "--help"])
    assert "--img-per-file" in r.output


def test_cli_receive_expect_mismatch_exit_3(tmp_path: Path) -> None:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    rx = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "receive", url, "--json", "--expect", str(N + 1),
         "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        handlers = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"}]
        Pipeline(config("HDF5BinarySerializer", handlers)).run()
        out, err = rx.communicate(timeout=60)
    finally:
        if rx.poll() is None:
            rx.kill()
    assert rx.returncode == 3
    assert json.loads(out)["complete"] is False
    assert err.strip().startswith("lclstream: error:") and "expected" in err


def test_cli_inspect_url(tmp_path: Path) -> None:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    p = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "inspect", url, "--json", "--messages", "20",
         "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        handlers = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"}]
        Pipeline(config("SimplonBinarySerializer", handlers)).run()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    report = json.loads(out)
    assert report["events"] == N
    kinds = [it["kind"] for it in report["items"]]
    assert kinds[0] == "start" and kinds[-1] == "end"


def test_demo_json_contract(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "lclstream.cli", "demo", "--events", "20", "--json"],
        capture_output=True, text=True, env=cli_env(), timeout=120, cwd=tmp_path,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1  # one JSON object, nothing else on stdout
    d = json.loads(lines[0])
    for key in ("events", "bytes_in", "bytes_out", "seconds", "startup_seconds", "complete"):
        assert key in d
    assert d["events"] == 20 and d["received_events"] == 20 and d["complete"] is True
    assert d["bytes_in"] == 20 * 8 * 512 * 1024 * 2  # raw JF4M frames
    assert 0 < d["bytes_out"] < d["bytes_in"] / 5  # photons compress well
    assert d["seconds"] > 0 and d["startup_seconds"] < 10
    assert wall < 60
    out_dir = tmp_path / "lclstream-demo-out"
    files = sorted(out_dir.glob("*.h5"))
    assert files and [str(f) for f in files] == d["files"]
    with h5py.File(files[0], "r") as h5:
        data = h5["/entry_1/data_1/data"]
        assert data.shape[1:] == (8, 512, 1024) and data.dtype == np.uint16
        assert data[0].sum() > 0


def test_example_config_streams_as_it_is(tmp_path: Path) -> None:
    """`lclstream config --example` runs unchanged (only its port moved to a free one)."""
    text = CliRunner().invoke(app, ["config", "--example"]).output
    port = free_port()
    assert "tcp://127.0.0.1:12321" in text
    cfg = tmp_path / "example.yaml"
    cfg.write_text(text.replace("tcp://127.0.0.1:12321", f"tcp://127.0.0.1:{port}"))
    rx = ReceiverThread(f"tcp://127.0.0.1:{port}", expect=10)
    rx.endpoint()
    r = subprocess.run(
        [sys.executable, "-m", "lclstream.cli", "stream", str(cfg), "--events", "10", "--json"],
        capture_output=True, text=True, env=cli_env(), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = rx.join()
    assert json.loads(r.stdout)["events"] == 10
    assert got.complete and got.events == 10


def test_two_producer_processes_one_stream(tmp_path: Path) -> None:
    """processing_pipeline.workers: 2 -> two processes, sender 0 and 1 of one stream; the
    receiver needs both end messages to call it complete; every event arrives once."""
    rx = ReceiverThread("tcp://127.0.0.1:*", expect=N)
    url = rx.endpoint()
    handlers = [
        {"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"},
        {"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path / "local")},
    ]
    cfg = config("HDF5BinarySerializer", handlers, events=40)
    cfg["processing_pipeline"]["workers"] = 2
    r = subprocess.run(
        [sys.executable, "-m", "lclstream.cli", "stream", str(write_yaml(tmp_path / "w.yaml", cfg)),
         "--events", str(N), "--json"],
        capture_output=True, text=True, env=cli_env(), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["events"] == N and d["senders"] == 2 and d["complete"] is True
    got = rx.join()
    assert got.complete, got.problems
    assert got.senders == got.senders_ended == 2 and got.events == got.events_sent == N
    files = sorted((tmp_path / "local").glob("*.h5"))
    assert {f.name.split("_")[1] for f in files} == {"r0", "r1"}  # one series per sender
    ids, data = frames_in_files([f for f in files if not f.name.endswith("_end.h5")])
    assert sorted(ids.tolist()) == list(range(N))
    np.testing.assert_array_equal(data[np.argsort(ids)], reference(cfg, N))


def test_workers_with_a_binding_streamer_is_a_config_error(tmp_path: Path) -> None:
    handlers = [
        {"type": "BinaryDataStreamingDataHandler", "urls": ["tcp://127.0.0.1:1"], "role": "server"}
    ]
    cfg = config("HDF5BinarySerializer", handlers)
    cfg["processing_pipeline"]["workers"] = 2
    r = subprocess.run(
        [sys.executable, "-m", "lclstream.cli", "stream", str(write_yaml(tmp_path / "w.yaml", cfg))],
        capture_output=True, text=True, env=cli_env(), timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "data_handlers[0].role" in r.stderr and "Traceback" not in r.stderr


def test_receiver_refuses_the_wrong_format_and_the_streamer_notices(tmp_path: Path) -> None:
    """A strict consumer expecting raw batches gets HDF5: it stops with a FormatError; the
    streamer's messages stay undelivered, which its close() reports instead of claiming
    success."""
    from lclstream.errors import FormatError, TransportError

    rx = ReceiverThread("tcp://127.0.0.1:*", format="raw", strict=True)
    url = rx.endpoint()
    handlers = [
        {"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client",
         "send_timeout_s": 1.0, "close_timeout_s": 1.0},
    ]  # fmt: skip
    with pytest.raises((TransportError, TimeoutError)) as info:
        Pipeline(config("HDF5BinarySerializer", handlers, events=40)).run()
    assert not info.value.result.complete  # type: ignore[attr-defined]
    with pytest.raises(FormatError, match="not the expected raw"):
        rx.join()


def test_receiver_counts_wrong_format_messages_and_keeps_going(tmp_path: Path) -> None:
    """Not strict (the default): each message in the wrong format is rejected with its
    reason, the receiver keeps reading, and its verdict is incomplete."""
    rx = ReceiverThread("tcp://127.0.0.1:*", format="raw", timeout=3)
    url = rx.endpoint()
    handlers = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client"}]
    assert Pipeline(config("HDF5BinarySerializer", handlers, events=40)).run().complete
    got = rx.join()
    assert not got.complete and got.events == 0 and got.rejected > 0


def test_curve_encrypted_stream_from_config_to_cli_receive(tmp_path: Path) -> None:
    """CurveZMQ end to end: the consumer (``lclstream receive --curve-secret-key``) is the
    CURVE server, the streamer's config names its public key; a streamer holding a wrong
    server key gets nothing through (its close() reports the undelivered messages)."""
    from lclstream import transport
    from lclstream.errors import TransportError

    if not transport.curve_available():
        pytest.skip("libzmq without CURVE")
    pub, sec = transport.generate_keys(tmp_path / "keys", "consumer")
    wrong_pub, _ = transport.generate_keys(tmp_path / "other", "consumer")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    rx = subprocess.Popen(
        [sys.executable, "-m", "lclstream.cli", "receive", url, "--json", "--expect", str(N),
         "--timeout", "30", "--curve-secret-key", str(sec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        bad = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client",
                "curve_server_key": str(wrong_pub), "close_timeout_s": 1.0,
                "send_timeout_s": 2.0}]  # fmt: skip
        with pytest.raises((TransportError, TimeoutError)):
            Pipeline(config("HDF5BinarySerializer", bad)).run()
        good = [{"type": "BinaryDataStreamingDataHandler", "urls": [url], "role": "client",
                 "curve_server_key": str(pub)}]  # fmt: skip
        assert Pipeline(config("HDF5BinarySerializer", good)).run().complete
        out, err = rx.communicate(timeout=60)
    finally:
        if rx.poll() is None:
            rx.kill()
    assert rx.returncode == 0, err
    doc = json.loads(out)
    # the whole verdict on failure: this test once lost the end message (1 run in ~30)
    assert doc["complete"] is True and doc["events"] == N, (doc, err)
