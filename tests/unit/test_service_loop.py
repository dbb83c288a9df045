"""The consumer loop's linger: after a short batch it waits for more, so a
trickle arrives in one batch, and a stop is never held up by the wait; and a
flood of poison messages logs a count per interval, not a line each."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import structlog

from tests.bus_contract import trade
from tests.conftest import service_context
from tradewind.bus import MemoryBus, Message, Subscription
from tradewind.observability.logging import LogThrottle
from tradewind.services.base import Service, ServiceContext

TOPIC = "t.linger"


class Recorder(Service):
    name: ClassVar[str] = "recorder"

    def __init__(self, ctx: ServiceContext, linger_s: float) -> None:
        super().__init__(ctx)
        self.linger_s = linger_s
        self.batches: list[int] = []

    async def start(self) -> None:
        await super().start()
        await self.consume([TOPIC], self._on_batch, batch=100, linger_s=self.linger_s)

    async def _on_batch(self, sub: Subscription, msgs: list[Message]) -> None:
        self.batches.append(len(msgs))
        await sub.commit(msgs)


async def _run(make_settings: Any, linger_s: float) -> Recorder:
    bus = MemoryBus()
    ctx = service_context(make_settings(), bus=bus)
    svc = Recorder(ctx, linger_s)
    await svc.start()
    await bus.publish(TOPIC, [trade(0)])
    await asyncio.sleep(0.02)
    for i in range(1, 6):
        await bus.publish(TOPIC, [trade(i)])
        await asyncio.sleep(0.01)
    await asyncio.wait_for(bus.wait_idle(), 5.0)
    await svc.stop()
    return svc


async def test_a_trickle_arrives_in_one_batch_while_lingering(make_settings: Any) -> None:
    assert (await _run(make_settings, 0.3)).batches == [1, 5]


async def test_without_linger_each_arrival_is_its_own_batch(make_settings: Any) -> None:
    batches = (await _run(make_settings, 0.0)).batches
    assert batches[0] == 1 and sum(batches) == 6 and len(batches) > 2


async def test_a_stop_does_not_wait_out_the_linger(make_settings: Any) -> None:
    bus = MemoryBus()
    ctx = service_context(make_settings(), bus=bus)
    svc = Recorder(ctx, 30.0)
    await svc.start()
    await bus.publish(TOPIC, [trade(0)])
    await asyncio.wait_for(bus.wait_idle(), 5.0)
    t0 = time.monotonic()
    await svc.stop(timeout=10.0)
    assert time.monotonic() - t0 < 2.0
    assert svc.batches == [1]


class Poisoned(Service):
    name: ClassVar[str] = "poisoned"

    async def start(self) -> None:
        await super().start()
        await self.consume([TOPIC], self._on_batch, batch=10)

    async def _on_batch(self, sub: Subscription, msgs: list[Message]) -> None:
        raise ValueError("cannot use this")


async def test_poison_messages_log_a_count_per_interval_not_a_line_each(
    make_settings: Any,
) -> None:
    bus = MemoryBus(max_deliveries=1)
    svc = Poisoned(service_context(make_settings(), bus=bus))
    with structlog.testing.capture_logs() as logs:
        await svc.start()
        await bus.publish(TOPIC, [trade(i) for i in range(50)])
        await asyncio.wait_for(bus.wait_idle(), 5.0)
        await svc.stop()
    assert len(await bus.dead_letters()) == 50
    failed = [e for e in logs if e["event"] == "message failed"]
    batches = [e for e in logs if e["event"] == "batch failed; retrying one by one"]
    assert len(failed) == 1 and failed[0]["dead_lettered"] is True
    assert len(batches) == 1


def test_a_throttled_key_logs_again_after_the_interval_with_the_count() -> None:
    now = [0.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])
    assert throttle.allow("k") == 0
    assert [throttle.allow("k") for _ in range(3)] == [None, None, None]
    assert throttle.allow("other") == 0
    now[0] = 10.0
    assert throttle.allow("k") == 3
    assert throttle.allow("k") is None
