"""Events → table rows, shared by every store.

Rows are tuples in the table's column order; money stays ``Decimal`` here and
each store adapts it to its column type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Table

from tradewind.events import (
    Bar,
    BookDelta,
    CancelRequest,
    Control,
    DeadLetter,
    Event,
    Fill,
    OrderRequest,
    OrderUpdate,
    Position,
    Quote,
    RiskDecision,
    Signal,
    Trade,
)
from tradewind.storage import schema

Row = tuple[Any, ...]


def _trade(e: Trade) -> Row:
    return (
        e.id,
        e.exchange,
        e.symbol,
        e.trade_id,
        e.price,
        e.qty,
        None if e.side is None else e.side.value,
        e.ts_event,
        e.ts_recv,
    )


def _quote(e: Quote) -> Row:
    return (
        e.id,
        e.exchange,
        e.symbol,
        e.bid,
        e.bid_qty,
        e.ask,
        e.ask_qty,
        e.update_id,
        e.ts_event,
        e.ts_recv,
    )


def _book(e: BookDelta) -> Row:
    return (
        e.id,
        e.exchange,
        e.symbol,
        e.snapshot,
        e.first_update_id,
        e.last_update_id,
        e.prev_update_id,
        json.dumps(e.bids),
        json.dumps(e.asks),
        e.ts_event,
        e.ts_recv,
    )


def _bar(e: Bar) -> Row:
    return (
        e.id,
        e.exchange,
        e.symbol,
        e.interval_s,
        e.ts_open,
        e.ts_event,
        e.open,
        e.high,
        e.low,
        e.close,
        e.volume,
        e.trades,
    )


def _signal(e: Signal) -> Row:
    return (
        e.id,
        e.strategy,
        e.exchange,
        e.symbol,
        e.side.value,
        e.quantity,
        e.order_type.value,
        e.limit_price,
        e.time_in_force.value,
        e.reduce_only,
        e.ref_bid,
        e.ref_ask,
        e.ref_last,
        e.reason,
        e.ts_event,
        e.ts_recv,
    )


def _decision(e: RiskDecision) -> Row:
    return (
        e.id,
        e.signal_id,
        e.client_order_id,
        e.strategy,
        e.exchange,
        e.symbol,
        e.side.value,
        e.quantity,
        e.approved,
        e.reason,
        e.detail,
        e.trading_state.value,
        e.ts_event,
    )


def _order(e: OrderRequest) -> Row:
    return (
        e.id,
        e.client_order_id,
        e.signal_id,
        e.strategy,
        e.exchange,
        e.symbol,
        e.side.value,
        e.order_type.value,
        e.quantity,
        e.price,
        e.time_in_force.value,
        e.reduce_only,
        e.ts_event,
        e.ts_recv,
    )


def _cancel(e: CancelRequest) -> Row:
    return (e.id, e.client_order_id, e.exchange, e.symbol, e.reason, e.ts_event)


def _update(e: OrderUpdate) -> Row:
    return (
        e.id,
        e.client_order_id,
        e.exchange_order_id,
        e.exchange,
        e.symbol,
        e.side.value,
        e.order_type.value,
        e.status.value,
        e.quantity,
        e.filled_qty,
        e.avg_price,
        e.price,
        e.reason,
        e.seq,
        e.ts_event,
    )


def _fill(e: Fill) -> Row:
    return (
        e.id,
        e.client_order_id,
        e.exchange_order_id,
        e.exchange,
        e.symbol,
        e.side.value,
        e.price,
        e.qty,
        e.fee,
        e.fee_currency,
        e.liquidity.value,
        e.strategy,
        e.ts_event,
        e.ts_recv,
    )


def _position(e: Position) -> Row:
    return (
        e.id,
        e.exchange,
        e.symbol,
        e.qty,
        e.avg_price,
        e.realized_pnl,
        e.fees,
        e.mark_price,
        e.unrealized_pnl,
        e.ts_event,
    )


def _control(e: Control) -> Row:
    return (e.id, e.command, json.dumps(e.args, sort_keys=True), e.issued_by, e.ts_event)


def _dead(e: DeadLetter) -> Row:
    return (e.id, e.topic, e.message_id, e.group, e.deliveries, e.error, e.payload, e.ts_event)


ROW_MAPPERS: dict[type[Any], tuple[Table, Callable[[Any], Row]]] = {
    Trade: (schema.trades, _trade),
    Quote: (schema.quotes, _quote),
    BookDelta: (schema.book_deltas, _book),
    Bar: (schema.bars, _bar),
    Signal: (schema.signals, _signal),
    RiskDecision: (schema.risk_decisions, _decision),
    OrderRequest: (schema.orders, _order),
    CancelRequest: (schema.cancel_requests, _cancel),
    OrderUpdate: (schema.order_updates, _update),
    Fill: (schema.fills, _fill),
    Position: (schema.positions, _position),
    Control: (schema.control_events, _control),
    DeadLetter: (schema.dead_letters, _dead),
}


def group_rows(events: Iterable[Event]) -> dict[Table, list[Row]]:
    """Rows per table; events with no table (replies) are left out."""
    out: dict[Table, list[Row]] = {}
    for e in events:
        m = ROW_MAPPERS.get(type(e))
        if m is None:
            continue
        table, fn = m
        rows = out.get(table)
        if rows is None:
            rows = out[table] = []
        rows.append(fn(e))
    return out
