"""``lclstream stream CONFIG``: run the pipeline a config describes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from lclstream.cli._common import EXIT_INCOMPLETE, describe, emit_json, errors, fail
from lclstream.errors import LclstreamError


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
    from lclstream.run.mpi import mpi_world

    world = mpi_world()  # under mpirun: this rank's part of one stream
    show = not (json_ or quiet or world)
    with errors():
        from lclstream.cli._display import Progress
        from lclstream.config import (
            BatchProcessingPipelineParameters,
            InternalEventSourceParameters,
            load_config,
        )
        from lclstream.run.pipeline import Pipeline
        from lclstream.run.workers import run_workers

        cfg = load_config(config)
        total = events  # for the progress bar only
        if total is None and isinstance(cfg.event_source, InternalEventSourceParameters):
            total = cfg.event_source.number_of_events_to_generate
        pp = cfg.processing_pipeline
        workers = pp.workers if isinstance(pp, BatchProcessingPipelineParameters) else 1
        with Progress(show) as progress:
            cb = progress.sent(total) if show else None
            t_build = time.perf_counter()
            try:
                if world is not None:
                    from lclstream.run.mpi import run_rank

                    plan, rank_res = run_rank(cfg, events=events, world=world)
                    if rank_res is None:  # a psana rank that reads or builds, never sends
                        line = {"rank": plan.rank, "role": plan.role, "streams": False}
                        if json_:
                            emit_json(line)
                        elif not quiet:
                            typer.echo(f"rank {plan.rank} ({plan.role}): drove psana, sent nothing")
                        return
                    res = rank_res
                elif workers > 1:  # producer processes, one sender index each
                    res = run_workers(cfg, workers, events=events, progress=cb)
                else:
                    pipe = Pipeline(cfg, events=events, progress=cb)
                    t_build = pipe.created_at
                    res = pipe.run()
            except LclstreamError as e:
                partial: Any = getattr(e, "result", None)
                if json_ and partial is not None:  # scripts still get the counts, complete=false
                    emit_json({**partial.summary(), "error": describe(e)})
                raise
        d = res.summary()
        d["startup_seconds"] = res.startup_seconds + (t_build - t0)
        if world is not None:
            d.update(rank=plan.rank, role=plan.role, streams=True)
    if json_:
        emit_json(d)
    elif not quiet:
        from lclstream.cli._display import console, pipeline_rows, stage_table, summary_table

        out = console()
        out.print(summary_table("lclstream stream", pipeline_rows(d)))
        out.print(stage_table(d["stages"]))
    if not d["complete"]:
        raise fail(res.incomplete_reason(), EXIT_INCOMPLETE)
