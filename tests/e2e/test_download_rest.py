"""``tradewind download --source rest`` against the fake exchange's Binance
REST history (``/api/v3/aggTrades``, ``/api/v3/klines``): pages through 429,
418 and cut connections, stays under the request-weight limit the answers
report, resumes a cut-off day after its last written id, reports an aggTrade
id jump as missing data (exit 1) and a missing kline as a hole at the venue
(exit 0), and ``backtest`` reads what it wrote."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.test_download import archive, base, listing, recorded_trade_ids, tradewind
from tradewind.exchanges.binance.fake_rest_history import BinanceRestHistory

pytestmark = pytest.mark.slow

DAYS = ["--start", "2024-08-08", "--end", "2024-08-09"]
DOC_EXAMPLES = Path(__file__).parents[1] / "data" / "venues" / "binance_rest_doc_examples.json"


def rest_args(fake_url: str, out: Path, *extra: str) -> list[str]:
    return ["download", "--source", "rest", "--rest-url", fake_url, "-o", str(out), *extra]


def agg_ids(path: Path) -> list[int]:
    with path.open() as f:
        return [int(r["agg_trade_id"]) for r in csv.DictReader(f)]


def test_fake_answers_in_the_documented_shapes() -> None:
    """The fake's bodies have the keys and JSON types of Binance's documented
    examples, field for field (so our reading of them is Binance's)."""
    doc = json.loads(DOC_EXAMPLES.read_text())
    fake = BinanceRestHistory(archive=_loaded_archive())
    agg = fake.agg_trades("BTCUSDT")[0]
    want = doc["aggTrades"][0]
    assert list(agg) == list(want)
    assert [type(v) for v in agg.values()] == [type(v) for v in want.values()]
    kline = fake.klines("BTCUSDT", "1m")[0]
    want_k = doc["klines"][0]
    assert [type(v) for v in kline] == [type(v) for v in want_k]


def _loaded_archive():  # type: ignore[no-untyped-def]
    from tests.conftest import market_file
    from tradewind.exchanges.binance.fake_history import BinanceHistory

    h = BinanceHistory([market_file("binance_spot_btcusdt_trades_20240808.jsonl")])
    h.load()
    return h


async def test_rest_trades_through_faults_then_backtest(tmp_path: Path) -> None:
    out = tmp_path / "data"
    async with archive() as fake:
        rest = fake.rest_history
        rest.throttle(1, retry_after_s=0.3)
        rest.cut(1, after=3)
        rc, stdout, err = await tradewind(
            tmp_path, *rest_args(base(fake), out, "--symbols", "BTCUSDT", *DAYS)
        )
        assert rc == 0, err
        rc2, stdout2, err2 = await tradewind(
            tmp_path, *rest_args(base(fake), out, "--symbols", "BTCUSDT", *DAYS)
        )
        assert rc2 == 0, err2
        assert stdout2.count("already here") == 2
        queries = [r.query for r in rest.requests]
    text = " ".join(stdout.split())
    assert "BTCUSDT 2024-08-08: 9,738 rows" in text
    assert "BTCUSDT 2024-08-09: 19 rows" in text
    assert "1 rate-limited answers waited out; 1 failed requests retried" in text
    # The day's first row is found in one-hour windows, then paged by id; day 2
    # continues from day 1's last id.
    windows = [q for q in queries if "startTime" in q]
    assert all(int(q["endTime"]) - int(q["startTime"]) == 3_599_999 for q in windows)
    assert len({q["startTime"] for q in windows}) == 24  # + the throttled and the cut one
    files = listing(out)
    assert files == ["BTCUSDT-aggTrades-2024-08-08.csv", "BTCUSDT-aggTrades-2024-08-09.csv"]
    ids = agg_ids(out / files[0]) + agg_ids(out / files[1])
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert {str(i) for i in ids} == recorded_trade_ids()
    next_day = {"symbol": "BTCUSDT", "fromId": str(agg_ids(out / files[0])[-1] + 1)}
    assert {**next_day, "limit": "1000"} in queries

    bt = tmp_path / "bt"
    rc, stdout, err = await tradewind(
        tmp_path, "backtest", "-q", "-d", str(out / files[0]), "-d", str(out / files[1]),
        "-p", "bar_interval_s=10", "-o", str(bt), "--no-plot",
    )  # fmt: skip
    assert rc == 0, err
    result = json.loads((bt / "result.json").read_text())
    assert result["metrics"]["market_events"] == 9757


async def test_a_cut_off_day_resumes_after_its_last_id(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["--symbols", "BTCUSDT", "--start", "2024-08-08"]
    async with archive() as fake:
        rest = fake.rest_history
        rest.cut(10, after=25)  # 24 hour windows (the last with 1000 rows), one page by id
        rc, _, err = await tradewind(tmp_path, *rest_args(base(fake), out, *args))
        assert rc == 1
        assert len(err.strip().splitlines()) == 1
        assert err.startswith(f"tradewind: cannot download {base(fake)}/api/v3/aggTrades?")
        partial = out / "BTCUSDT-aggTrades-2024-08-08.partial.csv"
        written = agg_ids(partial)
        assert len(written) == 2000
        rest.cut(0)
        rest.throttle(1, retry_after_s=0.3, status=418)
        n = len(rest.requests)
        rc, stdout, err = await tradewind(tmp_path, *rest_args(base(fake), out, *args))
        assert rc == 0, err
        resumed = rest.requests[n + 1]
        assert rest.requests[n].status == 418
    assert resumed.query == {"symbol": "BTCUSDT", "fromId": str(written[-1] + 1), "limit": "1000"}
    assert "9,738 rows" in stdout and "(resumed)" in stdout
    assert "1 rate-limited answers waited out" in stdout
    assert listing(out) == ["BTCUSDT-aggTrades-2024-08-08.csv"]
    ids = agg_ids(out / "BTCUSDT-aggTrades-2024-08-08.csv")
    assert ids == list(range(ids[0], ids[0] + 9738))


async def test_weight_limit_is_kept_from_the_used_weight_header(tmp_path: Path) -> None:
    """Other clients of the IP have used all but 12 requests' weight of each
    (2-second) window: the download waits for the next window instead of
    being refused."""
    out = tmp_path / "w"
    async with archive() as fake:
        rest = fake.rest_history
        rest.weight_window_s = 2
        rest.others_weight = rest.weight_limit - 12 * 4
        rc, stdout, err = await tradewind(
            tmp_path, *rest_args(base(fake), out, "--symbols", "BTCUSDT", "--start", "2024-08-08")
        )
        assert rc == 0, err
        assert rest.over_limit == 0
        assert max(r.used_weight for r in rest.requests) <= rest.weight_limit
        assert len(rest.requests) == 33  # 24 hour windows, 9 pages by id
    assert "waits for the request-weight limit" in stdout


async def test_gaps_id_jumps_fail_kline_holes_are_reported(tmp_path: Path) -> None:
    out = tmp_path / "g"
    async with archive() as fake:
        rest = fake.rest_history
        rest.archive.load()
        first = int(rest.agg_trades("BTCUSDT")[0]["a"])
        rest.leave_out_agg_ids(range(first + 1500, first + 1510))
        t0 = int(datetime(2024, 8, 8, 23, 56, tzinfo=UTC).timestamp() * 1000)
        rest.leave_out_klines({t0})
        rc, stdout, err = await tradewind(
            tmp_path, *rest_args(base(fake), out, "--symbols", "BTCUSDT", "--start", "2024-08-08")
        )
        assert rc == 1
        assert err.strip().splitlines() == [
            f"tradewind: gaps: BTCUSDT 2024-08-08: aggTrade ids {first + 1500}-{first + 1509} "
            "not sent (10 rows)"
        ]
        assert "9,728 rows" in stdout
        rc, stdout, err = await tradewind(
            tmp_path,
            *rest_args(base(fake), out, "--symbols", "BTCUSDT", "--start", "2024-08-08"),
            "--kind", "klines",
        )  # fmt: skip
    assert rc == 0, err
    text = " ".join(stdout.split())
    assert "BTCUSDT 2024-08-08: 5 rows" in text
    assert "BTCUSDT 2024-08-08: no 1m kline for 00:00-23:53 (1434): the venue has none" in text
    assert "BTCUSDT 2024-08-08: no 1m kline for 23:56 (1): the venue has none" in text
    assert "2 stretches without data at the venue" in text


async def test_unknown_symbol_over_rest_is_one_line(tmp_path: Path) -> None:
    async with archive() as fake:
        rc, _, err = await tradewind(
            tmp_path,
            *rest_args(
                base(fake), tmp_path / "u", "--symbols", "NOPEUSDT", "--start", "2024-08-08"
            ),
        )
    assert rc == 1
    assert err.strip().splitlines() == [
        f"tradewind: NOPEUSDT: Binance has no such spot symbol ({base(fake)} says -1121 "
        "Invalid symbol.)"
    ]
