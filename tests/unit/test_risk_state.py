"""Risk's durable state: a batch of market data alone saves only the small
market key, anything touching the account saves the whole snapshot, and a
restart from the two keys equals the live engine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import service_context
from tests.unit.test_risk_engine import BTC, T0, fill, make_engine, seen, signal
from tradewind.bus import MemoryBus
from tradewind.events import Event, OrderRequest, Side, Trade, TradingState
from tradewind.risk.engine import RiskEngine
from tradewind.services import RiskService
from tradewind.services.risk import MARKET_STATE_KEY, STATE_KEY
from tradewind.topics import EXECUTIONS, MARKET, ORDERS, SIGNALS

S = 1_000_000_000


def trade(n: int, price: float) -> Trade:
    return Trade(
        id=f"t{n}",
        ts_event=T0 + n * S,
        exchange=BTC[0],
        symbol=BTC[1],
        price=price,
        qty=0.1,
        side=None,
        trade_id=str(n),
        ts_recv=0,
    )


def service(bus: MemoryBus, settings: Any) -> RiskService:
    ctx = service_context(settings, bus=bus, durable_state=True)
    return RiskService(ctx)


async def test_market_batches_save_only_the_market_key_and_a_restart_equals_live(
    make_settings: Any,
) -> None:
    bus = MemoryBus()
    settings = make_settings()
    risk = service(bus, settings)
    await risk.start()
    sub = await bus.subscribe([SIGNALS, EXECUTIONS, MARKET], "state-test", "t")
    orders = await bus.subscribe([ORDERS], "orders-test", "t")

    async def batch(topic: str, events: list[Event]) -> None:
        await bus.publish(topic, events)
        await risk._on_batch(sub, await sub.fetch(100, 1.0))

    async def saved() -> tuple[bytes | None, bytes | None]:
        return await bus.get_state(STATE_KEY), await bus.get_state(MARKET_STATE_KEY)

    await batch(MARKET, [trade(1, 60_000.0)])
    account, market = await saved()
    assert account is None and market is not None

    await batch(SIGNALS, [signal(sid="sig-1", ts=T0 + S)])
    account, market = await saved()
    assert account is not None and market is not None
    order = next(m.event for m in await orders.fetch(10, 1.0))
    assert isinstance(order, OrderRequest)

    await batch(EXECUTIONS, [fill(order, ts=T0 + 2 * S)])
    assert risk.engine.portfolio.fills == 1
    account, _ = await saved()

    await batch(MARKET, [trade(3, 59_000.0), trade(4, 58_500.0)])
    account_after, market_after = await saved()
    assert account_after == account
    assert market_after is not None and b"58500" in market_after

    restarted = service(bus, settings)
    await restarted.start()
    try:
        assert restarted.engine.snapshot() == risk.engine.snapshot()
        assert restarted.engine.equity() == risk.engine.equity()
    finally:
        await restarted.stop()
        await risk.stop()


COINM = ("binance-coinm", "ETHUSD_210924")
UNLISTED = ("kraken", "XBT/USD")
"""An instrument whose quote the registry does not know: it settles in the
account currency."""


def busy_engine() -> RiskEngine:
    """Every field of the snapshot away from its fresh value: marks, a losing
    close (a cooldown streak), an open order, a halt with flatten."""
    e = make_engine(max_daily_loss="1000000", max_drawdown="1000000")
    seen(e, T0)
    e.on_fill(fill(key=BTC, side=Side.BUY, qty="0.01", price="60000", ts=T0))
    e.on_fill(fill(key=BTC, side=Side.SELL, qty="0.005", price="59000", ts=T0 + S))
    e.evaluate(signal(sid="sig-open", ts=T0 + 2 * S))
    e.halt("op-1", flatten=True)
    e.drain()
    return e


def test_market_state_is_the_market_part_of_the_snapshot() -> None:
    """Catches a field of the market key saved under another name: a restart
    overlays the market key on the last full snapshot, so a renamed ``loss``
    would come back with the loss guard of the last account batch."""
    e = busy_engine()
    seen(e, T0 + 3 * S, price=61_000.0)
    assert e.market_state() == {k: e.snapshot()[k] for k in RiskEngine.MARKET_FIELDS}


@pytest.mark.parametrize(
    "field",
    [
        "tripped_by",
        "flattening",
        "marks",
        "cooldowns",
        "now_ns",
        "control_seq",
        "flatten_seq",
        "fills",
        "issued",
    ],
)
def test_a_snapshot_from_before_a_field_existed_restores_its_fresh_value(field: str) -> None:
    """A snapshot saved by an older version lacks the fields added since: each
    restores as a fresh engine has it, and the ids risk issued default to its
    open orders (so their fills are still recognised as this account's)."""
    live = busy_engine()
    data = live.snapshot()
    assert data[field] != make_engine().snapshot()[field] or field == "issued"
    del data[field]
    restored = make_engine()
    restored.restore(data)
    expected = list(live.open_orders) if field == "issued" else make_engine().snapshot()[field]
    assert restored.snapshot()[field] == expected


def test_a_restored_engine_values_inverse_and_unlisted_positions_as_the_live_one() -> None:
    """Catches a restore that rebuilds the portfolio without the instruments
    (an inverse position then reads as linear) or without the account
    currency (an unlisted symbol's PnL then settles in no currency)."""
    live = make_engine()
    for key, price, qty in ((COINM, 1992.17, "3"), (UNLISTED, 61_000.0, "0.002")):
        seen(live, T0, key, price)
        live.on_fill(fill(key=key, side=Side.BUY, qty=qty, price=str(price), ts=T0))
        seen(live, T0 + S, key, price * 1.01)
    restored = make_engine()
    restored.restore(live.snapshot())
    assert set(live.portfolio.totals()) == {"ETH", "USDT"}
    assert restored.portfolio.totals() == live.portfolio.totals()
    assert restored.equity() == live.equity()
    assert restored.portfolio.position(*COINM).inverse


def test_a_restored_engine_still_knows_its_fills_and_orders() -> None:
    """Catches the remembered fills or issued ids cut from the wrong end of the
    snapshot: after a restart a fill seen before would count twice, and a
    fill of an order risk approved would look foreign. Only ids risk issued,
    open or not, are its own."""
    live = make_engine()
    seen(live)
    _, order = live.evaluate(signal(sid="sig-known"))
    assert order is not None
    done = fill(order)
    live.on_fill(done)
    assert order.client_order_id not in live.open_orders
    restored = make_engine()
    restored.restore(live.snapshot())
    restored.on_fill(done)
    assert restored.portfolio.position(*BTC).qty == order.quantity
    assert restored.knows_order(order.client_order_id)
    assert not restored.knows_order("someone-else")


def test_a_record_without_tripped_by_or_seq_applies_as_fresh() -> None:
    """A state-change record written before these fields existed halts with
    no stated cause and leaves the record sequence where it was."""
    e = make_engine()
    e.halt("op-1", flatten=False)
    e.apply_record({"action": "halt", "state": "halted"})
    assert (e.state, e.tripped_by, e.control_seq) == (TradingState.HALTED, "", 1)
