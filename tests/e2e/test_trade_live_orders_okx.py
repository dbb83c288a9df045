"""``tradewind trade --venue okx --live-orders`` end to end: a real process
on the fake exchange's OKX v5 public feed, whose orders go through a real
ccxt ``okx`` object to the fake OKX v5 private REST (``TESTNET_REST_URL``
moves every ccxt URL there; ``--network testnet`` is OKX's demo trading, so
every private request must carry ``x-simulated-trading: 1``). Orders placed,
each fill stored once, a restart sends nothing twice, and each failed check
at start stops the process in one line.

The feed is a recording written here: the BTC-USDT book snapshot of the
bundled OKX recording, then 90 s of trades on a 12 s price wave, enough
crossings for ``ema_cross`` to trade (the recording in tests/data has 11 s)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.test_trade import trade_args
from tests.e2e.test_trade_live_orders import (
    assert_fills_stored_once,
    live_env,
    refuses_in_one_line,
    restart_quietly,
    stored,
    trade_until_fills,
)
from tests.integration.test_ccxt_adapter import _need_ccxt
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.okx.fake_orders import FakeOkxOrders

pytestmark = pytest.mark.slow

RECORDED = Path(__file__).resolve().parents[1] / "data" / "venues" / "okx_v5_ws_20220513.jsonl"
MID = Decimal("30230")
CCXT = ("--live-orders", "--no-dashboard")


def okx_recording(path: Path, seconds: int = 90) -> Path:
    snapshot = next(
        line
        for line in RECORDED.read_text().splitlines()
        if '"action":"snapshot"' in line and '"instId":"BTC-USDT"' in line
    )
    t0 = int(json.loads(snapshot)["data"][0]["ts"])
    lines = [snapshot]
    for i in range(seconds * 4):
        ts = t0 + 250 * (i + 1)
        px = float(MID) + 20 * math.sin(2 * math.pi * (ts - t0) / 12_000)
        trade = {
            "instId": "BTC-USDT",
            "tradeId": str(300_000_000 + i),
            "px": f"{px:.1f}",
            "sz": "0.01",
            "side": "buy" if i % 2 else "sell",
            "ts": str(ts),
        }
        lines.append(
            json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [trade]})
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.asynccontextmanager
async def okx_exchange(
    orders: FakeOkxOrders, tmp: Path, speed: float = 3, play: bool = True
) -> AsyncIterator[FakeExchange]:
    data = okx_recording(tmp / "okx_feed.jsonl")
    fx = FakeExchange(data, speed=speed, exchanges=["okx"], autostart=play, fmt="okx")
    orders.mount(fx)
    async with fx:
        yield fx


def okx_args(db: Path, *extra: str) -> list[str]:
    args = trade_args(db, *CCXT, *extra)
    args[args.index("binance")] = "okx"
    args[args.index("BTCUSDT")] = "BTC-USDT"
    return args


def okx_env(
    fx: FakeExchange, tmp: Path, passphrase: str = "test-passphrase", **kw: str
) -> dict[str, str]:
    env = live_env(fx, tmp, **kw)
    (tmp / "passphrase").write_text(passphrase)
    env["TRADEWIND_EXECUTION__API_PASSPHRASE_FILE"] = str(tmp / "passphrase")
    env["TRADEWIND_EXECUTION__RECONCILE_INTERVAL_S"] = "1"
    return env


async def test_okx_orders_through_ccxt_fill_are_stored_once_and_a_restart_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    _need_ccxt()
    orders = FakeOkxOrders(demo=True)
    orders.prices["BTC-USDT"] = MID
    db = tmp_path / "live.db"
    args = okx_args(db, "--network", "testnet")
    async with okx_exchange(orders, tmp_path) as fx:
        text = await trade_until_fills(args, okx_env(fx, tmp_path), tmp_path, db)
    assert "LIVE ORDERS: real orders go to okx through ccxt (testnet)" in text, text[:2000]
    assert "ccxt okx testnet at http://127.0.0.1" in text
    assert "requests signed by ccxt 4." in text
    assert "clock offset" in text and "recvWindow 5000 ms" in text
    assert "balances: BTC 100, USDT 1000000" in text
    assert "paper trading" not in text
    assert orders.orders, "no order reached the exchange"
    assert orders.duplicates() == {}
    assert set(orders.demo_headers) == {"1"} and orders.refused == []
    assert_fills_stored_once(
        db, {(f.order.cl_ord_id, f"{f.order.cl_ord_id}:t{f.trade_id}", f.sz) for f in orders.fills}
    )
    first_orders = set(orders.received)

    async with okx_exchange(orders, tmp_path, play=False) as quiet:
        await restart_quietly(args, okx_env(quiet, tmp_path), tmp_path)
    assert orders.duplicates() == {}
    assert set(orders.received) == first_orders
    again = stored(db, "SELECT id FROM fills")
    assert len(again) == len(set(again)) == len(orders.fills)


@pytest.mark.parametrize(
    ("case", "code", "line"),
    [
        ("no passphrase", 2, "ccxt okx keys come with a passphrase, and none is mounted"),
        ("native", 2, "--order-api native: no native order client for okx; use --order-api ccxt"),
        ("bybit", 2, "--live-orders: no live order route for --venue bybit"),
        ("wrong key", 1, "live orders refused at start: ccxt okx rejected the API key"),
        ("wrong secret", 1, "live orders refused at start: ccxt okx rejected the API key"),
        ("wrong passphrase", 1, "live orders refused at start: ccxt okx rejected the API key"),
        ("mainnet key on demo", 1, "live orders refused at start: ccxt okx rejected the API key"),
        ("clock off", 1, "ms off ccxt okx's"),
        ("unknown symbol", 1, "ccxt okx does not list symbol DOGE-USDT (testnet)"),
        ("suspended", 1, "ccxt okx symbol BTC-USDT (BTC/USDT) is suspend, not active"),
    ],
)
async def test_a_failed_okx_check_stops_in_one_line(
    tmp_path: Path, case: str, code: int, line: str
) -> None:
    _need_ccxt()
    orders = FakeOkxOrders(demo=case != "mainnet key on demo")
    if case == "clock off":
        orders.clock_skew_ms = 7000
    if case == "suspended":
        orders.state["BTC-USDT"] = "suspend"
    db = tmp_path / "x.db"
    async with okx_exchange(orders, tmp_path, play=False) as fx:
        env = okx_env(
            fx,
            tmp_path,
            key="someone-else" if case == "wrong key" else "test-key",
            secret="wrong" if case == "wrong secret" else "test-secret",
            passphrase="wrong" if case == "wrong passphrase" else "test-passphrase",
        )
        if case == "no passphrase":
            env.pop("TRADEWIND_EXECUTION__API_PASSPHRASE_FILE")
        args = okx_args(db, "--network", "testnet", "--duration", "30")
        if case == "native":
            args += ["--order-api", "native"]
        if case == "bybit":
            args[args.index("okx")] = "bybit"
            args[args.index("BTC-USDT")] = "BTCUSDT"
        if case == "unknown symbol":
            args[args.index("BTC-USDT")] = "DOGE-USDT"
        await refuses_in_one_line(args, env, tmp_path, code, line)
    assert orders.received == {}
