"""Fake Binance spot and USD-M: combined and raw streams, SUBSCRIBE requests,
REST depth snapshots and recent trades, all from the recordings.

The fake keeps each symbol's book from the recorded REST snapshot plus every
later recorded diff, so a snapshot requested at any point of the replay is
consistent with the diffs that follow it, as on the real exchange. A REST
snapshot body names no symbol; one without a name is matched to the symbol
whose diff ids straddle its ``lastUpdateId``.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from tradewind.exchanges.common.fake_http import Request, Response, Router
from tradewind.exchanges.common.fake_venue import (
    Client,
    Entry,
    TextBook,
    Venue,
    merge,
    offsets,
    read_lines,
)

_MS = 1_000_000
MAX_STREAMS = 1024


class _Combined(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _Payload(msgspec.Struct):
    e: str = ""
    E: int = 0
    T: int = 0
    s: str = ""
    U: int = 0
    u: int = 0
    pu: int | None = None
    b: Any = None
    a: Any = None
    t: int = 0
    p: str = ""
    q: str = ""
    m: bool = False


class _Snapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class _Request(msgspec.Struct):
    method: str
    id: int | str | None = None
    params: list[str] = []


_combined = msgspec.json.Decoder(_Combined)
_payload = msgspec.json.Decoder(_Payload)
_snapshot = msgspec.json.Decoder(_Snapshot)
_request = msgspec.json.Decoder(_Request)


def canonical(stream: str) -> str:
    """Diff depth at any speed (``@depth``, ``@depth@100ms``, ``@depth@0ms``) is one
    stream. Only the symbol is case-blind: ``kline_1m`` and ``kline_1M`` differ."""
    sym, _, kind = stream.partition("@")
    if kind == "depth" or kind.startswith("depth@"):
        return f"{sym.lower()}@depth"
    return f"{sym.lower()}@{kind}"


class BinanceVenue(Venue):
    name = "binance"
    formats: tuple[str, ...] = ("binance", "binance-depth-snapshot")
    ws_prefixes: tuple[str, ...] = ("/stream", "/ws")
    rest_prefix = "/api/v3"
    futures = False

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.books: dict[str, TextBook] = {}
        self.trades: dict[str, deque[dict[str, Any]]] = {}
        self._pending_snapshots: list[_Snapshot] = []
        self.rest_requests: list[tuple[float, str, str]] = []

    # --- loading -----------------------------------------------------------
    def load(self, paths: Any) -> None:
        files = list(paths)
        per_file = [self._entries(p) for p in files]
        # A stream recorded in several files plays from the one that holds the most of it.
        owner: dict[str, tuple[int, int]] = {}
        for i, entries in enumerate(per_file):
            counts: dict[str, int] = {}
            for e in entries:
                if e.kind == "stream":
                    counts[e.data[0]] = counts.get(e.data[0], 0) + 1
            for stream, n in counts.items():
                if n > owner.get(stream, (-1, 0))[1]:
                    owner[stream] = (i, n)
        kept = [
            [e for e in entries if e.kind != "stream" or owner[e.data[0]][0] == i]
            for i, entries in enumerate(per_file)
        ]
        self.timeline = merge(kept)
        for snap in self._pending_snapshots:
            self._seed(snap)

    def _entries(self, path: Path) -> list[Entry]:
        raw: list[tuple[int, Entry]] = []
        for line in read_lines(path):
            if line.startswith(b'{"stream"'):
                msg = _combined.decode(line)
                p = _payload.decode(msg.data)
                ts = (p.T or p.E) * _MS
                raw.append((ts, Entry(0, "stream", (msg.stream, line, bytes(msg.data), p))))
            elif b"lastUpdateId" in line[:40]:
                snap = _snapshot.decode(line)
                self._pending_snapshots.append(snap)
        offs = offsets([ts for ts, _ in raw])
        out = []
        for off, (_, e) in zip(offs, raw, strict=True):
            e.offset = off
            out.append(e)
        return out

    def _seed(self, snap: _Snapshot) -> None:
        """Give a recorded snapshot to the symbol whose diffs straddle its id."""
        lid = snap.lastUpdateId
        for e in self.timeline:
            p: _Payload = e.data[3]
            if p.e == "depthUpdate" and (
                p.U <= lid + 1 <= p.u if not self.futures else p.U <= lid <= p.u
            ):
                book = self.books.setdefault(p.s, TextBook())
                if not book.last_id:
                    book.apply(snap.bids, snap.asks)
                    book.last_id = lid
                return

    # --- replay -----------------------------------------------------------
    def apply(self, entry: Entry) -> None:
        stream, line, payload, p = entry.data
        if p.e == "depthUpdate":
            book = self.books.get(p.s)
            if book is not None and p.u > book.last_id:
                assert isinstance(p.b, list)
                assert isinstance(p.a, list)
                book.apply(p.b, p.a)
                book.last_id = p.u
            if self.take_skip(p.s):
                return
        elif p.e == "trade":
            self.trades.setdefault(p.s, deque(maxlen=1000)).append(
                {
                    "id": p.t,
                    "price": p.p,
                    "qty": p.q,
                    "quoteQty": f"{float(p.p) * float(p.q):.8f}",
                    "time": p.T,
                    "isBuyerMaker": p.m,
                    "isBestMatch": True,
                }
            )
        self.broadcast_stream(stream, line, payload)

    def broadcast_stream(self, stream: str, line: bytes, payload: bytes) -> None:
        if self.stalled:
            return
        key = canonical(stream)
        for c in list(self.clients):
            if not self.serves(c, stream):
                continue
            names: dict[str, str] = c.state.setdefault("names", {})
            name = names.get(key)
            if name is None:
                continue
            if not c.state.get("combined"):
                c.send(payload)
            elif name == stream:
                c.send(line)
            else:
                c.send(b'{"stream":"' + name.encode() + b'","data":' + payload + b"}")

    def serves(self, client: Client, stream: str) -> bool:
        """Whether the client's connection path carries this stream (all do here)."""
        return True

    def _subscribe(self, client: Client, streams: list[str]) -> None:
        client.subs.update(streams)
        names: dict[str, str] = client.state.setdefault("names", {})
        for s in streams:
            names[canonical(s)] = s

    def _unsubscribe(self, client: Client, streams: list[str]) -> None:
        client.subs.difference_update(streams)
        names: dict[str, str] = client.state.setdefault("names", {})
        for s in streams:
            names.pop(canonical(s), None)

    # --- protocol ---------------------------------------------------------
    async def on_connect(self, client: Client, path: str, query: dict[str, str]) -> None:
        rest = path.split("?", 1)[0]
        for prefix in self.ws_prefixes:
            if rest.startswith(prefix):
                rest = rest[len(prefix) :]
                break
        client.state["combined"] = path.split("?", 1)[0].endswith("/stream")
        streams = [s for s in query.get("streams", "").split("/") if s]
        if rest.startswith("/") and len(rest) > 1:
            streams += rest[1:].split("/")
        if len(streams) > MAX_STREAMS:
            await client.ws.close(1008, "too many streams")
            return
        if streams:
            self._subscribe(client, streams)
            self.subscribed()

    async def on_message(self, client: Client, msg: str | bytes) -> None:
        try:
            req = _request.decode(msg)
        except (msgspec.ValidationError, msgspec.DecodeError):
            client.send(b'{"code":2,"msg":"Invalid request"}')
            return
        method = req.method.upper()
        if method == "SUBSCRIBE":
            self._subscribe(client, req.params)
            client.send(msgspec.json.encode({"result": None, "id": req.id}))
            self.subscribed()
        elif method == "UNSUBSCRIBE":
            self._unsubscribe(client, req.params)
            client.send(msgspec.json.encode({"result": None, "id": req.id}))
        elif method == "LIST_SUBSCRIPTIONS":
            client.send(msgspec.json.encode({"result": sorted(client.subs), "id": req.id}))
        else:
            client.send(msgspec.json.encode({"code": 1, "msg": "unknown method", "id": req.id}))

    # --- REST -----------------------------------------------------------
    def routes(self, router: Router) -> None:
        router.add("GET", f"{self.rest_prefix}/depth", self._depth)
        router.add("GET", f"{self.rest_prefix}/trades", self._recent_trades)

    def _symbol(self, req: Request) -> str | None:
        symbol = req.query.get("symbol", "").upper()
        return symbol if symbol in self.books or symbol in self.trades else None

    async def _depth(self, req: Request) -> Response:
        self.rest_requests.append((time.monotonic(), req.path, req.query.get("symbol", "")))
        symbol = self._symbol(req)
        book = self.books.get(symbol or "")
        if book is None:
            return Response.json({"code": -1121, "msg": "Invalid symbol."}, 400)
        limit = min(int(req.query.get("limit", "100")), 5000)
        bids, asks = book.top(limit)
        body: dict[str, Any] = {"lastUpdateId": book.last_id}
        if self.futures:
            now = int(time.time() * 1000)
            body |= {"E": now, "T": now}
        body |= {"bids": bids, "asks": asks}
        return Response.json(body)

    async def _recent_trades(self, req: Request) -> Response:
        self.rest_requests.append((time.monotonic(), req.path, req.query.get("symbol", "")))
        symbol = self._symbol(req)
        if symbol is None:
            return Response.json({"code": -1121, "msg": "Invalid symbol."}, 400)
        limit = max(1, min(int(req.query.get("limit", "500")), 1000))
        rows = list(self.trades.get(symbol, ()))[-limit:]
        return Response.json(rows)


class BinanceUsdmVenue(BinanceVenue):
    """USD-M as of 2026: depth and bookTicker on ``/public``, aggTrade and kline
    on ``/market``; the legacy combined URL no longer sends klines (since
    2026-04-23) and the new paths send no ``@trade`` (not a documented USD-M
    stream). Recorded trades are served as aggregate trades of one fill each
    (``a`` = ``f`` = ``l`` = the trade id), on the stream and from
    ``/fapi/v1/aggTrades``."""

    name = "binance-usdm"
    formats = ("binance-usdm",)
    ws_prefixes = (
        "/usdm/public/stream",
        "/usdm/public/ws",
        "/usdm/market/stream",
        "/usdm/market/ws",
        "/usdm/stream",
        "/usdm/ws",
    )
    rest_prefix = "/fapi/v1"
    futures = True
    SERVED: ClassVar[dict[str, frozenset[str]]] = {
        "public": frozenset({"depth", "bookTicker"}),
        "market": frozenset({"aggTrade", "kline"}),
        "legacy": frozenset({"depth", "bookTicker", "aggTrade", "trade"}),
    }

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.aggs: dict[str, deque[dict[str, Any]]] = {}

    async def on_connect(self, client: Client, path: str, query: dict[str, str]) -> None:
        base = path.split("?", 1)[0]
        client.state["path"] = (
            "public"
            if base.startswith("/usdm/public/")
            else "market"
            if base.startswith("/usdm/market/")
            else "legacy"
        )
        await super().on_connect(client, path, query)

    def routes(self, router: Router) -> None:
        super().routes(router)
        router.add("GET", f"{self.rest_prefix}/aggTrades", self._agg_trades)

    def apply(self, entry: Entry) -> None:
        super().apply(entry)
        p = entry.data[3]
        if p.e != "trade":
            return
        agg = {
            "e": "aggTrade",
            "E": p.E,
            "s": p.s,
            "a": p.t,
            "p": p.p,
            "q": p.q,
            "f": p.t,
            "l": p.t,
            "T": p.T,
            "m": p.m,
        }
        self.aggs.setdefault(p.s, deque(maxlen=1000)).append(
            {k: agg[k] for k in ("a", "p", "q", "f", "l", "T", "m")}
        )
        name = f"{p.s.lower()}@aggTrade"
        payload = msgspec.json.encode(agg)
        line = b'{"stream":"' + name.encode() + b'","data":' + payload + b"}"
        self.broadcast_stream(name, line, payload)

    def serves(self, client: Client, stream: str) -> bool:
        kind = stream.partition("@")[2].split("@")[0].split("_")[0]
        return kind in self.SERVED[client.state.get("path", "legacy")]

    async def _agg_trades(self, req: Request) -> Response:
        self.rest_requests.append((time.monotonic(), req.path, req.query.get("symbol", "")))
        symbol = req.query.get("symbol", "").upper()
        if symbol not in self.aggs and symbol not in self.books:
            return Response.json({"code": -1121, "msg": "Invalid symbol."}, 400)
        limit = max(1, min(int(req.query.get("limit", "500")), 1000))
        return Response.json(list(self.aggs.get(symbol, ()))[-limit:])


class BinanceCoinmVenue(BinanceVenue):
    name = "binance-coinm"
    formats = ("binance-coinm",)
    ws_prefixes = ("/coinm/stream", "/coinm/ws")
    rest_prefix = "/dapi/v1"
    futures = True
