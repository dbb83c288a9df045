"""Binance spot and USD-M market data messages → Tradewind events.

Frames are decoded in two typed passes (wrapper, then payload by stream kind)
with msgspec, so a malformed or unknown frame costs one failed decode and
raises ``ParseError`` with a reason; it never raises anything else.
"""

from __future__ import annotations

import math

import msgspec

from tradewind.events import Bar, BookDelta, MarketEvent, Quote, Side, Trade
from tradewind.exchanges.errors import ParseError

EXCHANGE = "binance"
_MS = 1_000_000


class _Combined(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _Trade(msgspec.Struct):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    E: int = 0


class _AggTrade(msgspec.Struct):
    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool
    E: int = 0


class _BookTicker(msgspec.Struct):
    s: str
    b: str
    B: str
    a: str
    A: str
    u: int = 0
    E: int = 0
    T: int = 0


class _Depth(msgspec.Struct):
    s: str
    E: int
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    pu: int | None = None
    T: int = 0


class _Snapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    E: int = 0
    T: int = 0


class _Kline(msgspec.Struct):
    t: int
    T: int
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741
    v: str
    n: int
    x: bool


class _KlineMsg(msgspec.Struct):
    E: int
    s: str
    k: _Kline


_combined = msgspec.json.Decoder(_Combined)
_trade = msgspec.json.Decoder(_Trade)
_agg = msgspec.json.Decoder(_AggTrade)
_ticker = msgspec.json.Decoder(_BookTicker)
_depth = msgspec.json.Decoder(_Depth)
_snapshot = msgspec.json.Decoder(_Snapshot)
_kline = msgspec.json.Decoder(_KlineMsg)

_INTERVALS = {
    "1s": 1,
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
}


def price(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ParseError("invalid_price", text[:40]) from None
    if not (v > 0.0 and math.isfinite(v)):
        raise ParseError("invalid_price", text[:40])
    return v


def quantity(text: str, *, allow_zero: bool = True) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ParseError("invalid_qty", text[:40]) from None
    if not math.isfinite(v) or v < 0.0 or (v == 0.0 and not allow_zero):
        raise ParseError("invalid_qty", text[:40])
    return v


def _levels(raw: list[tuple[str, str]]) -> list[tuple[float, float]]:
    return [(price(p), quantity(q)) for p, q in raw]


class BinanceParser:
    """Stateful only in what the protocol leaves implicit: the time of spot
    ``bookTicker`` frames (they carry none) and the symbol of a REST depth
    snapshot (the body does not name it)."""

    def __init__(self, exchange: str = EXCHANGE, default_symbol: str | None = None) -> None:
        self.exchange = exchange
        self.last_ts_ms = 0
        self.default_symbol = default_symbol

    def parse(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent]:
        if frame[:1] not in (b"{", "{"):
            raise ParseError("malformed_json", "a Binance frame is a JSON object")
        try:
            if (
                b'"stream"' in frame[:12] if isinstance(frame, bytes) else '"stream"' in frame[:12]
            ):
                msg = _combined.decode(frame)
                return self._dispatch(msg.stream, msg.data, ts_recv)
            return self._dispatch("", frame, ts_recv)
        except msgspec.ValidationError as exc:
            raise ParseError("invalid_message", str(exc)[:200]) from None
        except msgspec.DecodeError as exc:
            raise ParseError("malformed_json", str(exc)[:200]) from None

    def _dispatch(
        self, stream: str, data: bytes | str | msgspec.Raw, ts_recv: int
    ) -> list[MarketEvent]:
        kind = stream.rpartition("@")[2] if stream else ""
        if kind == "trade":
            return [self._trade(_trade.decode(data), ts_recv)]
        if kind == "bookTicker":
            return [self._quote(_ticker.decode(data), ts_recv)]
        if kind.startswith("depth") or kind.endswith("ms"):
            return [self._depth(_depth.decode(data), ts_recv)]
        if kind == "aggTrade":
            return [self._agg(_agg.decode(data), ts_recv)]
        if kind.startswith("kline"):
            bar = self._bar(_kline.decode(data), ts_recv)
            return [bar] if bar is not None else []
        if not stream:
            raw = bytes(data) if isinstance(data, msgspec.Raw) else data
            head = raw[:40]
            if (b"lastUpdateId" in head) if isinstance(head, bytes) else ("lastUpdateId" in head):
                return [self._snap(_snapshot.decode(raw), ts_recv)]
            if (b'"result"' in head) if isinstance(head, bytes) else ('"result"' in head):
                return []  # subscription acknowledgement
        raise ParseError("unknown_message", stream or str(data[:40]))

    def _ts(self, ms: int) -> int:
        if ms > self.last_ts_ms:
            self.last_ts_ms = ms
        return ms * _MS

    def _trade(self, m: _Trade, ts_recv: int) -> Trade:
        self._ts(m.E or m.T)
        return Trade(
            id=f"{self.exchange}:{m.s}:t{m.t}",
            ts_event=m.T * _MS,
            exchange=self.exchange,
            symbol=m.s,
            price=price(m.p),
            qty=quantity(m.q, allow_zero=False),
            side=Side.SELL if m.m else Side.BUY,
            trade_id=str(m.t),
            ts_recv=ts_recv,
        )

    def _agg(self, m: _AggTrade, ts_recv: int) -> Trade:
        self._ts(m.E or m.T)
        return Trade(
            id=f"{self.exchange}:{m.s}:a{m.a}",
            ts_event=m.T * _MS,
            exchange=self.exchange,
            symbol=m.s,
            price=price(m.p),
            qty=quantity(m.q, allow_zero=False),
            side=Side.SELL if m.m else Side.BUY,
            trade_id=f"a{m.a}",
            ts_recv=ts_recv,
        )

    def _quote(self, m: _BookTicker, ts_recv: int) -> Quote:
        ts = self._ts(m.T or m.E) if (m.T or m.E) else self.last_ts_ms * _MS
        bid, ask = price(m.b), price(m.a)
        return Quote(
            id=f"{self.exchange}:{m.s}:q{m.u}",
            ts_event=ts,
            exchange=self.exchange,
            symbol=m.s,
            bid=bid,
            bid_qty=quantity(m.B),
            ask=ask,
            ask_qty=quantity(m.A),
            update_id=m.u,
            ts_recv=ts_recv,
        )

    def _depth(self, m: _Depth, ts_recv: int) -> BookDelta:
        self.default_symbol = m.s
        return BookDelta(
            id=f"{self.exchange}:{m.s}:d{m.u}",
            ts_event=self._ts(m.T or m.E),
            exchange=self.exchange,
            symbol=m.s,
            bids=_levels(m.b),
            asks=_levels(m.a),
            snapshot=False,
            first_update_id=m.U,
            last_update_id=m.u,
            prev_update_id=m.pu,
            ts_recv=ts_recv,
        )

    def _snap(self, m: _Snapshot, ts_recv: int) -> BookDelta:
        if not self.default_symbol:
            raise ParseError("missing_symbol", "depth snapshot before any depth stream")
        s = self.default_symbol
        ts = self._ts(m.T or m.E) if (m.T or m.E) else self.last_ts_ms * _MS
        return BookDelta(
            id=f"{self.exchange}:{s}:s{m.lastUpdateId}",
            ts_event=ts,
            exchange=self.exchange,
            symbol=s,
            bids=_levels(m.bids),
            asks=_levels(m.asks),
            snapshot=True,
            first_update_id=m.lastUpdateId,
            last_update_id=m.lastUpdateId,
            ts_recv=ts_recv,
        )

    def _bar(self, m: _KlineMsg, ts_recv: int) -> Bar | None:
        self._ts(m.E)
        k = m.k
        if not k.x:
            return None
        return Bar(
            id=f"{self.exchange}:{k.s}:k{k.i}:{k.t}",
            ts_event=(k.T + 1) * _MS,
            exchange=self.exchange,
            symbol=k.s,
            interval_s=float(_INTERVALS.get(k.i, (k.T + 1 - k.t) // 1000)),
            ts_open=k.t * _MS,
            open=price(k.o),
            high=price(k.h),
            low=price(k.l),
            close=price(k.c),
            volume=quantity(k.v),
            trades=k.n,
            ts_recv=ts_recv,
        )
