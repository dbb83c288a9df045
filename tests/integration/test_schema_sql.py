"""schema.sql is generated from the migrations, and the migrations, schema.sql and
the SQLAlchemy metadata describe one schema on PostgreSQL and SQLite alike."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.ext.asyncio import create_async_engine

from tradewind.storage import gen_schema, migrate
from tradewind.storage.schema import metadata


def test_schema_sql_is_generated_from_the_migrations() -> None:
    assert gen_schema.SCHEMA_SQL.read_text() == gen_schema.render(), (
        "schema.sql is stale: run python -m tradewind.storage.gen_schema"
    )
    assert gen_schema.main(["--check"]) == 0


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))


async def _pg_diff(url: str) -> list[Any]:
    engine = create_async_engine(migrate.alembic_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff)
    finally:
        await engine.dispose()


@pytest.mark.postgres
def test_migrations_apply_on_postgres_and_match_the_metadata(postgres_url: str) -> None:
    migrate.upgrade(postgres_url)
    migrate.upgrade(postgres_url)  # idempotent
    assert asyncio.run(_pg_diff(postgres_url)) == []


@pytest.mark.postgres
def test_schema_sql_builds_the_same_schema(postgres_url: str) -> None:
    async def apply() -> None:
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            await conn.execute(gen_schema.SCHEMA_SQL.read_text())
        finally:
            await conn.close()

    asyncio.run(apply())
    assert asyncio.run(_pg_diff(postgres_url)) == []
    migrate.upgrade(postgres_url)  # already at head: a no-op


def test_migrations_apply_on_sqlite_and_match_the_metadata(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert _diff(conn) == []
    finally:
        engine.dispose()
