"""The paper exchange on synthetic markets: the paths the recorded-book tests
do not reach, each named for the bug it catches, and the invariants over random
interleavings of market events, orders and cancels on several exchanges and
symbols, with a real spread and fees, prices below and above 1."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewind.config import PaperSettings
from tradewind.events import (
    BookDelta,
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
    Trade,
)
from tradewind.exchanges.instruments import load_instruments
from tradewind.execution.paper.exchange import PaperExchange
from tradewind.observability import metrics

S = OrderStatus
ADA = ("bybit", "ADAUSDT")
"""Not in the bundled instruments: tick and lot 1e-8, a coin priced below 1."""
BTC = ("binance", "BTCUSDT")
_n = [0]


def paper(**kw: Any) -> PaperExchange:
    base: dict[str, Any] = {"latency_ms": 0.0, "latency_jitter_ms": 0.0}
    return PaperExchange(PaperSettings(**{**base, **kw}), load_instruments())


def quote(key: tuple[str, str], ts: int, bid: float, ask: float, qty: float = 100.0) -> Quote:
    _n[0] += 1
    return Quote(
        id=f"q{_n[0]}",
        ts_event=ts,
        exchange=key[0],
        symbol=key[1],
        bid=bid,
        bid_qty=qty,
        ask=ask,
        ask_qty=qty,
        ts_recv=ts,
    )


def trade(key: tuple[str, str], ts: int, price: float, qty: float, side: Side) -> Trade:
    _n[0] += 1
    return Trade(
        id=f"t{_n[0]}",
        ts_event=ts,
        exchange=key[0],
        symbol=key[1],
        price=price,
        qty=qty,
        side=side,
        trade_id=str(_n[0]),
        ts_recv=ts,
    )


def snapshot(
    key: tuple[str, str], ts: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> BookDelta:
    _n[0] += 1
    return BookDelta(
        id=f"b{_n[0]}",
        ts_event=ts,
        exchange=key[0],
        symbol=key[1],
        bids=bids,
        asks=asks,
        snapshot=True,
        first_update_id=_n[0],
        last_update_id=_n[0],
        ts_recv=ts,
    )


def order(
    coid: str,
    side: Side,
    qty: str,
    ts: int,
    *,
    key: tuple[str, str] = ADA,
    price: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
    refs: tuple[float | None, float | None, float | None] = (None, None, None),
) -> OrderRequest:
    return OrderRequest(
        id=coid,
        ts_event=ts,
        client_order_id=coid,
        signal_id=f"s-{coid}",
        strategy="t",
        exchange=key[0],
        symbol=key[1],
        side=side,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        price=None if price is None else D(price),
        time_in_force=tif,
        reduce_only=reduce_only,
        ref_bid=refs[0],
        ref_ask=refs[1],
        ref_last=refs[2],
    )


def cancel(coid: str, ts: int, key: tuple[str, str] = ADA) -> CancelRequest:
    return CancelRequest(
        id=f"x-{coid}-{ts}", ts_event=ts, client_order_id=coid, exchange=key[0], symbol=key[1]
    )


def statuses(out: list[Event], coid: str) -> list[OrderStatus]:
    return [e.status for e in out if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def fills(out: list[Event], coid: str) -> list[Fill]:
    return [e for e in out if isinstance(e, Fill) and e.client_order_id == coid]


def test_a_cancel_that_lands_before_its_order_cancels_it_unfilled() -> None:
    """Order and cancel both in flight: the cancel lands first, the order then
    never reaches the (crossing) market."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("a", Side.BUY, "10", 2000, price="0.40"))
    out += px.cancel(cancel("a", 1500))
    assert statuses(out, "a") == [S.SUBMITTED]
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36))
    assert statuses(out, "a") == [S.SUBMITTED, S.ACCEPTED, S.CANCELED]
    assert [u.ts_event for u in out if isinstance(u, OrderUpdate)][-1] == 2000
    assert fills(out, "a") == [] and px.open_count() == 0 and px.knows("a")


def test_cancelling_one_in_flight_order_keeps_the_others() -> None:
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    for coid in ("a", "b", "c"):
        out += px.submit(order(coid, Side.BUY, "10", 2000, price="0.40"))
    out += px.submit(order("z", Side.SELL, "1", 2000, key=BTC, price="1"))
    out += px.cancel(cancel("b", 1500))
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36))
    assert statuses(out, "b")[-1] is S.CANCELED and fills(out, "b") == []
    for coid in ("a", "c"):
        assert [(f.price, f.qty) for f in fills(out, coid)] == [(D("0.36"), D("10"))]
        assert statuses(out, coid)[-1] is S.FILLED
    assert statuses(out, "z") == [S.SUBMITTED], "another symbol's order is still in flight"


def test_a_market_orders_remainder_beyond_the_book_expires() -> None:
    px = paper(taker_fee_bps=D("7.5"))
    out = px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0), (0.37, 20.0)]))
    out += px.submit(order("m", Side.BUY, "80", 2000))
    out += px.on_market(trade(ADA, 3000, 0.36, 1.0, Side.BUY))
    assert [(f.price, f.qty, f.fee) for f in fills(out, "m")] == [
        (D("0.36"), D("30"), D("0.00810000")),
        (D("0.37"), D("20"), D("0.00555000")),
    ]
    ups = [u for u in out if isinstance(u, OrderUpdate) and u.client_order_id == "m"]
    assert ups[-1].status is S.EXPIRED and ups[-1].filled_qty == D("50")
    assert ups[-1].reason == "market order beyond visible liquidity"
    assert px.open_count() == 0


def test_sell_side_reference_fallback_uses_the_bid_with_slippage_down() -> None:
    """No market known: a sell is priced from the bid (else the last trade),
    worsened by the slippage and rounded down to the tick."""
    px = paper(slippage_bps=D("10"))
    sell = order("s", Side.SELL, "0.01", 10, key=BTC, refs=(60000.0, 60010.0, 59000.0))
    buy = order("b", Side.BUY, "0.01", 10, key=BTC, refs=(60000.0, 60010.0, 59000.0))
    last_only = order("l", Side.SELL, "0.01", 10, key=BTC, refs=(None, 60010.0, 59000.0))
    assert px.fill_price(sell) == D("59940.00")
    assert px.fill_price(buy) == D("60070.01")
    assert px.fill_price(last_only) == D("58941.00")
    odd = order("o", Side.SELL, "0.01", 10, key=BTC, refs=(60000.05, 60010.0, None))
    assert px.fill_price(odd) == D("59940.04"), "59940.04995 rounds down for a sell"
    odd_buy = order("ob", Side.BUY, "0.01", 10, key=BTC, refs=(None, 60000.01, None))
    assert px.fill_price(odd_buy) == D("60060.02"), "60060.01001 rounds up for a buy"
    out = px.submit(sell) + px.advance(11)
    assert [(f.price, f.qty) for f in fills(out, "s")] == [(D("59940.00"), D("0.01"))]


def test_a_market_order_after_trades_only_pays_the_slippage_on_the_last_price() -> None:
    px = paper(slippage_bps=D("100"))
    out = px.on_market(trade(ADA, 1000, 0.5, 3.0, Side.BUY))
    out += px.on_market(trade(ADA, 1001, 0.4, 3.0, Side.SELL))
    out += px.submit(order("b", Side.BUY, "10", 2000))
    out += px.submit(order("s", Side.SELL, "10", 2000))
    out += px.advance(2000)
    assert [f.price for f in fills(out, "b")] == [D("0.404")]
    assert [f.price for f in fills(out, "s")] == [D("0.396")]


def test_reduce_only_follows_the_sign_of_the_position() -> None:
    """Short 30: a reduce-only buy of 50 is clipped to 30 (its rest expires so
    nothing stays open); a reduce-only sell has nothing to reduce."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("short", Side.SELL, "30", 1500))
    out += px.submit(order("rb", Side.BUY, "50", 2000, reduce_only=True))
    out += px.submit(order("rs", Side.SELL, "5", 2000, reduce_only=True))
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36))
    assert sum(f.qty for f in fills(out, "short")) == D("30")
    assert [(f.price, f.qty) for f in fills(out, "rb")] == [(D("0.36"), D("30"))]
    ups = [u for u in out if isinstance(u, OrderUpdate) and u.client_order_id == "rb"]
    assert [u.status for u in ups][-2:] == [S.PARTIALLY_FILLED, S.EXPIRED]
    assert ups[-1].filled_qty == D("30") and ups[-1].quantity == D("50")
    assert statuses(out, "rs")[-1] is S.REJECTED
    assert px.open_count() == 0 and px._position(ADA, 3000) == 0


def test_resting_fills_pay_the_maker_fee_at_the_limit() -> None:
    px = paper(maker_fee_bps=D("2"), taker_fee_bps=D("10"))
    out = px.on_market(quote(BTC, 1000, 60000.0, 60000.5, qty=0.0))
    out += px.submit(order("l", Side.SELL, "0.3", 1500, key=BTC, price="60001"))
    out += px.on_market(trade(BTC, 2000, 60002.0, 1.0, Side.BUY))
    [f] = fills(out, "l")
    assert (f.price, f.qty, f.liquidity, f.fee) == (
        D("60001"),
        D("0.3"),
        Liquidity.MAKER,
        D("3.60006000"),
    )


def test_a_cancel_ahead_of_the_market_waits_for_its_time() -> None:
    """A resting order's cancel that the market has not reached yet lands at
    its own time: a trade before it still fills, one after it does not."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.on_market(quote(ADA, 1500, 0.35, 0.36))
    out += px.submit(order("r", Side.BUY, "30", 1000, price="0.34"))
    assert px.late_orders == 1 and not px.in_flight, "matched from history, never in flight"
    out += px.cancel(cancel("r", 3000))
    assert statuses(out, "r") == [S.SUBMITTED, S.ACCEPTED]
    out += px.on_market(trade(ADA, 2000, 0.34, 10.0, Side.SELL))
    out += px.on_market(trade(ADA, 4000, 0.33, 10.0, Side.SELL))
    assert [(f.ts_event, f.qty) for f in fills(out, "r")] == [(2000, D("10"))]
    ups = [u for u in out if isinstance(u, OrderUpdate) and u.client_order_id == "r"]
    assert (ups[-1].status, ups[-1].ts_event) == (S.CANCELED, 3000)


def test_a_late_cancel_takes_effect_at_its_own_time() -> None:
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("r", Side.BUY, "30", 1000, price="0.34"))
    out += px.on_market(quote(ADA, 5000, 0.35, 0.36))
    out += px.cancel(cancel("r", 3000))
    ups = [u for u in out if isinstance(u, OrderUpdate) and u.client_order_id == "r"]
    assert (ups[-1].status, ups[-1].ts_event, ups[-1].reason) == (S.CANCELED, 3000, "canceled")


def test_a_batch_of_several_symbols_equals_one_by_one() -> None:
    events: list[MarketEvent] = [
        quote(ADA, 1000, 0.35, 0.36),
        quote(BTC, 1000, 61000.0, 61000.5),
        trade(ADA, 2000, 0.36, 5.0, Side.BUY),
        trade(BTC, 2000, 61000.5, 0.01, Side.BUY),
    ]
    results = []
    for batched in (True, False):
        px = paper()
        out = px.submit(order("a", Side.BUY, "10", 1000, price="0.36"))
        out += px.submit(order("b", Side.SELL, "0.01", 1000, key=BTC))
        if batched:
            out += px.on_markets(events)
        else:
            for e in events:
                out += px.on_market(e)
        results.append(out)
    assert results[0] == results[1]
    assert fills(results[0], "a") and fills(results[0], "b")


def test_rejections_and_expiries_say_why() -> None:
    px = paper()
    out = px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0)]))
    out += px.submit(order("po", Side.BUY, "10", 2000, price="0.36", tif=TimeInForce.POST_ONLY))
    out += px.submit(order("fl", Side.BUY, "40", 2000, price="0.36", tif=TimeInForce.FOK))
    out += px.submit(order("fm", Side.SELL, "60", 2000, tif=TimeInForce.FOK))
    out += px.on_market(trade(ADA, 3000, 0.36, 1.0, Side.BUY))
    last = {u.client_order_id: u for u in out if isinstance(u, OrderUpdate)}
    assert (last["po"].status, last["po"].reason) == (
        S.REJECTED,
        "post-only order would take liquidity",
    )
    for coid in ("fl", "fm"):
        assert (last[coid].status, last[coid].reason) == (
            S.EXPIRED,
            "fill-or-kill: not enough liquidity",
        )
    assert not fills(out, "fl") and not fills(out, "fm")


def test_a_quote_moving_away_keeps_the_queue_ahead() -> None:
    """A bid rising above a resting buy leaves the queue in front of it as it
    was: a sell trade at the price then eats that queue, not the order."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36, qty=50.0))
    out += px.submit(order("q", Side.BUY, "10", 1000, price="0.35"))
    out += px.on_market(quote(ADA, 1500, 0.35, 0.36, qty=50.0))
    assert px.orders["q"].queue_ahead == D("50.0")
    out += px.on_market(quote(ADA, 2000, 0.36, 0.37, qty=50.0))
    out += px.on_market(trade(ADA, 2500, 0.35, 10.0, Side.SELL))
    assert fills(out, "q") == [] and px.orders["q"].queue_ahead == D("40.0")
    out += px.on_market(quote(ADA, 3000, 0.34, 0.35, qty=5.0))
    assert px.orders["q"].queue_ahead == 0, "the bid fell below the price: nothing ahead"


# --- properties ----------------------------------------------------------------------

MID = {ADA: 0.35, BTC: 61000.0}
TICK = {ADA: 0.0001, BTC: 0.01}


def _px(key: tuple[str, str], k: int) -> float:
    return round(MID[key] + TICK[key] * k, 8)


step = st.one_of(
    st.tuples(st.just("quote"), st.integers(0, 1), st.integers(-8, 8), st.integers(1, 3)),
    st.tuples(st.just("book"), st.integers(0, 1), st.integers(-8, 8), st.integers(1, 3)),
    st.tuples(st.just("trade"), st.integers(0, 1), st.integers(-12, 12), st.integers(1, 40)),
    st.tuples(st.just("market"), st.integers(0, 1), st.booleans(), st.integers(1, 40)),
    st.tuples(st.just("limit"), st.integers(0, 1), st.integers(-10, 10), st.integers(1, 40)),
    st.tuples(st.just("cancel"), st.integers(0, 30), st.integers(0, 3), st.just(0)),
)
TIFS = [TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY]


def script(steps: list[tuple[Any, ...]], mirror: bool = False) -> list[Any]:
    """Market events, orders and cancels from ``steps``; ``mirror`` reflects
    every price about the mid and swaps buy and sell."""
    keys = [ADA, BTC]
    sign = -1 if mirror else 1
    out: list[Any] = []
    ts = 1_000
    for n, (kind, a, b, c) in enumerate(steps):
        ts += 1_000 * (n % 3)
        key = keys[a % 2]
        unit = D("10") if key is ADA else D("0.001")

        def side(buy: bool) -> Side:
            return Side.BUY if buy != mirror else Side.SELL

        if kind == "quote":
            lo, hi = _px(key, sign * b - c), _px(key, sign * b + c)
            out.append(quote(key, ts, min(lo, hi), max(lo, hi), qty=50.0 if key is ADA else 0.05))
        elif kind == "book":
            bids = [(_px(key, sign * b - c - i), 20.0 if key is ADA else 0.02) for i in range(3)]
            asks = [(_px(key, sign * b + c + i), 20.0 if key is ADA else 0.02) for i in range(3)]
            out.append(snapshot(key, ts, bids, asks))
        elif kind == "trade":
            q = float(unit) * c / 4
            out.append(trade(key, ts, _px(key, sign * b), q, side(b % 2 == 0)))
        elif kind in ("market", "limit"):
            buy = b if kind == "market" else b % 2 == 0
            limit = None if kind == "market" else str(D(repr(_px(key, sign * b))))
            ref = _px(key, 0)
            out.append(
                order(
                    f"o{n}",
                    side(bool(buy)),
                    str(unit * c),
                    ts,
                    key=key,
                    price=limit,
                    tif=TIFS[c % 4] if kind == "limit" else TimeInForce.GTC,
                    reduce_only=c % 7 == 0,
                    refs=(ref, ref, ref),
                )
            )
        else:
            orders = [o for o in out if isinstance(o, OrderRequest)]
            if orders:
                o = orders[a % len(orders)]
                out.append(cancel(o.client_order_id, ts - 1_000 * b, (o.exchange, o.symbol)))
    return out


def play(px: PaperExchange, items: list[Any]) -> list[Event]:
    out: list[Event] = []
    for it in items:
        if isinstance(it, OrderRequest):
            out += px.submit(it)
        elif isinstance(it, CancelRequest):
            out += px.cancel(it)
        else:
            out += px.on_market(it)
    return out


def finish(px: PaperExchange, items: list[Any]) -> list[Event]:
    """Cancel what still rests and land what is in flight: every order must end."""
    last = max((it.ts_event for it in items), default=0) + 10_000
    out = px.advance(last)
    for st_ in px.open_orders():
        out += px.cancel(cancel(st_.client_order_id, last, (st_.exchange, st_.symbol)))
    return out + px.advance(last + 10_000)


PROPS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPS
@given(st.lists(step, min_size=1, max_size=40))
def test_fills_add_up_respect_limits_and_fees_and_every_order_ends(
    steps: list[tuple[Any, ...]],
) -> None:
    px = paper(taker_fee_bps=D("7.5"), maker_fee_bps=D("1.5"), slippage_bps=D("3"))
    items = script(steps)
    out = play(px, items) + finish(px, items)
    orders = {o.client_order_id: o for o in items if isinstance(o, OrderRequest)}
    rate = {Liquidity.TAKER: D("7.5"), Liquidity.MAKER: D("1.5")}
    ended: dict[str, OrderUpdate] = {}
    total: dict[str, D] = dict.fromkeys(orders, D(0))
    for e in out:
        coid = e.client_order_id if isinstance(e, Fill | OrderUpdate) else ""
        if coid:
            assert coid not in ended, f"{coid} changed after it ended"
        if isinstance(e, Fill):
            o = orders[coid]
            assert (e.exchange, e.symbol, e.side) == (o.exchange, o.symbol, o.side)
            assert e.qty > 0
            total[coid] += e.qty
            assert total[coid] <= o.quantity
            if o.price is not None:
                assert e.price <= o.price if o.side is Side.BUY else e.price >= o.price
            assert e.fee == (e.price * e.qty * rate[e.liquidity] / 10_000).quantize(D("1e-8"))
        elif isinstance(e, OrderUpdate):
            assert e.filled_qty == total[coid]
            assert (e.status is S.FILLED) is (e.filled_qty == e.quantity) or not e.status.terminal
            if e.status.terminal:
                ended[coid] = e
    assert set(ended) == set(orders), "every order ends"
    assert px.open_count() == 0


@PROPS
@given(st.lists(step, min_size=1, max_size=40))
def test_buys_and_sells_mirror_each_other(steps: list[tuple[Any, ...]]) -> None:
    """The same run reflected about the mid, buys for sells: the same
    quantities fill at the reflected prices with the same liquidity, and every
    order takes the same path through its states."""
    runs: list[list[tuple[Any, ...]]] = []
    for mirror in (False, True):
        px = paper(taker_fee_bps=D("7.5"), maker_fee_bps=D("1.5"), slippage_bps=D(0))
        items = script(steps, mirror)
        out = play(px, items) + finish(px, items)
        runs.append(
            [
                (e.id, e.qty, e.price, e.liquidity, e.symbol)
                if isinstance(e, Fill)
                else (e.id, e.status, e.filled_qty)
                for e in out
                if isinstance(e, Fill | OrderUpdate)
            ]
        )
    plain, mirrored = runs
    assert len(plain) == len(mirrored)
    mids = {ADA[1]: D("0.35"), BTC[1]: D("61000")}
    for a, b in zip(plain, mirrored, strict=True):
        if len(a) == 5:
            assert (a[0], a[1], a[3], a[4]) == (b[0], b[1], b[3], b[4])
            assert a[2] + b[2] == 2 * mids[a[4]]
        else:
            assert a == b


# --- survivors of the full mutation run (2026-12-06), each named for its bug -------


def _updates(out: list[Event], coid: str) -> list[OrderUpdate]:
    return [u for u in out if isinstance(u, OrderUpdate) and u.client_order_id == coid]


def test_a_cancels_latency_is_added_to_its_time_not_subtracted() -> None:
    """With latency, a cancel sent at 3 ms lands at 3 ms + its own latency: a
    trade between the two still fills the resting order."""
    px = paper(latency_ms=1.0, latency_jitter_ms=1.0)
    out = px.on_market(quote(ADA, 0, 0.35, 0.36, qty=0.0))
    out += px.submit(order("r", Side.BUY, "30", 0, price="0.34"))
    out += px.on_market(quote(ADA, 2_500_000, 0.35, 0.36, qty=0.0))
    c = cancel("r", 3_000_000)
    lands = 3_000_000 + px.latency_ns(c.id)
    assert lands != 3_000_000 + px.latency_ns("None")
    out += px.cancel(c)
    out += px.on_market(trade(ADA, 3_000_001, 0.34, 10.0, Side.SELL))
    out += px.on_market(quote(ADA, 6_000_000, 0.35, 0.36))
    assert [(f.ts_event, f.qty) for f in fills(out, "r")] == [(3_000_001, D("10"))]
    assert (_updates(out, "r")[-1].status, _updates(out, "r")[-1].ts_event) == (S.CANCELED, lands)


def test_a_cancel_at_the_markets_last_time_waits_for_the_rest_of_that_time() -> None:
    """Events at a cancel's own arrival time come before it (an order is matched
    against every event up to the first later one): a trade at that time fills."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("r", Side.BUY, "30", 1000, price="0.34"))
    out += px.on_market(quote(ADA, 2000, 0.35, 0.36))
    out += px.cancel(cancel("r", 2000))
    out += px.on_market(trade(ADA, 2000, 0.33, 50.0, Side.SELL))
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36))
    assert [(f.price, f.qty) for f in fills(out, "r")] == [(D("0.34"), D("30"))]
    assert statuses(out, "r")[-1] is S.FILLED


def test_a_cancels_reason_is_kept_on_both_paths() -> None:
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("now", Side.BUY, "30", 1000, price="0.34"))
    out += px.submit(order("later", Side.BUY, "30", 1000, price="0.34"))
    out += px.on_market(quote(ADA, 5000, 0.35, 0.36))
    out += px.cancel(msgspec.structs.replace(cancel("now", 3000), reason="kill switch"))
    out += px.cancel(msgspec.structs.replace(cancel("later", 6000), reason="kill switch"))
    out += px.on_market(quote(ADA, 7000, 0.35, 0.36))
    for coid, ts in (("now", 3000), ("later", 6000)):
        last = _updates(out, coid)[-1]
        assert (last.status, last.ts_event, last.reason) == (S.CANCELED, ts, "kill switch")


def test_an_order_and_its_cancel_due_at_once_land_in_the_order_they_came() -> None:
    """Same arrival time: the order came first, so it lands first and takes the
    crossing ask; the cancel then finds it filled."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("a", Side.BUY, "10", 2000, price="0.30"))
    out += px.submit(order("b", Side.BUY, "10", 2000, price="0.40"))
    out += px.cancel(cancel("b", 2000))
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36))
    assert [(f.price, f.qty) for f in fills(out, "b")] == [(D("0.36"), D("10"))]
    assert statuses(out, "b")[-1] is S.FILLED


def test_every_change_to_the_orders_bumps_the_version_the_store_saves_on() -> None:
    px = paper()
    seen = [px.version]

    def bumped() -> None:
        assert px.version > max(seen), "the store would not save this change"
        seen.append(px.version)

    px.on_market(quote(ADA, 1000, 0.35, 0.36))
    px.submit(order("r", Side.BUY, "30", 1000, price="0.34"))
    bumped()
    px.on_market(trade(ADA, 1500, 0.34, 5.0, Side.SELL))
    bumped()
    px.cancel(cancel("r", 1000))
    bumped()
    px.submit(order("f", Side.BUY, "1", 3000, price="0.34"))
    bumped()
    px.on_market(quote(ADA, 4000, 0.35, 0.36))
    bumped()
    px.submit(order("w", Side.BUY, "1", 9000, price="0.34"))
    bumped()
    px.advance(9000)
    bumped()


def test_a_slipped_last_price_rounds_against_the_taker() -> None:
    """Only a trade known: 60000.05 with 10 bps is 60060.05005 for a buy (up to
    60060.06) and 59940.04995 for a sell (down to 59940.04)."""
    px = paper(slippage_bps=D("10"))
    out = px.on_market(trade(BTC, 1000, 60000.05, 1.0, Side.BUY))
    out += px.submit(order("b", Side.BUY, "0.01", 2000, key=BTC))
    out += px.submit(order("s", Side.SELL, "0.01", 2000, key=BTC))
    out += px.advance(2000)
    assert [f.price for f in fills(out, "b")] == [D("60060.06")]
    assert [f.price for f in fills(out, "s")] == [D("59940.04")]


def test_reduce_only_counts_a_fill_at_its_own_arrival_time() -> None:
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("long", Side.BUY, "30", 2000))
    out += px.submit(order("ro", Side.SELL, "50", 2000, reduce_only=True))
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36))
    assert [(f.ts_event, f.qty) for f in fills(out, "long")] == [(2000, D("30"))]
    assert [(f.ts_event, f.qty) for f in fills(out, "ro")] == [(2000, D("30"))]


def test_an_inverse_contracts_fee_is_in_the_coin_on_its_coin_value() -> None:
    """2 contracts of 100 USD at 50,000 are worth 0.004 BTC: 10 bps is 0.000004 BTC."""
    inv = ("binance-coinm", "BTCUSD_PERP")
    px = paper(taker_fee_bps=D("10"))
    out = px.on_market(quote(inv, 1000, 49999.9, 50000.0))
    out += px.submit(order("i", Side.BUY, "2", 2000, key=inv))
    out += px.advance(2000)
    [f] = fills(out, "i")
    assert (f.price, f.qty, f.fee, f.fee_currency) == (
        D("50000.0"),
        D("2"),
        D("0.00000400"),
        "BTC",
    )


def test_every_update_carries_its_time() -> None:
    """Cancel before arrival, no market price, market FOK short, market
    remainder: each update is stamped with the order's arrival time."""
    px = paper()
    out = px.submit(order("np", Side.BUY, "1", 500))
    out += px.advance(500)
    out += px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0)]))
    out += px.submit(order("c", Side.BUY, "10", 2000, price="0.40"))
    out += px.cancel(cancel("c", 1500))
    out += px.submit(order("fok", Side.BUY, "31", 2000, tif=TimeInForce.FOK))
    out += px.submit(order("rest", Side.BUY, "40", 2000))
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36, qty=30.0))
    last = {}
    for coid, at in (("np", 500), ("c", 2000), ("fok", 2000), ("rest", 2000)):
        ups = _updates(out, coid)
        assert [u.ts_event for u in ups[1:]] == [at] * (len(ups) - 1), coid
        last[coid] = (ups[-1].status, ups[-1].reason)
    assert last == {
        "np": (S.REJECTED, "no market price"),
        "c": (S.CANCELED, "canceled"),
        "fok": (S.EXPIRED, "fill-or-kill: not enough liquidity"),
        "rest": (S.EXPIRED, "market order beyond visible liquidity"),
    }


def test_a_market_fok_with_exactly_enough_liquidity_fills() -> None:
    px = paper()
    out = px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0), (0.37, 20.0)]))
    out += px.submit(order("f", Side.BUY, "50", 2000, tif=TimeInForce.FOK))
    out += px.advance(2000)
    assert [(f.price, f.qty) for f in fills(out, "f")] == [
        (D("0.36"), D("30")),
        (D("0.37"), D("20")),
    ]
    assert statuses(out, "f")[-1] is S.FILLED


def test_a_market_orders_remainder_below_one_unit_expires_too() -> None:
    px = paper()
    out = px.on_market(snapshot(BTC, 1000, [(60000.0, 1.0)], [(60001.0, 0.3)]))
    out += px.submit(order("m", Side.BUY, "0.5", 2000, key=BTC))
    out += px.advance(2000)
    assert [(f.price, f.qty) for f in fills(out, "m")] == [(D("60001.0"), D("0.3"))]
    assert statuses(out, "m")[-1] is S.EXPIRED and px.open_count() == 0 and not px.orders


def _illegal_transitions() -> float:
    return sum(s.value for m in metrics.ILLEGAL_TRANSITIONS.collect() for s in m.samples)


def test_fills_and_cancels_never_ask_for_an_illegal_transition() -> None:
    """A fully filled market order is not also expired, and cancelling a
    partly filled order does not try to accept it again: either would be
    counted and logged as a refused transition on every such order."""
    before = _illegal_transitions()
    px = paper()
    out = px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0)]))
    out += px.submit(order("m", Side.BUY, "10", 2000))
    out += px.submit(order("p", Side.BUY, "30", 2000, price="0.34"))
    out += px.on_market(trade(ADA, 3000, 0.34, 5.0, Side.SELL))
    out += px.cancel(cancel("p", 3000))
    out += px.on_market(quote(ADA, 4000, 0.35, 0.36))
    assert statuses(out, "m")[-1] is S.FILLED
    assert statuses(out, "p")[-2:] == [S.PARTIALLY_FILLED, S.CANCELED]
    assert _illegal_transitions() == before


def delta(
    key: tuple[str, str], ts: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> BookDelta:
    _n[0] += 1
    return BookDelta(
        id=f"d{_n[0]}",
        ts_event=ts,
        exchange=key[0],
        symbol=key[1],
        bids=bids,
        asks=asks,
        snapshot=False,
        first_update_id=_n[0],
        last_update_id=_n[0],
        ts_recv=ts,
    )


def test_a_resting_sell_waits_its_queue_on_a_trade_at_its_price() -> None:
    """A buy trade at the sell's own price eats the 100 ahead of it first; only
    a trade through the price fills the whole remainder."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36, qty=100.0))
    out += px.submit(order("s", Side.SELL, "30", 1000, price="0.36"))
    out += px.on_market(trade(ADA, 2000, 0.36, 110.0, Side.BUY))
    assert [f.qty for f in fills(out, "s")] == [D("10")]
    out += px.on_market(trade(ADA, 3000, 0.37, 1.0, Side.BUY))
    assert [f.qty for f in fills(out, "s")] == [D("10"), D("20")]


def test_a_quote_at_a_sells_price_shrinks_its_queue_to_the_ask() -> None:
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36, qty=100.0))
    out += px.submit(order("s", Side.SELL, "30", 1000, price="0.36"))
    out += px.on_market(quote(ADA, 1500, 0.35, 0.36, qty=20.0))
    assert px.orders["s"].queue_ahead == D("20.0")
    out += px.on_market(trade(ADA, 2000, 0.36, 30.0, Side.BUY))
    assert [f.qty for f in fills(out, "s")] == [D("10")]


def test_book_deltas_shrink_the_queue_on_the_orders_side_only() -> None:
    """A delta at the price caps the queue at what is left there; a snapshot
    without the price empties it; the other side's levels do not count."""
    px = paper()
    out = px.on_market(snapshot(ADA, 1000, [(0.34, 50.0)], [(0.37, 40.0)]))
    out += px.submit(order("b", Side.BUY, "10", 1000, price="0.34"))
    out += px.submit(order("s", Side.SELL, "10", 1000, price="0.37"))
    out += px.on_market(quote(ADA, 1200, 0.34, 0.37, qty=50.0))
    assert (px.orders["b"].queue_ahead, px.orders["s"].queue_ahead) == (D("50.0"), D("40.0"))
    out += px.on_market(delta(ADA, 1500, [(0.34, 20.0)], [(0.34, 1.0), (0.37, 30.0)]))
    assert (px.orders["b"].queue_ahead, px.orders["s"].queue_ahead) == (D("20.0"), D("30.0"))
    out += px.on_market(snapshot(ADA, 2000, [(0.33, 5.0), (0.34, 15.0)], [(0.37, 25.0)]))
    assert (px.orders["b"].queue_ahead, px.orders["s"].queue_ahead) == (D("15.0"), D("25.0"))
    out += px.on_market(snapshot(ADA, 2500, [(0.33, 5.0)], [(0.38, 25.0)]))
    assert (px.orders["b"].queue_ahead, px.orders["s"].queue_ahead) == (D(0), D(0))
    assert fills(out, "b") == fills(out, "s") == []


def test_a_resting_fill_is_rounded_down_to_the_lot_and_never_zero() -> None:
    """BTCUSDT's lot is 0.00001: 0.000015 past the queue fills 0.00001, and
    0.000005 fills nothing (no zero fill)."""
    px = paper()
    out = px.on_market(quote(BTC, 1000, 59999.0, 60001.0, qty=1.0))
    out += px.submit(order("b", Side.BUY, "0.001", 1000, key=BTC, price="60000"))
    out += px.on_market(trade(BTC, 2000, 60000.0, 0.000015, Side.SELL))
    out += px.on_market(trade(BTC, 3000, 60000.0, 0.000005, Side.SELL))
    assert [f.qty for f in fills(out, "b")] == [D("0.00001")]


def test_an_order_arriving_just_before_an_event_does_not_see_it() -> None:
    """Arrival at 1999, next event at 2000: the order fills on the book of 1000
    (no look-ahead)."""
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    out += px.submit(order("m", Side.BUY, "10", 1999))
    out += px.on_market(quote(ADA, 2000, 0.45, 0.46))
    assert [f.price for f in fills(out, "m")] == [D("0.36")]


def test_open_count_is_resting_plus_in_flight() -> None:
    px = paper()
    px.on_market(quote(ADA, 1000, 0.35, 0.36))
    px.submit(order("r", Side.BUY, "10", 1000, price="0.30"))
    px.submit(order("f", Side.BUY, "10", 5000, price="0.30"))
    assert px.open_count() == 2


def test_a_batch_given_as_a_generator_equals_a_list() -> None:
    events: list[MarketEvent] = [
        quote(ADA, 1000, 0.35, 0.36),
        trade(ADA, 2000, 0.34, 50.0, Side.SELL),
    ]
    results = []
    for batch in (lambda: list(events), lambda: (e for e in events)):
        px = paper()
        out = px.submit(order("r", Side.BUY, "10", 1000, price="0.34"))
        out += px.on_markets(batch())
        results.append((out, list(px.markets[ADA].since(0))))
    assert results[0] == results[1] and fills(results[0][0], "r")


def test_a_batch_keeps_each_event_once_after_the_last_order_finishes() -> None:
    """The order fills on the second event; the rest of the batch goes to the
    history in one piece, without the events already applied."""
    events: list[MarketEvent] = [
        quote(ADA, 1000, 0.35, 0.36),
        trade(ADA, 2000, 0.34, 50.0, Side.SELL),
        quote(ADA, 3000, 0.35, 0.36),
        quote(ADA, 4000, 0.35, 0.36),
    ]
    px = paper()
    px.submit(order("r", Side.BUY, "10", 1000, price="0.34"))
    out = px.on_markets(events)
    assert [f.qty for f in fills(out, "r")] == [D("10")]
    assert list(px.markets[ADA].since(0)) == events


def test_ledger_compaction_keeps_the_position(monkeypatch: Any) -> None:
    """Fills older than the history are summed into one entry: the position at
    any later time is the same as the sum of the signed fills."""
    monkeypatch.setattr("tradewind.execution.paper.exchange.LEDGER_COMPACT_AT", 4)
    px = paper(history_s=0.000_001, history_max_events=1000, checkpoint_every=16)
    out: list[Event] = []
    for k in range(60):
        ts = 1000 * (k + 1)
        out += px.on_market(quote(ADA, ts, 0.35, 0.36))
        side = Side.BUY if k % 4 else Side.SELL
        out += px.submit(order(f"m{k}", side, str(k + 1), ts))
        out += px.on_market(trade(ADA, ts, 0.35, 1.0, Side.BUY))
    total = sum(f.qty * f.side.sign for f in out if isinstance(f, Fill))
    assert len(px.ledger[ADA]) < 30, "compacted"
    assert (
        px._position(ADA, 10**9) == total == sum(D(k + 1) * (1 if k % 4 else -1) for k in range(59))
    )


def test_limit_paths_stamp_every_update_with_its_time_and_reason() -> None:
    px = paper()
    out = px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0)]))
    out += px.submit(order("long", Side.BUY, "5", 2000))
    out += px.submit(order("ro0", Side.BUY, "1", 2000, reduce_only=True))
    out += px.submit(order("ro", Side.SELL, "10", 2000, price="0.35", reduce_only=True))
    nolimit = order("np", Side.BUY, "1", 2000, price="0.36")
    out += px.submit(msgspec.structs.replace(nolimit, price=None, order_type=OrderType.LIMIT))
    out += px.submit(order("po", Side.BUY, "1", 2000, price="0.36", tif=TimeInForce.POST_ONLY))
    out += px.submit(order("fk", Side.BUY, "31", 2000, price="0.36", tif=TimeInForce.FOK))
    out += px.submit(order("ioc", Side.BUY, "40", 2000, price="0.36", tif=TimeInForce.IOC))
    out += px.on_market(quote(ADA, 3000, 0.35, 0.36, qty=30.0))
    expected = {
        "ro0": (S.REJECTED, "reduce-only: nothing to reduce"),
        "ro": (S.EXPIRED, "reduce-only: rest beyond the position"),
        "np": (S.REJECTED, "limit order without a price"),
        "po": (S.REJECTED, "post-only order would take liquidity"),
        "fk": (S.EXPIRED, "fill-or-kill: not enough liquidity"),
        "ioc": (S.EXPIRED, "immediate-or-cancel remainder"),
    }
    for coid, last in expected.items():
        ups = _updates(out, coid)
        assert [u.ts_event for u in ups[1:]] == [2000] * (len(ups) - 1), coid
        assert (ups[-1].status, ups[-1].reason) == last, coid
    assert [(f.price, f.qty) for f in fills(out, "ro")] == [(D("0.35"), D("5"))]
    assert [(f.price, f.qty) for f in fills(out, "ioc")] == [(D("0.36"), D("30"))]


def test_a_limit_fok_with_exactly_enough_liquidity_fills() -> None:
    px = paper()
    out = px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0), (0.37, 20.0)]))
    out += px.submit(order("f", Side.BUY, "50", 2000, price="0.37", tif=TimeInForce.FOK))
    out += px.advance(2000)
    assert [(f.price, f.qty) for f in fills(out, "f")] == [
        (D("0.36"), D("30")),
        (D("0.37"), D("20")),
    ]
    assert statuses(out, "f")[-1] is S.FILLED


def test_a_limit_filled_on_arrival_does_not_rest() -> None:
    before = _illegal_transitions()
    px = paper()
    out = px.on_market(snapshot(ADA, 1000, [(0.35, 50.0)], [(0.36, 30.0)]))
    out += px.submit(order("g", Side.BUY, "10", 2000, price="0.36"))
    out += px.submit(order("i", Side.BUY, "10", 2000, price="0.36", tif=TimeInForce.IOC))
    out += px.on_market(trade(ADA, 3000, 0.30, 100.0, Side.SELL))
    assert [f.qty for f in fills(out, "g")] == [D("10")] == [f.qty for f in fills(out, "i")]
    assert px.open_count() == 0 and _illegal_transitions() == before


def test_taking_rounds_each_level_to_the_lot_and_skips_dust() -> None:
    """BTCUSDT's lot is 0.00001: a level of 0.000005 is skipped (no zero fill)
    and one of 0.000015 gives 0.00001, for limit and market orders alike."""
    px = paper()
    asks = [(60001.0, 0.000005), (60002.0, 0.000015), (60003.0, 1.0)]
    out = px.on_market(snapshot(BTC, 1000, [(60000.0, 1.0)], asks))
    out += px.submit(order("l", Side.BUY, "0.00002", 2000, key=BTC, price="60002"))
    out += px.submit(order("m", Side.BUY, "0.00002", 2000, key=BTC))
    out += px.advance(2000)
    assert [(f.price, f.qty) for f in fills(out, "l")] == [(D("60002.0"), D("0.00001"))]
    assert [(f.price, f.qty) for f in fills(out, "m")] == [
        (D("60002.0"), D("0.00001")),
        (D("60003.0"), D("0.00001")),
    ]


def test_a_fill_carries_the_orders_strategy_receipt_time_and_fee_currency() -> None:
    px = paper()
    out = px.on_market(quote(ADA, 1000, 0.35, 0.36))
    o = msgspec.structs.replace(order("a", Side.BUY, "10", 2000), strategy="momo", ts_recv=77)
    out += px.submit(o)
    out += px.advance(2000)
    [f] = fills(out, "a")
    assert (f.strategy, f.ts_recv, f.fee_currency) == ("momo", 77, "USDT")


def test_finished_ids_beyond_the_cap_are_forgotten_only_once_old() -> None:
    """keep_done=2, keep_done_s=10: the oldest ids beyond the two newest go,
    but only when older than 10 s; a duplicate of a kept id is ignored."""
    now = [100.0]
    px = PaperExchange(
        PaperSettings(latency_ms=0.0, latency_jitter_ms=0.0),
        load_instruments(),
        keep_done=2,
        keep_done_s=10.0,
        clock=lambda: now[0],
    )
    px.on_market(quote(ADA, 1000, 0.35, 0.36))
    for i, t in enumerate((100.0, 103.0, 105.0, 112.0)):
        now[0] = t
        px.submit(order(f"o{i}", Side.BUY, "1", 1000, price="0.36"))
        px.advance(1000)
    assert list(px.done) == ["o1", "o2", "o3"], "o0 (12 s old) went; o1 (9 s) is too young"
    px.done.clear()
    px.done.update({"a": 1.0, "b": 2.0, "c": 3.0})
    px.expire_done(12.5)
    assert list(px.done) == ["b", "c"], "only the one beyond the cap, though all are old"
    px.expire_done(100.0)
    assert list(px.done) == ["b", "c"], "at the cap nothing goes"
    px.done.update({"d": 4.0, "e": 5.0})
    px.expire_done(13.0)
    assert list(px.done) == ["d", "e"], "c is exactly 10 s old: old enough"
    assert px.submit(order("d", Side.BUY, "1", 1000, price="0.36")) == []


def test_an_order_arriving_at_the_markets_last_time_sees_the_rest_of_that_time() -> None:
    px = paper()
    out = px.on_market(quote(ADA, 2000, 0.35, 0.36))
    out += px.submit(order("m", Side.BUY, "10", 2000))
    assert px.late_orders == 0
    out += px.on_market(quote(ADA, 2000, 0.36, 0.37))
    out += px.on_market(quote(ADA, 3000, 0.45, 0.46))
    assert [f.price for f in fills(out, "m")] == [D("0.37")]


def test_latency_is_in_milliseconds_and_drawn_per_order() -> None:
    px = paper(latency_ms=2.0, latency_jitter_ms=0.0)
    assert px.latency_ns("a") == 2_000_000
    px = paper(latency_ms=2.0, latency_jitter_ms=3.0)
    out = px.on_market(quote(ADA, 0, 0.35, 0.36))
    out += px.submit(order("a", Side.BUY, "1", 1000))
    assert px.latency_ns("a") != px.latency_ns("None")
    out += px.advance(10**9)
    ups = _updates(out, "a")
    assert ups[0].ts_event == 1000, "SUBMITTED at the order's own time"
    assert [f.ts_event for f in fills(out, "a")] == [1000 + px.latency_ns("a")]


def test_late_orders_and_those_beyond_the_history_are_each_counted() -> None:
    def beyond() -> float:
        want = {"exchange": "paper", "kind": "late_beyond_history"}
        samples = (s for m in metrics.EXCHANGE_ERRORS.collect() for s in m.samples)
        return sum(s.value for s in samples if s.name.endswith("_total") and s.labels == want)

    before = beyond()
    px = paper(history_s=0.000_001, history_max_events=1000, checkpoint_every=16)
    for k in range(40):
        px.on_market(quote(ADA, 1000 * (k + 1), 0.35, 0.36))
    px.submit(order("x", Side.BUY, "1", 1500, price="0.30"))
    px.submit(order("y", Side.BUY, "1", 1500, price="0.30"))
    assert (px.late_orders, px.beyond_history, beyond() - before) == (2, 2, 2)
