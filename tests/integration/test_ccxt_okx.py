"""The ccxt adapter driving a real ccxt ``okx`` object against the fake OKX v5
private REST (``exchanges/okx/fake_orders.py``), which checks key,
passphrase, timestamp and signature as OKX documents them.

OKX's documentation gives its signing rule with an example pre-hash string
(``timestamp + 'GET' + '/api/v5/account/balance?ccy=BTC'`` at
``2020-12-08T09:08:57.715Z``) but no resulting signature, so the first test
checks that ccxt signs exactly that documented string, computed here
independently of both ccxt and the fake.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import msgspec
import pytest

from tests.conftest import service_context
from tests.integration.test_ccxt_adapter import _need_ccxt
from tests.integration.test_execution_live import local_view, orders
from tradewind.bus import MemoryBus
from tradewind.clock import WallClock
from tradewind.events import OrderRequest, OrderStatus
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.instruments import load_instruments
from tradewind.exchanges.okx.fake_orders import FakeOkxOrders, okx_sign
from tradewind.execution.venue import StartCheckFailed, VenueUnknown
from tradewind.services.execution import ExecutionService
from tradewind.topics import EXECUTIONS, ORDERS

S = OrderStatus
DOC_TS = "2020-12-08T09:08:57.715Z"
DOC_PATH = "/api/v5/account/balance?ccy=BTC"
DOC_BODY = '{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}'


def okx_orders(n: int, tag: str) -> list[OrderRequest]:
    return [msgspec.structs.replace(o, exchange="okx", symbol="BTC-USDT") for o in orders(n, tag)]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOkxOrders, FakeExchange]]:
    f = FakeOkxOrders()
    f.prices["BTC-USDT"] = D("100")
    async with FakeExchange(None, exchanges=[]) as fx:
        f.mount(fx)
        yield f, fx


def okx_venue(make_settings: Any, fx: FakeExchange, f: FakeOkxOrders, **kw: Any) -> Any:
    _need_ccxt()
    from tradewind.exchanges.ccxt.adapter import CcxtVenue

    testnet = kw.pop("testnet", True)
    ex = {
        "venue": "ccxt",
        "ccxt_id": "okx",
        "exchange": "okx",
        "api_key": f.api_key,
        "api_secret": f.api_secret,
        "api_passphrase": f.passphrase,
        "testnet": testnet,
        ("testnet_rest_url" if testnet else "rest_url"): f"http://127.0.0.1:{fx.port}",
        "recv_window_ms": 5000,
        "request_timeout_s": 2.0,
        "connect_timeout_s": 2.0,
        **kw,
    }
    return CcxtVenue(make_settings(execution=ex).execution, load_instruments())


def test_ccxt_signs_okx_documented_prehash_string() -> None:
    _need_ccxt()
    import ccxt

    secret = "22582BD0CFF14C41EDBF1AB98506286D"  # the example SecretKey of OKX's guide
    want = base64.b64encode(
        hmac.new(secret.encode(), (DOC_TS + "GET" + DOC_PATH).encode(), hashlib.sha256).digest()
    ).decode()
    client = ccxt.okx({"apiKey": "k", "secret": secret, "password": "p"})
    ms = int(datetime(2020, 12, 8, 9, 8, 57, 715000, tzinfo=UTC).timestamp() * 1000)
    client.milliseconds = lambda: ms
    client.options["timeDifference"] = 0
    signed = client.sign("account/balance", "private", "GET", {"ccy": "BTC"})
    h = signed["headers"]
    assert signed["url"].endswith(DOC_PATH)
    assert h["OK-ACCESS-TIMESTAMP"] == DOC_TS and h["OK-ACCESS-PASSPHRASE"] == "p"
    assert h["OK-ACCESS-SIGN"] == want == okx_sign(secret, DOC_TS, "GET", DOC_PATH)
    body_want = base64.b64encode(
        hmac.new(
            secret.encode(),
            (DOC_TS + "POST" + "/api/v5/account/set-leverage" + DOC_BODY).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    assert okx_sign(secret, DOC_TS, "POST", "/api/v5/account/set-leverage", DOC_BODY) == body_want


async def test_place_query_cancel_fills_by_clordid_on_demo_trading(
    make_settings: Any, fake: tuple[FakeOkxOrders, FakeExchange]
) -> None:
    f, fx = fake
    f.demo = True
    venue = okx_venue(make_settings, fx, f)
    try:
        lines = await venue.start_checks(["BTC-USDT"])
        assert lines[0].startswith(f"ccxt okx testnet at http://127.0.0.1:{fx.port}")
        assert lines[2] == "balances: BTC 100, USDT 1000000"
        sent = okx_orders(2, "okx-basic")
        limit, market = sent[0], sent[1]
        assert limit.client_order_id.startswith("tw") and len(limit.client_order_id) == 26

        placed = await venue.place(limit)  # a sell at 101 over a price of 100: rests
        assert placed.client_order_id == limit.client_order_id
        assert placed.status is S.ACCEPTED and placed.quantity == D("0.002")
        assert f.orders[limit.client_order_id].px == D("101")

        found = await venue.query("BTC-USDT", limit.client_order_id)
        assert found is not None and found.exchange_order_id == placed.exchange_order_id
        assert await venue.query("BTC-USDT", "twunknown") is None
        assert [(o.client_order_id, o.symbol) for o in await venue.open_orders()] == [
            (limit.client_order_id, "BTC-USDT")
        ]

        canceled = await venue.cancel("BTC-USDT", limit.client_order_id)
        assert canceled is not None and canceled.status is S.CANCELED
        assert f.orders[limit.client_order_id].state == "canceled"
        assert await venue.cancel("BTC-USDT", limit.client_order_id) is None

        filled = await venue.place(market)  # a buy at market: two fills at 100
        assert filled.status is S.FILLED and filled.filled_qty == D("0.002")
        assert filled.side.value == "buy"
        fills = await venue.fills("BTC-USDT", filled)
        assert sorted(x.trade_id for x in fills) == sorted(
            x.trade_id for x in f.fills_of(market.client_order_id)
        )
        assert len(fills) == 2 and sum(x.qty for x in fills) == D("0.002")
        assert {(x.price, x.fee, x.fee_currency) for x in fills} == {
            (D("100"), D("0.0001"), "USDT")
        }

        assert (await venue.balances())["BTC"] == D("100.002")
        assert dict(f.received) == {limit.client_order_id: 1, market.client_order_id: 1}
        assert set(f.demo_headers) == {"1"} and f.refused == []
        assert venue.settle_window_s >= 30
    finally:
        await venue.close()


async def test_a_resting_limit_fills_when_the_price_crosses(
    make_settings: Any, fake: tuple[FakeOkxOrders, FakeExchange]
) -> None:
    f, fx = fake
    venue = okx_venue(make_settings, fx, f, testnet=False)
    try:
        await venue.start_checks(["BTC-USDT"])
        buy = okx_orders(4, "okx-rest")[3]  # a limit buy at 99
        assert buy.price == D("99")
        assert (await venue.place(buy)).status is S.ACCEPTED
        f.set_price("BTC-USDT", D("98.5"))
        got = await venue.query("BTC-USDT", buy.client_order_id)
        assert got is not None and got.status is S.FILLED and got.filled_qty == D("0.002")
        (fill,) = await venue.fills("BTC-USDT", got)
        assert fill.price == D("99") and fill.liquidity.value == "maker"
        assert set(f.demo_headers) == {""}  # mainnet sends no demo header
    finally:
        await venue.close()


@pytest.mark.parametrize(
    ("case", "line"),
    [
        ("wrong key", "ccxt okx rejected the API key"),
        ("wrong secret", "ccxt okx rejected the API key"),
        ("wrong passphrase", "ccxt okx rejected the API key"),
        ("live key on demo", "ccxt okx rejected the API key"),
        ("clock off", "ms off ccxt okx's"),
        ("unknown symbol", "ccxt okx does not list symbol DOGE-USDT (testnet)"),
        ("suspended", "ccxt okx symbol BTC-USDT (BTC/USDT) is suspend, not active"),
    ],
)
async def test_start_checks_refuse(
    make_settings: Any, fake: tuple[FakeOkxOrders, FakeExchange], case: str, line: str
) -> None:
    f, fx = fake
    kw: dict[str, Any] = {}
    if case == "wrong key":
        kw["api_key"] = "someone-else"
    if case == "wrong secret":
        kw["api_secret"] = "wrong"
    if case == "wrong passphrase":
        kw["api_passphrase"] = "wrong"
    if case == "live key on demo":
        f.demo = False
    if case == "clock off":
        f.clock_skew_ms = 7000
    if case == "suspended":
        f.state["BTC-USDT"] = "suspend"
    symbol = "DOGE-USDT" if case == "unknown symbol" else "BTC-USDT"
    venue = okx_venue(make_settings, fx, f, **kw)
    try:
        with pytest.raises(StartCheckFailed, match=line.replace("(", r"\(").replace(")", r"\)")):
            await venue.start_checks([symbol])
    finally:
        await venue.close()
    want = {
        "wrong key": "50111",
        "wrong secret": "50113",
        "wrong passphrase": "50105",
        "live key on demo": "50101",
    }
    if case in want:
        assert [r[2] for r in f.refused] == [want[case]]
    assert f.received == {}


async def test_lost_answers_are_settled_by_lookup_and_never_resent(
    make_settings: Any, fake: tuple[FakeOkxOrders, FakeExchange]
) -> None:
    """The execution service over ccxt okx, every third placement's answer
    lost after the order was taken: each settles by looking it up by
    ``clOrdId``, none reaches the fake twice, and the published states and
    fills are the fake's."""
    f, fx = fake
    venue = okx_venue(make_settings, fx, f, settle_interval_s=0.1, reconcile_interval_s=5.0)
    probe = okx_orders(2, "okx-probe")[1]
    f.drop_every = 1
    with pytest.raises(VenueUnknown):  # the fault as the adapter sees it
        await venue.place(probe)
    found = await venue.query("BTC-USDT", probe.client_order_id)
    assert found is not None and found.status is S.FILLED
    f.orders.clear()
    f.fills.clear()
    f.received.clear()
    f.dropped = 0
    f.drop_every = 3
    settings = make_settings(execution=venue.s.model_dump(), bus={"block_ms": 20})
    bus = MemoryBus()
    ctx = service_context(settings, bus=bus, clock=WallClock(), extras={"venue": venue})
    svc = ExecutionService(ctx)
    await svc.start()
    try:
        sent = okx_orders(12, "okx-lost")
        await bus.publish(ORDERS, sent)
        want = {"filled": S.FILLED, "live": S.ACCEPTED}

        async def published() -> dict[str, Any]:
            last, _ = local_view([m.event for m in await bus.read_all(EXECUTIONS, 1_000_000)])
            return {c: u.status for c, u in last.items()}

        seen: dict[str, Any] = {}

        async def poll() -> None:
            nonlocal seen
            seen = await published()

        for _ in range(250):
            await poll()
            if len(f.orders) == len(sent) and all(
                seen.get(c) is want[o.state] for c, o in f.orders.items()
            ):
                break
            await asyncio.sleep(0.1)
        assert f.dropped >= 3, "no answer was lost"
        assert f.duplicates() == {} and set(f.received) == {o.client_order_id for o in sent}
        assert {c: want[o.state] for c, o in f.orders.items()} == seen
        _, fills = local_view([m.event for m in await bus.read_all(EXECUTIONS, 1_000_000)])
        assert sorted(fills) == sorted(f"{x.order.cl_ord_id}:t{x.trade_id}" for x in f.fills)
    finally:
        await svc.stop(5)
