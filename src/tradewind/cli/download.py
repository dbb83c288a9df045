"""``tradewind download``: public history for research and backtests.

Binance spot from data.binance.vision's daily archives (checksummed,
resumable, rate limits honoured) for finished days, and from the REST API
(``/api/v3/aggTrades``, ``/api/v3/klines``) for today's partial day or when
``--source rest`` asks; other venues through ccxt. Every source writes one
CSV a day in ``--output``, in the layouts ``run`` and ``backtest`` detect
from the header row, and reports progress, resumes and gaps the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.console import Console

from tradewind.cli import app
from tradewind.cli.errors import UsageProblem
from tradewind.config import ConfigError
from tradewind.exchanges.binance.history import (
    BASE_URL,
    INTERVALS,
    KINDS,
    SYMBOL,
    History,
    download,
)
from tradewind.exchanges.binance.rest_history import REST_URL, RestHistory
from tradewind.exchanges.ccxt.history import VENUES as CCXT_VENUES
from tradewind.exchanges.ccxt.history import CcxtHistory
from tradewind.exchanges.common.history import INTERVAL_MS, Day, DaySource, HistoryError
from tradewind.runtime.loop import run_async

VENUES = ("binance", *CCXT_VENUES)
SOURCES = ("auto", "archive", "rest")
CCXT_KINDS = ("trades", "klines")
MARKET = re.compile(r"^[A-Za-z0-9]{1,20}([/-][A-Za-z0-9]{1,20})?$")
MAX_DAYS = 3660


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageProblem(f"{option} {value}: use a UTC date like 2024-08-08") from None


def _days(start: str, end: str | None, archive_only: bool) -> list[date]:
    first = _day(start, "--start")
    last = _day(end, "--end") if end is not None else first
    today = datetime.now(UTC).date()
    if last < first:
        raise UsageProblem(f"--end {last} is before --start {first}")
    if last > today:
        raise UsageProblem(f"--end {last} is after today ({today}, UTC)")
    if archive_only and last == today:
        raise UsageProblem(
            f"--end {last}: a day's archive is published after the day ends (UTC); "
            f"the last complete day is {today - timedelta(days=1)} (--source rest fetches today)"
        )
    n = (last - first).days + 1
    if n > MAX_DAYS:
        raise UsageProblem(f"--start {first} to --end {last} is {n} days; at most {MAX_DAYS}")
    return [first + timedelta(days=i) for i in range(n)]


def _shown(console: Console) -> Callable[[Day], None]:
    def shown(d: Day) -> None:
        if d.status == "downloaded":
            how = " (resumed)" if d.resumed else ""
            console.print(f"{d.symbol} {d.day}: {d.rows:,} rows -> {d.path}{how}")
        elif d.status == "present":
            console.print(f"{d.symbol} {d.day}: already here ({d.path})")
        elif d.status == "partial":
            if d.path is None or d.until_ms is None:
                console.print(f"{d.symbol} {d.day}: no rows yet today")
            else:
                until = datetime.fromtimestamp(d.until_ms / 1000, UTC).strftime("%H:%M:%S")
                how = " (resumed)" if d.resumed else ""
                console.print(
                    f"{d.symbol} {d.day}: {d.rows:,} rows up to {until} UTC, the day is not "
                    f"over (a rerun continues it) -> {d.path}{how}"
                )
        else:
            console.print(
                f"{d.symbol} {d.day}: " + ("not published" if d.source == "archive" else "no rows")
            )
        for hole in d.holes:
            console.print(f"  {d.symbol} {d.day}: {hole}: the venue has none")
        for lost in d.lost:
            console.print(f"  {d.symbol} {d.day}: {lost}")

    return shown


def summarize(got: list[Day], output: Path, sources: list[DaySource], console: Console) -> None:
    """The summary line, then one error line and exit 1 when data is missing:
    days with no data at all, rows the venue numbered and did not send."""
    done = [d for d in got if d.status != "missing"]
    throttled = sum(s.throttled for s in sources)
    waits = sum(s.weight_waits for s in sources)
    retried = sum(s.retried for s in sources)
    holes = sum(len(d.holes) for d in got)
    notes = []
    if throttled:
        notes.append(f"{throttled} rate-limited answers waited out")
    if waits:
        notes.append(f"{waits} waits for the request-weight limit")
    if retried:
        notes.append(f"{retried} failed requests retried")
    if holes:
        notes.append(f"{holes} stretches without data at the venue (listed above)")
    console.print(
        f"{len(done)} of {len(got)} day files in {output}" + "".join(f"; {n}" for n in notes)
    )
    problems = []
    missing = [d for d in got if d.status == "missing"]
    unpublished = [f"{d.symbol} {d.day}" for d in missing if d.source == "archive"]
    empty = [f"{d.symbol} {d.day}" for d in missing if d.source != "archive"]
    if unpublished:
        problems.append(f"no archive for {', '.join(unpublished)}")
    if empty:
        problems.append(f"no rows from the API for {', '.join(empty)}")
    for d in got:
        problems += [f"{d.symbol} {d.day}: {lost}" for lost in d.lost]
    if problems:
        typer.echo(f"tradewind: gaps: {'; '.join(problems)}", err=True)
        raise typer.Exit(1)


@app.command("download")
def download_command(
    venue: str = typer.Option(
        "binance",
        "--venue",
        metavar="VENUE",
        help="binance (spot), or through ccxt: okx, bybit, coinbase, kraken (spot).",
    ),
    symbols: str = typer.Option(
        ...,
        "--symbols",
        metavar="SYMBOLS",
        help="Comma-separated symbols, e.g. BTCUSDT (ccxt venues also BTC/USDT, BTC-USDT).",
    ),
    start: str = typer.Option(
        ..., "--start", metavar="DATE", help="First UTC day, e.g. 2024-08-08."
    ),
    end: str | None = typer.Option(
        None, "--end", metavar="DATE", help="Last UTC day, included (default: start)."
    ),
    kind: str = typer.Option(
        "trades", "--kind", metavar="KIND", help="trades, aggTrades (binance) or klines."
    ),
    interval: str = typer.Option(
        "1m", "--interval", metavar="INTERVAL", help="Kline length (with --kind klines)."
    ),
    output: Path = typer.Option(  # noqa: B008
        Path("data"), "--output", "-o", metavar="DIR", help="Folder for the CSV files."
    ),
    source: str = typer.Option(
        "auto",
        "--source",
        metavar="SOURCE",
        help="auto (archives for finished days, the REST API for today), archive or rest.",
    ),
    base_url: str = typer.Option(
        BASE_URL, "--base-url", metavar="URL", help="Archive server (a mirror)."
    ),
    rest_url: str | None = typer.Option(
        None,
        "--rest-url",
        metavar="URL",
        help=f"REST API server (a mirror); default: {REST_URL} for binance, "
        "ccxt's URLs for the others.",
    ),
) -> None:
    """Download daily history (archives, the REST API, or ccxt; resumable, gaps
    reported) as CSV that backtest reads."""
    if venue not in VENUES:
        raise UsageProblem(f"--venue {venue}: download covers {', '.join(VENUES)}")
    if venue != "binance":
        _ccxt_download(venue, symbols, start, end, kind, interval, output, source, rest_url)
        return
    if kind not in KINDS:
        raise UsageProblem(f"--kind {kind}: use one of {', '.join(KINDS)}")
    if kind == "klines" and interval not in INTERVALS:
        raise UsageProblem(f"--interval {interval}: use one of {', '.join(sorted(INTERVALS))}")
    if source not in SOURCES:
        raise UsageProblem(f"--source {source}: use one of {', '.join(SOURCES)}")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    if not names:
        raise UsageProblem("--symbols: give at least one symbol, e.g. BTCUSDT")
    for s in names:
        if not SYMBOL.match(s):
            raise UsageProblem(
                f"--symbols {s}: a Binance symbol is letters and digits, e.g. BTCUSDT"
            )
    days = _days(start, end, source == "archive")
    _check_url(base_url, "--base-url")
    _check_url(rest_url, "--rest-url")
    _output(output)
    console = Console(soft_wrap=True, highlight=False)
    today = datetime.now(UTC).date()

    async def main() -> tuple[list[Day], list[DaySource]]:
        archive = History(base_url)
        rest = RestHistory(rest_url or REST_URL)

        def source_of(d: date) -> DaySource:
            if source == "rest" or (source == "auto" and d >= today):
                return rest
            return archive

        try:
            got = await download(source_of, kind, names, days, output, interval, _shown(console))
            return got, [archive, rest]
        finally:
            await archive.close()
            await rest.close()

    try:
        got, sources = run_async(main())
    except HistoryError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(1) from None
    summarize(got, output, sources, console)


def _check_url(url: str | None, flag: str) -> None:
    if url is None:
        return
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UsageProblem(f"{flag} {url}: use http(s)://host[:port]")


def _output(output: Path) -> None:
    if not output.is_dir():
        if output.exists() or not output.parent.is_dir():
            raise UsageProblem(f"--output {output}: not a folder (its parent must exist)")
        output.mkdir()


def _ccxt_download(
    venue: str,
    symbols: str,
    start: str,
    end: str | None,
    kind: str,
    interval: str,
    output: Path,
    source: str,
    rest_url: str | None,
) -> None:
    """The same download through ccxt: its checks, then the same loop,
    progress lines and summary as Binance's."""
    spec = CCXT_VENUES[venue]
    if kind not in CCXT_KINDS:
        raise UsageProblem(
            f"--kind {kind}: use one of {', '.join(CCXT_KINDS)} with --venue {venue}"
        )
    if kind == "trades" and not spec.trades:
        instead = "" if spec.no_klines else "download klines, or "
        raise UsageProblem(
            f"--venue {venue} --kind trades: {spec.no_trades}; "
            f"{instead}record trades with tradewind record"
        )
    if kind == "klines" and spec.no_klines:
        instead = "download trades" if spec.trades else "record it with tradewind record"
        raise UsageProblem(f"--venue {venue} --kind klines: {spec.no_klines}; {instead}")
    if source not in ("auto", "rest"):
        raise UsageProblem(f"--source {source}: {venue} has no archives; use --source rest")
    if kind == "klines" and interval not in INTERVAL_MS:
        raise UsageProblem(f"--interval {interval}: use one of {', '.join(INTERVAL_MS)}")
    names = [s.strip() for s in symbols.split(",") if s.strip()]
    if not names:
        raise UsageProblem("--symbols: give at least one symbol, e.g. BTC/USDT")
    for s in names:
        if not MARKET.match(s):
            raise UsageProblem(f"--symbols {s}: use BTC/USDT, BTC-USDT or BTCUSDT")
    days = _days(start, end, archive_only=False)
    if kind == "trades" and spec.trades == "backward" and days[-1] >= datetime.now(UTC).date():
        raise UsageProblem(
            f"--end {days[-1]}: {venue} pages trades back from a day's end, so only finished "
            "days; end yesterday at the latest"
        )
    _check_url(rest_url, "--rest-url")
    try:
        history = CcxtHistory(venue, rest_url)
    except ConfigError:
        raise UsageProblem(
            f"--venue {venue} downloads through ccxt, which is not installed: "
            "pip install 'tradewind[ccxt]'"
        ) from None
    if kind == "klines" and interval not in history.client.timeframes:
        raise UsageProblem(
            f"--interval {interval}: {venue} has {', '.join(history.client.timeframes)}"
        )
    _output(output)
    console = Console(soft_wrap=True, highlight=False)

    async def main() -> list[Day]:
        try:
            return await download(
                lambda _: history, kind, names, days, output, interval, _shown(console)
            )
        finally:
            await history.close()

    try:
        got = run_async(main())
    except HistoryError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(1) from None
    summarize(got, output, [history], console)
