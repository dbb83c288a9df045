"""``tradewind halt [--flatten]``, ``tradewind resume``, ``tradewind status``.

They reach a running system through the bus from the settings: a command is
signed with the control token (``TRADEWIND_CONTROL__TOKEN`` or ``…_FILE``),
published on ``control``, and the CLI waits, with a timeout, for risk's reply
on ``control.replies``. Exit status: 0 done, 1 refused or no reply, 2 bad
configuration.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tradewind.bus import Bus, create_bus
from tradewind.cli import app
from tradewind.cli.common import settings_or_exit
from tradewind.config import Settings
from tradewind.control import make_control
from tradewind.events import Control, ControlReply
from tradewind.runtime.loop import run_async
from tradewind.topics import CONTROL, CONTROL_REPLIES


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


async def exchange(bus: Bus, c: Control, timeout: float) -> ControlReply | None:
    """Publish ``c`` and wait for risk's reply to it; None after ``timeout``."""
    group = f"cli-{uuid.uuid4().hex[:12]}"
    sub = await bus.subscribe([CONTROL_REPLIES], group, "cli")
    try:
        await bus.publish(CONTROL, [c])
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msgs = await sub.fetch(256, min(left, 0.5))
            if msgs:
                await sub.ack(msgs)
            for m in msgs:
                if isinstance(m.event, ControlReply) and m.event.request_id == c.id:
                    return m.event
        return None
    finally:
        await sub.close()
        await bus.drop_group(CONTROL_REPLIES, group)


def _run(command: str, args: dict[str, str], timeout: float | None, as_json: bool) -> None:
    settings = settings_or_exit()
    wait = timeout if timeout is not None else settings.control.reply_timeout_s
    try:
        reply = run_async(asyncio.wait_for(send(settings, command, args, wait), wait + 10))
    except ValueError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None
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


@app.command("halt")
def halt_command(
    flatten: bool = typer.Option(False, "--flatten", help="Also close every position."),
    timeout: float | None = _TIMEOUT,
    as_json: bool = _JSON,
) -> None:
    """Kill switch: cancel every open order, refuse new ones (and close positions)."""
    _run("halt", {"flatten": "true" if flatten else "false"}, timeout, as_json)


@app.command("resume")
def resume_command(timeout: float | None = _TIMEOUT, as_json: bool = _JSON) -> None:
    """Return to ACTIVE trading with a fresh loss budget."""
    _run("resume", {}, timeout, as_json)


@app.command("status")
def status_command(timeout: float | None = _TIMEOUT, as_json: bool = _JSON) -> None:
    """Trading state, positions, exposure, PnL and limits used."""
    _run("status", {}, timeout, as_json)
