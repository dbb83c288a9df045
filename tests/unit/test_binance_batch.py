"""The Binance trade fast paths against the generic path they shortcut."""

from __future__ import annotations

import pytest

from tests.conftest import market_file
from tradewind.exchanges.binance import BinanceParser

TRADES = "binance_spot_btcusdt_trades_20240808.jsonl"


def _lines(name: str) -> list[bytes]:
    return [line.strip() for line in market_file(name).read_bytes().splitlines() if line.strip()]


def _trade(
    body: str = '"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,'
    '"p":"61837.63","q":"0.02","T":1723161255342,"m":true,"M":true',
) -> bytes:
    return b'{"stream":"btcusdt@trade","data":{' + body.encode() + b"}}"


# Trades off the fast decoder's track: it refuses a missing or zero ``E`` and a
# non-boolean ``M``, and is only slower on keys out of Binance's order.
ODD_TRADES = [
    _trade('"e":"trade","s":"BTCUSDT","t":7,"p":"1.5","q":"2","T":1723161255342,"m":false'),
    _trade('"e":"trade","E":0,"s":"BTCUSDT","t":7,"p":"1.5","q":"2","T":1723161255342,"m":true'),
    _trade('"e":"trade","E":5,"s":"BTCUSDT","t":7,"p":"1.5","q":"2","T":4,"m":true,"M":"x"'),
    _trade('"s":"ETHUSDT","m":true,"q":"2","p":"1.5","T":9,"t":8,"E":10,"e":"trade"'),
]


def test_fast_trade_path_equals_the_generic_path_on_the_recording() -> None:
    fast, generic = BinanceParser(), BinanceParser()
    for frame in _lines(TRADES):
        assert fast.parse(frame, 7) == generic.decode(frame, 7)
        assert fast.last_ts_ms == generic.last_ts_ms
    assert fast.last_ts_ms == 1723161601271


@pytest.mark.parametrize("frame", ODD_TRADES)
def test_odd_trades_parse_as_on_the_generic_path(frame: bytes) -> None:
    fast, generic = BinanceParser(), BinanceParser()
    (event,) = fast.parse(frame, 3)
    assert [event] == generic.decode(frame, 3)
    assert fast.last_ts_ms == generic.last_ts_ms
