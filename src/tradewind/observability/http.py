"""The one HTTP port of a service process: ``/livez``, ``/readyz``, ``/metrics``.

A few lines on ``asyncio.start_server`` instead of a web framework: three
GET routes need no more, and the probe must keep answering while the service
is busy, so every read and write is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

Check = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]

_TIMEOUT_S = 5.0
_MAX_HEADER = 16 * 1024


class HealthServer:
    """``live`` says whether the process should be restarted; ``ready`` whether
    it should receive work (both return a verdict and details for people)."""

    def __init__(self, host: str, port: int, live: Check, ready: Check) -> None:
        self.host = host
        self.port = port
        self.live = live
        self.ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=_MAX_HEADER
        )
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), _TIMEOUT_S)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TIMEOUT_S)
            method, path = _request_line(head)
            status, ctype, body = await self._route(method, path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await asyncio.wait_for(writer.drain(), _TIMEOUT_S)
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), _TIMEOUT_S)

    async def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        if path in ("/livez", "/readyz"):
            check = self.live if path == "/livez" else self.ready
            try:
                ok, detail = await asyncio.wait_for(check(), _TIMEOUT_S)
            except TimeoutError:
                ok, detail = False, {"check": "timed out"}
            body = json.dumps({"ok": ok, **detail}, sort_keys=True).encode() + b"\n"
            status = "200 OK" if ok else "503 Service Unavailable"
            return status, "application/json", body
        return "404 Not Found", "text/plain", b"not found\n"


def _request_line(head: bytes) -> tuple[str, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3:
        return "", ""
    return parts[0], parts[1]
