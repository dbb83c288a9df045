"""Resuming a cut-off day, in process with small pages so that one day
takes many: the ccxt downloader paging OKX's trade history backwards by id,
and the Binance REST downloader paging klines forward by open time, each
continuing after the last row its partial file holds (a torn last line, as a
kill leaves, is cut off first)."""

from __future__ import annotations

import csv
import importlib.util
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import market_file, skip_or_fail
from tradewind.exchanges.binance.rest_history import RestHistory
from tradewind.exchanges.common.history import HistoryError, last_row
from tradewind.exchanges.csv_source import exchange_from_path
from tradewind.exchanges.fake import FakeExchange

OKX = Path(__file__).parents[1] / "data" / "venues" / "okx_v5_ws_20220513.jsonl"


def ids(path: Path) -> list[int]:
    with path.open() as f:
        return [int(r["id"]) for r in csv.DictReader(f)]


async def cut_off(venue: str, base: str, symbol: str, day: date, out: Path, page: int) -> None:
    """A day's trades through ccxt that the fake cuts off for good: the run
    fails with its one reason and leaves its partial file."""
    from tradewind.exchanges.ccxt.history import CcxtHistory

    first = CcxtHistory(venue, base, retries=1, backoff_s=0.01, page=page)
    try:
        with pytest.raises(HistoryError, match="cannot download from"):
            await first.day("trades", symbol, day, out)
    finally:
        await first.close()


async def test_okx_trades_resume_below_the_oldest_written_id(tmp_path: Path) -> None:
    if importlib.util.find_spec("ccxt") is None:
        skip_or_fail("ccxt is not installed (pip install 'tradewind[ccxt]')")
    from tradewind.exchanges.ccxt.history import CcxtHistory

    day = date(2022, 5, 13)
    async with FakeExchange(OKX, autostart=False, exchanges=["okx"]) as fake:
        base = f"http://{fake.host}:{fake.port}"
        hist = fake.okx_history
        hist.cut(10, after=4)  # instruments, then three pages of 10
        await cut_off("okx", base, "BTC/USDT", day, tmp_path, page=10)
        partial = tmp_path / "okx-BTCUSDT-trades-2022-05-13.partial.csv"
        written = ids(partial)
        assert len(written) == 30 and written == sorted(written, reverse=True)
        with partial.open("a") as f:
            f.write("338476300,30000,0.1")  # a torn line
        hist.cut(0)
        n = len(hist.requests)
        again = CcxtHistory("okx", base, page=10)
        try:
            got = await again.day("trades", "BTC/USDT", day, tmp_path)
        finally:
            await again.close()
        resumed = [r.query for r in hist.requests[n:] if r.path.endswith("history-trades")]
    assert resumed[0] == {
        "instId": "BTC-USDT",
        "limit": "10",
        "type": "1",
        "after": str(written[-1]),
    }
    assert got.status == "downloaded" and got.resumed and got.rows == 69 and not got.lost
    final = ids(tmp_path / "okx-BTCUSDT-trades-2022-05-13.csv")
    assert final == list(range(338476307, 338476307 + 69))
    assert not partial.exists()


async def test_binance_klines_resume_after_the_last_open_time(tmp_path: Path) -> None:
    day = date(2024, 8, 8)
    data = market_file("binance_spot_btcusdt_trades_20240808.jsonl")
    async with FakeExchange(data, autostart=False, exchanges=["binance"]) as fake:
        base = f"http://{fake.host}:{fake.port}"
        rest = fake.rest_history
        rest.cut(10, after=2)
        first = RestHistory(base, retries=1, backoff_s=0.01, page=100)
        try:
            with pytest.raises(HistoryError, match="cannot download"):
                await first.day("klines", "BTCUSDT", day, tmp_path, "1s")
        finally:
            await first.close()
        partial = tmp_path / "BTCUSDT-1s-2024-08-08.partial.csv"
        written = partial.read_text().splitlines()
        assert len(written) == 1 + 200
        rest.cut(0)
        n = len(rest.requests)
        again = RestHistory(base, page=100)
        try:
            got = await again.day("klines", "BTCUSDT", day, tmp_path, "1s")
        finally:
            await again.close()
        resumed = rest.requests[n].query
    klines = rest.klines("BTCUSDT", "1s")
    assert resumed["startTime"] == str(int(written[-1].split(",")[0]) + 1000)
    assert resumed["startTime"] == str(klines[199][0] + 1000)
    assert got.status == "downloaded" and got.resumed
    final = (tmp_path / "BTCUSDT-1s-2024-08-08.csv").read_text().splitlines()
    day_klines = [k for k in klines if k[0] < 1723161600000]
    assert [int(line.split(",")[0]) for line in final[1:]] == [k[0] for k in day_klines]


async def test_kraken_trades_resume_after_the_last_written_time(tmp_path: Path) -> None:
    """Forward by ``since``: a rerun asks from the last row's millisecond and
    leaves out the ids it already wrote there."""
    if importlib.util.find_spec("ccxt") is None:
        skip_or_fail("ccxt is not installed (pip install 'tradewind[ccxt]')")
    from tradewind.exchanges.ccxt.history import CcxtHistory

    day = date(2021, 4, 17)
    data = market_file("kraken_spot_ws_v1_20210417.jsonl")
    async with FakeExchange(data, autostart=False, exchanges=["kraken"]) as fake:
        base = f"http://{fake.host}:{fake.port}"
        hist = fake.kraken_history
        hist.cut(10, after=4)  # Assets, AssetPairs, then two pages of 2
        await cut_off("kraken", base, "SC/EUR", day, tmp_path, page=2)
        partial = tmp_path / "kraken-SCEUR-trades-2021-04-17.partial.csv"
        written = ids(partial)
        assert written == [1, 2, 3]  # the second page from the first's last millisecond
        hist.cut(0)
        n = len(hist.requests)
        again = CcxtHistory("kraken", base, page=2)
        try:
            got = await again.day("trades", "SC/EUR", day, tmp_path)
        finally:
            await again.close()
        resumed = [r.query for r in hist.requests[n:] if r.path.endswith("/Trades")]
    last_ms = int(last_row(tmp_path / "kraken-SCEUR-trades-2021-04-17.csv")[4])
    assert resumed[0]["since"] == "1618678155719999999" and last_ms == 1618678158135
    assert got.status == "downloaded" and got.resumed and got.rows == 6
    assert ids(tmp_path / "kraken-SCEUR-trades-2021-04-17.csv") == list(range(1, 7))
    assert not partial.exists()


def test_last_row_cuts_a_torn_line(tmp_path: Path) -> None:
    f = tmp_path / "x.partial.csv"
    f.write_text("id,price\n1,2\n3,4\n5,")
    assert last_row(f) == ["3", "4"]
    assert f.read_text() == "id,price\n1,2\n3,4\n"
    f.write_text("id,price\n")
    assert last_row(f) is None


def test_the_venue_comes_from_a_downloaded_name() -> None:
    assert exchange_from_path(Path("okx-BTCUSDT-trades-2022-05-13.csv")) == "okx"
    assert exchange_from_path(Path("binance_spot_btcusdt_1d_2020.csv")) == "binance"
    assert exchange_from_path(Path("BTCUSDT-trades-2024-08-08.csv")) is None


async def test_todays_klines_stop_at_the_last_closed_one_and_continue(tmp_path: Path) -> None:
    """A day not over (the clock at 23:57:30 on the recording's day): only
    closed klines, kept in the partial file; later, the rest, and the day's
    CSV."""
    day = date(2024, 8, 8)
    at = 1723161450000  # 2024-08-08 23:57:30 UTC
    data = market_file("binance_spot_btcusdt_trades_20240808.jsonl")
    async with FakeExchange(data, autostart=False, exchanges=["binance"]) as fake:
        base = f"http://{fake.host}:{fake.port}"
        early = RestHistory(base, now_ms=lambda: at)
        try:
            got = await early.day("klines", "BTCUSDT", day, tmp_path)
        finally:
            await early.close()
        assert got.status == "partial" and got.until_ms == 1723161360000  # 23:56
        assert got.path == tmp_path / "BTCUSDT-1m-2024-08-08.partial.csv"
        assert got.rows == 3 and got.holes == ["no 1m kline for 00:00-23:53 (1434)"]
        n = len(fake.rest_history.requests)
        later = RestHistory(base, now_ms=lambda: at + 86_400_000)
        try:
            done = await later.day("klines", "BTCUSDT", day, tmp_path)
        finally:
            await later.close()
        assert fake.rest_history.requests[n].query["startTime"] == str(1723161420000)
    assert done.status == "downloaded" and done.resumed and done.rows == 6
    assert not got.path.exists()


async def test_trades_paged_forward_by_since_through_ccxt(tmp_path: Path) -> None:
    """The forward paging Kraken and Coinbase use, driven through ccxt's
    ``binance`` (whose ``fetch_trades(since)`` asks ``/api/v3/aggTrades`` for
    an hour from ``since``) against the fake's REST history: empty hours are
    stepped over, pages of 500 join without a repeat or a hole, and a cut-off
    day continues after its last row."""
    if importlib.util.find_spec("ccxt") is None:
        skip_or_fail("ccxt is not installed (pip install 'tradewind[ccxt]')")
    from tradewind.exchanges.binance.fake_orders import FakeBinanceOrders
    from tradewind.exchanges.ccxt.history import CcxtHistory, VenueHistory

    spec = VenueHistory("binance", "forward", sequential_ids=True)
    day = date(2024, 8, 8)
    data = market_file("binance_spot_btcusdt_trades_20240808.jsonl")

    def history(base: str, **kw: object) -> CcxtHistory:
        return CcxtHistory("binance", base, spec=spec, page=500, **kw)  # type: ignore[arg-type]

    async with FakeExchange(data, autostart=False, exchanges=["binance"]) as fake:
        FakeBinanceOrders(seed=3).mount(fake)
        base = f"http://{fake.host}:{fake.port}"
        rest = fake.rest_history
        rest.cut(10, after=23 + 4)  # the empty hours, then four pages of 500
        first = history(base, retries=1, backoff_s=0.01)
        try:
            with pytest.raises(HistoryError, match="cannot download from"):
                await first.day("trades", "BTCUSDT", day, tmp_path)
        finally:
            await first.close()
        partial = tmp_path / "binance-BTCUSDT-trades-2024-08-08.partial.csv"
        written = ids(partial)
        # Each page starts at the last one's time: rows at that millisecond repeat, once.
        assert 1500 < len(written) <= 2000
        assert written == list(range(written[0], written[0] + len(written)))
        rest.cut(0)
        again = history(base)
        try:
            got = await again.day("trades", "BTCUSDT", day, tmp_path)
        finally:
            await again.close()
    assert got.status == "downloaded" and got.resumed and not got.lost
    final = ids(tmp_path / "binance-BTCUSDT-trades-2024-08-08.csv")
    assert final == list(range(final[0], final[0] + 9738))


async def test_a_short_first_hour_is_not_the_end_of_the_day(tmp_path: Path) -> None:
    """The day's first trades found in an hour window with fewer rows than a
    page: the rest of the day follows by id, not taken for the newest trade."""
    day = date(2024, 8, 8)
    data = market_file("binance_spot_btcusdt_trades_20240808.jsonl")
    async with FakeExchange(data, autostart=False, exchanges=["binance"]) as fake:
        fake.history.load()
        for row in fake.history.trades["BTCUSDT"][:50]:
            row[4] = str(int(row[4]) - 2 * 3_600_000)  # two hours earlier: 21:54
        rest = RestHistory(f"http://{fake.host}:{fake.port}")
        try:
            got = await rest.day("aggTrades", "BTCUSDT", day, tmp_path)
        finally:
            await rest.close()
        first_by_id = next(r.query for r in fake.rest_history.requests if "fromId" in r.query)
    assert got.status == "downloaded" and got.rows == 9738 and not got.lost
    assert first_by_id["fromId"] == str(int(fake.history.trades["BTCUSDT"][50][0]))
