"""OKX v5 public market data messages → Tradewind events.

``trades``, ``tickers`` and ``books`` (400 levels: a snapshot, then updates
with a signed CRC32 ``checksum`` over the top 25 levels, and on current
connections ``seqId``/``prevSeqId``) for spot, swaps and futures; the
instrument id (``BTC-USDT``, ``BTC-USDT-SWAP``, ``BTC-USD-220527``) is the
symbol. Sizes are as OKX sends them: the base currency for spot, contracts for
swaps and futures. Times are the message's own ``ts`` (ms). A malformed or
unknown frame raises ``ParseError`` with a reason; a well-formed message that
carries no event is counted in ``ignored`` by a named reason.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from tradewind.events import MarketEvent, Quote, Side, Trade
from tradewind.exchanges.common.book import BookUpdate, levels, price, quantity
from tradewind.exchanges.common.errors import ParseError

EXCHANGE = "okx"
_MS = 1_000_000

Level = tuple[str, str]


class _Arg(msgspec.Struct):
    channel: str
    instId: str = ""


class _Push(msgspec.Struct):
    arg: _Arg
    data: msgspec.Raw
    action: str = ""


class _Event(msgspec.Struct):
    event: str
    code: str = ""
    msg: str = ""


class _Trade(msgspec.Struct):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str


class _Ticker(msgspec.Struct):
    instId: str
    ts: str
    bidPx: str = ""
    bidSz: str = ""
    askPx: str = ""
    askSz: str = ""


class _Book(msgspec.Struct):
    asks: list[list[str]]
    bids: list[list[str]]
    ts: str
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None


_push = msgspec.json.Decoder(_Push)
_event = msgspec.json.Decoder(_Event)
_trades = msgspec.json.Decoder(list[_Trade])
_tickers = msgspec.json.Decoder(list[_Ticker])
_books = msgspec.json.Decoder(list[_Book])
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


def _ms(text: str) -> int:
    try:
        ms = int(text)
    except ValueError:
        raise ParseError("invalid_time", text[:40]) from None
    if ms <= 0:
        raise ParseError("invalid_time", text[:40])
    return ms * _MS


def _text_levels(raw: list[list[str]]) -> list[Level]:
    """``[price, size, "0", orders]`` → ``(price, size)`` as sent (the checksum's input)."""
    try:
        return [(r[0], r[1]) for r in raw]
    except IndexError:
        raise ParseError("invalid_level", str(raw[:1])[:80]) from None


class OkxParser:
    exchange: str = EXCHANGE

    def __init__(self) -> None:
        self.ignored: Counter[str] = Counter()

    def parse(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent]:
        return [e.to_event() if type(e) is BookUpdate else e for e in self.decode(frame, ts_recv)]  # type: ignore[misc]

    def decode(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent | BookUpdate]:
        """Events, with book messages left as ``BookUpdate`` for ``OkxSync``."""
        if isinstance(frame, str):
            frame = frame.encode()
        if frame == b"pong":
            self.ignored["pong"] += 1
            return []
        try:
            if frame.startswith(b'{"event"'):
                return self._event(frame)
            push = _push.decode(frame)
            channel = push.arg.channel
            if channel == "trades":
                return [self._trade(t, ts_recv) for t in _trades.decode(push.data)]
            if channel == "tickers":
                return self._quotes(_tickers.decode(push.data), ts_recv)
            if channel.startswith("books"):
                return [
                    self._book(push.arg.instId, push.action, b, ts_recv)
                    for b in _books.decode(push.data)
                ]
            raise ParseError("unknown_channel", channel[:40])
        except msgspec.ValidationError as exc:
            raise ParseError("invalid_message", str(exc)[:200]) from None
        except msgspec.DecodeError as exc:
            raise ParseError("malformed_json", str(exc)[:200]) from None

    def _event(self, frame: bytes) -> list[MarketEvent | BookUpdate]:
        ev = _event.decode(frame)
        if ev.event == "error":
            raise ParseError("exchange_error", f"{ev.code} {ev.msg}"[:200])
        self.ignored["subscription_ack" if ev.event == "subscribe" else ev.event[:40]] += 1
        return []

    def _trade(self, t: _Trade, ts_recv: int) -> Trade:
        side = _SIDES.get(t.side)
        if side is None:
            raise ParseError("invalid_side", t.side[:10])
        return Trade(
            id=f"{self.exchange}:{t.instId}:t{t.tradeId}",
            ts_event=_ms(t.ts),
            exchange=self.exchange,
            symbol=t.instId,
            price=price(t.px),
            qty=quantity(t.sz, allow_zero=False),
            side=side,
            trade_id=t.tradeId,
            ts_recv=ts_recv,
        )

    def _quotes(self, rows: list[_Ticker], ts_recv: int) -> list[MarketEvent | BookUpdate]:
        out: list[MarketEvent | BookUpdate] = []
        for t in rows:
            if not (t.bidPx and t.askPx):
                self.ignored["ticker_without_quote"] += 1
                continue
            ts = _ms(t.ts)
            out.append(
                Quote(
                    id=f"{self.exchange}:{t.instId}:q{t.ts}",
                    ts_event=ts,
                    exchange=self.exchange,
                    symbol=t.instId,
                    bid=price(t.bidPx),
                    bid_qty=quantity(t.bidSz or "0"),
                    ask=price(t.askPx),
                    ask_qty=quantity(t.askSz or "0"),
                    update_id=ts // _MS,
                    ts_recv=ts_recv,
                )
            )
        return out

    def _book(self, inst: str, action: str, b: _Book, ts_recv: int) -> BookUpdate:
        if action not in ("snapshot", "update"):
            raise ParseError("invalid_action", action[:20])
        ts = _ms(b.ts)
        bids, asks = _text_levels(b.bids), _text_levels(b.asks)
        seq = b.seqId if b.seqId is not None else ts // _MS
        return BookUpdate(
            id=f"{self.exchange}:{inst}:{'s' if action == 'snapshot' else 'd'}{seq}",
            exchange=self.exchange,
            symbol=inst,
            bids=levels(bids),
            asks=levels(asks),
            snapshot=action == "snapshot",
            first_id=seq,
            last_id=seq,
            prev_id=b.prevSeqId if b.seqId is not None else None,
            ts_event=ts,
            ts_recv=ts_recv,
            checksum=b.checksum,
            text_bids=bids,
            text_asks=asks,
        )
