"""``mpirun -n N lclstream stream CONFIG``: MPI ranks as the senders of one stream.

Why this shape: a receiver proves a stream complete only if it knows how many senders there
are and every one of them ends with its own end message. So every rank that yields events
is a sender with an index and the sender count, fixed before any event is read:

* psana2 runs (``exp=,run=``): psana gives ranks roles (rank 0 reads small data,
  ``PS_EB_NODES`` ranks build events, the rest yield them). Only the yielding ranks stream;
  the others drive psana and send nothing. A yielding rank that got no event still sends its
  start and end message (``events_read: 0``), so "fewer events than ranks" is exact too.
* every other source: every rank streams its share (event ``i`` on rank ``i % N``).

The ranks agree on one ``stream_id`` (rank 0 makes it and broadcasts it). mpi4py is
imported only under MPI, so a plain ``lclstream stream`` never loads it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lclstream.config import LclstreamConfig, Psana2EventSourceParameters
from lclstream.errors import ConfigError
from lclstream.run.result import PipelineResult

__all__ = ["RankPlan", "mpi_world", "plan_rank", "run_rank"]

#: Environment variables MPI launchers set: (rank, size) per implementation.
_LAUNCHER_VARS = (
    ("PMI_RANK", "PMI_SIZE"),  # MPICH / Hydra, Intel MPI
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),  # Open MPI
    ("PMIX_RANK", "PMIX_SIZE"),
)


def mpi_world() -> tuple[int, int] | None:
    """(rank, size) when this process runs under an MPI launcher with more than one rank,
    else None. Read from the launcher's environment, so nothing is imported to find out."""
    for rank_var, size_var in _LAUNCHER_VARS:
        if rank_var in os.environ and size_var in os.environ:
            try:
                rank, size = int(os.environ[rank_var]), int(os.environ[size_var])
            except ValueError:
                continue
            return (rank, size) if size > 1 else None
    return None


@dataclass(frozen=True)
class RankPlan:
    """What one rank does: stream as sender ``sender`` of ``senders``, or only drive psana."""

    rank: int
    size: int
    role: str  # psana's node type, or "worker" for non-psana sources
    streams: bool
    sender: int
    senders: int


def uses_psana_mpi(config: LclstreamConfig) -> bool:
    """psana splits events over ranks itself for ``exp=,run=`` (not for ``files=``)."""
    if not isinstance(config.event_source, Psana2EventSourceParameters):
        return False
    from lclstream.sources.psana2 import parse_psana2_identifier

    return "files" not in parse_psana2_identifier(config.source_identifier)


def plan_rank(config: LclstreamConfig, rank: int, size: int) -> RankPlan:
    """This rank's part in the stream (see the module docstring)."""
    if uses_psana_mpi(config):
        from lclstream.sources.psana2 import psana2_roles

        roles = psana2_roles(rank, size)
        return RankPlan(
            rank, size, roles.node_type, roles.streams, max(roles.sender, 0), roles.senders
        )
    return RankPlan(rank, size, "worker", True, rank, size)


def _check_config(config: LclstreamConfig, plan: RankPlan) -> None:
    for i, h in enumerate(config.data_handlers):
        if (
            h.type == "BinaryDataStreamingDataHandler"
            and h.role == "server"
            and plan.senders > 1
            and not (h.distribute and len(h.urls) >= plan.senders)
        ):
            raise ConfigError(
                f"data_handlers[{i}].role: 'server' binds its URLs, which {plan.senders} MPI "
                "senders cannot share; use role: client with a consumer that binds (or "
                "distribute: true with one URL per sender)"
            )


def run_rank(
    config: LclstreamConfig,
    *,
    events: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    world: tuple[int, int] | None = None,
) -> tuple[RankPlan, PipelineResult | None]:
    """Run this rank's part. Returns its plan and, for a streaming rank, its result (the
    non-streaming psana ranks return None after psana has finished the run)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = world if world is not None else (comm.Get_rank(), comm.Get_size())
    plan = plan_rank(config, rank, size)
    _check_config(config, plan)
    stream_id = comm.bcast(uuid.uuid4().hex if rank == 0 else None, root=0)
    if events is not None and not uses_psana_mpi(config):
        events = events // plan.senders + (1 if plan.sender < events % plan.senders else 0)
    if not plan.streams:
        from lclstream.sources.psana2 import drive_psana_run

        drive_psana_run(config)
        return plan, None
    from lclstream.run.pipeline import Pipeline

    try:
        pipe = Pipeline(
            config,
            events=events,
            worker=plan.sender,
            workers=plan.senders,
            progress=progress,
            stream_id=stream_id,
        )
        return plan, pipe.run()
    except BaseException as e:
        if uses_psana_mpi(config):
            # psana's other ranks wait for this one forever: its end message is out (the
            # pipeline delivered it while closing), so end the whole job, as MPI programs do.
            import sys

            print(f"lclstream: error: rank {rank}: {type(e).__name__}: {e}", file=sys.stderr)
            sys.stderr.flush()
            # mpirun forwards a rank's output asynchronously; an abort right after the write
            # can lose the one line that says why the job ended
            import time

            time.sleep(0.5)
            comm.Abort(1)
        raise
