"""Channel breakout on bar closes: buy above the recent high, exit below the recent low."""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from pydantic import Field

from tradewind.events import Bar
from tradewind.strategies.base import Strategy, StrategyContext, StrategyParams


class BreakoutParams(StrategyParams):
    lookback: int = Field(20, ge=2, description="bars of the channel")
    quantity: Decimal = Field(Decimal("0.01"), gt=0, description="base units per entry")


class Breakout(Strategy):
    name = "breakout"
    Params = BreakoutParams

    def __init__(self, params: StrategyParams, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        assert isinstance(params, BreakoutParams)
        self.p = params
        self.highs: deque[float] = deque(maxlen=params.lookback)
        self.lows: deque[float] = deque(maxlen=params.lookback)

    def on_bar(self, bar: Bar) -> None:  # also: on_trade, on_quote, on_book, on_fill
        if len(self.highs) == self.p.lookback:
            if bar.close > max(self.highs) and self.ctx.position <= 0:
                self.ctx.buy(self.p.quantity - self.ctx.position, reason="breakout up")
            elif bar.close < min(self.lows) and self.ctx.position > 0:
                self.ctx.sell(self.ctx.position, reason="breakout down")
        self.highs.append(bar.high)
        self.lows.append(bar.low)

    def save_state(self) -> dict[str, Any]:  # committed with each batch when distributed
        return {"highs": list(self.highs), "lows": list(self.lows)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.highs = deque(state["highs"], maxlen=self.p.lookback)
        self.lows = deque(state["lows"], maxlen=self.p.lookback)
