"""``tradewind trade``: the five services in one process on live market data,
paper execution, a terminal dashboard, and a clean stop on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live

from tradewind.cli import app
from tradewind.cli.checks import check_strategy
from tradewind.cli.common import settings_or_exit
from tradewind.cli.dashboard import plain, render
from tradewind.cli.options import parse_params
from tradewind.config import ConfigError, Settings
from tradewind.exchanges.common.recording import Recorder
from tradewind.execution.guard import network_problem, venue_problem
from tradewind.execution.venue import StartCheckFailed
from tradewind.observability.logging import configure_logging
from tradewind.runtime.control_endpoint import (
    EndpointError,
    claim,
    default_socket,
    local_token,
    token_file,
)
from tradewind.runtime.embedded import RunSummary
from tradewind.runtime.loop import run_async
from tradewind.runtime.trade import STOP_TIMEOUT_S, LiveTrader
from tradewind.storage import runs
from tradewind.storage.runs import RunRecord, new_run_id

PAPER_NOTE = "paper trading: orders are simulated against the live book; none is sent to {venue}"
LIVE_NOTE = "LIVE ORDERS: real orders go to {venue} ({network}); Ctrl-C cancels them on the way out"
NATIVE_ORDERS = {"binance": "binance"}
"""Feed venue → Tradewind's own order client for it (``--order-api native``)."""
CCXT_ORDERS = {"binance": "binance", "okx": "okx"}
"""Feed venue → the ccxt exchange id its orders go through (``--order-api
ccxt``). Only venues whose start checks, orders and restart were tested end to
end through ccxt against a fake exchange (docs/trading-live.md); ccxt knows
the others, but an untested route is not offered for real money. Bybit,
Kraken and Coinbase stay out: ccxt 4.5.64 cannot look their orders up or
cancel them by our client order id, which the router's settle-by-lookup needs."""
LIVE_VENUES = sorted(NATIVE_ORDERS.keys() | CCXT_ORDERS.keys())


def _symbols(value: str) -> list[str]:
    out = [s.strip() for s in value.split(",") if s.strip()]
    if not out:
        raise typer.BadParameter("give at least one symbol, e.g. BTCUSDT,ETHUSDT")
    return out


@app.command("trade")
def trade_command(
    venue: str = typer.Option("binance", "--venue", help="Exchange id of the live feed."),
    symbols: str = typer.Option("BTCUSDT", "--symbols", help="Comma-separated symbols."),
    strategy: str = typer.Option("ema_cross", help="Strategy name."),
    param: list[str] = typer.Option(  # noqa: B008
        [], "--param", "-p", help="Any strategy parameter as KEY=VALUE (repeatable)."
    ),
    db: str = typer.Option(
        "tradewind.db",
        "--db",
        metavar="FILE|URL",
        help="SQLite file or postgresql:// URL; a restart resumes from it.",
    ),
    live_orders: bool = typer.Option(
        False,
        "--live-orders",
        help="Route real orders to the venue (needs keys and --network; checked at start).",
    ),
    network: str | None = typer.Option(
        None,
        "--network",
        help="With --live-orders: testnet or mainnet (else TRADEWIND_EXECUTION__TESTNET).",
    ),
    order_api: str | None = typer.Option(
        None,
        "--order-api",
        metavar="native|ccxt",
        help="With --live-orders: Tradewind's own client (default where there is one) or ccxt.",
    ),
    no_dashboard: bool = typer.Option(
        False, "--no-dashboard", help="Plain status lines instead of the dashboard."
    ),
    interval: float = typer.Option(
        10.0, "--status-every", min=0.1, help="Seconds between plain status lines."
    ),
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Stop by itself after this many seconds."
    ),
    record: Path | None = typer.Option(  # noqa: B008
        None, "--record", help="Also write every raw message to this file (.gz: compressed)."
    ),
    rotate_mb: float = typer.Option(
        0.0, "--rotate-mb", min=0, help="Rotate the recording by size."
    ),
    rotate_minutes: float = typer.Option(
        0.0, "--rotate-minutes", min=0, help="Rotate the recording by time."
    ),
    control_socket: Path | None = typer.Option(  # noqa: B008
        None,
        "--control-socket",
        metavar="FILE",
        help="Unix socket for tradewind halt/resume/status (default: the --db path + .sock).",
    ),
) -> None:
    """Trade live market data in one process (paper execution), with a dashboard."""
    if network is not None and network not in ("testnet", "mainnet"):
        _usage(f"--network {network}: use testnet or mainnet")
    if network is not None and not live_orders:
        _usage("--network only applies with --live-orders")
    if order_api is not None and order_api not in ("native", "ccxt"):
        _usage(f"--order-api {order_api}: use native or ccxt")
    if order_api is not None and not live_orders:
        _usage("--order-api only applies with --live-orders")
    execution: dict[str, object] = {}
    if live_orders:
        execution = _order_route(venue, order_api)
        if network is not None:
            execution["testnet"] = network == "testnet"
    settings = settings_or_exit(
        feed={"source": "live", "exchanges": [venue], "symbols": _symbols(symbols)},
        store={"url": db if runs.is_url(db) else f"sqlite:///{db}"},
        strategy={"name": strategy, "params": check_strategy(strategy, dict(parse_params(param)))},
        bus={"kind": "memory"},
        **({"execution": execution} if execution else {}),
    )
    if not live_orders and settings.execution.venue != "paper":
        _usage(
            f"invalid setting TRADEWIND_EXECUTION__VENUE: {settings.execution.venue!r} "
            "routes real orders; pass --live-orders to mean it, or set it to paper"
        )
    if live_orders:
        problem = venue_problem(settings.execution) or network_problem(settings.execution)
        if problem is not None:
            _usage(problem)
    # A PostgreSQL store has no folder: the socket and token go to the working one.
    here = Path("tradewind.db") if runs.is_url(db) else Path(db)
    sock = control_socket if control_socket is not None else default_socket(here)
    fresh_token = settings.control.token is None and not token_file(here).exists()
    try:
        claim(sock)
        settings = _with_control_token(settings, here)
    except EndpointError as exc:
        _usage(str(exc))
    configure_logging(settings, console=True)
    console = Console()
    dashboard = console.is_terminal and not no_dashboard
    try:
        trader = LiveTrader(settings, _recorder(record, rotate_mb, rotate_minutes), sock)
    except (ConfigError, ValueError) as exc:
        if fresh_token and not here.exists():
            token_file(here).unlink(missing_ok=True)
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None
    if live_orders:
        net = "testnet" if settings.execution.testnet else "mainnet, real money"
        ex = settings.execution
        to: str = ex.venue
        if ex.venue == "ccxt":
            via = "" if ex.ccxt_id == ex.exchange else f" {ex.ccxt_id}"
            to = f"{ex.exchange} through ccxt{via}"
        console.print(LIVE_NOTE.format(venue=to, network=net))
        console.print(_limits(settings))
    else:
        console.print(PAPER_NOTE.format(venue=venue))
    started_ns = time.time_ns()
    try:
        summary = run_async(_trade(trader, console, dashboard, interval, duration))
    except StartCheckFailed as exc:
        typer.echo(f"tradewind: live orders refused at start: {exc}", err=True)
        raise typer.Exit(1) from None
    except EndpointError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(1) from None
    except RuntimeError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(1) from None
    from tradewind.cli.run import record_run, store_target, summary_json, summary_table

    run_id = new_run_id(started_ns)
    target = store_target(settings)
    params = dict(settings.strategy.params)
    record_run(
        target,
        RunRecord(
            run_id=run_id,
            command="trade",
            started_ns=started_ns,
            finished_ns=time.time_ns(),
            strategy=strategy,
            params=params,
            data=[
                {"path": f"live {venue}", "format": venue, "exchange": venue, "symbol": sym}
                for sym in _symbols(symbols)
            ],
            summary=summary_json(summary),
        ),
    )
    console.print(
        summary_table(summary, runs.shown(target), strategy=strategy, params=params, run_id=run_id)
    )
    if trader.cancelled:
        console.print(f"cancelled {trader.cancelled} open order(s) on the way out")
    if trader.recorder is not None:
        _recorded(console, trader.recorder)


def _order_route(venue: str, order_api: str | None) -> dict[str, object]:
    """The execution settings that send ``venue``'s orders through ``order_api``
    (None: the native client where there is one, else ccxt)."""
    if venue not in LIVE_VENUES:
        _usage(
            f"--live-orders: no live order route for --venue {venue}; "
            f"live orders go to {', '.join(LIVE_VENUES)}"
        )
    api = order_api or ("native" if venue in NATIVE_ORDERS else "ccxt")
    if api == "native":
        if venue not in NATIVE_ORDERS:
            _usage(f"--order-api native: no native order client for {venue}; use --order-api ccxt")
        return {"venue": NATIVE_ORDERS[venue]}
    if venue not in CCXT_ORDERS:
        _usage(f"--order-api ccxt: {venue} is not routed through ccxt; use --order-api native")
    return {"venue": "ccxt", "ccxt_id": CCXT_ORDERS[venue], "exchange": venue}


def _usage(message: str) -> NoReturn:
    typer.echo(f"tradewind: {message}", err=True)
    raise typer.Exit(2)


def _limits(settings: Settings) -> str:
    r = settings.risk
    return (
        f"risk limits: max position {r.max_position}, max order notional "
        f"{r.max_order_notional}, max open orders {r.max_open_orders}, max daily loss "
        f"{r.max_daily_loss}, max drawdown {r.max_drawdown} {r.account_currency}"
    )


def _with_control_token(settings: Settings, db: Path) -> Settings:
    """Without a configured token, the one kept beside the database, so that
    ``tradewind halt`` (and the dashboard's keys) work with no setup."""
    if settings.control.token is not None:
        return settings
    token = local_token(db, create=True)
    assert token is not None
    control = settings.control.model_copy(update={"token": SecretStr(token)})
    return settings.model_copy(update={"control": control})


def _recorder(path: Path | None, rotate_mb: float, rotate_minutes: float) -> Recorder | None:
    if path is None:
        return None
    return Recorder(path, max_bytes=int(rotate_mb * 1_000_000), max_age_s=rotate_minutes * 60)


def _recorded(console: Console, recorder: Recorder) -> None:
    files = ", ".join(str(p) for p in recorder.files)
    console.print(f"recorded {recorder.written:,} messages to {files}")
    if recorder.dropped:
        console.print(f"[red]{recorder.dropped:,} messages dropped: the disk fell behind[/red]")
    if recorder.error is not None:
        console.print(f"[red]recording failed: {recorder.error}[/red]")


@app.command("record")
def record_command(
    venue: str = typer.Option("binance", "--venue", help="Exchange id of the live feed."),
    symbols: str = typer.Option("BTCUSDT", "--symbols", help="Comma-separated symbols."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.gz: compressed)."),  # noqa: B008
    rotate_mb: float = typer.Option(0.0, "--rotate-mb", min=0, help="Rotate by size."),
    rotate_minutes: float = typer.Option(0.0, "--rotate-minutes", min=0, help="Rotate by time."),
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Stop by itself after this many seconds."
    ),
) -> None:
    """Record a live feed's raw messages, for run and backtest to replay."""
    from tradewind.runtime.record import record_feeds

    settings = settings_or_exit(
        feed={"source": "live", "exchanges": [venue], "symbols": _symbols(symbols)}
    )
    configure_logging(settings, console=True)
    recorder = _recorder(output, rotate_mb, rotate_minutes)
    assert recorder is not None

    async def main() -> int:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        if duration is not None:
            loop.call_later(duration, stopping.set)
        return await record_feeds(settings, recorder, stopping)

    console = Console()
    try:
        events = run_async(main())
    except ConfigError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(f"{events:,} events parsed")
    _recorded(console, recorder)


async def _trade(
    trader: LiveTrader,
    console: Console,
    dashboard: bool,
    interval: float,
    duration: float | None,
) -> RunSummary:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            # What is committed is in the SQLite file (WAL, synchronous=FULL).
            os._exit(130)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if duration is not None:
        loop.call_later(duration, stopping.set)
    for line in await trader.live_checks():
        console.print(line)
    await trader.start()
    if trader.resent:
        console.print(f"resumed: sent {trader.resent} open order(s) again to the paper exchange")
    show = asyncio.create_task(_show(trader, console, dashboard, interval, stopping))
    keys = _Keys(trader) if dashboard else None
    try:
        await trader.run_until(stopping)
    finally:
        if keys is not None:
            await keys.close()
        show.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await show
        console.print("stopping: cancelling open orders and flushing the store (Ctrl-C: now)")
        await trader.stop()
    return await trader.summary()


KEY_COMMANDS = {
    "h": ("halt", {"flatten": "false"}),
    "f": ("halt", {"flatten": "true"}),
    "r": ("resume", {}),
}


class _Keys:
    """The dashboard's kill-switch keys: the terminal in cbreak mode (Ctrl-C
    still signals), one command at a time, each signed and verified by risk
    like one from ``tradewind halt``; its reply shows in the activity list."""

    def __init__(self, trader: LiveTrader) -> None:
        self.trader = trader
        self.fd: int | None = None
        self.saved: list[Any] | None = None
        self.task: asyncio.Task[object] | None = None
        if not sys.stdin.isatty():
            return
        self.fd = sys.stdin.fileno()
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        asyncio.get_running_loop().add_reader(self.fd, self._on_key)

    def _on_key(self) -> None:
        assert self.fd is not None
        try:
            key = os.read(self.fd, 1).decode(errors="replace").lower()
        except OSError:
            return
        if key not in KEY_COMMANDS or (self.task is not None and not self.task.done()):
            return
        command, args = KEY_COMMANDS[key]
        self.task = asyncio.create_task(self.trader.command(command, args), name="trade:key")

    async def close(self) -> None:
        if self.fd is None:
            return
        asyncio.get_running_loop().remove_reader(self.fd)
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, STOP_TIMEOUT_S)


async def _show(
    trader: LiveTrader,
    console: Console,
    dashboard: bool,
    interval: float,
    stopping: asyncio.Event,
) -> None:
    if not dashboard:
        next_at = time.monotonic() + interval
        while not stopping.is_set():
            await asyncio.sleep(min(0.25, max(0.0, next_at - time.monotonic())))
            if time.monotonic() >= next_at:
                console.print(plain(trader.view()), soft_wrap=True, highlight=False)
                next_at += interval
        return
    with Live(
        render(trader.view()), console=console, auto_refresh=False, screen=False, transient=False
    ) as live:
        while not stopping.is_set():
            await asyncio.sleep(0.5)
            live.update(render(trader.view()), refresh=True)
