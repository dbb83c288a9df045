"""Render the ``tradewind trade`` dashboard headless for the docs.

Runs the trader in this process against ``tradewind fake-exchange`` (the
bundled recording at 20x, in a process of its own), then writes what the
dashboard shows at the end as SVG and as text (rich's own export; no
terminal needed):

    .venv/bin/python scripts/dashboard_screenshot.py docs/img/trade-dashboard
"""

from __future__ import annotations

import asyncio
import io
import socket
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from tradewind.cli.dashboard import render
from tradewind.config import load_settings
from tradewind.runtime.loop import run_async
from tradewind.runtime.trade import LiveTrader


async def capture(out: Path, seconds: float) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tradewind", "fake-exchange", "--port", str(port)],
        *["--speed", "20", "--exchange", "binance"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(2)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            settings = load_settings(
                feed={
                    "source": "live",
                    "ws_urls": {"binance": f"ws://127.0.0.1:{port}"},
                    "rest_urls": {"binance": f"http://127.0.0.1:{port}"},
                },
                store={"url": f"sqlite:///{Path(tmp) / 'shot.db'}"},
                strategy={
                    "name": "ema_cross",
                    "params": {"fast": 3, "slow": 8, "bar_interval_s": 1},
                },
            )
            trader = LiveTrader(settings)
            await trader.start()
            try:
                await asyncio.sleep(seconds)
                view = trader.view()
            finally:
                await trader.stop()
        finally:
            fake.terminate()
            await fake.wait()
    console = Console(record=True, width=150, file=io.StringIO(), force_terminal=True)
    console.print(render(view))
    console.save_svg(str(out.with_suffix(".svg")), title="tradewind trade (paper)", clear=False)
    console.save_text(str(out.with_suffix(".txt")))


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "trade-dashboard")
    run_async(capture(target, float(sys.argv[2]) if len(sys.argv) > 2 else 12.0))
