"""The risk engine: one test per reason code, trading states, loss limits,
cooldowns, the kill switch and state snapshots."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import msgspec
import pytest

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
    Signal,
    TradingState,
)
from tradewind.exchanges.instruments import load_instruments
from tradewind.instruments import InstrumentRegistry
from tradewind.risk.account import DAY_NS
from tradewind.risk.engine import RiskEngine
from tradewind.risk.reasons import Reason

NS = 1_000_000_000
T0 = 1_723_161_255 * NS
BTC = ("binance", "BTCUSDT")
ETH = ("binance", "ETHUSDT")
_ids = itertools.count()
INSTRUMENTS = load_instruments()


def make_engine(**risk: Any) -> RiskEngine:
    return RiskEngine(RiskSettings(**risk), INSTRUMENTS)


def signal(
    side: Side = Side.BUY,
    qty: str = "0.001",
    ts: int = T0,
    key: tuple[str, str] = BTC,
    price: float = 60_000.0,
    order_type: OrderType = OrderType.MARKET,
    limit: str | None = None,
    sid: str | None = None,
    **kw: Any,
) -> Signal:
    refs: dict[str, Any] = {"ref_bid": price - 0.01, "ref_ask": price + 0.01, "ref_last": price}
    refs.update(kw)
    return Signal(
        id=sid or f"s{next(_ids)}",
        ts_event=ts,
        strategy="test",
        exchange=key[0],
        symbol=key[1],
        side=side,
        quantity=Decimal(qty),
        order_type=order_type,
        limit_price=None if limit is None else Decimal(limit),
        **refs,
    )


def fill(
    order: OrderRequest | None = None,
    *,
    side: Side | None = None,
    qty: str | None = None,
    price: str = "60000",
    ts: int = T0,
    key: tuple[str, str] = BTC,
    fee: str = "0",
) -> Fill:
    n = next(_ids)
    return Fill(
        id=f"f{n}",
        ts_event=ts,
        client_order_id=order.client_order_id if order else f"x{n}",
        exchange_order_id=f"e{n}",
        exchange=order.exchange if order else key[0],
        symbol=order.symbol if order else key[1],
        side=side or (order.side if order else Side.BUY),
        price=Decimal(price),
        qty=Decimal(qty) if qty else (order.quantity if order else Decimal("0.001")),
        fee=Decimal(fee),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
    )


def seen(engine: RiskEngine, ts: int = T0, key: tuple[str, str] = BTC, price: float = 60_000.0):
    engine.on_market(key[0], key[1], ts, price)


def decide(engine: RiskEngine, sig: Signal) -> tuple[RiskDecision, OrderRequest | None]:
    return engine.evaluate(sig)


def reason_of(engine: RiskEngine, sig: Signal) -> str:
    return engine.evaluate(sig)[0].reason


def test_ok_approves_with_a_rounded_order() -> None:
    e = make_engine()
    seen(e)
    d, o = decide(e, signal(qty="0.0012345"))
    assert d.approved and d.reason == Reason.OK
    assert o is not None and o.quantity == Decimal("0.00123")
    assert o.client_order_id in e.open_orders


def test_limit_prices_round_away_from_a_worse_trade() -> None:
    e = make_engine()
    seen(e)
    _, buy = decide(e, signal(order_type=OrderType.LIMIT, limit="60000.019"))
    _, sell = decide(e, signal(side=Side.SELL, order_type=OrderType.LIMIT, limit="60000.011"))
    assert buy is not None and buy.price == Decimal("60000.01")
    assert sell is not None and sell.price == Decimal("60000.02")


def test_trading_halted() -> None:
    e = make_engine(initial_state="halted")
    seen(e)
    assert reason_of(e, signal()) == Reason.TRADING_HALTED


def test_reducing_only_refuses_new_exposure_and_passes_reductions() -> None:
    e = make_engine()
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01"))
    e.state = TradingState.REDUCING
    assert reason_of(e, signal(Side.BUY)) == Reason.REDUCING_ONLY
    assert reason_of(e, signal(Side.SELL, "0.02")) == Reason.REDUCING_ONLY
    assert reason_of(e, signal(Side.SELL, "0.006")) == Reason.OK
    assert reason_of(e, signal(Side.SELL, "0.006")) == Reason.REDUCING_ONLY


def test_duplicate_signal() -> None:
    e = make_engine()
    seen(e)
    s = signal()
    assert reason_of(e, s) == Reason.OK
    assert reason_of(e, s) == Reason.DUPLICATE_SIGNAL


@pytest.mark.parametrize("qty", ["0.000001", "0", "-1", "NaN"])
def test_invalid_quantity(qty: str) -> None:
    e = make_engine()
    seen(e)
    assert reason_of(e, signal(qty=qty)) == Reason.INVALID_QUANTITY


def test_no_reference_price() -> None:
    e = make_engine()
    seen(e)
    s = signal(ref_bid=None, ref_ask=float("nan"), ref_last=-1.0)
    assert reason_of(e, s) == Reason.NO_REFERENCE_PRICE


def test_max_order_notional() -> None:
    e = make_engine(max_position=Decimal(1))
    seen(e)
    assert reason_of(e, signal(qty="0.09")) == Reason.MAX_ORDER_NOTIONAL
    assert reason_of(e, signal(qty="0.08")) == Reason.OK


def test_max_position_counts_open_orders() -> None:
    e = make_engine(max_position=Decimal("0.05"))
    seen(e)
    assert reason_of(e, signal(qty="0.03")) == Reason.OK
    assert reason_of(e, signal(qty="0.03")) == Reason.MAX_POSITION


def test_rate_limit_second() -> None:
    e = make_engine(max_orders_per_second=2)
    seen(e)
    assert [reason_of(e, signal(ts=T0 + i)) for i in range(3)][-1] == Reason.RATE_LIMIT_SECOND
    assert reason_of(e, signal(ts=T0 + NS + 5)) == Reason.OK


def test_rate_limit_minute() -> None:
    e = make_engine(max_orders_per_minute=2)
    for i in range(2):
        seen(e, T0 + i * 2 * NS)
        assert reason_of(e, signal(ts=T0 + i * 2 * NS)) == Reason.OK
    seen(e, T0 + 10 * NS)
    assert reason_of(e, signal(ts=T0 + 10 * NS)) == Reason.RATE_LIMIT_MINUTE
    seen(e, T0 + 61 * NS)
    assert reason_of(e, signal(ts=T0 + 61 * NS)) == Reason.OK


@pytest.mark.parametrize("limit", [None, "-5", "0.001"])
def test_invalid_price(limit: str | None) -> None:
    e = make_engine()
    seen(e)
    assert reason_of(e, signal(order_type=OrderType.LIMIT, limit=limit)) == Reason.INVALID_PRICE


def test_below_min_quantity() -> None:
    e = make_engine()
    seen(e, key=("bybit", "BTCUSDT"))
    s = signal(key=("bybit", "BTCUSDT"), qty="0.00001")
    assert reason_of(e, s) == Reason.BELOW_MIN_QUANTITY


def test_above_max_quantity() -> None:
    e = make_engine(max_position=Decimal(1000))
    seen(e, key=("bybit", "BTCUSDT"))
    s = signal(key=("bybit", "BTCUSDT"), qty="72", price=1.0)
    assert reason_of(e, s) == Reason.ABOVE_MAX_QUANTITY


def test_below_min_notional() -> None:
    e = make_engine()
    seen(e)
    assert reason_of(e, signal(qty="0.00005")) == Reason.BELOW_MIN_NOTIONAL


def test_max_gross_exposure_across_symbols() -> None:
    e = make_engine(max_gross_exposure=Decimal(1000), max_position=Decimal(10))
    seen(e)
    seen(e, key=ETH, price=3000.0)
    e.on_fill(fill(key=ETH, side=Side.SELL, qty="0.2", price="3000"))
    assert reason_of(e, signal(qty="0.008")) == Reason.MAX_GROSS_EXPOSURE
    assert reason_of(e, signal(qty="0.006")) == Reason.OK


def test_max_net_exposure() -> None:
    e = make_engine(max_net_exposure=Decimal(1000), max_position=Decimal(10))
    seen(e)
    seen(e, key=ETH, price=3000.0)
    e.on_fill(fill(key=ETH, side=Side.BUY, qty="0.2", price="3000"))
    assert reason_of(e, signal(qty="0.008")) == Reason.MAX_NET_EXPOSURE
    e.on_fill(fill(key=ETH, side=Side.SELL, qty="0.2", price="3000"))
    assert reason_of(e, signal(qty="0.008")) == Reason.OK


def test_max_open_orders() -> None:
    e = make_engine(max_open_orders=2)
    seen(e)
    assert [reason_of(e, signal(ts=T0 + i)) for i in range(3)] == ["ok", "ok", "max_open_orders"]


def test_fat_finger_against_mid_and_last() -> None:
    e = make_engine(fat_finger_pct=Decimal(2))
    seen(e)
    assert reason_of(e, signal(order_type=OrderType.LIMIT, limit="62000")) == Reason.FAT_FINGER
    assert reason_of(e, signal(order_type=OrderType.LIMIT, limit="61000")) == Reason.OK
    s = signal(order_type=OrderType.LIMIT, limit="58000", ref_bid=None, ref_ask=None)
    assert reason_of(e, s) == Reason.FAT_FINGER


def test_stale_market_data_on_event_time() -> None:
    e = make_engine(stale_after_s=30)
    assert reason_of(e, signal()) == Reason.STALE_MARKET_DATA
    seen(e)
    assert reason_of(e, signal(ts=T0 + 31 * NS)) == Reason.STALE_MARKET_DATA
    assert reason_of(e, signal(ts=T0 + 29 * NS)) == Reason.OK


def test_no_conversion_rate_then_converted_via_the_quote_mark() -> None:
    e = make_engine(max_position_by_symbol={"binance:XMRBTC": Decimal(100)})
    key = ("binance", "XMRBTC")
    seen(e, key=key, price=0.003)
    s = signal(key=key, qty="1", price=0.003)
    assert reason_of(e, s) == Reason.NO_CONVERSION_RATE
    seen(e)
    d, _ = decide(e, signal(key=key, qty="1", price=0.003))
    assert d.reason == Reason.OK
    assert reason_of(e, signal(key=key, qty="40", price=0.003)) == Reason.MAX_ORDER_NOTIONAL


def test_cooldown_after_stop_out_then_expires() -> None:
    e = make_engine(stopout_loss=Decimal(100), cooldown_s=300)
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01", price="60000"))
    e.on_fill(fill(side=Side.SELL, qty="0.01", price="40000", ts=T0 + NS))
    seen(e, T0 + 2 * NS)
    assert reason_of(e, signal(ts=T0 + 2 * NS)) == Reason.COOLDOWN
    seen(e, T0 + 302 * NS)
    assert reason_of(e, signal(ts=T0 + 302 * NS)) == Reason.OK


def test_cooldown_after_loss_streak() -> None:
    e = make_engine(loss_streak=2, cooldown_s=60)
    seen(e)
    for i in range(2):
        e.on_fill(fill(side=Side.BUY, qty="0.001", price="60000", ts=T0 + i))
        e.on_fill(fill(side=Side.SELL, qty="0.001", price="59990", ts=T0 + i))
    assert reason_of(e, signal()) == Reason.COOLDOWN


def test_flatten_is_a_decision_and_a_reduce_only_market_order() -> None:
    e = make_engine()
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01"))
    _, o = decide(e, signal(qty="0.001"))
    assert o is not None
    cancels, closes = e.halt("ctl-1", flatten=True)
    assert (cancels, closes) == (1, 1)
    out = e.drain()
    cancel = next(x for x in out if isinstance(x, CancelRequest))
    assert cancel.client_order_id == o.client_order_id
    flat = next(x for x in out if isinstance(x, OrderRequest))
    assert flat.reduce_only and flat.side is Side.SELL and flat.quantity == Decimal("0.01")
    d = next(x for x in out if isinstance(x, RiskDecision))
    assert d.reason == Reason.FLATTEN and d.approved
    assert any(isinstance(x, Control) and x.args["state"] == "halted" for x in out)
    assert e.state is TradingState.HALTED
    assert reason_of(e, signal(Side.SELL)) == Reason.TRADING_HALTED


def test_every_reason_code_has_a_test() -> None:
    tested = {
        "ok", "trading_halted", "reducing_only", "duplicate_signal", "invalid_quantity",
        "no_reference_price", "max_order_notional", "max_position", "rate_limit_second",
        "rate_limit_minute", "invalid_price", "below_min_quantity", "above_max_quantity",
        "below_min_notional", "max_gross_exposure", "max_net_exposure", "max_open_orders",
        "fat_finger", "stale_market_data", "no_conversion_rate", "cooldown", "flatten",
    }  # fmt: skip
    assert {r.value for r in Reason} == tested


def test_daily_loss_trips_the_kill_switch_and_cancels() -> None:
    e = make_engine(max_daily_loss=Decimal(50), max_position=Decimal(1))
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01", price="60000"))
    _, o = decide(e, signal(qty="0.001"))
    assert o is not None
    seen(e, T0 + NS, price=55_000.0)
    assert e.state is TradingState.HALTED and e.tripped_by == "daily_loss"
    assert e.trips == ["daily_loss"]
    out = e.drain()
    assert [x.client_order_id for x in out if isinstance(x, CancelRequest)] == [o.client_order_id]
    assert reason_of(e, signal(Side.SELL, ts=T0 + NS)) == Reason.TRADING_HALTED


def test_drawdown_goes_reducing_when_configured() -> None:
    e = make_engine(max_drawdown=Decimal(30), loss_breach_state="reducing")
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01", price="60000"))
    seen(e, T0 + NS, price=66_000.0)
    seen(e, T0 + 2 * NS, price=63_000.0)
    assert e.state is TradingState.REDUCING and e.tripped_by == "drawdown"
    assert reason_of(e, signal(Side.SELL, ts=T0 + 2 * NS)) == Reason.OK
    assert reason_of(e, signal(Side.BUY, ts=T0 + 2 * NS)) == Reason.REDUCING_ONLY


def test_trading_day_rolls_on_event_time_in_utc() -> None:
    e = make_engine(max_daily_loss=Decimal(50))
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01", price="60000"))
    seen(e, T0 + NS, price=54_000.0)
    assert e.state is TradingState.HALTED
    e.resume("r1")
    assert e.state is TradingState.ACTIVE and e.loss.day_start_equity == Decimal("-60")
    seen(e, T0 + 2 * NS, price=49_000.0)
    assert e.state is TradingState.HALTED
    e.resume("r2")
    next_day = (T0 // DAY_NS + 1) * DAY_NS
    seen(e, next_day - 1, price=48_500.0)
    assert e.loss.day == T0 // DAY_NS and e.loss.day_start_equity == Decimal("-110")
    seen(e, next_day, price=48_000.0)
    assert e.loss.day == next_day // DAY_NS and e.loss.day_start_equity == Decimal("-115")
    assert e.state is TradingState.ACTIVE


def test_reflatten_after_a_late_fill_while_halted() -> None:
    e = make_engine()
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01"))
    _, o = decide(e, signal(qty="0.002"))
    assert o is not None
    e.halt("ctl-2", flatten=True)
    out = e.drain()
    flat = next(x for x in out if isinstance(x, OrderRequest))
    e.on_fill(fill(o))
    assert not [x for x in e.drain() if isinstance(x, OrderRequest)]
    e.on_fill(fill(flat, price="60000"))
    again = [x for x in e.drain() if isinstance(x, OrderRequest)]
    assert len(again) == 1 and again[0].quantity == Decimal("0.002") and again[0].reduce_only


def test_cancel_and_fill_close_open_orders_and_fills_apply_once() -> None:
    e = make_engine()
    seen(e)
    _, a = decide(e, signal())
    _, b = decide(e, signal())
    assert a is not None and b is not None
    e.on_order_update(
        OrderUpdate(
            id="u1",
            ts_event=T0,
            client_order_id=a.client_order_id,
            exchange_order_id="x",
            exchange="binance",
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            status=OrderStatus.CANCELED,
            quantity=a.quantity,
            filled_qty=Decimal(0),
            avg_price=None,
        )
    )
    f = fill(b)
    e.on_fill(f)
    e.on_fill(f)
    assert not e.open_orders
    assert e.portfolio.position(*BTC).qty == Decimal("0.001")


def test_snapshot_restore_round_trip() -> None:
    e = make_engine(loss_streak=1)
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01"))
    e.on_fill(fill(side=Side.SELL, qty="0.005", price="59000"))
    decide(e, signal(Side.SELL, qty="0.001"))
    e.halt("h", flatten=False)
    r = make_engine(loss_streak=1)
    r.restore(e.snapshot())
    assert r.account_state() == e.account_state()
    assert r.snapshot() == e.snapshot()


def test_every_limit_admits_an_order_of_exactly_its_value() -> None:
    """Catches a limit compared with ``>=``: market data exactly
    ``stale_after_s`` old, and an order exactly at the order-notional,
    position, gross and net limits, all pass."""
    e = make_engine(
        stale_after_s=5,
        max_order_notional=Decimal(60),
        max_position=Decimal("0.001"),
        max_gross_exposure=Decimal(60),
        max_net_exposure=Decimal(60),
    )
    seen(e)
    s = signal(qty="0.001", ts=T0 + 5 * NS, order_type=OrderType.LIMIT, limit="60000")
    assert reason_of(e, s) == Reason.OK


@pytest.mark.parametrize("opened", [Side.BUY, Side.SELL])
def test_reducing_passes_an_order_that_closes_exactly_the_position(opened: Side) -> None:
    """Catches ``<=`` written as ``<`` (or the short's size taken with the
    wrong sign): closing the whole position, long or short, is a reduction."""
    e = make_engine()
    seen(e)
    e.on_fill(fill(side=opened, qty="0.01"))
    e.state = TradingState.REDUCING
    close = Side.SELL if opened is Side.BUY else Side.BUY
    assert reason_of(e, signal(close, "0.01")) == Reason.OK


def test_a_market_signal_is_valued_at_the_touch_whatever_limit_it_carries() -> None:
    """Catches a market order's stray limit price rounded and used: it would
    value the order (here at 1 instead of 60,000) and travel on the order.
    The decision and order keep the signal's receive time (latency)."""
    e = make_engine(max_order_notional=Decimal(50))
    seen(e)
    cheap = signal(qty="0.001", limit="1", ts_recv=123)
    d, o = decide(e, cheap)
    assert (d.reason, d.ts_recv) == (Reason.MAX_ORDER_NOTIONAL, 123)
    e2 = make_engine()
    seen(e2)
    _, o = decide(e2, signal(qty="0.001", limit="1", ts_recv=123))
    assert o is not None and (o.price, o.ts_recv) == (None, 123)


def test_refusals_say_what_is_wrong() -> None:
    """The detail an operator reads: no data at all, the seconds a cooldown
    has left, and a position elsewhere that cannot be valued."""
    e = make_engine(stopout_loss=Decimal(100), cooldown_s=300)
    d, _ = decide(e, signal())
    assert d.detail == "no market data seen for the symbol"
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01", price="60000"))
    e.on_fill(fill(side=Side.SELL, qty="0.01", price="40000", ts=T0 + NS))
    seen(e, T0 + 2 * NS)
    d, _ = decide(e, signal(ts=T0 + 2 * NS))
    assert (d.reason, d.detail) == (Reason.COOLDOWN, "symbol cooling down for 299s")
    f = make_engine(max_position_by_symbol={"binance:XMRBTC": Decimal(100)})
    f.on_fill(fill(side=Side.BUY, qty="1", price="0.003", key=("binance", "XMRBTC")))
    seen(f, key=ETH, price=3000.0)
    d, _ = decide(f, signal(key=ETH, qty="0.01", price=3000.0))
    assert (d.reason, d.detail) == (
        Reason.NO_CONVERSION_RATE,
        "a position cannot be valued in the account currency",
    )


@pytest.mark.parametrize("signed", [True, False])
def test_a_state_change_record_carries_its_signature_and_issuer(signed: bool) -> None:
    """Catches the record's signature dropped, or made up when risk has no
    key (an unsigned record says so with ``""``), and its issuer renamed: the
    rebuild replays only records issued by risk with a valid signature."""

    def signer(id_: str, args: dict[str, str], ts: int) -> str:
        return f"sig:{id_}:{args['action']}:{ts}"

    e = RiskEngine(RiskSettings(), INSTRUMENTS, signer if signed else None)
    seen(e)
    e.halt("op-1", flatten=False)
    [c] = [x for x in e.drain() if isinstance(x, Control)]
    want = f"sig:applied:op-1:halt:{T0}" if signed else ""
    assert (c.signature, c.args["signature"], c.issued_by) == (want, want, "risk")


def test_an_approved_order_and_its_decision_carry_the_signals_fields() -> None:
    """Catches a field of the approved order (its ids, reference prices,
    reduce-only flag, receive time) or the decision's quantity lost."""
    e = make_engine()
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.01"))
    s = signal(Side.SELL, "0.0051234", sid="sig-fields", reduce_only=True, ts_recv=77)
    d, o = decide(e, s)
    assert o is not None and d.quantity == o.quantity == Decimal("0.00512")
    assert (o.id, o.client_order_id, o.signal_id) == (d.client_order_id,) * 2 + ("sig-fields",)
    assert (o.ref_bid, o.ref_ask, o.ref_last) == (s.ref_bid, s.ref_ask, s.ref_last)
    assert (o.reduce_only, o.ts_recv) == (True, 77)


def test_refusals_in_order_of_the_checks_say_what_is_wrong() -> None:
    e = make_engine(initial_state="halted")
    seen(e)
    assert decide(e, signal())[0].detail == "trading is halted"
    e.state = TradingState.REDUCING
    assert decide(e, signal())[0].detail == "only position-reducing orders pass while reducing"
    e.state = TradingState.ACTIVE
    bare = signal(ref_bid=None, ref_ask=None, ref_last=None)
    assert decide(e, bare)[0].detail == "no bid, ask, last or limit to value the order"
    assert decide(e, signal())[0].detail == ""
    m = make_engine(max_orders_per_minute=2)
    for i in range(3):
        seen(m, T0 + i * NS)
        d, _ = decide(m, signal(ts=T0 + i * NS))
    assert d.detail == "2 orders in the last minute"


def test_an_order_of_exactly_the_minimum_notional_passes() -> None:
    """Catches ``<`` written as ``<=``: 0.0001 BTC at 50,000 is the 5 USDT minimum."""
    e = make_engine()
    seen(e)
    s = signal(qty="0.0001", price=50_000.0, order_type=OrderType.LIMIT, limit="50000")
    assert reason_of(e, s) == Reason.OK


def test_the_second_rate_counts_each_approval_once_within_the_last_second() -> None:
    """Catches each approval counted twice, and one exactly a second old
    counted in the window: with 2 a second, two pass, the third is refused,
    and a second later the window has room again."""
    e = make_engine(max_orders_per_second=2)
    seen(e)
    got = [reason_of(e, signal(ts=T0 + i)) for i in range(3)]
    assert got == [Reason.OK, Reason.OK, Reason.RATE_LIMIT_SECOND]
    assert reason_of(e, signal(ts=T0 + NS)) == Reason.OK


def test_exposure_without_a_mark_values_at_the_average_else_the_order_price() -> None:
    """Before any trade price: a position is valued at its average entry
    (prices below 1 included) and a closed one's open order at its own price,
    never at the closed position's zero average."""
    e = make_engine()
    ftm = ("binance", "FTMUSDT")
    e.on_fill(fill(side=Side.BUY, qty="500", price="0.3", key=ftm))
    assert e.worst_exposure() == (Decimal("150.0"), Decimal("150.0"))
    f = make_engine()
    f.on_fill(fill(side=Side.BUY, qty="0.01", price="60000"))
    f.on_fill(fill(side=Side.SELL, qty="0.01", price="60000"))
    f.on_order(
        OrderRequest(
            id="c1",
            ts_event=T0,
            client_order_id="c1",
            signal_id="s1",
            strategy="t",
            exchange=BTC[0],
            symbol=BTC[1],
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal("0.01"),
            price=Decimal("59000"),
        ),
        Decimal("59000"),
    )
    assert f.worst_exposure() == (Decimal("590.00"), Decimal("590.00"))


def test_exposure_counts_every_symbol_in_the_account_currency() -> None:
    """Catches a flat symbol ending the sum (``break``), a one-unit order on a
    flat symbol skipped as flat, a rate divided instead of multiplied (XMR in
    BTC at 60,000), and a linear contract's size dividing its price."""
    e = make_engine()
    xmr = ("binance", "XMRBTC")
    seen(e)
    seen(e, key=ETH, price=3000.0)
    seen(e, key=xmr, price=0.003)
    e.on_fill(fill(side=Side.BUY, qty="0.01"))
    e.on_fill(fill(side=Side.SELL, qty="0.01"))
    e.on_fill(fill(side=Side.BUY, qty="1", price="0.003", key=xmr))
    e.on_order(
        OrderRequest(
            id="c-eth",
            ts_event=T0,
            client_order_id="c-eth",
            signal_id="s-eth",
            strategy="t",
            exchange=ETH[0],
            symbol=ETH[1],
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal(1),
            price=Decimal(3000),
        ),
        Decimal(3000),
    )
    assert e.worst_exposure() == (Decimal("3180.000"), Decimal("3180.000"))
    swap = msgspec.structs.replace(INSTRUMENTS.get(*BTC), contract_size=Decimal("0.01"))
    s = RiskEngine(RiskSettings(), InstrumentRegistry([swap]))
    seen(s)
    s.on_fill(fill(side=Side.BUY, qty="100"))
    assert s.worst_exposure() == (Decimal("60000.00"), Decimal("60000.00"))


def test_the_minute_window_forgets_an_approval_exactly_a_minute_old() -> None:
    e = make_engine(max_orders_per_minute=1)
    seen(e)
    assert reason_of(e, signal()) == Reason.OK
    seen(e, T0 + 60 * NS)
    assert reason_of(e, signal(ts=T0 + 60 * NS)) == Reason.OK


def test_a_cooldown_weighs_each_close_alone() -> None:
    """Catches the PnL of earlier closes added to the next one: two closes
    losing 80 and 30 are no stop-out of 100."""
    e = make_engine(stopout_loss=Decimal(100), loss_streak=10)
    seen(e)
    e.on_fill(fill(side=Side.BUY, qty="0.02", price="60000"))
    e.on_fill(fill(side=Side.SELL, qty="0.01", price="52000", ts=T0 + 1))
    e.on_fill(fill(side=Side.SELL, qty="0.01", price="57000", ts=T0 + 2))
    assert e.cooldowns.active(BTC, T0 + 3) is None


def test_a_close_without_a_rate_is_weighed_in_its_quote_after_fees() -> None:
    """With no rate to the account currency the close's own PnL counts, after
    its fee and without the earlier close's profit: 0.0003 BTC lost plus a
    0.0002 fee stop out at 0.0005."""
    e = make_engine(stopout_loss=Decimal("0.0005"), loss_streak=10)
    xmr = ("binance", "XMRBTC")
    e.on_fill(fill(side=Side.BUY, qty="1", price="0.003", key=xmr))
    e.on_fill(fill(side=Side.SELL, qty="0.5", price="0.0032", key=xmr, ts=T0 + 1))
    assert e.cooldowns.active(xmr, T0 + 2) is None
    e.on_fill(fill(side=Side.SELL, qty="0.5", price="0.0024", key=xmr, fee="0.0002", ts=T0 + 2))
    assert e.cooldowns.active(xmr, T0 + 3) is not None


def test_remembered_signal_ids_forget_the_oldest_first() -> None:
    """Catches the bound on remembered ids evicting the newest: past 200,000
    ids the signal just decided must still be refused as a duplicate."""
    e = make_engine()
    seen(e)
    for i in range(200_000):
        e.remember_signal(f"old-{i}")
    assert reason_of(e, signal(sid="newest")) == Reason.OK
    assert reason_of(e, signal(sid="newest")) == Reason.DUPLICATE_SIGNAL
    assert reason_of(e, signal(sid="old-0")) != Reason.DUPLICATE_SIGNAL


def test_an_inverse_close_is_weighed_for_a_cooldown_in_the_account_currency() -> None:
    """Catches the close's coin PnL valued without its price: 100 contracts of
    10 USD bought at 2000 and sold at 1900 lose 0.0263 ETH, 50 USDT at the
    fill's price, a stop-out of 40 USDT (0.0263 alone would be none)."""
    e = make_engine(stopout_loss=Decimal(40), loss_streak=10)
    coinm = ("binance-coinm", "ETHUSD_210924")
    e.on_fill(fill(side=Side.BUY, qty="100", price="2000", key=coinm))
    e.on_fill(fill(side=Side.SELL, qty="100", price="1900", key=coinm, ts=T0 + 1))
    assert e.cooldowns.active(coinm, T0 + 2) is not None


def test_a_flat_symbol_never_priced_does_not_block_exposure_checks() -> None:
    """A position opened and closed before any trade price (a quote-only feed)
    leaves a flat symbol with nothing to value it by: it adds nothing to the
    exposure, rather than making every later order unvaluable."""
    e = make_engine()
    e.on_fill(fill(side=Side.BUY, qty="0.01"))
    e.on_fill(fill(side=Side.SELL, qty="0.01"))
    seen(e, key=ETH, price=3000.0)
    assert reason_of(e, signal(key=ETH, qty="0.01", price=3000.0)) == Reason.OK


def test_inverse_pnl_is_converted_with_the_rate_of_its_quote() -> None:
    """Catches the rate divided instead of multiplied: without USD as an alias
    of USDT, 0.01 ETH at 2,000 USD is worth 19.98 USDT at 0.999 USDT a USD."""
    e = make_engine(currency_aliases=[])
    coinm = ("binance-coinm", "ETHUSD_210924")
    seen(e, key=("binance-coinm", "USDUSDT"), price=0.999)
    assert e.in_account(coinm, Decimal("0.01"), Decimal(2000)) == Decimal("19.98000")
