"""`tradewind run` end to end on the bundled real recording."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tradewind.runtime.embedded import RunSummary, run_embedded


async def _run(make_settings: Any, **kw: Any) -> RunSummary:
    return await run_embedded(make_settings(**kw))


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql).fetchall())


async def test_summary_counts_equal_rows_in_sqlite(make_settings: Any, tmp_path: Path) -> None:
    s = await _run(make_settings)
    db = tmp_path / "tw.db"
    assert s.events_in == 5981
    assert s.signals > 0 and s.fills > 0
    market_rows = sum(
        _rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in ("trades", "quotes", "book_deltas")
    )
    assert market_rows == s.events_in
    assert _rows(db, "SELECT count(*) FROM bars")[0][0] == s.bars
    assert _rows(db, "SELECT count(*) FROM signals")[0][0] == s.signals
    assert _rows(db, "SELECT count(*) FROM risk_decisions WHERE approved")[0][0] == s.approved
    assert _rows(db, "SELECT count(*) FROM risk_decisions WHERE NOT approved")[0][0] == s.rejected
    assert _rows(db, "SELECT count(*) FROM orders")[0][0] == s.orders == s.approved
    assert _rows(db, "SELECT count(*) FROM fills")[0][0] == s.fills
    assert _rows(db, "SELECT count(*) FROM positions")[0][0] == s.fills
    assert s.rows["trades"] == _rows(db, "SELECT count(*) FROM trades")[0][0]
    fees = _rows(db, "SELECT fee FROM fills")
    assert (
        sum((__import__("decimal").Decimal(f[0]) for f in fees), __import__("decimal").Decimal(0))
        == s.totals["USDT"].fees
    )


async def test_every_fill_passed_an_approving_risk_decision(
    make_settings: Any, tmp_path: Path
) -> None:
    await _run(make_settings)
    db = tmp_path / "tw.db"
    orphans = _rows(
        db,
        """
        SELECT f.id FROM fills f
        LEFT JOIN orders o ON o.client_order_id = f.client_order_id
        LEFT JOIN risk_decisions d ON d.client_order_id = f.client_order_id AND d.approved
        WHERE o.id IS NULL OR d.id IS NULL""",
    )
    assert orphans == []
    assert _rows(db, "SELECT count(*) FROM fills")[0][0] > 0


async def test_replay_is_deterministic(make_settings: Any, tmp_path: Path) -> None:
    first = await run_embedded(make_settings(store={"url": f"sqlite:///{tmp_path / 'a.db'}"}))
    second = await run_embedded(make_settings(store={"url": f"sqlite:///{tmp_path / 'b.db'}"}))
    assert first.outcome() == second.outcome()
    q = "SELECT id, side, price, qty, fee FROM fills ORDER BY id"
    assert _rows(tmp_path / "a.db", q) == _rows(tmp_path / "b.db", q)


async def test_recorded_positions_marks_included_do_not_depend_on_the_batch_size(
    make_settings: Any, tmp_path: Path
) -> None:
    q = "SELECT * FROM positions ORDER BY id"
    got = []
    for batch in (32, 1024):
        db = tmp_path / f"b{batch}.db"
        await run_embedded(
            make_settings(store={"url": f"sqlite:///{db}"}, bus={"batch_size": batch})
        )
        got.append(_rows(db, q))
    assert got[0] and got[0] == got[1]


async def test_rerun_into_the_same_database_adds_nothing(
    make_settings: Any, tmp_path: Path
) -> None:
    await _run(make_settings)
    before = _rows(tmp_path / "tw.db", "SELECT count(*) FROM trades")[0][0]
    second = await _run(make_settings)
    assert second.rows.get("trades", 0) == 0
    assert _rows(tmp_path / "tw.db", "SELECT count(*) FROM trades")[0][0] == before


async def test_malformed_lines_are_counted_and_skipped(make_settings: Any, tmp_path: Path) -> None:
    from tradewind.exchanges.replay import bundled_recording

    good = bundled_recording().read_bytes().splitlines()[:400]
    bad = [
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUS',
        b'{"stream":"btcusdt@funky","data":{"e":"funky","E":1}}',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
        b'"t":1,"p":"-61837.63","q":"0.02","T":1723161255342,"m":true,"M":true}}',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
        b'"t":2,"p":"NaN","q":"0.02","T":1723161255342,"m":true,"M":true}}',
        b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"inf",'
        b'"a":"2","A":"1"}}',
        b"not json at all",
    ]
    mixed = good[:200] + bad + good[200:]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(mixed) + b"\n")
    s = await _run(make_settings, feed={"data": [path]})
    assert s.events_in == 400
    assert s.parse_errors == {
        "malformed_json": 2,
        "unknown_stream": 1,
        "invalid_price": 2,
        "invalid_qty": 1,
    }


def test_cli_run_prints_the_summary(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    out = subprocess.run(
        [sys.executable, "-m", "tradewind", "run", "--db", str(tmp_path / "cli.db"), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    for label in (
        "events in",
        "bars",
        "signals",
        "orders approved",
        "orders rejected",
        "fills",
        "position binance:BTCUSDT",
        "fees",
        "realized PnL",
        "unrealized PnL",
        "tick-to-order p50",
        "tick-to-order p99",
    ):
        assert label in out, label
    assert "5,981" in out
