"""``tradewind backtest``: replay recorded data through the services and report.

One run writes ``result.json``, ``equity.png`` and ``report.html`` to the
output directory; ``--grid`` runs a sweep in parallel processes and writes
``sweep.json`` and ``sweep.html`` plus one ``point-NNN/result.json`` per point.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tradewind.backtest.report import metric_rows, write_report, write_sweep
from tradewind.backtest.result import money
from tradewind.backtest.runner import BacktestSpec, run_backtest
from tradewind.backtest.sweep import SweepPoint, parse_grid, run_sweep, sweep_json
from tradewind.cli import app
from tradewind.cli.common import parse_params, settings_or_exit
from tradewind.observability.logging import configure_logging


def parse_sets(items: list[str]) -> dict[str, dict[str, str]]:
    """``risk.max_position=1`` → ``{"risk": {"max_position": "1"}}``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_params(items).items():
        section, dot, name = key.partition(".")
        if not dot or not section or not name:
            raise typer.BadParameter(f"expected SECTION.KEY=VALUE, got {key}={value}")
        out.setdefault(section, {})[name] = value
    return out


@app.command("backtest")
def backtest_command(
    data: list[Path] = typer.Option(  # noqa: B008
        ...,
        "--data",
        "-d",
        exists=True,
        dir_okay=False,
        help="Recorded data: exchange JSONL, or CSV of trades or bars (repeatable).",
    ),
    strategy: str = typer.Option("ema_cross", "--strategy", "-s", help="Strategy name."),
    param: list[str] = typer.Option(  # noqa: B008
        [], "--param", "-p", help="Strategy parameter KEY=VALUE (repeatable)."
    ),
    grid: list[str] = typer.Option(  # noqa: B008
        [], "--grid", "-g", help="Sweep a parameter: KEY=V1,V2,... (repeatable: cartesian grid)."
    ),
    out: Path = typer.Option(  # noqa: B008
        Path("backtest-out"), "--out", "-o", file_okay=False, help="Output directory."
    ),
    fmt: str | None = typer.Option(None, "--format", help="Data format; default: detected."),
    symbol: str | None = typer.Option(
        None, help="Symbol of CSV data; default: read from the file name."
    ),
    exchange: str | None = typer.Option(None, help="Exchange of CSV data; default: binance."),
    bar_length: float | None = typer.Option(
        None, help="Seconds per bar of a CSV that does not say (basana); default: file name, 1 d."
    ),
    capital: str = typer.Option("10000", help="Starting capital in the quote currency."),
    period: float | None = typer.Option(
        None, help="Seconds between equity samples for Sharpe/Sortino; default: the bar length."
    ),
    db: Path | None = typer.Option(  # noqa: B008
        None, help="Also write every event to this SQLite file (slower)."
    ),
    workers: int | None = typer.Option(None, min=1, help="Sweep processes; default: CPU count."),
    set_: list[str] = typer.Option(  # noqa: B008
        [], "--set", help="Any setting as SECTION.KEY=VALUE, e.g. risk.max_position=1."
    ),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw equity.png (matplotlib)."),
) -> None:
    """Backtest a strategy on recorded data through the same five services."""
    from decimal import Decimal, InvalidOperation

    sections = parse_sets(set_)
    settings = settings_or_exit(**sections, log_level="warning")
    configure_logging(settings, console=True)
    try:
        cap = Decimal(capital)
    except InvalidOperation:
        raise typer.BadParameter("capital must be a number") from None
    if not cap > 0:
        raise typer.BadParameter("capital must be positive")
    spec = BacktestSpec(
        data=tuple(p.resolve() for p in data),
        strategy=strategy,
        params=dict(parse_params(param)),
        fmt=fmt,
        symbol=symbol,
        exchange=exchange,
        bar_interval_s=bar_length,
        capital=cap,
        period_s=period,
        db=db,
        settings=sections,
    )
    console = Console()
    try:
        if grid:
            _sweep(spec, grid, out, workers, console)
        else:
            _single(spec, out, plot, console)
    except ValueError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None


def _single(spec: BacktestSpec, out: Path, plot: bool, console: Console) -> None:
    result = run_backtest(spec)
    written = write_report(result, out, plot=plot)
    t = Table(title=f"Backtest: {spec.strategy}", header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in metric_rows(result):
        t.add_row(k, v)
    events = result.market_events
    t.add_row("wall time", f"{result.wall_s:.2f} s ({events / max(result.wall_s, 1e-9):,.0f} ev/s)")
    console.print(t)
    for kind, path in written.items():
        console.print(f"{kind}: {path}")


def _sweep(
    spec: BacktestSpec, items: list[str], out: Path, workers: int | None, c: Console
) -> None:
    grid = parse_grid(items)
    t0 = time.perf_counter()

    def done(p: SweepPoint) -> None:
        if p.result is None:
            status = f"failed: {p.error}"
        else:
            status = f"PnL {money(p.result['metrics']['pnl'])} in {p.wall_s:.2f} s"
        c.print(f"point {p.index}: {p.grid} {status}", highlight=False)

    points = run_sweep(spec, grid, workers, out, done)
    data = sweep_json(spec, grid, points)
    written = write_sweep(data, out)
    t = Table(title=f"Sweep: {spec.strategy} ({len(points)} points)", header_style="bold")
    keys = list(grid)
    for col in [*keys, "PnL", "Sharpe", "max DD %", "trades", "win rate"]:
        t.add_column(col, justify="right")
    for p in points:
        cells: list[Any] = [p.grid[k] for k in keys]
        if p.result is None:
            cells += [p.error or "failed", "", "", "", ""]
        else:
            m = p.result["metrics"]
            cells += [
                money(m["pnl"]),
                "n/a" if m["sharpe"] is None else f"{m['sharpe']:.3f}",
                f"{100 * m['max_drawdown_pct']:.2f}",
                str(m["trades"]),
                "n/a" if m["win_rate"] is None else f"{100 * m['win_rate']:.0f} %",
            ]
        t.add_row(*cells)
    c.print(t)
    c.print(f"{len(points)} points in {time.perf_counter() - t0:.2f} s")
    for kind, path in written.items():
        c.print(f"{kind}: {path}")
