"""``tradewind trade --live-orders`` end to end: a real process on the fake
exchange, whose Binance order API (mounted on the same port as its market
data) speaks today's protocol. Orders are placed, filled and stored; a
restart on the same database sends nothing twice; each check at start that
fails stops the process in one line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import spawned
from tests.e2e.test_trade import env_for, fills_in, trade_args, wait_for
from tradewind.exchanges.binance.fake_orders import FakeBinanceOrders
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.replay import bundled_recording

pytestmark = pytest.mark.slow

PRICE = Decimal("61837.64")


@contextlib.asynccontextmanager
async def exchange(
    orders: FakeBinanceOrders, speed: float = 10, play: bool = True
) -> AsyncIterator[FakeExchange]:
    fx = FakeExchange(bundled_recording(), speed=speed, exchanges=["binance"], autostart=play)
    orders.mount(fx)
    async with fx:
        yield fx


def live_env(
    fx: FakeExchange, tmp: Path, key: str = "test-key", secret: str = "test-secret"
) -> dict[str, str]:
    (tmp / "key").write_text(key)
    (tmp / "secret").write_text(secret)
    url = f"127.0.0.1:{fx.port}"
    return {
        **env_for(fx),
        "TRADEWIND_EXECUTION__API_KEY_FILE": str(tmp / "key"),
        "TRADEWIND_EXECUTION__API_SECRET_FILE": str(tmp / "secret"),
        "TRADEWIND_EXECUTION__TESTNET_REST_URL": f"http://{url}",
        "TRADEWIND_EXECUTION__TESTNET_WS_URL": f"ws://{url}",
    }


def stored(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql).fetchall())


async def trade_until_fills(args: list[str], env: dict[str, str], cwd: Path, db: Path) -> str:
    """``tradewind trade`` live until two fills are stored, then Ctrl-C: its
    printout, flattened to one line, after a clean exit."""
    async with spawned(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd
    ) as proc:
        await wait_for(lambda: fills_in(db) >= 2, 90)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return " ".join(stdout.decode().split())


async def restart_quietly(args: list[str], env: dict[str, str], cwd: Path) -> None:
    """The same run again for 4 s on a feed that sends nothing new: the open
    orders are reconciled with the venue, and it must exit cleanly."""
    r = await asyncio.create_subprocess_exec(
        *args,
        "--duration",
        "4",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    _, err = await asyncio.wait_for(r.communicate(), 60)
    assert r.returncode == 0, err.decode()[-2000:]


def assert_fills_stored_once(db: Path, venue_fills: set[tuple[str, str, Decimal]]) -> None:
    """Every fill the venue made is stored once, under its order and trade id."""
    db_fills = stored(db, "SELECT client_order_id, id, qty FROM fills")
    assert len(db_fills) == len({r[1] for r in db_fills}), "a fill stored twice"
    assert {(c, i, Decimal(str(q))) for c, i, q in db_fills} == venue_fills


async def test_live_orders_fill_are_stored_and_a_restart_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    orders = FakeBinanceOrders()
    orders.prices["BTCUSDT"] = PRICE
    db = tmp_path / "live.db"
    args = trade_args(db, "--live-orders", "--network", "testnet", "--no-dashboard")
    async with exchange(orders) as fx:
        text = await trade_until_fills(args, live_env(fx, tmp_path), tmp_path, db)
    assert "LIVE ORDERS: real orders go to binance (testnet)" in text
    assert "binance testnet at http://127.0.0.1" in text and "signing HMAC-SHA256" in text
    assert "balances: BTC 100, USDT 1000000" in text
    assert "risk limits: max position" in text
    assert "paper trading" not in text
    assert orders.orders, "no order reached the exchange"
    assert orders.duplicates() == {}
    assert_fills_stored_once(
        db, {(t.client_order_id, f"{t.client_order_id}:t{t.id}", t.qty) for t in orders.trades}
    )
    first_orders = set(orders.received)

    async with exchange(orders, play=False) as quiet:
        await restart_quietly(args, live_env(quiet, tmp_path), tmp_path)
    assert orders.duplicates() == {}
    assert set(orders.received) == first_orders
    again = stored(db, "SELECT id FROM fills")
    assert len(again) == len(set(again)) == len(orders.trades)


async def refuses_in_one_line(
    args: list[str], env: dict[str, str], cwd: Path, code: int, line: str
) -> None:
    """The run stops with exit ``code`` and one line on stderr that says ``line``."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd
    )
    _, raw = await asyncio.wait_for(proc.communicate(), 90)
    err = raw.decode().strip().splitlines()
    assert proc.returncode == code, err
    assert len(err) == 1 and err[0].startswith("tradewind: ") and line in err[0], err


@pytest.mark.parametrize(
    ("case", "code", "line"),
    [
        ("no keys", 2, "no exchange API key and secret are mounted"),
        ("no network", 2, "TRADEWIND_EXECUTION__TESTNET is not set"),
        ("bad network", 2, "--network moon: use testnet or mainnet"),
        ("wrong key", 1, "live orders refused at start: binance rejected the API key"),
        ("wrong secret", 1, "live orders refused at start: binance rejected the API key"),
        ("clock skew", 1, "ms off Binance's"),
        ("unknown symbol", 1, "binance does not list symbol DOGEUSDT (testnet)"),
        ("not trading", 1, "binance symbol BTCUSDT is BREAK, not TRADING"),
    ],
)
async def test_a_failed_check_at_start_stops_in_one_line(
    tmp_path: Path, case: str, code: int, line: str
) -> None:
    orders = FakeBinanceOrders()
    if case == "clock skew":
        orders.clock_skew_ms = 7000
    if case == "not trading":
        orders.status["BTCUSDT"] = "BREAK"
    db = tmp_path / "x.db"
    async with exchange(orders, play=False) as fx:
        env = live_env(
            fx,
            tmp_path,
            key="someone-else" if case == "wrong key" else "test-key",
            secret="wrong" if case == "wrong secret" else "test-secret",
        )
        args = trade_args(db, "--live-orders", "--no-dashboard", "--duration", "30")
        if case != "no network":
            args += ["--network", "moon" if case == "bad network" else "testnet"]
        if case == "no keys":
            for k in ("TRADEWIND_EXECUTION__API_KEY_FILE", "TRADEWIND_EXECUTION__API_SECRET_FILE"):
                env.pop(k)
        if case == "unknown symbol":
            args[args.index("BTCUSDT")] = "DOGEUSDT"
        await refuses_in_one_line(args, env, tmp_path, code, line)
    assert orders.received == {}
