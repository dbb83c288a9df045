"""Fake Bybit v5 public streams (spot and linear) and the recent-trade REST
endpoint. A subscription to ``orderbook.*`` or ``tickers.*`` starts with a
snapshot of the fake's current state; recorded deltas follow as sent."""

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


class _Op(msgspec.Struct):
    op: str
    args: list[str] = []
    req_id: str | None = None


_op = msgspec.json.Decoder(_Op)
_encode = msgspec.json.Encoder().encode


class BybitVenue(Venue):
    name = "bybit"
    formats = ("bybit",)
    ws_prefixes = ("/bybit/v5/public/spot",)
    category = "spot"

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.books: dict[str, TextBook] = {}
        self.book_meta: dict[str, tuple[int, int, str]] = {}
        self.tickers: dict[str, dict[str, Any]] = {}
        self.trades: dict[str, deque[dict[str, Any]]] = {}
        self.rest_requests: list[tuple[float, str, str]] = []

    def load_file(self, path: Path) -> list[Entry]:
        msgs = [(line, msgspec.json.decode(line)) for line in read_lines(path)]
        msgs = [(line, m) for line, m in msgs if "topic" in m]
        out = []
        for off, (line, m) in zip(
            offsets([m.get("ts", 0) * 1_000_000 for _, m in msgs]), msgs, strict=True
        ):
            out.append(Entry(off, m["topic"], (line, m)))
        return out

    def apply(self, entry: Entry) -> None:
        line, m = entry.data
        topic: str = entry.kind
        kind = topic.partition(".")[0]
        if kind == "orderbook":
            d = m["data"]
            symbol = d["s"]
            book = self.books.get(symbol)
            if m["type"] == "snapshot" or book is None:
                if m["type"] != "snapshot":
                    return
                book = self.books[symbol] = TextBook()
                for c in list(self.clients):
                    c.state.pop(f"pending:{topic}", None)
            book.apply(d["b"], d["a"])
            book.last_id = d["u"]
            self.book_meta[symbol] = (d["u"], d.get("seq", 0), topic)
            if m["type"] == "delta" and self.take_skip(symbol):
                return
        elif kind == "tickers":
            symbol = m["data"]["symbol"]
            if m["type"] == "snapshot":
                self.tickers[symbol] = dict(m["data"])
            elif symbol in self.tickers:
                self.tickers[symbol].update(m["data"])
        elif kind == "publicTrade":
            for t in m["data"]:
                self.trades.setdefault(t["s"], deque(maxlen=1000)).append(t)
        self.broadcast(line, lambda c: topic in c.subs and not c.state.get(f"pending:{topic}"))

    async def on_message(self, client: Client, msg: str | bytes) -> None:
        try:
            op = _op.decode(msg)
        except (msgspec.ValidationError, msgspec.DecodeError):
            client.send(_encode({"success": False, "ret_msg": "invalid request", "op": ""}))
            return
        conn = f"fake-{client.id}"
        if op.op == "ping":
            client.send(
                _encode(
                    {
                        "success": True,
                        "ret_msg": "pong",
                        "conn_id": conn,
                        "req_id": op.req_id or "",
                        "op": "ping",
                    }
                )
            )
            return
        if op.op not in ("subscribe", "unsubscribe"):
            client.send(
                _encode(
                    {
                        "success": False,
                        "ret_msg": f"unknown op {op.op}",
                        "conn_id": conn,
                        "op": op.op,
                    }
                )
            )
            return
        if op.op == "subscribe" and self.category == "spot" and len(op.args) > 10:
            client.send(
                _encode(
                    {
                        "success": False,
                        "ret_msg": "args size >10",
                        "conn_id": conn,
                        "req_id": op.req_id or "",
                        "op": op.op,
                    }
                )
            )
            return
        if op.op == "unsubscribe":
            client.subs.difference_update(op.args)
        else:
            client.subs.update(op.args)
        client.send(
            _encode(
                {
                    "success": True,
                    "ret_msg": "subscribe" if op.op == "subscribe" else "",
                    "conn_id": conn,
                    "req_id": op.req_id or "",
                    "op": op.op,
                }
            )
        )
        if op.op == "subscribe":
            for topic in op.args:
                self._snapshot(client, topic)
            self.subscribed()

    def _snapshot(self, c: Client, topic: str) -> None:
        kind, _, rest = topic.partition(".")
        symbol = rest.rpartition(".")[2]
        now = int(time.time() * 1000)
        if kind == "orderbook":
            book = self.books.get(symbol)
            if book is None:
                c.state[f"pending:{topic}"] = True
                return
            depth = int(rest.partition(".")[0])
            bids, asks = book.top(depth)
            u, seq, _ = self.book_meta[symbol]
            c.send(
                _encode(
                    {
                        "topic": topic,
                        "type": "snapshot",
                        "ts": now,
                        "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": seq},
                        "cts": now,
                    }
                )
            )
        elif kind == "tickers" and symbol in self.tickers:
            c.send(
                _encode(
                    {
                        "topic": topic,
                        "type": "snapshot",
                        "ts": now,
                        "cs": 0,
                        "data": self.tickers[symbol],
                    }
                )
            )

    def routes(self, router: Router) -> None:
        router.add("GET", "/v5/market/recent-trade", self._recent_trades)

    async def _recent_trades(self, req: Request) -> Response:
        if req.query.get("category") != self.category:
            other = self.server.venues.get("bybit-linear" if self.category == "spot" else "bybit")
            if isinstance(other, BybitVenue) and req.query.get("category") == other.category:
                return await other._recent_trades(req)
            return Response.json({"retCode": 10001, "retMsg": "invalid category"})
        self.rest_requests.append((time.monotonic(), req.path, req.query.get("symbol", "")))
        symbol = req.query.get("symbol", "")
        limit = max(1, min(int(req.query.get("limit", "60")), 1000))
        rows = [
            {
                "execId": t["i"],
                "symbol": t["s"],
                "price": t["p"],
                "size": t["v"],
                "side": t["S"],
                "time": str(t["T"]),
                "isBlockTrade": t.get("BT", False),
            }
            for t in reversed(list(self.trades.get(symbol, ()))[-limit:])
        ]
        return Response.json(
            {
                "retCode": 0,
                "retMsg": "OK",
                "result": {"category": self.category, "list": rows},
                "retExtInfo": {},
                "time": int(time.time() * 1000),
            }
        )


class BybitLinearVenue(BybitVenue):
    name = "bybit-linear"
    formats = ("bybit-linear",)
    ws_prefixes = ("/bybit/v5/public/linear",)
    category = "linear"

    def routes(self, router: Router) -> None:
        """Shares the spot venue's route, which dispatches on ``category``."""
        if "bybit" not in self.server.venues:
            super().routes(router)
