"""The risk service: the only path from a signal to an order.

Every signal gets a ``RiskDecision``; approved ones also become an
``OrderRequest``. Risk also owns the account: it applies every fill and
publishes the resulting ``Position``. Both, with the engine's state, are committed in one step, so
a restart never forgets an approval it already published.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from tradewind.bus import Message, Subscription
from tradewind.events import (
    Event,
    Fill,
    OrderRequest,
    OrderUpdate,
    Position,
    RiskDecision,
    Signal,
    Trade,
    TradingState,
)
from tradewind.observability import metrics
from tradewind.risk.engine import RiskEngine
from tradewind.services.base import Service, ServiceContext
from tradewind.topics import DECISIONS, EXECUTIONS, MARKET, ORDERS, POSITIONS, SIGNALS

STATE_KEY = "risk:engine"


class RiskService(Service):
    name = "risk"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.engine = RiskEngine(ctx.settings.risk, ctx.instruments)
        self.approved = 0
        self.rejected = 0

    async def start(self) -> None:
        if self.ctx.durable_state:
            raw = await self.bus.get_state(STATE_KEY)
            if raw is not None:
                self.engine.restore(json.loads(raw))
        self._publish_state()
        await super().start()
        await self.consume([SIGNALS, EXECUTIONS, MARKET], self._on_batch)

    async def _on_batch(self, sub: Subscription, msgs: list[Message]) -> None:
        engine = self.engine
        decisions: list[RiskDecision] = []
        orders: list[OrderRequest] = []
        positions: list[Position] = []
        for m in msgs:
            e = m.event
            if isinstance(e, Trade):
                engine.on_mark(e.exchange, e.symbol, e.price)
            elif isinstance(e, Signal):
                decision, order = engine.evaluate(e)
                decisions.append(decision)
                if order is not None:
                    orders.append(order)
            elif isinstance(e, Fill):
                pos = engine.on_fill(e)
                positions.append(pos.event(e.ts_event, f"pos:{e.id}"))
            elif isinstance(e, OrderUpdate):
                engine.on_order_update(e)
        state = (
            {STATE_KEY: json.dumps(engine.snapshot()).encode()} if self.ctx.durable_state else None
        )
        publish: dict[str, Sequence[Event]] = {
            DECISIONS: decisions,
            ORDERS: orders,
            POSITIONS: positions,
        }
        await sub.commit(msgs, publish, state)
        if decisions:
            self._account(decisions)
        if positions:
            self._account_positions()

    def _account(self, decisions: list[RiskDecision]) -> None:
        now = time.time_ns()
        approved = 0
        for d in decisions:
            approved += d.approved
            metrics.RISK_DECISIONS.labels("approved" if d.approved else "rejected", d.reason).inc()
            metrics.HOP_LATENCY.labels("signal_to_decision").observe((now - d.ts_recv) / 1e9)
        self.approved += approved
        self.rejected += len(decisions) - approved
        metrics.EVENTS_PUBLISHED.labels(self.name, DECISIONS).inc(len(decisions))
        metrics.EVENTS_PUBLISHED.labels(self.name, ORDERS).inc(approved)
        self._publish_state()

    def _account_positions(self) -> None:
        for p in self.engine.portfolio.positions.values():
            metrics.POSITION.labels(p.exchange, p.symbol).set(float(p.qty))
            metrics.REALIZED_PNL.labels(p.exchange, p.symbol).set(float(p.realized_pnl))
            metrics.UNREALIZED_PNL.labels(p.exchange, p.symbol).set(float(p.unrealized_pnl))
        metrics.EVENTS_PUBLISHED.labels(self.name, POSITIONS).inc()
        self._publish_state()

    def _publish_state(self) -> None:
        for st in TradingState:
            metrics.TRADING_STATE.labels(st.value).set(1 if self.engine.state is st else 0)
        pf = self.engine.portfolio
        metrics.EXPOSURE.labels("gross").set(float(pf.gross_exposure))
        metrics.EXPOSURE.labels("net").set(float(pf.net_exposure))
