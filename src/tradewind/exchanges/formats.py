"""The registry of recorded message formats: every one Tradewind parses, each
with a sniffer that recognises one line of it (``detect_format`` tries
the latest registered first, so the narrower sniffers come last)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from tradewind.events import MarketEvent
from tradewind.exchanges.binance.parser import USDM, BinanceParser, BinanceUsdmParser
from tradewind.exchanges.bybit.parser import LINEAR, SPOT, BybitLinearParser, BybitParser
from tradewind.exchanges.coinbase.parser import EXCHANGE as COINBASE
from tradewind.exchanges.coinbase.parser import CoinbaseParser
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.recording import open_recording
from tradewind.exchanges.kraken.parser import EXCHANGE as KRAKEN
from tradewind.exchanges.kraken.parser import KrakenParser


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


PARSERS: dict[str, Callable[[], Parser]] = {"binance": BinanceParser}
"""Recorded formats by name; the feed modules register theirs here."""

_SIGNATURES: list[tuple[str, Callable[[bytes], bool]]] = [
    ("binance", lambda line: b'"stream"' in line[:40] or b"lastUpdateId" in line[:40]),
]


def register_format(
    name: str, factory: Callable[[], Parser], sniff: Callable[[bytes], bool]
) -> None:
    PARSERS[name] = factory
    _SIGNATURES.append((name, sniff))


def detect_format(path: Path) -> str:
    with open_recording(path) as fh:
        for _, line in zip(range(200), fh, strict=False):
            for name, sniff in reversed(_SIGNATURES):
                if sniff(line):
                    return name
    raise ValueError(f"{path}: not a recording format Tradewind knows ({', '.join(PARSERS)})")


def _kraken(line: bytes) -> bool:
    if line.startswith(b"["):
        return True
    head = line[:48]
    return (
        b'"connectionID"' in head
        or b'"event":"' in head
        or (line.startswith(b'{"channel":"') and b'"sequence_num"' not in line)
        or line.startswith(b'{"method":"')
    )


def _coinbase(line: bytes) -> bool:
    return line.startswith(b'{"channel":"') and b'"sequence_num"' in line


def _bybit(line: bytes) -> bool:
    return b'"topic":"' in line[:48] or (b'"op":"' in line and b'"conn_id"' in line)


def _bybit_linear(line: bytes) -> bool:
    return b'"topic":"tickers.' in line[:48] and (
        b'"markPrice"' in line or b'"fundingRate"' in line
    )


def _binance_usdm(line: bytes) -> bool:
    return line.startswith(b'{"stream":"') and (
        b'"pu":' in line or b'"X":"MARKET"' in line or b'"e":"bookTicker"' in line
    )


register_format(KRAKEN, KrakenParser, _kraken)
register_format(COINBASE, CoinbaseParser, _coinbase)
register_format(SPOT, BybitParser, _bybit)
register_format(LINEAR, BybitLinearParser, _bybit_linear)
register_format(USDM, BinanceUsdmParser, _binance_usdm)
