"""``tradewind migrate``: bring the configured database's schema up to date."""

from __future__ import annotations

import typer

from tradewind.cli import app
from tradewind.cli.common import settings_or_exit
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
    if password is not None and url.startswith(("postgresql://", "postgres://")):
        from tradewind.storage.postgres import url_with_password

        url = url_with_password(url, password.get_secret_value())
    migrate.upgrade(url)
    typer.echo("schema is up to date")
