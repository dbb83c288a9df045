"""``tradewind trade`` end to end: a real process on the fake exchange's live
Binance protocol, paper execution, the dashboard in a pseudo-terminal, a
clean stop on Ctrl-C, and a restart after SIGKILL that resumes the account."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import spawned
from tradewind.events import Fill, Liquidity, Side
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.replay import bundled_recording
from tradewind.portfolio import Portfolio

pytestmark = pytest.mark.slow

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
STRATEGY = ["-p", "fast=3", "-p", "slow=8", "-p", "bar_interval_s=1"]


@contextlib.asynccontextmanager
async def fake_exchange(speed: float) -> AsyncIterator[FakeExchange]:
    async with FakeExchange(bundled_recording(), speed=speed, exchanges=["binance"]) as fake:
        yield fake


def env_for(fake: FakeExchange) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(
        {
            "TRADEWIND_FEED__WS_URLS": json.dumps(fake.ws_urls()),
            "TRADEWIND_FEED__REST_URLS": json.dumps(fake.rest_urls()),
            "COLUMNS": "160",
            "LINES": "60",
        }
    )
    return env


def trade_args(db: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tradewind",
        "trade",
        "--venue",
        "binance",
        "--symbols",
        "BTCUSDT",
        *STRATEGY,
        "--db",
        str(db),
        *extra,
    ]


def fills_in(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM fills").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def account_from_store(db: Path) -> Portfolio:
    """The account the fills in the store add up to, computed here, not by risk."""
    pf = Portfolio()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT id, exchange, symbol, side, price, qty, fee, ts_event FROM fills "
            "ORDER BY ts_event, id"
        ).fetchall()
    for fid, ex, sym, side, price, qty, fee, ts in rows:
        pf.apply(
            Fill(
                id=fid,
                ts_event=int(ts),
                client_order_id=fid,
                exchange_order_id=fid,
                exchange=ex,
                symbol=sym,
                side=Side(side),
                price=Decimal(str(price)),
                qty=Decimal(str(qty)),
                fee=Decimal(str(fee)),
                fee_currency="USDT",
                liquidity=Liquidity.TAKER,
            )
        )
    return pf


@contextlib.asynccontextmanager
async def trade_in_pty(
    db: Path, fake: FakeExchange, cwd: Path, *extra: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``tradewind trade`` on a pseudo-terminal (the dashboard draws only on
    one): the process and the non-blocking master end to read and type on."""
    master, slave = pty.openpty()
    try:
        async with spawned(
            *trade_args(db, *extra),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env_for(fake), "TERM": "xterm-256color"},
            cwd=cwd,
        ) as proc:
            os.close(slave)
            slave = -1
            os.set_blocking(master, False)
            yield proc, master
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


async def wait_for(cond: object, timeout: float) -> None:
    assert callable(cond)
    for _ in range(int(timeout * 10)):
        if cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


async def test_dashboard_in_a_pty_shows_position_and_pnl(tmp_path: Path) -> None:
    db = tmp_path / "dash.db"
    out = bytearray()
    async with (
        fake_exchange(speed=20) as fake,
        trade_in_pty(db, fake, tmp_path, "--duration", "12") as (proc, master),
    ):
        async with asyncio.timeout(90):
            while proc.returncode is None:
                with contextlib.suppress(BlockingIOError, OSError):
                    out += os.read(master, 65536)
                await asyncio.sleep(0.05)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.01)
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(master, 65536):
                out += chunk
    assert proc.returncode == 0, out[-2000:].decode(errors="replace")
    text = ANSI.sub(b"", out).decode(errors="replace")
    assert "PAPER TRADING" in text
    frames = text.split("PAPER TRADING (simulated orders)")
    assert len(frames) > 3, "the dashboard was not redrawn"
    last = frames[-1].split("stopping:")[0]
    assert fills_in(db) > 0
    pf = account_from_store(db)
    p = pf.positions[("binance", "BTCUSDT")]
    # The last frame, after the fills: the position and PnL the store adds up to.
    row = next(line for line in last.splitlines() if "binance:BTCUSDT" in line)
    cells = [c.strip() for c in row.split("│")]
    qty = f"{p.qty.normalize():f}" if p.qty else "0"
    assert qty in cells, row
    assert f"{p.realized_pnl - p.fees:,.4f}" in cells, row
    assert "connected" in row
    for label in ("equity (PnL, USDT)", "drawdown", "risk state", "ACTIVE", "tick-to-order p99"):
        assert label in last, label
    assert " fill " in last and "@" in last


async def test_ctrl_c_stops_cleanly_and_prints_the_summary(tmp_path: Path) -> None:
    db = tmp_path / "int.db"
    async with (
        fake_exchange(speed=10) as fake,
        spawned(
            *trade_args(db, "--no-dashboard", "--status-every", "1"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env_for(fake),
            cwd=tmp_path,
        ) as proc,
    ):
        await wait_for(lambda: fills_in(db) >= 2, 60)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stdout.decode()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert "paper trading: orders are simulated" in " ".join(text.split())
    assert "stopping: cancelling open orders" in text
    assert "Tradewind run" in text and "fills" in text
    with contextlib.closing(sqlite3.connect(db)) as conn:
        ((run_id, command, strategy, data, summary),) = conn.execute(
            "SELECT run_id, command, strategy, data, summary FROM runs"
        ).fetchall()
        fills = conn.execute("SELECT count(*) FROM fills").fetchone()[0]
    assert run_id in text and (command, strategy) == ("trade", "ema_cross")
    assert json.loads(data)[0]["path"] == "live binance"
    assert json.loads(summary)["rows"]["fills"] == fills >= 2
    with contextlib.closing(sqlite3.connect(db)) as conn:
        open_orders = conn.execute(
            "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_updates u "
            "WHERE u.client_order_id = o.client_order_id AND u.status IN "
            "('filled', 'canceled', 'rejected', 'expired'))"
        ).fetchone()[0]
    assert open_orders == 0


async def test_restart_after_sigkill_resumes_the_account(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    async with fake_exchange(speed=10) as fake:
        proc = await asyncio.create_subprocess_exec(
            *trade_args(db, "--no-dashboard"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env_for(fake),
            cwd=tmp_path,
        )
        try:
            await wait_for(lambda: fills_in(db) >= 3, 60)
        finally:
            proc.kill()
            await proc.wait()
    stored = account_from_store(db)
    before = stored.positions[("binance", "BTCUSDT")]
    # Restarted on the same database with a feed that sends nothing new: the
    # first status line is the account as rebuilt from the store.
    async with FakeExchange(bundled_recording(), autostart=False, exchanges=["binance"]) as quiet:
        proc = await asyncio.create_subprocess_exec(
            *trade_args(db, "--no-dashboard", "--status-every", "0.5", "--duration", "3"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env_for(quiet),
            cwd=tmp_path,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    first = next(
        line for line in stdout.decode().splitlines() if line.startswith("binance:BTCUSDT")
    )
    assert f"position={before.qty.normalize():f}" in first or (
        before.qty == 0 and "position=0 " in first
    ), first
    assert f"realized_pnl={before.realized_pnl - before.fees:,.4f}" in first, first


def fills_of(db: Path) -> list[tuple[str, str, str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT client_order_id, side, price, qty FROM fills ORDER BY ts_event, id"
        ).fetchall()
    return [tuple(map(str, r)) for r in rows]  # type: ignore[misc]


async def _lines_until(
    stream: asyncio.StreamReader, needle: str | tuple[str, ...], timeout: float
) -> None:
    needles = (needle,) if isinstance(needle, str) else needle
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"ended before {needle!r}")
            if any(n in line for n in needles):
                return


async def _trade_to_the_end(fake: FakeExchange, db: Path, tmp: Path) -> None:
    async with spawned(
        *trade_args(db, "--no-dashboard"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env_for(fake),
        cwd=tmp,
    ) as proc:
        await fake.wait_done(timeout=120)
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_killed_and_restarted_equals_undisturbed(tmp_path: Path) -> None:
    """The same feed twice at a fixed speed: once undisturbed, once with the
    process SIGKILLed while the feed is held, restarted on the same database,
    and the feed let go. Every fill and the final account must be the same."""
    speed = 20
    undisturbed = tmp_path / "a.db"
    async with fake_exchange(speed) as fake:
        await _trade_to_the_end(fake, undisturbed, tmp_path)

    killed = tmp_path / "b.db"
    async with fake_exchange(speed) as fake:
        proc = await asyncio.create_subprocess_exec(
            *trade_args(killed, "--no-dashboard"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env_for(fake),
            cwd=tmp_path,
        )
        try:
            await wait_for(lambda: fills_in(killed) >= 2, 60)
            fake.pause()
            await asyncio.sleep(1.5)  # everything sent so far is processed and stored
        finally:
            proc.kill()
            await proc.wait()
        assert not fake.venues["binance"].done.is_set(), "the feed ended before the kill"
        async with spawned(
            *trade_args(killed, "--no-dashboard", "--status-every", "0.3"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env_for(fake),
            cwd=tmp_path,
        ) as proc:
            assert proc.stdout is not None
            # Synced on a fresh snapshot: "waiting" while the feed is held (a
            # spot snapshot's row waits for the next diff to date it).
            await _lines_until(proc.stdout, ("feed=waiting", "feed=connected"), 60)
            fake.resume()
            await fake.wait_done(timeout=120)
            await asyncio.sleep(2)
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0

    a, b = fills_of(undisturbed), fills_of(killed)
    assert len(a) >= 4
    assert b == a
    pa = account_from_store(undisturbed).positions[("binance", "BTCUSDT")]
    pb = account_from_store(killed).positions[("binance", "BTCUSDT")]
    assert (pb.qty, pb.realized_pnl, pb.fees) == (pa.qty, pa.realized_pnl, pa.fees)


def _run(db: Path, data: Path, tmp: Path) -> None:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "tradewind", "run", "--data", str(data), "--db", str(db), "-q"],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=tmp,
    )


def _table(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql).fetchall())


async def test_record_then_run_gives_the_same_trades(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl.gz"
    async with (
        fake_exchange(speed=50) as fake,
        spawned(
            *[sys.executable, "-m", "tradewind", "record", "--venue", "binance"],
            *["--symbols", "BTCUSDT", "-o", str(rec)],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env_for(fake),
            cwd=tmp_path,
        ) as proc,
    ):
        await fake.wait_done(timeout=120)
        await asyncio.sleep(1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert "recorded" in stdout.decode()
    _run(tmp_path / "rec.db", rec, tmp_path)
    _run(tmp_path / "orig.db", bundled_recording(), tmp_path)
    trades = "SELECT trade_id, price, qty, ts_event FROM trades ORDER BY ts_event, trade_id"
    got, want = _table(tmp_path / "rec.db", trades), _table(tmp_path / "orig.db", trades)
    assert len(want) > 100
    assert got == want
    fills = "SELECT client_order_id, side, price, qty FROM fills ORDER BY ts_event, id"
    assert _table(tmp_path / "rec.db", fills) == _table(tmp_path / "orig.db", fills)


async def test_a_dropped_connection_shows_and_trading_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "drop.db"
    async with (
        fake_exchange(speed=10) as fake,
        spawned(
            *trade_args(db, "--no-dashboard", "--status-every", "0.3"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env_for(fake),
            cwd=tmp_path,
        ) as proc,
    ):
        assert proc.stdout is not None
        await _lines_until(proc.stdout, "feed=connected reconnects=0", 60)
        await wait_for(lambda: fills_in(db) >= 1, 60)
        assert fake.drop("binance") == 1
        await _lines_until(proc.stdout, "feed=connected reconnects=1", 60)
        trades_then = _table(db, "SELECT count(*) FROM trades")[0][0]
        assert isinstance(trades_then, int)
        await wait_for(lambda: _table(db, "SELECT count(*) FROM trades")[0][0] > trades_then, 30)
        await fake.wait_done(timeout=120)
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    # What the connection missed while down came back from REST (backfill).
    stored = {str(r[0]) for r in _table(db, "SELECT trade_id FROM trades")}
    assert stored == recorded_trade_ids()


def recorded_trade_ids() -> set[str]:
    from tradewind.events import Trade
    from tradewind.exchanges.binance.parser import BinanceParser

    parser = BinanceParser()
    out: set[str] = set()
    for line in bundled_recording().read_bytes().splitlines():
        if line.strip():
            out |= {e.trade_id for e in parser.parse(line, 0) if isinstance(e, Trade)}
    return out
