"""``tradewind download --venue okx`` through ccxt against the fake
exchange's OKX v5 REST history (``public/instruments``,
``market/history-trades``, ``market/history-candles``): trades and klines
through a 429 (``50011``) and a cut connection, a trade-id jump reported as
missing data, files that ``backtest`` reads as ``okx:BTCUSDT``; usage errors
and a missing ccxt end in one line with exit 2."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_download import listing, tradewind
from tradewind.exchanges.fake import FakeExchange

pytestmark = pytest.mark.slow

OKX = Path(__file__).parents[1] / "data" / "venues" / "okx_v5_ws_20220513.jsonl"
DAY = ["--start", "2022-05-13"]


def _need_ccxt() -> None:
    import importlib.util

    from tests.conftest import skip_or_fail

    if importlib.util.find_spec("ccxt") is None:
        skip_or_fail("ccxt is not installed (pip install 'tradewind[ccxt]')")


@contextlib.asynccontextmanager
async def okx() -> AsyncIterator[FakeExchange]:
    _need_ccxt()
    async with FakeExchange(OKX, autostart=False, exchanges=["okx"]) as fake:
        yield fake


def url(fake: FakeExchange) -> str:
    return f"http://{fake.host}:{fake.port}"


async def download_through_faults(
    cwd: Path, fake: FakeExchange, hist: Any, after: int, venue: str, out: Path, *args: str
) -> str:
    """A download past one rate-limited answer and, after ``after`` whole
    answers, one cut off mid-body; its printout on one line."""
    hist.throttle(1)
    hist.cut(1, after=after)
    rc, stdout, err = await tradewind(
        cwd, "download", "--venue", venue, "--rest-url", url(fake), "-o", str(out), *args
    )
    assert rc == 0, err
    return " ".join(stdout.split())


async def replays(cwd: Path, data: Path, label: str, events: int, *params: str) -> None:
    """The downloaded file replays with ``backtest``: ``label`` in its
    printout, ``events`` market events in its result."""
    bt = cwd / "bt"
    rc, stdout, err = await tradewind(
        cwd, "backtest", "-q", "-d", str(data), *params, "-o", str(bt), "--no-plot"
    )
    assert rc == 0, err
    assert label in " ".join(stdout.split())
    assert json.loads((bt / "result.json").read_text())["metrics"]["market_events"] == events


def okx_args(fake: FakeExchange, out: Path, *extra: str) -> list[str]:
    return ["download", "--venue", "okx", "--rest-url", url(fake), "-o", str(out), *extra]


def recorded_btc_usdt() -> list[tuple[int, str, str, int]]:
    """(trade id, price, size, time) of every BTC-USDT trade in the recording."""
    seen = {}
    for line in OKX.read_text().splitlines():
        msg = json.loads(line)
        if msg.get("arg", {}).get("channel") == "trades":
            for t in msg.get("data", []):
                if t["instId"] == "BTC-USDT":
                    seen[int(t["tradeId"])] = (int(t["tradeId"]), t["px"], t["sz"], int(t["ts"]))
    return [seen[k] for k in sorted(seen)]


def test_fake_okx_answers_in_the_documented_shapes() -> None:
    """The fake's history items have the keys and JSON types of OKX's
    documented examples (our fake and ccxt then read the same thing)."""
    from tradewind.exchanges.okx.fake_rest_history import OkxRestHistory

    doc = json.loads((OKX.parent / "okx_rest_doc_examples.json").read_text())
    fake = OkxRestHistory([OKX])
    fake.load()
    trade = fake.served_trades("BTC-USDT")[0]
    assert sorted(trade) == sorted(doc["history-trades"][0])
    assert {type(v) for v in trade.values()} == {str}
    candle = fake.candles("BTC-USDT", 60_000)[0]
    want = doc["history-candles"][0]
    assert len(candle) == len(want) and all(isinstance(v, str) for v in candle)


async def test_okx_trades_and_klines_through_faults_then_backtest(tmp_path: Path) -> None:
    out = tmp_path / "okx"
    async with okx() as fake:
        hist = fake.okx_history
        # the instruments whole, the first trades page cut
        text = await download_through_faults(
            tmp_path, fake, hist, 1, "okx", out, "--symbols", "BTC/USDT", *DAY
        )
        trades_requests = [r.query for r in hist.requests if r.path.endswith("history-trades")]
        rc, kstdout, err = await tradewind(
            tmp_path, *okx_args(fake, out, "--symbols", "BTC-USDT", *DAY, "--kind", "klines")
        )
        assert rc == 0, err
        rc, again, err = await tradewind(
            tmp_path, *okx_args(fake, out, "--symbols", "BTCUSDT", *DAY)
        )
        assert rc == 0, err
    assert "BTC/USDT 2022-05-13: 69 rows" in text
    assert "1 rate-limited answers waited out; 1 failed requests retried" in text
    assert "already here" in again
    day_end = int(datetime(2022, 5, 14, tzinfo=UTC).timestamp() * 1000)
    assert {"instId": "BTC-USDT", "limit": "100", "type": "2", "after": str(day_end)} in (
        trades_requests
    )
    assert listing(out) == ["okx-BTCUSDT-1m-2022-05-13.csv", "okx-BTCUSDT-trades-2022-05-13.csv"]
    with (out / "okx-BTCUSDT-trades-2022-05-13.csv").open() as f:
        got = [(int(r["id"]), r["price"], r["qty"], int(r["time"])) for r in csv.DictReader(f)]
    want = recorded_btc_usdt()
    assert len(want) == 69
    assert [(i, float(p), float(q), t) for i, p, q, t in got] == [
        (i, float(p), float(q), t) for i, p, q, t in want
    ]
    ktext = " ".join(kstdout.split())
    assert "BTC-USDT 2022-05-13: 1 rows" in ktext
    assert "no 1m kline for 00:00-16:26 (987): the venue has none" in ktext
    kline = (out / "okx-BTCUSDT-1m-2022-05-13.csv").read_text().splitlines()[1].split(",")
    prices = [float(p) for _i, p, _q, t in want if 1652459220000 <= t < 1652459280000]
    assert kline[0] == "1652459220000" and float(kline[2]) == max(prices)

    data = out / "okx-BTCUSDT-trades-2022-05-13.csv"
    await replays(tmp_path, data, "okx:BTCUSDT", 69, "-p", "bar_interval_s=1")


async def test_an_okx_trade_id_jump_is_missing_data(tmp_path: Path) -> None:
    async with okx() as fake:
        fake.okx_history.leave_out_trade_ids(range(338476320, 338476325))
        rc, stdout, err = await tradewind(
            tmp_path, *okx_args(fake, tmp_path / "j", "--symbols", "BTC/USDT", *DAY)
        )
    assert rc == 1
    assert err.strip().splitlines() == [
        "tradewind: gaps: BTC/USDT 2022-05-13: trade ids 338476320-338476324 not sent (5 rows)"
    ]
    assert "64 rows" in stdout


async def test_an_unknown_market_is_one_line(tmp_path: Path) -> None:
    async with okx() as fake:
        rc, _, err = await tradewind(
            tmp_path, *okx_args(fake, tmp_path / "u", "--symbols", "NOPE/USDT", *DAY)
        )
    assert (rc, err.strip().splitlines()) == (
        1,
        ["tradewind: NOPE/USDT: okx lists no such spot market"],
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--venue", "bybit", "--kind", "trades"],
         "tradewind: --venue bybit --kind trades: its REST API serves only its latest "
         "trades; download klines, or record trades with tradewind record"),
        (["--venue", "coinbase"],
         "tradewind: --venue coinbase --kind trades: its REST API gives the latest trades of "
         "a window given in whole seconds, so a busy day cannot be paged without loss; "
         "download klines, or record trades with tradewind record"),
        (["--venue", "okx", "--kind", "aggTrades"],
         "tradewind: --kind aggTrades: use one of trades, klines with --venue okx"),
        (["--venue", "okx", "--source", "archive"],
         "tradewind: --source archive: okx has no archives; use --source rest"),
        (["--venue", "okx", "--kind", "klines", "--interval", "7m"],
         "tradewind: --interval 7m: use one of 1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, "
         "12h, 1d"),
        (["--venue", "kraken", "--end", "2022-05-12"],
         "tradewind: --end 2022-05-12 is before --start 2022-05-13"),
    ],
)  # fmt: skip
async def test_bad_ccxt_usage_is_one_line(args: list[str], line: str, tmp_path: Path) -> None:
    rc, _, err = await tradewind(
        tmp_path, "download", "--symbols", "BTC/USDT", *DAY, *args, "-o", str(tmp_path / "x")
    )
    assert (rc, err.strip().splitlines()) == (2, [line])
    assert not (tmp_path / "x").exists()


async def test_okx_trades_of_today_are_refused(tmp_path: Path) -> None:
    today = datetime.now(UTC).date().isoformat()
    rc, _, err = await tradewind(
        tmp_path, "download", "--venue", "okx", "--symbols", "BTC/USDT", "--start", today,
        "-o", str(tmp_path / "x"),
    )  # fmt: skip
    assert (rc, err.strip().splitlines()) == (
        2,
        [
            f"tradewind: --end {today}: okx pages trades back from a day's end, so only "
            "finished days; end yesterday at the latest"
        ],
    )


async def test_without_ccxt_one_line_says_how_to_install_it(tmp_path: Path) -> None:
    """A ``ccxt`` package that cannot be imported stands in for a missing one."""
    shim = tmp_path / "shim" / "ccxt"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no ccxt here')\n")
    env = {**os.environ, "PYTHONPATH": str(shim.parent)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradewind", "download", "--venue", "okx", "--symbols",
        "BTC/USDT", *DAY, "-o", str(tmp_path / "x"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "tradewind: --venue okx downloads through ccxt, which is not installed: "
        "pip install 'tradewind[ccxt]'"
    ]
