"""A batch that fails after risk has decided must not leave the engine ahead
of what was committed: the retried signal is decided again, not refused as a
duplicate of a decision nobody ever saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tests.conftest import service_context
from tests.unit.test_risk_engine import T0, signal
from tradewind.bus import MemoryBus, Message, Subscription
from tradewind.events import Event, RiskDecision, Trade
from tradewind.services import RiskService
from tradewind.topics import DECISIONS, MARKET, SIGNALS


class _FailOnce(Subscription):
    """Wraps a real subscription; its first commit raises like a lost connection."""

    def __init__(self, inner: Subscription) -> None:
        super().__init__(inner.topics, inner.group, inner.consumer)
        self.inner = inner
        self.failed = False

    async def fetch(self, max_count: int = 1024, timeout: float = 1.0) -> list[Message]:
        return await self.inner.fetch(max_count, timeout)

    async def commit(
        self,
        acks: Sequence[Message],
        publish: Mapping[str, Sequence[Event]] | None = None,
        state: Mapping[str, bytes] | None = None,
    ) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("connection lost during commit")
        await self.inner.commit(acks, publish, state)

    async def fail(self, message: Message, error: str) -> bool:
        return await self.inner.fail(message, error)

    def hand_off(self, topic: str, downstream: Subscription) -> None:
        self.inner.hand_off(topic, downstream)

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("durable", [False, True])
async def test_failed_commit_rolls_the_engine_back(make_settings: Any, durable: bool) -> None:
    bus = MemoryBus()
    ctx = service_context(make_settings(), bus=bus, durable_state=durable)
    risk = RiskService(ctx)
    await risk.start()
    out = await bus.subscribe([DECISIONS], "test", "t")
    sub = await bus.subscribe([SIGNALS, MARKET], "rollback", "r")
    flaky = _FailOnce(sub)
    trade = Trade(
        id="t1",
        ts_event=T0,
        exchange="binance",
        symbol="BTCUSDT",
        price=60_000.0,
        qty=0.1,
        side=None,
        trade_id="1",
        ts_recv=0,
    )
    await bus.publish(MARKET, [trade])
    await bus.publish(SIGNALS, [signal(sid="sig-1", ts=T0)])
    msgs = await flaky.fetch(10, 1.0)
    with pytest.raises(ConnectionError):
        await risk._on_batch(flaky, msgs)
    await risk._on_batch(flaky, msgs)
    got = [m.event for m in await out.fetch(10, 1.0)]
    await risk.stop()
    assert len(got) == 1
    decision = got[0]
    assert isinstance(decision, RiskDecision)
    assert decision.approved, decision.reason
