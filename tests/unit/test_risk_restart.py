"""Restart: risk's state rebuilt from the store, or restored from the bus
snapshot, equals the live engine's state after a replay with a kill switch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tradewind.control import make_control
from tradewind.events import ControlReply, TradingState
from tradewind.risk.engine import RiskEngine
from tradewind.risk.rebuild import rebuild
from tradewind.runtime.embedded import Pipeline
from tradewind.services.risk import RiskService
from tradewind.topics import CONTROL, CONTROL_REPLIES

TOKEN = "restart-test-" + "0123456789abcdef" * 4


async def _reply(p: Pipeline, request_id: str) -> ControlReply:
    for _ in range(200):
        for m in await p.bus.read_all(CONTROL_REPLIES):
            if isinstance(m.event, ControlReply) and m.event.request_id == request_id:
                return m.event
        await asyncio.sleep(0.02)
    raise AssertionError("no reply")


async def _settle(p: Pipeline) -> None:
    quiet = 0
    while quiet < 3:
        quiet = quiet + 1 if await p.bus.idle() else 0
        await asyncio.sleep(0.01)


async def test_rebuild_and_snapshot_equal_the_live_state(make_settings: Any) -> None:
    settings = make_settings(
        control={"token": TOKEN},
        risk={"max_position": "0.05"},
    )
    p = Pipeline(settings)
    await p.start()
    try:
        await asyncio.wait_for(p.wait_done(), 60)
        live = p.risk.engine
        assert live.portfolio.fills > 0
        c = make_control(TOKEN, "halt", {"flatten": "true"}, time.time_ns(), "test")
        await p.bus.publish(CONTROL, [c])
        reply = await _reply(p, c.id)
        assert reply.ok, reply.detail
        await _settle(p)
        assert live.state is TradingState.HALTED and live.flattening and live.flatten_seq >= 1
        # The replay is over, so the closing order waits for market data that
        # never comes: it stays open, which the rebuild must see too.
        assert [o.reduce_only for o in live.open_orders.values()] == [True]

        assert p.store is not None
        rebuilt = RiskEngine(settings.risk, p.risk.ctx.instruments)
        service = RiskService(p.risk.ctx)
        n = await rebuild(rebuilt, p.store, service.verify_record)
        assert n > 0
        assert rebuilt.account_state() == live.account_state()

        restored = RiskEngine(settings.risk, p.risk.ctx.instruments)
        restored.restore(live.snapshot())
        assert restored.account_state() == live.account_state()
        assert restored.snapshot() == live.snapshot()

        forged = RiskEngine(settings.risk, p.risk.ctx.instruments)
        await rebuild(forged, p.store, lambda *_: False)
        assert forged.state is TradingState.ACTIVE
    finally:
        await p.stop()
