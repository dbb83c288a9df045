"""``tradewind halt [--flatten]``, ``tradewind resume``, ``tradewind status``.

They reach a running system through the bus from the settings: a command is
signed with the control token (``TRADEWIND_CONTROL__TOKEN`` or ``…_FILE``),
published on ``control``, and the CLI waits, with a timeout, for risk's reply
on ``control.replies``. With no Redis configured (or ``--db``/``--socket``
given) the system is one ``tradewind trade`` process: the same signed command
goes to its control socket, with the token kept beside its database unless one
is configured. Exit status: 0 done, 1 refused or no reply, 2 bad configuration.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tradewind.bus import create_bus
from tradewind.cli import app
from tradewind.cli.common import settings_or_exit
from tradewind.config import Settings
from tradewind.control import make_control
from tradewind.events import ControlReply
from tradewind.runtime.control_endpoint import (
    EndpointError,
    default_socket,
    exchange,
    local_token,
    send_local,
)
from tradewind.runtime.loop import run_async


async def send(
    settings: Settings, command: str, args: dict[str, str], timeout: float
) -> ControlReply | None:
    """Publish a signed command and wait for its reply; None after ``timeout``."""
    secret = settings.control.token
    if secret is None:
        raise ValueError("TRADEWIND_CONTROL__TOKEN (or TRADEWIND_CONTROL__TOKEN_FILE) is not set")
    bus = create_bus(settings)
    await bus.start()
    try:
        issued_by = f"{getpass.getuser()}@{socket.gethostname()}"
        c = make_control(secret.get_secret_value(), command, args, time.time_ns(), issued_by)
        return await exchange(bus, c, timeout)
    finally:
        await bus.close()


async def send_to_socket(
    settings: Settings, db: Path, sock: Path, command: str, args: dict[str, str], timeout: float
) -> ControlReply | None:
    """The same signed command, to one ``tradewind trade`` process's socket."""
    secret = settings.control.token
    token = secret.get_secret_value() if secret is not None else local_token(db, create=False)
    if token is None:
        raise ValueError(
            f"no control token: TRADEWIND_CONTROL__TOKEN is not set and {db} has none "
            "beside it (give the --db tradewind trade runs on)"
        )
    issued_by = f"{getpass.getuser()}@{socket.gethostname()}"
    c = make_control(token, command, args, time.time_ns(), issued_by)
    return await send_local(sock, c, timeout)


def _run(
    command: str,
    args: dict[str, str],
    timeout: float | None,
    as_json: bool,
    db: Path | None = None,
    sock: Path | None = None,
) -> None:
    settings = settings_or_exit()
    wait = timeout if timeout is not None else settings.control.reply_timeout_s
    local = db is not None or sock is not None or settings.bus.kind == "memory"
    db = db if db is not None else Path("tradewind.db")
    sock = sock if sock is not None else default_socket(db)
    try:
        if local:
            job = send_to_socket(settings, db, sock, command, args, wait)
        else:
            job = send(settings, command, args, wait)
        reply = run_async(asyncio.wait_for(job, wait + 10))
    except ValueError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None
    except EndpointError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(1) from None
    except TimeoutError:
        reply = None
    if reply is None:
        typer.echo(f"tradewind: no reply from risk within {wait:g}s", err=True)
        raise typer.Exit(1)
    if as_json:
        payload = plain(dict(reply.payload))
        typer.echo(json.dumps({"ok": reply.ok, "detail": reply.detail, **payload}))
    else:
        console = Console()
        console.print(f"[bold]{reply.detail}[/bold]")
        if reply.payload:
            for table in status_tables(reply.payload):
                console.print(table)
    if not reply.ok:
        raise typer.Exit(1)


def plain(v: Any) -> Any:
    """Decimals as people write them: ``0E-14`` → ``0``, ``61842.000000000000``
    → ``61842``; nested lists and dicts likewise; anything else as it is."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, str) and v and (v[0].isdigit() or v[0] in "-+."):
        try:
            d = Decimal(v)
        except InvalidOperation:
            return v
        if d.is_finite():
            d = d.normalize()
            return f"{d + 0:f}" if d == 0 else f"{d:f}"
    return v


def status_tables(p: dict[str, Any]) -> list[Table]:
    """State and PnL, positions, and limits used, from a status payload."""
    p = plain(p)
    summary = Table(title="Risk", show_header=False)
    summary.add_column("key")
    summary.add_column("value", justify="right")
    summary.add_row("trading state", str(p.get("state", "")))
    if p.get("tripped_by"):
        summary.add_row("tripped by", str(p["tripped_by"]))
    summary.add_row("open orders", str(p.get("open_orders", "")))
    for k, v in dict(p.get("exposure", {})).items():
        summary.add_row(f"{k} exposure", str(v))
    for k, v in dict(p.get("pnl", {})).items():
        summary.add_row(k.replace("_", " "), str(v))
    for cur, tot in dict(p.get("pnl_by_currency", {})).items():
        for k, v in dict(tot).items():
            name = k.replace("_", " ")
            summary.add_row(f"{name} ({cur})" if cur else name, str(v))
    positions = Table(title="Positions")
    cols = (
        "exchange",
        "symbol",
        "qty",
        "avg_price",
        "mark",
        "realized_pnl",
        "unrealized_pnl",
        "currency",
    )
    for c in cols:
        positions.add_column(c.replace("_", " "), justify="left" if c in cols[:2] else "right")
    for pos in p.get("positions", []):
        positions.add_row(*(str(pos.get(c, "")) for c in cols))
    limits = Table(title="Limits used")
    for c in ("limit", "used", "of", "ratio"):
        limits.add_column(c, justify="left" if c == "limit" else "right")
    for name, v in dict(p.get("limits", {})).items():
        limits.add_row(name, str(v["used"]), str(v["limit"]), str(v["ratio"]))
    return [summary, positions, limits]


_TIMEOUT = typer.Option(
    None,
    "--timeout",
    metavar="SECONDS",
    help="Seconds to wait for risk's reply (default: settings).",
)
_JSON = typer.Option(False, "--json", help="Print the reply as JSON.")
_DB = typer.Option(
    None,
    "--db",
    metavar="FILE",
    help="The database a tradewind trade process runs on: reach it through its socket.",
)
_SOCKET = typer.Option(
    None,
    "--socket",
    metavar="FILE",
    help="That process's control socket (default: the --db path + .sock).",
)


@app.command("halt")
def halt_command(
    flatten: bool = typer.Option(False, "--flatten", help="Also close every position."),
    timeout: float | None = _TIMEOUT,
    as_json: bool = _JSON,
    db: Path | None = _DB,
    sock: Path | None = _SOCKET,
) -> None:
    """Kill switch: cancel every open order, refuse new ones (and close positions)."""
    _run("halt", {"flatten": "true" if flatten else "false"}, timeout, as_json, db, sock)


@app.command("resume")
def resume_command(
    timeout: float | None = _TIMEOUT,
    as_json: bool = _JSON,
    db: Path | None = _DB,
    sock: Path | None = _SOCKET,
) -> None:
    """Return to ACTIVE trading with a fresh loss budget."""
    _run("resume", {}, timeout, as_json, db, sock)


@app.command("status")
def status_command(
    timeout: float | None = _TIMEOUT,
    as_json: bool = _JSON,
    db: Path | None = _DB,
    sock: Path | None = _SOCKET,
) -> None:
    """Trading state, positions, exposure, PnL and limits used."""
    _run("status", {}, timeout, as_json, db, sock)
