"""Kraken spot market data: WebSocket v2 (``wss://ws.kraken.com/v2``) and the
v1 format of the recorded file.

v1 data messages are arrays ``[channelID, payload, channelName, pair]`` (or
with two payloads when a book message carries asks and bids separately);
events (status, heartbeat, subscription) are objects. v2 messages are objects
``{channel, type, data[]}``. Book levels keep their text next to the float:
Kraken's CRC32 checksum is computed on the digits as sent, which a float
cannot reproduce (``"0.000022900"`` vs ``2.29e-05``). v2 numbers are decoded
as ``Decimal`` for the same reason.

Neither v1 trades nor v1 tickers carry an id or (tickers) a time: a v1 trade's
id is its time, price and volume, which Kraken never repeats for one pair; a
ticker takes the last exchange time seen on the connection.
"""

from __future__ import annotations

import calendar
from collections import Counter
from decimal import Decimal

import msgspec

from tradewind.events import MarketEvent, Quote, Side, Trade
from tradewind.exchanges.common.book import BookUpdate, TextLevel, price, quantity
from tradewind.exchanges.common.errors import ParseError

EXCHANGE = "kraken"

Decoded = MarketEvent | BookUpdate


class _Event(msgspec.Struct):
    event: str = ""
    status: str = ""
    errorMessage: str = ""
    channel: str = ""
    method: str = ""
    success: bool | None = None
    error: str = ""
    type: str = ""


class _V1Book(msgspec.Struct):
    a: list[list[str]] = []
    b: list[list[str]] = []
    c: str | None = None


class _V1BookSnap(msgspec.Struct):
    as_: list[list[str]] = msgspec.field(default_factory=list, name="as")
    bs: list[list[str]] = []


class _V1Ticker(msgspec.Struct):
    a: list[str | int]
    b: list[str | int]


class _V2Level(msgspec.Struct):
    price: Decimal
    qty: Decimal


class _V2Book(msgspec.Struct):
    symbol: str
    bids: list[_V2Level] = []
    asks: list[_V2Level] = []
    checksum: int | None = None
    timestamp: str = ""


class _V2Trade(msgspec.Struct):
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    trade_id: int
    timestamp: str
    ord_type: str = ""


class _V2Ticker(msgspec.Struct):
    symbol: str
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    timestamp: str = ""


class _V2BookMsg(msgspec.Struct):
    type: str
    data: list[_V2Book]


class _V2TradeMsg(msgspec.Struct):
    type: str
    data: list[_V2Trade]


class _V2TickerMsg(msgspec.Struct):
    type: str
    data: list[_V2Ticker]


_array = msgspec.json.Decoder(list[msgspec.Raw])
_event = msgspec.json.Decoder(_Event)
_v1_book = msgspec.json.Decoder(_V1Book)
_v1_snap = msgspec.json.Decoder(_V1BookSnap)
_v1_trades = msgspec.json.Decoder(list[list[str]])
_v1_ticker = msgspec.json.Decoder(_V1Ticker)
_str = msgspec.json.Decoder(str)
_v2_book = msgspec.json.Decoder(_V2BookMsg)
_v2_trade = msgspec.json.Decoder(_V2TradeMsg)
_v2_ticker = msgspec.json.Decoder(_V2TickerMsg)

_V1_IGNORED = {
    "heartbeat": "heartbeat",
    "systemStatus": "system_status",
    "subscriptionStatus": "subscription_status",
    "pong": "pong",
}
_V2_IGNORED = {"heartbeat": "heartbeat", "status": "status", "instrument": "instrument"}
_PREFIX_V2 = b'{"channel":"'


def _v1_ts(text: str) -> int:
    """``"1618678123.481570"`` → ns, without a float's rounding."""
    sec, _, frac = text.partition(".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise ParseError("invalid_timestamp", text[:40])
    return int(sec) * 1_000_000_000 + int(frac[:9].ljust(9, "0") if frac else 0)


def _rfc3339(text: str) -> int:
    try:
        y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except ValueError:
        raise ParseError("invalid_timestamp", text[:40]) from None
    frac = text[20:].rstrip("Z") if len(text) > 20 and text[19] == "." else ""
    if frac and not frac.isdigit():
        raise ParseError("invalid_timestamp", text[:40])
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    return secs * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)


def _text_levels(raw: list[list[str]]) -> tuple[list[TextLevel], int]:
    out: list[TextLevel] = []
    ts = 0
    for lv in raw:
        if len(lv) < 3:
            raise ParseError("invalid_level", str(lv)[:60])
        out.append((lv[0], lv[1]))
        t = _v1_ts(lv[2])
        if t > ts:
            ts = t
    return out, ts


def _dec_text(v: Decimal) -> str:
    """The number as Kraken sent it (``Decimal`` keeps every digit and zero)."""
    return format(v, "f")


class KrakenParser:
    exchange: str = EXCHANGE

    def __init__(self, exchange: str | None = None) -> None:
        if exchange is not None:
            self.exchange = exchange
        self.ignored: Counter[str] = Counter()
        self.last_ts = 0
        self._v2_updates = 0

    def parse(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent]:
        return [
            e.to_event() if isinstance(e, BookUpdate) else e for e in self.decode(frame, ts_recv)
        ]

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        if isinstance(frame, str):
            frame = frame.encode()
        try:
            first = frame[:1]
            if first == b"[":
                return self._v1(_array.decode(frame), ts_recv)
            if first != b"{":
                raise ParseError("malformed_json", "a Kraken frame is a JSON array or object")
            if frame.startswith(_PREFIX_V2):
                channel = frame[12 : frame.find(b'"', 12)]
                if channel == b"book":
                    return self._v2_book(_v2_book.decode(frame), ts_recv)
                if channel == b"trade":
                    return self._v2_trades(_v2_trade.decode(frame), ts_recv)
                if channel == b"ticker":
                    return self._v2_tickers(_v2_ticker.decode(frame), ts_recv)
            return self._event(_event.decode(frame))
        except msgspec.ValidationError as exc:
            raise ParseError("invalid_message", str(exc)[:200]) from None
        except msgspec.DecodeError as exc:
            raise ParseError("malformed_json", str(exc)[:200]) from None

    def _event(self, e: _Event) -> list[Decoded]:
        if e.event:
            if e.event == "error" or e.status == "error":
                raise ParseError("exchange_error", (e.errorMessage or e.event)[:200])
            reason = _V1_IGNORED.get(e.event)
            if reason is None:
                raise ParseError("unknown_event", e.event[:40])
            self.ignored[reason] += 1
            return []
        if e.method:
            if e.success is False:
                raise ParseError("exchange_error", (e.error or e.method)[:200])
            self.ignored["pong" if e.method == "pong" else "subscription_ack"] += 1
            return []
        reason = _V2_IGNORED.get(e.channel)
        if reason is None:
            raise ParseError("unknown_channel", (e.channel or "none")[:40])
        self.ignored[reason] += 1
        return []

    # --- v1 --------------------------------------------------------------
    def _v1(self, parts: list[msgspec.Raw], ts_recv: int) -> list[Decoded]:
        if len(parts) not in (4, 5):
            raise ParseError("invalid_message", f"array of {len(parts)}")
        name = _str.decode(parts[-2])
        pair = _str.decode(parts[-1])
        if name.startswith("book"):
            return [self._v1_book(parts[1:-2], name, pair, ts_recv)]
        if name == "trade":
            return self._v1_trades(_v1_trades.decode(parts[1]), pair, ts_recv)
        if name == "ticker":
            if not self.last_ts:
                # A v1 ticker has no time of its own: none is known yet.
                self.ignored["ticker_without_time"] += 1
                return []
            return [self._v1_ticker(_v1_ticker.decode(parts[1]), pair, ts_recv)]
        if name == "spread" or name.startswith("ohlc"):
            self.ignored[name.partition("-")[0]] += 1
            return []
        raise ParseError("unknown_channel", name[:40])

    def _v1_book(
        self, payloads: list[msgspec.Raw], name: str, pair: str, ts_recv: int
    ) -> BookUpdate:
        head = bytes(payloads[0])[:6]
        if b'"as"' in head or b'"bs"' in head:
            snap = _v1_snap.decode(payloads[0])
            asks, ts_a = _text_levels(snap.as_)
            bids, ts_b = _text_levels(snap.bs)
            ts = max(ts_a, ts_b)
            checksum = None
            snapshot = True
        else:
            asks, bids = [], []
            ts = 0
            checksum = None
            for raw in payloads:
                part = _v1_book.decode(raw)
                a, ta = _text_levels(part.a)
                b, tb = _text_levels(part.b)
                asks += a
                bids += b
                ts = max(ts, ta, tb)
                if part.c is not None:
                    if not part.c.isdigit():
                        raise ParseError("invalid_checksum", part.c[:20])
                    checksum = int(part.c)
            snapshot = False
        if ts > self.last_ts:
            self.last_ts = ts
        return BookUpdate(
            id=f"{self.exchange}:{pair}:{'s' if snapshot else 'b'}{ts}:{checksum or 0}",
            exchange=self.exchange,
            symbol=pair,
            bids=[(price(p), quantity(q)) for p, q in bids],
            asks=[(price(p), quantity(q)) for p, q in asks],
            snapshot=snapshot,
            first_id=0,
            last_id=0,
            ts_event=ts or self.last_ts or ts_recv,
            ts_recv=ts_recv,
            checksum=checksum,
            text_bids=bids,
            text_asks=asks,
        )

    def _v1_trades(self, rows: list[list[str]], pair: str, ts_recv: int) -> list[Decoded]:
        out: list[Decoded] = []
        for r in rows:
            if len(r) < 4:
                raise ParseError("invalid_trade", str(r)[:60])
            p, v, t, s = r[0], r[1], r[2], r[3]
            ts = _v1_ts(t)
            if ts > self.last_ts:
                self.last_ts = ts
            if s not in ("b", "s"):
                raise ParseError("invalid_side", s[:10])
            out.append(
                Trade(
                    id=f"{self.exchange}:{pair}:t{t}:{p}:{v}",
                    ts_event=ts,
                    exchange=self.exchange,
                    symbol=pair,
                    price=price(p),
                    qty=quantity(v, allow_zero=False),
                    side=Side.BUY if s == "b" else Side.SELL,
                    trade_id=f"{t}:{p}:{v}",
                    ts_recv=ts_recv,
                )
            )
        return out

    def _v1_ticker(self, m: _V1Ticker, pair: str, ts_recv: int) -> Quote:
        if len(m.a) < 3 or len(m.b) < 3:
            raise ParseError("invalid_ticker", pair)
        ts = self.last_ts
        return Quote(
            id=f"{self.exchange}:{pair}:q{ts}:{m.b[0]}:{m.a[0]}",
            ts_event=ts,
            exchange=self.exchange,
            symbol=pair,
            bid=price(str(m.b[0])),
            bid_qty=quantity(str(m.b[2])),
            ask=price(str(m.a[0])),
            ask_qty=quantity(str(m.a[2])),
            ts_recv=ts_recv,
        )

    # --- v2 --------------------------------------------------------------
    def _v2_book(self, m: _V2BookMsg, ts_recv: int) -> list[Decoded]:
        out: list[Decoded] = []
        snapshot = m.type == "snapshot"
        kind = "s" if snapshot else "b"
        for b in m.data:
            ts = _rfc3339(b.timestamp) if b.timestamp else self.last_ts or ts_recv
            if ts > self.last_ts:
                self.last_ts = ts
            bids = [(_dec_text(lv.price), _dec_text(lv.qty)) for lv in b.bids]
            asks = [(_dec_text(lv.price), _dec_text(lv.qty)) for lv in b.asks]
            self._v2_updates += 1
            out.append(
                BookUpdate(
                    id=f"{self.exchange}:{b.symbol}:{kind}{ts}:{b.checksum or 0}",
                    exchange=self.exchange,
                    symbol=b.symbol,
                    bids=[(price(p), quantity(q)) for p, q in bids],
                    asks=[(price(p), quantity(q)) for p, q in asks],
                    snapshot=snapshot,
                    first_id=0,
                    last_id=0,
                    ts_event=ts,
                    ts_recv=ts_recv,
                    checksum=b.checksum,
                    text_bids=bids,
                    text_asks=asks,
                )
            )
        return out

    def _v2_trades(self, m: _V2TradeMsg, ts_recv: int) -> list[Decoded]:
        out: list[Decoded] = []
        for t in m.data:
            ts = _rfc3339(t.timestamp)
            if ts > self.last_ts:
                self.last_ts = ts
            if t.side not in ("buy", "sell"):
                raise ParseError("invalid_side", t.side[:10])
            out.append(
                Trade(
                    id=f"{self.exchange}:{t.symbol}:t{t.trade_id}",
                    ts_event=ts,
                    exchange=self.exchange,
                    symbol=t.symbol,
                    price=price(str(t.price)),
                    qty=quantity(str(t.qty), allow_zero=False),
                    side=Side.BUY if t.side == "buy" else Side.SELL,
                    trade_id=str(t.trade_id),
                    ts_recv=ts_recv,
                )
            )
        return out

    def _v2_tickers(self, m: _V2TickerMsg, ts_recv: int) -> list[Decoded]:
        """The ticker's own ``timestamp`` when it sends one (current v2 does);
        else the latest exchange time seen, else the time it was received."""
        out: list[Decoded] = []
        for t in m.data:
            ts = _rfc3339(t.timestamp) if t.timestamp else self.last_ts or ts_recv
            if t.timestamp and ts > self.last_ts:
                self.last_ts = ts
            out.append(
                Quote(
                    id=f"{self.exchange}:{t.symbol}:q{ts}:{t.bid}:{t.ask}",
                    ts_event=ts,
                    exchange=self.exchange,
                    symbol=t.symbol,
                    bid=price(str(t.bid)),
                    bid_qty=quantity(str(t.bid_qty)),
                    ask=price(str(t.ask)),
                    ask_qty=quantity(str(t.ask_qty)),
                    ts_recv=ts_recv,
                )
            )
        return out
