"""The embedded store: one SQLite file, written from one dedicated thread."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from sqlalchemy import Table

from tradewind.events import Event
from tradewind.storage import migrate, schema
from tradewind.storage.base import SchemaError, Store
from tradewind.storage.rows import COLUMNS, Row, group_rows

sqlite3.register_adapter(Decimal, str)
T = TypeVar("T")


_MAX_VARIABLES = 999
"""SQLite's smallest compiled-in limit of ``?`` per statement (32766 since 3.32)."""
_ROWS_PER_STATEMENT = 128


@functools.cache
def _insert_sql(table: Table, rows: int) -> str:
    cols = COLUMNS[table]
    one = f"({', '.join('?' * len(cols))})"
    return (
        f"INSERT OR IGNORE INTO {table.name} ({', '.join(cols)}) VALUES {', '.join([one] * rows)}"
    )


def _per_statement(table: Table) -> int:
    return max(1, min(_ROWS_PER_STATEMENT, _MAX_VARIABLES // len(COLUMNS[table])))


def _insert(conn: sqlite3.Connection, table: Table, rows: list[Row]) -> None:
    """Many rows per INSERT. The sqlite3 module takes the GIL back after every
    statement it steps, so with one row per statement the writer thread
    queued for the GIL once per row behind the services' thread; with 128 a
    statement it does so once per 128 (``bench/README.md``, "SQLite")."""
    per = _per_statement(table)
    whole = len(rows) - len(rows) % per
    flat = itertools.chain.from_iterable
    if whole:
        conn.executemany(
            _insert_sql(table, per), [tuple(flat(rows[i : i + per])) for i in range(0, whole, per)]
        )
    if whole < len(rows):
        conn.execute(_insert_sql(table, len(rows) - whole), tuple(flat(rows[whole:])))


class SqliteStore(Store):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        if not url.startswith("sqlite:///"):
            raise ValueError(f"not a SQLite URL: {url.split(':', 1)[0]}:…")
        return cls(url[len("sqlite:///") :])

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(f"sqlite:///{self.path}")
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        self._conn = conn

    async def start(self) -> None:
        await self._run(self._open)

    def _open_read_only(self) -> None:
        """``mode=ro``: SQLite itself refuses every write, and a missing file
        is an error instead of a new empty database. A WAL database needs its
        ``-shm`` file beside it; on a read-only volume, where none can be
        made, the file is opened ``immutable`` (nothing can change it there)."""
        if not self.path.is_file():
            raise SchemaError(f"no SQLite database at {self.path}")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        if not os.access(self.path.parent, os.W_OK):
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        try:
            try:
                rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
            except sqlite3.DatabaseError as exc:
                if "no such table" not in str(exc):
                    raise SchemaError(f"cannot read {self.path}: {exc}") from None
                rows = []
            migrate.check_revision(str(rows[0][0]) if rows else None)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def open_read_only(self) -> None:
        await self._run(self._open_read_only)

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._pool.shutdown(wait=True)

    def _write(self, grouped: dict[Table, list[Row]]) -> dict[str, int]:
        conn = self._conn
        assert conn is not None, "store not started"
        out: dict[str, int] = {}
        conn.execute("BEGIN")
        try:
            for table, rows in grouped.items():
                before = conn.total_changes
                _insert(conn, table, rows)
                out[table.name] = conn.total_changes - before
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return out

    async def write(self, events: Sequence[Event]) -> dict[str, int]:
        grouped = group_rows(events)
        if not grouped:
            return {}
        return await self._run(self._write, grouped)

    def _fetch(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        assert self._conn is not None, "store not started"
        return list(self._conn.execute(sql, args).fetchall())

    async def fetch(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        return await self._run(self._fetch, sql, args)

    async def stream(
        self, sql: str, chunk: int = 50_000
    ) -> AsyncIterator[Sequence[Sequence[object]]]:
        assert self._conn is not None, "store not started"
        cur = await self._run(self._conn.execute, sql)
        try:
            while rows := await self._run(cur.fetchmany, chunk):
                yield rows
        finally:
            await self._run(cur.close)

    async def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in schema.metadata.tables:
            rows = await self.fetch(f"SELECT count(*) FROM {name}")
            out[name] = int(rows[0][0])  # type: ignore[call-overload]
        return out
