"""``on_timer`` fires on exchange time, at every multiple of the interval, in
order and before the event that moved time past it; what it signals carries
that event's receive time (the tick-to-order clock starts there)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.conftest import service_context
from tradewind.bus import MemoryBus
from tradewind.events import Quote, Signal
from tradewind.services import SignalService
from tradewind.strategies import STRATEGIES, Strategy
from tradewind.topics import MARKET, SIGNALS

S = 1_000_000_000


class Ticker(Strategy):
    name = "test_ticker"

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.calls: list[int] = []

    def on_timer(self, now_ns: int) -> None:
        self.calls.append(now_ns)
        if len(self.calls) == 3:
            self.ctx.buy(Decimal("0.001"), reason=f"timer at {now_ns}")


def quote(ts: float) -> Quote:
    return Quote(
        id=f"q{ts}",
        ts_event=int(ts * S),
        exchange="x",
        symbol="S",
        bid=1.0,
        bid_qty=1.0,
        ask=1.1,
        ask_qty=1.0,
        ts_recv=int(ts * S) + 1,
    )


async def test_timers_fire_on_exchange_time(make_settings: Any) -> None:
    STRATEGIES[Ticker.name] = Ticker
    try:
        bus = MemoryBus()
        settings = make_settings(
            strategy={"name": Ticker.name, "params": {"timer_interval_s": 1.0}}
        )
        ctx = service_context(settings, bus=bus)
        svc = SignalService(ctx)
        await svc.start()
        await bus.publish(MARKET, [quote(10.2), quote(10.7), quote(12.5), quote(12.9), quote(14.0)])
        await bus.wait_idle()
        out = await bus.subscribe([SIGNALS], "t", "t")  # after: its lag would block wait_idle
        signals = [m.event for m in await out.fetch(10, 1.0)]
        await svc.stop()
        strat = next(iter(svc.workers.values())).strategy
        assert isinstance(strat, Ticker)
        assert strat.calls == [11 * S, 12 * S, 13 * S, 14 * S]
        (sig,) = signals
        assert isinstance(sig, Signal)
        assert sig.ts_event == 13 * S
        assert sig.ts_recv == 14 * S + 1
    finally:
        del STRATEGIES[Ticker.name]
