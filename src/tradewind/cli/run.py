"""``tradewind run``: the whole pipeline in one process on the embedded default."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tradewind.cli import app
from tradewind.cli.common import parse_params, parse_speed, settings_or_exit
from tradewind.observability.logging import configure_logging
from tradewind.runtime.embedded import RunSummary, run_embedded
from tradewind.runtime.loop import run_async


@app.command("run")
def run_command(
    data: list[Path] = typer.Option(  # noqa: B008
        None,
        "--data",
        exists=True,
        dir_okay=False,
        help="Recording(s) to replay; default: the bundled Binance BTCUSDT recording.",
    ),
    speed: str = typer.Option("max", help="1 = real time, 10 = ten times faster, max = no pauses."),
    db: Path = typer.Option(Path("tradewind.db"), help="SQLite file to write."),  # noqa: B008
    strategy: str = typer.Option("ema_cross", help="Strategy name."),
    fast: int | None = typer.Option(None, help="EMA crossover: fast period (bars)."),
    slow: int | None = typer.Option(None, help="EMA crossover: slow period (bars)."),
    bar_interval: float | None = typer.Option(None, help="Bar length in seconds."),
    quantity: str | None = typer.Option(None, help="Order quantity in base units."),
    param: list[str] = typer.Option(  # noqa: B008
        [], "--param", "-p", help="Any strategy parameter as KEY=VALUE (repeatable)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Replay market data through all five services and print a summary."""
    params: dict[str, object] = dict(parse_params(param))
    for key, value in (
        ("fast", fast),
        ("slow", slow),
        ("bar_interval_s", bar_interval),
        ("quantity", quantity),
    ):
        if value is not None:
            params[key] = value
    settings = settings_or_exit(
        feed={"source": "replay", "data": list(data or []), "speed": parse_speed(speed)},
        store={"url": f"sqlite:///{db}"},
        strategy={"name": strategy, "params": params},
        bus={"kind": "memory"},
    )
    configure_logging(settings, console=True)
    console = Console(stderr=True)
    try:
        if quiet:
            summary = run_async(run_embedded(settings))
        else:
            with Progress(
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("messages"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("replay", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = run_async(run_embedded(settings, progress))
    except ValueError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None
    Console().print(summary_table(summary, db))


def _money(v: Decimal) -> str:
    return f"{v:,.4f}"


def summary_table(s: RunSummary, db: Path | None = None) -> Table:
    t = Table(title="Tradewind run", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    errors = sum(s.parse_errors.values())
    rows: list[tuple[str, str]] = [
        ("events in", f"{s.events_in:,}"),
        (
            "bad messages skipped",
            f"{errors:,}"
            + (
                f" ({', '.join(f'{k} {v}' for k, v in sorted(s.parse_errors.items()))})"
                if errors
                else ""
            ),
        ),
        ("bars", f"{s.bars:,}"),
        ("signals", f"{s.signals:,}"),
        ("orders approved", f"{s.approved:,}"),
        ("orders rejected", f"{s.rejected:,}"),
        ("fills", f"{s.fills:,}"),
    ]
    for p in s.positions:
        rows.append((f"position {p.exchange}:{p.symbol}", f"{p.qty.normalize():f}"))
    rows += [
        ("fees", _money(s.fees)),
        ("realized PnL", _money(s.realized_pnl)),
        ("unrealized PnL", _money(s.unrealized_pnl)),
        ("tick-to-order p50", "n/a" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.3f} ms"),
        ("tick-to-order p99", "n/a" if s.latency_p99_ms is None else f"{s.latency_p99_ms:.3f} ms"),
        ("wall time", f"{s.duration_s:.2f} s"),
    ]
    if db is not None:
        rows.append(("database", str(db)))
    for k, v in rows:
        t.add_row(k, v)
    return t
