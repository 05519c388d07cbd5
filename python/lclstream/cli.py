"""The ``lclstream`` command.

Subcommands are thin: they parse options, call library code and turn its typed errors into
one line on stderr and a non-zero exit code (library code itself never exits).

Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from lclstream import __version__
from lclstream.errors import ConfigError, LclstreamError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3

_EXIT_HELP = "Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream."

app = typer.Typer(
    name="lclstream",
    help="Stream calibrated, compressed X-ray detector data (HDF5 / SIMPLON stream2 / raw "
    f"batches). {_EXIT_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _formats() -> dict[str, str]:
    from lclstream.registry import format_names

    return format_names()


#: ``--format`` choices: the serializers' short names in the registry.
Format = Enum("Format", {n: n for n in _formats()}, type=str)  # type: ignore[misc]


def cmake_dir() -> Path:
    """Folder holding the installed core's CMake package config (for find_package)."""
    return Path(__file__).resolve().parent / "share" / "cmake" / "lclstream"


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


def _cmake_dir_cb(value: bool) -> None:
    if value:
        typer.echo(str(cmake_dir()))
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_cb, is_eager=True, help="Print the version."),
    ] = False,
    cmake_dir_: Annotated[
        bool,
        typer.Option(
            "--cmake-dir",
            callback=_cmake_dir_cb,
            is_eager=True,
            help="Print the folder of the core's CMake package (use as CMAKE_PREFIX_PATH).",
        ),
    ] = False,
) -> None:
    """lclstream: science-ready LCLS detector data, streamed."""


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print one clear line on stderr and return the Exit to raise."""
    line = " ".join(str(message).split())  # one line, whatever the message held
    typer.echo(f"lclstream: error: {line}", err=True)
    return typer.Exit(code)


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def _errors() -> Iterator[None]:
    """Typed errors -> one line on stderr + exit code (config errors 2, others 1)."""
    try:
        yield
    except typer.Exit:
        raise
    except ConfigError as e:
        raise fail(str(e), EXIT_USAGE) from None
    except (LclstreamError, OSError, TimeoutError, ValueError) as e:
        raise fail(_describe(e)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    except Exception as e:
        if os.environ.get("LCLSTREAM_DEBUG"):
            raise
        raise fail(
            f"internal error: {type(e).__name__}: {e} (LCLSTREAM_DEBUG=1 shows the traceback)"
        ) from None


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _fmt_mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def _summary_table(title: str, rows: list[tuple[str, str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    return table


def _pipeline_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    ratio = d["bytes_in"] / d["bytes_out"] if d.get("bytes_out") else 0.0
    eps = d["events"] / d["seconds"] if d.get("seconds") else 0.0
    rows = [
        ("events", f"{d['events']:,}"),
        ("MB in (raw)", _fmt_mb(d["bytes_in"])),
        ("MB out", _fmt_mb(d["bytes_out"])),
        ("compression ratio", f"{ratio:.1f}x"),
        ("events/s", f"{eps:,.1f}"),
        ("MB/s in", f"{d['bytes_in'] / d['seconds'] / 1e6:,.0f}" if d.get("seconds") else "-"),
        ("seconds (steady state)", f"{d['seconds']:.2f}"),
        ("start-up seconds", f"{d['startup_seconds']:.2f}"),
    ]
    if "hits" in d:
        rows.append(("hits", f"{d['hits']:,}"))
    if d.get("events_dropped"):
        rows.append(("dropped", f"{d['events_dropped']:,} {d.get('drop_reasons', {})}"))
    return rows


def _stage_table(stages: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="stages", title_justify="left")
    for col in ("stage", "events", "MB in", "MB out", "busy s"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for name, s in stages.items():
        table.add_row(
            name,
            f"{s['events']:,}",
            _fmt_mb(s["bytes_in"]),
            _fmt_mb(s["bytes_out"]),
            f"{s['busy_seconds']:.2f}",
        )
    return table


class _Progress:
    """A rich progress display with one bar per named task (nothing in quiet mode)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._p: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._p = Progress(
                TextColumn("{task.description:<9}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=_console(),
                transient=False,
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def update(self, name: str, done: int, total: int | None, info: str = "") -> None:
        if self._p is None:
            return
        if name not in self._tasks:
            self._tasks[name] = self._p.add_task(name, total=total, info=info)
        self._p.update(self._tasks[name], completed=done, total=total, info=info)


def _pipeline_progress(progress: _Progress, total: int | None) -> Callable[[dict[str, Any]], None]:
    def cb(st: dict[str, Any]) -> None:
        secs = st["seconds"]
        rate = f"{st['bytes_in'] / secs / 1e6:,.0f} MB/s in" if secs > 0 else ""
        progress.update("sent", st["events_sent"], total, rate)

    return cb


def _result_dict(res: Any) -> dict[str, Any]:
    return {
        "events": res.events,
        "events_read": res.events_read,
        "bytes_in": res.bytes_in,
        "bytes_out": res.bytes_out,
        "messages": res.messages,
        "seconds": res.seconds,
        "startup_seconds": res.startup_seconds,
        "complete": res.complete,
        "end_state": res.totals.end_state,
        "hits": res.hits,
        "events_dropped": res.totals.events_dropped,
        "drop_reasons": dict(res.totals.drop_reasons),
        "compression_ratio": res.compression_ratio,
        "events_per_second": res.events_per_second,
        "stream_id": res.stream_id,
        "stages": res.stages,
    }


# ------------------------------------------------------------------------------------ stream


@app.command()
def stream(
    config: Annotated[Path, typer.Argument(help="YAML config (LCLStreamer's schema).")],
    events: Annotated[int | None, typer.Option(min=0, help="Stop after this many events.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
) -> None:
    """Run the pipeline a config describes (source -> calibrate -> serialize -> handlers).

    Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream.
    """
    t0 = time.perf_counter()
    with _errors():
        from lclstream.config import load_config
        from lclstream.pipeline import Pipeline, run_workers

        cfg = load_config(config)
        total = events
        if total is None:
            total = getattr(cfg.event_source, "number_of_events_to_generate", None)
        show = not (json_ or quiet)
        workers = int(getattr(cfg.processing_pipeline, "workers", 1) or 1)
        with _Progress(show) as progress:
            cb = _pipeline_progress(progress, total) if show else None
            t_build = time.perf_counter()
            try:
                if workers > 1:  # producer processes, one sender index each
                    res = run_workers(cfg, workers, events=events, progress=cb)
                else:
                    pipe = Pipeline(cfg, events=events, progress=cb)
                    t_build = pipe.created_at
                    res = pipe.run()
            except LclstreamError as e:
                partial = getattr(e, "result", None)
                if json_ and partial is not None:  # scripts still get the counts, complete=false
                    emit_json({**_result_dict(partial), "error": _describe(e)})
                raise
        d = _result_dict(res)
        d["startup_seconds"] = res.startup_seconds + (t_build - t0)
        d["senders"] = res.senders
    if json_:
        emit_json(d)
    elif not quiet:
        console = _console()
        console.print(_summary_table("lclstream stream", _pipeline_rows(d)))
        console.print(_stage_table(d["stages"]))
    if not d["complete"]:
        raise fail(_incomplete_reason(res), EXIT_INCOMPLETE)


def _incomplete_reason(res: Any) -> str:
    t = res.totals
    if t.end_state != "completed":
        why = f": {t.error}" if t.error else ""
        return (
            f"stream incomplete: the run ended {t.end_state}{why} ({t.events_sent} of "
            f"{t.events_read} events read were sent)"
        )
    return "stream incomplete: the end-of-stream message was not delivered"


# ----------------------------------------------------------------------------------- receive


def _receive_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("events", f"{d['events']:,}"),
        ("messages", f"{d['messages']:,}"),
        ("MB received", _fmt_mb(d["bytes"])),
        ("seconds", f"{d['seconds']:.2f}"),
        (
            "senders ended",
            f"{d['senders_ended']}/{d['senders'] or '?'}",
        ),
        ("events sent (end totals)", f"{d['events_sent']:,}"),
        ("complete", "yes" if d["complete"] else "NO"),
    ]
    if d.get("events_dropped"):
        rows.append(("dropped by sender", f"{d['events_dropped']:,} {d['drop_reasons']}"))
    if d.get("files"):
        rows.append(("files", f"{len(d['files'])} in {Path(d['files'][0]).parent}"))
    return rows


@app.command()
def receive(
    url: Annotated[str, typer.Argument(help="Endpoint, e.g. tcp://127.0.0.1:12321.")],
    connect: Annotated[
        bool, typer.Option("--connect", help="Connect to a streamer that binds (default: bind).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write each message as a numbered .h5 file here.")
    ] = None,
    img_per_file: Annotated[
        int | None,
        typer.Option(
            min=1, help="With --out: regroup this many events a file (default: per message)."
        ),
    ] = None,
    format_: Annotated[
        Format | None, typer.Option("--format", help="Expected format (default: detect).")
    ] = None,
    expect: Annotated[
        int | None, typer.Option(min=0, help="Events expected (checked with the end totals).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.0, help="Give up after this many seconds without a message.")
    ] = 60.0,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
    curve_secret_key: Annotated[
        Path | None,
        typer.Option(help="CurveZMQ: this consumer's .key_secret (it is the CURVE server)."),
    ] = None,
    curve_allowed_clients: Annotated[
        Path | None,
        typer.Option(help="CurveZMQ: accept only streamers whose *.key files are here."),
    ] = None,
    curve_server_key: Annotated[
        Path | None,
        typer.Option(help="CurveZMQ: the streamer's public .key (the streamer is the server)."),
    ] = None,
) -> None:
    """Receive a stream, open every message and check completeness from the end totals.

    Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream.
    """
    show = not (json_ or quiet)
    with _errors():
        from lclstream.handlers import curve_settings
        from lclstream.pipeline import receive as do_receive

        curve = curve_settings(curve_server_key, curve_secret_key, curve_allowed_clients)
        with _Progress(show) as progress:

            def on_msg(r: Any) -> None:
                progress.update("received", r.events, expect, f"{r.bytes / 1e6:,.0f} MB")

            def on_ready(eps: list[str]) -> None:
                if show:
                    verb = "connected to" if connect else "listening on"
                    _console().print(f"{verb} {', '.join(eps)}")

            res = do_receive(
                url,
                bind=not connect,
                out=out,
                img_per_file=img_per_file,
                format=format_.value if format_ is not None else None,
                expect=expect,
                timeout=timeout,
                curve=curve,
                reuse_buffers=True,  # this process only receives: keep buffers warm
                on_ready=on_ready,
                on_message=on_msg if show else None,
            )
        d = res.as_dict()
    if json_:
        emit_json(d)
    elif not quiet:
        _console().print(_summary_table("lclstream receive", _receive_rows(d)))
    if not res.complete:
        why = (
            res.interrupted
            or ("timed out" if res.timed_out else "")
            or "; ".join(res.problems[:3])
            or "totals do not match"
        )
        raise fail(
            f"stream incomplete ({why}): {res.events} events received, end totals say "
            f"{res.events_sent} from {res.senders_ended}/{res.senders or '?'} senders"
            + (f", {expect} expected" if expect is not None else ""),
            EXIT_INCOMPLETE,
        )


# -------------------------------------------------------------------------------------- demo


def _fresh_dir(base: Path) -> Path:
    for i in range(1000):
        p = base if i == 0 else base.with_name(f"{base.name}-{i}")
        if not p.exists():
            return p
    raise LclstreamError(f"no free directory name next to {base}")


def _demo_receiver(
    q: Any, url: str, out: str, fmt: str, expect: int, timeout: float, max_files: int
) -> None:
    """The demo's receiver process: binds ``url``, reports progress and its result on ``q``."""
    try:
        from lclstream.pipeline import receive as do_receive

        last = [0.0]

        def on_ready(eps: list[str]) -> None:
            q.put(("ready", eps))

        def on_msg(r: Any) -> None:
            now = time.perf_counter()
            if now - last[0] > 0.1:
                last[0] = now
                q.put(("progress", r.events, r.bytes))

        res = do_receive(
            url,
            bind=True,
            out=out,
            format=fmt,
            expect=expect,
            timeout=timeout,
            max_files=max_files,
            reuse_buffers=True,  # the demo's receiver process only receives
            on_ready=on_ready,
            on_message=on_msg,
        )
        q.put(("done", res.as_dict()))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
        q.put(("error", f"{type(e).__name__}: {e}"))


def demo_config(endpoint: str, events: int, fmt: str = "hdf5") -> dict[str, Any]:
    """The demo's stream: synthetic JF4M SFX frames -> photons -> bslz4 -> ``endpoint``."""
    serializer: dict[str, Any] = {"type": _formats()[fmt]}
    if fmt in ("hdf5", "raw", "simplon"):
        serializer["compression"] = "bitshuffle_with_lz4"
    return {
        "source_identifier": "exp=xpptut15,run=670",
        "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": events},
        "data_sources": {
            "detector_data": {
                "type": "SyntheticDetector",
                "detector": "jungfrau4M",
                "hit_fraction": 0.1,
                "seed": 1,
                "pool_frames": 8,  # base frames made at start-up (events cycle through them)
            }
        },
        "processing_pipeline": {
            "type": "BatchProcessingPipeline",
            "batch_size": 10,
            "calibration": {
                "detector_data": {
                    "detector": "jungfrau",
                    "constants": "synthetic",
                    "output": "photons",
                }
            },
        },
        "data_serializer": serializer,
        "data_handlers": [
            {
                "type": "BinaryDataStreamingDataHandler",
                "urls": [endpoint],
                "role": "client",
                "socket_type": "push",
            }
        ],
    }


@app.command()
def demo(
    events: Annotated[int, typer.Option(min=1, help="Number of synthetic events.")] = 200,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for a few received files (default: a fresh ./lclstream-demo-out)."
        ),
    ] = None,
    format_: Annotated[Format, typer.Option("--format", help="Message format.")] = Format("hdf5"),
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
) -> None:
    """Stream synthetic Jungfrau 4M events, calibrated to photons and compressed, to a local
    receiver process that opens every message and checks completeness.

    Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream.
    """
    t_start = time.perf_counter()
    show = not (json_ or quiet)
    out_dir = out if out is not None else _fresh_dir(Path.cwd() / "lclstream-demo-out")
    fmt = format_.value
    # The streamer connects, so it may start before the receiver has bound: pick the port
    # here and let the receiver's start-up (a fresh interpreter) overlap the pipeline's.
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    child = ctx.Process(
        target=_demo_receiver,
        args=(q, endpoint, str(out_dir), fmt, events, 60.0, 3),
        name="lclstream-demo-receiver",
        daemon=True,
    )
    with _errors():
        from lclstream.config import load_config
        from lclstream.pipeline import Pipeline

        child.start()
        try:
            received = [0, 0]
            recv_result: dict[str, Any] | None = None
            recv_error: str | None = None
            with _Progress(show) as progress:
                progress.update("sent", 0, events)
                progress.update("received", 0, events)

                def on_progress(st: dict[str, Any]) -> None:
                    nonlocal recv_result, recv_error
                    _pipeline_progress(progress, events)(st)
                    recv_result, recv_error = _drain(q, received, recv_result, recv_error)
                    progress.update("received", received[0], events, f"{received[1] / 1e6:,.0f} MB")

                pipe = Pipeline(
                    load_config(demo_config(endpoint, events, fmt)), progress=on_progress
                )
                _await_ready(q, child)
                res = pipe.run()
                deadline = time.monotonic() + 60.0
                while recv_result is None and recv_error is None:
                    if time.monotonic() > deadline or not child.is_alive() and q.empty():
                        break
                    time.sleep(0.05)
                    recv_result, recv_error = _drain(q, received, recv_result, recv_error)
                    progress.update("received", received[0], events, f"{received[1] / 1e6:,.0f} MB")
                if recv_result is not None:
                    mb = f"{recv_result['bytes'] / 1e6:,.0f} MB"
                    progress.update("received", recv_result["events"], events, mb)
        finally:
            child.join(5)
            if child.is_alive():
                child.terminate()
                child.join(2)
        if recv_error is not None:
            raise LclstreamError(f"demo receiver failed: {recv_error}")
        if recv_result is None:
            raise LclstreamError("demo receiver gave no result within 60 s")
        d = _result_dict(res)
        d["startup_seconds"] = (pipe.created_at - t_start) + res.startup_seconds
        d["format"] = fmt
        d["received_events"] = recv_result["events"]
        d["received_bytes"] = recv_result["bytes"]
        d["complete"] = bool(recv_result["complete"] and res.complete)
        d["out_dir"] = str(out_dir)
        d["files"] = recv_result["files"]
    if json_:
        emit_json(d)
    elif not quiet:
        console = _console()
        rows = _pipeline_rows(d)
        rows.append(("received events", f"{d['received_events']:,}"))
        rows.append(("complete", "yes" if d["complete"] else "NO"))
        console.print(_summary_table(f"lclstream demo ({fmt})", rows))
        console.print(_stage_table(d["stages"]))
        console.print(f"wrote {len(d['files'])} received files to {out_dir}")
    if not d["complete"]:
        raise fail("demo stream incomplete: the receiver's counts do not match the totals", 3)


def _free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def _await_ready(q: Any, child: Any, timeout: float = 60.0) -> str:
    import queue as queue_mod

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = q.get(timeout=0.1)
        except queue_mod.Empty:
            if not child.is_alive():
                raise LclstreamError("demo receiver exited before it was ready") from None
            continue
        if msg[0] == "ready":
            return str(msg[1][0])
        if msg[0] == "error":
            raise LclstreamError(f"demo receiver failed: {msg[1]}")
    raise LclstreamError(f"demo receiver not ready after {timeout:.0f} s")


def _drain(
    q: Any, received: list[int], result: dict[str, Any] | None, error: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    import queue as queue_mod

    while True:
        try:
            msg = q.get_nowait()
        except queue_mod.Empty:
            return result, error
        if msg[0] == "progress":
            received[0], received[1] = msg[1], msg[2]
        elif msg[0] == "done":
            result = msg[1]
            received[0], received[1] = result["events"], result["bytes"]
        elif msg[0] == "error":
            error = msg[1]


# ----------------------------------------------------------------------------------- inspect


@app.command("inspect")
def inspect_(
    target: Annotated[str, typer.Argument(help="An .h5 file, or a URL to receive from.")],
    connect: Annotated[
        bool, typer.Option("--connect", help="For a URL: connect instead of binding.")
    ] = False,
    messages: Annotated[int, typer.Option(min=1, help="For a URL: messages to take.")] = 5,
    timeout: Annotated[float, typer.Option(help="For a URL: seconds to wait.")] = 30.0,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe a file written by lclstream or the messages arriving at a URL.

    Exit codes: 0 ok, 1 error, 2 usage or configuration error.
    """
    with _errors():
        from lclstream import inspect as insp

        if "://" in target:
            report = insp.inspect(_receive_some(target, not connect, messages, timeout))
        else:
            report = insp.inspect(target)
    if json_:
        emit_json(report)
    else:
        from rich.console import Console

        Console(width=max(100, Console().width)).print(insp.render(report))


def _receive_some(url: str, bind: bool, n: int, timeout: float) -> list[list[bytes]]:
    """Up to ``n`` messages from ``url`` (fewer if the stream ends or ``timeout`` passes)."""
    from lclstream import formats
    from lclstream.transport import Receiver

    got: list[list[bytes]] = []
    with Receiver(url, bind=bind, timeout=timeout) as rx:
        while len(got) < n:
            try:
                frames = rx.recv(timeout)
            except TimeoutError:
                break
            got.append([bytes(f) for f in frames])
            try:
                if formats.parse(frames, decode=False).kind == "end":
                    break
            except LclstreamError:
                pass  # inspect reports what it is
    if not got:
        raise LclstreamError(f"no message arrived at {url} within {timeout:g} s")
    return got


# ------------------------------------------------------------------------------------ config


@app.command()
def config(
    example: Annotated[
        bool, typer.Option("--example", help="Print a complete working config.")
    ] = False,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the config's JSON Schema.")
    ] = False,
    check: Annotated[
        Path | None, typer.Option("--check", help="Validate a config file; one line per verdict.")
    ] = None,
) -> None:
    """Print an example config, the JSON Schema, or check a config file.

    Exit codes: 0 ok, 1 error, 2 usage or configuration error.
    """
    if sum([example, schema, check is not None]) != 1:
        raise fail("give exactly one of --example, --schema, --check FILE", EXIT_USAGE)
    with _errors():
        from lclstream import config as cfgmod

        if example:
            typer.echo(cfgmod.example_config().rstrip("\n"))
        elif schema:
            typer.echo(json.dumps(cfgmod.json_schema(), indent=2))
        else:
            assert check is not None
            cfg = cfgmod.load_config(check)
            kinds = [
                getattr(cfg.event_source, "type", "?"),
                getattr(cfg.data_serializer, "type", "?"),
                *[getattr(h, "type", "?") for h in cfg.data_handlers],
            ]
            typer.echo(f"{check}: ok ({', '.join(kinds)})")


# ------------------------------------------------------------------------------------- bench


def _repo_root() -> Path | None:
    """The source checkout holding bench/: $LCLSTREAM_REPO, the working directory or one of
    its parents, the tree this module runs from (a developer checkout), or the checkout the
    installed package was built from."""
    starts: list[Path] = []
    if os.environ.get("LCLSTREAM_REPO"):
        starts.append(Path(os.environ["LCLSTREAM_REPO"]))
    starts += [Path.cwd(), Path(__file__).resolve().parent]
    built_from = Path(__file__).resolve().parent / "source_dir.txt"  # written by the build
    if built_from.is_file():
        starts.append(Path(built_from.read_text().strip()))
    for start in starts:
        for parent in (start, *start.parents):
            if (parent / "bench" / "harness.py").is_file() and (
                parent / "pyproject.toml"
            ).is_file():
                return parent
    return None


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes, few repeats.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this benchmark (repeatable).")
    ] = None,
) -> None:
    """Run the benchmarks (needs the repository checkout's bench/ folder: run from it, or set
    LCLSTREAM_REPO).

    Exit codes: 0 ok, 1 error, 2 usage or configuration error.
    """
    root = _repo_root()
    if root is None:
        raise fail(
            "the benchmarks live in the repository checkout (bench/harness.py); run "
            "`lclstream bench` from a source tree or `make bench`",
            EXIT_ERROR,
        )
    with _errors():
        for p in (str(root / "bench"), str(root)):
            if p not in sys.path:
                sys.path.insert(0, p)
        os.environ.setdefault("LCLSTREAM_REPO", str(root))
        import importlib

        harness = importlib.import_module("bench.harness")
        args: list[Any] = [quick, str(json_out) if json_out is not None else None]
        rc = harness.main(*args, only=list(only)) if only else harness.main(*args)
    if isinstance(rc, int) and rc:
        raise typer.Exit(rc)


@app.command()
def keys(
    directory: Annotated[Path, typer.Argument(help="Folder for the key files (created).")],
    name: Annotated[str, typer.Option(help="Base name of the files.")] = "server",
) -> None:
    """Generate a CurveZMQ key pair: NAME.key (public, give it to the other side) and
    NAME.key_secret (keep it; mode 0600). ZeroMQ's certificate format, as pyzmq reads."""
    from lclstream import transport

    with _errors():
        if not transport.curve_available():
            raise fail("this libzmq was built without CURVE support")
        pub, sec = transport.generate_keys(directory, name)
    typer.echo(f"public key: {pub}")
    typer.echo(f"secret key: {sec}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
