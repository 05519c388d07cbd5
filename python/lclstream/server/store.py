"""Transfer records in SQLite: what a restarted server still knows.

Why SQLite: one file, transactions, no service to run; a restarted server lists the history
and marks what was running when it stopped as ``failed`` ("server restarted"), so nobody
waits for a transfer that no process is running any more. One connection per thread (the
web server's threads and the runner's monitor threads all write).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "STATES", "TransferRecord", "TransferStore"]

#: LCLS' transfer API v2 states.
STATES = ("provisioning", "ready", "completed", "failed", "canceling", "canceled")
FINAL_STATES = ("completed", "failed", "canceled")
ACTIVE_STATES = ("provisioning", "ready", "canceling")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    experiment TEXT,
    run INTEGER,
    cache_mode TEXT,
    request TEXT NOT NULL,
    config TEXT NOT NULL,
    connection_info TEXT,
    progress TEXT NOT NULL DEFAULT '{}',
    idempotency_key TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS transfers_by_key ON transfers (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS transitions (
    transfer_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    info TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_transfer ON transitions (transfer_id, created_at);
"""


@dataclass
class TransferRecord:
    id: str
    owner: str
    created_at: float
    state: str
    experiment: str | None
    run: int | None
    cache_mode: str
    request: dict[str, Any]
    config: dict[str, Any]
    connection_info: dict[str, Any] | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    idempotency_key: str | None = None


class TransferStore:
    """The server's records: transfers and their state transitions."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._lock = threading.Lock()  # state changes are read-check-write
        #: bumped on every change of a transfer: readers cache what they built from it
        self._versions: dict[str, int] = {}
        self._counter = itertools.count(1)
        with self._tx() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0)
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextmanager
    def _tx(self, changes: str | None = None) -> Iterator[sqlite3.Connection]:
        """A transaction; ``changes``: the transfer it changes, whose version is bumped once
        the change is committed (bumped before, a reader could cache the old row under the
        new version and serve it until the next change)."""
        db = self._db()
        with db:
            yield db
        if changes is not None:
            self._bump(changes)

    def version(self, transfer_id: str) -> int:
        """A number that changes whenever ``transfer_id`` changes in this process (0: none seen)."""
        return self._versions.get(transfer_id, 0)

    def _bump(self, transfer_id: str) -> None:
        # a fresh number from one counter (atomic under the GIL): two threads changing one
        # transfer at once never leave it at a version a reader has already seen
        self._versions[transfer_id] = next(self._counter)

    def add(self, rec: TransferRecord, info: str) -> None:
        with self._lock, self._tx(rec.id) as db:
            db.execute(
                "INSERT INTO transfers VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.id,
                    rec.owner,
                    rec.created_at,
                    rec.state,
                    rec.experiment,
                    rec.run,
                    rec.cache_mode,
                    json.dumps(rec.request),
                    json.dumps(rec.config),
                    json.dumps(rec.connection_info) if rec.connection_info else None,
                    json.dumps(rec.progress),
                    rec.idempotency_key,
                ),
            )
            db.execute(
                "INSERT INTO transitions VALUES (?,?,?,?,?)",
                (rec.id, rec.created_at, rec.state, info, "user"),
            )

    def transition(
        self,
        transfer_id: str,
        state: str,
        info: str,
        source: str,
        *,
        only_from: tuple[str, ...] | None = None,
    ) -> bool:
        """Move a transfer to ``state`` (if it is in ``only_from``, when given); final states
        never change again. Returns whether it moved."""
        if state not in STATES:
            raise ValueError(f"unknown transfer state {state!r}")
        with self._lock, self._tx(transfer_id) as db:
            row = db.execute("SELECT state FROM transfers WHERE id=?", (transfer_id,)).fetchone()
            if row is None or row["state"] in FINAL_STATES:
                return False
            if only_from is not None and row["state"] not in only_from:
                return False
            db.execute("UPDATE transfers SET state=? WHERE id=?", (state, transfer_id))
            db.execute(
                "INSERT INTO transitions VALUES (?,?,?,?,?)",
                (transfer_id, time.time(), state, info, source),
            )
            return True

    def set_connection_info(self, transfer_id: str, info: dict[str, Any]) -> None:
        with self._tx(transfer_id) as db:
            db.execute(
                "UPDATE transfers SET connection_info=? WHERE id=?", (json.dumps(info), transfer_id)
            )

    def set_progress(self, transfer_id: str, progress: dict[str, Any]) -> None:
        with self._tx(transfer_id) as db:
            db.execute(
                "UPDATE transfers SET progress=? WHERE id=?", (json.dumps(progress), transfer_id)
            )

    def _record(self, row: sqlite3.Row, with_transitions: bool) -> TransferRecord:
        rec = TransferRecord(
            id=row["id"],
            owner=row["owner"],
            created_at=row["created_at"],
            state=row["state"],
            experiment=row["experiment"],
            run=row["run"],
            cache_mode=row["cache_mode"] or "per_transfer",
            request=json.loads(row["request"]),
            config=json.loads(row["config"]),
            connection_info=json.loads(row["connection_info"]) if row["connection_info"] else None,
            progress=json.loads(row["progress"] or "{}"),
            idempotency_key=row["idempotency_key"],
        )
        if with_transitions:
            rows = self._db().execute(
                "SELECT created_at, state, info, source FROM transitions WHERE transfer_id=? "
                "ORDER BY created_at, rowid",
                (rec.id,),
            )
            rec.transitions = [dict(r) for r in rows]
        return rec

    def get(self, transfer_id: str, owner: str | None = None) -> TransferRecord | None:
        """The transfer, or None if it does not exist or (with ``owner``) is not theirs."""
        row = self._db().execute("SELECT * FROM transfers WHERE id=?", (transfer_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return self._record(row, True)

    def list_for(
        self, owner: str, *, skip: int = 0, limit: int = 100, state: str | None = None
    ) -> tuple[list[TransferRecord], int]:
        where, args = "owner=?", [owner]
        if state is not None:
            where += " AND state=?"
            args.append(state)
        db = self._db()
        count = db.execute(f"SELECT COUNT(*) FROM transfers WHERE {where}", args).fetchone()[0]
        rows = db.execute(
            f"SELECT * FROM transfers WHERE {where} ORDER BY created_at DESC LIMIT ? OFFSET ?",
            [*args, limit, skip],
        ).fetchall()
        return [self._record(r, False) for r in rows], int(count)

    def by_key(self, owner: str, key: str) -> TransferRecord | None:
        """The transfer ``owner`` created with this Idempotency-Key, if any."""
        row = (
            self._db()
            .execute("SELECT * FROM transfers WHERE owner=? AND idempotency_key=?", (owner, key))
            .fetchone()
        )
        return None if row is None else self._record(row, False)

    def count_by_state(self) -> dict[str, int]:
        rows = self._db().execute("SELECT state, COUNT(*) FROM transfers GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    def progress_totals(self) -> dict[str, int]:
        """Sums of the progress counters over every transfer (``/metrics`` totals)."""
        fields = ("events_read", "events_sent", "events_dropped", "bytes_sent")
        sums = ", ".join(f"COALESCE(SUM(json_extract(progress, '$.{f}')), 0)" for f in fields)
        row = self._db().execute(f"SELECT {sums} FROM transfers").fetchone()
        return {f: int(v) for f, v in zip(fields, row, strict=True)}

    def active(self) -> list[TransferRecord]:
        rows = (
            self._db()
            .execute(
                f"SELECT * FROM transfers WHERE state IN ({','.join('?' * len(ACTIVE_STATES))})",
                ACTIVE_STATES,
            )
            .fetchall()
        )
        return [self._record(r, False) for r in rows]

    def fail_interrupted(self) -> int:
        """At start-up: transfers a previous server ran are no longer running."""
        n = 0
        for rec in self.active():
            if self.transition(rec.id, "failed", "server restarted", "orchestrator"):
                n += 1
        return n
