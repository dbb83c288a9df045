"""``tradewind service NAME``: checks the arguments and settings, then hands
the process to ``runtime.process``."""

from __future__ import annotations

import socket
import sys

import typer

from tradewind.cli import app
from tradewind.cli.common import settings_or_exit
from tradewind.cli.errors import RunFailed, one_line_errors
from tradewind.config import ConfigError
from tradewind.observability.logging import configure_logging
from tradewind.runtime.loop import run_async
from tradewind.runtime.order_path import GROUP, GROUP_USER
from tradewind.runtime.process import SERVICES, ListenError, run_process


@app.command("service")
@one_line_errors
def service_command(
    name: str = typer.Argument(
        ...,
        metavar="NAME",
        help="One of: ws, signal, risk, execution, db_writer; or signal,risk,execution "
        "(the order path in one process).",
    ),
    consumer: str = typer.Option(
        "",
        "--consumer",
        envvar="TRADEWIND_CONSUMER",
        metavar="NAME",
        help="This replica's consumer name, unique per replica and stable across "
        "restarts (default: the host name).",
    ),
    lease_ttl_ms: int = typer.Option(
        10_000,
        "--lease-ttl-ms",
        envvar="TRADEWIND_LEASE_TTL_MS",
        metavar="MS",
        min=300,
        help="Risk, ws-shard and signal-partition lease TTL: the takeover time after a crash.",
    ),
) -> None:
    """Run one service in this process over Redis (and PostgreSQL for db_writer),
    or the order path (signal,risk,execution) in one process."""
    if "," in name and name != GROUP:
        typer.echo(
            f"tradewind: services {name!r} cannot run together; the one group is {GROUP} "
            "(in that order)",
            err=True,
        )
        raise typer.Exit(2)
    if name not in SERVICES and name != GROUP:
        typer.echo(f"tradewind: unknown service {name!r}; one of {', '.join(SERVICES)}", err=True)
        raise typer.Exit(2)
    members = name.split(",")
    settings = settings_or_exit(service_name=GROUP_USER if name == GROUP else name)
    if settings.bus.kind != "redis":
        typer.echo(
            "tradewind: invalid setting TRADEWIND_BUS__KIND: must be 'redis' for "
            "tradewind service (separate processes share no in-process bus)",
            err=True,
        )
        raise typer.Exit(2)
    if ("risk" in members or "execution" in members) and settings.control.order_key is None:
        typer.echo(
            "tradewind: invalid setting TRADEWIND_CONTROL__ORDER_KEY: risk signs every order "
            "with it and execution checks it; give both the same 32 random bytes "
            "(TRADEWIND_CONTROL__ORDER_KEY_FILE)",
            err=True,
        )
        raise typer.Exit(2)
    if name == "db_writer" and not settings.store.url.get_secret_value().startswith(
        ("postgresql://", "postgres://", "sqlite:///")
    ):
        typer.echo("tradewind: invalid setting TRADEWIND_STORE__URL: unsupported scheme", err=True)
        raise typer.Exit(2)
    if name == "ws" and settings.feed.source == "live":
        from tradewind.exchanges.feeds import validate_feed_settings

        try:
            validate_feed_settings(settings)
        except ConfigError as exc:
            typer.echo(f"tradewind: {exc}", err=True)
            raise typer.Exit(2) from None
    if "execution" in members:
        from tradewind.execution.guard import venue_problem

        problem = venue_problem(settings.execution)
        if problem is not None:
            typer.echo(f"tradewind: {problem}", err=True)
            raise typer.Exit(2)
    configure_logging(settings)
    try:
        code = run_async(
            run_process(name, settings, consumer or socket.gethostname(), lease_ttl_ms)
        )
    except ListenError as exc:
        raise RunFailed(str(exc)) from None
    sys.stdout.flush()
    raise typer.Exit(code)
