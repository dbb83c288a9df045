"""``tradewind acl``: the Redis ACL file of the bus, from the topic table."""

from __future__ import annotations

from pathlib import Path

import typer

from tradewind import acl
from tradewind.cli import app
from tradewind.cli.common import settings_or_exit

_SECRETS_DIR = typer.Option(
    ...,
    "--secrets-dir",
    help="Directory of redis_<user>_password files (ws, signal, risk, execution, "
    "db_writer, operator, orderpath, admin), e.g. the one `make secrets` fills.",
)
_PREFIX = typer.Option("", "--prefix", help="Key prefix (default: TRADEWIND_BUS__PREFIX).")


@app.command("acl")
def acl_command(secrets_dir: Path = _SECRETS_DIR, prefix: str = _PREFIX) -> None:
    """Print a Redis ACL file: one user per service, least privilege, default user off."""
    prefix = prefix or settings_or_exit().bus.prefix
    try:
        text = acl.acl_file(prefix, acl.read_passwords(secrets_dir))
    except ValueError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(text, nl=False)
