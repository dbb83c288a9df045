"""The execution service: approved orders → the exchange → order updates and fills.

The paper exchange stamps its events with the order's decision time, so a
replay produces the same executions however fast the services run.

An order whose client order id was already handled is never sent again; the
ids of handled orders are committed together with the events they produced.
"""

from __future__ import annotations

import time

from tradewind.bus import Message, Subscription
from tradewind.events import Event, Fill, OrderRequest, OrderStatus, OrderUpdate
from tradewind.exchanges.paper import PaperExchange
from tradewind.observability import metrics
from tradewind.services.base import Service, ServiceContext
from tradewind.topics import EXECUTIONS, ORDERS


class ExecutionService(Service):
    name = "execution"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.exchange = PaperExchange(ctx.settings.paper, ctx.instruments)
        self.handled: set[str] = set()
        self.latencies: list[float] = []
        self.orders = 0
        self.fills = 0

    async def start(self) -> None:
        await super().start()
        await self.consume([ORDERS], self._on_orders)

    async def _on_orders(self, sub: Subscription, msgs: list[Message]) -> None:
        out: list[Event] = []
        for m in msgs:
            o = m.event
            if not isinstance(o, OrderRequest) or o.client_order_id in self.handled:
                continue
            self.handled.add(o.client_order_id)
            self.orders += 1
            out.extend(self.exchange.submit(o, o.ts_event))
        await sub.commit(msgs, {EXECUTIONS: out})
        self._account(out)

    def _account(self, out: list[Event]) -> None:
        now = time.time_ns()
        for e in out:
            if type(e) is OrderUpdate:
                metrics.ORDERS.labels(e.exchange, e.status.value).inc()
                if e.status is OrderStatus.ACCEPTED:
                    lat = (now - e.ts_recv) / 1e9
                    self.latencies.append(lat)
                    metrics.TICK_TO_ORDER.observe(lat)
                    metrics.HOP_LATENCY.labels("decision_to_ack").observe(lat)
            elif type(e) is Fill:
                self.fills += 1
                metrics.FILLS.labels(e.exchange, e.symbol, e.liquidity.value).inc()
                metrics.FEES.labels(e.exchange).inc(float(e.fee))
        if out:
            metrics.EVENTS_PUBLISHED.labels(self.name, EXECUTIONS).inc(len(out))
