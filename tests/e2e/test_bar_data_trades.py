"""Bar files trade: the README's sweep on the shipped daily CSV has trades and
PnL on every point, and ``tradewind run`` reads the same file the same way
(symbol and bar length from its name, fills at the next bar's open)."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tests.conftest import market_file
from tests.e2e.test_cli_matrix import tradewind_exe

DAILY = "binance_spot_btcusdt_1d_2020.csv"


def _opens() -> dict[int, Decimal]:
    with market_file(DAILY).open() as fh:
        return {
            int(datetime.fromisoformat(r["datetime"]).replace(tzinfo=UTC).timestamp()): Decimal(
                r["open"]
            )
            for r in csv.DictReader(fh)
        }


def test_readme_sweep_trades_on_the_daily_csv(tmp_path: Path) -> None:
    out = tmp_path / "sweep-out"
    args = [
        "backtest", "-q", "-d", str(market_file(DAILY)), "-s", "zscore",
        "--grid", "window=10,20,30", "--grid", "entry_z=1.5,2", "-o", str(out),
    ]  # fmt: skip
    subprocess.run([tradewind_exe(), *args], check=True, capture_output=True, timeout=600)
    sweep = json.loads((out / "sweep.json").read_text())
    points = sweep["points"]
    assert len(points) == 6
    for p in points:
        m = p["metrics"]
        assert m["trades"] > 0, p
        assert Decimal(str(m["pnl"])) != 0, p


def test_run_on_the_daily_csv_fills_at_the_next_open(tmp_path: Path) -> None:
    db = tmp_path / "bars.db"
    args = ["run", "-q", "-d", str(market_file(DAILY)), "-s", "zscore", "--db", str(db)]
    res = subprocess.run(
        [tradewind_exe(), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": ""},
    )
    conn = sqlite3.connect(db)
    bars = conn.execute("select count(*), min(symbol), max(symbol) from bars").fetchone()
    assert bars == (366, "BTCUSDT", "BTCUSDT")
    assert "│ bars" in res.stdout and " 366 │" in res.stdout
    fills = conn.execute("select ts_event, price from fills order by ts_event").fetchall()
    assert len(fills) >= 2
    opens = _opens()
    for ts, price in fills:
        day = ts // 10**9 // 86_400 * 86_400
        assert Decimal(str(price)) == opens[day], (ts, price)
