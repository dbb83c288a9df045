"""The store interface: durable, idempotent writes of events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from tradewind.events import Event


class Store(ABC):
    async def start(self) -> None:
        """Connect and bring the schema up to date."""

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

    async def ping(self) -> bool:
        return True
