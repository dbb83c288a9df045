"""The kill switch and the loss trips of the risk engine: each example is
named for the bug it catches; the properties run random books of positions and
open orders on several exchanges and symbols (prices below and above 1)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewind.config import RiskSettings
from tradewind.events import (
    CancelRequest,
    Control,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    RiskDecision,
    Side,
    TradingState,
)
from tradewind.exchanges.instruments import load_instruments
from tradewind.risk.engine import RiskEngine
from tradewind.risk.reasons import Reason

NS = 1_000_000_000
T0 = 1_723_161_255 * NS
INSTRUMENTS = load_instruments()
KEYS = [
    ("binance", "BTCUSDT"),
    ("binance", "FTMUSDT"),
    ("coinbase", "ETH-USD"),
    ("bybit", "BTCUSDT"),
]
PRICE = {KEYS[0]: D("60000"), KEYS[1]: D("0.3"), KEYS[2]: D("3000"), KEYS[3]: D("60010")}
UNIT = {KEYS[0]: D("0.001"), KEYS[1]: D("10"), KEYS[2]: D("0.01"), KEYS[3]: D("0.001")}


def engine(**risk: Any) -> RiskEngine:
    base: dict[str, Any] = {"max_daily_loss": D(10**9), "max_drawdown": D(10**9)}
    return RiskEngine(RiskSettings(**{**base, **risk}), INSTRUMENTS)


_n = [0]


def fill(key: tuple[str, str], side: Side, qty: D, price: D, fee: D = D(0), ts: int = T0) -> Fill:
    _n[0] += 1
    return Fill(
        id=f"f{_n[0]}",
        ts_event=ts,
        client_order_id=f"c{_n[0]}",
        exchange_order_id=f"e{_n[0]}",
        exchange=key[0],
        symbol=key[1],
        side=side,
        price=price,
        qty=qty,
        fee=fee,
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
    )


def open_order(e: RiskEngine, coid: str, key: tuple[str, str], side: Side, qty: D) -> None:
    e.on_order(
        OrderRequest(
            id=coid,
            ts_event=T0,
            client_order_id=coid,
            signal_id=f"s-{coid}",
            strategy="t",
            exchange=key[0],
            symbol=key[1],
            side=side,
            order_type=OrderType.LIMIT,
            quantity=qty,
            price=PRICE[key],
        ),
        PRICE[key],
    )


def mark(e: RiskEngine, key: tuple[str, str], price: D, ts: int = T0) -> None:
    e.on_market(key[0], key[1], ts, float(price))


def orders(out: list[Any]) -> list[OrderRequest]:
    return [x for x in out if isinstance(x, OrderRequest)]


def test_flattening_a_short_buys_it_back() -> None:
    """A short is closed by a buy of its size; a sell would double it."""
    e = engine()
    mark(e, KEYS[1], D("0.3"))
    e.on_fill(fill(KEYS[1], Side.SELL, D("500"), D("0.3")))
    assert e.halt("op-1", flatten=True) == (0, 1)
    [o] = orders(e.drain())
    assert (o.side, o.quantity, o.reduce_only) == (Side.BUY, D("500"), True)
    assert (o.exchange, o.symbol, o.order_type) == ("binance", "FTMUSDT", OrderType.MARKET)
    assert o.ref_last == 0.3 and o.strategy == "kill_switch"


def test_loss_trip_flattens_when_configured() -> None:
    """With ``flatten_on_breach`` a daily-loss trip closes every position at once
    (a decision and a reduce-only market order each), and only then."""
    for flatten in (True, False):
        e = engine(max_daily_loss=D(50), flatten_on_breach=flatten)
        mark(e, KEYS[0], D("60000"))
        e.on_fill(fill(KEYS[0], Side.BUY, D("0.01"), D("60000")))
        mark(e, KEYS[0], D("54000"), T0 + NS)
        assert e.state is TradingState.HALTED and e.trips == ["daily_loss"]
        out = e.drain()
        closes = orders(out)
        assert e.flattening is flatten
        if not flatten:
            assert closes == []
            continue
        [o] = closes
        assert (o.side, o.quantity, o.reduce_only) == (Side.SELL, D("0.01"), True)
        [d] = [x for x in out if isinstance(x, RiskDecision)]
        assert d.reason == Reason.FLATTEN and d.client_order_id == o.client_order_id
        [c] = [x for x in out if isinstance(x, Control)]
        assert c.args["flattening"] == "1" and c.args["state"] == "halted"


def test_no_flatten_when_a_trip_only_goes_reducing() -> None:
    e = engine(max_daily_loss=D(50), flatten_on_breach=True, loss_breach_state="reducing")
    mark(e, KEYS[0], D("60000"))
    e.on_fill(fill(KEYS[0], Side.BUY, D("0.01"), D("60000")))
    mark(e, KEYS[0], D("54000"), T0 + NS)
    assert e.state is TradingState.REDUCING
    assert orders(e.drain()) == [] and not e.flattening


def test_cancels_carry_each_orders_exchange_and_symbol() -> None:
    """The executor routes a cancel by its exchange and symbol; a cancel
    without them cannot reach the order."""
    e = engine()
    open_order(e, "a", KEYS[2], Side.BUY, D("0.1"))
    open_order(e, "b", KEYS[1], Side.SELL, D("100"))
    open_order(e, "c", KEYS[3], Side.BUY, D("0.002"))
    assert e.orders.pending(*KEYS[0]) == (0, 0), "same exchange or same symbol is not the key"
    assert e.orders.pending(*KEYS[3]) == (D("0.002"), 0)
    assert e.worst_position(KEYS[1]) == (0, D("-100"))
    assert e.halt("op-2", flatten=False) == (3, 0)
    cancels = [x for x in e.drain() if isinstance(x, CancelRequest)]
    got = {(c.client_order_id, c.exchange, c.symbol) for c in cancels}
    assert got == {("a", *KEYS[2]), ("b", *KEYS[1]), ("c", *KEYS[3])}
    assert all(c.reason == "kill switch (op-2)" for c in cancels)
    assert len({c.id for c in cancels}) == 3
    e.on_order_update(
        OrderUpdate(
            id="u",
            ts_event=T0,
            client_order_id="never-approved",
            exchange_order_id="",
            exchange=KEYS[0][0],
            symbol=KEYS[0][1],
            side=Side.BUY,
            order_type=OrderType.MARKET,
            status=OrderStatus.CANCELED,
            quantity=D(1),
            filled_qty=D(0),
            avg_price=None,
        )
    )
    assert len(e.open_orders) == 3, "an unknown order's end changes nothing"


def test_cooldown_counts_the_fees_of_the_losing_close() -> None:
    """A close that loses 95 on price and 10 in fees is a stop-out at 100."""
    e = engine(stopout_loss=D(100), cooldown_s=60)
    key = KEYS[0]
    mark(e, key, D("60000"))
    e.on_fill(fill(key, Side.BUY, D("0.01"), D("60000")))
    e.on_fill(fill(key, Side.SELL, D("0.01"), D("50500"), fee=D("10"), ts=T0 + NS))
    assert e.cooldowns.active(key, T0 + 2 * NS) == T0 + 61 * NS
    e2 = engine(stopout_loss=D(100), cooldown_s=60)
    mark(e2, key, D("60000"))
    e2.on_fill(fill(key, Side.BUY, D("0.01"), D("60000")))
    e2.on_fill(fill(key, Side.SELL, D("0.01"), D("50500"), fee=D("4"), ts=T0 + NS))
    assert e2.cooldowns.active(key, T0 + 2 * NS) is None


def test_a_loss_trip_fires_once_per_state_change() -> None:
    """Further losses while already halted neither trip again nor resend cancels."""
    e = engine(max_daily_loss=D(50))
    key = KEYS[0]
    mark(e, key, D("60000"))
    e.on_fill(fill(key, Side.BUY, D("0.01"), D("60000")))
    open_order(e, "o1", key, Side.BUY, D("0.001"))
    mark(e, key, D("54000"), T0 + NS)
    first = e.drain()
    assert e.trips == ["daily_loss"]
    assert sum(isinstance(x, CancelRequest) for x in first) == 1
    for i in range(2, 6):
        mark(e, key, D(54000 - 1000 * i), T0 + i * NS)
    assert e.trips == ["daily_loss"] and e.drain() == []
    e.resume("r1")
    e.drain()
    mark(e, key, D("40000"), T0 + 10 * NS)
    assert e.trips == ["daily_loss", "daily_loss"]


def test_reducing_then_a_halting_breach_is_a_new_state_change() -> None:
    e = engine(max_daily_loss=D(50), loss_breach_state="reducing")
    mark(e, KEYS[0], D("60000"))
    e.on_fill(fill(KEYS[0], Side.BUY, D("0.01"), D("60000")))
    e.halt("op", flatten=False)
    mark(e, KEYS[0], D("50000"), T0 + NS)
    assert e.state is TradingState.HALTED and e.trips == ["operator"]


# --- properties ----------------------------------------------------------------------

position = st.tuples(st.sampled_from(range(len(KEYS))), st.integers(-40, 40))
order = st.tuples(st.sampled_from(range(len(KEYS))), st.booleans(), st.integers(1, 20))


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    st.lists(position, max_size=8),
    st.lists(order, max_size=8),
    st.lists(st.sampled_from(range(len(KEYS))), max_size=4),
)
def test_kill_switch_closes_every_position_once_and_cancels_every_order(
    positions: list[tuple[int, int]], open_orders: list[tuple[int, bool, int]], marked: list[int]
) -> None:
    e = engine()
    want: dict[tuple[str, str], D] = {k: D(0) for k in KEYS}
    for k in marked:
        mark(e, KEYS[k], PRICE[KEYS[k]] * D("1.01"))
    for k, units in positions:
        key = KEYS[k]
        if units:
            side = Side.BUY if units > 0 else Side.SELL
            q = UNIT[key] * abs(units)
            e.on_fill(fill(key, side, q, PRICE[key], fee=PRICE[key] * q / 1000))
            want[key] += q if units > 0 else -q
    routes: dict[str, tuple[str, str]] = {}
    for i, (k, buy, units) in enumerate(open_orders):
        coid = f"o{i}"
        open_order(e, coid, KEYS[k], Side.BUY if buy else Side.SELL, UNIT[KEYS[k]] * units)
        routes[coid] = KEYS[k]
    cancels, closes = e.halt("op", flatten=True)
    out = e.drain()
    got_cancels = [x for x in out if isinstance(x, CancelRequest)]
    assert cancels == len(got_cancels) == len(routes)
    assert {c.client_order_id: (c.exchange, c.symbol) for c in got_cancels} == routes
    flat = orders(out)
    nonzero = {k: q for k, q in want.items() if q != 0}
    assert closes == len(flat) == len(nonzero)
    assert len({(o.exchange, o.symbol) for o in flat}) == len(flat), "one order per position"
    for o in flat:
        q = nonzero[(o.exchange, o.symbol)]
        assert o.reduce_only and o.order_type is OrderType.MARKET
        assert o.side is (Side.SELL if q > 0 else Side.BUY)
        assert o.quantity == abs(q)
    assert sum(isinstance(x, Control) for x in out) == 1
    assert e.state is TradingState.HALTED
    e.halt("op-again", flatten=False)
    again = e.drain()
    assert {x.client_order_id for x in again if isinstance(x, CancelRequest)} >= set(routes)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.sampled_from(["halted", "reducing"]),
    st.lists(
        st.tuples(st.sampled_from(range(len(KEYS))), st.integers(-150, 150), st.booleans()),
        min_size=1,
        max_size=40,
    ),
)
def test_a_trip_fires_once_per_state_change(
    breach: str, moves: list[tuple[int, int, bool]]
) -> None:
    """Random marks (and an occasional resume) over open positions: a trip is
    recorded exactly when the state gets more severe, with one control record
    and one cancel per open order each time."""
    severity = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
    e = engine(max_daily_loss=D(40), max_drawdown=D(25), loss_breach_state=breach)
    for key in KEYS:
        mark(e, key, PRICE[key])
        e.on_fill(fill(key, Side.BUY, UNIT[key] * 5, PRICE[key], fee=D("0.01")))
    open_order(e, "keep", KEYS[0], Side.BUY, D("0.001"))
    e.drain()
    for i, (k, permille, resume) in enumerate(moves, 1):
        ts = T0 + i * NS
        before_state, before_trips = e.state, len(e.trips)
        if resume and e.state is not TradingState.ACTIVE:
            e.resume(f"r{i}")
            assert e.state is TradingState.ACTIVE
            e.drain()
            before_state = e.state
        key = KEYS[k]
        mark(e, key, PRICE[key] * (1 + D(permille) / 1000), ts)
        out = e.drain()
        tripped = len(e.trips) - before_trips
        assert tripped in (0, 1)
        if tripped:
            assert severity[e.state] > severity[before_state]
            assert e.state is TradingState(breach)
            assert sum(isinstance(x, Control) for x in out) == 1
            assert sum(isinstance(x, CancelRequest) for x in out) == len(e.open_orders)
        else:
            assert e.state is before_state and out == []


def test_every_flatten_order_has_its_own_id_and_a_decision_on_its_side() -> None:
    """Two flattens from the same source must not share a client order id (the
    executor would drop the second as a duplicate)."""
    e = engine()
    mark(e, KEYS[0], D("60000"))
    e.on_fill(fill(KEYS[0], Side.SELL, D("0.01"), D("60000")))
    e.flatten("same")
    e.flatten("same")
    out = e.drain()
    first, second = orders(out)
    assert first.client_order_id != second.client_order_id
    assert e.flatten_seq == 2
    decisions = [x for x in out if isinstance(x, RiskDecision)]
    assert [d.side for d in decisions] == [Side.BUY, Side.BUY]
    assert [d.client_order_id for d in decisions] == [o.client_order_id for o in (first, second)]
    assert decisions[0].detail == "close -0.01 (same)"


def test_a_rebuilt_resume_restarts_the_loss_budget() -> None:
    """Replaying the record of a resume must rebase the loss guard, or a
    rebuilt risk service trips again at once on the loss it was resumed from."""
    e = engine(max_daily_loss=D(50))
    mark(e, KEYS[0], D("60000"))
    e.apply_record(
        {"action": "resume", "state": "active", "seq": "4", "equity": "-60", "flattening": "0"}
    )
    assert (e.state, e.control_seq, e.flattening) == (TradingState.ACTIVE, 4, False)
    assert (e.loss.day_start_equity, e.loss.peak) == (D(-60), D(-60))
    e.apply_record({"action": "halt", "state": "halted", "seq": "5", "tripped_by": "operator"})
    assert (e.state, e.tripped_by, e.control_seq) == (TradingState.HALTED, "operator", 5)
    assert e.loss.day_start_equity == D(-60)


def test_utilisation_reports_every_limit_scaled_to_the_symbol() -> None:
    e = engine(
        max_position=D(1),
        max_position_by_symbol={"binance:FTMUSDT": D(1000)},
        max_open_orders=10,
        max_orders_per_second=5,
        max_orders_per_minute=50,
    )
    mark(e, KEYS[1], D("0.3"))
    e.on_fill(fill(KEYS[1], Side.BUY, D("500"), D("0.3")))
    e._approvals.extend([T0 - 2 * NS, T0 - NS, T0])
    used = e.utilisation()
    assert used["position"] == (D("0.5"), D(1)), "500 of 1000 FTM is half the limit"
    assert used["gross_exposure"] == (D("150.0"), e.settings.max_gross_exposure)
    assert used["net_exposure"] == (D("150.0"), e.settings.max_net_exposure)
    assert used["open_orders"] == (D(0), D(10))
    assert used["orders_per_second"] == (D(1), D(5))
    assert used["orders_per_minute"] == (D(3), D(50))
    assert set(used) == {
        "position",
        "gross_exposure",
        "net_exposure",
        "open_orders",
        "orders_per_second",
        "orders_per_minute",
        "daily_loss",
        "drawdown",
    }


def test_a_stop_out_is_measured_in_the_account_currency() -> None:
    """A close on a BTC-quoted symbol loses 0.0015 BTC = 90 USDT at a BTC mark
    of 60,000: a stop-out at 80 USDT, which dividing by the rate would miss."""
    e = engine(stopout_loss=D(80), cooldown_s=60)
    key = ("binance", "XMRBTC")
    mark(e, KEYS[0], D("60000"))
    mark(e, key, D("0.005"))
    e.on_fill(fill(key, Side.BUY, D("1"), D("0.005")))
    e.on_fill(fill(key, Side.SELL, D("1"), D("0.0035"), ts=T0 + NS))
    assert e.cooldowns.active(key, T0 + 2 * NS) == T0 + 61 * NS


def test_state_change_records_say_what_happened() -> None:
    """The records a rebuild replays: the action, whether positions are being
    closed, and the equity a resume rebases on."""
    e = engine(max_daily_loss=D(50))
    mark(e, KEYS[0], D("60000"))
    e.on_fill(fill(KEYS[0], Side.BUY, D("0.01"), D("60000"), fee=D("1")))
    mark(e, KEYS[0], D("54000"), T0 + NS)
    [trip] = [x for x in e.drain() if isinstance(x, Control)]
    assert (trip.args["action"], trip.args["flattening"]) == ("trip", "0")
    assert D(trip.args["equity"]) == e.equity() == D(-61)
    e.resume("r")
    e.halt("h", flatten=False)
    resume, halt = (x for x in e.drain() if isinstance(x, Control))
    assert (resume.args["action"], resume.args["flattening"]) == ("resume", "0")
    assert (halt.args["action"], halt.args["flattening"]) == ("halt", "0")


def test_an_approved_order_keeps_the_signals_time_in_force() -> None:
    from tradewind.events import Signal, TimeInForce

    e = engine()
    mark(e, KEYS[0], D("60000"))
    for tif in (TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY):
        sig = Signal(
            id=f"tif-{tif.value}",
            ts_event=T0,
            strategy="t",
            exchange=KEYS[0][0],
            symbol=KEYS[0][1],
            side=Side.BUY,
            quantity=D("0.001"),
            order_type=OrderType.LIMIT,
            limit_price=D("60000"),
            time_in_force=tif,
            ref_bid=59999.0,
            ref_ask=60001.0,
        )
        d, o = e.evaluate(sig)
        assert d.approved and o is not None and o.time_in_force is tif
    bad = Signal(
        id="zero",
        ts_event=T0,
        strategy="t",
        exchange=KEYS[0][0],
        symbol=KEYS[0][1],
        side=Side.BUY,
        quantity=D("0.000001"),
    )
    d, o = e.evaluate(bad)
    assert (d.reason, d.quantity, o) == (Reason.INVALID_QUANTITY, D(0), None)


def test_an_engine_started_halted_says_why() -> None:
    assert (engine().state, engine().tripped_by) == (TradingState.ACTIVE, "")
    e = engine(initial_state="halted")
    assert (e.state, e.tripped_by) == (TradingState.HALTED, "initial_state")


def test_flatten_skips_a_closed_position_and_closes_one_of_exactly_one_unit() -> None:
    """Catches the flat check written as ``qty != 1``: a position already closed
    to 0 gets no (zero-quantity) closing order, and one of exactly 1 unit is
    closed like any other."""
    e = engine()
    eth, ftm = KEYS[2], KEYS[1]
    mark(e, eth, PRICE[eth])
    mark(e, ftm, PRICE[ftm])
    e.on_fill(fill(eth, Side.BUY, D("1"), PRICE[eth]))
    e.on_fill(fill(ftm, Side.BUY, D("100"), D("0.3")))
    e.on_fill(fill(ftm, Side.SELL, D("100"), D("0.31")))
    assert e.halt("op-1", flatten=True) == (0, 1)
    [o] = orders(e.drain())
    assert (o.exchange, o.symbol, o.side, o.quantity) == ("coinbase", "ETH-USD", Side.SELL, D(1))


def test_kill_switch_orders_decisions_and_cancels_carry_every_field() -> None:
    """Catches a closing order or its decision losing a field (its prices,
    time, ids, strategy, venue, size, state) or the command that caused it,
    and a cancel losing its time."""
    e = engine()
    btc = KEYS[0]
    mark(e, btc, D("60000"), T0)
    e.on_fill(fill(btc, Side.BUY, D("0.02"), D("60000")))
    open_order(e, "c-open", KEYS[2], Side.BUY, D("0.01"))
    mark(e, btc, D("60100"), T0 + 5 * NS)
    assert e.halt("op-7", flatten=True) == (1, 1)
    out = e.drain()
    [cancel] = [x for x in out if isinstance(x, CancelRequest)]
    assert (cancel.client_order_id, cancel.ts_event) == ("c-open", T0 + 5 * NS)
    [o] = orders(out)
    [d] = [x for x in out if isinstance(x, RiskDecision)]
    assert o.signal_id.startswith("flatten:op-7:binance:BTCUSDT:")
    assert o.strategy == "kill_switch"
    assert (o.ts_event, o.ref_bid, o.ref_ask, o.ref_last) == (
        T0 + 5 * NS,
        60100.0,
        60100.0,
        60100.0,
    )
    assert (d.id, d.signal_id, d.client_order_id) == (
        f"d:{o.signal_id}",
        o.signal_id,
        o.client_order_id,
    )
    assert (d.ts_event, d.strategy, d.exchange, d.symbol) == (
        T0 + 5 * NS,
        "kill_switch",
        "binance",
        "BTCUSDT",
    )
    assert (d.side, d.quantity, d.approved, d.trading_state) == (
        Side.SELL,
        D("0.02"),
        True,
        TradingState.HALTED,
    )
    assert d.detail == "close 0.02 (op-7)"


def test_resume_clears_the_trip_and_the_flatten() -> None:
    """After a resume nothing says the engine is still tripped or flattening
    (a later fill would otherwise close the new position)."""
    e = engine()
    e.halt("op-1", flatten=True)
    e.resume("op-2")
    assert (e.state, e.tripped_by, e.flattening) == (TradingState.ACTIVE, "", False)
    [record] = [x for x in e.drain() if isinstance(x, Control) and x.args["action"] == "resume"]
    assert (record.args["tripped_by"], record.args["flattening"]) == ("", "0")


def test_a_late_fill_leaving_one_unit_is_flattened_again() -> None:
    """Catches the re-flatten's flat check written as ``qty != 1``: an order
    filled after the kill switch closed everything leaves exactly 1 ETH,
    which gets its own closing order."""
    e = engine()
    eth = KEYS[2]
    mark(e, eth, PRICE[eth])
    e.on_fill(fill(eth, Side.BUY, D(1), PRICE[eth]))
    open_order(e, "c-late", eth, Side.BUY, D(1))
    e.halt("op-1", flatten=True)
    [close] = orders(e.drain())
    e.on_fill(
        msgspec.structs.replace(
            fill(eth, Side.SELL, D(1), PRICE[eth]), client_order_id=close.client_order_id
        )
    )
    assert orders(e.drain()) == []
    e.on_fill(
        msgspec.structs.replace(fill(eth, Side.BUY, D(1), PRICE[eth]), client_order_id="c-late")
    )
    [again] = orders(e.drain())
    assert (again.side, again.quantity, again.reduce_only) == (Side.SELL, D(1), True)


def test_a_loss_trip_names_itself_on_its_cancels_and_closes() -> None:
    """Each trip's cancels and closing orders carry the trip as their source
    (ids unique per trip, and the operator sees why an order was cancelled)."""
    e = engine(max_daily_loss=D(50), flatten_on_breach=True)
    btc = KEYS[0]
    mark(e, btc, D("60000"))
    e.on_fill(fill(btc, Side.BUY, D("0.01"), D("60000")))
    open_order(e, "c-open", KEYS[2], Side.BUY, D("0.01"))
    mark(e, btc, D("54000"), T0 + NS)
    out = e.drain()
    source = f"trip:daily_loss:{T0 + NS}"
    [cancel] = [x for x in out if isinstance(x, CancelRequest)]
    assert cancel.id == f"cancel:{source}:c-open"
    assert cancel.reason == f"kill switch ({source})"
    [o] = orders(out)
    assert o.signal_id.startswith(f"flatten:{source}:binance:BTCUSDT:")


def test_utilisation_reports_the_symbols_after_one_it_cannot_price() -> None:
    """Catches the report stopping at an inverse symbol with no price at all
    (flat, never marked, no order) instead of skipping it: the BTC position on
    bybit after it is still the largest."""
    e = engine(max_position=D(1))
    coinm = ("binance-coinm", "ETHUSD_210924")
    e.on_fill(fill(coinm, Side.BUY, D(10), D(2000)))
    e.on_fill(fill(coinm, Side.SELL, D(10), D(2000)))
    mark(e, KEYS[3], PRICE[KEYS[3]])
    e.on_fill(fill(KEYS[3], Side.BUY, D("0.5"), PRICE[KEYS[3]]))
    assert e.utilisation()["position"] == (D("0.5"), D(1))
