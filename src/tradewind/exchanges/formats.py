"""Registers every recorded message format Tradewind parses with replay, each
with a sniffer that recognises one line of it (``replay.detect_format`` tries
the latest registered first, so the narrower sniffers come last)."""

from __future__ import annotations

from tradewind.exchanges.binance import USDM, BinanceUsdmParser
from tradewind.exchanges.bybit import LINEAR, SPOT, BybitLinearParser, BybitParser
from tradewind.exchanges.coinbase import EXCHANGE as COINBASE
from tradewind.exchanges.coinbase import CoinbaseParser
from tradewind.exchanges.kraken import EXCHANGE as KRAKEN
from tradewind.exchanges.kraken import KrakenParser
from tradewind.exchanges.replay import register_format


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
