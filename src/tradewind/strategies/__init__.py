"""Strategies by name; see ``base`` for the API."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tradewind.strategies.base import Strategy, StrategyContext, StrategyParams
from tradewind.strategies.ema_cross import EmaCross
from tradewind.strategies.imbalance import BookImbalance
from tradewind.strategies.zscore import ZScoreReversion

STRATEGIES: dict[str, type[Strategy]] = {EmaCross.name: EmaCross}
STRATEGIES[ZScoreReversion.name] = ZScoreReversion
STRATEGIES[BookImbalance.name] = BookImbalance


def strategy_class(name: str) -> type[Strategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        ) from None


def build_params(name: str, params: dict[str, Any]) -> StrategyParams:
    """Validate parameters; a ValueError names the bad parameter."""
    cls = strategy_class(name)
    try:
        return cls.Params(**params)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"strategy {name} parameter {key}: {err['msg']}") from None


__all__ = [
    "STRATEGIES",
    "Strategy",
    "StrategyContext",
    "StrategyParams",
    "build_params",
    "strategy_class",
]
