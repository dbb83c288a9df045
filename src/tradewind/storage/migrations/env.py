"""Alembic environment for Tradewind: SQLite (sync) or PostgreSQL (asyncpg).

The URL comes from the Alembic config's ``sqlalchemy.url`` set by
``tradewind.storage.migrate``; there is no alembic.ini to keep in sync.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.ext.asyncio import create_async_engine

from tradewind.storage.schema import metadata

config = context.config
target_metadata = metadata


def _configure(connection: Connection | None = None) -> None:
    kwargs: dict[str, Any] = {
        "target_metadata": target_metadata,
        "compare_type": True,
        "render_as_batch": True,
    }
    if connection is None:
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            **kwargs,
        )
    else:
        context.configure(connection=connection, **kwargs)


def run_offline() -> None:
    _configure()
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_run_sync)
    await engine.dispose()


def run_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    if "+asyncpg" in url:
        asyncio.run(_run_async(url))
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run_sync(conn)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
