"""``lclstream inspect TARGET``: describe a file lclstream wrote, or messages at a URL."""

from __future__ import annotations

from typing import Annotated

import typer

from lclstream.cli._common import emit_json, errors
from lclstream.errors import LclstreamError


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
    with errors():
        from lclstream import inspect as insp

        if "://" in target:
            report = insp.inspect(receive_some(target, not connect, messages, timeout))
        else:
            report = insp.inspect(target)
    if json_:
        emit_json(report)
    else:
        from rich.console import Console

        Console(width=max(100, Console().width)).print(insp.render(report))


def receive_some(url: str, bind: bool, n: int, timeout: float) -> list[list[bytes]]:
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
