"""Fake Kraken spot WebSocket v2, replaying the recorded v1 capture.

v1 book levels are kept as text and sent as JSON numbers with the same
digits, so the v1 checksums hold for v2 (Kraken computes both on the digits).
Each subscriber gets the changes inside its own depth window; levels that
leave the window are not deleted on the wire (the client truncates), as on
Kraken. Trades get sequential ids per pair, in recorded order.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from tradewind.exchanges.common.book import L2Book
from tradewind.exchanges.common.fake_venue import Client, Entry, Venue, offsets, read_lines
from tradewind.exchanges.kraken.book import kraken_checksum
from tradewind.exchanges.kraken.symbols import v2_name

DEPTHS = (10, 25, 100, 500, 1000)


class _Params(msgspec.Struct):
    channel: str = ""
    symbol: list[str] = []
    depth: int = 10
    snapshot: bool = True


class _Req(msgspec.Struct):
    method: str
    params: _Params = msgspec.field(default_factory=_Params)
    req_id: int | None = None


_req = msgspec.json.Decoder(_Req)


def _ts(sec_micro: str) -> str:
    sec, _, frac = sec_micro.partition(".")
    return (
        datetime.fromtimestamp(int(sec), UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + frac.ljust(6, "0")[:6]
        + "Z"
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(text: str) -> msgspec.Raw:
    return msgspec.Raw(text.encode())


def _levels(book: L2Book, side: str, prices: list[float]) -> list[dict[str, msgspec.Raw]]:
    text = book.text_bids if side == "bids" else book.text_asks
    return [{"price": _num(text[p][0]), "qty": _num(text[p][1])} for p in prices]


class KrakenVenue(Venue):
    name = "kraken"
    formats = ("kraken",)
    ws_prefixes = ("/kraken",)

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.books: dict[str, L2Book] = {}
        self.trades: dict[str, deque[dict[str, Any]]] = {}
        self.trade_ids: dict[str, int] = {}
        self.tickers: dict[str, dict[str, Any]] = {}

    def load_file(self, path: Path) -> list[Entry]:
        msgs = [msgspec.json.decode(line) for line in read_lines(path)]
        stamps = []
        last = 0
        for m in msgs:
            if isinstance(m, list):
                last = max([last, *_stamps(m)])
            stamps.append(last)
        out = []
        for off, m in zip(offsets(stamps), msgs, strict=True):
            if isinstance(m, list):
                out.append(Entry(off, str(m[-2]).partition("-")[0], m))
            elif isinstance(m, dict) and m.get("event") == "heartbeat":
                out.append(Entry(off, "heartbeat", m))
        return out

    # --- replay -----------------------------------------------------------
    def apply(self, entry: Entry) -> None:
        m = entry.data
        if entry.kind == "heartbeat":
            self.broadcast(b'{"channel":"heartbeat"}', lambda c: bool(c.subs))
            return
        pair = v2_name(m[-1])
        if entry.kind == "book":
            self._book(pair, m[1:-2])
        elif entry.kind == "trade":
            self._trades(pair, m[1])
        elif entry.kind == "ticker":
            a, b, c = m[1]["a"], m[1]["b"], m[1]["c"]
            self.tickers[pair] = {
                "symbol": pair,
                "bid": _num(b[0]),
                "bid_qty": _num(b[2]),
                "ask": _num(a[0]),
                "ask_qty": _num(a[2]),
                "last": _num(c[0]),
            }
            frame = msgspec.json.encode(
                {"channel": "ticker", "type": "update", "data": [self.tickers[pair]]}
            )
            self.broadcast(frame, lambda cl: f"ticker:{pair}" in cl.subs)

    def _book(self, pair: str, payloads: list[dict[str, Any]]) -> None:
        book = self.books.get(pair)
        if "as" in payloads[0] or "bs" in payloads[0]:
            book = self.books[pair] = L2Book(1000)
            book.apply_text(
                [(lv[0], lv[1]) for lv in payloads[0].get("bs", [])],
                [(lv[0], lv[1]) for lv in payloads[0].get("as", [])],
            )
            for c in list(self.clients):
                if c.state.get(f"pending:{pair}"):
                    c.state.pop(f"pending:{pair}")
                    self._snapshot(c, pair)
            return
        if book is None:
            return
        windows = {c.state[f"depth:{pair}"] for c in self.clients if f"book:{pair}" in c.subs}
        before = {d: _window(book, d) for d in windows}
        old_text = (
            {
                **{p: t[0] for p, t in book.text_bids.items()},
                **{p: t[0] for p, t in book.text_asks.items()},
            }
            if windows
            else {}
        )
        bids = [(lv[0], lv[1]) for p in payloads for lv in p.get("b", [])]
        asks = [(lv[0], lv[1]) for p in payloads for lv in p.get("a", [])]
        book.apply_text(bids, asks)
        if not windows or self.stalled:
            return
        checksum = kraken_checksum(book)
        touched_b = {float(p) for p, _ in bids}
        touched_a = {float(p) for p, _ in asks}
        frames: dict[int, bytes | None] = {}
        for d in windows:
            (old_b, old_a), (new_b, new_a) = before[d], _window(book, d)
            ub = _changes(book, "bids", old_b, new_b, touched_b, old_text)
            ua = _changes(book, "asks", old_a, new_a, touched_a, old_text)
            if not ub and not ua:
                frames[d] = None
                continue
            frames[d] = msgspec.json.encode(
                {
                    "channel": "book",
                    "type": "update",
                    "data": [
                        {
                            "symbol": pair,
                            "bids": ub,
                            "asks": ua,
                            "checksum": checksum,
                            "timestamp": _now(),
                        }
                    ],
                }
            )
        corrupt = False
        skip = False
        if any(f is not None for f in frames.values()):
            skip = self.take_skip(pair)
            corrupt = not skip and self.take_corrupt(pair)
        if skip:
            return
        for c in list(self.clients):
            if f"book:{pair}" not in c.subs:
                continue
            frame = frames.get(c.state[f"depth:{pair}"])
            if frame is None:
                continue
            if corrupt:
                frame = frame.replace(
                    b'"checksum":%d' % checksum, b'"checksum":%d' % (checksum ^ 1)
                )
            c.send(frame)

    def _trades(self, pair: str, rows: list[list[str]]) -> None:
        out = []
        for r in rows:
            tid = self.trade_ids.get(pair, 0) + 1
            self.trade_ids[pair] = tid
            t = {
                "symbol": pair,
                "side": "buy" if r[3] == "b" else "sell",
                "price": _num(r[0]),
                "qty": _num(r[1]),
                "ord_type": "market" if r[4] == "m" else "limit",
                "trade_id": tid,
                "timestamp": _ts(r[2]),
            }
            self.trades.setdefault(pair, deque(maxlen=50)).append(t)
            out.append(t)
        frame = msgspec.json.encode({"channel": "trade", "type": "update", "data": out})
        self.broadcast(frame, lambda c: f"trade:{pair}" in c.subs)

    # --- protocol ---------------------------------------------------------
    async def on_connect(self, client: Client, path: str, query: dict[str, str]) -> None:
        client.send(
            msgspec.json.encode(
                {
                    "channel": "status",
                    "type": "update",
                    "data": [
                        {
                            "version": "2.0.0",
                            "system": "online",
                            "api_version": "v2",
                            "connection_id": client.id,
                        }
                    ],
                }
            )
        )

    async def on_message(self, client: Client, msg: str | bytes) -> None:
        try:
            req = _req.decode(msg)
        except (msgspec.ValidationError, msgspec.DecodeError):
            client.send(b'{"error":"malformed request","success":false}')
            return
        t_in = _now()
        if req.method == "ping":
            client.send(
                msgspec.json.encode(
                    {"method": "pong", "req_id": req.req_id, "time_in": t_in, "time_out": _now()}
                )
            )
            return
        p = req.params
        if req.method not in ("subscribe", "unsubscribe") or p.channel not in (
            "book",
            "trade",
            "ticker",
        ):
            self._error(client, req, f"unsupported {req.method} {p.channel}")
            return
        if p.channel == "book" and p.depth not in DEPTHS:
            self._error(client, req, "invalid depth")
            return
        for symbol in p.symbol:
            key = f"{p.channel}:{symbol}"
            result: dict[str, Any] = {"channel": p.channel, "symbol": symbol}
            if req.method == "unsubscribe":
                client.subs.discard(key)
            else:
                client.subs.add(key)
                result["snapshot"] = p.snapshot
                if p.channel == "book":
                    client.state[f"depth:{symbol}"] = p.depth
                    result["depth"] = p.depth
            client.send(
                msgspec.json.encode(
                    {
                        "method": req.method,
                        "result": result,
                        "success": True,
                        "time_in": t_in,
                        "time_out": _now(),
                        "req_id": req.req_id,
                    }
                )
            )
            if req.method == "subscribe" and p.snapshot:
                if p.channel == "book":
                    if symbol in self.books:
                        self._snapshot(client, symbol)
                    else:
                        client.state[f"pending:{symbol}"] = True
                elif p.channel == "trade" and self.trades.get(symbol):
                    client.send(
                        msgspec.json.encode(
                            {
                                "channel": "trade",
                                "type": "snapshot",
                                "data": list(self.trades[symbol]),
                            }
                        )
                    )
                elif p.channel == "ticker" and symbol in self.tickers:
                    client.send(
                        msgspec.json.encode(
                            {
                                "channel": "ticker",
                                "type": "snapshot",
                                "data": [self.tickers[symbol]],
                            }
                        )
                    )
        if req.method == "subscribe":
            self.subscribed()

    def _snapshot(self, c: Client, pair: str) -> None:
        book = self.books[pair]
        bids, asks = _window(book, c.state.get(f"depth:{pair}", 10))
        c.send(
            msgspec.json.encode(
                {
                    "channel": "book",
                    "type": "snapshot",
                    "data": [
                        {
                            "symbol": pair,
                            "bids": _levels(book, "bids", bids),
                            "asks": _levels(book, "asks", asks),
                            "checksum": kraken_checksum(book),
                            "timestamp": _now(),
                        }
                    ],
                }
            )
        )

    def _error(self, c: Client, req: _Req, message: str) -> None:
        c.send(
            msgspec.json.encode(
                {
                    "error": message,
                    "method": req.method,
                    "success": False,
                    "req_id": req.req_id,
                    "time_in": _now(),
                    "time_out": _now(),
                }
            )
        )


def _window(book: L2Book, depth: int) -> tuple[list[float], list[float]]:
    return sorted(book.bids, reverse=True)[:depth], sorted(book.asks)[:depth]


def _changes(
    book: L2Book,
    side: str,
    old: list[float],
    new: list[float],
    touched: set[float],
    old_text: dict[float, str],
) -> list[dict[str, msgspec.Raw]]:
    text = book.text_bids if side == "bids" else book.text_asks
    levels = book.bids if side == "bids" else book.asks
    old_set = set(old)
    out = [
        {"price": _num(text[p][0]), "qty": _num(text[p][1])}
        for p in new
        if p not in old_set or p in touched
    ]
    for p in old:
        if p not in levels:
            out.append({"price": _num(old_text.get(p, repr(p))), "qty": _num("0")})
    return out


def _stamps(m: list[Any]) -> list[int]:
    out: list[int] = []
    if not (str(m[-2]).startswith("book") or m[-2] == "trade"):
        return out
    for part in m[1:-2]:
        if isinstance(part, dict):
            for key in ("a", "b", "as", "bs"):
                for lv in part.get(key, []):
                    out.append(_ns(lv[2]))
        elif isinstance(part, list):
            for row in part:
                out.append(_ns(row[2]))
    return out


def _ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)
