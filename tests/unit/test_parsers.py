"""Every recorded file parses with zero unexplained errors: each line becomes
events, or is ignored by a named rule (acks, heartbeats, open klines...)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import MARKET_DATA, market_file
from tradewind.exchanges.common.book import BookUpdate
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.formats import PARSERS, detect_format

# file → (format, events by kind, ignored messages by reason)
EXPECTED: dict[str, tuple[str, dict[str, int], dict[str, int]]] = {
    "binance_spot_btcusdt_combined_20240808.jsonl": (
        "binance",
        {"Quote": 4336, "Trade": 1119, "BookDelta": 525, "BookSnapshot": 1},
        {},
    ),
    "binance_spot_btcusdt_trades_20240808.jsonl": ("binance", {"Trade": 9757}, {}),
    "binance_usdm_btcusdt_combined_20240808.jsonl": (
        "binance-usdm",
        {"Quote": 1849, "Trade": 397, "BookDelta": 187, "BookSnapshot": 1},
        {},
    ),
    "binance_spot_4sym_ws_20210814.jsonl": (
        "binance",
        {"BookDelta": 546, "Quote": 412, "Trade": 28, "Bar": 2},
        {"kline_open": 15},
    ),
    # The REST bodies do not name their symbol; the live feed knows it from its request.
    "binance_spot_rest_depth_20210814.jsonl": (
        "binance-depth-snapshot",
        {},
        {"depth_snapshot_without_symbol": 4},
    ),
    "coinbase_advanced_ws_20260809.jsonl": (
        "coinbase",
        {"BookDelta": 773, "Quote": 160, "Trade": 279},
        {"heartbeat": 25, "candles": 6, "subscriptions": 5},
    ),
    "kraken_spot_ws_v1_20210417.jsonl": (
        "kraken",
        # Ten v1 tickers arrive before any message with a time: they carry none.
        {"BookSnapshot": 10, "BookDelta": 4269, "Quote": 8, "Trade": 10},
        {"heartbeat": 92, "subscription_status": 30, "system_status": 3, "ticker_without_time": 10},
    ),
    "bybit_v5_linear_ws_20260809.jsonl": (
        "bybit-linear",
        {"BookSnapshot": 4, "BookDelta": 1594, "Quote": 638, "Trade": 327, "Bar": 4},
        {"ticker_without_quote_change": 120, "kline_open": 71, "subscription_ack": 17},
    ),
    "bybit_v5_spot_ws_20260809.jsonl": (
        "bybit",
        {"BookSnapshot": 2, "BookDelta": 548, "Trade": 20, "Bar": 2},
        {"ticker_without_top_of_book": 81, "kline_open": 23, "subscription_ack": 7},
    ),
}


def test_every_recorded_file_is_covered() -> None:
    files = {p.name for p in MARKET_DATA.glob("*.jsonl")}
    if not files:
        market_file("SOURCES.md")
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_file_parses_without_unexplained_errors(name: str) -> None:
    fmt, events, ignored = EXPECTED[name]
    path = market_file(name)
    assert detect_format(path) == fmt
    parser = PARSERS[fmt]()
    kinds: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    silent = 0
    lines = 0
    for raw in path.read_bytes().splitlines():
        line = raw.strip()
        if not line:
            continue
        lines += 1
        before = sum(parser.ignored.values())  # type: ignore[attr-defined]
        try:
            out = parser.parse(line, 0)
        except ParseError as exc:
            errors[exc.reason] += 1
            continue
        for e in out:
            kinds["BookSnapshot" if getattr(e, "snapshot", False) else type(e).__name__] += 1
        if not out and sum(parser.ignored.values()) == before:  # type: ignore[attr-defined]
            silent += 1
    print(f"\n{name} [{fmt}] {lines} lines: events {dict(kinds)}, ignored {dict(parser.ignored)}")  # type: ignore[attr-defined]
    assert not errors, errors
    assert silent == 0, "messages dropped without a named reason"
    assert dict(kinds) == events
    assert dict(parser.ignored) == ignored  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["binance", "binance-usdm", "coinbase", "kraken", "bybit"])
@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00\xffgarbage", "malformed_json"),
        (b"{not json", "malformed_json"),
        (b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT"', "malformed_json"),
        (b"", "malformed_json"),
    ],
)
def test_garbage_is_a_parse_error_with_a_reason(fmt: str, frame: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        PARSERS[fmt]().parse(frame, 0)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("fmt", "frame", "reason"),
    [
        (
            "binance",
            b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,'
            b'"p":"NaN","q":"1","T":1,"m":true}}',
            "invalid_price",
        ),
        (
            "binance",
            b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,'
            b'"p":"-5","q":"1","T":1,"m":true}}',
            "invalid_price",
        ),
        ("binance", b'{"stream":"btcusdt@weird","data":{}}', "unknown_stream"),
        ("binance", b'{"code":2,"msg":"Invalid request"}', "exchange_error"),
        (
            "coinbase",
            b'{"channel":"nope","timestamp":"x","sequence_num":1,"events":[]}',
            "unknown_channel",
        ),
        ("coinbase", b'{"type":"error","message":"failure"}', "exchange_error"),
        ("kraken", b'[1,{"a":[["1.0"]]},"book-10","XBT/USD"]', "invalid_level"),
        ("kraken", b'{"event":"error","errorMessage":"bad"}', "exchange_error"),
        ("bybit", b'{"success":false,"ret_msg":"bad topic","op":"subscribe"}', "exchange_error"),
        (
            "bybit",
            b'{"topic":"publicTrade.X","ts":1,"type":"snapshot","data":[{"T":1,"s":"X",'
            b'"S":"Buy","v":"inf","p":"1","i":"1"}]}',
            "invalid_qty",
        ),
    ],
)
def test_invalid_values_are_rejected_by_reason(fmt: str, frame: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        PARSERS[fmt]().parse(frame, 0)
    assert info.value.reason == reason


def test_kraken_v2_messages() -> None:
    parser = PARSERS["kraken"]()
    book = parser.parse(
        b'{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":'
        b'[{"price":45283.5,"qty":0.10000000}],"asks":[{"price":45285.2,"qty":0.00100000}],'
        b'"checksum":3310070434}]}',
        0,
    )
    trade = parser.parse(
        b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",'
        b'"price":45280.1,"qty":0.5,"ord_type":"market","trade_id":4665906,'
        b'"timestamp":"2023-09-25T07:49:37.708706Z"}]}',
        0,
    )
    parser.parse(b'{"channel":"heartbeat"}', 0)
    parser.parse(b'{"method":"subscribe","result":{"channel":"book"},"success":true}', 0)
    assert len(book) == 1 and book[0].snapshot  # type: ignore[union-attr]
    assert trade[0].id == "kraken:BTC/USD:t4665906"
    assert trade[0].ts_event == 1695628177708706000
    assert dict(parser.ignored) == {"heartbeat": 1, "subscription_ack": 1}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_replay_detects_and_replays_every_file(name: str) -> None:
    """What ``tradewind run --data FILE`` does first: detect, parse, batch."""
    from tradewind.exchanges.replay import ReplaySource

    src = ReplaySource([market_file(name)])
    events = 0
    async for batch in src.batches(512):
        events += len(batch)
    assert src.stats.error_count == 0
    assert events == sum(EXPECTED[name][1].values())


KRAKEN_DOC_EXAMPLE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "venues"
    / "kraken_v2_book_checksum_doc_example.jsonl"
)


def test_kraken_v2_checksum_reproduces_the_documented_10x10_example() -> None:
    from tradewind.exchanges.kraken.book import KrakenSync
    from tradewind.exchanges.kraken.parser import KrakenParser

    (update,) = KrakenParser().decode(KRAKEN_DOC_EXAMPLE.read_bytes().strip(), 123)
    assert isinstance(update, BookUpdate) and update.checksum == 3310070434
    sync = KrakenSync("kraken", "BTC/USD", depth=10)
    res = sync.on_update(update)
    assert res.resync is None and sync.synced
    assert res.events[0].ts_event != 0  # a snapshot carries no time: received-at, never 0


def test_kraken_v2_ticker_uses_its_own_timestamp() -> None:
    parser = PARSERS["kraken"]()
    (quote,) = parser.parse(
        b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":45283.5,'
        b'"bid_qty":0.1,"ask":45285.2,"ask_qty":0.001,"last":45284.0,"volume":1.0,'
        b'"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
        999,
    )
    assert quote.ts_event == 1696613755440295000
    (early,) = PARSERS["kraken"]().parse(
        b'{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":1.0,'
        b'"bid_qty":1.0,"ask":2.0,"ask_qty":1.0}]}',
        999,
    )
    assert early.ts_event == 999  # no exchange time yet: when it was received, never 0
