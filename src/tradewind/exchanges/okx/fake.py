"""Fake OKX v5 public WebSocket (``/okx/ws/v5/public``) and the recent-trades
REST endpoint, replaying OKX recordings. A ``books`` subscription starts with
a snapshot of the fake's current book (400 levels, checksummed); recorded
updates follow as sent. ``ping`` is answered ``pong``. Faults: a withheld
book update (a gap only the checksum reveals) and a corrupted checksum."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from tradewind.exchanges.common.fake_http import Request, Response, Router
from tradewind.exchanges.common.fake_venue import (
    Client,
    Entry,
    TextBook,
    Venue,
    offsets,
    read_lines,
)
from tradewind.exchanges.okx.book import checksum_of
from tradewind.exchanges.okx.parser import EXCHANGE

DEPTH = 400


class _Arg(msgspec.Struct):
    channel: str
    instId: str = ""


class _Op(msgspec.Struct):
    op: str
    args: list[_Arg] = []


_op = msgspec.json.Decoder(_Op)
_encode = msgspec.json.Encoder().encode


def _key(channel: str, inst: str) -> str:
    return f"{channel}:{inst}"


class OkxVenue(Venue):
    name = EXCHANGE
    formats = (EXCHANGE,)
    ws_prefixes = ("/okx/ws/v5/public",)

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.books: dict[str, TextBook] = {}
        self.trades: dict[str, deque[dict[str, Any]]] = {}
        self.rest_requests: list[tuple[float, str, str]] = []
        self.pings = 0

    def load_file(self, path: Path) -> list[Entry]:
        msgs = [(line, msgspec.json.decode(line)) for line in read_lines(path) if line != b"pong"]
        msgs = [(line, m) for line, m in msgs if "arg" in m and "data" in m]
        stamps = [int(m["data"][0]["ts"]) * 1_000_000 if m["data"] else 0 for _, m in msgs]
        return [
            Entry(off, _key(m["arg"]["channel"], m["arg"].get("instId", "")), (line, m))
            for off, (line, m) in zip(offsets(stamps), msgs, strict=True)
        ]

    def apply(self, entry: Entry) -> None:
        line, m = entry.data
        channel, _, inst = entry.kind.partition(":")
        if channel == "books":
            for d in m["data"]:
                book = self.books.get(inst)
                if m.get("action") == "snapshot":
                    book = self.books[inst] = TextBook()
                    for c in list(self.clients):
                        c.state.pop(f"pending:{entry.kind}", None)
                elif book is None:
                    return
                book.apply([tuple(x[:2]) for x in d["bids"]], [tuple(x[:2]) for x in d["asks"]])
            if m.get("action") == "update":
                if self.take_skip(inst):
                    return
                if self.take_corrupt(inst):
                    data = [{**d, "checksum": (d.get("checksum") or 0) ^ 1} for d in m["data"]]
                    line = _encode({**m, "data": data})
        elif channel == "trades":
            for t in m["data"]:
                self.trades.setdefault(inst, deque(maxlen=1000)).append(t)
        key = entry.kind
        self.broadcast(line, lambda c: key in c.subs and not c.state.get(f"pending:{key}"))

    async def on_message(self, client: Client, msg: str | bytes) -> None:
        if msg in ("ping", b"ping"):
            self.pings += 1
            client.send("pong")
            return
        try:
            op = _op.decode(msg)
        except (msgspec.ValidationError, msgspec.DecodeError):
            client.send(_encode({"event": "error", "code": "60012", "msg": "Invalid request"}))
            return
        if op.op not in ("subscribe", "unsubscribe"):
            client.send(_encode({"event": "error", "code": "60012", "msg": f"Invalid op {op.op}"}))
            return
        for arg in op.args:
            key = _key(arg.channel, arg.instId)
            if op.op == "unsubscribe":
                client.subs.discard(key)
            else:
                client.subs.add(key)
            ack = {"event": op.op, "arg": {"channel": arg.channel, "instId": arg.instId}}
            client.send(_encode({**ack, "connId": f"fake{client.id}"}))
            if op.op == "subscribe" and arg.channel == "books":
                self._snapshot(client, arg.instId)
        if op.op == "subscribe":
            self.subscribed()

    def _snapshot(self, c: Client, inst: str) -> None:
        book = self.books.get(inst)
        if book is None:
            c.state[f"pending:{_key('books', inst)}"] = True
            return
        bids, asks = book.top(DEPTH)
        data = {
            "asks": [[p, q, "0", "1"] for p, q in asks],
            "bids": [[p, q, "0", "1"] for p, q in bids],
            "ts": str(int(time.time() * 1000)),
            "checksum": checksum_of(bids, asks),
        }
        arg = {"channel": "books", "instId": inst}
        c.send(_encode({"arg": arg, "action": "snapshot", "data": [data]}))

    def routes(self, router: Router) -> None:
        router.add("GET", "/api/v5/market/trades", self._recent_trades)

    async def _recent_trades(self, req: Request) -> Response:
        inst = req.query.get("instId", "")
        self.rest_requests.append((time.monotonic(), req.path, inst))
        limit = max(1, min(int(req.query.get("limit", "100")), 500))
        rows = list(reversed(list(self.trades.get(inst, ()))[-limit:]))
        return Response.json({"code": "0", "msg": "", "data": rows})
