"""The store interface: durable, idempotent writes of events."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradewind.events import Event

if TYPE_CHECKING:
    import pyarrow as pa


class StoreFullError(Exception):
    """The database has no space left: nothing of the batch was committed.
    Not transient in the usual sense (it lasts until someone frees space), so
    the caller keeps the batch unacknowledged and tries again, without a
    deadline."""


class SchemaError(Exception):
    """The database cannot be read as it is: no Tradewind schema, or one older
    or newer than this release's (a reader never migrates)."""


@dataclass
class Maintenance:
    """What one maintenance pass did: partitions created and dropped (names),
    bytes freed, and the database's size afterwards (None: not known)."""

    created: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    freed_bytes: int = 0
    size_bytes: int | None = None


class Store(ABC):
    async def start(self) -> None:
        """Connect and bring the schema up to date."""

    @abstractmethod
    async def open_read_only(self) -> None:
        """Connect for reading only (``fetch``, ``stream``, ``arrow_batches``):
        no migration, no write, nothing created, so a read-only file or a role
        with only SELECT will do. Raises ``SchemaError`` unless the schema is
        this release's, ``OSError`` or ``ConnectionError`` when unreachable."""

    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def write(self, events: Sequence[Event]) -> dict[str, int]:
        """Insert every event once; returns new rows per table.

        Returns only after the rows are committed; events already stored are
        skipped, so a redelivered batch changes nothing.
        """

    @abstractmethod
    async def counts(self) -> dict[str, int]:
        """Rows per table."""

    @abstractmethod
    async def fetch(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        """Rows of a read-only query, for reports, state rebuilds and tests.

        Parameters are ``?`` placeholders on SQLite and ``$1…`` on PostgreSQL.
        """

    @abstractmethod
    def stream(self, sql: str, chunk: int = 50_000) -> AsyncIterator[Sequence[Sequence[object]]]:
        """Rows of a read-only query (no parameters) in chunks of at most
        ``chunk``, so that a large read (an export) holds one chunk at a time."""

    async def arrow_batches(
        self, sql: str, table: str, chunk: int = 50_000
    ) -> AsyncIterator[pa.RecordBatch]:
        """A query's rows (a market table's columns, in the mapping's order) as
        typed Arrow record batches of about ``chunk`` rows (``parquet.py``)."""
        from tradewind.storage import parquet

        schema = parquet.arrow_schema(table)
        async for rows in self.stream(sql, chunk):
            yield await asyncio.to_thread(parquet.to_batch, table, rows, schema)

    async def ping(self) -> bool:
        return True

    async def maintain(self, now_ns: int) -> Maintenance:
        """Create partitions ahead of ``now_ns`` and drop expired ones
        (PostgreSQL); plain tables (SQLite) need nothing."""
        return Maintenance()
