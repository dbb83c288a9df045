"""signatures of orders and cancels; size and sha256 of dead letters

Risk signs every order and cancel (HMAC with the order key) and execution
checks it; the stored signature records which orders risk issued, so an
audit can check them later with the key. A dead letter keeps at most
``DEAD_PAYLOAD_BYTES`` of its message, so ``size`` and ``sha256`` of the whole
message are what identify it. Rows stored before this migration take the
events' defaults (``''`` and ``0``: not known).

Control commands' signatures stay unstored (a risk rebuilt from the store
has no used-command ids, so a stored one could be replayed).

Written beside ``0005_row_run_ids`` (both on ``0003_partitions``); it follows
that one, which reached main first, so the chain keeps one head. Revision ids
fit ``alembic_version``'s 32 characters.

Revision ID: 0006_signatures_digests
Revises: 0005_row_run_ids
Create Date: 2026-12-06 01:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_signatures_digests"
down_revision: str | None = "0005_row_run_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("orders", "signature", sa.Text(), ""),
    ("cancel_requests", "signature", sa.Text(), ""),
    ("dead_letters", "size", sa.BigInteger(), "0"),
    ("dead_letters", "sha256", sa.Text(), ""),
)


def upgrade() -> None:
    for table, column, type_, default in COLUMNS:
        op.add_column(
            table, sa.Column(column, type_, nullable=False, server_default=sa.text(f"'{default}'"))
        )


def downgrade() -> None:
    for table, column, _, _ in reversed(COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
