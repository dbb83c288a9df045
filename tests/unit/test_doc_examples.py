"""Each venue's own documented example messages, parsed field by field.

The recordings prove we read what the venues sent on some day; these prove we
read the fields as the venues define them, so that our parser and our fake
servers (written from the same reading) cannot share a misreading unnoticed.
Sources are in ``tests/data/venues/SOURCES.md``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from tradewind.events import Side, Trade
from tradewind.exchanges.binance.book import BinanceSync
from tradewind.exchanges.binance.parser import (
    BinanceCoinmParser,
    BinanceParser,
    BinanceUsdmParser,
)
from tradewind.exchanges.bybit.book import BybitSync
from tradewind.exchanges.bybit.parser import BybitLinearParser
from tradewind.exchanges.coinbase.parser import CoinbaseParser
from tradewind.exchanges.common.book import BookUpdate
from tradewind.exchanges.formats import detect_format
from tradewind.exchanges.okx.book import checksum_of
from tradewind.exchanges.okx.parser import OkxParser

VENUES = Path(__file__).resolve().parents[1] / "data" / "venues"
MS = 1_000_000


def _lines(name: str) -> list[bytes]:
    return [ln for ln in (VENUES / name).read_bytes().splitlines() if ln.strip()]


def _one(items: list[object]) -> object:
    assert len(items) == 1, items
    return items[0]


def test_binance_spot_trade() -> None:
    """``m: true``: the buyer was the maker, so the taker sold."""
    trade = _one(BinanceParser().decode(_lines("binance_doc_examples.jsonl")[0], 7))
    assert isinstance(trade, Trade)
    assert (trade.exchange, trade.symbol, trade.trade_id) == ("binance", "BNBBTC", "12345")
    assert trade.price == 0.001 and trade.qty == 100.0
    assert trade.side is Side.SELL
    assert trade.ts_event == 1672515782136 * MS and trade.ts_recv == 7


def test_binance_spot_diff_depth() -> None:
    upd = _one(BinanceParser().decode(_lines("binance_doc_examples.jsonl")[1], 7))
    assert isinstance(upd, BookUpdate) and not upd.snapshot
    assert (upd.exchange, upd.symbol) == ("binance", "BNBBTC")
    assert (upd.first_id, upd.last_id, upd.prev_id) == (157, 160, None)
    assert upd.bids == [(0.0024, 10.0)] and upd.asks == [(0.0026, 100.0)]
    assert upd.ts_event == 1672515782136 * MS


def test_binance_usdm_diff_depth_chains_on_pu() -> None:
    """USD-M: ``pu`` is the previous event's ``u``; the event time is ``T``."""
    upd = _one(BinanceUsdmParser().decode(_lines("binance_doc_examples.jsonl")[2], 7))
    assert isinstance(upd, BookUpdate)
    assert (upd.exchange, upd.symbol) == ("binance-usdm", "BTCUSDT")
    assert (upd.first_id, upd.last_id, upd.prev_id) == (157, 160, 149)
    assert upd.bids == [(0.0024, 10.0)] and upd.asks == [(0.0026, 100.0)]
    assert upd.ts_event == 123456788 * MS
    sync = BinanceSync("binance-usdm", "BTCUSDT", futures=True)
    snap = BookUpdate(**{**_fields(upd), "snapshot": True, "last_id": 158, "bids": [], "asks": []})
    sync.on_update(snap)
    assert sync.on_update(upd).resync is None and sync.synced
    follower = BookUpdate(**{**_fields(upd), "first_id": 161, "last_id": 170, "prev_id": 160})
    assert sync.on_update(follower).events
    orphan = BookUpdate(**{**_fields(upd), "first_id": 181, "last_id": 190, "prev_id": 175})
    assert sync.on_update(orphan).resync == "gap"


def test_binance_coinm_diff_depth_keeps_contracts() -> None:
    upd = _one(BinanceCoinmParser().decode(_lines("binance_doc_examples.jsonl")[3], 7))
    assert isinstance(upd, BookUpdate)
    assert (upd.exchange, upd.symbol) == ("binance-coinm", "BTCUSD_200626")
    assert (upd.first_id, upd.last_id, upd.prev_id) == (17285681, 17285702, 17285675)
    assert upd.bids == [(9517.6, 10.0)] and upd.asks == [(9518.5, 45.0)]
    assert upd.ts_event == 1591270260891 * MS


def test_coinbase_level2_snapshot_takes_the_message_time_not_1970() -> None:
    """The documented snapshot's levels carry ``event_time`` 1970-01-01: the
    message's ``timestamp`` is the time to keep."""
    upd = _one(CoinbaseParser().decode(_lines("coinbase_doc_examples.jsonl")[0], 7))
    assert isinstance(upd, BookUpdate) and upd.snapshot
    assert (upd.exchange, upd.symbol) == ("coinbase", "BTC-USD")
    assert upd.bids == [(21921.73, 0.06317902), (21921.3, 0.02)] and upd.asks == []
    assert upd.ts_event == 1675974770714964855


def test_coinbase_market_trade_side_is_the_makers() -> None:
    """Coinbase: "side: the maker's side". A BUY maker means the taker sold."""
    parser = CoinbaseParser()
    trade = _one(parser.decode(_lines("coinbase_doc_examples.jsonl")[1], 7))
    assert isinstance(trade, Trade)
    assert (trade.exchange, trade.symbol, trade.trade_id) == ("coinbase", "ETH-USD", "000000000")
    assert trade.price == 1260.01 and trade.qty == 0.3
    assert trade.side is Side.SELL
    assert trade.ts_event == 1565815347265 * MS
    assert parser.last_sequence == 0


def test_bybit_v5_orderbook_snapshot() -> None:
    upd = _one(BybitLinearParser().decode(_lines("bybit_v5_doc_examples.jsonl")[0], 7))
    assert isinstance(upd, BookUpdate) and upd.snapshot
    assert (upd.exchange, upd.symbol) == ("bybit-linear", "BTCUSDT")
    assert upd.bids == [(16493.5, 0.006), (16493.0, 0.1)]
    assert upd.asks == [(16611.0, 0.029), (16612.0, 0.213)]
    assert (upd.first_id, upd.last_id, upd.prev_id) == (18521288, 18521288, 7961638724)
    assert upd.ts_event == 1672304484978 * MS
    sync = BybitSync("bybit-linear", "BTCUSDT")
    assert sync.on_update(upd).events[0].snapshot and sync.synced
    assert sync.book.best_bid() == (16493.5, 0.006) and sync.book.best_ask() == (16611.0, 0.029)


def test_bybit_v5_public_trade_side_is_the_takers() -> None:
    trade = _one(BybitLinearParser().decode(_lines("bybit_v5_doc_examples.jsonl")[1], 7))
    assert isinstance(trade, Trade)
    assert (trade.exchange, trade.symbol) == ("bybit-linear", "BTCUSDT")
    assert trade.trade_id == "20f43950-d8dd-5b31-9112-a178eb6023af"
    assert trade.price == 16578.5 and trade.qty == 0.001 and trade.side is Side.BUY
    assert trade.ts_event == 1672304486865 * MS


def test_okx_v5_trade_side_is_the_takers() -> None:
    trade = _one(OkxParser().decode(_lines("okx_v5_doc_examples.jsonl")[0], 7))
    assert isinstance(trade, Trade)
    assert (trade.exchange, trade.symbol, trade.trade_id) == ("okx", "BTC-USDT", "130639474")
    assert trade.price == 42219.9 and trade.qty == 0.12060306 and trade.side is Side.BUY
    assert trade.ts_event == 1630048897897 * MS


def test_okx_v5_books_snapshot_fields() -> None:
    upd = _one(OkxParser().decode(_lines("okx_v5_doc_examples.jsonl")[1], 7))
    assert isinstance(upd, BookUpdate) and upd.snapshot
    assert (upd.exchange, upd.symbol) == ("okx", "BTC-USDT")
    assert (upd.last_id, upd.prev_id, upd.checksum) == (123456, -1, -855196043)
    assert upd.bids[0] == (8476.97, 256.0) and upd.bids[-1] == (8446.0, 95.0)
    assert upd.asks[0] == (8476.98, 415.0) and upd.asks[-1] == (8506.96, 100.0)
    assert len(upd.bids) == len(upd.asks) == 8
    assert upd.text_asks is not None and upd.text_asks[1] == ("8477", "7")
    assert upd.ts_event == 1597026383085 * MS


def _okx_crc(text: str) -> int:
    crc = zlib.crc32(text.encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def test_okx_checksum_string_follows_the_documented_examples() -> None:
    """OKX's checksum guide spells out the string for two books (its quoted
    ``checksum`` values are placeholders, the same for both, so the strings
    are what can be checked): sides interleaved level by level, and the
    longer side's remaining levels alone after the shorter one ends."""
    aligned = checksum_of([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"], ["3368", "8"]])
    assert aligned == _okx_crc("3366.1:7:3366.8:9:3366:6:3368:8")
    ragged = checksum_of([["3366.1", "7"]], [["3366.8", "9"], ["3368", "8"], ["3372", "8"]])
    assert ragged == _okx_crc("3366.1:7:3366.8:9:3368:8:3372:8")


def test_documented_examples_are_detected_as_their_venue() -> None:
    assert detect_format(VENUES / "coinbase_doc_examples.jsonl") == "coinbase"
    assert detect_format(VENUES / "bybit_v5_doc_examples.jsonl") == "bybit-linear"
    assert detect_format(VENUES / "okx_v5_doc_examples.jsonl") == "okx"


def _fields(u: BookUpdate) -> dict[str, object]:
    return {f: getattr(u, f) for f in BookUpdate.__slots__}  # type: ignore[attr-defined]
