"""``tradewind download --venue kraken`` (trades) through ccxt against the
fake exchange's Kraken REST history (``Assets``, ``AssetPairs``,
``Trades``): forward by ``since`` in nanoseconds through an ``EAPI:Rate
limit exceeded`` and a cut connection, every recorded trade written once, a
file that ``backtest`` reads as ``kraken:XMRUSD``; Kraken klines refused in
one line (its OHLC serves only the latest 720 bars)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.test_download import listing, tradewind
from tests.e2e.test_download_ccxt import _need_ccxt, download_through_faults, replays, url
from tradewind.exchanges.fake import FakeExchange

pytestmark = pytest.mark.slow

KRAKEN = Path(__file__).parents[1] / "data" / "market" / "kraken_spot_ws_v1_20210417.jsonl"
DAY = ["--start", "2021-04-17"]
DAY0_NS = 1618617600 * 10**9


def recorded(pair: str) -> list[tuple[str, str, int, str]]:
    """(price, volume, time in ms, side) of the pair's recorded trades."""
    out = []
    for line in KRAKEN.read_text().splitlines():
        msg = json.loads(line)
        if isinstance(msg, list) and msg[2:] == ["trade", pair]:
            for p, v, t, side, *_ in msg[1]:
                out.append((p, v, int(Decimal(t) * 1000), side))
    return sorted(out, key=lambda r: r[2])


async def test_kraken_trades_through_faults_then_backtest(tmp_path: Path) -> None:
    _need_ccxt()
    out = tmp_path / "kraken"
    async with FakeExchange(KRAKEN, autostart=False, exchanges=["kraken"]) as fake:
        hist = fake.kraken_history
        # Assets, AssetPairs, one Trades page whole, the next cut
        text = await download_through_faults(
            tmp_path, fake, hist, 3, "kraken", out, "--symbols", "SC/EUR", *DAY
        )
        trades = [r.query for r in hist.requests if r.path.endswith("/Trades")]
        args = ["download", "--venue", "kraken", "--rest-url", url(fake), "-o", str(out)]
        rc, again, err = await tradewind(tmp_path, *args, "--symbols", "SCEUR", *DAY)
        assert rc == 0, err
    assert "SC/EUR 2021-04-17: 6 rows" in text
    assert "1 rate-limited answers waited out; 1 failed requests retried" in text
    assert "already here" in again
    assert trades[0] == {"pair": "SCEUR", "since": str(DAY0_NS - 1), "count": "100"}
    assert listing(out) == ["kraken-SCEUR-trades-2021-04-17.csv"]
    with (out / "kraken-SCEUR-trades-2021-04-17.csv").open() as f:
        rows = list(csv.DictReader(f))
    want = recorded("SC/EUR")
    assert len(want) == 6
    assert [r["id"] for r in rows] == [str(n) for n in range(1, 7)]
    assert [(Decimal(r["price"]), Decimal(r["qty"]), int(r["time"])) for r in rows] == [
        (Decimal(p), Decimal(v), t) for p, v, t, _ in want
    ]
    assert [r["is_buyer_maker"] for r in rows] == [
        "true" if s == "s" else "false" for *_, s in want
    ]

    data = out / "kraken-SCEUR-trades-2021-04-17.csv"
    await replays(tmp_path, data, "kraken:SCEUR", 6, "-p", "bar_interval_s=1")


async def test_kraken_klines_are_refused(tmp_path: Path) -> None:
    _need_ccxt()
    rc, _, err = await tradewind(
        tmp_path, "download", "--venue", "kraken", "--symbols", "XMR/USD", *DAY,
        "--kind", "klines", "-o", str(tmp_path / "x"),
    )  # fmt: skip
    assert (rc, err.strip().splitlines()) == (
        2,
        [
            "tradewind: --venue kraken --kind klines: its OHLC endpoint serves only the latest "
            "720 bars of an interval, so a past day cannot be read complete; download trades"
        ],
    )
    assert not (tmp_path / "x").exists()
