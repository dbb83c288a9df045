"""EMA crossover on time bars: long while the fast EMA is above the slow one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field

from tradewind.events import Bar
from tradewind.strategies.base import Strategy, StrategyParams


class EmaCrossParams(StrategyParams):
    fast: int = Field(4, ge=1)
    slow: int = Field(12, ge=2)
    quantity: Decimal = Field(Decimal("0.01"), gt=0)
    allow_short: bool = False


class EmaCross(Strategy):
    name = "ema_cross"
    Params = EmaCrossParams

    def __init__(self, params: StrategyParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        assert isinstance(params, EmaCrossParams)
        if params.fast >= params.slow:
            raise ValueError("fast must be shorter than slow")
        self.p = params
        self._af = 2.0 / (params.fast + 1)
        self._as = 2.0 / (params.slow + 1)
        self.fast: float | None = None
        self.slow: float | None = None
        self.bars = 0
        self.above: bool | None = None

    def on_bar(self, bar: Bar) -> None:
        c = bar.close
        if self.fast is None or self.slow is None:
            self.fast = self.slow = c
        else:
            self.fast += self._af * (c - self.fast)
            self.slow += self._as * (c - self.slow)
        self.bars += 1
        if self.bars < self.p.slow:
            return
        above = self.fast > self.slow
        crossed = self.above is not None and above != self.above
        self.above = above
        if not crossed:
            return
        pos = self.ctx.position
        q = self.p.quantity
        if above:
            target = q
        else:
            target = -q if self.p.allow_short else Decimal(0)
        delta = target - pos
        if delta > 0:
            self.ctx.buy(delta, reason="ema_cross_up")
        elif delta < 0:
            self.ctx.sell(-delta, reason="ema_cross_down")

    def save_state(self) -> dict[str, Any]:
        return {"fast": self.fast, "slow": self.slow, "bars": self.bars, "above": self.above}

    def load_state(self, state: dict[str, Any]) -> None:
        self.fast, self.slow = state["fast"], state["slow"]
        self.bars, self.above = state["bars"], state["above"]
