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
    stored = shown.pop("stored")
    assert shown == b
    # The run's own rows, by their run_id column: what its summary counted.
    for table, n in stored["rows"].items():
        assert n == b["summary"]["rows"].get(table, 0), table
    assert len(stored["fills"]) == b["summary"]["fills"] == stored["rows"]["fills"] > 0
    assert {f["symbol"] for f in stored["fills"]} == {"BTCUSDT"}
    assert (
        all(o["status"] for o in stored["orders"])
        and len(stored["orders"]) == b["summary"]["orders"]
    )
    first_rows = json.loads(_tw("show", a["run_id"], "--db", "r.db", "--json", cwd=tmp_path))
    assert not {f["id"] for f in first_rows["stored"]["fills"]} & {f["id"] for f in stored["fills"]}
    again = _tw("run", "-q", "--db", "r.db", cwd=tmp_path)
    rerun = json.loads(_tw("runs", "--db", "r.db", "--json", cwd=tmp_path))[-1]
    assert rerun["run_id"] in again
    own = json.loads(_tw("show", rerun["run_id"], "--db", "r.db", "--json", cwd=tmp_path))
    assert sum(own["stored"]["rows"].values()) == 0, "a rerun adds no rows, so none is its own"
    text = _tw("show", b["run_id"], "--db", "r.db", cwd=tmp_path)
    assert "zscore" in text and "stored rows with this run id" in text
    assert f"fills ({len(stored['fills'])})" in text
    conn = sqlite3.connect(tmp_path / "r.db")
    added = {k: 0 for k in a["summary"]["rows"]}
    for run in [*listed, rerun]:
        for table, n in run["summary"]["rows"].items():
            added[table] = added.get(table, 0) + n
    for table, n in added.items():
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] == n, table


def test_runs_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """``run`` and ``backtest --db postgresql://…`` record their runs row as on
    SQLite; ``runs`` and ``show`` read them back; ignored messages by reason
    travel with the summary (the 4-symbol recording has 15 open klines)."""
    import asyncio

    import asyncpg

    async def count(table: str) -> int:
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    daily = str(market_file(DAILY))
    kline = str(market_file("binance_spot_4sym_ws_20210814.jsonl"))
    first = _tw("run", "-q", "-d", kline, "--db", postgres_url, cwd=tmp_path)
    assert "kline_open 15" in first
    (a,) = json.loads(_tw("runs", "--db", postgres_url, "--json", cwd=tmp_path))
    # Retention runs on the replay's clock, so the 2021 trades, quotes and
    # books (years past the wall clock's 7 and 90 days) are all kept.
    kept = a["summary"]["rows"]
    assert kept["bars"] > 0 and kept["quotes"] > 0 and kept["book_deltas"] > 0
    for table, n in kept.items():
        assert asyncio.run(count(table)) == n, table
    _tw(
        "backtest",
        "-q",
        "-d",
        daily,
        "-s",
        "zscore",
        "-p",
        "window=10",
        "--db",
        postgres_url,
        "-o",
        "out",
        "--no-plot",
        cwd=tmp_path,
    )
    assert not list(tmp_path.glob("*.db")), "nothing written to SQLite"
    listed = json.loads(_tw("runs", "--db", postgres_url, "--json", cwd=tmp_path))
    assert [r["command"] for r in listed] == ["run", "backtest"]
    assert listed[0] == a and a["run_id"] in first
    assert a["summary"]["ignored"] == {"kline_open": 15}
    b = listed[1]
    assert b["strategy"] == "zscore" and b["summary"]["fills"] > 0
    assert b["summary"]["ignored"] == {}
    shown = json.loads(_tw("show", b["run_id"], "--db", postgres_url, "--json", cwd=tmp_path))
    stored = shown.pop("stored")
    assert shown == b
    assert len(stored["fills"]) == stored["rows"]["fills"] == b["summary"]["fills"]
    assert "kline_open" in _tw("show", a["run_id"], "--db", postgres_url, cwd=tmp_path)
    assert asyncio.run(count("runs")) == 2


def test_show_on_a_postgresql_database_without_the_run(tmp_path: Path, postgres_url: str) -> None:
    res = subprocess.run(
        [tradewind_exe(), "show", "nope", "--db", postgres_url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": ""},
    )
    assert res.returncode == 2
    assert res.stderr.strip().startswith("tradewind: --db ") and "no runs table" in res.stderr
