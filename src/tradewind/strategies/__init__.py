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
    """A built-in or plug-in name, ``module:Class`` or ``file.py:Class`` (``loader``)."""
    from tradewind.strategies import loader

    cls = STRATEGIES.get(name)
    if cls is not None:
        return cls
    if loader.is_reference(name):
        return loader.load_reference(name)
    plugin = loader.load_plugin(name)
    if plugin is not None:
        return plugin
    known = sorted({*STRATEGIES, *loader.plugin_names()})
    raise ValueError(
        f"unknown strategy {name!r}; known: {', '.join(known)}, "
        "or path/to/file.py:ClassName, or package.module:ClassName"
    )


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
