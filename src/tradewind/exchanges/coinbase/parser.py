"""Coinbase Advanced Trade market data (``wss://advanced-trade-ws.coinbase.com``).

Every message is an envelope ``{channel, timestamp, sequence_num, events[]}``;
``sequence_num`` counts messages per connection, across channels, so a gap
cannot be pinned on one product. The channel name sits at a fixed offset,
which selects one typed decoder per frame. Channels that carry no Tradewind
event (heartbeats, subscription lists, candles, status) are counted in
``ignored`` by name.

``market_trades.side`` is the side of the resting (maker) order: in the
recordings SELL trades print at the best ask and BUY trades at the best bid.
The taker side, which ``Trade.side`` holds, is its opposite.
"""

from __future__ import annotations

import calendar
from collections import Counter

import msgspec

from tradewind.events import MarketEvent, Quote, Side, Trade
from tradewind.exchanges.common.book import BookUpdate, price, quantity
from tradewind.exchanges.common.errors import ParseError

EXCHANGE = "coinbase"


class _Trade(msgspec.Struct):
    product_id: str
    trade_id: str
    price: str
    size: str
    time: str
    side: str


class _TradesEvent(msgspec.Struct):
    type: str
    trades: list[_Trade]


class _Ticker(msgspec.Struct):
    product_id: str
    best_bid: str
    best_ask: str
    best_bid_quantity: str = ""
    best_ask_quantity: str = ""
    price: str = ""


class _TickerEvent(msgspec.Struct):
    type: str
    tickers: list[_Ticker]


class _L2Level(msgspec.Struct):
    side: str
    price_level: str
    new_quantity: str
    event_time: str = ""


class _L2Event(msgspec.Struct):
    type: str
    product_id: str
    updates: list[_L2Level]


class _Head(msgspec.Struct):
    channel: str = ""
    timestamp: str = ""
    sequence_num: int = -1
    type: str = ""
    message: str = ""


class _Trades(msgspec.Struct):
    timestamp: str
    sequence_num: int
    events: list[_TradesEvent]


class _Tickers(msgspec.Struct):
    timestamp: str
    sequence_num: int
    events: list[_TickerEvent]


class _L2(msgspec.Struct):
    timestamp: str
    sequence_num: int
    events: list[_L2Event]


_head = msgspec.json.Decoder(_Head)
_trades = msgspec.json.Decoder(_Trades)
_tickers = msgspec.json.Decoder(_Tickers)
_l2 = msgspec.json.Decoder(_L2)

_IGNORED = {
    "heartbeats": "heartbeat",
    "subscriptions": "subscriptions",
    "candles": "candles",
    "status": "status",
}
_PREFIX = b'{"channel":"'


class Rfc3339:
    """RFC 3339 UTC → integer ns; the seconds part is cached, since consecutive
    stamps share it, and the fraction may have any number of digits."""

    __slots__ = ("_prefix", "_secs")

    def __init__(self) -> None:
        self._prefix = ""
        self._secs = 0

    def __call__(self, text: str) -> int:
        head = text[:19]
        if head != self._prefix:
            try:
                y, mo, d = int(head[0:4]), int(head[5:7]), int(head[8:10])
                h, mi, s = int(head[11:13]), int(head[14:16]), int(head[17:19])
                self._secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
            except ValueError:
                raise ParseError("invalid_timestamp", text[:40]) from None
            self._prefix = head
        frac = text[20:].rstrip("Z") if len(text) > 20 and text[19] == "." else ""
        if frac and not frac.isdigit():
            raise ParseError("invalid_timestamp", text[:40])
        return self._secs * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)


class CoinbaseParser:
    exchange: str = EXCHANGE

    def __init__(self, exchange: str | None = None) -> None:
        if exchange is not None:
            self.exchange = exchange
        self.ignored: Counter[str] = Counter()
        self.last_sequence = -1
        self._ts = Rfc3339()

    def parse(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent]:
        return [
            e.to_event() if isinstance(e, BookUpdate) else e for e in self.decode(frame, ts_recv)
        ]

    def decode(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent | BookUpdate]:
        if isinstance(frame, str):
            frame = frame.encode()
        if frame[:1] != b"{":
            raise ParseError("malformed_json", "a Coinbase frame is a JSON object")
        try:
            channel = ""
            if frame.startswith(_PREFIX):
                channel = frame[12 : frame.find(b'"', 12)].decode()
            if channel == "market_trades":
                return self._trades(_trades.decode(frame), ts_recv)
            if channel in ("ticker", "ticker_batch"):
                return self._tickers(_tickers.decode(frame), ts_recv)
            if channel == "l2_data":
                return self._l2(_l2.decode(frame), ts_recv)
            head = _head.decode(frame)
        except msgspec.ValidationError as exc:
            raise ParseError("invalid_message", str(exc)[:200]) from None
        except msgspec.DecodeError as exc:
            raise ParseError("malformed_json", str(exc)[:200]) from None
        if head.sequence_num >= 0:
            self.last_sequence = head.sequence_num
        if head.type == "error":
            raise ParseError("exchange_error", head.message[:200])
        reason = _IGNORED.get(head.channel)
        if reason is None:
            raise ParseError("unknown_channel", (head.channel or "none")[:40])
        self.ignored[reason] += 1
        return []

    def _trades(self, m: _Trades, ts_recv: int) -> list[MarketEvent | BookUpdate]:
        self.last_sequence = m.sequence_num
        out: list[MarketEvent | BookUpdate] = []
        for ev in m.events:
            for t in ev.trades:
                maker = t.side.upper()
                if maker not in ("BUY", "SELL"):
                    raise ParseError("invalid_side", t.side[:20])
                out.append(
                    Trade(
                        id=f"{self.exchange}:{t.product_id}:t{t.trade_id}",
                        ts_event=self._ts(t.time),
                        exchange=self.exchange,
                        symbol=t.product_id,
                        price=price(t.price),
                        qty=quantity(t.size, allow_zero=False),
                        side=Side.BUY if maker == "SELL" else Side.SELL,
                        trade_id=t.trade_id,
                        ts_recv=ts_recv,
                    )
                )
        if not out:
            self.ignored["empty_trades"] += 1
        return out

    def _tickers(self, m: _Tickers, ts_recv: int) -> list[MarketEvent | BookUpdate]:
        self.last_sequence = m.sequence_num
        ts = self._ts(m.timestamp)
        out: list[MarketEvent | BookUpdate] = []
        for ev in m.events:
            for t in ev.tickers:
                out.append(
                    Quote(
                        id=f"{self.exchange}:{t.product_id}:q{ts}",
                        ts_event=ts,
                        exchange=self.exchange,
                        symbol=t.product_id,
                        bid=price(t.best_bid),
                        bid_qty=quantity(t.best_bid_quantity or "0"),
                        ask=price(t.best_ask),
                        ask_qty=quantity(t.best_ask_quantity or "0"),
                        update_id=m.sequence_num,
                        ts_recv=ts_recv,
                    )
                )
        return out

    def _l2(self, m: _L2, ts_recv: int) -> list[MarketEvent | BookUpdate]:
        self.last_sequence = m.sequence_num
        ts = self._ts(m.timestamp)
        out: list[MarketEvent | BookUpdate] = []
        for ev in m.events:
            bids: list[tuple[float, float]] = []
            asks: list[tuple[float, float]] = []
            for lv in ev.updates:
                level = (price(lv.price_level), quantity(lv.new_quantity))
                if lv.side == "bid":
                    bids.append(level)
                elif lv.side in ("offer", "ask"):
                    asks.append(level)
                else:
                    raise ParseError("invalid_side", lv.side[:20])
            seq = m.sequence_num
            out.append(
                BookUpdate(
                    id=f"{self.exchange}:{ev.product_id}:l{ts}:{seq}",
                    exchange=self.exchange,
                    symbol=ev.product_id,
                    bids=bids,
                    asks=asks,
                    snapshot=ev.type == "snapshot",
                    first_id=seq,
                    last_id=seq,
                    ts_event=ts,
                    ts_recv=ts_recv,
                )
            )
        return out
