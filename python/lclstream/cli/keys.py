"""``lclstream keys DIR``: a CurveZMQ key pair in ZeroMQ's certificate format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lclstream.cli._common import errors, fail


def keys(
    directory: Annotated[Path, typer.Argument(help="Folder for the key files (created).")],
    name: Annotated[str, typer.Option(help="Base name of the files.")] = "server",
) -> None:
    """Generate a CurveZMQ key pair: NAME.key (public, give it to the other side) and
    NAME.key_secret (keep it; mode 0600). ZeroMQ's certificate format, as pyzmq reads."""
    with errors():
        from lclstream import transport

        if not transport.curve_available():
            raise fail("this libzmq was built without CURVE support")
        pub, sec = transport.generate_keys(directory, name)
    typer.echo(f"public key: {pub}")
    typer.echo(f"secret key: {sec}")
