"""The ``runs`` table: what each run into a database read, did and added,
under its run id, in SQLite and PostgreSQL alike.

Rows of events keep their deterministic ids (a rerun of the same data adds
nothing), so a run records the rows it added per table next to its summary,
and the trading tables (``schema.RUN_SCOPED``) carry a ``run_id`` column: in
the transaction that stores a run's row, every trading row with no run yet is
stamped with its id. A command-line run owns its database while it runs (one
process, one writer), so those are exactly the rows it added; rows of the
distributed services, which have no run, stay NULL until a run writes into
the same database, which then claims them too (docs/runs.md).

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

from tradewind.storage.schema import RUN_SCOPED

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


def _stamps(mark: str) -> list[str]:
    return [f"UPDATE {t} SET run_id = {mark} WHERE run_id IS NULL" for t in RUN_SCOPED]


def record(target: Target, rec: RunRecord) -> None:
    """Store ``rec`` in the database the run wrote (migrated by its store) and
    stamp the trading rows it added with its id, in one transaction."""
    if is_url(target):
        asyncio.run(record_async(str(target), rec))
        return
    conn = sqlite3.connect(target)
    try:
        with conn:
            conn.execute(
                f"INSERT INTO runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _values(rec)
            )
            for sql in _stamps("?"):
                conn.execute(sql, (rec.run_id,))
    finally:
        conn.close()


async def record_async(url: str, rec: RunRecord) -> None:
    """``record`` on PostgreSQL, for callers already on a loop."""
    conn = await asyncpg.connect(url, timeout=_TIMEOUT_S, command_timeout=_TIMEOUT_S)
    try:
        async with conn.transaction():
            await conn.execute(
                f"INSERT INTO runs ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                *_values(rec),
            )
            for sql in _stamps("$1"):
                await conn.execute(sql, rec.run_id)
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


_ORDER_ROWS = (
    "SELECT o.client_order_id, o.ts_event, o.exchange, o.symbol, o.side, o.order_type, "
    "o.quantity, o.price, "
    "(SELECT count(*) FROM fills f WHERE f.client_order_id = o.client_order_id), "
    "(SELECT u.status FROM order_updates u WHERE u.client_order_id = o.client_order_id "
    "ORDER BY u.ts_event DESC, u.seq DESC LIMIT 1) "
    "FROM orders o WHERE o.run_id = ? ORDER BY o.ts_event, o.client_order_id"
)
_FILL_ROWS = (
    "SELECT id, ts_event, client_order_id, exchange, symbol, side, price, qty, fee, "
    "fee_currency, liquidity FROM fills WHERE run_id = ? ORDER BY ts_event, id"
)
ORDER_FIELDS = (
    "client_order_id", "ts_event", "exchange", "symbol", "side", "order_type",
    "quantity", "price", "fills", "status",
)  # fmt: skip
FILL_FIELDS = (
    "id", "ts_event", "client_order_id", "exchange", "symbol", "side", "price", "qty",
    "fee", "fee_currency", "liquidity",
)  # fmt: skip


@dataclass(frozen=True)
class RunRows:
    """The rows a run added, as stored: its row counts per trading table, its
    orders (with their fill count and last status) and its fills."""

    counts: dict[str, int]
    orders: list[dict[str, Any]]
    fills: list[dict[str, Any]]


def run_rows(target: Target, run_id: str) -> RunRows:
    counts_sql = [f"SELECT count(*) FROM {t} WHERE run_id = ?" for t in RUN_SCOPED]
    if is_url(target):
        return asyncio.run(_pg_rows(str(target), run_id, counts_sql))
    conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        counts = {
            t: conn.execute(q, (run_id,)).fetchone()[0]
            for t, q in zip(RUN_SCOPED, counts_sql, strict=True)
        }
        orders = conn.execute(_ORDER_ROWS, (run_id,)).fetchall()
        fills = conn.execute(_FILL_ROWS, (run_id,)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc):
            raise NoRunsTable(str(exc)) from None
        raise
    finally:
        conn.close()
    return _rows(counts, orders, fills)


async def _pg_rows(url: str, run_id: str, counts_sql: list[str]) -> RunRows:
    conn = await asyncpg.connect(url, timeout=_TIMEOUT_S, command_timeout=_TIMEOUT_S)
    try:
        counts = {
            t: int(await conn.fetchval(q.replace("?", "$1"), run_id))
            for t, q in zip(RUN_SCOPED, counts_sql, strict=True)
        }
        orders = await conn.fetch(_ORDER_ROWS.replace("?", "$1"), run_id)
        fills = await conn.fetch(_FILL_ROWS.replace("?", "$1"), run_id)
    except asyncpg.UndefinedColumnError as exc:
        raise NoRunsTable(str(exc)) from None
    finally:
        await conn.close(timeout=5.0)
    return _rows(counts, [tuple(r) for r in orders], [tuple(r) for r in fills])


def _plain(v: Any) -> Any:
    """Stored values as JSON takes them: money as exact decimal text."""
    if isinstance(v, (int, float, str)) or v is None:
        return v
    return str(v)


def _rows(counts: dict[str, int], orders: list[Any], fills: list[Any]) -> RunRows:
    return RunRows(
        counts=counts,
        orders=[dict(zip(ORDER_FIELDS, map(_plain, r), strict=True)) for r in orders],
        fills=[dict(zip(FILL_FIELDS, map(_plain, r), strict=True)) for r in fills],
    )
