"""``tradewind download --venue coinbase --kind klines`` through ccxt
against the fake exchange's Coinbase Advanced Trade public market REST
(``market/products``, ``market/products/{id}/candles``, no keys): through a
429 (an HTML page, as Coinbase's gateway sends) and a cut connection, the 1m
bars of the recorded trades written and the stretches without bars
reported, a file that ``backtest`` reads as ``coinbase:BTCUSD``."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_download import listing
from tests.e2e.test_download_ccxt import _need_ccxt, download_through_faults, replays
from tradewind.exchanges.coinbase.fake_rest_history import PRODUCTS, CoinbaseRestHistory
from tradewind.exchanges.common.fake_http import Request
from tradewind.exchanges.fake import FakeExchange

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1] / "data"
COINBASE = DATA / "market" / "coinbase_advanced_ws_20260809.jsonl"
DOC = json.loads((DATA / "venues" / "coinbase_rest_doc_examples.json").read_text())
DAY0_S = 1786233600  # 2026-08-09 00:00 UTC


def candles(fake: CoinbaseRestHistory, **query: str) -> Any:
    req = Request("GET", "", {}, path=f"{PRODUCTS}/BTC-USD/candles", query=query)
    resp, _ = fake._answer(req)
    return resp.status, json.loads(resp.body)


def test_fake_coinbase_candles_in_the_documented_shape() -> None:
    fake = CoinbaseRestHistory([COINBASE])
    fake.load()
    q = {"granularity": "ONE_MINUTE", "start": str(DAY0_S), "end": str(DAY0_S + 86_400)}
    status, body = candles(fake, **{**q, "end": str(DAY0_S + 350 * 60)})
    assert (status, body) == (200, {"candles": []})
    status, body = candles(fake, **q)  # 1440 candles asked: more than 350
    assert status == 400 and body["error"] == "INVALID_ARGUMENT"
    status, body = candles(fake, **{**q, "start": "1786308840", "end": "1786312440"})
    want = DOC["public-product-candles"]
    assert sorted(body) == sorted(want)
    assert all(sorted(c) == sorted(want["candles"][0]) for c in body["candles"])
    assert all(isinstance(v, str) for c in body["candles"] for v in c.values())
    starts = [int(c["start"]) for c in body["candles"]]
    assert starts == sorted(starts, reverse=True) and len(starts) == 3  # newest first


async def test_coinbase_klines_through_a_cut_then_backtest(tmp_path: Path) -> None:
    _need_ccxt()
    out = tmp_path / "coinbase"
    async with FakeExchange(COINBASE, autostart=False, exchanges=["coinbase"]) as fake:
        hist = fake.coinbase_history
        # the three product lists whole, the first candles page cut
        text = await download_through_faults(
            tmp_path, fake, hist, 3, "coinbase", out,
            "--symbols", "BTC/USD", "--start", "2026-08-09", "--kind", "klines",
        )  # fmt: skip
        pages = [r.query for r in hist.requests if r.path.endswith("/candles")]
    assert "BTC/USD 2026-08-09: 3 rows" in text
    assert "1 rate-limited answers waited out; 1 failed requests retried" in text
    assert "no 1m kline for 00:00-21:03 (1264): the venue has none" in text
    assert "no 1m kline for 21:07-23:59 (173): the venue has none" in text
    assert pages[0] == pages[1] == {
        "granularity": "ONE_MINUTE", "start": str(DAY0_S), "end": str(DAY0_S + 6000),
    }  # fmt: skip
    assert listing(out) == ["coinbase-BTCUSD-1m-2026-08-09.csv"]
    rows = [r.split(",") for r in (out / "coinbase-BTCUSD-1m-2026-08-09.csv").read_text().split()]
    trades = []
    for line in COINBASE.read_text().splitlines():
        msg = json.loads(line)
        if msg.get("channel") == "market_trades":
            for ev in msg["events"]:
                trades += [t for t in ev["trades"] if t["product_id"] == "BTC-USD"]
    by_id = {t["trade_id"]: t for t in trades}
    first_bar = [t for t in by_id.values() if t["time"].startswith("2026-08-09T21:04")]
    assert rows[1][0] == "1786309440000" and first_bar
    assert Decimal(rows[1][2]) == max(Decimal(t["price"]) for t in first_bar)
    assert Decimal(rows[1][5]) == sum(Decimal(t["size"]) for t in first_bar)

    data = out / "coinbase-BTCUSD-1m-2026-08-09.csv"
    await replays(tmp_path, data, "coinbase:BTCUSD, 60 s bars", 3)
