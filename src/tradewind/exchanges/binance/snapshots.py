"""REST depth snapshots recorded apart from their stream, put back in place.

A ``/api/v3/depth`` (or ``/fapi/v1/depth``) body does not name its symbol.
Beside the stream it was fetched for, the update ids say whose it is: the
snapshot with ``lastUpdateId`` L belongs to the symbol whose depth update
straddles it (``U <= L+1`` and ``u >= L``), and it is replayed just before
that update, where a live book would have applied it.
"""

from __future__ import annotations

from collections import Counter

from tradewind.events import BookDelta, MarketEvent
from tradewind.exchanges.binance.parser import BinanceParser
from tradewind.exchanges.common.errors import ParseError


class SnapshotPairing:
    """A Binance stream parser that also emits the pending snapshots it pairs."""

    def __init__(self, inner: BinanceParser, pending: list[bytes]) -> None:
        self.inner = inner
        self.exchange = inner.exchange
        self.pending: dict[int, bytes] = {}
        self.invalid = 0
        for body in pending:
            try:
                self.pending[inner.snapshot(body, "", 0).last_id] = body
            except ParseError:
                self.invalid += 1
        self.paired: Counter[str] = Counter()

    @property
    def ignored(self) -> Counter[str]:
        return self.inner.ignored

    def parse(self, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        events = self.inner.parse(frame, ts_recv)
        if not self.pending:
            return events
        out: list[MarketEvent] = []
        for e in events:
            if type(e) is BookDelta and not e.snapshot:
                out += self._snapshots_for(e, ts_recv)
            out.append(e)
        return out

    def _snapshots_for(self, e: BookDelta, ts_recv: int) -> list[MarketEvent]:
        found = [
            last
            for last in self.pending
            if e.first_update_id <= last + 1 and e.last_update_id >= last
        ]
        out: list[MarketEvent] = []
        for last in sorted(found):
            body = self.pending.pop(last)
            snap = self.inner.snapshot(body, e.symbol, ts_recv).to_event()
            out.append(snap)
            self.paired[e.symbol] += 1
        return out
