"""The one event <-> row mapping: every stored event goes to its table and comes
back whole, from either store's column types, and the declaration refuses
what it cannot store."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.bus_contract import fill, trade
from tradewind.events import (
    Bar,
    BookDelta,
    CancelRequest,
    Control,
    DeadLetter,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Quote,
    RiskDecision,
    Side,
    Signal,
    TradingState,
)
from tradewind.storage import queries, schema
from tradewind.storage.rows import COLUMNS, READERS, ROW_MAPPERS, group_rows
from tradewind.storage.sqlite import SqliteStore

D = Decimal

SAMPLES = [
    trade(1),
    fill(2),
    Quote(id="q", ts_event=1, exchange="b", symbol="S", bid=1, bid_qty=2, ask=3, ask_qty=4,
          ts_recv=5, update_id=6),
    BookDelta(id="d", ts_event=1, exchange="b", symbol="S", bids=[(1.0, 2.0)], asks=[],
              snapshot=True, first_update_id=1, last_update_id=2, ts_recv=3, prev_update_id=None),
    Bar(id="k", ts_event=2, exchange="b", symbol="S", interval_s=60.0, ts_open=1, open=1.0,
        high=2.0, low=0.5, close=1.5, volume=3.0, trades=4, ts_recv=0),
    Signal(id="s", ts_event=1, strategy="x", exchange="b", symbol="S", side=Side.BUY,
           quantity=D("0.001"), limit_price=D("61837.63"), ref_bid=1.0, reason="r", ts_recv=2),
    RiskDecision(id="r", ts_event=1, signal_id="s", client_order_id="c", strategy="x",
                 exchange="b", symbol="S", side=Side.SELL, quantity=D("1"), approved=True,
                 reason="ok", detail="", trading_state=TradingState.REDUCING),
    OrderRequest(id="o", ts_event=1, client_order_id="c", signal_id="s", strategy="x",
                 exchange="b", symbol="S", side=Side.BUY, order_type=OrderType.LIMIT,
                 quantity=D("0.5"), price=D("100.10"), ts_recv=3),
    CancelRequest(id="x", ts_event=1, client_order_id="c", exchange="b", symbol="S", reason="r"),
    OrderUpdate(id="u", ts_event=1, client_order_id="c", exchange_order_id="e", exchange="b",
                symbol="S", side=Side.BUY, order_type=OrderType.MARKET,
                status=OrderStatus.CANCELED, quantity=D("1"), filled_qty=D("0"),
                avg_price=None, seq=3),
    Position(id="p", ts_event=1, exchange="b", symbol="S", qty=D("-1.5"), avg_price=D("10"),
             realized_pnl=D("0.1"), fees=D("0.01"), mark_price=None),
    Control(id="c", ts_event=1, command="halt", args={"b": "2", "a": "1"}, issued_by="me"),
    DeadLetter(id="dl", ts_event=1, topic="t", message_id="1-0", group="g", deliveries=5,
               error="e", payload=b"\x00\x01"),
]  # fmt: skip


def test_every_stored_event_has_one_mapping_and_round_trips() -> None:
    assert {type(e) for e in SAMPLES} == set(schema.BY_EVENT)
    for e in SAMPLES:
        table, build = ROW_MAPPERS[type(e)]
        row = build(e)
        assert len(row) == len(COLUMNS[table])
        assert READERS[type(e)](row) == e, type(e).__name__


def test_rows_read_back_from_sqlite_types() -> None:
    """SQLite hands back money as text and booleans as 0/1."""
    o = SAMPLES[7]
    assert isinstance(o, OrderRequest)
    _, build = ROW_MAPPERS[OrderRequest]
    row = tuple(
        str(v) if isinstance(v, Decimal) else int(v) if isinstance(v, bool) else v for v in build(o)
    )
    assert READERS[OrderRequest](row) == o


def test_columns_follow_the_struct_fields() -> None:
    t = schema.orders
    assert "ref_bid" not in t.c  # not stored: read back as its default
    assert t.c.price.nullable and not t.c.quantity.nullable
    assert str(schema.order_updates.c.seq.type) == "INTEGER"
    assert str(schema.trades.c.ts_event.type) == "BIGINT"
    assert "group_name" in schema.dead_letters.c
    assert [c.name for c in schema.trades.primary_key] == ["id", "ts_event"]
    assert [c.name for c in schema.fills.primary_key] == ["id"]
    control = ROW_MAPPERS[Control][1](SAMPLES[11])
    assert json.loads(control[1]) == {"a": "1", "b": "2"}
    assert control[1] == '{"a": "1", "b": "2"}'  # sorted: the same args, the same text


def test_the_declaration_refuses_what_it_cannot_store() -> None:
    class Odd(msgspec.Struct, frozen=True):
        id: str
        ts_event: int
        when: complex

    with pytest.raises(TypeError, match="no column type"):
        schema._map("odd_table", Odd)

    class Needy(msgspec.Struct, frozen=True):
        id: str
        ts_event: int
        must: int

    with pytest.raises(TypeError, match="no default"):
        schema._map("needy_table", Needy, not_stored=("must",))


async def test_queries_read_whole_events_from_a_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tw.db")
    await store.start()
    try:
        await store.write(SAMPLES)  # type: ignore[arg-type]
        assert await queries.read(store, OrderRequest) == [SAMPLES[7]]
        assert await queries.controls(store, "halt") == [SAMPLES[11]]
        assert await queries.ended_orders(store) == [("u", "c", 1)]
        assert await queries.latest_ts(store, (Bar, OrderRequest)) == 2
        tables = {t.name for t in group_rows(SAMPLES)}  # type: ignore[arg-type]
        assert tables == {m.table.name for m in schema.MAPPINGS}
        with pytest.raises(ValueError):
            await queries.controls(store, "x' OR '1'='1")
    finally:
        await store.close()
