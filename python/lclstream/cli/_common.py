"""What every command shares: exit codes, the one-line error, JSON output and the mapping of
typed library errors to exit codes (library code itself never exits)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from lclstream.errors import ConfigError, LclstreamError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
EXIT_HELP = "Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream."


def _formats() -> dict[str, str]:
    from lclstream.registry import format_names

    return format_names()


#: ``--format`` choices: the serializers' short names in the registry.
Format = Enum("Format", {n: n for n in _formats()}, type=str)  # type: ignore[misc]


def cmake_dir() -> Path:
    """Folder holding the installed core's CMake package config (for find_package)."""
    return Path(__file__).resolve().parent.parent / "share" / "cmake" / "lclstream"


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print one clear line on stderr and return the Exit to raise."""
    line = " ".join(str(message).split())  # one line, whatever the message held
    typer.echo(f"lclstream: error: {line}", err=True)
    return typer.Exit(code)


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text


@contextmanager
def errors() -> Iterator[None]:
    """Typed errors -> one line on stderr + exit code (config errors 2, others 1)."""
    try:
        yield
    except typer.Exit:
        raise
    except ConfigError as e:
        raise fail(str(e), EXIT_USAGE) from None
    except (LclstreamError, OSError, TimeoutError, ValueError) as e:
        raise fail(describe(e)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    except Exception as e:
        if os.environ.get("LCLSTREAM_DEBUG"):
            raise
        raise fail(
            f"internal error: {type(e).__name__}: {e} (LCLSTREAM_DEBUG=1 shows the traceback)"
        ) from None
