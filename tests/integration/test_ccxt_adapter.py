"""The ccxt adapter driving a real ccxt ``binance`` object against the fake
exchange's Binance order endpoints (signature checked by the fake).

ccxt's URLs are pointed at the fake (every API section, so nothing can leave
the machine) and it loads its markets from the fake's ``exchangeInfo``. Orders
are placed, looked up and cancelled by client order id; a lost answer is
settled by lookup and never resent, which the fake's record of every
``newClientOrderId`` it received proves.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D
from typing import Any

import pytest

from tests.conftest import service_context, skip_or_fail
from tests.integration.test_execution_live import converge, orders
from tradewind.bus import MemoryBus
from tradewind.clock import WallClock
from tradewind.config import ConfigError
from tradewind.events import CancelRequest, OrderStatus
from tradewind.exchanges.binance.fake_orders import FakeBinanceOrders, Faults
from tradewind.exchanges.instruments import load_instruments
from tradewind.execution.venue import (
    StartCheckFailed,
    VenueBusy,
    VenueRejected,
    VenueUnknown,
)
from tradewind.services.execution import ExecutionService
from tradewind.topics import ORDERS

S = OrderStatus


def _need_ccxt() -> None:
    if importlib.util.find_spec("ccxt") is None:
        skip_or_fail("ccxt is not installed (pip install 'tradewind[ccxt]')")


def ccxt_settings(make_settings: Any, fake: FakeBinanceOrders, **kw: Any) -> Any:
    ex = {
        "venue": "ccxt",
        "ccxt_id": "binance",
        "api_key": fake.api_key,
        "api_secret": fake.api_secret,
        "recv_window_ms": 1000,
        "request_timeout_s": 1.0,
        "connect_timeout_s": 1.0,
        "settle_interval_s": 0.1,
        "settle_attempts": 10,
        "reconcile_interval_s": 5.0,
        "breaker_errors": 1000,
        **kw,
    }
    return make_settings(execution=ex, bus={"block_ms": 20})


def ccxt_venue(make_settings: Any, fake: FakeBinanceOrders, **kw: Any) -> Any:
    """A ``CcxtVenue`` whose ccxt client talks only to the fake."""
    _need_ccxt()
    from tradewind.exchanges.ccxt.adapter import CcxtVenue

    venue = CcxtVenue(ccxt_settings(make_settings, fake, **kw).execution, load_instruments())
    client = venue.client
    for section in list(client.urls["api"]):
        client.urls["api"][section] = f"{fake.rest_url}/api/v3"
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.options["fetchCurrencies"] = False
    client.options["fetchMargins"] = False
    return venue


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinanceOrders]:
    f = FakeBinanceOrders(seed=11)
    f.prices["BTCUSDT"] = D("100")
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


async def test_place_query_cancel_by_client_order_id(
    make_settings: Any, fake: FakeBinanceOrders
) -> None:
    venue = ccxt_venue(make_settings, fake)
    try:
        sent = orders(2, "ccxt-basic")
        limit, market = sent[0], sent[1]
        assert limit.price == D("101") and market.price is None

        placed = await venue.place(limit)
        assert placed.client_order_id == limit.client_order_id
        assert placed.status is S.ACCEPTED and placed.quantity == D("0.002")
        assert fake.orders[limit.client_order_id].price == D("101")

        found = await venue.query("BTCUSDT", limit.client_order_id)
        assert found is not None and found.exchange_order_id == placed.exchange_order_id
        assert await venue.query("BTCUSDT", "tw-unknown") is None

        open_ = await venue.open_orders()
        assert [(o.client_order_id, o.symbol) for o in open_] == [
            (limit.client_order_id, "BTCUSDT")
        ]

        canceled = await venue.cancel("BTCUSDT", limit.client_order_id)
        assert canceled is not None and canceled.status is S.CANCELED
        assert fake.orders[limit.client_order_id].status == "CANCELED"
        assert await venue.cancel("BTCUSDT", limit.client_order_id) is None

        filled = await venue.place(market)
        assert filled.status is S.FILLED and filled.filled_qty == D("0.002")
        fills = await venue.fills("BTCUSDT", filled)
        venue_trades = fake.trades_of(market.client_order_id)
        assert sorted(f.trade_id for f in fills) == sorted(str(t.id) for t in venue_trades)
        assert sum(f.qty for f in fills) == D("0.002")
        assert {(f.price, f.fee, f.fee_currency) for f in fills} == {
            (D("100"), D("0.0001"), "USDT")
        }

        bal = await venue.balances()
        assert bal["BTC"] == D("100.002")
        assert dict(fake.received) == {limit.client_order_id: 1, market.client_order_id: 1}
    finally:
        await venue.close()


async def test_signature_is_checked(make_settings: Any, fake: FakeBinanceOrders) -> None:
    venue = ccxt_venue(make_settings, fake, api_secret="wrong")
    try:
        with pytest.raises(VenueRejected, match="AuthenticationError"):
            await venue.place(orders(1, "ccxt-sig")[0])
        assert fake.orders == {}
    finally:
        await venue.close()


async def test_answers_are_sorted_by_what_they_mean(
    make_settings: Any, fake: FakeBinanceOrders
) -> None:
    """429 → busy for the venue's Retry-After; 5xx and a dropped answer → unknown."""
    venue = ccxt_venue(make_settings, fake)
    try:
        o1, o2, o3 = orders(3, "ccxt-answers")
        fake.faults["place"] = Faults(busy=1.0, retry_after_s=7)
        with pytest.raises(VenueBusy) as busy:
            await venue.place(o1)
        assert busy.value.retry_after == 7
        assert o1.client_order_id not in fake.orders

        fake.faults["place"] = Faults(error_after=1.0)
        with pytest.raises(VenueUnknown):
            await venue.place(o2)
        assert o2.client_order_id in fake.orders

        fake.faults["place"] = Faults(drop=1.0)
        with pytest.raises(VenueUnknown):
            await venue.place(o3)
        fake.faults.clear()
        found = await venue.query("BTCUSDT", o3.client_order_id)
        assert found is not None and found.status is S.FILLED
        assert fake.duplicates() == {}
    finally:
        await venue.close()


async def test_lost_answers_settled_by_lookup_never_resent(
    make_settings: Any, fake: FakeBinanceOrders
) -> None:
    """The service over ccxt, a burst with dropped answers and 5xx after
    processing: every order settles by lookup, none reaches the fake twice,
    and the published state converges to the fake's."""
    fake.faults["place"] = Faults(drop=0.3, error_after=0.1)
    venue = ccxt_venue(make_settings, fake)
    bus = MemoryBus()
    ctx = service_context(
        ccxt_settings(make_settings, fake), bus=bus, clock=WallClock(), extras={"venue": venue}
    )
    svc = ExecutionService(ctx)
    await svc.start()
    try:
        sent = orders(30, "ccxt-lost")
        for i in range(0, len(sent), 6):
            await bus.publish(ORDERS, sent[i : i + 6])
            await asyncio.sleep(0.02)
        await until(lambda: len(fake.orders) == len(sent))
        await fake.set_price("BTCUSDT", D("99"), fraction=D("0.5"))
        await bus.publish(
            ORDERS,
            [
                CancelRequest(
                    id=f"x-{o.client_order_id}",
                    ts_event=time.time_ns(),
                    client_order_id=o.client_order_id,
                    exchange="binance",
                    symbol="BTCUSDT",
                    reason="kill switch",
                )
                for o in sent[::6]
            ],
        )
        killed = {o.client_order_id for o in sent[::6]}
        await until(lambda: all(fake.orders[c].status == "CANCELED" for c in killed))
        assert {fake.orders[c].status for c in killed} == {"CANCELED"}
        diff = await converge(bus, fake, sent, timeout=25)
        assert diff == []
        assert fake.injected["place:drop"] > 0, "no answer was lost"
        assert fake.duplicates() == {}
        assert set(fake.received) == {o.client_order_id for o in sent}
        assert any(o.status == "PARTIALLY_FILLED" for o in fake.orders.values())
    finally:
        await svc.stop(5)


async def test_refresh_on_a_timer_takes_status_and_clock(
    make_settings: Any, fake: FakeBinanceOrders
) -> None:
    """The markets and the clock offset reloaded every 0.2 s: a symbol moved to
    BREAK is refused before anything is sent, and ccxt signs on the new offset
    (the fake's clock 3 s ahead, a 1 s recvWindow: unsynced, every order fails)."""
    venue = ccxt_venue(make_settings, fake, exchange_info_refresh_s=0.2)
    try:
        await venue.start()
        assert abs(venue.offset_ms) < 500
        sent = orders(3, "ccxt-timer")
        fake.status["BTCUSDT"] = "BREAK"
        await until(lambda: venue.client.markets["BTC/USDT"]["active"] is False, 10)
        with pytest.raises(VenueRejected, match="filter: BTCUSDT is BREAK, not active"):
            await venue.place(sent[0])
        assert fake.received == {}, "an order for an inactive market was sent"
        fake.status.clear()
        fake.clock_skew_ms = 3000
        # one refresh takes the clock, then the markets: wait for both
        await until(
            lambda: (
                2500 < venue.offset_ms < 3500 and venue.client.markets["BTC/USDT"]["active"] is True
            ),
            10,
        )
        assert 2500 < venue.offset_ms < 3500
        assert venue.client.options["timeDifference"] == -venue.offset_ms
        placed = await venue.place(sent[1])
        assert placed.status is S.FILLED and dict(fake.received) == {sent[1].client_order_id: 1}
    finally:
        await venue.close()


async def test_start_checks_through_ccxt(make_settings: Any, fake: FakeBinanceOrders) -> None:
    venue = ccxt_venue(make_settings, fake)
    try:
        lines = await venue.start_checks(["BTCUSDT", "ETH/USDT"])
        assert lines[0].startswith("ccxt binance mainnet at http")
        assert lines[2] == "balances: BTC 100, USDT 1000000"
        # the market as the exchange names it is what orders then use
        assert venue.market("BTCUSDT") == "BTC/USDT" and venue.market("ETH/USDT") == "ETH/USDT"
    finally:
        await venue.close()
    bad = ccxt_venue(make_settings, fake, api_key="someone-else")
    try:
        with pytest.raises(StartCheckFailed, match="ccxt binance rejected the API key"):
            await bad.start_checks(["BTCUSDT"])
    finally:
        await bad.close()


def test_point_at_moves_every_api_url_to_one_host() -> None:
    from tradewind.exchanges.ccxt.adapter import point_at

    urls = {
        "public": "https://testnet.binance.vision/api/v3",
        "nested": {"private": "https://api.{hostname}/v5"},
        "hostname": "bybit.com",
    }
    assert point_at(urls, "http://127.0.0.1:9443") == {
        "public": "http://127.0.0.1:9443/api/v3",
        "nested": {"private": "http://127.0.0.1:9443/v5"},
        "hostname": "bybit.com",
    }
    assert point_at("https://api.kraken.com", "http://127.0.0.1:1") == "http://127.0.0.1:1"


def test_missing_extra_is_a_clear_config_error(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradewind.runtime.venues import make_venue

    monkeypatch.setitem(sys.modules, "ccxt", None)
    monkeypatch.setitem(sys.modules, "ccxt.async_support", None)
    settings = make_settings(execution={"venue": "ccxt"})
    with pytest.raises(ConfigError, match=r"pip install 'tradewind\[ccxt\]'") as err:
        make_venue(settings.execution, load_instruments())
    assert err.value.key == "TRADEWIND_EXECUTION__VENUE"


def test_paper_and_binance_never_import_ccxt() -> None:
    """ccxt is imported lazily: the execution service alone does not load it."""
    import subprocess

    code = (
        "import sys, tradewind.services.execution, tradewind.runtime.venues, "
        "tradewind.exchanges.binance.trade; print('ccxt' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
