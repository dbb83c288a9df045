"""The ``runs`` table: what each run into a database read, did and added,
under its run id, in SQLite and PostgreSQL alike.

Rows of events keep their deterministic ids (a rerun of the same data adds
nothing), so a run records the rows it added per table next to its summary.

A database is named by a ``Target``: a SQLite file, or a ``postgresql://``
URL. PostgreSQL is reached with asyncpg in a loop of its own (these are the
command line's one-off reads and writes, after the run's loop has ended),
with a timeout on connecting and on each statement.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

Target = Path | str
"""A SQLite file, or a ``postgresql://`` URL (with its password, if any)."""

_TIMEOUT_S = 10.0


def is_url(target: Target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def shown(target: Target) -> str:
    """The target without its password, for messages and titles."""
    if not is_url(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    command: str
    started_ns: int
    finished_ns: int
    strategy: str
    params: dict[str, Any]
    data: list[dict[str, Any]]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "command": self.command,
            "started": _iso(self.started_ns),
            "finished": _iso(self.finished_ns),
            "strategy": self.strategy,
            "params": self.params,
            "data": self.data,
            "summary": self.summary,
        }


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def new_run_id(now_ns: int | None = None) -> str:
    """Sortable by start time, unique without coordination."""
    ns = time.time_ns() if now_ns is None else now_ns
    stamp = datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


_COLUMNS = "run_id, command, started_ns, finished_ns, strategy, params, data, summary"
_SELECT = f"SELECT {_COLUMNS} FROM runs"


def _values(rec: RunRecord) -> tuple[Any, ...]:
    return (
        rec.run_id,
        rec.command,
        rec.started_ns,
        rec.finished_ns,
        rec.strategy,
        json.dumps(rec.params, sort_keys=True, default=str),
        json.dumps(rec.data, default=str),
        json.dumps(rec.summary, sort_keys=True, default=str),
    )


def record(target: Target, rec: RunRecord) -> None:
    """Store ``rec`` in the database the run wrote (migrated by its store)."""
    if is_url(target):
        asyncio.run(record_async(str(target), rec))
        return
    conn = sqlite3.connect(target)
    try:
        with conn:
            conn.execute(
                f"INSERT INTO runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _values(rec)
            )
    finally:
        conn.close()


async def record_async(url: str, rec: RunRecord) -> None:
    """``record`` on PostgreSQL, for callers already on a loop."""
    conn = await asyncpg.connect(url, timeout=_TIMEOUT_S, command_timeout=_TIMEOUT_S)
    try:
        await conn.execute(
            f"INSERT INTO runs ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            *_values(rec),
        )
    finally:
        await conn.close(timeout=5.0)


def _row(r: Any) -> RunRecord:
    return RunRecord(
        run_id=r[0],
        command=r[1],
        started_ns=r[2],
        finished_ns=r[3],
        strategy=r[4],
        params=json.loads(r[5]),
        data=json.loads(r[6]),
        summary=json.loads(r[7]),
    )


def _query(target: Target, sql: str, *args: Any) -> list[RunRecord]:
    """Rows of a read of ``runs``; raises ``NoRunsTable`` where there is none."""
    if is_url(target):
        return asyncio.run(_pg_query(str(target), sql.replace("?", "$1"), *args))
    conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        return [_row(r) for r in conn.execute(sql, args)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise NoRunsTable(str(exc)) from None
        raise
    finally:
        conn.close()


async def _pg_query(url: str, sql: str, *args: Any) -> list[RunRecord]:
    conn = await asyncpg.connect(url, timeout=_TIMEOUT_S, command_timeout=_TIMEOUT_S)
    try:
        return [_row(r) for r in await conn.fetch(sql, *args)]
    except asyncpg.UndefinedTableError as exc:
        raise NoRunsTable(str(exc)) from None
    finally:
        await conn.close(timeout=5.0)


class NoRunsTable(Exception):
    """The database predates run ids (or is not Tradewind's)."""


def list_runs(target: Target) -> list[RunRecord]:
    return _query(target, f"{_SELECT} ORDER BY started_ns, run_id")


def find_run(target: Target, run_id: str) -> RunRecord | None:
    """By its id or a unique prefix of it."""
    found = _query(target, f"{_SELECT} WHERE run_id LIKE ? ORDER BY run_id", run_id + "%")
    exact = [r for r in found if r.run_id == run_id]
    if exact:
        return exact[0]
    return found[0] if len(found) == 1 else None
