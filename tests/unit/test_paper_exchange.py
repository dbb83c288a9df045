"""The paper exchange against hand-computed cases from the recorded book.

The recording (``binance_spot_btcusdt_combined_20240808.jsonl``) has a REST
depth snapshot at line 8 (asks 61837.64 x 1.54698, 61837.65 x 0.00843,
61837.68 x 0.00016, 61838.13 x 0.00086, 61838.95 x 0.00082; bid 61837.63 x
3.78826) and a bookTicker at line 9 (ask 61837.64 x 1.6052). Orders below
arrive at the event time of line 9 (latency 0) and so see exactly that state.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from tests.conftest import market_file
from tradewind.config import PaperSettings
from tradewind.events import (
    CancelRequest,
    Event,
    Fill,
    Liquidity,
    MarketEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
)
from tradewind.exchanges.binance.parser import BinanceParser
from tradewind.exchanges.instruments import load_instruments
from tradewind.execution.paper.exchange import PaperExchange

T9 = 1723161255408000000
"""Event time of the snapshot and the bookTicker at line 9."""


@pytest.fixture(scope="module")
def events() -> list[tuple[int, MarketEvent]]:
    path = market_file("binance_spot_btcusdt_combined_20240808.jsonl")
    parser = BinanceParser()
    out: list[tuple[int, MarketEvent]] = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if n > 400:
                break
            out.extend((n, e) for e in parser.parse(line.strip(), 0))
    return out


def paper(**kw: Any) -> PaperExchange:
    base: dict[str, Any] = {"latency_ms": 0.0, "latency_jitter_ms": 0.0}
    return PaperExchange(PaperSettings(**{**base, **kw}), load_instruments())


def order(
    coid: str,
    side: Side,
    qty: str,
    *,
    ts: int = T9,
    price: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
    ref: float | None = None,
) -> OrderRequest:
    return OrderRequest(
        id=coid,
        ts_event=ts,
        client_order_id=coid,
        signal_id=f"s-{coid}",
        strategy="t",
        exchange="binance",
        symbol="BTCUSDT",
        side=side,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
        time_in_force=tif,
        reduce_only=reduce_only,
        ref_bid=ref,
        ref_ask=ref,
        ts_recv=1,
    )


def run(
    px: PaperExchange,
    events: list[tuple[int, MarketEvent]],
    orders: list[OrderRequest],
    *,
    upto: int = 400,
    orders_first: bool = True,
) -> list[Event]:
    """Orders before the market (on time) or after it (late, from history)."""
    out: list[Event] = []
    market = [e for n, e in events if n <= upto]
    if orders_first:
        for o in orders:
            out.extend(px.submit(o))
        out.extend(px.on_markets(market))
    else:
        out.extend(px.on_markets(market))
        for o in orders:
            out.extend(px.submit(o))
    return out


def fills(out: list[Event], coid: str) -> list[tuple[D, D, D, Liquidity]]:
    return [
        (e.price, e.qty, e.fee, e.liquidity)
        for e in out
        if isinstance(e, Fill) and e.client_order_id == coid
    ]


def statuses(out: list[Event], coid: str) -> list[OrderStatus]:
    return [e.status for e in out if isinstance(e, OrderUpdate) and e.client_order_id == coid]


S = OrderStatus
TAKER = Liquidity.TAKER
MAKER = Liquidity.MAKER


@pytest.mark.parametrize("orders_first", [True, False])
def test_market_buy_walks_the_book_with_taker_fees(
    events: list[tuple[int, MarketEvent]], orders_first: bool
) -> None:
    out = run(paper(), events, [order("m1", Side.BUY, "1.615")], orders_first=orders_first)
    assert fills(out, "m1") == [
        (D("61837.64"), D("1.6052"), D("99.26177973"), TAKER),
        (D("61837.65"), D("0.00843"), D("0.52129139"), TAKER),
        (D("61837.68"), D("0.00016"), D("0.00989403"), TAKER),
        (D("61838.13"), D("0.00086"), D("0.05318079"), TAKER),
        (D("61838.95"), D("0.00035"), D("0.02164363"), TAKER),
    ]
    assert statuses(out, "m1") == [
        S.SUBMITTED,
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
        S.PARTIALLY_FILLED,
        S.PARTIALLY_FILLED,
        S.PARTIALLY_FILLED,
        S.FILLED,
    ]
    last = [e for e in out if isinstance(e, OrderUpdate)][-1]
    assert last.filled_qty == D("1.615")
    assert all(e.ts_event == T9 for e in out if isinstance(e, Fill))


@pytest.mark.parametrize("orders_first", [True, False])
def test_resting_limit_queue_position_and_partial_fills(
    events: list[tuple[int, MarketEvent]], orders_first: bool
) -> None:
    """Buy 0.05 at the best bid 61837.63: queue ahead 3.78826 (line 9), shrunk by
    the falling bid size to 0.04819 (line 55), cleared when the bid moves down
    (line 56); the sell trades of 0.048 and 3 x 0.00009 at the price (lines
    58-61) fill it partly; the trade through at 61837.62 (line 62) fills the
    remaining 0.00173. All at the limit price with the 2 bps maker fee."""
    px = paper()
    out = run(
        px,
        events,
        [order("l1", Side.BUY, "0.05", price="61837.63")],
        upto=57,
        orders_first=orders_first,
    )
    assert fills(out, "l1") == []
    assert px.orders["l1"].queue_ahead == 0
    out += px.on_markets([e for n, e in events if 58 <= n <= 400])
    assert fills(out, "l1") == [
        (D("61837.63"), D("0.048"), D("0.59364125"), MAKER),
        (D("61837.63"), D("0.00009"), D("0.00111308"), MAKER),
        (D("61837.63"), D("0.00009"), D("0.00111308"), MAKER),
        (D("61837.63"), D("0.00009"), D("0.00111308"), MAKER),
        (D("61837.63"), D("0.00173"), D("0.02139582"), MAKER),
    ]
    assert statuses(out, "l1")[-1] is S.FILLED
    assert S.PARTIALLY_FILLED in statuses(out, "l1")


def test_queue_ahead_is_the_visible_size_at_arrival(
    events: list[tuple[int, MarketEvent]],
) -> None:
    px = paper()
    run(px, events, [order("q1", Side.BUY, "0.01", price="61837.63")], upto=9)
    assert "q1" not in px.resting.get(("binance", "BTCUSDT"), {}), "in flight until line 10"
    px.on_markets([e for n, e in events if n == 10])
    assert px.orders["q1"].queue_ahead == D("3.78826")
    px.on_markets([e for n, e in events if n == 11])
    assert px.orders["q1"].queue_ahead == D("3.65427")


def test_post_only_ioc_and_fok(events: list[tuple[int, MarketEvent]]) -> None:
    orders = [
        order("po", Side.BUY, "0.01", price="61837.64", tif=TimeInForce.POST_ONLY),
        order("ioc", Side.BUY, "2", price="61837.65", tif=TimeInForce.IOC),
        order("fok", Side.BUY, "2", price="61837.65", tif=TimeInForce.FOK),
        order("fok2", Side.BUY, "1.61", price="61837.65", tif=TimeInForce.FOK),
    ]
    out = run(paper(), events, orders, upto=60)
    assert statuses(out, "po") == [S.SUBMITTED, S.REJECTED]
    assert [f[:2] for f in fills(out, "ioc")] == [
        (D("61837.64"), D("1.6052")),
        (D("61837.65"), D("0.00843")),
    ]
    assert statuses(out, "ioc")[-1] is S.EXPIRED
    assert fills(out, "fok") == [] and statuses(out, "fok")[-1] is S.EXPIRED
    assert sum(f[1] for f in fills(out, "fok2")) == D("1.61")
    assert statuses(out, "fok2")[-1] is S.FILLED


def test_reduce_only_is_clipped_to_the_position(events: list[tuple[int, MarketEvent]]) -> None:
    orders = [
        order("r0", Side.SELL, "0.01", reduce_only=True),
        order("b1", Side.BUY, "0.02"),
        order("r1", Side.SELL, "0.05", reduce_only=True, ts=T9 + 1),
    ]
    out = run(paper(), events, orders, upto=60)
    assert statuses(out, "r0")[-1] is S.REJECTED
    assert sum(f[1] for f in fills(out, "r1")) == D("0.02")
    assert fills(out, "r1")[0][0] == D("61837.63")


def test_no_market_yet_falls_back_to_the_reference_price() -> None:
    px = paper(slippage_bps=D("1"))
    out = px.submit(order("f1", Side.BUY, "0.01", ref=100.0))
    out += px.advance(T9 + 1)
    assert fills(out, "f1") == [(D("100.01"), D("0.01"), D("0.00100010"), TAKER)]
    out = px.submit(order("f2", Side.BUY, "0.01"))
    out += px.advance(T9 + 1)
    assert statuses(out, "f2") == [S.SUBMITTED, S.REJECTED]


def test_same_seed_same_fills_any_interleaving(events: list[tuple[int, MarketEvent]]) -> None:
    """Latency is drawn per order from the seed: the arrival times, and so the
    fills, are the same whether the orders come before or after the market."""
    market = [e for n, e in events if n <= 400]
    orders = [
        order(
            f"o{i}",
            Side.BUY if i % 2 else Side.SELL,
            "0.003",
            ts=market[20 * i].ts_event,
            price=None if i % 3 else "61830.01",
        )
        for i in range(1, 15)
    ]
    results = []
    for orders_first in (True, False):
        px = PaperExchange(PaperSettings(seed=11), load_instruments())
        results.append(run(px, events, orders, orders_first=orders_first))
    interleaved = PaperExchange(PaperSettings(seed=11), load_instruments())
    out: list[Event] = []
    for i, e in enumerate(market):
        out.extend(interleaved.on_market(e))
        if i % 37 == 0:
            for o in orders[i // 37 :: 11]:
                out.extend(interleaved.submit(o))
    for o in orders:
        out.extend(interleaved.submit(o))
    key = sorted((e.id, e) for e in results[0])
    assert sorted((e.id, e) for e in results[1]) == key
    assert sorted((e.id, e) for e in out) == key
    assert any(isinstance(e, Fill) for e in results[0])
    a = PaperExchange(PaperSettings(seed=11), load_instruments())
    b = PaperExchange(PaperSettings(seed=12), load_instruments())
    lat_a = [a.latency_ns(o.client_order_id) for o in orders]
    assert lat_a != [b.latency_ns(o.client_order_id) for o in orders]
    assert all(5_000_000 <= x < 7_000_000 for x in lat_a)


def test_cancel_a_resting_order(events: list[tuple[int, MarketEvent]]) -> None:
    px = paper()
    out = run(px, events, [order("c1", Side.BUY, "0.01", price="61800")], upto=60)
    cancel = CancelRequest(
        id="x1", ts_event=T9 + 10, client_order_id="c1", exchange="binance", symbol="BTCUSDT"
    )
    out += px.cancel(cancel)
    assert statuses(out, "c1") == [S.SUBMITTED, S.ACCEPTED, S.CANCELED]
    assert px.open_count() == 0


def test_an_order_older_than_the_history_is_counted(
    events: list[tuple[int, MarketEvent]],
) -> None:
    px = paper(history_s=0.001, checkpoint_every=16, history_max_events=1000)
    run(px, events, [], orders_first=False)
    px.submit(order("old", Side.BUY, "0.001", ts=T9))
    assert px.beyond_history == 1 and px.late_orders == 1


@pytest.fixture(scope="module")
def many_events() -> list[MarketEvent]:
    path = market_file("binance_spot_btcusdt_combined_20240808.jsonl")
    parser = BinanceParser()
    out: list[MarketEvent] = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if n > 4000:
                break
            out.extend(parser.parse(line.strip(), 0))
    return out


def _mixed(events: list[MarketEvent]) -> list[MarketEvent | OrderRequest]:
    """The recording with orders, many of them late (decided at an event the
    market stream has long passed), so a restored history is needed to match
    them; limit orders rest at, behind and through the best bid."""
    out: list[MarketEvent | OrderRequest] = []
    bid: D | None = None
    for i, e in enumerate(events):
        out.append(e)
        if isinstance(e, Quote):
            bid = D(repr(e.bid))
        if i % 25 or bid is None:
            continue
        k = i // 25
        ts = events[max(i - (k % 4) * 40, 0)].ts_event
        buy = k % 2 == 0
        price = None if k % 5 == 0 else str(bid + D("0.01") * (k % 4 - 1 if buy else 2 - k % 4))
        out.append(order(f"mix{k}", Side.BUY if buy else Side.SELL, "0.02", ts=ts, price=price))
    return out


def _feed(px: PaperExchange, item: MarketEvent | OrderRequest) -> list[Event]:
    return px.submit(item) if isinstance(item, OrderRequest) else px.on_market(item)


@pytest.mark.parametrize("crash_at", [40, 1500, 2600, 3900])
async def test_saved_state_continues_exactly(many_events: list[MarketEvent], crash_at: int) -> None:
    """Save after every step as the service does; restore into a fresh exchange
    at ``crash_at``: everything after is what the undisturbed one produced.
    A small history (eviction, the slot ring) and late orders included."""
    from tradewind.bus import MemoryBus
    from tradewind.execution.paper.store import PaperStore

    kw: dict[str, Any] = {"history_max_events": 1000, "checkpoint_every": 16, "latency_ms": 3.0}
    items = _mixed(many_events)
    assert len(items) > crash_at + 200
    calm = paper(**kw)
    expected = [_feed(calm, it) for it in items]

    bus = MemoryBus()
    px = paper(**kw)
    store = PaperStore(px, "paper:t")
    for it in items[:crash_at]:
        _feed(px, it)
        for k, v in store.changes().items():
            await bus.put_state(k, v)
        store.saved()
    again = paper(**kw)
    assert await PaperStore(again, "paper:t").restore(bus)
    assert again.open_count() == px.open_count()
    got = [_feed(again, it) for it in items[crash_at:]]
    assert got == expected[crash_at:]
    assert sum(isinstance(e, Fill) for out in got for e in out) > 0
    assert again.late_orders > 0
    assert again.markets[("binance", "BTCUSDT")].start > 0, "history was evicted"


def test_memory_stays_bounded_over_many_orders() -> None:
    """A long run (bounded loop) of synthetic quotes and trades with thousands
    of orders: finished ids, the ledger and the market history stay bounded,
    while every id younger than the horizon is still recognised."""
    from tradewind.events import Trade

    now = [0.0]
    px = PaperExchange(
        PaperSettings(
            latency_ms=0.0,
            latency_jitter_ms=0.0,
            history_s=1.0,
            history_max_events=1000,
            checkpoint_every=64,
        ),
        load_instruments(),
        keep_done=200,
        keep_done_s=5.0,
        clock=lambda: now[0],
    )
    key = ("binance", "BTCUSDT")
    t0 = T9
    sizes: list[tuple[int, int, int]] = []
    for i in range(6000):
        ts = t0 + i * 10_000_000
        now[0] = i * 0.01
        bid = 60000.0 + (i % 7) * 0.01
        px.on_market(
            Quote(
                id=f"q{i}",
                ts_event=ts,
                exchange="binance",
                symbol="BTCUSDT",
                bid=bid,
                bid_qty=1.0,
                ask=bid + 0.01,
                ask_qty=1.0,
                ts_recv=ts,
            )
        )
        px.submit(
            order(f"b{i}", Side.BUY if i % 2 else Side.SELL, "0.001", ts=ts, price=f"{bid:.2f}")
        )
        px.on_market(
            Trade(
                id=f"t{i}",
                ts_event=ts + 5_000_000,
                exchange="binance",
                symbol="BTCUSDT",
                price=bid - 0.05 if i % 2 else bid + 0.06,
                qty=0.5,
                side=Side.SELL if i % 2 else Side.BUY,
                trade_id=str(i),
                ts_recv=ts,
            )
        )
        if i % 1000 == 999:
            sizes.append((len(px.done), len(px.ledger[key]), len(px.markets[key].events)))
    assert all(d <= 200 + 5 / 0.01 + 1 for d, _, _ in sizes), sizes
    assert all(n <= 1000 + 64 for _, _, n in sizes), sizes
    assert all(n <= 2 * 1024 for _, n, _ in sizes), sizes
    assert len(px.orders) < 10
    recent = order("b5990", Side.BUY, "0.001", price="60000.00")
    assert px.submit(recent) == [], "a duplicate within the horizon is ignored"
    assert px.knows("b5990") and not px.knows("b10")
