"""``tradewind backtest``: recorded data through the same five services on a
simulated clock, with a report (JSON, PNG, HTML) and parallel parameter sweeps."""

from __future__ import annotations

from tradewind.backtest.result import BacktestResult
from tradewind.backtest.runner import BacktestSpec, run_backtest, run_backtest_async
from tradewind.backtest.sweep import grid_points, parse_grid, run_sweep

__all__ = [
    "BacktestResult",
    "BacktestSpec",
    "grid_points",
    "parse_grid",
    "run_backtest",
    "run_backtest_async",
    "run_sweep",
]
