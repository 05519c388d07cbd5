"""``lclstream config``: an example config, the JSON Schema, or a check of a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lclstream.cli._common import EXIT_USAGE, errors, fail


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
    with errors():
        from lclstream import config as cfgmod

        if example:
            typer.echo(cfgmod.example_config().rstrip("\n"))
        elif schema:
            typer.echo(json.dumps(cfgmod.json_schema(), indent=2))
        else:
            assert check is not None
            cfg = cfgmod.load_config(check)
            kinds = [
                cfg.event_source.type,
                cfg.data_serializer.type,
                *[h.type for h in cfg.data_handlers],
            ]
            typer.echo(f"{check}: ok ({', '.join(kinds)})")
