"""The fake exchange's HTTP side: a route registry and a small HTTP/1.1 server.

Routes are registered per method and path (``router.add("GET", "/api/v3/depth",
handler)``), so other modules (order endpoints, user data streams) plug in
without touching this one. Bodies need ``Content-Length``; that is all the
exchange clients we test ever send. Only for 127.0.0.1 tests and demos.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
READ_TIMEOUT_S = 30.0

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    client: str = ""

    @classmethod
    def parse_head(cls, head: bytes) -> Request:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError("bad request line")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("bad header line")
            headers[name.strip().lower()] = value.strip()
        split = urlsplit(parts[1])
        return cls(
            method=parts[0].upper(),
            target=parts[1],
            headers=headers,
            path=split.path or "/",
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
        )

    def form(self) -> dict[str, str]:
        """Query and ``application/x-www-form-urlencoded`` body merged (Binance style)."""
        out = dict(self.query)
        if self.body:
            out.update(parse_qsl(self.body.decode(errors="replace"), keep_blank_values=True))
        return out

    @property
    def is_websocket(self) -> bool:
        return self.headers.get("upgrade", "").lower() == "websocket"


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    close: bool = False
    """Close the connection after this response (a body cut short says so)."""

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data, separators=(",", ":")).encode(), headers or {})

    @classmethod
    def raw_json(cls, body: bytes, status: int = 200) -> Response:
        return cls(status, body)

    def encode(self, keep_alive: bool) -> bytes:
        head = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}"]
        hdrs = {
            "Content-Type": self.content_type,
            "Content-Length": str(len(self.body)),
            "Connection": "keep-alive" if keep_alive else "close",
            **self.headers,
        }
        head += [f"{k}: {v}" for k, v in hdrs.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Exact-path routes, plus prefix routes for paths with ids in them."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._prefix: list[tuple[str, str, Handler]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._exact[(method.upper(), path)] = handler

    def add_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        self._prefix.append((method.upper(), prefix, handler))
        self._prefix.sort(key=lambda r: -len(r[1]))

    def paths(self) -> list[str]:
        return sorted({p for _, p in self._exact} | {p + "*" for _, p, _ in self._prefix})

    async def dispatch(self, req: Request) -> Response:
        handler = self._exact.get((req.method, req.path))
        if handler is None:
            for method, prefix, h in self._prefix:
                if method == req.method and req.path.startswith(prefix):
                    handler = h
                    break
        if handler is None:
            known = any(p == req.path for _, p in self._exact)
            status = 405 if known else 404
            return Response.json({"code": -1, "msg": f"{req.method} {req.path}"}, status)
        try:
            return await handler(req)
        except (ValueError, KeyError) as exc:
            return Response.json({"code": -1100, "msg": f"bad parameter: {exc}"}, 400)


async def read_request(reader: asyncio.StreamReader) -> tuple[Request, bytes] | None:
    """The next request head (and its raw bytes), or None at a clean end."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ValueError("truncated request") from None
        return None
    except asyncio.LimitOverrunError:
        raise ValueError("request head too large") from None
    return Request.parse_head(head), head


async def read_body(reader: asyncio.StreamReader, req: Request) -> None:
    if req.headers.get("transfer-encoding", "").lower() == "chunked":
        raise LengthRequired
    length = int(req.headers.get("content-length", "0") or 0)
    if length < 0 or length > MAX_BODY:
        raise ValueError("body too large")
    if length:
        req.body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S)


class LengthRequired(Exception):
    pass
