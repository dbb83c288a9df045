"""The strategy API.

A strategy instance owns one symbol. The signal service feeds it market events
in exchange order and collects the signals it emits through its context; it
never sends orders itself, so every wish to trade passes risk. Everything a
strategy decides must depend only on what it was fed, so that replays,
backtests and live runs of the same data emit the same signals with the same
ids. ``save_state``/``load_state`` let a restarted worker continue exactly
where the last one committed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tradewind.events import (
    Bar,
    BookDelta,
    Fill,
    OrderType,
    Quote,
    Side,
    Signal,
    TimeInForce,
    Trade,
)


class StrategyParams(BaseModel):
    """Base for parameter models; ``bar_interval_s`` 0 disables bar building,
    ``timer_interval_s`` > 0 calls ``on_timer`` on each multiple of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timer_interval_s: float = Field(0.0, ge=0.0)

    bar_interval_s: float = 1.0


class StrategyContext:
    """What a strategy sees of the world and the only way it can act."""

    __slots__ = (
        "_out",
        "_seq",
        "ask",
        "bid",
        "exchange",
        "last",
        "next_timer_ns",
        "now_ns",
        "position",
        "strategy",
        "symbol",
        "ts_recv",
    )

    def __init__(self, strategy: str, exchange: str, symbol: str) -> None:
        self.strategy = strategy
        self.exchange = exchange
        self.symbol = symbol
        self.bid: float | None = None
        self.ask: float | None = None
        self.last: float | None = None
        self.now_ns = 0
        self.next_timer_ns = 0
        """Exchange time of the next ``on_timer`` call (0: not yet scheduled)."""
        self.ts_recv = 0
        self.position = Decimal(0)
        """The position the strategy's own signals aim for (not yet confirmed)."""
        self._seq = 0
        self._out: list[Signal] = []

    def buy(self, quantity: Decimal, **kw: Any) -> Signal:
        return self.signal(Side.BUY, quantity, **kw)

    def sell(self, quantity: Decimal, **kw: Any) -> Signal:
        return self.signal(Side.SELL, quantity, **kw)

    def signal(
        self,
        side: Side,
        quantity: Decimal,
        *,
        order_type: OrderType = OrderType.MARKET,
        limit_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        reduce_only: bool = False,
        reason: str = "",
    ) -> Signal:
        if quantity <= 0:
            raise ValueError(f"signal quantity must be positive, got {quantity}")
        self._seq += 1
        sig = Signal(
            id=f"{self.strategy}:{self.exchange}:{self.symbol}:{self.now_ns}:{self._seq}",
            ts_event=self.now_ns,
            strategy=self.strategy,
            exchange=self.exchange,
            symbol=self.symbol,
            side=side,
            quantity=quantity,
            order_type=order_type,
            limit_price=limit_price,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            ref_bid=self.bid,
            ref_ask=self.ask,
            ref_last=self.last,
            reason=reason,
            ts_recv=self.ts_recv,
        )
        self.position += quantity if side is Side.BUY else -quantity
        self._out.append(sig)
        return sig

    def drain(self) -> list[Signal]:
        out, self._out = self._out, []
        return out

    def state(self) -> dict[str, Any]:
        return {
            "seq": self._seq,
            "position": str(self.position),
            "bid": self.bid,
            "ask": self.ask,
            "last": self.last,
            "now_ns": self.now_ns,
            "next_timer_ns": self.next_timer_ns,
        }

    def restore_counts(self, signals: int, position: Decimal) -> None:
        """After a rebuild from the store: the signals made so far and the
        position they aim for."""
        self._seq = signals
        self.position = position

    def restore(self, data: dict[str, Any]) -> None:
        self._seq = int(data["seq"])
        self.position = Decimal(data["position"])
        self.bid, self.ask, self.last = data["bid"], data["ask"], data["last"]
        self.now_ns = int(data["now_ns"])
        self.next_timer_ns = int(data.get("next_timer_ns", 0))


class Strategy:
    """Subclass, set ``name`` and ``Params``, override the callbacks you need."""

    name: ClassVar[str] = "strategy"
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, params: StrategyParams, ctx: StrategyContext) -> None:
        self.params = params
        self.ctx = ctx

    def on_trade(self, trade: Trade) -> None:
        """Every trade of the symbol."""

    def on_quote(self, quote: Quote) -> None:
        """Every best bid/ask change."""

    def on_book(self, book: BookDelta) -> None:
        """Every order book change (snapshot or delta)."""

    def on_bar(self, bar: Bar) -> None:
        """Every closed bar of ``params.bar_interval_s`` seconds, built from trades."""

    def on_fill(self, fill: Fill) -> None:
        """Fills of this strategy's orders (arrive after the signal, asynchronously)."""

    def on_timer(self, now_ns: int) -> None:
        """Called when exchange time reaches each multiple of
        ``params.timer_interval_s`` (with that time), before the event that
        moved time past it; runs on exchange time, so replays call it
        identically, even when no trade happens."""

    def save_state(self) -> dict[str, Any]:
        """JSON-serialisable state; the default keeps nothing beyond the context."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``save_state`` returned."""
