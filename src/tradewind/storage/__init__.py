"""Persistence: one schema (Alembic migrations), SQLite and PostgreSQL stores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind.storage.base import Store

if TYPE_CHECKING:
    from tradewind.config import Settings

__all__ = ["Store", "create_store"]


def create_store(settings: Settings) -> Store:
    url = settings.store.url.get_secret_value()
    if url.startswith("sqlite:///"):
        from tradewind.storage.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from tradewind.storage.postgres import PostgresStore

        return PostgresStore.from_settings(settings)
    raise ValueError("store URL must start with sqlite:/// or postgresql://")
