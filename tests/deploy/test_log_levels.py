"""debug does not log WebSocket frames; trace, off by default, does."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tradewind.config import load_settings
from tradewind.observability.logging import configure_logging


@contextlib.contextmanager
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    ws_level = logging.getLogger("websockets").level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("websockets").setLevel(ws_level)


async def _one_exchange() -> None:
    async def echo(conn: ServerConnection) -> None:
        async for msg in conn:
            await conn.send(msg)

    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send('{"frame": "marker-frame"}')
            await asyncio.wait_for(ws.recv(), 5)


@pytest.mark.parametrize(("level", "frames"), [("debug", False), ("trace", True), ("info", False)])
def test_frames_only_at_trace(level: str, frames: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    with _restore_logging():
        configure_logging(load_settings(log_level=level, log_json=True))
        asyncio.run(_one_exchange())
    assert ("marker-frame" in err.getvalue()) == frames, err.getvalue()[-2000:]


def test_trace_is_not_the_default() -> None:
    assert load_settings().log_level == "info"
