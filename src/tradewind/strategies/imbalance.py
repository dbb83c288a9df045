"""Order-book imbalance on the best level of quotes.

``imbalance = (bid_qty - ask_qty) / (bid_qty + ask_qty)`` lies in [-1, 1]: a
bid much larger than the ask suggests buyers are about to lift it. The
strategy goes long at ``imbalance >= threshold`` (short at ``<= -threshold``
when shorting is allowed) and holds the position for at least ``hold_s`` of
exchange time; after that it exits on the next quote unless the imbalance
still points the same way, which restarts the hold. Hold times run on
exchange time, never the wall, so a replay decides identically at any speed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field

from tradewind.events import Quote, Trade
from tradewind.strategies.base import Strategy, StrategyContext, StrategyParams


class ImbalanceParams(StrategyParams):
    bar_interval_s: float = 0.0
    threshold: float = Field(0.6, gt=0, lt=1, description="|imbalance| that opens a position")
    hold_s: float = Field(5.0, ge=0, description="minimum holding time, exchange seconds")
    min_depth: float = Field(0.0, ge=0, description="ignore quotes with less bid+ask qty")
    quantity: Decimal = Field(Decimal("0.01"), gt=0)
    allow_short: bool = False


def imbalance(bid_qty: float, ask_qty: float) -> float | None:
    total = bid_qty + ask_qty
    if total <= 0.0:
        return None
    return (bid_qty - ask_qty) / total


class BookImbalance(Strategy):
    name = "imbalance"
    Params = ImbalanceParams

    def __init__(self, params: StrategyParams, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        assert isinstance(params, ImbalanceParams)
        self.p = params
        self.hold_ns = int(params.hold_s * 1e9)
        self.entered_ns = 0
        self.last_imbalance: float | None = None

    def on_quote(self, quote: Quote) -> None:
        if quote.bid_qty + quote.ask_qty < self.p.min_depth:
            return
        imb = self.last_imbalance = imbalance(quote.bid_qty, quote.ask_qty)
        if imb is None:
            return
        th = self.p.threshold
        want = 1 if imb >= th else -1 if imb <= -th else 0
        if want < 0 and not self.p.allow_short:
            want = 0
        pos = self.ctx.position
        held = 1 if pos > 0 else -1 if pos < 0 else 0
        if held != 0 and self.ctx.now_ns - self.entered_ns < self.hold_ns:
            return
        if held != 0 and want == held:
            self.entered_ns = self.ctx.now_ns
            return
        if want == held:
            return
        self._target(self.p.quantity * want, imb)

    def on_trade(self, trade: Trade) -> None:
        """Trades move exchange time: a held position expires without a new quote."""
        pos = self.ctx.position
        if pos != 0 and self.ctx.now_ns - self.entered_ns >= self.hold_ns:
            self._target(Decimal(0), self.last_imbalance)

    def _target(self, target: Decimal, imb: float | None) -> None:
        delta = target - self.ctx.position
        reason = "imbalance" if imb is None else f"imbalance {imb:+.2f}"
        if target != 0:
            self.entered_ns = self.ctx.now_ns
        if delta > 0:
            self.ctx.buy(delta, reason=reason)
        elif delta < 0:
            self.ctx.sell(-delta, reason=reason)

    def save_state(self) -> dict[str, Any]:
        return {"entered_ns": self.entered_ns, "last_imbalance": self.last_imbalance}

    def load_state(self, state: dict[str, Any]) -> None:
        self.entered_ns = int(state["entered_ns"])
        self.last_imbalance = state["last_imbalance"]
