"""The registry of recorded message formats, and detection that refuses to guess.

Each format is declared once, with the recogniser its venue wrote (see
``common.detect``). ``detect_format`` asks every format about a sample of the
file's lines: a format is a candidate when it claims at least one line and no
line rules it out, and only a sole candidate is accepted. No candidate, or
more than one, stops with one line naming the known formats or the
candidates, and ``--format``. A format Tradewind knows but does not read is
recognised so that it is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Protocol, runtime_checkable

from tradewind.events import MarketEvent
from tradewind.exchanges.binance import detect as binance_detect
from tradewind.exchanges.binance.parser import (
    COINM,
    USDM,
    BinanceCoinmParser,
    BinanceParser,
    BinanceUsdmParser,
)
from tradewind.exchanges.bybit import detect as bybit_detect
from tradewind.exchanges.bybit.parser import LINEAR, SPOT, BybitLinearParser, BybitParser
from tradewind.exchanges.coinbase import detect as coinbase_detect
from tradewind.exchanges.coinbase.parser import EXCHANGE as COINBASE
from tradewind.exchanges.coinbase.parser import CoinbaseParser
from tradewind.exchanges.common.detect import MINE, NOT_MINE, Recognise
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.recording import open_recording
from tradewind.exchanges.kraken import detect as kraken_detect
from tradewind.exchanges.kraken.parser import EXCHANGE as KRAKEN
from tradewind.exchanges.kraken.parser import KrakenParser
from tradewind.exchanges.okx import detect as okx_detect
from tradewind.exchanges.okx.parser import EXCHANGE as OKX
from tradewind.exchanges.okx.parser import OkxParser

SAMPLE_LINES = 2000
"""Lines of a file detection reads (recordings start with acks and snapshots)."""

BINANCE_DEPTH_SNAPSHOT = "binance-depth-snapshot"
COINBASE_EXCHANGE = "coinbase-exchange"


class Parser(Protocol):
    exchange: str

    def parse(self, frame: bytes, ts_recv: int) -> list[MarketEvent]: ...


@runtime_checkable
class BatchParser(Parser, Protocol):
    """A parser that also takes a chunk of frames at once, as a replay reads
    them, and gives what ``parse`` frame by frame would; a frame that fails
    goes to ``on_error``. The replay hands it as many lines as its batch has
    room for, so with at most one event a frame its batches split exactly
    where they would line by line."""

    def parse_many(
        self, frames: Sequence[bytes], ts_recv: int, on_error: Callable[[ParseError], object]
    ) -> list[MarketEvent]: ...


class FormatError(ValueError):
    """A recording whose format cannot be told, or is not read: one line for the user."""


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    recognise: Recognise
    parser: Callable[[], Parser] | None
    unsupported: str = ""
    """Why a known format is not read, and what to record instead."""


FORMATS: dict[str, Format] = {}
PARSERS: dict[str, Callable[[], Parser]] = {}
"""Formats Tradewind reads, by name."""


def register_format(
    name: str,
    factory: Callable[[], Parser] | None,
    recognise: Callable[[bytes], int | bool],
    title: str = "",
    unsupported: str = "",
) -> None:
    """``recognise`` answers ``MINE``/``SILENT``/``NOT_MINE`` for a line (a
    bool answers ``MINE`` or ``SILENT``); ``factory`` None: known, not read."""

    def verdict(line: bytes) -> int:
        return int(recognise(line))

    usable = None if unsupported else factory
    FORMATS[name] = Format(name, title or name, verdict, usable, unsupported)
    if usable is not None:
        PARSERS[name] = usable


@dataclass
class Score:
    claimed: int = 0
    refused: int = 0


def score(lines: Iterable[bytes]) -> dict[str, Score]:
    """Every known format's claims and refusals over ``lines``."""
    scores = {name: Score() for name in FORMATS}
    formats = list(FORMATS.values())
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        for fmt in formats:
            verdict = fmt.recognise(line)
            if verdict == MINE:
                scores[fmt.name].claimed += 1
            elif verdict == NOT_MINE:
                scores[fmt.name].refused += 1
    return scores


def candidates(lines: Iterable[bytes]) -> list[str]:
    """Formats that claim some line and are ruled out by none, most claims first."""
    scores = score(lines)
    found = [n for n, s in scores.items() if s.claimed and not s.refused]
    return sorted(found, key=lambda n: -scores[n].claimed)


def _hint() -> str:
    return "pass --format NAME (run, backtest, fake-exchange)"


def detect_lines(lines: Iterable[bytes], where: str = "recording") -> str:
    found = candidates(lines)
    if not found:
        raise FormatError(
            f"{where}: not a recording format Tradewind knows "
            f"(known: {', '.join(PARSERS)}); if it is one of them, {_hint()}"
        )
    if len(found) > 1:
        raise FormatError(
            f"{where}: could be any of {', '.join(found)}; {_hint()} with the one it is"
        )
    return found[0]


def detect_format(path: Path) -> str:
    """The format of the recording at ``path``, or a ``FormatError``."""
    with open_recording(path) as fh:
        name = detect_lines(islice(fh, SAMPLE_LINES), str(path))
    return check_readable(name, str(path))


def check_readable(name: str, where: str = "recording") -> str:
    """``name`` if Tradewind reads it; a ``FormatError`` for an unknown or unread one."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise FormatError(f"unknown format {name!r}; known: {', '.join(PARSERS)}")
    if fmt.parser is None:
        raise FormatError(f"{where}: {fmt.title}, which Tradewind does not read; {fmt.unsupported}")
    return name


register_format("binance", BinanceParser, binance_detect.recognise_spot, "Binance spot streams")
register_format(
    USDM, BinanceUsdmParser, binance_detect.recognise_usdm, "Binance USD-M futures streams"
)
register_format(
    COINM,
    BinanceCoinmParser,
    binance_detect.recognise_coinm,
    "Binance COIN-M (inverse) futures streams",
)
register_format(
    BINANCE_DEPTH_SNAPSHOT,
    BinanceParser,
    binance_detect.recognise_depth_snapshot,
    "Binance REST depth snapshots (no symbol in the body)",
)
register_format(
    COINBASE, CoinbaseParser, coinbase_detect.recognise_advanced, "Coinbase Advanced Trade"
)
register_format(
    COINBASE_EXCHANGE,
    None,
    coinbase_detect.recognise_exchange,
    "a legacy Coinbase Exchange ws-feed recording (l2update/match)",
    unsupported="record Coinbase Advanced Trade (advanced-trade-ws.coinbase.com) instead",
)
register_format(KRAKEN, KrakenParser, kraken_detect.recognise, "Kraken spot WebSocket v1/v2")
register_format(SPOT, BybitParser, bybit_detect.recognise_spot, "Bybit v5 spot")
register_format(LINEAR, BybitLinearParser, bybit_detect.recognise_linear, "Bybit v5 linear")
register_format(OKX, OkxParser, okx_detect.recognise, "OKX v5 public")
