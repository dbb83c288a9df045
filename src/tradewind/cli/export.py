"""``tradewind export``: market tables out to Parquet for research.

Reads the configured store (``TRADEWIND_STORE__URL``: PostgreSQL or SQLite)
without migrating or writing anything (``Store.open_read_only``: a read-only
file or a SELECT-only role will do; a schema other than this release's is
refused) and writes ``OUT/TABLE/date=YYYY-MM-DD/symbol=SYMBOL/part-0.parquet``, which
pandas, polars and DuckDB read as one dataset and ``tradewind backtest
--data OUT`` replays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from tradewind.cli import app
from tradewind.cli.common import settings_or_exit
from tradewind.runtime.loop import run_async


def parse_time(value: str | None, option: str) -> int | None:
    """UTC date or date-time (ISO 8601), or integer nanoseconds since the epoch."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{option} takes a UTC date or time like 2025-12-05 or 2025-12-05T10:00, "
            "or nanoseconds since the epoch",
            param_hint=option,
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


@app.command("export")
def export_command(
    table: str = typer.Option(..., "--table", "-t", help="trades, quotes, book_deltas or bars."),
    symbols: list[str] = typer.Option(  # noqa: B008
        [], "--symbols", "-s", help="Symbols, comma-separated or repeated; default: all."
    ),
    since: str | None = typer.Option(None, help="From this UTC time (inclusive)."),
    until: str | None = typer.Option(None, help="To this UTC time (exclusive)."),
    out: Path = typer.Option(  # noqa: B008
        ..., "--out", "-o", file_okay=False, help="Output directory."
    ),
    chunk: int = typer.Option(50_000, min=1000, max=1_000_000, help="Rows held at a time."),
) -> None:
    """Export a market table of the configured store to Parquet."""
    from tradewind.storage import create_store
    from tradewind.storage.base import SchemaError
    from tradewind.storage.export import export

    since_ns = parse_time(since, "--since")
    until_ns = parse_time(until, "--until")
    names = [s for item in symbols for s in item.split(",") if s]
    settings = settings_or_exit(log_level="warning")

    async def main() -> None:
        store = create_store(settings)
        try:
            await store.open_read_only()
        except SchemaError as exc:
            typer.echo(f"tradewind: {exc}", err=True)
            raise typer.Exit(2) from None
        except (OSError, ConnectionError) as exc:
            typer.echo(f"tradewind: cannot open the store: {exc}", err=True)
            raise typer.Exit(1) from None
        try:
            stats = await export(store, table, out, names, since_ns, until_ns, chunk)
        finally:
            await store.close()
        typer.echo(
            f"exported {stats.rows:,} rows of {table} into {len(stats.files)} files under {out} "
            f"({stats.rows_per_s:,.0f} rows/s)"
        )

    try:
        run_async(main())
    except ValueError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None
