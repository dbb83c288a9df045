"""The kill switch in distributed mode: the services run over the Redis bus,
the real ``tradewind halt --flatten`` client path signs and sends the command
while a replay is running, and within a bounded time no order is open and
every position is zero; a forged command changes nothing."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import service_context
from tradewind.bus import Bus, create_bus
from tradewind.cli.control import send
from tradewind.events import CancelRequest, Control, OrderUpdate, TradingState
from tradewind.observability import metrics
from tradewind.services import (
    ExecutionService,
    RiskService,
    Service,
    SignalService,
    WsService,
)
from tradewind.topics import CONTROL, EXECUTIONS, ORDERS

pytestmark = [pytest.mark.redis, pytest.mark.slow]
TOKEN = "kill-switch-test-" + "0123456789abcdef" * 4
BOUND_S = 10.0


async def _until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def _terminal(bus: Bus) -> set[str]:
    return {
        m.event.client_order_id
        for m in await bus.read_all(EXECUTIONS, 100_000)
        if isinstance(m.event, OrderUpdate) and m.event.status.terminal
    }


async def test_halt_flatten_during_a_live_replay(
    make_settings: Any, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        bus={"kind": "redis", "redis_url": redis_url, "prefix": redis_prefix, "block_ms": 50},
        feed={"source": "replay", "speed": 4.0},
        strategy={"name": "ema_cross", "params": {"fast": 2, "slow": 3, "bar_interval_s": 1}},
        control={"token": TOKEN, "reply_timeout_s": 10},
        risk={"max_position": "0.05", "stale_after_s": 60},
    )
    bus = create_bus(settings)
    await bus.start()
    ctx = service_context(settings, bus=bus, durable_state=True)
    risk = RiskService(ctx)
    services: list[Service] = [ExecutionService(ctx), risk, SignalService(ctx), WsService(ctx)]
    for s in services:
        await s.start()
    try:
        engine = risk.engine
        await _until(
            lambda: any(p.qty != 0 for p in engine.portfolio.positions.values()),
            60,
            "a position during the replay",
        )
        ws = services[-1]
        assert isinstance(ws, WsService) and not ws.done.is_set(), "replay ended before the halt"

        def refused() -> float:
            return float(metrics.CONTROL_COMMANDS.labels("halt", "bad_signature")._value.get())

        refused_before = refused()
        forged = Control(
            id="ctl-forged", ts_event=time.time_ns(), command="halt", signature="0" * 64
        )
        await bus.publish(CONTROL, [forged])

        t0 = time.monotonic()
        reply = await send(settings, "halt", {"flatten": "true"}, 10)
        assert reply is not None and reply.ok, reply
        assert reply.payload["state"] == "halted"
        assert engine.state is TradingState.HALTED

        def flat_and_closed() -> bool:
            return not engine.open_orders and all(
                p.qty == 0 for p in engine.portfolio.positions.values()
            )

        await _until(flat_and_closed, BOUND_S, "no open order and zero positions")
        elapsed = time.monotonic() - t0
        assert elapsed < BOUND_S

        sent = {
            m.event.client_order_id
            for m in await bus.read_all(ORDERS, 100_000)
            if hasattr(m.event, "client_order_id")
        }
        orders = await bus.read_all(ORDERS, 100_000)
        cancels = [m.event for m in orders if isinstance(m.event, CancelRequest)]
        terminal = await _terminal(bus)
        assert {c.client_order_id for c in cancels} <= terminal
        assert sent <= terminal, "an order the halt did not close"

        status = await send(settings, "status", {}, 10)
        assert status is not None and status.payload["state"] == "halted"
        assert all(Decimal(p["qty"]) == 0 for p in status.payload["positions"])
        assert refused() == refused_before + 1, "the forged halt was not refused and counted"

        resumed = await send(settings, "resume", {}, 10)
        assert resumed is not None and resumed.ok and engine.state is TradingState.ACTIVE
    finally:
        for s in reversed(services):
            await s.stop(5)
        await bus.close()
