"""``tradewind trade --live-orders --order-api ccxt`` end to end: a real
process whose orders go through a real ccxt ``binance`` object to the fake
exchange's Binance order API (every ccxt URL moved to the fake by
``TRADEWIND_EXECUTION__TESTNET_REST_URL``, so nothing leaves the machine).
The same proof as the native client's: orders placed, each fill stored once,
a restart sends nothing twice, and each failed check at start stops the
process in one line, here made through ccxt's unified API (``fetch_time``,
``fetch_balance``, ``load_markets``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_trade import trade_args
from tests.e2e.test_trade_live_orders import (
    PRICE,
    assert_fills_stored_once,
    exchange,
    live_env,
    refuses_in_one_line,
    restart_quietly,
    stored,
    trade_until_fills,
)
from tests.integration.test_ccxt_adapter import _need_ccxt
from tradewind.exchanges.binance.fake_orders import FakeBinanceOrders

pytestmark = pytest.mark.slow

CCXT = ("--live-orders", "--order-api", "ccxt", "--no-dashboard")


def ccxt_env(fx: object, tmp: Path, **kw: str) -> dict[str, str]:
    env = live_env(fx, tmp, **kw)  # type: ignore[arg-type]
    # ccxt has no push stream: the router polls; fills of resting orders come this often
    env["TRADEWIND_EXECUTION__RECONCILE_INTERVAL_S"] = "1"
    return env


async def test_orders_through_ccxt_fill_are_stored_once_and_a_restart_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    _need_ccxt()
    orders = FakeBinanceOrders()
    orders.prices["BTCUSDT"] = PRICE
    db = tmp_path / "live.db"
    args = trade_args(db, *CCXT, "--network", "testnet")
    async with exchange(orders) as fx:
        text = await trade_until_fills(args, ccxt_env(fx, tmp_path), tmp_path, db)
    assert "LIVE ORDERS: real orders go to binance through ccxt (testnet)" in text
    assert "ccxt binance testnet at http://127.0.0.1" in text, text[:2000]
    assert "requests signed by ccxt 4." in text
    assert "clock offset" in text and "recvWindow 5000 ms" in text
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
        await restart_quietly(args, ccxt_env(quiet, tmp_path), tmp_path)
    assert orders.duplicates() == {}
    assert set(orders.received) == first_orders
    again = stored(db, "SELECT id FROM fills")
    assert len(again) == len(set(again)) == len(orders.trades)


@pytest.mark.parametrize(
    ("case", "code", "line"),
    [
        ("no keys", 2, "TRADEWIND_EXECUTION__VENUE is 'ccxt' but no exchange API key"),
        ("no network", 2, "TRADEWIND_EXECUTION__TESTNET is not set for the live venue 'ccxt'"),
        ("bad order api", 2, "--order-api fix: use native or ccxt"),
        ("without live orders", 2, "--order-api only applies with --live-orders"),
        ("venue not routed", 2, "--live-orders: no live order route for --venue kraken"),
        ("wrong key", 1, "live orders refused at start: ccxt binance rejected the API key"),
        ("wrong secret", 1, "live orders refused at start: ccxt binance rejected the API key"),
        ("clock skew", 1, "ms off ccxt binance's"),
        ("unknown symbol", 1, "ccxt binance does not list symbol DOGEUSDT (testnet)"),
        ("not trading", 1, "ccxt binance symbol BTCUSDT (BTC/USDT) is BREAK, not active"),
    ],
)
async def test_a_failed_check_through_ccxt_stops_in_one_line(
    tmp_path: Path, case: str, code: int, line: str
) -> None:
    _need_ccxt()
    orders = FakeBinanceOrders()
    if case == "clock skew":
        orders.clock_skew_ms = 7000
    if case == "not trading":
        orders.status["BTCUSDT"] = "BREAK"
    db = tmp_path / "x.db"
    async with exchange(orders, play=False) as fx:
        env = ccxt_env(
            fx,
            tmp_path,
            key="someone-else" if case == "wrong key" else "test-key",
            secret="wrong" if case == "wrong secret" else "test-secret",
        )
        args = trade_args(db, *CCXT, "--duration", "30")
        if case == "bad order api":
            args[args.index("ccxt")] = "fix"
        if case == "without live orders":
            args.remove("--live-orders")
        if case == "venue not routed":
            args[args.index("binance")] = "kraken"
            args[args.index("BTCUSDT")] = "BTC/USD"
        if case not in ("no network", "without live orders"):
            args += ["--network", "testnet"]
        if case == "no keys":
            for k in ("TRADEWIND_EXECUTION__API_KEY_FILE", "TRADEWIND_EXECUTION__API_SECRET_FILE"):
                env.pop(k)
        if case == "unknown symbol":
            args[args.index("BTCUSDT")] = "DOGEUSDT"
        await refuses_in_one_line(args, env, tmp_path, code, line)
    assert orders.received == {}
