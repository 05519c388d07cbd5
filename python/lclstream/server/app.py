"""The REST service: LCLS' transfer API v2 (``/api/v2/transfers``) plus live progress.

``create_app(state_dir)`` builds the FastAPI app: transfer records in ``state_dir/transfers.db``
(SQLite), static tokens in ``state_dir/tokens.json``. Owners see only their own transfers;
another user's transfer is 404, never 403 (its existence is not disclosed).
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations at run time,
# and the dependency aliases are local to create_app.
import asyncio
import json
import sqlite3
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError

from lclstream.server.auth import JwtVerifier, TokenStore
from lclstream.server.confine import confine_parameters
from lclstream.server.metrics import CONTENT_TYPE, registry_for, render
from lclstream.server.requests import (
    RequestError,
    ShortRequest,
    TransferRequest,
    config_for,
    experiment_and_run,
)
from lclstream.server.runner import TransferRunner
from lclstream.server.status_path import StatusCache, StatusFastPath
from lclstream.server.store import FINAL_STATES, STATES, TransferRecord, TransferStore

__all__ = ["create_app"]

API = "/api/v2"
#: The most of a worker log one request reads (its head or its tail).
LOG_READ_MAX = 8 << 20
#: the largest ``skip`` a listing takes: SQLite's INTEGER (beyond it the store cannot even
#: bind the number; schemathesis found 2**63 answered with a 500)
SKIP_MAX = (1 << 63) - 1


def read_log(path: Path, mode: str, limit: int) -> bytes:
    """The first or last ``limit`` bytes of a log file (a long transfer's log is not read
    whole to answer for its last lines)."""
    with open(path, "rb") as f:
        if mode == "head":
            return f.read(limit)
        size = f.seek(0, 2)
        f.seek(max(0, size - limit))
        text = f.read()
        if size > limit:  # started inside a line: from the next whole one
            text = text[text.find(b"\n") + 1 :]
        return text


def _public(rec: TransferRecord, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rec.id,
        "created_at": rec.created_at,
        "requested_by": rec.owner,
        "state": rec.state,
        "experiment": rec.experiment,
        "run": rec.run,
        "cache_mode": rec.cache_mode,
        "connection_info": rec.connection_info if rec.state == "ready" else None,
    }
    if detail:
        out["transitions"] = rec.transitions
        out["progress"] = {
            "events_read": 0,
            "events_sent": 0,
            "events_dropped": 0,
            "bytes_sent": 0,
            "rate": 0.0,
            "complete": rec.state == "completed",
            **rec.progress,
        }
    return out


def _warm_request_path() -> None:
    """Validate one demo request at start-up, as a POST would.

    Why: the first POST imported and built the config models (~0.3 s of CPU) while its
    transfer was starting on the same node, and its first message came 2.2 s after the
    POST instead of under 1 s."""
    from lclstream.config import load_config

    demo = ShortRequest.model_validate(
        {"exp": "xpptut15", "run": 670, "detector_name": "jungfrau4M", "mode": "calib",
         "addr": "tcp://127.0.0.1:1"}
    )  # fmt: skip
    load_config(config_for(demo))


def create_app(
    state_dir: str | Path,
    *,
    jwt: JwtVerifier | None = None,
    max_active_per_user: int = 4,
    data_root: str | Path | None = None,
) -> FastAPI:
    """The service. ``max_active_per_user`` transfers of one user run at once; more wait in
    a queue (``provisioning``, transition "queued") and start as earlier ones end."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    store = TransferStore(state / "transfers.db")
    tokens = TokenStore(state / "tokens.json")
    runner = TransferRunner(store, log_dir=state / "logs")
    audit_path = state / "audit.log"
    audit_lock = threading.Lock()
    queued: dict[str, list[str]] = {}  # owner -> transfer ids waiting for a slot, oldest first
    running_of: dict[str, set[str]] = {}  # owner -> transfer ids with a process
    slots = threading.Lock()

    def audit(event: str, who: str, **fields: Any) -> None:
        """Who accessed which data when: one JSON line per event, appended."""
        line = json.dumps({"time": time.time(), "event": event, "user": who, **fields})
        with audit_lock, open(audit_path, "a") as f:
            f.write(line + "\n")

    def launch(rec_id: str, owner: str, config: dict[str, Any]) -> None:
        running_of.setdefault(owner, set()).add(rec_id)
        runner.start(rec_id, config)

    def on_change(transfer_id: str) -> None:
        rec = store.get(transfer_id)
        if rec is None or rec.state not in FINAL_STATES:
            return
        with slots:
            mine = running_of.get(rec.owner, set())
            if transfer_id not in mine:
                return
            mine.discard(transfer_id)
            waiting = queued.get(rec.owner, [])
            while waiting and len(mine) < max_active_per_user:
                nxt = store.get(waiting.pop(0))
                if nxt is not None and nxt.state == "provisioning":
                    store.transition(nxt.id, "provisioning", "starting", "orchestrator")
                    launch(nxt.id, nxt.owner, nxt.config)

    runner.on_change = on_change

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        store.fail_interrupted()
        runner.warm_up()
        _warm_request_path()
        yield
        runner.stop()

    app = FastAPI(
        title="lclstream",
        summary="Stream calibrated LCLS detector data to a remote consumer",
        version="2",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.runner = runner
    app.state.tokens = tokens

    def user_of(token: str) -> str | None:
        who = jwt.user_of(token) if jwt is not None else None
        return who if who is not None else tokens.user_of(token)

    async def user(authorization: Annotated[str | None, Header()] = None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        who = user_of(authorization[len("Bearer ") :].strip())
        if who is None:
            raise HTTPException(401, "invalid token", {"WWW-Authenticate": "Bearer"})
        return who

    User = Annotated[str, Depends(user)]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "running": runner.running(), "warm": runner.warm()}

    @app.post(f"{API}/transfers/", status_code=201)
    async def create_transfer(
        request: Request,
        who: User,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", max_length=200)
        ] = None,
    ) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(422, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(422, "the body must be a JSON object")
        try:
            if "parameters" in body:
                treq = TransferRequest.model_validate(body)
                config = confine_parameters(
                    dict(treq.parameters), str(data_root) if data_root is not None else None
                )
                cache_mode = treq.cache_mode
                config["data_handlers"] = [
                    {
                        "type": "BinaryDataStreamingDataHandler",
                        "urls": ["tcp://0.0.0.0:0"],
                        "role": "server",
                        "socket_type": "push",
                    }
                ]
            else:
                sreq = ShortRequest.model_validate(body)
                config = config_for(sreq, str(data_root) if data_root is not None else None)
                cache_mode = "per_transfer"
        except RequestError as e:
            raise HTTPException(422, str(e)) from None
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HTTPException(422, f"{where}: {first['msg']}") from None
        from lclstream.config import load_config
        from lclstream.errors import ConfigError

        try:
            load_config(config)  # a config that cannot run is refused now, not later
        except ConfigError as e:
            raise HTTPException(422, str(e)) from None
        exp, run = experiment_and_run(str(config.get("source_identifier", "")))
        if exp is None or run is None:
            raise HTTPException(422, "parameters.source_identifier: needs exp=... and run=...")
        if idempotency_key is not None:
            earlier = store.by_key(who, idempotency_key)
            if earlier is not None:
                if earlier.request != body:
                    raise HTTPException(422, "Idempotency-Key: already used with another body")
                return _public(earlier)
        rec = TransferRecord(
            id=str(uuid.uuid4()),
            owner=who,
            created_at=time.time(),
            state="provisioning",
            experiment=exp,
            run=run,
            cache_mode=cache_mode,
            request=body,
            config=config,
            idempotency_key=idempotency_key,
        )
        try:
            store.add(rec, "requested")
        except sqlite3.IntegrityError:  # the same key in a concurrent request won the race
            earlier = store.by_key(who, idempotency_key or "")
            if earlier is None:
                raise
            return _public(earlier)
        audit("transfer_created", who, id=rec.id, experiment=exp, run=run,
              source_identifier=config.get("source_identifier"),
              destination=[u for h in config.get("data_handlers", []) for u in h.get("urls", [])])  # fmt: skip
        with slots:
            if len(running_of.get(who, set())) >= max_active_per_user:
                queued.setdefault(who, []).append(rec.id)
                store.transition(
                    rec.id, "provisioning",
                    f"queued: {max_active_per_user} of your transfers are running", "orchestrator",
                )  # fmt: skip
                return _public(store.get(rec.id) or rec)
            launch(rec.id, who, config)
        return _public(rec)

    @app.get(f"{API}/transfers/")
    def list_transfers(
        who: User,
        skip: Annotated[int, Query(ge=0, le=SKIP_MAX)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        state: str | None = None,
    ) -> dict[str, Any]:
        if state is not None and state not in STATES:
            raise HTTPException(422, f"state: not one of {', '.join(STATES)}")
        recs, count = store.list_for(who, skip=skip, limit=limit, state=state)
        return {"data": [_public(r) for r in recs], "count": count}

    def owned(transfer_id: str, who: str) -> TransferRecord:
        rec = store.get(transfer_id, owner=who)
        if rec is None:
            raise HTTPException(404, "no such transfer")
        return rec

    status_cache = StatusCache(store.version)
    app.add_middleware(
        StatusFastPath, cache=status_cache, user_of=user_of, prefix=f"{API}/transfers/"
    )

    @app.get(f"{API}/transfers/{{transfer_id}}")
    async def get_transfer(transfer_id: str, who: User) -> Response:
        """Clients poll this: the document is rebuilt only when the transfer changed (and a
        current one is answered by ``StatusFastPath`` before this route is reached)."""
        hit = status_cache.current(transfer_id)
        if hit is None:
            version = store.version(transfer_id)
            rec = owned(transfer_id, who)
            body = json.dumps(_public(rec, detail=True)).encode()
            status_cache.put(transfer_id, version, rec.owner, body)
            hit = rec.owner, body
        if hit[0] != who:
            raise HTTPException(404, "no such transfer")
        return Response(hit[1], media_type="application/json")

    @app.delete(f"{API}/transfers/{{transfer_id}}")
    def cancel_transfer(transfer_id: str, who: User) -> dict[str, Any]:
        rec = owned(transfer_id, who)
        if rec.state in FINAL_STATES:
            return {"message": f"transfer already {rec.state}"}
        audit("transfer_canceled", who, id=transfer_id)
        with slots:
            waiting = queued.get(who, [])
            if transfer_id in waiting:  # never started: nothing to stop
                waiting.remove(transfer_id)
                store.transition(transfer_id, "canceled", "canceled before it started", "user")
                return {"message": "canceled"}
        store.transition(transfer_id, "canceling", "canceled by the owner", "user")
        runner.cancel(transfer_id)
        return {"message": "canceling"}

    @app.get(f"{API}/transfers/{{transfer_id}}/events")
    async def events(transfer_id: str, who: User, request: Request) -> StreamingResponse:
        """Server-sent events: the transfer's status (as GET) whenever it changes, until it
        reaches a final state."""
        owned(transfer_id, who)

        async def stream() -> Any:
            last = None
            while not await request.is_disconnected():
                rec = store.get(transfer_id, owner=who)
                if rec is None:
                    return
                doc = json.dumps(_public(rec, detail=True))
                if doc != last:
                    last = doc
                    yield f"event: status\ndata: {doc}\n\n"
                if rec.state in FINAL_STATES:
                    return
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream")

    metrics_registry = registry_for(store, runner.running)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus text format: transfers by state, totals, each active transfer's counts."""
        return Response(render(metrics_registry), media_type=CONTENT_TYPE)

    @app.get(f"{API}/experiments/{{exp}}/runs")
    def runs(exp: str, who: User) -> dict[str, Any]:
        """What this server can stream for an experiment (its data root, or the demo)."""
        from lclstream.server.catalog import list_runs

        found = list_runs(data_root, exp)
        if found is None:
            raise HTTPException(404, f"no experiment {exp!r} on this server")
        return {"experiment": exp, "runs": [r.as_dict() for r in found]}

    def transitions_log(rec: TransferRecord) -> bytes:
        rows = [f"{t['created_at']:.3f} {t['state']} {t['info']}\n" for t in rec.transitions]
        return "".join(rows).encode()

    @app.get(f"{API}/transfers/{{transfer_id}}/logs")
    def logs(transfer_id: str, who: User) -> dict[str, Any]:
        """The transfer's log streams: ``transitions`` (its states, from the store) and
        ``worker`` (what its process wrote: progress, the summary, tracebacks, and what
        psana or HDF5 printed), kept after the transfer ends, fails or is killed."""
        rec = owned(transfer_id, who)
        streams = [{"stream": "transitions", "available": True,
                    "size": len(transitions_log(rec)), "modified_at": None}]  # fmt: skip
        path = runner.log_path(rec.id)
        st = path.stat() if path is not None and path.is_file() else None
        streams.append(
            {
                "stream": "worker",
                "available": st is not None,
                "size": st.st_size if st is not None else 0,
                "modified_at": st.st_mtime if st is not None else None,
            }
        )
        return {"streams": streams}

    @app.get(f"{API}/transfers/{{transfer_id}}/logs/{{stream}}", response_class=PlainTextResponse)
    def log_stream(
        transfer_id: str,
        stream: str,
        who: User,
        mode: Annotated[str, Query(pattern="^(head|tail)$")] = "tail",
        lines: Annotated[int, Query(ge=1, le=100000)] = 100,
        bytes_: Annotated[int | None, Query(alias="bytes", ge=1, le=LOG_READ_MAX)] = None,
    ) -> Response:
        """``lines`` lines (or, with ``bytes``, that many bytes) from the head or the tail."""
        rec = owned(transfer_id, who)
        if stream == "transitions":
            text = transitions_log(rec)
        elif stream == "worker":
            path = runner.log_path(rec.id)
            if path is None or not path.is_file():
                raise HTTPException(404, "the worker has written no log (yet)")
            text = read_log(path, mode, LOG_READ_MAX)
        else:
            raise HTTPException(404, f"no log stream {stream!r} (there are: transitions, worker)")
        if bytes_ is not None:
            part = text[:bytes_] if mode == "head" else text[-bytes_:]
        else:
            rows = text.splitlines(keepends=True)
            part = b"".join(rows[:lines] if mode == "head" else rows[-lines:])
        return Response(part, media_type="text/plain; charset=utf-8")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    return app
