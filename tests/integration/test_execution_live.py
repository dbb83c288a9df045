"""Live routing against the fake exchange's Binance order endpoints, under faults.

For every injected fault, during a burst of many orders: no client order id
reaches the fake exchange twice, and the order and fill state published on
``executions`` converges to the exchange's.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncGenerator
from decimal import Decimal as D
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.conftest import service_context
from tradewind.bus import MemoryBus
from tradewind.clock import WallClock
from tradewind.events import (
    CancelRequest,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    client_order_id,
)
from tradewind.exchanges.binance.fake_orders import FakeBinanceOrders, Faults
from tradewind.exchanges.instruments import load_instruments
from tradewind.runtime.venues import live_venue
from tradewind.services.execution import ExecutionService
from tradewind.topics import EXECUTIONS, ORDERS

S = OrderStatus
VENUE_STATUS = {
    "NEW": S.ACCEPTED,
    "PARTIALLY_FILLED": S.PARTIALLY_FILLED,
    "FILLED": S.FILLED,
    "CANCELED": S.CANCELED,
    "EXPIRED": S.EXPIRED,
}


def live_settings(make_settings: Any, fake: FakeBinanceOrders, **kw: Any) -> Any:
    ex = {
        "venue": "binance",
        "api_key": fake.api_key,
        "api_secret": fake.api_secret,
        "rest_url": fake.rest_url,
        "ws_url": fake.ws_url,
        "recv_window_ms": 1000,
        "request_timeout_s": 0.4,
        "connect_timeout_s": 1.0,
        "settle_interval_s": 0.1,
        "reconcile_interval_s": 1.0,
        "breaker_errors": 1000,
        "breaker_cooldown_s": 0.2,
        **kw,
    }
    return make_settings(execution=ex, bus={"block_ms": 20})


def orders(n: int, tag: str) -> list[OrderRequest]:
    out = []
    for i in range(n):
        coid = client_order_id(f"{tag}-{i}")
        limit = i % 3 == 0
        out.append(
            OrderRequest(
                id=coid,
                ts_event=time.time_ns(),
                client_order_id=coid,
                signal_id=f"{tag}-{i}",
                strategy="t",
                exchange="binance",
                symbol="BTCUSDT",
                side=Side.BUY if i % 2 else Side.SELL,
                order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                quantity=D("0.002"),
                price=(D("99") if i % 2 else D("101")) if limit else None,
                ts_recv=time.time_ns(),
            )
        )
    return out


def local_view(events: list[Any]) -> tuple[dict[str, OrderUpdate], dict[str, Fill]]:
    last: dict[str, OrderUpdate] = {}
    fills: dict[str, Fill] = {}
    for e in events:
        if isinstance(e, OrderUpdate):
            prev = last.get(e.client_order_id)
            if prev is None or e.seq > prev.seq:
                last[e.client_order_id] = e
        elif isinstance(e, Fill):
            assert fills.setdefault(e.id, e) == e, f"fill {e.id} published with other content"
    return last, fills


def diverges(fake: FakeBinanceOrders, sent: list[OrderRequest], events: list[Any]) -> list[str]:
    """Every difference between the exchange's state and the published one."""
    last, fills = local_view(events)
    out = []
    for o in sent:
        coid = o.client_order_id
        mine = last.get(coid)
        theirs = fake.orders.get(coid)
        if mine is None:
            out.append(f"{coid}: nothing published")
            continue
        if theirs is None:
            if mine.status is not S.REJECTED:
                out.append(f"{coid}: {mine.status} locally, unknown at the venue")
            continue
        if (VENUE_STATUS[theirs.status], theirs.executed) != (mine.status, mine.filled_qty):
            out.append(
                f"{coid}: venue {theirs.status} {theirs.executed}, "
                f"local {mine.status} {mine.filled_qty}"
            )
        venue_fills = {f"{coid}:t{t.id}": (t.price, t.qty) for t in fake.trades_of(coid)}
        local_fills = {k: (f.price, f.qty) for k, f in fills.items() if f.client_order_id == coid}
        if venue_fills != local_fills:
            out.append(f"{coid}: fills differ {venue_fills} != {local_fills}")
    return out


async def converge(
    bus: MemoryBus, fake: FakeBinanceOrders, sent: list[OrderRequest], timeout: float = 25.0
) -> list[str]:
    deadline = time.monotonic() + timeout
    diff: list[str] = ["not checked"]
    while time.monotonic() < deadline:
        events = [m.event for m in await bus.read_all(EXECUTIONS, 1_000_000)]
        diff = diverges(fake, sent, events)
        if not diff:
            return []
        await asyncio.sleep(0.1)
    return diff


async def run_burst(
    make_settings: Any, fake: FakeBinanceOrders, n: int, tag: str, **kw: Any
) -> tuple[MemoryBus, ExecutionService, list[OrderRequest]]:
    settings = live_settings(make_settings, fake, **kw)
    bus = MemoryBus()
    venue = live_venue(settings, load_instruments())
    ctx = service_context(settings, bus=bus, clock=WallClock(), extras=venue)
    svc = ExecutionService(ctx)
    await svc.start()
    sent = orders(n, tag)
    for i in range(0, n, 8):
        await bus.publish(ORDERS, sent[i : i + 8])
        await asyncio.sleep(0.02)
    return bus, svc, sent


FAULTS = {
    "drop_response": ({"place": Faults(drop=0.3)}, 0.0),
    "5xx_before": ({"place": Faults(error_before=0.3)}, 0.0),
    "5xx_after": ({"place": Faults(error_after=0.3), "query": Faults(error_before=0.2)}, 0.0),
    "429": ({"place": Faults(busy=0.3, retry_after_s=0.05)}, 0.0),
    # -1007 "execution status unknown" on a 4xx as well as on a 5xx: never a rejection
    "1007_on_400": ({"place": Faults(unknown=0.3, unknown_http=400)}, 0.0),
    "1007_on_503": ({"place": Faults(unknown=0.3, unknown_http=503)}, 0.0),
    "delay": (
        {"place": Faults(delay=0.3, delay_s=0.6), "query": Faults(delay=0.2, delay_s=0.5)},
        0.0,
    ),
    "drop_stream": ({}, 0.3),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_no_double_send_and_convergence_under_faults(make_settings: Any, fault: str) -> None:
    faults, drop_stream = FAULTS[fault]
    fake = FakeBinanceOrders(
        seed=zlib.crc32(fault.encode()) % 1000, faults=faults, drop_stream=drop_stream
    )
    fake.prices["BTCUSDT"] = D("100")
    await fake.start()
    try:
        bus, svc, sent = await run_burst(make_settings, fake, 48, fault)
        await asyncio.sleep(0.5)
        await fake.set_price("BTCUSDT", D("99"), fraction=D("0.5"))
        await fake.set_price("BTCUSDT", D("101"), fraction=D("0.5"))
        cancels = [
            CancelRequest(
                id=f"x-{o.client_order_id}",
                ts_event=time.time_ns(),
                client_order_id=o.client_order_id,
                exchange="binance",
                symbol="BTCUSDT",
                reason="kill switch",
            )
            for o in sent
            if o.client_order_id in fake.orders
            and fake.orders[o.client_order_id].status in ("NEW", "PARTIALLY_FILLED")
        ][::2]
        assert cancels, "no order rested at the fake to cancel: the cancel path goes untested"
        await bus.publish(ORDERS, cancels)
        diff = await converge(bus, fake, sent)
        await svc.stop(5)
        assert fake.duplicates() == {}
        assert sum(fake.injected.values()) > 0, "the fault never fired"
        assert diff == []
        assert set(fake.received) <= {o.client_order_id for o in sent}
        assert any(o.status == "CANCELED" for o in fake.orders.values())
    finally:
        await fake.stop()


async def test_circuit_breaker_stops_sending_and_reports(make_settings: Any) -> None:
    fake = FakeBinanceOrders(faults={"place": Faults(error_before=1.0)})
    await fake.start()
    try:
        bus, svc, sent = await run_burst(
            make_settings, fake, 10, "breaker", breaker_errors=3, breaker_cooldown_s=60
        )
        diff = await converge(bus, fake, sent, timeout=15)
        assert diff == []
        assert sum(fake.received.values()) == 3, "sending stops after three errors"
        ok, why = svc.ready()
        assert not ok and "circuit open" in why
        assert REGISTRY.get_sample_value("tradewind_circuit_open", {"exchange": "binance"}) == 1
        last, _ = local_view([m.event for m in await bus.read_all(EXECUTIONS)])
        reasons = [u.reason for u in last.values()]
        assert sum("circuit open" in r for r in reasons) == 7
        await svc.stop(5)
    finally:
        await fake.stop()


async def test_restart_reconciles_what_happened_while_away(make_settings: Any) -> None:
    """Fills that happen while the service is down are emitted on start."""
    fake = FakeBinanceOrders()
    fake.prices["BTCUSDT"] = D("100")
    await fake.start()
    try:
        bus, svc, sent = await run_burst(make_settings, fake, 12, "away")
        assert await converge(bus, fake, sent) == []
        await svc.stop(5)
        await fake.set_price("BTCUSDT", D("98"))
        await fake.set_price("BTCUSDT", D("102"))
        settings = live_settings(make_settings, fake)
        venue = live_venue(settings, load_instruments())
        ctx = service_context(settings, bus=bus, clock=WallClock(), extras=venue)
        again = ExecutionService(ctx)
        await again.start()
        assert await converge(bus, fake, sent) == []
        assert all(o.status == "FILLED" for o in fake.orders.values())
        assert again.ready() == (True, "ok")
        await again.stop(5)
        assert fake.duplicates() == {}
    finally:
        await fake.stop()


async def test_signature_and_api_key_are_checked(make_settings: Any) -> None:
    from tradewind.exchanges.binance.trade import BinanceSpotVenue
    from tradewind.execution.venue import VenueRejected

    fake = FakeBinanceOrders()
    await fake.start()
    try:
        bad = live_settings(make_settings, fake, api_secret="wrong").execution
        venue = BinanceSpotVenue(bad, load_instruments())
        with pytest.raises(VenueRejected, match="-1022"):
            await venue.place(orders(1, "sig")[0])
        await venue.close()
        assert fake.orders == {}
    finally:
        await fake.stop()


async def test_mounted_on_the_fake_exchange_one_port(make_settings: Any) -> None:
    """The order endpoints and the user stream also work mounted into the fake
    exchange (REST and WebSocket on its single port)."""
    from tradewind.exchanges.binance.trade import BinanceSpotVenue
    from tradewind.exchanges.fake.server import FakeExchange

    fx = FakeExchange(exchanges=["binance"], autostart=False)
    fake = FakeBinanceOrders()
    fake.mount(fx)
    await fx.start()
    try:
        url = f"127.0.0.1:{fx.port}"
        ex = make_settings(
            execution={
                "venue": "binance",
                "api_key": fake.api_key,
                "api_secret": fake.api_secret,
                "rest_url": f"http://{url}",
                "ws_url": f"ws://{url}",
            }
        ).execution
        venue = BinanceSpotVenue(ex, load_instruments())
        reports = venue.reports()
        assert await anext(reports) is None
        o = orders(1, "mounted")[0]
        placed = await venue.place(o)
        report = await asyncio.wait_for(anext(reports), 5)
        assert report is not None and report.client_order_id == o.client_order_id
        assert placed.status is report.status is S.ACCEPTED
        found = await venue.query("BTCUSDT", o.client_order_id)
        assert found is not None and found.exchange_order_id == placed.exchange_order_id
        assert isinstance(reports, AsyncGenerator)
        await reports.aclose()
        await venue.close()
    finally:
        await fx.stop()
