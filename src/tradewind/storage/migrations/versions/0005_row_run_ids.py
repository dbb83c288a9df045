"""run_id on the trading tables: each row names the run that added it

Event ids are deterministic, so a row belongs to the first run that wrote
it; ``tradewind show RUN_ID`` lists a run's orders and fills by this column.
It is stamped when the run's ``runs`` row is stored, in the same transaction
(``storage.runs``), so rows written before this migration, and rows of the
distributed services, keep NULL. The tables are not partitioned: adding a
nullable column rewrites nothing.

Revision ID: 0005_row_run_ids
Revises: 0003_partitions
Create Date: 2026-12-06 02:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_row_run_ids"
down_revision: str | None = "0003_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, not taken from schema.py: a migration is history.
TABLES = (
    "signals",
    "risk_decisions",
    "orders",
    "cancel_requests",
    "order_updates",
    "fills",
    "positions",
)


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("run_id", sa.Text(), nullable=True))
        op.create_index(f"ix_{table}_run_id", table, ["run_id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_run_id", table_name=table)
        op.drop_column(table, "run_id")
