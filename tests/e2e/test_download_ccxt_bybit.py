"""``tradewind download --venue bybit --kind klines`` through ccxt against
the fake exchange's Bybit v5 REST history (``market/instruments-info``,
``market/kline``): through a ``retCode`` 10006 and a cut connection, the
venue's recorded 1m bars written and the stretches without bars reported,
a file that ``backtest`` reads as ``bybit:BTCUSDT``; and the fake answers a
``start`` alone as Bybit does (newest bars), which is why the downloader
sends each page's ``end``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_download import listing
from tests.e2e.test_download_ccxt import _need_ccxt, download_through_faults, replays
from tradewind.exchanges.bybit.fake_rest_history import BybitRestHistory
from tradewind.exchanges.common.fake_http import Request
from tradewind.exchanges.fake import FakeExchange

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1] / "data"
BYBIT = DATA / "market" / "bybit_v5_spot_ws_20260809.jsonl"
DOC = json.loads((DATA / "venues" / "bybit_rest_doc_examples.json").read_text())
DAY0 = 1786233600000  # 2026-08-09 00:00 UTC
BAR_2126 = 1786310760000


def kline(fake: BybitRestHistory, **query: str) -> Any:
    req = Request("GET", "", {}, path="/v5/market/kline", query=query)
    return json.loads(fake._answer(req)[0].body)


def test_fake_bybit_answers_in_the_documented_shapes() -> None:
    fake = BybitRestHistory([BYBIT])
    fake.load()
    req = Request("GET", "", {}, path="/v5/market/instruments-info", query={"category": "spot"})
    got = json.loads(fake._answer(req)[0].body)
    want = DOC["instruments-info-spot"]
    assert set(got) == set(want)
    assert set(got["result"]) == {*want["result"], "nextPageCursor"}
    inst, doc_inst = got["result"]["list"][0], want["result"]["list"][0]
    assert inst == doc_inst  # instruments.json holds the documented BTCUSDT figures
    body = kline(fake, category="spot", symbol="BTCUSDT", interval="1", start=str(DAY0))
    doc = DOC["kline"]
    assert sorted(body) == sorted(doc) and sorted(body["result"]) == sorted(doc["result"])
    row = body["result"]["list"][0]
    assert len(row) == len(doc["result"]["list"][0]) and all(isinstance(v, str) for v in row)


def test_fake_bybit_answers_a_start_alone_with_the_newest_bars() -> None:
    fake = BybitRestHistory([BYBIT])
    fake.load()
    q = {"category": "spot", "symbol": "BTCUSDT", "interval": "1", "limit": "1"}
    newest = kline(fake, **q, start=str(DAY0))["result"]["list"]
    first = kline(fake, **q, start=str(DAY0), end=str(BAR_2126))["result"]["list"]
    assert [r[0] for r in newest] == [str(BAR_2126 + 60_000)]
    assert [r[0] for r in first] == [str(BAR_2126)]
    both = kline(fake, **{**q, "limit": "5"}, start=str(DAY0))["result"]["list"]
    assert [r[0] for r in both] == [str(BAR_2126 + 60_000), str(BAR_2126)]  # newest first


async def test_bybit_klines_through_faults_then_backtest(tmp_path: Path) -> None:
    _need_ccxt()
    out = tmp_path / "bybit"
    async with FakeExchange(BYBIT, autostart=False, exchanges=["bybit"]) as fake:
        hist = fake.bybit_history
        # the instruments and one klines page whole, the next cut
        text = await download_through_faults(
            tmp_path, fake, hist, 2, "bybit", out,
            "--symbols", "BTC/USDT", "--start", "2026-08-09", "--kind", "klines",
        )  # fmt: skip
        pages = [r.query for r in hist.requests if r.path.endswith("/kline")]
    assert "BTC/USDT 2026-08-09: 2 rows" in text
    assert "1 rate-limited answers waited out; 1 failed requests retried" in text
    assert "no 1m kline for 00:00-21:25 (1286): the venue has none" in text
    assert "no 1m kline for 21:28-23:59 (152): the venue has none" in text
    assert pages[0] == {
        "category": "spot", "symbol": "BTCUSDT", "interval": "1", "limit": "100",
        "start": str(DAY0), "end": str(DAY0 + 100 * 60_000 - 1),
    }  # fmt: skip
    assert listing(out) == ["bybit-BTCUSDT-1m-2026-08-09.csv"]
    rows = (out / "bybit-BTCUSDT-1m-2026-08-09.csv").read_text().splitlines()
    recorded = {}
    for line in BYBIT.read_text().splitlines():
        msg = json.loads(line)
        if msg.get("topic") == "kline.1.BTCUSDT":
            for k in msg["data"]:
                recorded[int(k["start"])] = k
    first = rows[1].split(",")
    bar = recorded[BAR_2126]
    assert first[:7] == [
        str(BAR_2126), bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"],
        str(BAR_2126 + 59_999),
    ]  # fmt: skip
    assert bar["confirm"] is True and len(rows) == 3

    await replays(tmp_path, out / "bybit-BTCUSDT-1m-2026-08-09.csv", "bybit:BTCUSDT, 60 s bars", 2)
