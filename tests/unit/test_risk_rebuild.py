"""Risk rebuilt from the store, event by event: each example is named for the
replay bug it catches (the end-to-end restart test only sees a run where none
of these orderings happens)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from tradewind.config import RiskSettings
from tradewind.events import (
    Control,
    Event,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    RiskDecision,
    Side,
    Trade,
    TradingState,
)
from tradewind.exchanges.instruments import load_instruments
from tradewind.risk.engine import RiskEngine
from tradewind.risk.rebuild import rebuild, stored_orders
from tradewind.storage.sqlite import SqliteStore

NS = 1_000_000_000
T0 = 1_723_161_255 * NS
INSTRUMENTS = load_instruments()
BTC = ("binance", "BTCUSDT")


def engine() -> RiskEngine:
    return RiskEngine(RiskSettings(), INSTRUMENTS)


def trade(trade_id: str, price: float, ts: int) -> Trade:
    return Trade(
        id=f"t{trade_id}",
        ts_event=ts,
        exchange=BTC[0],
        symbol=BTC[1],
        price=price,
        qty=0.1,
        side=Side.BUY,
        trade_id=trade_id,
        ts_recv=ts,
    )


def order(coid: str, side: Side, qty: str, price: str, ts: int) -> OrderRequest:
    return OrderRequest(
        id=f"req-{coid}",
        ts_event=ts,
        client_order_id=coid,
        signal_id=f"sig-{coid}",
        strategy="t",
        exchange=BTC[0],
        symbol=BTC[1],
        side=side,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        price=D(price),
    )


def fill(fid: str, o: OrderRequest, qty: str, ts: int) -> Fill:
    assert o.price is not None
    return Fill(
        id=fid,
        ts_event=ts,
        client_order_id=o.client_order_id,
        exchange_order_id=f"x-{o.client_order_id}",
        exchange=o.exchange,
        symbol=o.symbol,
        side=o.side,
        price=o.price,
        qty=D(qty),
        fee=D("0.01"),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
    )


def canceled(o: OrderRequest, ts: int) -> OrderUpdate:
    return OrderUpdate(
        id=f"upd-{o.client_order_id}",
        ts_event=ts,
        client_order_id=o.client_order_id,
        exchange_order_id=f"x-{o.client_order_id}",
        exchange=o.exchange,
        symbol=o.symbol,
        side=o.side,
        order_type=o.order_type,
        status=OrderStatus.CANCELED,
        quantity=o.quantity,
        filled_qty=D(0),
        avg_price=None,
    )


def decision(o: OrderRequest) -> RiskDecision:
    return RiskDecision(
        id=f"dec-{o.client_order_id}",
        ts_event=o.ts_event,
        signal_id=o.signal_id,
        client_order_id=o.client_order_id,
        strategy=o.strategy,
        exchange=o.exchange,
        symbol=o.symbol,
        side=o.side,
        quantity=o.quantity,
        approved=True,
        reason="approved",
        detail="",
        trading_state=TradingState.ACTIVE,
    )


async def stored(tmp_path: Path, events: list[Event]) -> SqliteStore:
    store = SqliteStore(tmp_path / "risk.db")
    await store.start()
    await store.write(events)
    return store


async def test_an_empty_store_rebuilds_nothing(tmp_path: Path) -> None:
    store = await stored(tmp_path, [])
    try:
        e = engine()
        assert await rebuild(e, store) == 0
        assert e.account_state() == engine().account_state()
    finally:
        await store.close()


async def test_replay_orders_same_time_events_as_they_happened(tmp_path: Path) -> None:
    """At one instant: trades in exchange order (trade 9 before trade 10, which
    a plain string sort inverts), an order before its fill whatever their ids,
    two fills of one order; a canceled order is closed; and the engine is live
    again afterwards. The live engine saw the same events in that order."""
    buy = order("z-buy", Side.BUY, "0.01", "60000", T0 + NS)
    sell = order("a-sell", Side.SELL, "0.002", "61000", T0 + 2 * NS)
    f1, f2 = fill("a-fill-1", buy, "0.003", T0 + NS), fill("a-fill-2", buy, "0.001", T0 + NS)
    live = engine()
    for t in (trade("9", 60100.0, T0), trade("10", 60050.0, T0)):
        live.on_market(t.exchange, t.symbol, t.ts_event, t.price)
    for o in (buy, sell):
        live.on_order(o, D(str(o.price)))
    live.on_fill(f1)
    live.on_fill(f2)
    live.orders.orders.pop(sell.client_order_id)
    live.now_ns = sell.ts_event  # its clock when it decided the sell
    # Written out of order, as the writer's batches may land.
    events: list[Event] = [
        f2,
        f1,
        trade("10", 60050.0, T0),
        trade("9", 60100.0, T0),
        canceled(sell, T0 + 3 * NS),
        sell,
        buy,
        decision(buy),
        decision(sell),
    ]
    store = await stored(tmp_path, events)
    try:
        e = engine()
        assert await rebuild(e, store) == 7
        assert e.replaying is False, "a rebuilt engine must trip on live losses"
        assert e.marks.price(BTC) == D("60050"), "the mark is trade 10's"
        assert e.portfolio.position(*BTC).qty == D("0.004")
        assert list(e.orders.orders) == ["z-buy"]
        assert e.account_state() == live.account_state()
        assert {"sig-z-buy", "sig-a-sell"} <= set(e.snapshot()["seen"])
    finally:
        await store.close()


async def test_a_rejected_record_does_not_hide_the_genuine_ones_after_it(
    tmp_path: Path,
) -> None:
    """Records at one instant apply in the order risk made them (by ``seq``),
    not as the store returns them; one that fails verification is skipped and
    the rest still apply."""
    live = engine()
    live.on_market(*BTC, T0, 60000.0)
    live.halt("forged-halt", flatten=False)
    forged = [x for x in live.drain() if isinstance(x, Control)]
    live.now_ns += NS
    live.halt("zz-halt", flatten=False)
    live.resume("aa-resume")
    halt, resume = [x for x in live.drain() if isinstance(x, Control)]
    assert halt.ts_event == resume.ts_event and live.state is TradingState.ACTIVE
    store = await stored(tmp_path, [trade("1", 60000.0, T0), *forged, resume, halt])
    try:
        e = engine()
        await rebuild(e, store, lambda cid, *_: cid != forged[0].id)
        assert e.state is TradingState.ACTIVE and e.control_seq == 3
        halted_only = engine()
        await rebuild(halted_only, store, lambda cid, *_: "resume" not in cid)
        assert halted_only.state is TradingState.HALTED
        assert halted_only.tripped_by == "operator"
    finally:
        await store.close()


async def test_stored_orders_reads_only_the_asked_ones_keyed_by_client_id(
    tmp_path: Path,
) -> None:
    a = order("c-a", Side.BUY, "0.01", "60000", T0)
    b = order("c-b", Side.SELL, "0.01", "61000", T0)
    store = await stored(tmp_path, [a, b])
    try:
        got = await stored_orders(store, "client_order_id IN ('c-b')")
        assert [(o.id, o.client_order_id, o.side) for o in got] == [("c-b", "c-b", Side.SELL)]
        assert sorted(o.id for o in await stored_orders(store)) == ["c-a", "c-b"]
    finally:
        await store.close()


async def test_the_day_s_peak_is_rebuilt_from_every_trade_of_the_day(tmp_path: Path) -> None:
    """Market history is read from the start of the latest day: a rebuild that
    read only the last trade would miss the day's peak equity (62000 here,
    then 61000), and so the drawdown already used."""
    day0 = T0 // (86_400 * NS) * (86_400 * NS)
    buy = order("b1", Side.BUY, "0.01", "60000", day0 - 3500 * NS)
    ticks = [
        trade("1", 50000.0, day0 - 2 * 86_400 * NS),
        trade("2", 60000.0, day0 - 3600 * NS),
        trade("3", 62000.0, day0 + 100 * NS),
        trade("4", 61000.0, day0 + 200 * NS),
    ]
    f = fill("f1", buy, "0.01", day0 - 3500 * NS)
    live = engine()
    live.on_market(*BTC, ticks[0].ts_event, ticks[0].price)
    live.on_market(*BTC, ticks[1].ts_event, ticks[1].price)
    live.on_order(buy, D("60000"))
    live.on_fill(f)
    for t in ticks[2:]:
        live.on_market(*BTC, t.ts_event, t.price)
    assert live.loss.peak == D("19.99") and live.loss.day_start_equity == D("-0.01")
    store = await stored(tmp_path, [*ticks, buy, f, decision(buy)])
    try:
        e = engine()
        await rebuild(e, store)
        assert e.account_state() == live.account_state()
    finally:
        await store.close()


async def test_a_rebuild_changes_the_state_only_by_the_records(tmp_path: Path) -> None:
    """The live engine tripped on a loss and recorded it; a rebuild whose
    records all fail verification (a changed token, a forgery) must not trip
    by itself while it replays the same losing market."""
    buy = order("b1", Side.BUY, "0.01", "60000", T0)
    f = fill("f1", buy, "0.01", T0)
    live = RiskEngine(RiskSettings(max_daily_loss=D(50)), INSTRUMENTS)
    live.on_market(*BTC, T0, 60000.0)
    live.on_order(buy, D("60000"))
    live.on_fill(f)
    live.on_market(*BTC, T0 + NS, 54000.0)
    assert live.state is TradingState.HALTED
    records = [x for x in live.drain() if isinstance(x, Control)]
    ticks = [trade("1", 60000.0, T0), trade("2", 54000.0, T0 + NS)]
    store = await stored(tmp_path, [*ticks, buy, f, decision(buy), *records])
    try:
        trusted = RiskEngine(RiskSettings(max_daily_loss=D(50)), INSTRUMENTS)
        await rebuild(trusted, store)
        assert trusted.state is TradingState.HALTED and trusted.tripped_by == "daily_loss"
        refused = RiskEngine(RiskSettings(max_daily_loss=D(50)), INSTRUMENTS)
        await rebuild(refused, store, lambda *_: False)
        assert refused.state is TradingState.ACTIVE and refused.trips == []
        assert refused.portfolio.position(*BTC).qty == D("0.01")
    finally:
        await store.close()


async def test_a_second_terminal_update_of_an_order_does_not_stop_the_rebuild(
    tmp_path: Path,
) -> None:
    """An exchange may report an order's end twice (a cancel acknowledged,
    then the order's final state): the second finds it already closed."""
    sell = order("s1", Side.SELL, "0.01", "61000", T0)
    first = canceled(sell, T0 + NS)
    again = OrderUpdate(**{**{k: getattr(first, k) for k in first.__struct_fields__}, "id": "u2"})
    store = await stored(tmp_path, [trade("1", 60000.0, T0), sell, decision(sell), first, again])
    try:
        e = engine()
        assert await rebuild(e, store) == 4
        assert e.orders.orders == {}
    finally:
        await store.close()
