"""One backtest: recorded data through the five services on a simulated clock.

The run is the embedded ``Pipeline`` itself, on the in-process bus, with the
replay driving a ``ReplayClock`` as fast as the services go; a recorder in
its own consumer group keeps the fills and marks that the equity curve is
built from. Nothing is re-implemented: what the report says is what the
services did.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewind.backtest.equity import build_equity
from tradewind.backtest.parquet_source import ParquetReplaySource
from tradewind.backtest.recorder import Recorder
from tradewind.backtest.result import BacktestResult
from tradewind.clock import ReplayClock
from tradewind.config import load_settings
from tradewind.events import Bar
from tradewind.exchanges.csv_source import CsvReplaySource
from tradewind.runtime.embedded import Pipeline
from tradewind.strategies import Strategy, StrategyContext, build_params, strategy_class


@dataclass(frozen=True)
class BacktestSpec:
    """What to replay and how; plain values, so it crosses process boundaries."""

    data: tuple[Path, ...]
    strategy: str = "ema_cross"
    params: Mapping[str, Any] = field(default_factory=dict)
    fmt: str | None = None
    symbol: str | None = None
    exchange: str | None = None
    bar_interval_s: float | None = None
    """Length of CSV bars whose file does not say (basana exports)."""
    capital: Decimal = Decimal(10_000)
    period_s: float | None = None
    """Sampling period of returns; default: the bar length in use, else 1 s."""
    db: Path | str | None = None
    """SQLite file, or ``postgresql://`` URL, for every event of the run; None
    runs without a store."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Further settings sections, e.g. ``{"risk": {"max_position": "1"}}``."""

    def with_params(self, params: Mapping[str, Any]) -> BacktestSpec:
        return BacktestSpec(
            data=self.data,
            strategy=self.strategy,
            params={**self.params, **params},
            fmt=self.fmt,
            symbol=self.symbol,
            exchange=self.exchange,
            bar_interval_s=self.bar_interval_s,
            capital=self.capital,
            period_s=self.period_s,
            db=self.db,
            settings=self.settings,
        )


def priced_by_bars(cls: type[Strategy]) -> type[Strategy]:
    """The strategy class with ``ctx.last`` set to each given bar's close.

    The signal service sets the reference price only from trades, so on a feed
    of bars alone every signal would reach risk without a price and be
    rejected. Until the signal service does this itself, the backtest subclass
    does it; name, parameters and state are the strategy's own.
    """

    def on_bar(self: Strategy, bar: Bar) -> None:
        self.ctx.last = bar.close
        cls.on_bar(self, bar)

    return type(cls.__name__, (cls,), {"on_bar": on_bar, "__doc__": cls.__doc__})


def prepare_params(spec: BacktestSpec, bars_only: bool) -> dict[str, Any]:
    """Validated parameters; bar data is given to strategies as it is.

    The signal service hands exchange bars to ``on_bar`` only to strategies
    that build no bars (``bar_interval_s`` 0), so on bar files that is the
    default, and asking for bars of your own is an error (no trades to build
    them from).
    """
    params = dict(spec.params)
    if bars_only:
        given = params.get("bar_interval_s")
        if given is None:
            params["bar_interval_s"] = 0
        elif float(given) != 0:
            raise ValueError(
                "bar files feed strategies their bars directly: use bar_interval_s=0 "
                "(there are no trades to build other bars from)"
            )
    p = build_params(spec.strategy, params)
    cls = strategy_class(spec.strategy)
    cls(p, StrategyContext(cls.name, "check", "CHECK"))
    return p.model_dump(mode="json")


def check_data(spec: BacktestSpec) -> bool:
    """Raises ValueError for missing or mixed data; True for Parquet exports."""
    if not spec.data:
        raise ValueError("no data files to replay")
    dirs = [Path(p).is_dir() for p in spec.data]
    if any(dirs) and not all(dirs):
        raise ValueError("give either recorded files or Parquet export directories, not both")
    for path in spec.data:
        if not Path(path).exists():
            raise ValueError(f"no such data file: {path}")
    return all(dirs)


async def run_backtest_async(spec: BacktestSpec) -> BacktestResult:
    """Raises ValueError for bad input (files, format, parameters)."""
    exported = check_data(spec)
    clock = ReplayClock()
    source: CsvReplaySource | ParquetReplaySource
    if exported:
        source = ParquetReplaySource(spec.data, clock=clock)
    else:
        source = CsvReplaySource(
            spec.data,
            clock=clock,
            fmt=spec.fmt,
            symbol=spec.symbol,
            exchange=spec.exchange,
            interval_s=spec.bar_interval_s,
        )
    params = prepare_params(spec, source.bars_only)
    overrides: dict[str, Any] = {k: dict(v) for k, v in spec.settings.items()}
    overrides.update(
        feed={"source": "replay", "data": list(spec.data), "speed": 0.0},
        strategy={"name": spec.strategy, "params": params},
        bus={**overrides.get("bus", {}), "kind": "memory"},
    )
    if spec.db is not None:
        url = spec.db if isinstance(spec.db, str) else f"sqlite:///{spec.db}"
        overrides["store"] = {**overrides.get("store", {}), "url": url}
    settings = load_settings(**overrides)
    pipeline = Pipeline(settings, store=spec.db is not None, source=source, clock=clock)
    if params["bar_interval_s"] == 0:
        pipeline.signal.strategy_cls = priced_by_bars(pipeline.signal.strategy_cls)
    recorder = Recorder(pipeline.ws.ctx)
    pipeline.services.append(recorder)
    t0 = time.perf_counter()
    await pipeline.start()
    try:
        await pipeline.wait_done()
    finally:
        await pipeline.stop()
    wall = time.perf_counter() - t0
    summary = await pipeline.summary(wall)
    curve = build_equity(
        recorder.marks,
        recorder.fills,
        spec.capital,
        (recorder.first_ns, recorder.last_ns),
        instruments=pipeline.risk.engine.instruments,
        quote=settings.paper.quote_currency,
    )
    bar_s = float(params["bar_interval_s"]) or recorder.bar_interval_s or 1.0
    return BacktestResult.build(
        strategy=spec.strategy,
        params=params,
        data=[str(p) for p in spec.data],
        summary=summary,
        curve=curve,
        period_s=spec.period_s or bar_s,
        market_events=recorder.market_events,
        wall_s=wall,
        rejections=recorder.rejections,
    )


def run_backtest(spec: BacktestSpec) -> BacktestResult:
    from tradewind.runtime.loop import run_async

    return run_async(run_backtest_async(spec))
