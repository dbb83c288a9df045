"""Order-flow trimming in a running db_writer, against real Redis and PostgreSQL.

The invariant under test: nothing acknowledged is lost, and nothing is
trimmed before db_writer persisted it or while another group still needs it
(pending after a crash, or not yet delivered).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.bus_contract import drain, fill, trade
from tests.conftest import service_context
from tradewind.bus.redis import RedisBus
from tradewind.clock import WallClock
from tradewind.observability import metrics
from tradewind.services.db_writer import DbWriterService
from tradewind.storage.postgres import PostgresStore
from tradewind.topics import EXECUTIONS, ORDERS

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
async def bus(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisBus]:
    b = RedisBus(redis_url, prefix=redis_prefix, partitions=2, claim_idle_ms=200)
    await b.start()
    yield b
    await b.close()
    admin = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in admin.scan_iter(match=f"{redis_prefix}:*", count=1000)]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_db_writer_trims_only_what_every_group_finished(
    bus: RedisBus, postgres_url: str, make_settings: Any
) -> None:
    store = PostgresStore(postgres_url, retry_max_s=20.0)
    await store.start()
    settings = make_settings(store={"url": postgres_url})
    ctx = service_context(settings, bus=bus, clock=WallClock(), store=store)
    risk = await bus.subscribe([ORDERS], "risk", "r0")
    svc = DbWriterService(ctx)
    svc.trimmer.interval_s = 0.05
    svc.trimmer.keep_ms = 0
    trimmed_before = metrics.STREAM_TRIMMED.labels(EXECUTIONS)._value.get()
    await svc.start()
    try:
        await bus.publish(ORDERS, [trade(i) for i in range(100)])
        await bus.publish(EXECUTIONS, [fill(i) for i in range(200)])
        taken = await risk.fetch(50, 1.0)
        assert len(taken) == 50
        await risk.ack(taken[:30])  # risk "crashes" with 30..49 pending

        async def persisted() -> bool:
            c = await store.counts()
            return c["trades"] == 100 and c["fills"] == 200

        await until(persisted)
        orders_key, execs_key = bus.stream(ORDERS), bus.stream(EXECUTIONS)

        async def trimmed() -> bool:
            return await bus.redis.xlen(execs_key) == 0 and await bus.redis.xlen(orders_key) == 70

        await until(trimmed)
        assert metrics.STREAM_TRIMMED.labels(EXECUTIONS)._value.get() - trimmed_before == 200
        # many more passes: the floor is risk's oldest pending entry, never above it
        await asyncio.sleep(0.5)
        left = await bus.redis.xrange(orders_key, count=1)
        assert left[0][0].decode() == taken[30].id
        assert await bus.redis.xlen(orders_key) == 70

        # risk's replacement gets the pending entries after the claim idle, then the rest
        await asyncio.sleep(0.25)
        again = await bus.subscribe([ORDERS], "risk", "r1")
        got = await drain(again, 70)
        assert sorted(m.event.id for m in got[:20]) == sorted(m.event.id for m in taken[30:])
        assert [m.event.id for m in got[20:]] == [trade(i).id for i in range(50, 100)]

        async def empty() -> bool:
            return await bus.redis.xlen(orders_key) == 0

        await until(empty)
        assert (await store.counts())["trades"] == 100
    finally:
        await svc.stop(5.0)
        await store.close()
