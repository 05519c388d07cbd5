"""The ``lclstream`` command: every subcommand's contract (options, output, exit codes).

Exit codes: 0 ok, 1 error, 2 usage/config error, 3 incomplete stream. Errors are ONE line on
stderr, never a traceback. Streams here are tiny (generic/1-module detectors) to stay fast;
the full JF4M demo runs in test_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import lclstream
import pytest
import yaml
from lclstream.cli import app
from proc_helpers import cli_env, free_port
from typer.testing import CliRunner


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command as users run it: a fresh process (so exit codes and stderr are real)."""
    return subprocess.run(
        [sys.executable, "-m", "lclstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(stderr: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("lclstream: error: ")
    assert "Traceback" not in stderr


def small_config(tmp_path: Path, events: int = 12, **over: Any) -> dict[str, Any]:
    """A fast stream: LCLStreamer's generic sources into the file writer."""
    cfg: dict[str, Any] = {
        "source_identifier": "",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": events},
        "data_sources": {
            "random": {"type": "GenericRandomNumpyArray", "array_shape": "20,2"},
            "int": {"type": "IntValue", "value": 3},
        },
        "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 5},
        "data_serializer": {"type": "HDF5BinarySerializer", "compression": None},
        "data_handlers": [
            {"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path / "files")}
        ],
    }
    cfg.update(over)
    return cfg


def write_config(tmp_path: Path, cfg: dict[str, Any], name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


# ------------------------------------------------------------------------------- top level


def test_help_lists_every_subcommand() -> None:
    r = invoke("--help")
    assert r.exit_code == 0
    for cmd in ("demo", "stream", "receive", "inspect", "config", "bench"):
        assert cmd in r.output
    assert "Exit codes" in r.output


def test_version_and_cmake_dir() -> None:
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == lclstream.__version__
    r = invoke("--cmake-dir")
    assert r.exit_code == 0 and r.output.strip().endswith("cmake/lclstream")


# ---------------------------------------------------------------------------------- config


def test_config_example_runs_through_check(tmp_path: Path) -> None:
    r = invoke("config", "--example")
    assert r.exit_code == 0
    p = tmp_path / "example.yaml"
    p.write_text(r.output)
    data = yaml.safe_load(r.output)
    assert data["data_serializer"]["type"] == "HDF5BinarySerializer"
    r = invoke("config", "--check", str(p))
    assert r.exit_code == 0, r.output
    assert "ok" in r.output


def test_config_schema_is_json() -> None:
    r = invoke("config", "--schema")
    assert r.exit_code == 0
    schema = json.loads(r.output)
    assert "properties" in schema and "data_handlers" in schema["properties"]


def test_config_check_bad_key_exit_2_one_line(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["data_serializer"]["compresion"] = "bitshuffle_with_lz4"  # typo
    p = write_config(tmp_path, cfg)
    r = run_cli("config", "--check", str(p))
    assert r.returncode == 2
    assert_one_line_error(r.stderr)
    assert "data_serializer.compresion" in r.stderr and "compression" in r.stderr


def test_config_needs_exactly_one_option() -> None:
    r = run_cli("config")
    assert r.returncode == 2
    assert_one_line_error(r.stderr)


def test_config_check_missing_file_exit_2(tmp_path: Path) -> None:
    r = run_cli("config", "--check", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert_one_line_error(r.stderr)
    assert "nope.yaml" in r.stderr


# ---------------------------------------------------------------------------------- stream


def test_stream_json_summary(tmp_path: Path) -> None:
    p = write_config(tmp_path, small_config(tmp_path, events=12))
    r = run_cli("stream", str(p), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("events", "bytes_in", "bytes_out", "seconds", "startup_seconds", "complete"):
        assert key in d
    assert d["events"] == 12 and d["complete"] is True
    assert d["bytes_in"] == 12 * 20 * 2 * 4  # the float32 random arrays
    assert d["bytes_out"] > 0
    files = sorted((tmp_path / "files").glob("*.h5"))
    assert len(files) >= 3  # 12 events in batches of 5 (+ the end message)


def test_stream_events_option_caps(tmp_path: Path) -> None:
    p = write_config(tmp_path, small_config(tmp_path, events=50))
    r = run_cli("stream", str(p), "--events", "7", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["events"] == 7


def test_stream_config_error_exit_2(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["event_source"]["type"] = "InternalEventSourc"
    p = write_config(tmp_path, cfg)
    r = run_cli("stream", str(p))
    assert r.returncode == 2
    assert_one_line_error(r.stderr)
    assert "event_source.type" in r.stderr and "InternalEventSource" in r.stderr


def test_stream_unknown_calibration_source_exit_2(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["processing_pipeline"]["calibration"] = {"detectr_data": {"output": "photons"}}
    p = write_config(tmp_path, cfg)
    r = run_cli("stream", str(p))
    assert r.returncode == 2
    assert_one_line_error(r.stderr)
    assert "processing_pipeline.calibration.detectr_data" in r.stderr


def test_stream_human_output_has_table(tmp_path: Path) -> None:
    p = write_config(tmp_path, small_config(tmp_path, events=5))
    r = run_cli("stream", str(p))
    assert r.returncode == 0, r.stderr
    assert "events" in r.stderr and "compression ratio" in r.stderr


# --------------------------------------------------------------------------------- receive


def test_receive_times_out_incomplete_exit_3() -> None:
    r = run_cli("receive", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5", "--json")
    assert r.returncode == 3
    d = json.loads(r.stdout)
    assert d["complete"] is False and d["timed_out"] is True and d["events"] == 0
    assert_one_line_error(r.stderr)


def test_receive_bad_url_exit_1() -> None:
    r = run_cli("receive", "nonsense://x", "--timeout", "0.5")
    assert r.returncode == 1
    assert_one_line_error(r.stderr)


# --------------------------------------------------------------------------------- inspect


def test_inspect_file(tmp_path: Path) -> None:
    p = write_config(tmp_path, small_config(tmp_path, events=5))
    assert run_cli("stream", str(p), "--quiet").returncode == 0
    first = sorted((tmp_path / "files").glob("*.h5"))[0]
    r = invoke("inspect", str(first))
    assert r.exit_code == 0, r.output
    assert "random" in r.output or "/LCLS" in r.output


def test_inspect_missing_file_exit_1(tmp_path: Path) -> None:
    r = run_cli("inspect", str(tmp_path / "missing.h5"))
    assert r.returncode == 1
    assert_one_line_error(r.stderr)


# ----------------------------------------------------------------------------------- bench


def test_bench_without_harness_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import lclstream.cli.bench as bench_cmd

    monkeypatch.setattr(bench_cmd, "repo_root", lambda: None)
    r = invoke("bench", "--quick")
    assert r.exit_code == 1
    assert "bench" in r.output


def test_bench_runs_the_checkout_harness_in_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed command runs ``python -m bench`` in the checkout (cwd = its root) and
    passes the options through; it never imports the checkout's files itself."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "__main__.py").write_text(
        "import os, sys, json, pathlib\n"
        "pathlib.Path('seen.json').write_text(json.dumps([sys.argv[1:], os.getcwd(),"
        " os.environ['LCLSTREAM_REPO']]))\n"
        "sys.exit(7)\n"
    )
    monkeypatch.setenv("LCLSTREAM_REPO", str(tmp_path))
    out = tmp_path / "o.json"
    r = run_cli("bench", "--quick", "--only", "e2e", "--json", str(out), "--no-write-results")
    assert r.returncode == 7, r.stderr  # the harness' exit status is the command's
    argv, cwd, repo = json.loads((tmp_path / "seen.json").read_text())
    assert argv == ["--quick", "--json", str(out), "--only", "e2e", "--no-write-results"]
    assert Path(cwd) == tmp_path and Path(repo) == tmp_path


# ------------------------------------------------------------------------------------ demo


def test_demo_help_lists_contract_options() -> None:
    r = invoke("demo", "--help")
    assert r.exit_code == 0
    for opt in ("--events", "--out", "--format", "--json"):
        assert opt in r.output


def test_demo_to_a_consumer_writes_no_files_of_its_own() -> None:
    """--to sends to the user's consumer (tests/test_ray.py feeds a Ray example that way):
    --out, the demo's own receiver's folder, makes no sense with it and is refused."""
    r = run_cli("demo", "--to", "tcp://127.0.0.1:9", "--out", "somewhere")
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr
    assert "--to" in invoke("demo", "--help").output


def test_demo_rejects_unknown_format() -> None:
    r = run_cli("demo", "--format", "tiff")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def unheard_handler() -> dict[str, Any]:
    """A streaming handler to a port nobody listens on, with short timeouts."""
    return {
        "type": "BinaryDataStreamingDataHandler",
        "urls": [f"tcp://127.0.0.1:{free_port()}"],
        "role": "client",
        "send_timeout_s": 0.5,
        "close_timeout_s": 0.5,
    }


def test_stream_to_nobody_fails_with_one_line_and_partial_json(tmp_path: Path) -> None:
    """No consumer listens: the send times out, exit 1, and --json still reports the counts."""
    cfg = small_config(tmp_path, events=12)
    cfg["data_handlers"] = [unheard_handler()]
    r = run_cli("stream", str(write_config(tmp_path, cfg)), "--json")
    assert r.returncode == 1
    assert_one_line_error(r.stderr)
    assert "127.0.0.1" in r.stderr  # the error names the endpoint
    d = json.loads(r.stdout)
    assert d["complete"] is False and d["events"] == 0 and "error" in d
    assert d["events_dropped"] == 12


def test_stream_without_handlers_is_a_config_error(tmp_path: Path) -> None:
    r = run_cli("stream", str(write_config(tmp_path, small_config(tmp_path, data_handlers=[]))))
    assert r.returncode == 2
    assert_one_line_error(r.stderr)
    assert "data_handlers" in r.stderr


def test_workers_failing_report_partial_json_and_one_line(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, events=12)
    cfg["processing_pipeline"]["workers"] = 2
    cfg["data_handlers"] = [unheard_handler()]
    r = run_cli("stream", str(write_config(tmp_path, cfg)), "--json")
    assert r.returncode == 1
    assert_one_line_error(r.stderr)
    assert "worker" in r.stderr and "127.0.0.1" in r.stderr
    d = json.loads(r.stdout)
    assert d["complete"] is False and d["events"] == 0 and d["events_dropped"] == 12


# -- keys ---------------------------------------------------------------------------------------
def test_keys_writes_a_curve_pair_pyzmq_reads(tmp_path: Path) -> None:
    from lclstream import transport

    if not transport.curve_available():
        pytest.skip("libzmq without CURVE")
    import zmq.auth

    res = run_cli("keys", str(tmp_path / "k"), "--name", "consumer")
    assert res.returncode == 0, res.stderr
    pub, sec = tmp_path / "k" / "consumer.key", tmp_path / "k" / "consumer.key_secret"
    assert f"public key: {pub}" in res.stdout
    public, secret = zmq.auth.load_certificate(str(sec))
    assert secret is not None and len(public) == 40
    assert zmq.auth.load_certificate(str(pub))[0] == public
    assert sec.stat().st_mode & 0o077 == 0  # the secret is readable by its owner only
