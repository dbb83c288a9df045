"""Leases that heal, over real Redis: a restart with the same consumer name
takes its own lease back at once (and fences off its earlier incarnation), a
lost lease says whether it expired or who holds it, and so does a fenced
commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tradewind.bus.redis import FencedError, RedisBus
from tradewind.events import Control
from tradewind.services.lease import PartitionLeases, SingleActive
from tradewind.topics import CONTROL

pytestmark = pytest.mark.redis


@pytest.fixture
async def bus(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisBus]:
    b = RedisBus(redis_url, prefix=redis_prefix, partitions=4)
    await b.start()
    yield b
    await b.close()


async def test_a_restart_takes_its_own_lease_back_at_once(bus: RedisBus) -> None:
    stop = asyncio.Event()
    before = SingleActive(bus, "risk", "r0", ttl_ms=60_000)
    assert await before.acquire(stop)
    other = SingleActive(bus, "risk", "r1", ttl_ms=60_000)
    assert not await other.lease.acquire(), "another owner must wait for the TTL"

    t0 = time.monotonic()
    after = SingleActive(bus, "risk", "r0", ttl_ms=60_000)  # same name, new process
    assert await after.acquire(stop)
    assert time.monotonic() - t0 < 1.0, "the restart waited for its own old lease"
    assert not await before.lease.renew()
    assert before.reason.endswith("is held by r0")

    bus.fence = before.fence
    with pytest.raises(FencedError, match="is held by r0"):
        await bus.publish(CONTROL, [Control(id="x", ts_event=1, command="status")])
    bus.fence = after.fence
    await bus.publish(CONTROL, [Control(id="y", ts_event=1, command="status")])


async def test_an_expired_lease_says_so(bus: RedisBus) -> None:
    lease = SingleActive(bus, "ws:abc", "w0", ttl_ms=300)
    assert await lease.acquire(asyncio.Event())
    await asyncio.sleep(0.5)
    bus.fence = lease.fence
    with pytest.raises(FencedError, match="expired"):
        await bus.publish(CONTROL, [Control(id="z", ts_event=1, command="status")])
    assert not await lease.lease.renew()
    assert "expired" in lease.reason and "nobody holds it" in lease.reason
    bus.fence = {}


async def test_a_restarted_signal_replica_takes_its_partitions_back(bus: RedisBus) -> None:
    seen: list[frozenset[int]] = []

    async def changed(owned: frozenset[int], _tokens: object) -> None:
        seen.append(owned)

    first = PartitionLeases(bus, "signal", "s0", 60_000, changed)
    await first.step()
    assert seen[-1] == frozenset(range(4))
    again = PartitionLeases(bus, "signal", "s0", 60_000, changed)
    await again._forget_earlier_self()
    await again.step()
    assert seen[-1] == frozenset(range(4)), "the restart waited out its own leases"
    members = await bus.redis.zrange(again.members_key, 0, -1)
    assert members == [again.token]
