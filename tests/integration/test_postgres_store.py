"""PostgresStore against a real server: exact money, idempotent redelivery,
COPY batches, and a backend killed mid-write."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import asyncpg
import pytest

from tests.bus_contract import fill, trade
from tradewind.events import Event
from tradewind.storage.postgres import PostgresStore, url_with_password

pytestmark = pytest.mark.postgres


async def started(url: str) -> PostgresStore:
    store = PostgresStore(url, retry_max_s=20.0)
    await store.start()
    return store


async def test_money_is_exact_and_redelivery_inserts_nothing(postgres_url: str) -> None:
    store = await started(postgres_url)
    try:
        batch: list[Event] = [fill(i) for i in range(3)] + [trade(i) for i in range(5)]
        assert await store.write(batch) == {"fills": 3, "trades": 5}
        assert await store.write(batch) == {"fills": 0, "trades": 0}
        assert await store.write([*batch, fill(3), fill(3)]) == {"fills": 1, "trades": 0}
        rows = await store.fetch("SELECT price, qty, fee FROM fills WHERE id = $1", "f1")
        assert rows == [(Decimal("61837.63"), Decimal("0.00100"), Decimal("0.0618"))]
        counts = await store.counts()
        assert counts["fills"] == 4
        assert counts["trades"] == 5
        assert counts["orders"] == 0
        assert await store.ping()
    finally:
        await store.close()


async def test_copy_batches_are_fast(postgres_url: str) -> None:
    store = await started(postgres_url)
    try:
        n = 20_000
        events: list[Event] = [trade(i) for i in range(n)]
        t0 = time.perf_counter()
        for i in range(0, n, 5000):
            await store.write(events[i : i + 5000])
        dt = time.perf_counter() - t0
        assert (await store.counts())["trades"] == n
        print(f"\npostgres COPY: {n / dt:,.0f} rows/s")
        assert dt < 20
    finally:
        await store.close()


async def test_backend_terminated_mid_write_is_retried_without_loss_or_duplicates(
    postgres_url: str,
) -> None:
    store = await started(postgres_url)
    admin = await asyncpg.connect(postgres_url, timeout=10)
    try:
        dbname = postgres_url.rsplit("/", 1)[1]
        batches: list[list[Event]] = [[trade(b * 1000 + i) for i in range(1000)] for b in range(30)]
        stop = asyncio.Event()
        kills = 0

        async def killer() -> None:
            nonlocal kills
            for _ in range(10):
                if stop.is_set():
                    return
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    dbname,
                )
                kills += int(killed)
                await asyncio.sleep(0.1)

        task = asyncio.create_task(killer())
        try:
            for b in batches:
                await store.write(b)
                await store.write(b[:100])  # redelivery of part of a batch
        finally:
            stop.set()
            await task
        assert kills > 0
        assert (await store.counts())["trades"] == 30_000
        dupes = await store.fetch("SELECT count(*) - count(DISTINCT id) FROM trades")
        assert dupes == [(0,)]
    finally:
        await admin.close()
        await store.close()


def test_url_with_password_quotes_and_keeps_the_rest() -> None:
    url = url_with_password("postgresql://tw@db.example:5433/tradewind?sslmode=require", "p@ss:/w")
    assert url == "postgresql://tw:p%40ss%3A%2Fw@db.example:5433/tradewind?sslmode=require"
    assert url_with_password("postgresql://h/db", "x") == "postgresql://postgres:x@h/db"


def test_a_panic_for_want_of_space_is_found_behind_a_masking_error() -> None:
    from tradewind.storage.postgres import _no_space

    def masked() -> None:
        try:
            raise asyncpg.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation: could not write to file "
                '"pg_wal/xlogtemp.25450": No space left on device'
            )
        except asyncpg.ConnectionDoesNotExistError:
            raise asyncpg.InterfaceError(
                "cannot call Transaction.__aexit__(): the underlying connection is closed"
            ) from None

    with pytest.raises(asyncpg.InterfaceError) as info:
        masked()
    assert _no_space(info.value)
    assert not _no_space(asyncpg.ConnectionDoesNotExistError("connection was closed"))
    assert not _no_space(None)
