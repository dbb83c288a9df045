"""A sixth consumer on the run's bus that keeps what the report needs.

It reads the same ``market`` and ``executions`` topics the services publish,
in its own consumer group, so the report is built from the events of the run
itself. Because the run ends only when every group is idle, the recorder has
seen every event once the run is over.
"""

from __future__ import annotations

from tradewind.backtest.equity import Mark
from tradewind.bus import Message, Subscription
from tradewind.events import Bar, Fill, Quote, RiskDecision, Trade
from tradewind.services.base import Service, ServiceContext
from tradewind.topics import DECISIONS, EXECUTIONS, MARKET


class Recorder(Service):
    """Marks are trade prices and bar closes; a symbol's quote mid marks it only
    until its first trade, so a quote-only feed is still valued while a mixed
    feed is valued like risk values it (on trades)."""

    name = "backtest"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.marks: list[Mark] = []
        self.fills: list[Fill] = []
        self.rejections: dict[str, int] = {}
        self.bar_interval_s: float | None = None
        self.market_events = 0
        self.first_ns = 0
        self.last_ns = 0
        self._last: dict[tuple[str, str], float] = {}
        self._traded: set[tuple[str, str]] = set()

    async def start(self) -> None:
        await super().start()
        await self.consume([MARKET, EXECUTIONS, DECISIONS], self._on_batch)

    async def _on_batch(self, sub: Subscription, msgs: list[Message]) -> None:
        marks = self.marks
        last = self._last
        for m in msgs:
            e = m.event
            if m.topic != MARKET:
                if isinstance(e, Fill):
                    self.fills.append(e)
                elif isinstance(e, RiskDecision) and not e.approved:
                    self.rejections[e.reason] = self.rejections.get(e.reason, 0) + 1
                continue
            self.market_events += 1
            ts = e.ts_event
            if ts > self.last_ns:
                self.last_ns = ts
            if ts < self.first_ns or not self.first_ns:
                self.first_ns = ts
            if isinstance(e, Trade):
                key = (e.exchange, e.symbol)
                self._traded.add(key)
                px = e.price
            elif isinstance(e, Bar):
                key = (e.exchange, e.symbol)
                px = e.close
                if self.bar_interval_s is None:
                    self.bar_interval_s = e.interval_s
            elif isinstance(e, Quote):
                key = (e.exchange, e.symbol)
                if key in self._traded:
                    continue
                px = (e.bid + e.ask) / 2.0
            else:
                continue
            if last.get(key) != px:
                last[key] = px
                marks.append((ts, key[0], key[1], px))
        await sub.commit(msgs)
