"""runs: one row per ``tradewind run`` or ``backtest --db`` into a database

A database can hold several runs; each gets a run id, stored with what it
read (data files and formats), the strategy and its effective parameters,
its summary and the rows it added per table, so ``tradewind runs`` and
``tradewind show RUN_ID`` can say what is in the file.

Revision ID: 0004_run_ids
Revises: 0002
Create Date: 2026-12-05 22:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_run_ids"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("started_ns", sa.BigInteger(), nullable=False),
        sa.Column("finished_ns", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("runs")
