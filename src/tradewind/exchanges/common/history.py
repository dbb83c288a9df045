"""What every history downloader shares, whichever venue or library it
reads (Binance's archives and REST API, ccxt): the CSV layouts ``run`` and
``backtest`` detect from their header row, the per-day result, and the file
helpers that make a day resumable (rows go into ``<name>.partial.csv`` and a
rerun continues after its last whole row)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

HEADERS = {
    "trades": "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match",
    "aggTrades": (
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
        "is_buyer_maker,is_best_match"
    ),
    "klines": (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore"
    ),
}

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


class HistoryError(RuntimeError):
    """A download that cannot go on; the message is one line for the user."""


@dataclass
class Day:
    symbol: str
    day: date
    status: str
    """downloaded, present (finished by an earlier run), missing (not
    published, or no row at all) or partial (the day is not over yet)."""
    path: Path | None = None
    rows: int = 0
    resumed: bool = False
    """Continued from a part left by a cut transfer (this run's or an earlier one's)."""
    source: str = "archive"
    holes: list[str] = field(default_factory=list)
    """Stretches the venue has no data for (missing kline intervals), exactly."""
    lost: list[str] = field(default_factory=list)
    """Rows the venue numbered but did not send (aggTrade id jumps), exactly."""
    until_ms: int | None = None
    """A partial day's last row time."""


class DaySource(Protocol):
    """Where days come from: the archives (``History``) or the REST API."""

    base_url: str
    throttled: int
    """Answers 429/418 (or the venue's rate-limit error) waited out."""
    retried: int
    """Requests retried after a 5xx or a cut connection."""
    weight_waits: int
    """Pauses before a request that would pass the venue's weight limit."""

    async def day(
        self, kind: str, symbol: str, day: date, out_dir: Path, interval: str = "1m"
    ) -> Day: ...


def day_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def clock_label(ms: int, step_ms: int = 60_000) -> str:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%H:%M:%S" if step_ms < 60_000 else "%H:%M")


def last_row(path: Path) -> list[str] | None:
    """The file's last whole row (a torn last line, left by a kill, is cut
    off first); None for a file with no row below its header."""
    with path.open("rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            f.truncate(end)
        lines = data[:end].splitlines()
    if len(lines) < 2:
        return None
    return lines[-1].decode().split(",")


def rows_in(path: Path) -> int:
    with path.open("rb") as f:
        return max(sum(1 for _ in f) - 1, 0)


def hole(result: Day, interval: str, start: int, end: int, step: int) -> None:
    """Klines from ``start`` to ``end`` (exclusive) the venue has none of."""
    n = (end - start) // step
    span = clock_label(start, step) + ("" if n == 1 else f"-{clock_label(end - step, step)}")
    result.holes.append(f"no {interval} kline for {span} ({n})")
