"""index trades by exchange, symbol and event time

Risk rebuilds its marks after a restart from the last trade of each symbol
before the trading day's start; without this index that query scans the
whole trades table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_trades_exchange_symbol_ts_event", "trades", ["exchange", "symbol", "ts_event"]
    )


def downgrade() -> None:
    op.drop_index("ix_trades_exchange_symbol_ts_event", table_name="trades")
