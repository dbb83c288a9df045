"""``tradewind fake-exchange``: the fake exchange as a process, for demos and
for running the distributed stack without reaching a real exchange."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from tradewind.cli import app
from tradewind.cli.common import parse_speed
from tradewind.cli.errors import RunFailed, one_line_errors
from tradewind.runtime.loop import run_async


@app.command("fake-exchange")
@one_line_errors
def fake_exchange_command(
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="ADDRESS", help="Address to listen on."
    ),
    port: int = typer.Option(
        9443, "--port", min=0, max=65535, metavar="PORT", help="Port for WebSocket and REST."
    ),
    data: list[Path] = typer.Option(  # noqa: B008
        None,
        "--data",
        exists=True,
        metavar="PATH",
        help="Recording files or directories to replay.",
    ),
    speed: str = typer.Option(
        "1",
        "--speed",
        metavar="FACTOR|max",
        help="1 = real time, 10 = ten times faster, max = no pauses.",
    ),
    exchange: list[str] = typer.Option(  # noqa: B008
        None,
        "--exchange",
        "-e",
        metavar="VENUE",
        help="Venues to serve (default: every recorded one).",
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        "-f",
        metavar="FORMAT",
        help="Format of every --data file; default: detected.",
    ),
) -> None:
    """Serve recorded market data over each exchange's real protocol, with faults
    on command (POST /_fake/control) and status at GET /_fake/status."""
    from tradewind.cli.common import settings_or_exit
    from tradewind.exchanges.fake import FakeExchange
    from tradewind.observability.logging import configure_logging

    configure_logging(settings_or_exit(), console=True)
    try:
        fake = FakeExchange(
            list(data) if data else None,
            host=host,
            port=port,
            speed=parse_speed(speed),
            exchanges=list(exchange) if exchange else None,
            fmt=fmt,
        )
    except ValueError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await fake.start()
        except OSError as exc:
            raise RunFailed(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another port"
            ) from None
        try:
            for name, url in fake.ws_urls().items():
                typer.echo(f"{name}: ws {url}  rest {fake.rest_urls()[name]}")
            await stopping.wait()
        finally:
            await fake.stop()

    run_async(serve())
