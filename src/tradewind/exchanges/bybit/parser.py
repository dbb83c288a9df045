"""Bybit v5 public market data, spot (``/v5/public/spot``) and linear
(``/v5/public/linear``).

Both categories use the same topic names, so the category is the parser's
(``exchange`` is ``bybit`` or ``bybit-linear``). The topic prefix sits at a
fixed offset and selects one typed decoder. ``tickers`` deltas carry only the
fields that changed: the parser merges them into the last full ticker and
emits a quote when the top of book changed. Acks, pongs and tickers without a
top of book (spot tickers have none) are counted in ``ignored``.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from tradewind.events import Bar, MarketEvent, Quote, Side, Trade
from tradewind.exchanges.common.book import BookUpdate, levels, price, quantity
from tradewind.exchanges.common.errors import ParseError

SPOT = "bybit"
LINEAR = "bybit-linear"
_MS = 1_000_000

Decoded = MarketEvent | BookUpdate


class _Trade(msgspec.Struct):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str


class _TradeMsg(msgspec.Struct):
    topic: str
    data: list[_Trade]
    ts: int = 0


class _BookData(msgspec.Struct):
    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    seq: int = 0


class _BookMsg(msgspec.Struct):
    topic: str
    type: str
    ts: int
    data: _BookData
    cts: int = 0


class _TickerData(msgspec.Struct, omit_defaults=True):
    symbol: str
    bid1Price: str | None = None
    bid1Size: str | None = None
    ask1Price: str | None = None
    ask1Size: str | None = None


class _TickerMsg(msgspec.Struct):
    topic: str
    type: str
    data: _TickerData
    ts: int = 0
    cs: int = 0


class _Kline(msgspec.Struct):
    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    confirm: bool
    timestamp: int = 0


class _KlineMsg(msgspec.Struct):
    topic: str
    data: list[_Kline]
    ts: int = 0


class _Op(msgspec.Struct):
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    topic: str = ""


_trade = msgspec.json.Decoder(_TradeMsg)
_book = msgspec.json.Decoder(_BookMsg)
_ticker = msgspec.json.Decoder(_TickerMsg)
_kline = msgspec.json.Decoder(_KlineMsg)
_op = msgspec.json.Decoder(_Op)

_INTERVALS = {"D": 86400, "W": 604800, "M": 2592000}


def _topic(frame: bytes) -> bytes:
    """The topic prefix (``publicTrade``, ``orderbook``…) wherever ``topic`` sits."""
    i = frame.find(b'"topic":"')
    if i < 0 or i > 64:
        return b""
    start = i + 9
    end = frame.find(b".", start, start + 40)
    return frame[start:end] if end > 0 else b""


class BybitParser:
    exchange: str = SPOT

    def __init__(self, exchange: str | None = None) -> None:
        if exchange is not None:
            self.exchange = exchange
        self.ignored: Counter[str] = Counter()
        self._tickers: dict[str, list[str | None]] = {}
        self.last_ts_ms = 0

    def parse(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent]:
        return [
            e.to_event() if isinstance(e, BookUpdate) else e for e in self.decode(frame, ts_recv)
        ]

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        if isinstance(frame, str):
            frame = frame.encode()
        if frame[:1] != b"{":
            raise ParseError("malformed_json", "a Bybit frame is a JSON object")
        try:
            topic = _topic(frame)
            if topic == b"publicTrade":
                return self._trades(_trade.decode(frame), ts_recv)
            if topic == b"orderbook":
                return [self._book(_book.decode(frame), ts_recv)]
            if topic == b"tickers":
                return self._ticker(_ticker.decode(frame), ts_recv)
            if topic == b"kline":
                return self._klines(_kline.decode(frame), ts_recv)
            op = _op.decode(frame)
        except msgspec.ValidationError as exc:
            raise ParseError("invalid_message", str(exc)[:200]) from None
        except msgspec.DecodeError as exc:
            raise ParseError("malformed_json", str(exc)[:200]) from None
        if op.topic:
            raise ParseError("unknown_topic", op.topic[:40])
        if op.op:
            if op.success is False:
                raise ParseError("exchange_error", f"{op.op}: {op.ret_msg}"[:200])
            self.ignored["pong" if op.op in ("ping", "pong") else "subscription_ack"] += 1
            return []
        raise ParseError("unknown_message", frame[:40].decode(errors="replace"))

    def _trades(self, m: _TradeMsg, ts_recv: int) -> list[Decoded]:
        out: list[Decoded] = []
        for t in m.data:
            if t.S not in ("Buy", "Sell"):
                raise ParseError("invalid_side", t.S[:10])
            if self.last_ts_ms < t.T:
                self.last_ts_ms = t.T
            out.append(
                Trade(
                    id=f"{self.exchange}:{t.s}:t{t.i}",
                    ts_event=t.T * _MS,
                    exchange=self.exchange,
                    symbol=t.s,
                    price=price(t.p),
                    qty=quantity(t.v, allow_zero=False),
                    side=Side.BUY if t.S == "Buy" else Side.SELL,
                    trade_id=t.i,
                    ts_recv=ts_recv,
                )
            )
        return out

    def _book(self, m: _BookMsg, ts_recv: int) -> BookUpdate:
        d = m.data
        if m.type not in ("snapshot", "delta"):
            raise ParseError("invalid_message", f"orderbook type {m.type[:20]}")
        if m.ts > self.last_ts_ms:
            self.last_ts_ms = m.ts
        snap = m.type == "snapshot"
        return BookUpdate(
            id=f"{self.exchange}:{d.s}:{'s' if snap else 'd'}{d.u}:{d.seq}",
            exchange=self.exchange,
            symbol=d.s,
            bids=levels(d.b),
            asks=levels(d.a),
            snapshot=snap,
            first_id=d.u,
            last_id=d.u,
            prev_id=d.seq or None,
            ts_event=m.ts * _MS,
            ts_recv=ts_recv,
        )

    def _ticker(self, m: _TickerMsg, ts_recv: int) -> list[Decoded]:
        d = m.data
        ts = m.ts or self.last_ts_ms
        if m.ts > self.last_ts_ms:
            self.last_ts_ms = m.ts
        fields = (d.bid1Price, d.bid1Size, d.ask1Price, d.ask1Size)
        state = self._tickers.get(d.symbol)
        if m.type == "snapshot" or state is None:
            if m.type != "snapshot":
                self.ignored["ticker_delta_before_snapshot"] += 1
                return []
            state = list(fields)
            self._tickers[d.symbol] = state
        elif all(f is None for f in fields):
            self.ignored["ticker_without_quote_change"] += 1
            return []
        else:
            for i, f in enumerate(fields):
                if f is not None:
                    state[i] = f
        bp, bs, ap, as_ = state
        if bp is None or ap is None or bs is None or as_ is None:
            self.ignored["ticker_without_top_of_book"] += 1
            return []
        return [
            Quote(
                id=f"{self.exchange}:{d.symbol}:q{m.cs or ts}",
                ts_event=ts * _MS,
                exchange=self.exchange,
                symbol=d.symbol,
                bid=price(bp),
                bid_qty=quantity(bs),
                ask=price(ap),
                ask_qty=quantity(as_),
                update_id=m.cs,
                ts_recv=ts_recv,
            )
        ]

    def _klines(self, m: _KlineMsg, ts_recv: int) -> list[Decoded]:
        symbol = m.topic.rpartition(".")[2]
        out: list[Decoded] = []
        for k in m.data:
            if not k.confirm:
                self.ignored["kline_open"] += 1
                continue
            interval = _INTERVALS.get(k.interval)
            if interval is None:
                if not k.interval.isdigit():
                    raise ParseError("invalid_interval", k.interval[:10])
                interval = int(k.interval) * 60
            out.append(
                Bar(
                    id=f"{self.exchange}:{symbol}:k{k.interval}:{k.start}",
                    ts_event=(k.end + 1) * _MS,
                    exchange=self.exchange,
                    symbol=symbol,
                    interval_s=float(interval),
                    ts_open=k.start * _MS,
                    open=price(k.open),
                    high=price(k.high),
                    low=price(k.low),
                    close=price(k.close),
                    volume=quantity(k.volume),
                    trades=0,
                    ts_recv=ts_recv,
                )
            )
        return out


class BybitLinearParser(BybitParser):
    exchange = LINEAR
