"""The generated ACL users on a real Redis: what each service does besides
its consumer loop (readiness's stream info, db_writer's trim, the operator's
reply group) is allowed, and writing a topic it does not produce is not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from tests.bus_contract import trade
from tests.conftest import AclRedis
from tradewind.bus.redis import RedisBus
from tradewind.topics import ALL, CONSUMES, DEAD_LETTER, MARKET, ORDERS, PRODUCES, SIGNALS

pytestmark = pytest.mark.redis


@pytest.fixture
async def admin(acl_redis: AclRedis) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(acl_redis.admin_url)
    yield r
    await r.aclose()


async def _bus(acl: AclRedis, user: str) -> RedisBus:
    bus = RedisBus(acl.urls[user], prefix=acl.prefix, partitions=2, name=user)
    await bus.start()
    return bus


async def test_each_user_does_its_chores_without_a_denial(
    acl_redis: AclRedis, admin: aioredis.Redis
) -> None:
    ws = await _bus(acl_redis, "ws")
    writer = await _bus(acl_redis, "db_writer")
    try:
        sub = await writer.subscribe([*ALL, DEAD_LETTER], "db_writer", "w0")
        await ws.publish(MARKET, [trade(i) for i in range(5)])
        msgs = await sub.fetch(100, 1.0)
        assert len(msgs) == 5
        await sub.commit(msgs)
        for topic in ALL:
            await writer.trim_consumed(topic, keep_ms=0, required_groups=["db_writer"])
        for user in CONSUMES:
            bus = await _bus(acl_redis, user)
            try:
                info = await bus.info()
                assert "market" in info and await bus.idle()
            finally:
                await bus.close()
        await sub.close()
        assert await admin.acl_log() == []
    finally:
        await ws.close()
        await writer.close()


@pytest.mark.parametrize("user", [u for u in CONSUMES if ORDERS not in PRODUCES[u]])
async def test_only_risk_may_append_an_order(acl_redis: AclRedis, user: str) -> None:
    bus = await _bus(acl_redis, user)
    try:
        with pytest.raises(NoPermissionError):
            await bus.redis.xadd(bus.stream(ORDERS), {b"e": b"x"})
    finally:
        await bus.close()


async def test_the_order_path_group_hands_off_as_its_own_user(
    acl_redis: AclRedis, admin: aioredis.Redis
) -> None:
    """``orderpath`` holds the union of signal's, risk's and execution's rights:
    a commit's hand-off reads the next group's entries inside the script, run
    as that user, without a denial."""
    assert set(CONSUMES["orderpath"]) == {*CONSUMES["signal"], *CONSUMES["risk"], ORDERS}
    ws = await _bus(acl_redis, "ws")
    group = await _bus(acl_redis, "orderpath")
    try:
        signal = await group.subscribe([MARKET], "signal", "op0")
        risk = await group.subscribe([SIGNALS], "risk", "op0")
        execution = await group.subscribe([ORDERS], "execution", "op0")
        signal.hand_off(SIGNALS, risk)
        risk.hand_off(ORDERS, execution)
        await ws.publish(MARKET, [trade(1)])
        ticks = await signal.fetch(10, 1.0)
        await signal.commit(ticks, {SIGNALS: [trade(2)]}, {"signal:x": b"1"})
        signals = await risk.fetch(10, 1.0)
        await risk.commit(signals, {ORDERS: [trade(3)]}, {"risk:engine": b"{}"})
        orders = await execution.fetch(10, 1.0)
        assert [m.event.id for m in orders] == [trade(3).id]
        await execution.commit(orders, None, {"paper:op0": b"{}"})
        assert await group.idle()
        assert await admin.acl_log() == []
    finally:
        await ws.close()
        await group.close()
