"""``tradewind migrate``: bring the configured database's schema up to date."""

from __future__ import annotations

import asyncio

import typer

from tradewind.cli import app
from tradewind.cli.common import settings_or_exit
from tradewind.config import MARKET_TABLES
from tradewind.storage import migrate


@app.command("migrate")
def migrate_command(
    sql: bool = typer.Option(False, "--sql", help="Print the PostgreSQL DDL instead of applying."),
) -> None:
    """Apply the Alembic migrations to TRADEWIND_STORE__URL."""
    if sql:
        typer.echo(migrate.offline_sql(), nl=False)
        return
    settings = settings_or_exit()
    url = settings.store.url.get_secret_value()
    password = settings.store.password
    postgres = url.startswith(("postgresql://", "postgres://"))
    if password is not None and postgres:
        from tradewind.storage.postgres import url_with_password

        url = url_with_password(url, password.get_secret_value())
    try:
        migrate.upgrade(url)
    except Exception as exc:
        # One line, never the URL (it may carry a password) nor a traceback.
        typer.echo(f"tradewind: cannot migrate the database: {_reason(exc)}", err=True)
        raise typer.Exit(1) from None
    typer.echo("schema is up to date")
    if postgres:
        from tradewind.storage.postgres import prepare_partitions

        s = settings.store
        try:
            per_table = {t: s.interval_s(t) for t in MARKET_TABLES}
            made = asyncio.run(prepare_partitions(url, per_table, s.partitions_ahead))
        except Exception as exc:
            typer.echo(f"tradewind: cannot create partitions: {_reason(exc)}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"partitions ahead: {len(made)} created")


def _reason(exc: BaseException) -> str:
    """The innermost cause's first line: the driver's own words
    (``connection refused``, ``password authentication failed``)."""
    for _ in range(10):
        inner = getattr(exc, "orig", None) or exc.__cause__
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]
