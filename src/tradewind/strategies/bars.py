"""Time bars from trades, closed by exchange time so replays are deterministic."""

from __future__ import annotations

from tradewind.events import Bar, Trade


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
