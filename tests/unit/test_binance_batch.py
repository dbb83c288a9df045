"""The Binance trade fast paths, and ``parse_many``, against the paths they
shortcut: same events, same errors by reason, same state left behind."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import market_file
from tests.unit.test_parsers import EXPECTED
from tradewind.events import Event, Quote
from tradewind.exchanges.binance.parser import BinanceParser, BinanceUsdmParser
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.formats import detect_format

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


def _per_frame(parser: BinanceParser, frames: list[bytes]) -> tuple[list[Event], list[str]]:
    events: list[Event] = []
    errors: list[str] = []
    for frame in frames:
        try:
            events += parser.parse(frame, 5)
        except ParseError as exc:
            errors.append(str(exc))
    return events, errors


def _chunked(
    parser: BinanceParser, frames: list[bytes], size: int
) -> tuple[list[Event], list[str]]:
    events: list[Event] = []
    errors: list[ParseError] = []
    for i in range(0, len(frames), size):
        events += parser.parse_many(frames[i : i + size], 5, errors.append)
    return events, [str(e) for e in errors]


def _assert_same(frames: list[bytes], size: int, usdm: bool = False) -> list[str]:
    """``parse_many`` by chunks of ``size`` against ``parse``; the error texts."""
    make = BinanceUsdmParser if usdm else BinanceParser
    one, many = make(), make()
    expected = _per_frame(one, frames)
    assert _chunked(many, frames, size) == expected
    assert many.ignored == one.ignored
    assert many.last_ts_ms == one.last_ts_ms
    assert many.default_symbol == one.default_symbol
    return expected[1]


BINANCE_FILES = [
    name for name in sorted(EXPECTED) if EXPECTED[name][0] in ("binance", "binance-usdm")
]


@pytest.mark.parametrize("size", [1, 7, 1024])
@pytest.mark.parametrize("name", BINANCE_FILES)
def test_parse_many_equals_parse_on_every_binance_recording(name: str, size: int) -> None:
    path = market_file(name)
    usdm = detect_format(path) == "binance-usdm"
    frames = _lines(name)
    assert not _assert_same(frames, size, usdm)


def _t(
    tid: int, e_ms: int, symbol: str = "BTCUSDT", p: str = '"61837.63"', q: str = '"0.02"'
) -> bytes:
    return _trade(
        f'"e":"trade","E":{e_ms},"s":"{symbol}","t":{tid},"p":{p},"q":{q},'
        f'"T":{e_ms - 1},"m":{"true" if tid % 2 else "false"},"M":true'
    )


BOOK_TICKER = (
    b'{"stream":"btcusdt@bookTicker","data":{"u":50093239210,"s":"BTCUSDT",'
    b'"b":"61837.63","B":"1.5","a":"61837.64","A":"2.5"}}'
)
DEPTH = (
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,'
    b'"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87","0.0"]],'
    b'"a":[["61838.04","0.32332"]]}}'
)
KLINE_OPEN = (
    b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1723161255400,"s":"BTCUSDT",'
    b'"k":{"t":1723161240000,"T":1723161299999,"s":"BTCUSDT","i":"1m","o":"1","c":"2",'
    b'"h":"3","l":"0.5","v":"10","n":4,"x":false}}}'
)
MIXED = [
    _t(1, 1723161255343),
    _t(2, 1723161255350),
    _t(3, 1723161255351)[:-20],  # truncated
    _t(4, 1723161255360),
    _t(5, 1723161255361, p='"NaN"'),
    BOOK_TICKER,  # no time of its own: stamped with the latest frame's
    _t(6, 1723161255355),  # older than the one before
    _t(7, 1723161255370, q='"-0.5"'),
    DEPTH,
    b'{"stream":"btcusdt@weird","data":{}}',
    KLINE_OPEN,
    b'{"result":null,"id":1}',
    _t(8, 1723161255380, "ETHUSDT"),
    _t(9, 1723161255390, q='"inf"'),
    _t(10, 1723161255391, p='"0"'),
    b"",
    _t(11, 1723161255395),
]
MIXED_REASONS = [
    "malformed_json",
    "invalid_price",
    "invalid_qty",
    "unknown_stream",
    "invalid_qty",
    "invalid_price",
    "malformed_json",
]


@pytest.mark.parametrize("size", [1, 2, 5, len(MIXED)])
@pytest.mark.parametrize("lead", [0, 3])
def test_bad_frames_in_a_chunk_are_skipped_and_named_as_frame_by_frame(
    size: int, lead: int
) -> None:
    """``lead`` good trades first, so some chunks take the trade sweep first."""
    frames = [_t(100 + i, 1723161255000 + i) for i in range(lead)] + MIXED
    errors = _assert_same(frames, size)
    assert [e.split(":")[0] for e in errors] == MIXED_REASONS
    parser = BinanceParser()
    events = parser.parse_many(frames, 5, [].append)
    assert Counter(type(e).__name__ for e in events) == {
        "Trade": lead + 6,
        "Quote": 1,
        "BookDelta": 1,
    }
    assert parser.ignored == {"kline_open": 1, "subscription_ack": 1}
    quote = next(e for e in events if isinstance(e, Quote))
    assert quote.ts_event == 1723161255360 * 1_000_000


def test_trade_chunks_keep_the_latest_time_and_every_symbol() -> None:
    frames = [_t(1, 9_000), _t(2, 7_000, "ETHUSDT"), _t(3, 8_000), _t(4, 6_000)]
    _assert_same(frames, len(frames))
    parser = BinanceParser()
    first = parser.parse_many(frames[:2], 5, [].append)
    rest = parser.parse_many(frames[2:], 5, [].append)
    assert parser.last_ts_ms == 9_000
    assert [e.id for e in first + rest] == [
        "binance:BTCUSDT:t1",
        "binance:ETHUSDT:t2",
        "binance:BTCUSDT:t3",
        "binance:BTCUSDT:t4",
    ]
    assert parser.parse_many([], 5, [].append) == []
    assert parser.last_ts_ms == 9_000


def test_a_bad_trade_keeps_the_fast_path_and_another_stream_ends_it() -> None:
    """Performance state, not output: one corrupt trade in a trade recording
    must not send the rest of it down the generic path (~2x slower)."""
    parser = BinanceParser()
    for bad in (MIXED[2], MIXED[4], MIXED[7], MIXED[13]):
        with pytest.raises(ParseError):
            parser.parse(bad, 0)
        assert parser._trades_first
    parser.parse_many([MIXED[4], *MIXED[:2]], 0, [].append)
    assert parser._trades_first
    parser.parse_many([MIXED[0], BOOK_TICKER], 0, [].append)
    assert not parser._trades_first
