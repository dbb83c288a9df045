"""partition the market tables by event time (PostgreSQL)

trades, quotes, book_deltas and bars become tables partitioned by range of
``ts_event``, so that retention drops whole partitions instead of deleting
rows. Existing rows are kept: each table is renamed, a partitioned table of the
same columns takes its name, one partition per UTC day that holds rows is
created, the rows are copied over and the old table is dropped. The copy needs
as much free disk as the market tables take: run it before the volume is
nearly full. Partitions for new days are created by db_writer and
``tradewind migrate`` (``tradewind.storage.partitions``).

A partitioned table's keys must hold the partition column, so the primary key
becomes ``(id, ts_event)``; an id fixes its event and so its ``ts_event``, so
redelivered events still conflict and are skipped.

SQLite keeps its plain tables (keyed by ``id``).

It follows ``0004_run_ids``, which reached main first (both were written on
``0002``): a database already at 0004 still gets this one.

Revision ID: 0003_partitions
Revises: 0004_run_ids
Create Date: 2026-12-05 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_partitions"
down_revision: str | None = "0004_run_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("trades", "quotes", "book_deltas", "bars")
INDEXES = {"trades": ("ix_trades_exchange_symbol_ts_event", "exchange, symbol, ts_event")}
DAY_NS = 86_400_000_000_000


def _daily_partitions(table: str, source: str) -> str:
    """One partition per UTC day holding rows of ``source``, named as
    ``tradewind.storage.partitions`` names them."""
    return f"""
DO $$
DECLARE d bigint;
BEGIN
  FOR d IN SELECT DISTINCT floor(ts_event::numeric / {DAY_NS})::bigint FROM {source} LOOP
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF {table} FOR VALUES FROM (%s) TO (%s)',
      '{table}_p' || to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
      d * {DAY_NS}, (d + 1) * {DAY_NS});
  END LOOP;
END $$"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for t in TABLES:
        old = f"{t}_unpartitioned"
        op.execute(f"ALTER TABLE {t} RENAME TO {old}")
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {t}_pkey TO {old}_pkey")
        if t in INDEXES:
            op.execute(f"ALTER INDEX {INDEXES[t][0]} RENAME TO {INDEXES[t][0]}_old")
        op.execute(
            f"CREATE TABLE {t} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE (ts_event)"
        )
        op.execute(f"ALTER TABLE {t} ADD CONSTRAINT {t}_pkey PRIMARY KEY (id, ts_event)")
        if t in INDEXES:
            op.execute(f"CREATE INDEX {INDEXES[t][0]} ON {t} ({INDEXES[t][1]})")
        op.execute(_daily_partitions(t, old))
        op.execute(f"INSERT INTO {t} SELECT * FROM {old}")
        op.execute(f"DROP TABLE {old}")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for t in TABLES:
        old = f"{t}_partitioned"
        op.execute(f"ALTER TABLE {t} RENAME TO {old}")
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {t}_pkey TO {old}_pkey")
        if t in INDEXES:
            op.execute(f"ALTER INDEX {INDEXES[t][0]} RENAME TO {INDEXES[t][0]}_old")
        op.execute(f"CREATE TABLE {t} (LIKE {old} INCLUDING DEFAULTS)")
        op.execute(f"ALTER TABLE {t} ADD CONSTRAINT {t}_pkey PRIMARY KEY (id)")
        if t in INDEXES:
            op.execute(f"CREATE INDEX {INDEXES[t][0]} ON {t} ({INDEXES[t][1]})")
        op.execute(f"INSERT INTO {t} SELECT * FROM {old}")
        op.execute(f"DROP TABLE {old} CASCADE")
