"""CSV replay formats: the two shared CSVs and hand-made trade files."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

import pytest

from tests.conftest import market_file
from tradewind.events import Bar, MarketEvent, Side, Trade
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.csv_source import (
    AGG_TRADES,
    BASANA,
    KLINE,
    TRADES,
    CsvParser,
    CsvReplaySource,
    interval_from_path,
    symbol_from_path,
)
from tradewind.exchanges.formats import detect_format

DAILY = "binance_spot_btcusdt_1d_2020.csv"
KLINES = "binance_spot_adabtc_1m_kline_20211127.csv"


def replay(source: CsvReplaySource) -> list[MarketEvent]:
    async def go() -> list[MarketEvent]:
        out: list[MarketEvent] = []
        async for batch in source.batches(100):
            out.extend(batch)
        return out

    return asyncio.run(go())


def test_basana_daily_csv() -> None:
    path = market_file(DAILY)
    assert detect_format(path) == BASANA
    src = CsvReplaySource([path])
    events = replay(src)
    assert src.bars_only
    assert src.stats.error_count == 0
    assert len(events) == 366
    first, last = events[0], events[-1]
    assert isinstance(first, Bar) and isinstance(last, Bar)
    # 2020-01-01 00:00:00,7195.24000000,7255.00000000,7175.15000000,7200.85000000,16792.38816500
    assert (first.symbol, first.exchange, first.interval_s) == ("BTCUSDT", "binance", 86400.0)
    assert first.ts_open == 1_577_836_800 * 10**9
    assert first.ts_event == first.ts_open + 86_400 * 10**9
    assert (first.open, first.high, first.low, first.close) == (7195.24, 7255.0, 7175.15, 7200.85)
    assert first.volume == pytest.approx(16792.388165)
    assert first.id == "binance:BTCUSDT:k1d:1577836800000"
    assert last.ts_open == 1_609_372_800 * 10**9  # 2020-12-31
    assert all(b.ts_event < c.ts_event for b, c in pairwise(events))


def test_binance_kline_csv_without_header() -> None:
    path = market_file(KLINES)
    assert detect_format(path) == KLINE
    src = CsvReplaySource([path])
    events = replay(src)
    assert src.stats.error_count == 0
    assert len(events) == 10
    b = events[0]
    assert isinstance(b, Bar)
    # 1637971200000,0.00002853,0.00002854,0.00002851,0.00002854,36304.2,1637971259999,...,79,...
    assert (b.symbol, b.interval_s, b.trades) == ("ADABTC", 60.0, 79)
    assert b.ts_open == 1_637_971_200_000 * 10**6
    assert b.ts_event == 1_637_971_260_000 * 10**6
    assert (b.open, b.high, b.low, b.close) == (2.853e-05, 2.854e-05, 2.851e-05, 2.854e-05)
    assert b.id == "binance:ADABTC:k1m:1637971200000"


def test_kline_csv_with_header_and_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-1m-2025-01-01.csv"
    path.write_text(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore\n"
        "1735689600000000,3337.78,3345.0,3337.0,3343.5,100.5,1735689659999999,1,12,1,1,0\n"
    )
    assert detect_format(path) == KLINE
    events = replay(CsvReplaySource([path]))
    assert len(events) == 1 and isinstance(events[0], Bar)
    assert events[0].symbol == "ETHUSDT"
    assert events[0].ts_open == 1_735_689_600 * 10**9
    assert events[0].interval_s == 60.0


def test_trades_csv(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    path.write_text(
        "3735683259,61837.63,0.02,1236.75,1723161255342,True,True\n"
        "3735683260,61837.64,0.048,2968.2,1723161255617,False,True\n"
    )
    assert detect_format(path) == TRADES
    events = replay(CsvReplaySource([path]))
    assert [type(e) for e in events] == [Trade, Trade]
    t0, t1 = events
    assert isinstance(t0, Trade) and isinstance(t1, Trade)
    assert t0.id == "binance:BTCUSDT:t3735683259"  # the same id as the streamed trade
    assert (t0.price, t0.qty, t0.side) == (61837.63, 0.02, Side.SELL)
    assert t1.side is Side.BUY
    assert t0.ts_event == 1_723_161_255_342 * 10**6


def test_aggtrades_csv_with_header(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-aggTrades.csv"
    path.write_text(
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
        "is_buyer_maker,is_best_match\n"
        "1,100.5,2,10,11,1700000000000,false,true\n"
    )
    assert detect_format(path) == AGG_TRADES
    (t,) = replay(CsvReplaySource([path]))
    assert isinstance(t, Trade)
    assert (t.id, t.trade_id, t.side) == ("binance:BTCUSDT:a1", "a1", Side.BUY)


def test_bad_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "btcusdt_1d.csv"
    path.write_text(
        "datetime,open,high,low,close,volume\n"
        "2020-01-01 00:00:00,1,2,0.5,1.5,10\n"
        "2020-01-02 00:00:00,nan,2,0.5,1.5,10\n"
        "2020-01-03 00:00:00,1,2,0.5\n"
        "2020-13-04 00:00:00,1,2,0.5,1.5,10\n"
        "2020-01-05 00:00:00,1,0.9,0.5,1.5,10\n"
        "2020-01-06 00:00:00,1,2,0.5,1.5,10\n"
    )
    src = CsvReplaySource([path])
    events = replay(src)
    assert len(events) == 2
    assert dict(src.stats.errors) == {
        "invalid_price": 1,
        "invalid_columns": 1,
        "invalid_time": 1,
        "invalid_bar": 1,
    }


def test_options_override_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("datetime,open,high,low,close,volume\n2020-01-01 00:00:00,1,2,0.5,1.5,10\n")
    (bar,) = replay(CsvReplaySource([path], symbol="ETHUSDT", exchange="bybit", interval_s=3600))
    assert isinstance(bar, Bar)
    assert (bar.symbol, bar.exchange, bar.interval_s) == ("ETHUSDT", "bybit", 3600.0)
    assert bar.id == "bybit:ETHUSDT:k1h:1577836800000"


def test_names() -> None:
    assert symbol_from_path(Path("binance_spot_btcusdt_1d_2020.csv")) == "BTCUSDT"
    assert symbol_from_path(Path("ADABTC-1m-2021-11-27.csv")) == "ADABTC"
    assert symbol_from_path(Path("bars.csv")) is None
    assert interval_from_path(Path("binance_btcusdt_day_2020.csv")) == 86400
    assert interval_from_path(Path("x_15m.csv")) == 900
    assert interval_from_path(Path("bars.csv")) is None


def test_parser_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown CSV format"):
        CsvParser("nope")
    with pytest.raises(ParseError):
        CsvParser(TRADES).parse(b"1,2,3", 0)
