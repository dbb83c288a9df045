"""Options ``run`` and ``backtest`` share: one name, one short flag, one
metavar and one meaning in both commands, and the turning of their values
into a run's inputs (data files, strategy parameters, settings)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer

from tradewind.cli.checks import DataFile, check_strategy, known_format, positive, probe_data
from tradewind.cli.errors import UsageProblem
from tradewind.exchanges.replay import bundled_recording

DATA_HELP = (
    "Recorded data: exchange JSONL, or CSV of trades or bars (repeatable); format, symbol "
    "and bar length are detected from the file's columns or name. A folder written by "
    "tradewind export (Parquet) replays as well."
)


def data_option(default: Any, help_text: str = DATA_HELP) -> Any:
    return typer.Option(default, "--data", "-d", metavar="FILE", help=help_text)


STRATEGY = typer.Option(
    "ema_cross",
    "--strategy",
    "-s",
    metavar="NAME|FILE.py:CLASS|MODULE:CLASS",
    help="Strategy: a built-in or plug-in name (see 'tradewind strategies'), "
    "path/to/file.py:ClassName or package.module:ClassName.",
)
PARAM = typer.Option(
    [], "--param", "-p", metavar="KEY=VALUE", help="Strategy parameter (repeatable)."
)
SET = typer.Option(
    [],
    "--set",
    metavar="SECTION.KEY=VALUE",
    help="Any setting, e.g. risk.max_position=1 (repeatable; see the README's Configuration).",
)
FAST = typer.Option(None, "--fast", metavar="BARS", help="Shortcut for -p fast=BARS.")
SLOW = typer.Option(None, "--slow", metavar="BARS", help="Shortcut for -p slow=BARS.")
QUANTITY = typer.Option(None, "--quantity", metavar="QTY", help="Shortcut for -p quantity=QTY.")
BAR_INTERVAL = typer.Option(
    None,
    "--bar-interval",
    "--bar-length",
    metavar="SECONDS",
    help="Trade data: length of the bars the strategy builds. Bar data whose columns and "
    "name do not say: the length of the file's bars.",
)
FORMAT = typer.Option(
    None, "--format", "-f", metavar="FORMAT", help="Data format; default: detected."
)
SYMBOL = typer.Option(
    None, "--symbol", metavar="SYMBOL", help="Symbol of CSV data whose name does not say it."
)
EXCHANGE = typer.Option(
    None,
    "--exchange",
    metavar="EXCHANGE",
    help="Exchange of CSV data; default: the venue the file name starts with "
    "(okx-BTCUSDT-…), else binance.",
)
DB_RUN = typer.Option(
    None,
    "--db",
    metavar="FILE|URL",
    help="SQLite file or postgresql:// URL to write; "
    "default: TRADEWIND_STORE__URL, else tradewind.db.",
)
DB_BACKTEST = typer.Option(
    None,
    "--db",
    metavar="FILE|URL",
    help="Also write every event to this SQLite file or postgresql:// URL (slower).",
)
DB_READ = typer.Option(
    "tradewind.db",
    "--db",
    metavar="FILE|URL",
    help="SQLite file or postgresql:// URL written by run, backtest or trade.",
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress or point lines.")


def parse_params(items: list[str], flag: str = "--param") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def parse_sets(items: list[str]) -> dict[str, dict[str, str]]:
    """``risk.max_position=1`` → ``{"risk": {"max_position": "1"}}``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_params(items, "--set").items():
        section, dot, name = key.partition(".")
        if not dot or not section or not name:
            raise UsageProblem(f"--set {key}={value}: expected SECTION.KEY=VALUE")
        out.setdefault(section, {})[name] = value
    return out


def quantity_value(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        q = Decimal(value)
    except InvalidOperation:
        raise UsageProblem(f"--quantity {value}: use a positive number") from None
    if not q.is_finite() or not q > 0:
        raise UsageProblem(f"--quantity {value}: use a positive number")
    return value


def probe_all(
    data: list[Path] | None,
    fmt: str | None,
    symbol: str | None,
    exchange: str | None,
    bar_interval: float | None,
    default_bundled: bool,
) -> list[DataFile]:
    known_format(fmt)
    positive(bar_interval, "--bar-interval", "a positive number of seconds")
    paths = list(data or [])
    if not paths:
        if not default_bundled:
            raise UsageProblem("--data: give at least one recording")
        paths = [bundled_recording()]
    return [probe_data(p, fmt, symbol, exchange, bar_interval) for p in paths]


def strategy_params(
    strategy: str,
    param: list[str],
    files: list[DataFile],
    bar_interval: float | None,
    shortcuts: dict[str, Any],
) -> tuple[dict[str, Any], float | None]:
    """Effective parameters, and the bar length to read bar files with.

    On bar files the strategy takes the file's bars as they are
    (``bar_interval_s`` 0) and ``--bar-interval`` tells the file's bar length;
    on trade data ``--bar-interval`` is the length of the bars it builds.
    """
    params: dict[str, Any] = dict(parse_params(param))
    for key, value in shortcuts.items():
        if value is not None:
            params[key] = value
    bars_only = all(f.bars for f in files)
    if any(f.bars for f in files) and not bars_only:
        raise UsageProblem("--data: mix of bar files and trade data; replay one kind at a time")
    file_interval: float | None = None
    if bars_only:
        file_interval = bar_interval
        given = params.get("bar_interval_s")
        if given is not None:
            try:
                nonzero = float(given) != 0
            except ValueError:
                nonzero = True
            if nonzero:
                raise UsageProblem(
                    f"-p bar_interval_s={given}: bar files feed strategies their bars "
                    "as they are; use --bar-interval to give the files' bar length"
                )
        params["bar_interval_s"] = 0
    elif bar_interval is not None:
        params["bar_interval_s"] = bar_interval
    return check_strategy(strategy, params), file_interval
