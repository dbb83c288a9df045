"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 20:55:49.158422
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: later schema changes get their own migration.
MONEY = sa.Numeric(precision=38, scale=18).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("ts_open", sa.BigInteger(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "book_deltas",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("snapshot", sa.Boolean(), nullable=False),
        sa.Column("first_update_id", sa.BigInteger(), nullable=False),
        sa.Column("last_update_id", sa.BigInteger(), nullable=False),
        sa.Column("prev_update_id", sa.BigInteger(), nullable=True),
        sa.Column("bids", sa.Text(), nullable=False),
        sa.Column("asks", sa.Text(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("ts_recv", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "cancel_requests",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "control_events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("issued_by", sa.Text(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "fills",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("exchange_order_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column(
            "price",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "qty",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "fee",
            MONEY,
            nullable=False,
        ),
        sa.Column("fee_currency", sa.Text(), nullable=False),
        sa.Column("liquidity", sa.Text(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("ts_recv", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fills_client_order_id"), ["client_order_id"], unique=False
        )

    op.create_table(
        "order_updates",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("exchange_order_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "quantity",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "filled_qty",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "avg_price",
            MONEY,
            nullable=True,
        ),
        sa.Column(
            "price",
            MONEY,
            nullable=True,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("order_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_order_updates_client_order_id"), ["client_order_id"], unique=False
        )

    op.create_table(
        "orders",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("signal_id", sa.Text(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column(
            "quantity",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "price",
            MONEY,
            nullable=True,
        ),
        sa.Column("time_in_force", sa.Text(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("ts_recv", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_order_id"),
    )
    op.create_table(
        "positions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column(
            "qty",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "avg_price",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "realized_pnl",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "fees",
            MONEY,
            nullable=False,
        ),
        sa.Column(
            "mark_price",
            MONEY,
            nullable=True,
        ),
        sa.Column(
            "unrealized_pnl",
            MONEY,
            nullable=False,
        ),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "quotes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("bid", sa.Float(), nullable=False),
        sa.Column("bid_qty", sa.Float(), nullable=False),
        sa.Column("ask", sa.Float(), nullable=False),
        sa.Column("ask_qty", sa.Float(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("ts_recv", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("signal_id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column(
            "quantity",
            MONEY,
            nullable=False,
        ),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("trading_state", sa.Text(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "signals",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column(
            "quantity",
            MONEY,
            nullable=False,
        ),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column(
            "limit_price",
            MONEY,
            nullable=True,
        ),
        sa.Column("time_in_force", sa.Text(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("ref_bid", sa.Float(), nullable=True),
        sa.Column("ref_ask", sa.Float(), nullable=True),
        sa.Column("ref_last", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("ts_recv", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "trades",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("qty", sa.Float(), nullable=False),
        sa.Column("side", sa.Text(), nullable=True),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("ts_recv", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("trades")
    op.drop_table("signals")
    op.drop_table("risk_decisions")
    op.drop_table("quotes")
    op.drop_table("positions")
    op.drop_table("orders")
    with op.batch_alter_table("order_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_updates_client_order_id"))

    op.drop_table("order_updates")
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fills_client_order_id"))

    op.drop_table("fills")
    op.drop_table("dead_letters")
    op.drop_table("control_events")
    op.drop_table("cancel_requests")
    op.drop_table("book_deltas")
    op.drop_table("bars")
