"""Run ids: two runs into one database are told apart, ``runs`` lists them,
``show`` prints one again, and the rows a run reports are the rows stored."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from tests.conftest import market_file
from tests.e2e.test_cli_matrix import tradewind_exe

DAILY = "binance_spot_btcusdt_1d_2020.csv"


def _tw(*args: str, cwd: Path) -> str:
    res = subprocess.run(
        [tradewind_exe(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_two_runs_in_one_database(tmp_path: Path) -> None:
    daily = str(market_file(DAILY))
    first = _tw("run", "-q", "--db", "r.db", cwd=tmp_path)
    _tw("run", "-q", "-d", daily, "-s", "zscore", "-p", "window=10", "--db", "r.db", cwd=tmp_path)
    listed = json.loads(_tw("runs", "--db", "r.db", "--json", cwd=tmp_path))
    assert len(listed) == 2
    a, b = listed
    assert a["run_id"] != b["run_id"] and a["run_id"] in first
    assert (a["strategy"], b["strategy"]) == ("ema_cross", "zscore")
    assert b["params"]["window"] == 10 and b["data"][0]["format"] == "basana_bars_csv"
    assert b["summary"]["fills"] > 0
    shown = json.loads(_tw("show", b["run_id"][:-2], "--db", "r.db", "--json", cwd=tmp_path))
    assert shown == b
    text = _tw("show", a["run_id"], "--db", "r.db", cwd=tmp_path)
    assert "ema_cross" in text and "rows" in text
    conn = sqlite3.connect(tmp_path / "r.db")
    added = {k: 0 for k in a["summary"]["rows"]}
    for run in listed:
        for table, n in run["summary"]["rows"].items():
            added[table] = added.get(table, 0) + n
    for table, n in added.items():
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] == n, table
