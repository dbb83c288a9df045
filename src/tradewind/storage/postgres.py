"""The PostgreSQL store: asyncpg, batched COPY, idempotent inserts.

A batch is written in one transaction with binary COPY (so ``Decimal`` lands
in NUMERIC exactly), straight into the tables: a batch never written before
(nearly every batch) costs nothing more. COPY aborts the whole transaction on
the first row already stored (a redelivered batch, a duplicate id within the
batch); the batch is then written again the safe way: COPYed into
per-connection temporary staging tables that empty themselves at commit, and
moved with ``INSERT … SELECT … ON CONFLICT DO NOTHING``, so a redelivered
batch inserts nothing and fails nothing. Measured (bench/README.md): the
direct COPY doubles db_writer's rows/s; a conflicting batch costs one aborted
COPY more.

A connection lost mid-write is retried with backoff: the transaction either
committed or not, and a retry of a committed batch inserts nothing, so a retry
can neither lose nor duplicate rows. Only after ``retry_max_s`` does ``write``
raise ``ConnectionError``, and the caller (db_writer) keeps the batch unacked.
A full disk raises ``StoreFullError`` at once (the transaction rolled back).
A full WAL volume stops the server instead (a PANIC, then a recovery that
cannot write its checkpoint): once any connection was lost with "No space left
on device", writes raise ``StoreFullError`` while the server is unreachable,
until one succeeds again.

Market tables are partitioned by ``ts_event`` (``partitions.py``): a COPY
that meets a row no partition takes fails as a whole; the partitions that
batch needs are created and the batch is written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import structlog
from sqlalchemy import Table

from tradewind.events import Event
from tradewind.observability import metrics
from tradewind.storage import migrate, partitions, schema
from tradewind.storage.base import Maintenance, SchemaError, Store, StoreFullError
from tradewind.storage.rows import COLUMNS, Row, group_rows

if TYPE_CHECKING:
    from tradewind.config import Settings

log = structlog.get_logger("tradewind.storage.postgres")
T = TypeVar("T")

_TRANSIENT: tuple[type[Exception], ...] = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    # an interrupted COPY can leave the protocol mid-operation; asyncpg then
    # terminates the connection on release, so a retry gets a fresh one
    asyncpg.exceptions.InternalClientError,
)


_MIGRATE_LOCK = 0x7477_6D69_6772  # "twmigr"
_NO_SPACE = "No space left on device"
"""strerror(ENOSPC) as a PANIC on a full WAL volume words it (measured on
PostgreSQL 15: 'could not write to file "pg_wal/xlogtemp.N": No space left
on device'); the server's messages are not translated for clients with
lc_messages C, the default of the images we ship."""


def _no_space(exc: BaseException | None) -> bool:
    """Whether a lost connection carried a PANIC for want of space: asyncpg
    words the backend's last message into the error, which is often masked
    by a later one (a transaction's exit on the closed connection)."""
    for _ in range(8):
        if exc is None:
            return False
        if _NO_SPACE in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def url_with_password(url: str, password: str) -> str:
    """``url`` with ``password`` set, so the password can live in a secret file
    while the URL (without it) sits in plain configuration."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = quote(parts.username or "postgres", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _stage(table: Table) -> str:
    return f"_tw_stage_{table.name}"


_TABLES = [m.table for m in schema.MAPPINGS]
_COLUMNS = {t: list(COLUMNS[t]) for t in _TABLES}
_MOVE = {
    t: (
        f"INSERT INTO {t.name} ({', '.join(_COLUMNS[t])}) "
        f"SELECT {', '.join(_COLUMNS[t])} FROM {_stage(t)} ON CONFLICT DO NOTHING"
    )
    for t in _TABLES
}


async def _init_connection(conn: asyncpg.Connection) -> None:
    for t in _TABLES:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_stage(t)} "
            f"(LIKE {t.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )


def intervals_ns(default_s: int, per_table_s: Mapping[str, int] | None) -> dict[str, int]:
    """Each partitioned table's interval, in ns."""
    per = per_table_s or {}
    return {t: per.get(t, default_s) * partitions.NS for t in schema.PARTITIONED}


async def prepare_partitions(url: str, intervals: Mapping[str, int], ahead: int) -> list[str]:
    """Partitions from now to ``ahead`` intervals on (``tradewind migrate``);
    ``intervals``: seconds per table."""
    conn = await asyncpg.connect(url, timeout=10.0)
    try:
        made = await partitions.ensure_ahead(
            conn, time.time_ns(), {t: s * partitions.NS for t, s in intervals.items()}, ahead
        )
    finally:
        await conn.close(timeout=5.0)
    return [p.name for p in made]


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        retry_max_s: float = 30.0,
        pool_size: int = 4,
        command_timeout_s: float = 60.0,
        partition_interval_s: int = 86_400,
        partitions_ahead: int = 3,
        partition_intervals: Mapping[str, int] | None = None,
        retention_days: dict[str, float] | None = None,
    ) -> None:
        self.url = url
        self.intervals_ns = intervals_ns(partition_interval_s, partition_intervals)
        self.ahead = partitions_ahead
        self.retention_days = retention_days or {}
        """Days kept per partitioned table; absent or 0: forever."""
        self.retry_max_s = retry_max_s
        self.pool_size = pool_size
        self.command_timeout_s = command_timeout_s
        self._pool: asyncpg.Pool | None = None
        self.conflicts = 0
        """Batches whose direct COPY hit a stored row and were merged instead."""
        self.stopped_full = False
        """The server went down for want of space (a full WAL volume): until a
        write succeeds again, a write that finds it unreachable is a full
        database (``StoreFullError``), not an outage."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresStore:
        s = settings.store
        url = s.url.get_secret_value()
        if s.password is not None:
            url = url_with_password(url, s.password.get_secret_value())
        return cls(
            url,
            retry_max_s=s.retry_max_s,
            partition_interval_s=s.partition_interval_s,
            partitions_ahead=s.partitions_ahead,
            partition_intervals=s.partition_intervals,
            retention_days={t: s.retention.days(t) for t in schema.PARTITIONED},
        )

    async def start(self) -> None:
        await self._retry(self._migrate, "migrate")
        self._pool = await self._retry(self._create_pool, "connect")
        await self._retry(self._ensure_ahead, "partition")

    async def open_read_only(self) -> None:
        """A pool whose sessions are read-only (``default_transaction_read_only``)
        and create nothing (no staging tables): a role with only SELECT on
        the tables and ``alembic_version`` can export."""
        self._pool = await self._retry(lambda: self._create_pool(read_only=True), "connect")
        try:
            found = await self.pool.fetchval("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            found = None
        except asyncpg.InsufficientPrivilegeError as exc:
            await self.close()
            raise SchemaError(f"cannot read the schema version: {exc}") from None
        try:
            migrate.check_revision(None if found is None else str(found))
        except SchemaError:
            await self.close()
            raise

    async def _ensure_ahead(self, now_ns: int | None = None) -> list[partitions.Partition]:
        now = time.time_ns() if now_ns is None else now_ns
        async with self.pool.acquire() as conn:
            made = await partitions.ensure_ahead(conn, now, self.intervals_ns, self.ahead)
        if made:
            log.info("partitions created", partitions=[p.name for p in made])
        return made

    async def _migrate(self) -> None:
        """Replicas starting together must not both create the tables: the first
        migrates under an advisory lock, the others then find nothing to do.
        Alembic is synchronous (with its own loop for asyncpg): it runs in a thread."""
        conn = await asyncpg.connect(self.url, timeout=10.0)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
            try:
                await asyncio.to_thread(migrate.upgrade, self.url)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)
        finally:
            await conn.close(timeout=5.0)

    async def _create_pool(self, read_only: bool = False) -> asyncpg.Pool:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            command_timeout=self.command_timeout_s,
            timeout=10.0,
            init=None if read_only else _init_connection,
            server_settings={"default_transaction_read_only": "on"} if read_only else None,
        )
        return pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except TimeoutError:
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store not started")
        return self._pool

    async def _retry(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        delay = 0.05
        deadline = time.monotonic() + self.retry_max_s
        while True:
            try:
                return await op()
            except _TRANSIENT as exc:
                metrics.DB_ERRORS.labels(what).inc()
                if _no_space(exc):
                    self.stopped_full = True
                if what == "write" and self.stopped_full:
                    metrics.DB_ERRORS.labels("disk_full").inc()
                    raise StoreFullError(
                        f"postgres stopped for want of space: {type(exc).__name__}: {exc}"
                    ) from None
                if time.monotonic() + delay > deadline:
                    raise ConnectionError(
                        f"postgres {what} failed: {type(exc).__name__}: {exc}"
                    ) from None
                log.warning("postgres unavailable; retrying", op=what, error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def write(self, events: Sequence[Event]) -> dict[str, int]:
        grouped = group_rows(events)
        if not grouped:
            return {}
        out = await self._retry(lambda: self._write(grouped), "write")
        self.stopped_full = False
        return out

    async def _write(self, grouped: dict[Table, list[Row]]) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            write = self._copy
            for _ in range(4):
                try:
                    return await write(conn, grouped)
                except asyncpg.UniqueViolationError:
                    # Some row is already stored (a redelivery) or is in the batch
                    # twice: nothing of the attempt was committed; go the safe way.
                    self.conflicts += 1
                    write = self._merge
                except asyncpg.CheckViolationError as exc:
                    if "no partition" not in str(exc):
                        raise
                    made = await partitions.ensure_for_rows(
                        conn, {t.name: rows for t, rows in grouped.items()}, self.intervals_ns
                    )
                    log.info("partitions created for a batch", partitions=[p.name for p in made])
                except asyncpg.DiskFullError as exc:
                    metrics.DB_ERRORS.labels("disk_full").inc()
                    raise StoreFullError(f"postgres: {exc}") from None
            return await write(conn, grouped)

    async def _copy(
        self, conn: asyncpg.Connection, grouped: dict[Table, list[Row]]
    ) -> dict[str, int]:
        """COPY straight into the tables: a batch never seen before (the usual
        case) costs one COPY per table and nothing else."""
        out: dict[str, int] = {}
        async with conn.transaction():
            for table, rows in grouped.items():
                status = await conn.copy_records_to_table(
                    table.name, records=rows, columns=_COLUMNS[table]
                )
                out[table.name] = int(status.rsplit(" ", 1)[-1])
        return out

    async def _merge(
        self, conn: asyncpg.Connection, grouped: dict[Table, list[Row]]
    ) -> dict[str, int]:
        """COPY into staging tables, then insert what is not stored yet."""
        out: dict[str, int] = {}
        async with conn.transaction():
            for table, rows in grouped.items():
                await conn.copy_records_to_table(
                    _stage(table), records=rows, columns=_COLUMNS[table]
                )
                status = await conn.execute(_MOVE[table])
                out[table.name] = int(status.rsplit(" ", 1)[-1])
        return out

    async def fetch(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        async def run() -> list[tuple[object, ...]]:
            rows = await self.pool.fetch(sql, *args)
            return [tuple(r) for r in rows]

        return await self._retry(run, "fetch")

    async def stream(
        self, sql: str, chunk: int = 50_000
    ) -> AsyncIterator[Sequence[Sequence[object]]]:
        """A server-side cursor in a read-only transaction: PostgreSQL holds the
        result, this process one chunk of it."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            cur = await conn.cursor(sql)
            while rows := await cur.fetch(chunk):
                yield rows

    async def arrow_batches(self, sql: str, table: str, chunk: int = 50_000) -> AsyncIterator[Any]:
        """``COPY (query) TO STDOUT`` as CSV, parsed by Arrow's C++ reader in a
        thread while the next bytes arrive: no Python object per value, and
        prices parsed from PostgreSQL's shortest float text straight into
        exact decimals. Measured: about twice the rows/s of the cursor
        (bench/README.md, "Storage")."""
        from tradewind.storage import parquet

        parse = parquet.csv_parser(table)
        want = chunk * 48  # bytes: a trade is about 80 in CSV, a quote 100
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

        async def copy() -> None:
            async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute("SET LOCAL extra_float_digits = 1")
                await conn.copy_from_query(sql, output=queue.put, format="csv")
            await queue.put(None)

        task = asyncio.create_task(copy())
        try:
            buf: list[bytes] = []
            size = 0
            while (data := await queue.get()) is not None:
                buf.append(data)
                size += len(data)
                if size < want:
                    continue
                whole = b"".join(buf)
                cut = whole.rfind(b"\n") + 1
                buf, size = [whole[cut:]], len(whole) - cut
                for b in await asyncio.to_thread(parse, whole[:cut], chunk):
                    yield b
            if size:
                for b in await asyncio.to_thread(parse, b"".join(buf), chunk):
                    yield b
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def counts(self) -> dict[str, int]:
        sql = " UNION ALL ".join(
            f"SELECT '{name}', count(*) FROM {name}" for name in schema.metadata.tables
        )
        rows: list[Any] = await self.fetch(sql)
        return {str(name): int(n) for name, n in rows}

    async def maintain(self, now_ns: int) -> Maintenance:
        """Partitions ahead of ``now_ns``, expired ones dropped, the database's size."""
        try:
            return await self._maintain(now_ns)
        except Exception as exc:
            if _no_space(exc):  # its DDL, not a write, met the full WAL volume
                self.stopped_full = True
            raise

    async def _maintain(self, now_ns: int) -> Maintenance:
        out = Maintenance(created=[p.name for p in await self._ensure_ahead(now_ns)])
        async with self.pool.acquire() as conn:
            for table in schema.PARTITIONED:
                days = self.retention_days.get(table, 0.0)
                if days <= 0:
                    continue
                cutoff = now_ns - int(days * partitions.DAY_NS)
                for p in await partitions.expired(conn, table, cutoff):
                    out.freed_bytes += (await partitions.drop(conn, p)).bytes
                    out.dropped.setdefault(table, []).append(p.name)
            out.size_bytes = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        return out

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self.pool.fetchval("SELECT 1"), 5.0)
        except _TRANSIENT:
            return False
        except RuntimeError:
            return False
        return True
