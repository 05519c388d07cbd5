"""``lclstream receive URL``: receive one stream, open every message, give the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lclstream.cli._common import EXIT_INCOMPLETE, Format, emit_json, errors, fail


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
    strict: Annotated[
        bool,
        typer.Option(help="Stop with an error at the first rejected message (default: count it)."),
    ] = False,
    stream_id: Annotated[
        str | None,
        typer.Option(help="Account for this stream only (default: the first one seen)."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="Threads decoding each message (0: all cores; 1 when the streamer runs on "
            "this machine too).",
        ),
    ] = 0,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            help="Change a limit on what a message may declare, KEY=VALUE (e.g. "
            "max_senders=16, max_message_bytes=1GiB); see lclstream.limits.Limits.",
        ),
    ] = None,
) -> None:
    """Receive a stream, open every message and check completeness from the end totals.

    Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream.
    """
    show = not (json_ or quiet)
    with errors():
        from lclstream.cli._display import Progress, console
        from lclstream.handlers import curve_settings
        from lclstream.limits import Limits
        from lclstream.run.receive import receive as do_receive

        limits = Limits.from_strings(limit or [])

        curve = curve_settings(curve_server_key, curve_secret_key, curve_allowed_clients)
        with Progress(show) as progress:

            def on_msg(r: Any) -> None:
                progress.update("received", r.events, expect, f"{r.bytes / 1e6:,.0f} MB")

            def on_ready(eps: list[str]) -> None:
                if show:
                    verb = "connected to" if connect else "listening on"
                    console().print(f"{verb} {', '.join(eps)}")

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
                limits=limits,
                strict=strict,
                stream_id=stream_id,
                decode_threads=threads,
            )
        d = res.as_dict()
    if json_:
        emit_json(d)
    elif not quiet:
        from lclstream.cli._display import receive_rows, summary_table

        console().print(summary_table("lclstream receive", receive_rows(d)))
    if not res.complete:
        raise fail(res.incomplete_reason(), EXIT_INCOMPLETE)
