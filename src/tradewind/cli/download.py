"""``tradewind download``: public history for research and backtests.

Binance spot through data.binance.vision's daily archives (checksummed,
resumable, rate limits honoured); each day becomes one CSV in ``--output``
that ``run`` and ``backtest`` detect from its header row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console

from tradewind.cli import app
from tradewind.cli.errors import UsageProblem
from tradewind.exchanges.binance.history import (
    BASE_URL,
    INTERVALS,
    KINDS,
    SYMBOL,
    Day,
    History,
    HistoryError,
    download,
)
from tradewind.runtime.loop import run_async

VENUES = ("binance",)
MAX_DAYS = 3660


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageProblem(f"{option} {value}: use a UTC date like 2024-08-08") from None


def _days(start: str, end: str | None) -> list[date]:
    first = _day(start, "--start")
    last = _day(end, "--end") if end is not None else first
    today = datetime.now(UTC).date()
    if last < first:
        raise UsageProblem(f"--end {last} is before --start {first}")
    if last >= today:
        raise UsageProblem(
            f"--end {last}: a day's archive is published after the day ends (UTC); "
            f"the last complete day is {today - timedelta(days=1)}"
        )
    n = (last - first).days + 1
    if n > MAX_DAYS:
        raise UsageProblem(f"--start {first} to --end {last} is {n} days; at most {MAX_DAYS}")
    return [first + timedelta(days=i) for i in range(n)]


@app.command("download")
def download_command(
    venue: str = typer.Option(
        "binance", "--venue", metavar="VENUE", help="Exchange (binance: spot)."
    ),
    symbols: str = typer.Option(
        ..., "--symbols", metavar="SYMBOLS", help="Comma-separated symbols, e.g. BTCUSDT."
    ),
    start: str = typer.Option(
        ..., "--start", metavar="DATE", help="First UTC day, e.g. 2024-08-08."
    ),
    end: str | None = typer.Option(
        None, "--end", metavar="DATE", help="Last UTC day, included (default: start)."
    ),
    kind: str = typer.Option(
        "trades", "--kind", metavar="KIND", help="trades, aggTrades or klines."
    ),
    interval: str = typer.Option(
        "1m", "--interval", metavar="INTERVAL", help="Kline length (with --kind klines)."
    ),
    output: Path = typer.Option(  # noqa: B008
        Path("data"), "--output", "-o", metavar="DIR", help="Folder for the CSV files."
    ),
    base_url: str = typer.Option(
        BASE_URL, "--base-url", metavar="URL", help="Archive server (a mirror)."
    ),
) -> None:
    """Download daily history (checksummed, resumable) as CSV that backtest reads."""
    if venue not in VENUES:
        raise UsageProblem(
            f"--venue {venue}: download covers {', '.join(VENUES)} (data.binance.vision)"
        )
    if kind not in KINDS:
        raise UsageProblem(f"--kind {kind}: use one of {', '.join(KINDS)}")
    if kind == "klines" and interval not in INTERVALS:
        raise UsageProblem(f"--interval {interval}: use one of {', '.join(sorted(INTERVALS))}")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    if not names:
        raise UsageProblem("--symbols: give at least one symbol, e.g. BTCUSDT")
    for s in names:
        if not SYMBOL.match(s):
            raise UsageProblem(
                f"--symbols {s}: a Binance symbol is letters and digits, e.g. BTCUSDT"
            )
    days = _days(start, end)
    if not output.is_dir():
        if output.exists() or not output.parent.is_dir():
            raise UsageProblem(f"--output {output}: not a folder (its parent must exist)")
        output.mkdir()
    console = Console(soft_wrap=True, highlight=False)

    def shown(d: Day) -> None:
        if d.status == "downloaded":
            how = " (resumed)" if d.resumed else ""
            console.print(f"{d.symbol} {d.day}: {d.rows:,} rows -> {d.path}{how}")
        elif d.status == "present":
            console.print(f"{d.symbol} {d.day}: already here ({d.path})")
        else:
            console.print(f"{d.symbol} {d.day}: not published")

    async def main() -> tuple[list[Day], History]:
        history = History(base_url)
        try:
            return await download(history, kind, names, days, output, interval, shown), history
        finally:
            await history.close()

    try:
        got, history = run_async(main())
    except HistoryError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(1) from None
    done = [d for d in got if d.status != "missing"]
    console.print(
        f"{len(done)} of {len(got)} day files in {output}"
        + (f"; {history.throttled} rate-limited answers waited out" if history.throttled else "")
    )
    missing = [d for d in got if d.status == "missing"]
    if missing:
        gaps = ", ".join(f"{d.symbol} {d.day}" for d in missing)
        typer.echo(f"tradewind: gaps: no archive for {gaps}", err=True)
        raise typer.Exit(1)
