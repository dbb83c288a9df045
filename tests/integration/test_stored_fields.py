"""Order and cancel signatures and dead letters' size and sha256 are stored and
read back whole, on SQLite and PostgreSQL; rows stored before migration
0006 take the fields' defaults."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tradewind.events import CancelRequest, DeadLetter, Event, OrderRequest, OrderType, Side
from tradewind.storage import migrate
from tradewind.storage.base import Store
from tradewind.storage.postgres import PostgresStore
from tradewind.storage.rows import READERS
from tradewind.storage.schema import BY_EVENT
from tradewind.storage.sqlite import SqliteStore

PAYLOAD = b'{"t":"trade","broken":' + b"x" * 100
ORDER = OrderRequest(
    id="o1",
    ts_event=1_700_000_000_000_000_000,
    client_order_id="c1",
    signal_id="s1",
    strategy="breakout",
    exchange="binance",
    symbol="BTCUSDT",
    side=Side.BUY,
    order_type=OrderType.LIMIT,
    quantity=Decimal("0.001"),
    price=Decimal("61837.63"),
    signature="ab" * 32,
)
CANCEL = CancelRequest(
    id="x1",
    ts_event=1_700_000_000_000_000_001,
    client_order_id="c1",
    exchange="binance",
    symbol="BTCUSDT",
    signature="cd" * 32,
)
DEAD = DeadLetter(
    id="d1",
    ts_event=1_700_000_000_000_000_002,
    topic="market",
    message_id="1-0",
    group="db_writer",
    deliveries=3,
    error="decode",
    payload=PAYLOAD[:64],
    size=len(PAYLOAD),
    sha256=hashlib.sha256(PAYLOAD).hexdigest(),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s: Store
    if store_url.startswith("sqlite:///"):
        s = SqliteStore.from_url(store_url)
    else:
        s = PostgresStore(store_url, retry_max_s=20.0)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def _read_back(store: Store, event: Event) -> Any:
    m = BY_EVENT[type(event)]
    mark = "?" if isinstance(store, SqliteStore) else "$1"
    rows = await store.fetch(
        f"SELECT {', '.join(m.columns)} FROM {m.table.name} WHERE id = {mark}", event.id
    )
    assert len(rows) == 1
    return READERS[type(event)](rows[0])


async def test_signatures_and_dead_letter_digests_round_trip(store: Store) -> None:
    events: list[Event] = [ORDER, CANCEL, DEAD]
    assert await store.write(events) == {"orders": 1, "cancel_requests": 1, "dead_letters": 1}
    assert (await _read_back(store, ORDER)).signature == ORDER.signature
    assert (await _read_back(store, CANCEL)).signature == CANCEL.signature
    dead = await _read_back(store, DEAD)
    assert (dead.size, dead.sha256, dead.payload) == (DEAD.size, DEAD.sha256, DEAD.payload)


def test_rows_from_before_the_migration_take_the_defaults_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    migrate.upgrade(f"sqlite:///{db}", "0005_row_run_ids")
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO dead_letters (id, ts_event, topic, message_id, group_name, deliveries, "
        "error, payload) VALUES ('d0', 1, 'market', '1-0', 'g', 1, 'e', x'00')"
    )
    conn.commit()
    conn.close()
    migrate.upgrade(f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT size, sha256 FROM dead_letters").fetchall() == [(0, "")]
    conn.close()


@pytest.mark.postgres
def test_rows_from_before_the_migration_take_the_defaults_on_postgres(postgres_url: str) -> None:
    migrate.upgrade(postgres_url, "0005_row_run_ids")

    async def sql(query: str) -> list[Any]:
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            return [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()

    asyncio.run(
        sql(
            "INSERT INTO orders (id, ts_event, client_order_id, signal_id, strategy, exchange, "
            "symbol, side, order_type, quantity, time_in_force, reduce_only, ts_recv) VALUES "
            "('o0', 1, 'c0', 's0', 'x', 'binance', 'BTCUSDT', 'buy', 'market', 1, 'gtc', "
            "false, 0)"
        )
    )
    migrate.upgrade(postgres_url)
    assert asyncio.run(sql("SELECT signature FROM orders")) == [("",)]
