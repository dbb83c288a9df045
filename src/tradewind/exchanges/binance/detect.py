"""How a Binance recording is recognised, line by line (see ``common.detect``).

Spot, USD-M and COIN-M send the same stream names; what tells them apart is
what only the futures send (``pu`` on depth, ``X`` on trades, an event type on
``bookTicker``), what only spot sends (``M`` on trades, depth without ``pu``,
``bookTicker`` without an event type), and COIN-M's symbols, which are
``<coin>USD_PERP`` or ``<coin>USD_<yymmdd>`` (USD-M's deliveries are ``…USDT_…``).
"""

from __future__ import annotations

import re

from tradewind.exchanges.common.detect import MINE, NOT_MINE, SILENT

_COINM = re.compile(
    rb'"(?:s|symbol|stream)":"[A-Za-z0-9]+(?:USD|usd)_(?:PERP|perp|\d{6})|"ps":"[A-Z0-9]+USD"'
)
_FUTURES = (b'"pu":', b'"X":"MARKET"', b'"X":"INSURANCE_FUND"', b'"e":"bookTicker"')


def is_stream(line: bytes) -> bool:
    return line.startswith((b'{"stream":"', b'{"e":"'))


def is_coinm(line: bytes) -> bool:
    return _COINM.search(line[:160]) is not None


def _futures_only(line: bytes) -> bool:
    return any(m in line for m in _FUTURES)


def _spot_only(line: bytes) -> bool:
    if b'"e":"depthUpdate"' in line:
        return b'"pu":' not in line
    if b'"e":"trade"' in line:
        return b'"M":' in line
    return b"@bookTicker" in line[:64] and b'"e":"bookTicker"' not in line


def recognise_spot(line: bytes) -> int:
    if not is_stream(line):
        return SILENT
    if is_coinm(line) or _futures_only(line):
        return NOT_MINE
    return MINE


def recognise_usdm(line: bytes) -> int:
    if not is_stream(line):
        return SILENT
    if is_coinm(line) or _spot_only(line):
        return NOT_MINE
    return MINE if _futures_only(line) else SILENT


def recognise_coinm(line: bytes) -> int:
    if is_stream(line) or (line.startswith(b'{"lastUpdateId"') and b'"symbol":"' in line):
        return MINE if is_coinm(line) else NOT_MINE
    return SILENT


def recognise_depth_snapshot(line: bytes) -> int:
    """REST depth bodies alone (``/api/v3/depth``, ``/fapi/v1/depth``): they do
    not name their symbol, so the stream file beside them must."""
    if line.startswith(b'{"lastUpdateId"') and b'"symbol":"' not in line:
        return MINE
    return NOT_MINE
