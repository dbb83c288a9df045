"""Market data events stay out of the cyclic collector, on the same wire format."""

from __future__ import annotations

import gc

import msgspec
import pytest

from tradewind.events import Bar, BookDelta, Event, Quote, Side, Trade, decode, encode

TRADE = Trade(
    id="binance:BTCUSDT:t1",
    ts_event=1_000,
    exchange="binance",
    symbol="BTCUSDT",
    price=61837.63,
    qty=0.01,
    side=Side.SELL,
    trade_id="1",
    ts_recv=2_000,
)
QUOTE = Quote(
    id="binance:BTCUSDT:q7",
    ts_event=1_000,
    exchange="binance",
    symbol="BTCUSDT",
    bid=1.0,
    bid_qty=2.0,
    ask=1.5,
    ask_qty=3.0,
    ts_recv=2_000,
    update_id=7,
)
BOOK = BookDelta(
    id="binance:BTCUSDT:d9",
    ts_event=1_000,
    exchange="binance",
    symbol="BTCUSDT",
    bids=[(1.0, 2.0)],
    asks=[(1.5, 0.0)],
    snapshot=False,
    first_update_id=8,
    last_update_id=9,
    ts_recv=2_000,
)
BAR = Bar(
    id="binance:BTCUSDT:k1m:0",
    ts_event=60_000_000_000,
    exchange="binance",
    symbol="BTCUSDT",
    interval_s=60.0,
    ts_open=0,
    open=1.0,
    high=2.0,
    low=0.5,
    close=1.5,
    volume=10.0,
    trades=3,
    ts_recv=2_000,
)

# The msgpack arrays these events were encoded as before they left the collector
# (the keyword-only ``id`` and ``ts_event`` of the base come last).
WIRE: list[tuple[Event, list[object]]] = [
    (TRADE, ["trade", "binance", "BTCUSDT", 61837.63, 0.01, "sell", "1", 2_000, TRADE.id, 1_000]),
    (QUOTE, ["quote", "binance", "BTCUSDT", 1.0, 2.0, 1.5, 3.0, 2_000, 7, QUOTE.id, 1_000]),
    (
        BOOK,
        [
            "book",
            "binance",
            "BTCUSDT",
            [[1.0, 2.0]],
            [[1.5, 0.0]],
            False,
            8,
            9,
            2_000,
            None,
            BOOK.id,
            1_000,
        ],
    ),
    (
        BAR,
        [
            "bar",
            "binance",
            "BTCUSDT",
            60.0,
            0,
            1.0,
            2.0,
            0.5,
            1.5,
            10.0,
            3,
            2_000,
            BAR.id,
            60_000_000_000,
        ],
    ),
]


@pytest.mark.parametrize(("event", "wire"), WIRE, ids=lambda v: type(v).__name__)
def test_market_events_are_untracked_and_encode_as_before(event: Event, wire: list[object]) -> None:
    assert not gc.is_tracked(event)
    assert encode(event) == msgspec.msgpack.encode(wire)
    back = decode(encode(event))
    assert back == event
    assert not gc.is_tracked(back)


def test_decoded_and_replaced_events_are_untracked() -> None:
    decoded = msgspec.json.decode(msgspec.json.encode(TRADE), type=Trade)
    assert decoded == TRADE
    assert not gc.is_tracked(decoded)
    assert not gc.is_tracked(msgspec.structs.replace(TRADE, ts_recv=3))
