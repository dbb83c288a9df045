from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.bus_contract import BusContract, trade
from tradewind.bus import Bus, MemoryBus


@pytest.fixture
async def make_bus() -> AsyncIterator[Any]:
    buses: list[Bus] = []

    async def make(**kw: Any) -> Bus:
        bus = MemoryBus(**kw)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for b in buses:
        await b.close()


class TestMemoryBus(BusContract):
    async def test_publish_waits_while_the_slowest_group_is_full(self) -> None:
        import asyncio

        bus = MemoryBus(capacity=10)
        sub = await bus.subscribe(["t"], "g", "c")
        await bus.publish("t", [trade(i) for i in range(10)])
        blocked = asyncio.create_task(bus.publish("t", [trade(99)]))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        got = await sub.fetch(10, 1.0)
        await sub.ack(got)
        await asyncio.wait_for(blocked, 1.0)
        assert [m.event.id for m in await sub.fetch(10, 1.0)] == [trade(99).id]
