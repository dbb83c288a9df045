"""How a Bybit v5 recording is recognised, spot against linear, line by line.

Spot and linear use the same topic names, so a line says "linear" by what only
derivatives send: ``orderbook.500``, a ticker with ``markPrice`` /
``fundingRate`` / ``openInterest``, a trade with its tick direction ``L``, a
perpetual or dated symbol (``BTCPERP``, ``BTC-26DEC25``), or a book level
priced at the tick's precision (``"65114.20"``: spot trims trailing zeros).
It says "spot" by a ticker with ``usdIndexPrice`` or a trade without ``L``.

A Bybit line that says neither (a ``kline``, most book deltas) is claimed by
both, so a file made only of such lines (a kline-only recording) is refused as
ambiguous, naming both, rather than guessed: spot and linear differ in what a
quantity means, and a wrong guess would not show.
"""

from __future__ import annotations

import re

from tradewind.exchanges.common.detect import MINE, NOT_MINE, SILENT

_TOPIC = re.compile(rb'"topic":"([A-Za-z]+)\.(?:[^".]+\.)?([A-Z0-9-]+)"')
_TRAILING_ZERO_PRICE = re.compile(rb'\["\d+\.\d*0"')
_DERIVATIVE_TICKER = (b'"markPrice"', b'"fundingRate"', b'"openInterest"')


def _topic(line: bytes) -> tuple[bytes, bytes] | None:
    if b'"topic":"' not in line[:80]:
        return None
    m = _TOPIC.search(line, 0, 120)
    return (m.group(1), m.group(2)) if m else (b"", b"")


def _linear(line: bytes, channel: bytes, symbol: bytes) -> bool | None:
    """True: only linear sends this; False: only spot does; None: either."""
    if symbol.endswith(b"PERP") or b"-" in symbol or b'"topic":"orderbook.500.' in line[:40]:
        return True
    if channel == b"tickers":
        if any(m in line for m in _DERIVATIVE_TICKER):
            return True
        return False if b'"usdIndexPrice"' in line else None
    if channel == b"publicTrade":
        return b'"L":"' in line
    if channel == b"orderbook" and _TRAILING_ZERO_PRICE.search(line):
        return True
    return None


def recognise_spot(line: bytes) -> int:
    topic = _topic(line)
    if topic is None:
        return NOT_MINE if b'"arg":' in line else SILENT
    return NOT_MINE if _linear(line, *topic) else MINE


def recognise_linear(line: bytes) -> int:
    topic = _topic(line)
    if topic is None:
        return NOT_MINE if b'"arg":' in line else SILENT
    return NOT_MINE if _linear(line, *topic) is False else MINE
