"""``tradewind backtest``: replay recorded data through the services and report.

One run writes ``result.json``, ``equity.png`` and ``report.html`` to the
output directory; ``--grid`` runs a sweep in parallel processes and writes
``sweep.json`` and ``sweep.html`` plus one ``point-NNN/result.json`` per point.
Every input is checked before anything is written (``cli.checks``).
"""

from __future__ import annotations

import contextlib
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tradewind.backtest.report import metric_rows, write_report, write_sweep
from tradewind.backtest.result import BacktestResult, money
from tradewind.backtest.runner import BacktestSpec, run_backtest
from tradewind.backtest.sweep import SweepPoint, grid_points, parse_grid, run_sweep, sweep_json
from tradewind.cli import app
from tradewind.cli import options as opt
from tradewind.cli.checks import DataFile, check_db_path, check_out_dir, check_strategy, positive
from tradewind.cli.common import settings_or_exit
from tradewind.cli.errors import (
    RunFailed,
    UsageProblem,
    debugging,
    describe_failure,
    one_line_errors,
)
from tradewind.cli.run import record_run
from tradewind.observability.logging import configure_logging
from tradewind.storage import runs
from tradewind.storage.runs import RunRecord, new_run_id

parse_sets = opt.parse_sets


def _capital(value: str) -> Decimal:
    try:
        cap = Decimal(value)
    except InvalidOperation:
        cap = Decimal("NaN")
    if not cap.is_finite() or not cap > 0:
        raise UsageProblem(f"--capital {value}: use a positive amount of the quote currency")
    return cap


def _plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@app.command("backtest")
@one_line_errors
def backtest_command(
    data: list[Path] = opt.data_option(...),  # noqa: B008
    strategy: str = opt.STRATEGY,
    param: list[str] = opt.PARAM,
    set_: list[str] = opt.SET,
    fast: int | None = opt.FAST,
    slow: int | None = opt.SLOW,
    quantity: str | None = opt.QUANTITY,
    bar_interval: float | None = opt.BAR_INTERVAL,
    fmt: str | None = opt.FORMAT,
    symbol: str | None = opt.SYMBOL,
    exchange: str | None = opt.EXCHANGE,
    grid: list[str] = typer.Option(  # noqa: B008
        [],
        "--grid",
        "-g",
        metavar="KEY=V1,V2,...",
        help="Sweep a parameter (repeatable: cartesian grid).",
    ),
    out: Path = typer.Option(  # noqa: B008
        Path("backtest-out"), "--out", "-o", metavar="DIR", help="Output folder."
    ),
    capital: str = typer.Option(
        "10000", "--capital", metavar="AMOUNT", help="Starting capital in the quote currency."
    ),
    period: float | None = typer.Option(
        None,
        "--period",
        metavar="SECONDS",
        help="Seconds between equity samples for Sharpe/Sortino; default: the bar length.",
    ),
    db: str | None = opt.DB_BACKTEST,
    workers: int | None = typer.Option(
        None, "--workers", "-w", metavar="N", help="Sweep processes; default: CPU count."
    ),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw equity.png (matplotlib)."),
    quiet: bool = opt.QUIET,
) -> None:
    """Backtest a strategy on recorded data through the same five services."""
    sections = opt.parse_sets(set_)
    settings = settings_or_exit(**sections, log_level="warning")
    configure_logging(settings, console=True)
    cap = _capital(capital)
    positive(period, "--period", "a positive number of seconds")
    if workers is not None and workers < 1:
        raise UsageProblem(f"--workers {workers}: use 1 or more")
    files = opt.probe_all(data, fmt, symbol, exchange, bar_interval, default_bundled=False)
    shortcuts = {"fast": fast, "slow": slow, "quantity": opt.quantity_value(quantity)}
    params, file_interval = opt.strategy_params(strategy, param, files, bar_interval, shortcuts)
    try:
        points = grid_points(parse_grid(grid)) if grid else []
    except ValueError as exc:
        raise UsageProblem(f"--grid: {exc}") from None
    for point in points:
        try:
            check_strategy(strategy, {**params, **point})
        except UsageProblem as exc:
            shown = ",".join(f"{k}={v}" for k, v in point.items())
            raise UsageProblem(f"--grid point {shown}: {exc}") from None
    check_out_dir(out, "--out")
    db_file = None if db is None or runs.is_url(db) else Path(db)
    if db_file is not None:
        check_db_path(db_file)
    spec = BacktestSpec(
        data=tuple(f.path.resolve() for f in files),
        strategy=strategy,
        params=params,
        fmt=fmt,
        symbol=symbol,
        exchange=exchange,
        bar_interval_s=file_interval,
        capital=cap,
        period_s=period,
        db=db_file if db_file is not None else db,
        settings=sections,
    )
    console = Console()
    for f in files:
        console.print(f"data: {f.describe()}", highlight=False)
    db_existed = db_file is not None and db_file.exists()
    out_existed = out.exists()
    try:
        if grid:
            failed = _sweep(spec, grid, out, workers, console, quiet)
            if failed:
                raise RunFailed(
                    f"{failed} of {len(points)} sweep points failed (see {out / 'sweep.json'})"
                )
        else:
            _single(spec, out, plot, console, files)
    except (UsageProblem, RunFailed):
        raise
    except Exception as exc:
        _remove_new(db_file if not db_existed else None, out if not out_existed else None)
        if debugging():
            raise
        if isinstance(exc, ValueError):
            raise UsageProblem(str(exc)) from None
        raise RunFailed(
            describe_failure(exc, db=None if db is None else runs.shown(db), strategy=strategy)
        ) from None


def _remove_new(db: Path | None, out: Path | None) -> None:
    """What a failed run created: its database file and an empty output folder."""
    if db is not None:
        for p in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))):
            with contextlib.suppress(OSError):
                p.unlink()
    if out is not None:
        with contextlib.suppress(OSError):
            out.rmdir()


def _counts(c: dict[str, int]) -> str:
    total = sum(c.values())
    if not total:
        return "0"
    return f"{total:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(c.items()))})"


def _explain(t: Table, result: BacktestResult, strategy: str) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(result.params.items()))
    t.add_row("strategy", f"{strategy} ({shown})")


def _single(
    spec: BacktestSpec, out: Path, plot: bool, console: Console, files: list[DataFile]
) -> None:
    started_ns = time.time_ns()
    result = run_backtest(spec)
    run_id = None
    if spec.db is not None:
        run_id = new_run_id(started_ns)
        record_run(
            spec.db,
            RunRecord(
                run_id=run_id,
                command="backtest",
                started_ns=started_ns,
                finished_ns=time.time_ns(),
                strategy=spec.strategy,
                params=dict(result.params),
                data=[f.to_json() for f in files],
                summary=dict(result.metrics),
            ),
        )
    draw = plot and _plot_available()
    written = write_report(result, out, plot=draw)
    t = Table(title=f"Backtest: {spec.strategy}", header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    if run_id is not None:
        t.add_row("run id", run_id)
    _explain(t, result, spec.strategy)
    for k, v in metric_rows(result):
        t.add_row(k, v)
    t.add_row("rejected, by reason", _counts(result.metrics.get("rejections") or {}))
    t.add_row("bad messages skipped", _counts(result.metrics.get("parse_errors") or {}))
    t.add_row("messages ignored", _counts(result.metrics.get("ignored") or {}))
    events = result.market_events
    t.add_row("wall time", f"{result.wall_s:.2f} s ({events / max(result.wall_s, 1e-9):,.0f} ev/s)")
    console.print(t)
    for kind, path in written.items():
        console.print(f"{kind}: {path}")
    if plot and not draw:
        console.print(
            "png: skipped (matplotlib is not installed: pip install matplotlib)", highlight=False
        )


def _sweep(
    spec: BacktestSpec, items: list[str], out: Path, workers: int | None, c: Console, quiet: bool
) -> int:
    grid = parse_grid(items)
    t0 = time.perf_counter()

    def done(p: SweepPoint) -> None:
        if quiet:
            return
        if p.result is None:
            status = f"failed: {p.error}"
        else:
            m = p.result["metrics"]
            status = f"PnL {money(m['pnl'])} {m.get('currency', '')} in {p.wall_s:.2f} s"
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
                f"{money(m['pnl'])} {m.get('currency', '')}".rstrip(),
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
    return sum(1 for p in points if p.result is None)
