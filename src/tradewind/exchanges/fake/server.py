"""The fake exchange: every venue's WebSocket protocol and REST endpoints on
one 127.0.0.1 port, replaying the recordings, with faults on command.

One front listener reads each request head: a WebSocket upgrade is spliced
byte for byte to an internal ``websockets`` server (so the WebSocket side is
the real library, pings and close codes included), anything else is answered
by the route registry, which other modules extend (``router.add``,
``add_ws_route``). Faults are methods here and the same under
``POST /_fake/control``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import structlog
from websockets.asyncio.server import Server, ServerConnection, serve

from tradewind.exchanges.binance.fake import BinanceCoinmVenue, BinanceUsdmVenue, BinanceVenue
from tradewind.exchanges.binance.fake_history import BinanceHistory
from tradewind.exchanges.binance.fake_rest_history import BinanceRestHistory
from tradewind.exchanges.bybit.fake import BybitLinearVenue, BybitVenue
from tradewind.exchanges.bybit.fake_rest_history import BybitRestHistory
from tradewind.exchanges.coinbase.fake import CoinbaseVenue
from tradewind.exchanges.coinbase.fake_rest_history import CoinbaseRestHistory
from tradewind.exchanges.common.fake_http import (
    LengthRequired,
    Request,
    Response,
    Router,
    read_body,
    read_request,
)
from tradewind.exchanges.common.fake_venue import Venue
from tradewind.exchanges.kraken.fake import KrakenVenue
from tradewind.exchanges.kraken.fake_rest_history import KrakenRestHistory
from tradewind.exchanges.okx.fake import OkxVenue
from tradewind.exchanges.okx.fake_rest_history import OkxRestHistory

log = structlog.get_logger("tradewind.fake")

WsHandler = Callable[[ServerConnection, str, dict[str, str]], Awaitable[None]]
VENUES: tuple[type[Venue], ...] = (
    BinanceVenue,
    BinanceUsdmVenue,
    BinanceCoinmVenue,
    CoinbaseVenue,
    KrakenVenue,
    BybitVenue,
    BybitLinearVenue,
    OkxVenue,
)
WS_PATHS = {
    "binance": "",
    "binance-usdm": "/usdm",
    "binance-coinm": "/coinm",
    "coinbase": "/coinbase",
    "kraken": "/kraken/v2",
    "bybit": "/bybit/v5/public/spot",
    "bybit-linear": "/bybit/v5/public/linear",
    "okx": "/okx/ws/v5/public",
}


class _Control(msgspec.Struct):
    action: str
    exchange: str | None = None
    symbol: str | None = None
    count: int = 1
    seconds: float = 0.0


class FakeExchange:
    """``speed`` paces the replay by exchange time (0 = as fast as possible);
    with ``autostart`` a venue's replay starts at its first subscription."""

    def __init__(
        self,
        data: Path | list[Path] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        autostart: bool = True,
        exchanges: list[str] | None = None,
        fmt: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.speed = speed
        self.autostart = autostart
        self.router = Router()
        self._ws_routes: list[tuple[str, WsHandler, Callable[[str], bool] | None]] = []
        self.venues: dict[str, Venue] = {}
        self._front: asyncio.Server | None = None
        self._ws: Server | None = None
        self._ws_port = 0
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.blackholed_until = 0.0
        files = _files(data)
        from tradewind.exchanges.formats import check_readable, detect_format

        by_format: dict[str, list[Path]] = {}
        for f in files:
            by_format.setdefault(check_readable(fmt) if fmt else detect_format(f), []).append(f)
        for cls in VENUES:
            if exchanges is not None and cls.name not in exchanges:
                continue
            venue = cls(self)
            venue.load([p for fmt in cls.formats for p in by_format.get(fmt, [])])
            self.venues[cls.name] = venue
            venue.routes(self.router)
            for prefix in cls.ws_prefixes:
                self.add_ws_route(prefix, venue.serve)
        self.history = BinanceHistory(
            [p for fmt in BinanceVenue.formats for p in by_format.get(fmt, [])]
            if "binance" in self.venues
            else []
        )
        self.history.routes(self.router)
        self.rest_history = BinanceRestHistory(self.history)
        self.rest_history.routes(self.router)
        self.okx_history = OkxRestHistory(
            [p for fmt in OkxVenue.formats for p in by_format.get(fmt, [])]
            if "okx" in self.venues
            else []
        )
        self.okx_history.routes(self.router)
        self.bybit_history = BybitRestHistory(
            [p for fmt in BybitVenue.formats for p in by_format.get(fmt, [])]
            if "bybit" in self.venues
            else []
        )
        self.bybit_history.routes(self.router)
        self.kraken_history = KrakenRestHistory(
            [p for fmt in KrakenVenue.formats for p in by_format.get(fmt, [])]
            if "kraken" in self.venues
            else []
        )
        self.kraken_history.routes(self.router)
        self.coinbase_history = CoinbaseRestHistory(
            [p for fmt in CoinbaseVenue.formats for p in by_format.get(fmt, [])]
            if "coinbase" in self.venues
            else []
        )
        self.coinbase_history.routes(self.router)
        self.router.add("POST", "/_fake/control", self._control_route)
        self.router.add("GET", "/_fake/status", self._status_route)

    def add_ws_route(
        self, prefix: str, handler: WsHandler, match: Callable[[str], bool] | None = None
    ) -> None:
        """Longest prefix first; ``match`` (given the path) can decline a path."""
        self._ws_routes.append((prefix, handler, match))
        self._ws_routes.sort(key=lambda r: -len(r[0]))

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        self._ws = await serve(
            self._on_ws,
            "127.0.0.1",
            0,
            ping_interval=20,
            ping_timeout=20,
            max_size=2**20,
            compression=None,
        )
        self._ws_port = self._ws.sockets[0].getsockname()[1]
        self._front = await asyncio.start_server(
            self._on_client, self.host, self.port, limit=64 * 1024
        )
        self.port = self._front.sockets[0].getsockname()[1]
        log.info("fake exchange listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        for venue in self.venues.values():
            await venue.stop()
        if self._front is not None:
            self._front.close()
        for w in list(self._writers):
            if w.transport is not None:
                w.transport.abort()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=5)
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
        if self._front is not None:
            await self._front.wait_closed()

    async def __aenter__(self) -> FakeExchange:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- URLs for settings -------------------------------------------------
    def ws_urls(self) -> dict[str, str]:
        return {name: f"ws://{self.host}:{self.port}{WS_PATHS[name]}" for name in self.venues}

    def rest_urls(self) -> dict[str, str]:
        return {name: f"http://{self.host}:{self.port}" for name in self.venues}

    # --- faults -----------------------------------------------------------
    def _targets(self, exchange: str | None) -> list[Venue]:
        if exchange is None:
            return list(self.venues.values())
        if exchange not in self.venues:
            raise KeyError(exchange)
        return [self.venues[exchange]]

    def drop(self, exchange: str | None = None) -> int:
        """Abort every connection (of one venue): the client sees no close frame."""
        return sum(v.drop() for v in self._targets(exchange))

    def stall(self, seconds: float, exchange: str | None = None) -> None:
        """Stop sending data (pings are still answered) for ``seconds``."""
        for v in self._targets(exchange):
            v.stalled_until = time.monotonic() + seconds

    def blackhole(self, seconds: float) -> None:
        """Forward no byte either way for ``seconds`` on every WebSocket, pongs
        included: the client's keepalive must notice."""
        self.blackholed_until = time.monotonic() + seconds

    def skip(self, count: int = 1, exchange: str | None = None, symbol: str | None = None) -> None:
        """Withhold the next ``count`` book messages: a sequence gap downstream."""
        for v in self._targets(exchange):
            v.skip_books += count
            v.skip_symbol = symbol

    def corrupt_checksum(
        self, count: int = 1, exchange: str | None = None, symbol: str | None = None
    ) -> None:
        for v in self._targets(exchange):
            v.corrupt_next += count
            v.corrupt_symbol = symbol

    def garbage(self, count: int = 1, exchange: str | None = None) -> int:
        return sum(v.garbage(count) for v in self._targets(exchange))

    def pause(self, exchange: str | None = None) -> None:
        """Hold the replay (unlike ``stall``, nothing is skipped meanwhile)."""
        for v in self._targets(exchange):
            v.pause()

    def resume(self, exchange: str | None = None) -> None:
        for v in self._targets(exchange):
            v.resume()

    def start_replay(self, exchange: str | None = None) -> None:
        for v in self._targets(exchange):
            v.start()

    async def wait_done(self, exchange: str | None = None, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            for v in self._targets(exchange):
                await v.done.wait()

    def status(self) -> dict[str, Any]:
        return {name: v.status() for name, v in self.venues.items()}

    async def _control_route(self, req: Request) -> Response:
        try:
            cmd = msgspec.json.decode(req.body or b"{}", type=_Control)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return Response.json({"ok": False, "error": str(exc)}, 400)
        try:
            result: Any = None
            if cmd.action == "drop":
                result = self.drop(cmd.exchange)
            elif cmd.action == "stall":
                self.stall(cmd.seconds, cmd.exchange)
            elif cmd.action == "blackhole":
                self.blackhole(cmd.seconds)
            elif cmd.action == "skip":
                self.skip(cmd.count, cmd.exchange, cmd.symbol)
            elif cmd.action == "corrupt_checksum":
                self.corrupt_checksum(cmd.count, cmd.exchange, cmd.symbol)
            elif cmd.action == "garbage":
                result = self.garbage(cmd.count, cmd.exchange)
            elif cmd.action == "pause":
                self.pause(cmd.exchange)
            elif cmd.action == "resume":
                self.resume(cmd.exchange)
            elif cmd.action == "start":
                self.start_replay(cmd.exchange)
            else:
                return Response.json({"ok": False, "error": f"unknown action {cmd.action}"}, 400)
        except KeyError:
            return Response.json({"ok": False, "error": f"unknown exchange {cmd.exchange}"}, 404)
        return Response.json({"ok": True, "result": result})

    async def _status_route(self, req: Request) -> Response:
        return Response.json(self.status())

    # --- connections ----------------------------------------------------
    async def _on_ws(self, ws: ServerConnection) -> None:
        target = ws.request.path if ws.request is not None else "/"
        split = urlsplit(target)
        path, query = split.path, dict(parse_qsl(split.query))
        for prefix, handler, match in self._ws_routes:
            if path.startswith(prefix) and (match is None or match(path)):
                await handler(ws, target, query)
                return
        await ws.close(1008, f"no stream at {path}")

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self._writers.add(writer)
        try:
            await self._serve_client(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._conns.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        while True:
            try:
                got = await read_request(reader)
            except ValueError as exc:
                writer.write(Response.json({"msg": str(exc)}, 400).encode(False))
                await writer.drain()
                return
            if got is None:
                return
            req, head = got
            req.client = str(peer[0]) if peer else ""
            if req.is_websocket:
                await self._splice(head, reader, writer)
                return
            try:
                await read_body(reader, req)
            except LengthRequired:
                writer.write(Response.json({"msg": "length required"}, 411).encode(False))
                await writer.drain()
                return
            resp = await self.router.dispatch(req)
            keep = req.headers.get("connection", "").lower() != "close" and not resp.close
            writer.write(resp.encode(keep))
            await writer.drain()
            if not keep:
                return

    async def _splice(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._ws_port)
        up_writer.write(head)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    hold = self.blackholed_until - time.monotonic()
                    if hold > 0:
                        await asyncio.sleep(hold)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                transport = dst.transport
                if transport is not None and not transport.is_closing():
                    if src is up_reader:
                        transport.abort()
                    else:
                        transport.close()

        try:
            a = asyncio.create_task(pump(reader, up_writer))
            b = asyncio.create_task(pump(up_reader, writer))
            try:
                await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (a, b):
                    t.cancel()
                for t in (a, b):
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        finally:
            up_writer.close()


def _files(data: Path | list[Path] | None) -> list[Path]:
    if data is None:
        from tradewind.exchanges.replay import bundled_recording

        return [bundled_recording()]
    paths = data if isinstance(data, list) else [data]
    out: list[Path] = []
    for p in paths:
        out += sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    return out
