"""The one schema, for SQLite and PostgreSQL.

Every table's primary key is the event's stable id, so writing the same event
twice is a no-op (``ON CONFLICT DO NOTHING``). Money columns are NUMERIC on
PostgreSQL and TEXT on SQLite (whose NUMERIC affinity would round-trip through
binary floats).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

metadata = MetaData()


def money() -> TypeEngine[Any]:
    return Numeric(38, 18).with_variant(Text(), "sqlite")


def _id() -> Column[str]:
    return Column("id", Text, primary_key=True)


def _ts(name: str = "ts_event") -> Column[int]:
    return Column(name, BigInteger, nullable=False)


trades = Table(
    "trades",
    metadata,
    _id(),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("trade_id", Text, nullable=False),
    Column("price", Float, nullable=False),
    Column("qty", Float, nullable=False),
    Column("side", Text),
    _ts(),
    _ts("ts_recv"),
    # Risk's rebuild asks for the last trade of a symbol before a time.
    Index("ix_trades_exchange_symbol_ts_event", "exchange", "symbol", "ts_event"),
)

quotes = Table(
    "quotes",
    metadata,
    _id(),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("bid", Float, nullable=False),
    Column("bid_qty", Float, nullable=False),
    Column("ask", Float, nullable=False),
    Column("ask_qty", Float, nullable=False),
    Column("update_id", BigInteger, nullable=False),
    _ts(),
    _ts("ts_recv"),
)

book_deltas = Table(
    "book_deltas",
    metadata,
    _id(),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("snapshot", Boolean, nullable=False),
    Column("first_update_id", BigInteger, nullable=False),
    Column("last_update_id", BigInteger, nullable=False),
    Column("prev_update_id", BigInteger),
    Column("bids", Text, nullable=False),
    Column("asks", Text, nullable=False),
    _ts(),
    _ts("ts_recv"),
)

bars = Table(
    "bars",
    metadata,
    _id(),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("interval_s", Float, nullable=False),
    _ts("ts_open"),
    _ts(),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("trades", Integer, nullable=False),
)

signals = Table(
    "signals",
    metadata,
    _id(),
    Column("strategy", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", money(), nullable=False),
    Column("order_type", Text, nullable=False),
    Column("limit_price", money()),
    Column("time_in_force", Text, nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("ref_bid", Float),
    Column("ref_ask", Float),
    Column("ref_last", Float),
    Column("reason", Text, nullable=False),
    _ts(),
    _ts("ts_recv"),
)

risk_decisions = Table(
    "risk_decisions",
    metadata,
    _id(),
    Column("signal_id", Text, nullable=False),
    Column("client_order_id", Text, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", money(), nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("trading_state", Text, nullable=False),
    _ts(),
)

orders = Table(
    "orders",
    metadata,
    _id(),
    Column("client_order_id", Text, nullable=False, unique=True),
    Column("signal_id", Text, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("order_type", Text, nullable=False),
    Column("quantity", money(), nullable=False),
    Column("price", money()),
    Column("time_in_force", Text, nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    _ts(),
    _ts("ts_recv"),
)

cancel_requests = Table(
    "cancel_requests",
    metadata,
    _id(),
    Column("client_order_id", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("reason", Text, nullable=False),
    _ts(),
)

order_updates = Table(
    "order_updates",
    metadata,
    _id(),
    Column("client_order_id", Text, nullable=False, index=True),
    Column("exchange_order_id", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("order_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("quantity", money(), nullable=False),
    Column("filled_qty", money(), nullable=False),
    Column("avg_price", money()),
    Column("price", money()),
    Column("reason", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    _ts(),
)

fills = Table(
    "fills",
    metadata,
    _id(),
    Column("client_order_id", Text, nullable=False, index=True),
    Column("exchange_order_id", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("price", money(), nullable=False),
    Column("qty", money(), nullable=False),
    Column("fee", money(), nullable=False),
    Column("fee_currency", Text, nullable=False),
    Column("liquidity", Text, nullable=False),
    Column("strategy", Text, nullable=False),
    _ts(),
    _ts("ts_recv"),
)

positions = Table(
    "positions",
    metadata,
    _id(),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("qty", money(), nullable=False),
    Column("avg_price", money(), nullable=False),
    Column("realized_pnl", money(), nullable=False),
    Column("fees", money(), nullable=False),
    Column("mark_price", money()),
    Column("unrealized_pnl", money(), nullable=False),
    _ts(),
)

control_events = Table(
    "control_events",
    metadata,
    _id(),
    Column("command", Text, nullable=False),
    Column("args", Text, nullable=False),
    Column("issued_by", Text, nullable=False),
    _ts(),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    _id(),
    Column("topic", Text, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("group_name", Text, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    _ts(),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("command", Text, nullable=False),
    Column("started_ns", BigInteger, nullable=False),
    Column("finished_ns", BigInteger, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("summary", Text, nullable=False),
)
"""One row per run written into the database (``storage.runs``); JSON text
in ``params``, ``data`` and ``summary``."""
