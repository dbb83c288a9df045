"""Checks that run before anything is created: data files, output paths,
numbers, strategy and parameters. Each failure is a ``UsageProblem`` naming
the flag, file or setting, so a refused run leaves nothing behind."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from tradewind.cli.errors import UsageProblem
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.recording import open_recording
from tradewind.exchanges.csv_source import (
    BAR_FORMATS,
    BASANA,
    CSV_FORMATS,
    UNKNOWN_SYMBOL,
    CsvParser,
    csv_parser_for,
)
from tradewind.exchanges.formats import BINANCE_DEPTH_SNAPSHOT, PARSERS, Parser, detect_format
from tradewind.storage import parquet

PROBE_LINES = 200
"""Lines of each data file parsed before a run: none of them parsing is an error."""
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class DataFile:
    path: Path
    fmt: str
    symbol: str
    exchange: str
    interval_s: float | None
    """Length of the file's bars (None: the file holds no bars)."""

    @property
    def bars(self) -> bool:
        return self.fmt in BAR_FORMATS

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.fmt,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "bar_interval_s": self.interval_s,
        }

    def describe(self) -> str:
        extra = f", {self.interval_s:g} s bars" if self.interval_s else ""
        return f"{self.path} ({self.fmt}, {self.exchange}:{self.symbol}{extra})"


def known_format(fmt: str | None) -> str | None:
    if fmt is not None and fmt not in PARSERS:
        raise UsageProblem(f"--format {fmt}: unknown format; known: {', '.join(sorted(PARSERS))}")
    return fmt


def positive(value: float | None, flag: str, what: str = "a positive number") -> float | None:
    if value is not None and not value > 0:
        raise UsageProblem(f"{flag} {value:g}: use {what}")
    return value


def _parser(
    path: Path, fmt: str, symbol: str | None, exchange: str | None, interval: float | None
) -> Parser:
    if fmt in CSV_FORMATS:
        return csv_parser_for(path, fmt, symbol, exchange, interval)
    return PARSERS[fmt]()


def _export_dir(path: Path, flag: str) -> DataFile:
    """A folder written by ``tradewind export`` (Parquet by table, day, symbol)."""
    found = parquet.files(path)
    if not found:
        raise UsageProblem(
            f"{flag} is a folder without a Parquet export in it: name a recording file, "
            "or a folder written by tradewind export"
        )
    symbols = sorted({f.parent.name.removeprefix("symbol=") for fs in found.values() for f in fs})
    return DataFile(path, "parquet", ",".join(symbols), "*", None)


def probe_data(
    path: Path,
    fmt: str | None = None,
    symbol: str | None = None,
    exchange: str | None = None,
    interval_s: float | None = None,
) -> DataFile:
    """Detect the format and parse the first lines: a file of which none
    parses is refused here rather than replayed into an empty run."""
    flag = f"--data {path}"
    if path.is_dir():
        return _export_dir(path, flag)
    if not path.is_file():
        raise UsageProblem(f"{flag}: no such file")
    try:
        with open_recording(path) as fh:
            head = b"".join(islice(fh, 256))[:65536]
    except (OSError, EOFError) as exc:
        raise UsageProblem(
            f"{flag}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if not head.strip():
        raise UsageProblem(f"{flag} is empty: give a recording (JSONL) or a CSV of trades or bars")
    if b"\x00" in head[:4096]:
        raise UsageProblem(f"{flag} is a binary file, not a recording: give JSONL or CSV text")
    if fmt is None:
        try:
            fmt = detect_format(path)
        except ValueError as exc:  # one line: the candidates, or the known formats
            raise UsageProblem(f"--data {exc}") from None
    if fmt == BINANCE_DEPTH_SNAPSHOT:
        # Bodies without a symbol: the replay pairs them with the stream beside them.
        return DataFile(path, fmt, symbol or "?", exchange or "binance", None)
    try:
        parser = _parser(path, fmt, symbol, exchange, interval_s)
    except ValueError as exc:
        raise UsageProblem(f"{flag}: {exc}") from None
    if isinstance(parser, CsvParser):
        if parser.symbol == UNKNOWN_SYMBOL:
            raise UsageProblem(f"{flag}: the file's name does not say its symbol; give --symbol")
        if fmt == BASANA and parser.interval_s is None:
            raise UsageProblem(
                f"{flag}: the file's name does not say its bar length; give --bar-interval SECONDS"
            )
    events = 0
    errors: Counter[str] = Counter()
    first_symbol = symbol
    bar_interval: float | None = None
    with open_recording(path) as fh:
        for line in islice(filter(None, map(bytes.strip, fh)), PROBE_LINES):
            try:
                parsed = parser.parse(line, 0)
            except ParseError as exc:
                errors[exc.reason] += 1
                continue
            except Exception as exc:  # a parser's bug on odd input is the file's problem here
                errors[type(exc).__name__] += 1
                continue
            events += len(parsed)
            for e in parsed:
                if first_symbol is None:
                    first_symbol = getattr(e, "symbol", None)
                if bar_interval is None:
                    bar_interval = getattr(e, "interval_s", None)
    if not events:
        why = ", ".join(f"{k} {v}" for k, v in errors.most_common(3)) or "no market events"
        raise UsageProblem(
            f"{flag}: none of the first {PROBE_LINES} lines parse as {fmt} ({why}); "
            "check the file or --format"
        )
    ex = exchange or getattr(parser, "exchange", "") or fmt
    return DataFile(path, fmt, first_symbol or "?", ex, bar_interval)


def _writable_folder(folder: Path, flag: str) -> None:
    if not folder.exists():
        raise UsageProblem(f"{flag}: folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise UsageProblem(f"{flag}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageProblem(f"{flag}: folder {folder} is not writable; choose another path")


def check_db_path(path: Path, flag: str = "--db") -> None:
    """A SQLite file that can be created or written, in a folder that exists."""
    where = f"{flag} {path}"
    if path.is_dir():
        raise UsageProblem(f"{where} is a folder: name a file, e.g. {path / 'tradewind.db'}")
    _writable_folder(path.absolute().parent, where)
    if path.exists():
        if not os.access(path, os.W_OK):
            raise UsageProblem(f"{where} is read-only: make it writable or choose another --db")
        with path.open("rb") as fh:
            head = fh.read(16)
        if head and head != _SQLITE_MAGIC:
            raise UsageProblem(f"{where} is not a SQLite database: choose another --db")


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """An output folder that exists and is writable, or can be made in one."""
    where = f"{flag} {path}"
    if path.exists():
        if not path.is_dir():
            raise UsageProblem(f"{where} is a file: name a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageProblem(f"{where} is not writable: choose another folder")
        return
    _writable_folder(path.absolute().parent, where)


def check_strategy(name: str, params: dict[str, Any], flag: str = "--strategy") -> dict[str, Any]:
    """Validated parameters (JSON-ready), after building one instance: a
    strategy that refuses its parameters (fast >= slow) does so here."""
    from tradewind.strategies import StrategyContext, build_params, strategy_class

    try:
        cls = strategy_class(name)
        p = build_params(name, params)
    except ValueError as exc:
        raise UsageProblem(f"{flag} {name}: {exc}") from None
    try:
        cls(p, StrategyContext(cls.name, "check", "CHECK"))
    except Exception as exc:
        raise UsageProblem(
            f"strategy {name} refuses its parameters: {exc} (set them with -p KEY=VALUE)"
        ) from None
    dumped: dict[str, Any] = p.model_dump(mode="json")
    return dumped
