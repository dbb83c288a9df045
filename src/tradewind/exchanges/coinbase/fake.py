"""Fake Coinbase Advanced Trade market data: subscribe per channel, per
connection ``sequence_num``, snapshots on subscribe.

The recording lacks the ``l2_data`` snapshots (see SOURCES.md), so the fake's
book per product is what the recorded updates built since the replay began;
its snapshots are consistent with its own updates, which is all a client
can check.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from tradewind.exchanges.coinbase.parser import Rfc3339
from tradewind.exchanges.common.fake_venue import Client, Entry, Venue, offsets, read_lines

SNAPSHOT_TRADES = 100
"""Recent trades per product in a ``market_trades`` snapshot, as recorded."""
CHANNELS = {
    "level2": "l2_data",
    "market_trades": "market_trades",
    "ticker": "ticker",
    "heartbeats": "heartbeats",
    "candles": "candles",
    "ticker_batch": "ticker_batch",
}


class _Sub(msgspec.Struct):
    type: str
    channel: str = ""
    product_ids: list[str] = []


_sub = msgspec.json.Decoder(_Sub)
_encode = msgspec.json.Encoder().encode


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CoinbaseVenue(Venue):
    name = "coinbase"
    formats = ("coinbase",)
    ws_prefixes = ("/coinbase",)

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.books: dict[str, dict[str, dict[str, str]]] = {}
        self.trades: dict[str, deque[dict[str, Any]]] = {}
        self.tickers: dict[str, dict[str, Any]] = {}
        self.received_at: list[float] = []
        self.refusing: set[str] = set()
        """Products whose subscription is answered ``{"type":"error"}`` (a fault)."""

    def load_file(self, path: Path) -> list[Entry]:
        ts = Rfc3339()
        msgs = [msgspec.json.decode(line) for line in read_lines(path)]
        offs = offsets([ts(m.get("timestamp", "")) if m.get("timestamp") else 0 for m in msgs])
        out = []
        for off, m in zip(offs, msgs, strict=True):
            ch = m.get("channel")
            if ch == "subscriptions":
                continue
            if ch == "market_trades" and any(e.get("type") == "snapshot" for e in m["events"]):
                for e in m["events"]:
                    for t in reversed(e.get("trades", [])):
                        self.trades.setdefault(
                            t["product_id"], deque(maxlen=SNAPSHOT_TRADES)
                        ).append(t)
                continue
            if ch == "ticker" and any(e.get("type") == "snapshot" for e in m["events"]):
                for e in m["events"]:
                    for t in e.get("tickers", []):
                        self.tickers[t["product_id"]] = t
                continue
            out.append(Entry(off, ch or "", m))
        return out

    def apply(self, entry: Entry) -> None:
        m = entry.data
        ch = entry.kind
        for e in m["events"]:
            if ch == "l2_data":
                book = self.books.setdefault(e["product_id"], {"bid": {}, "offer": {}})
                for u in e["updates"]:
                    side = book["bid" if u["side"] == "bid" else "offer"]
                    if float(u["new_quantity"]) == 0.0:
                        side.pop(u["price_level"], None)
                    else:
                        side[u["price_level"]] = u["new_quantity"]
            elif ch == "market_trades":
                for t in e.get("trades", []):
                    self.trades.setdefault(t["product_id"], deque(maxlen=SNAPSHOT_TRADES)).append(t)
            elif ch == "ticker":
                for t in e.get("tickers", []):
                    self.tickers[t["product_id"]] = t
        if self.stalled:
            return
        for c in list(self.clients):
            events = self._events_for(c, ch, m["events"])
            if events is None:
                continue
            if ch == "l2_data" and any(self.take_skip(e["product_id"]) for e in events):
                c.seq += 1
                continue
            self._send(c, ch, events)

    def _events_for(
        self, c: Client, ch: str, events: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        subs: dict[str, set[str]] = c.state.setdefault("subs", {})
        if ch == "heartbeats":
            return events if "heartbeats" in subs else None
        products = subs.get(ch)
        if not products:
            return None
        out = []
        for e in events:
            if ch == "l2_data":
                if e["product_id"] in products:
                    out.append(e)
            elif ch == "market_trades":
                trades = [t for t in e.get("trades", []) if t["product_id"] in products]
                if trades:
                    out.append({**e, "trades": trades})
            elif ch in ("ticker", "ticker_batch"):
                tickers = [t for t in e.get("tickers", []) if t["product_id"] in products]
                if tickers:
                    out.append({**e, "tickers": tickers})
            elif ch == "candles":
                candles = [k for k in e.get("candles", []) if k["product_id"] in products]
                if candles:
                    out.append({**e, "candles": candles})
        return out or None

    def _send(self, c: Client, channel: str, events: list[dict[str, Any]]) -> None:
        c.send(
            _encode(
                {
                    "channel": channel,
                    "client_id": "",
                    "timestamp": _now(),
                    "sequence_num": c.seq,
                    "events": events,
                }
            )
        )
        c.seq += 1

    async def on_message(self, client: Client, msg: str | bytes) -> None:
        self.received_at.append(time.monotonic())
        try:
            sub = _sub.decode(msg)
        except (msgspec.ValidationError, msgspec.DecodeError):
            self._send_error(client, "malformed request")
            return
        channel = CHANNELS.get(sub.channel)
        if sub.type not in ("subscribe", "unsubscribe") or channel is None:
            self._send_error(client, f"unsupported {sub.type} {sub.channel}")
            return
        subs: dict[str, set[str]] = client.state.setdefault("subs", {})
        # Coinbase serves -USDC products from the -USD book, under the -USD id.
        products = [p[:-1] if p.endswith("-USDC") else p for p in sub.product_ids]
        refused = [p for p in sub.product_ids if p in self.refusing]
        if refused and sub.type == "subscribe":
            self._send_error(client, f"Failed to subscribe: {', '.join(refused)}")
            products = [p for p in products if p not in self.refusing]
        if sub.type == "unsubscribe":
            subs.get(channel, set()).difference_update(products)
        else:
            subs.setdefault(channel, set()).update(products)
            self._snapshots(client, channel, products)
            self.subscribed()
        listing = {k: sorted(v) for k, v in subs.items() if v or k == "heartbeats"}
        self._send(client, "subscriptions", [{"subscriptions": listing}])

    def _snapshots(self, c: Client, channel: str, products: list[str]) -> None:
        if channel == "l2_data":
            for pid in products:
                book = self.books.get(pid, {"bid": {}, "offer": {}})
                updates = [
                    {"side": side, "event_time": _now(), "price_level": p, "new_quantity": q}
                    for side, rev in (("bid", True), ("offer", False))
                    for p, q in sorted(book[side].items(), key=lambda kv: float(kv[0]), reverse=rev)
                ]
                self._send(
                    c, "l2_data", [{"type": "snapshot", "product_id": pid, "updates": updates}]
                )
        elif channel == "market_trades":
            trades = [t for pid in products for t in reversed(self.trades.get(pid, ()))]
            self._send(c, "market_trades", [{"type": "snapshot", "trades": trades}])
        elif channel == "ticker":
            tickers = [self.tickers[p] for p in products if p in self.tickers]
            self._send(c, "ticker", [{"type": "snapshot", "tickers": tickers}])

    def _send_error(self, c: Client, message: str) -> None:
        c.send(_encode({"type": "error", "message": message}))
