"""``lclstream demo``: the synthetic two-process run (library code: ``lclstream.demo``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from lclstream.cli._common import EXIT_INCOMPLETE, Format, emit_json, errors, fail


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
    hits: Annotated[
        bool, typer.Option("--hits", help="Find peaks (peakfinder8) and drop the misses.")
    ] = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Stream to this bound endpoint (your consumer, e.g. a Ray example) instead "
            "of the demo's own receiver; the consumer checks completeness.",
        ),
    ] = None,
) -> None:
    """Stream synthetic Jungfrau 4M events, calibrated to photons and compressed, to a local
    receiver process that opens every message and checks completeness (or, with --to, to a
    consumer of yours).

    Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 incomplete stream.
    """
    t_start = time.perf_counter()
    show = not (json_ or quiet)
    fmt = format_.value
    if to is not None and out is not None:
        raise fail("--out is for the demo's own receiver; with --to your consumer writes", 2)
    with errors():
        from lclstream.cli._display import Progress
        from lclstream.demo import run_demo

        with Progress(show) as progress:
            progress.update("sent", 0, events)
            if to is None:
                progress.update("received", 0, events)

            def on_received(n: int, nbytes: int) -> None:
                progress.update("received", n, events, f"{nbytes / 1e6:,.0f} MB")

            run = run_demo(
                events,
                out,
                fmt,
                on_sent=progress.sent(events) if show else None,
                on_received=on_received if show else None,
                started_at=t_start,
                hits=hits,
                to=to,
            )
        d: dict[str, Any] = run.as_dict()
    if json_:
        emit_json(d)
    elif not quiet:
        from lclstream.cli._display import console, pipeline_rows, stage_table, summary_table

        out_ = console()
        rows = pipeline_rows(d)
        if to is None:
            rows.append(("received events", f"{d['received_events']:,}"))
            rows.append(("complete", "yes" if d["complete"] else "NO"))
        else:
            rows.append(("sent to", to))
            rows.append(("every event sent", "yes" if d["complete"] else "NO"))
        out_.print(summary_table(f"lclstream demo ({fmt})", rows))
        out_.print(stage_table(d["stages"]))
        if to is None:
            out_.print(f"wrote {len(d['files'])} received files to {run.out_dir}")
    if not d["complete"]:
        raise fail(
            "demo stream incomplete: the receiver's counts do not match the totals"
            if to is None
            else f"demo stream to {to} incomplete: not every event was sent",
            EXIT_INCOMPLETE,
        )
