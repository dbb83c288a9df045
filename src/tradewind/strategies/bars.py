"""Time bars from trades, closed by exchange time so replays are deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from operator import add, attrgetter

from tradewind.events import Bar, Trade

_PRICE = attrgetter("price")
_QTY = attrgetter("qty")


class BarBuilder:
    __slots__ = (
        "_bucket",
        "_close",
        "_closed_through",
        "_high",
        "_low",
        "_n",
        "_open",
        "_recv",
        "_vol",
        "exchange",
        "interval_ns",
        "interval_s",
        "symbol",
    )

    def __init__(self, exchange: str, symbol: str, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("bar interval must be positive")
        self.exchange = exchange
        self.symbol = symbol
        self.interval_s = interval_s
        self.interval_ns = int(interval_s * 1e9)
        self._bucket = -1
        self._closed_through = -1
        self._open = self._high = self._low = self._close = self._vol = 0.0
        self._n = 0
        self._recv = 0

    def advance(self, ts_ns: int) -> Bar | None:
        """Close the open bar once exchange time has moved past its end."""
        if self._n and ts_ns // self.interval_ns > self._bucket:
            return self._close_bar()
        return None

    def add(self, t: Trade) -> Bar | None:
        """A trade stamped inside an already closed bar (trade time lags the
        event time that closed it) goes into the next bar, never reopens one."""
        bucket = max(t.ts_event // self.interval_ns, self._closed_through + 1)
        closed = None
        if self._n and bucket > self._bucket:
            closed = self._close_bar()
        if not self._n:
            self._bucket = bucket
            self._open = self._high = self._low = t.price
            self._vol = 0.0
        p = t.price
        if p > self._high:
            self._high = p
        elif p < self._low:
            self._low = p
        self._close = p
        self._vol += t.qty
        self._n += 1
        self._recv = t.ts_recv
        return closed

    def open_until_ns(self) -> int:
        """Trades stamped before this go into the open bar without closing it
        (0 when no bar is open: the next trade opens one)."""
        return (self._bucket + 1) * self.interval_ns if self._n else 0

    def extend(self, trades: Sequence[Trade]) -> None:
        """``add`` for trades that all fall before ``open_until_ns``, in C-level
        passes. The same bar to the bit: high and low as ``add`` moves them
        (prices are finite), volume summed in order from the running total."""
        prices = list(map(_PRICE, trades))
        hi, lo = max(prices), min(prices)
        if hi > self._high:
            self._high = hi
        if lo < self._low:
            self._low = lo
        self._close = prices[-1]
        self._vol = reduce(add, map(_QTY, trades), self._vol)
        self._n += len(prices)
        self._recv = trades[-1].ts_recv

    def _close_bar(self) -> Bar:
        start = self._bucket * self.interval_ns
        bar = Bar(
            id=f"{self.exchange}:{self.symbol}:b{self.interval_s:g}:{start}",
            ts_event=start + self.interval_ns,
            exchange=self.exchange,
            symbol=self.symbol,
            interval_s=self.interval_s,
            ts_open=start,
            open=self._open,
            high=self._high,
            low=self._low,
            close=self._close,
            volume=self._vol,
            trades=self._n,
            ts_recv=self._recv,
        )
        self._n = 0
        self._closed_through = self._bucket
        return bar

    def state(self) -> list[float | int]:
        return [
            self._closed_through,
            self._bucket,
            self._open,
            self._high,
            self._low,
            self._close,
            self._vol,
            self._n,
            self._recv,
        ]

    def restore(self, s: list[float | int]) -> None:
        ct, b, o, h, lo, c, v, n, r = s
        self._closed_through = int(ct)
        self._bucket, self._n, self._recv = int(b), int(n), int(r)
        self._open, self._high, self._low, self._close, self._vol = (
            float(o),
            float(h),
            float(lo),
            float(c),
            float(v),
        )
