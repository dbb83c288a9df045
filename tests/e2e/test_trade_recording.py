"""A recording made while trading holds the REST depth snapshots the feed
fetched, where it applied them: ``run`` on the recording rebuilds the same
snapshot rows and every book diff the live process stored."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import spawned
from tests.e2e.test_trade import env_for, fake_exchange, trade_args

pytestmark = pytest.mark.slow


def snapshot_lines(rec: Path) -> list[bytes]:
    lines = gzip.decompress(rec.read_bytes()).splitlines()
    return [line for line in lines if b"lastUpdateId" in line]


def table(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql).fetchall())


async def test_trade_record_then_run_rebuilds_the_books(tmp_path: Path) -> None:
    live, rec = tmp_path / "live.db", tmp_path / "rec.jsonl.gz"
    async with (
        fake_exchange(speed=50) as fake,
        spawned(
            *trade_args(live, "--no-dashboard", "--record", str(rec)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env_for(fake),
            cwd=tmp_path,
        ) as proc,
    ):
        await fake.wait_done(timeout=120)
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    recorded = snapshot_lines(rec)
    assert len(recorded) == 1 and recorded[0].startswith(b'{"lastUpdateId":')
    assert b',"symbol":"BTCUSDT",' in recorded[0]

    replay = tmp_path / "replay.db"
    run = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tradewind", "run", "--data", str(rec), "--db", str(replay), "-q"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    _, err = await asyncio.wait_for(run.communicate(), 120)
    assert run.returncode == 0, err.decode()[-2000:]

    snaps = "SELECT id, symbol, bids, asks FROM book_deltas WHERE snapshot ORDER BY id"
    got, want = table(replay, snaps), table(live, snaps)
    assert len(want) == 1 and got == want
    (snap_id,) = table(live, "SELECT last_update_id FROM book_deltas WHERE snapshot")[0]
    assert isinstance(snap_id, int)
    diffs = "SELECT id, bids, asks, last_update_id FROM book_deltas WHERE NOT snapshot"
    live_diffs, replay_diffs = set(table(live, diffs)), set(table(replay, diffs))
    assert len(live_diffs) > 100
    assert live_diffs <= replay_diffs
    # What only the replay has came before the snapshot: a book drops it.
    extra = replay_diffs - live_diffs
    assert all(isinstance(u, int) and u <= snap_id for *_, u in extra), sorted(extra)[:3]
    trades = "SELECT id, price, qty FROM trades ORDER BY id"
    assert table(replay, trades) == table(live, trades)
