"""Mean reversion on the rolling z-score of bar closes.

Long when the close sits ``entry_z`` standard deviations below its rolling mean
(short above it, when shorting is allowed), back to flat once it has reverted
to within ``exit_z``. The window is recomputed from the stored closes rather
than kept as running sums, so a restored strategy computes bit-identical
scores to one that never stopped.
"""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from tradewind.events import Bar
from tradewind.strategies.base import Strategy, StrategyContext, StrategyParams


class ZScoreParams(StrategyParams):
    window: int = Field(20, ge=2, description="closes in the rolling mean and deviation")
    entry_z: float = Field(2.0, gt=0, description="|z| at which to enter")
    exit_z: float = Field(0.5, ge=0, description="|z| at or below which to exit")
    quantity: Decimal = Field(Decimal("0.01"), gt=0)
    allow_short: bool = False

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> ZScoreParams:
        if self.exit_z >= self.entry_z:
            raise ValueError("exit_z must be smaller than entry_z")
        return self


def zscore(values: deque[float] | list[float]) -> float | None:
    """Last value's distance from the mean in sample standard deviations (n-1);
    None while the deviation is zero."""
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    if var <= 0.0:
        return None
    return (values[-1] - mean) / math.sqrt(var)


class ZScoreReversion(Strategy):
    name = "zscore"
    Params = ZScoreParams

    def __init__(self, params: StrategyParams, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        assert isinstance(params, ZScoreParams)
        self.p = params
        self.closes: deque[float] = deque(maxlen=params.window)
        self.z: float | None = None

    def on_bar(self, bar: Bar) -> None:
        self.closes.append(bar.close)
        if len(self.closes) < self.p.window:
            return
        z = self.z = zscore(self.closes)
        if z is None:
            return
        pos = self.ctx.position
        q = self.p.quantity
        if z <= -self.p.entry_z:
            target = q
        elif z >= self.p.entry_z:
            target = -q if self.p.allow_short else Decimal(0)
        elif abs(z) <= self.p.exit_z:
            target = Decimal(0)
        else:
            return
        delta = target - pos
        if delta > 0:
            self.ctx.buy(delta, reason=f"zscore {z:.2f}")
        elif delta < 0:
            self.ctx.sell(-delta, reason=f"zscore {z:.2f}")

    def save_state(self) -> dict[str, Any]:
        return {"closes": list(self.closes), "z": self.z}

    def load_state(self, state: dict[str, Any]) -> None:
        self.closes = deque((float(c) for c in state["closes"]), maxlen=self.p.window)
        self.z = state["z"]
