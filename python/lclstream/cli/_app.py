"""The Typer app: global options and the command table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from lclstream.cli import bench, config, demo, inspect, keys, receive, request, serve, stream
from lclstream.cli._common import EXIT_HELP, cmake_dir

app = typer.Typer(
    name="lclstream",
    help="Stream calibrated, compressed X-ray detector data (HDF5 / SIMPLON stream2 / raw "
    f"batches). {EXIT_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: (name, function) for every command, in the order ``--help`` lists them.
COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("stream", stream.stream),
    ("receive", receive.receive),
    ("demo", demo.demo),
    ("inspect", inspect.inspect_),
    ("config", config.config),
    ("bench", bench.bench),
    ("keys", keys.keys),
    ("serve", serve.serve),
]
for _name, _fn in COMMANDS:
    app.command(_name)(_fn)
app.add_typer(serve.token_app, name="token")
app.add_typer(request.request_app, name="request")


def _version_cb(value: bool) -> None:
    if value:
        from lclstream import __version__

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


def main() -> None:
    app()
