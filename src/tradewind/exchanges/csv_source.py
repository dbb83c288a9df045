"""CSV market data as replay formats: trades and bars next to the JSONL recordings.

Four layouts are recognised, each with or without its header row:

- ``binance_kline_csv``: data.binance.vision klines, 12 columns
  (open_time, o, h, l, c, volume, close_time, quote_volume, trades, …) → ``Bar``;
- ``binance_trades_csv``: data.binance.vision trades, 7 columns
  (id, price, qty, quote_qty, time, is_buyer_maker, is_best_match) → ``Trade``;
- ``binance_aggtrades_csv``: data.binance.vision aggTrades, 8 columns → ``Trade``;
- ``basana_bars_csv``: basana's bar export, ``datetime,open,high,low,close,volume`` → ``Bar``.

The files do not name their symbol (nor basana's files their bar length), so a
parser takes them as options; ``CsvReplaySource`` derives them from the file
name when they are not given (``binance_spot_btcusdt_1d_2020.csv`` → BTCUSDT,
1 day), and the exchange from a name that starts with one (``tradewind
download`` writes ``okx-BTCUSDT-trades-2022-05-13.csv``; default binance). A
parser built from the registry alone, without a path, uses ``UNKNOWN_SYMBOL``.
Exchange timestamps may be milliseconds or, as in newer data.binance.vision
files, microseconds; both become nanoseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from tradewind.clock import ReplayClock
from tradewind.events import Bar, MarketEvent, Side, Trade
from tradewind.exchanges.common.book import price, quantity
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.formats import PARSERS, Parser, register_format
from tradewind.exchanges.replay import ReplaySource

KLINE = "binance_kline_csv"
TRADES = "binance_trades_csv"
AGG_TRADES = "binance_aggtrades_csv"
BASANA = "basana_bars_csv"
CSV_FORMATS = (KLINE, TRADES, AGG_TRADES, BASANA)
BAR_FORMATS = frozenset({KLINE, BASANA})

UNKNOWN_SYMBOL = "UNKNOWN"
DEFAULT_EXCHANGE = "binance"

_NS_PER_MS = 1_000_000
_NS_PER_US = 1_000
_US_THRESHOLD = 100_000_000_000_000
"""Epoch values at or above this are microseconds (ms reach it only in year 5138)."""

_BASANA_HEADER = b"datetime,open,high,low,close,volume"
_HEADERS = {
    KLINE: b"open_time,",
    TRADES: b"id,price,",
    AGG_TRADES: b"agg_trade_id,",
    BASANA: _BASANA_HEADER,
}
_COLUMNS = {KLINE: 12, TRADES: 7, AGG_TRADES: 8}
_INTERVAL_LABELS = {
    1: "1s",
    60: "1m",
    180: "3m",
    300: "5m",
    900: "15m",
    1800: "30m",
    3600: "1h",
    7200: "2h",
    14400: "4h",
    21600: "6h",
    28800: "8h",
    43200: "12h",
    86400: "1d",
    604800: "1w",
}
_INTERVAL_WORDS = {
    "day": 86400,
    "daily": 86400,
    "hour": 3600,
    "hourly": 3600,
    "minute": 60,
    "week": 604800,
}
NAMED_EXCHANGES = frozenset({"binance", "okx", "bybit", "coinbase", "kraken"})
"""Venues a CSV name may start with (those ``tradewind download`` writes)."""
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "USD", "TRY")
_BOOL = {b"true": True, b"false": False, b"True": True, b"False": False}


def _ns(value: bytes) -> int:
    """Epoch ms or µs → ns."""
    try:
        v = int(value)
    except ValueError:
        raise ParseError("invalid_time", value[:40].decode(errors="replace")) from None
    if v <= 0:
        raise ParseError("invalid_time", str(v))
    return v * (_NS_PER_US if v >= _US_THRESHOLD else _NS_PER_MS)


def _int(value: bytes, reason: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ParseError(reason, value[:40].decode(errors="replace")) from None


def _text(value: bytes) -> str:
    return value.decode(errors="replace")


def _is_int(field: bytes) -> bool:
    return field.isdigit()


def _sniff(fmt: str) -> Callable[[bytes], bool]:
    header = _HEADERS[fmt]

    def sniff(line: bytes) -> bool:
        if line.startswith(header):
            return True
        if fmt == BASANA:
            return False
        fields = line.rstrip(b"\r\n").split(b",")
        if len(fields) != _COLUMNS[fmt] or not _is_int(fields[0]):
            return False
        if fmt == KLINE:
            return _is_int(fields[6]) and _is_int(fields[8])
        if fmt == TRADES:
            return _is_int(fields[4]) and fields[5] in _BOOL
        return _is_int(fields[5]) and fields[6] in _BOOL

    return sniff


def interval_label(interval_s: float) -> str:
    """Binance's name for a kline interval, so CSV bar ids match streamed ones."""
    return _INTERVAL_LABELS.get(int(interval_s), f"{interval_s:g}s")


class CsvParser:
    """One CSV layout, for one symbol; header rows and blank lines yield nothing."""

    def __init__(
        self,
        fmt: str,
        symbol: str = UNKNOWN_SYMBOL,
        exchange: str = DEFAULT_EXCHANGE,
        interval_s: float | None = None,
    ) -> None:
        if fmt not in CSV_FORMATS:
            raise ValueError(f"unknown CSV format {fmt!r}; known: {', '.join(CSV_FORMATS)}")
        if interval_s is not None and not interval_s > 0:
            raise ValueError("bar interval must be positive")
        self.fmt = fmt
        self.symbol = symbol
        self.exchange = exchange
        self.interval_s = interval_s
        self._header = _HEADERS[fmt]
        self._columns = _COLUMNS.get(fmt, 6)

    def parse(self, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        if frame.startswith(self._header):
            return []
        fields = frame.rstrip(b"\r\n").split(b",")
        if len(fields) != self._columns:
            raise ParseError("invalid_columns", f"{len(fields)} columns, expected {self._columns}")
        fmt = self.fmt
        if fmt == KLINE:
            return [self._kline(fields, ts_recv)]
        if fmt == BASANA:
            return [self._basana(fields, ts_recv)]
        return [self._trade(fields, ts_recv, agg=fmt == AGG_TRADES)]

    def _kline(self, f: list[bytes], ts_recv: int) -> Bar:
        ts_open = _ns(f[0])
        ts_close = _ns(f[6])
        unit = _NS_PER_US if int(f[6]) >= _US_THRESHOLD else _NS_PER_MS
        ts_end = ts_close + unit
        if ts_end <= ts_open:
            raise ParseError("invalid_time", "close_time before open_time")
        interval = self.interval_s or (ts_end - ts_open) / 1e9
        return self._bar(
            ts_open,
            ts_end,
            interval,
            f[1:6],
            _int(f[8], "invalid_count"),
            ts_recv,
            open_ms=ts_open // _NS_PER_MS,
        )

    def _basana(self, f: list[bytes], ts_recv: int) -> Bar:
        try:
            opened = datetime.strptime(_text(f[0]), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise ParseError("invalid_time", _text(f[0][:40])) from None
        interval = self.interval_s or 86400.0
        ts_open = int(opened.timestamp()) * 1_000_000_000
        return self._bar(
            ts_open,
            ts_open + int(interval * 1e9),
            interval,
            f[1:6],
            0,
            ts_recv,
            open_ms=ts_open // _NS_PER_MS,
        )

    def _bar(
        self,
        ts_open: int,
        ts_end: int,
        interval_s: float,
        ohlcv: list[bytes],
        trades: int,
        ts_recv: int,
        open_ms: int,
    ) -> Bar:
        o, h, lo, c = (price(_text(x)) for x in ohlcv[:4])
        if not (lo <= min(o, c) and h >= max(o, c)):
            raise ParseError("invalid_bar", f"o={o} h={h} l={lo} c={c}")
        return Bar(
            id=f"{self.exchange}:{self.symbol}:k{interval_label(interval_s)}:{open_ms}",
            ts_event=ts_end,
            exchange=self.exchange,
            symbol=self.symbol,
            interval_s=float(interval_s),
            ts_open=ts_open,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=quantity(_text(ohlcv[4])),
            trades=trades,
            ts_recv=ts_recv,
        )

    def _trade(self, f: list[bytes], ts_recv: int, *, agg: bool) -> Trade:
        tid = _int(f[0], "invalid_id")
        ts = _ns(f[5] if agg else f[4])
        maker = _BOOL.get(f[6] if agg else f[5])
        if maker is None:
            raise ParseError("invalid_side", _text((f[6] if agg else f[5])[:10]))
        trade_id = f"a{tid}" if agg else str(tid)
        return Trade(
            id=f"{self.exchange}:{self.symbol}:{'a' if agg else 't'}{tid}",
            ts_event=ts,
            exchange=self.exchange,
            symbol=self.symbol,
            price=price(_text(f[1])),
            qty=quantity(_text(f[2]), allow_zero=False),
            side=Side.SELL if maker else Side.BUY,
            trade_id=trade_id,
            ts_recv=ts_recv,
        )


def _tokens(path: Path) -> list[str]:
    return [t for t in re.split(r"[_\-.\s]+", path.name) if t]


def symbol_from_path(path: Path) -> str | None:
    """The first file-name token that reads as BASEQUOTE (``btcusdt``, ``ADABTC``)."""
    for token in _tokens(path):
        up = token.upper()
        if not up.isalnum() or up.isdigit():
            continue
        for q in _QUOTES:
            if up.endswith(q) and len(up) > len(q) and up[: -len(q)].isalpha():
                return up
    return None


def exchange_from_path(path: Path) -> str | None:
    """The venue a file name starts with (``okx-BTCUSDT-…``), if any."""
    tokens = _tokens(path)
    first = tokens[0].lower() if tokens else ""
    return first if first in NAMED_EXCHANGES else None


def interval_from_path(path: Path) -> float | None:
    """A bar length named in the file name (``1d``, ``15m``, ``day``)."""
    for token in _tokens(path):
        low = token.lower()
        if low in _INTERVAL_WORDS:
            return float(_INTERVAL_WORDS[low])
        m = re.fullmatch(r"(\d+)([smhdw])", low)
        if m:
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
            return float(int(m.group(1)) * unit)
    return None


def csv_parser_for(
    path: Path,
    fmt: str,
    symbol: str | None = None,
    exchange: str | None = None,
    interval_s: float | None = None,
) -> CsvParser:
    """A parser for one file; options not given are read from its name."""
    if fmt == BASANA and interval_s is None:
        interval_s = interval_from_path(path)
    return CsvParser(
        fmt,
        symbol or symbol_from_path(path) or UNKNOWN_SYMBOL,
        exchange or exchange_from_path(path) or DEFAULT_EXCHANGE,
        interval_s,
    )


class CsvReplaySource(ReplaySource):
    """A replay that builds CSV parsers per file (symbol, bar length from the name
    or the options), and every other format exactly as ``ReplaySource`` does."""

    def __init__(
        self,
        paths: Iterable[Path],
        speed: float = 0.0,
        clock: ReplayClock | None = None,
        fmt: str | None = None,
        *,
        symbol: str | None = None,
        exchange: str | None = None,
        interval_s: float | None = None,
    ) -> None:
        super().__init__(paths, speed=speed, clock=clock, fmt=fmt, symbol=symbol)
        self.exchange = exchange
        self.interval_s = interval_s

    @property
    def bars_only(self) -> bool:
        """Every file holds bars and nothing else (strategies must take them as given)."""
        return bool(self.formats) and all(f in BAR_FORMATS for f in self.formats)

    def _parser(self, path: Path, fmt: str) -> Parser:
        if fmt in CSV_FORMATS:
            return csv_parser_for(path, fmt, self.symbol, self.exchange, self.interval_s)
        return PARSERS[fmt]()


def _factory(fmt: str) -> Callable[[], Parser]:
    def make() -> Parser:
        return CsvParser(fmt)

    return make


def _register() -> None:
    for fmt in CSV_FORMATS:
        if fmt not in PARSERS:
            register_format(fmt, _factory(fmt), _sniff(fmt))


_register()
