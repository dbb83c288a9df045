"""REST depth snapshots recorded apart from their stream, put back in place.

A ``/api/v3/depth`` (or ``/fapi/v1/depth``) body does not name its symbol.
Beside the stream it was fetched for, the update ids say whose it is: the
snapshot with ``lastUpdateId`` L belongs to the symbol whose depth update
straddles it (``U <= L+1`` and ``u >= L``), and it is replayed just before
that update, where a live book would have applied it.
"""

from __future__ import annotations

from collections import Counter

import msgspec

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


RECORDED_PREFIX = b'{"lastUpdateId":'


def is_recorded_snapshot(line: bytes) -> bool:
    """A depth body our recorder wrote (it names its symbol; see
    ``feed.recorded_snapshot``)."""
    return line.startswith(RECORDED_PREFIX) and b',"symbol":"' in line[:64]


class RecordedSnapshots:
    """A stream parser that puts the snapshots a live feed recorded back where
    the feed applied them: just before the symbol's diff that straddles the
    snapshot's ``lastUpdateId``, which is the first diff the live book applied
    on it. The recorder writes a snapshot when it arrives, after the diffs the
    live book buffered meanwhile; replayed there, the diffs in between would
    be lost under it. ``bodies`` are the file's recorded snapshot lines,
    read ahead; their own lines are skipped when the stream reaches them."""

    def __init__(self, inner: BinanceParser, bodies: list[bytes]) -> None:
        self.inner = inner
        self.exchange = inner.exchange
        self.pending: dict[tuple[str, int], bytes] = {}
        self.invalid = 0
        for body in bodies:
            try:
                snap = inner.snapshot(body, "", 0)
                symbol = msgspec.json.decode(body, type=_Named).symbol
            except (ParseError, msgspec.DecodeError, msgspec.ValidationError):
                self.invalid += 1
                continue
            self.pending[(symbol, snap.last_id)] = body
        self.paired: Counter[str] = Counter()

    @property
    def ignored(self) -> Counter[str]:
        return self.inner.ignored

    def parse(self, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        if is_recorded_snapshot(frame):
            return []
        events = self.inner.parse(frame, ts_recv)
        if not self.pending:
            return events
        out: list[MarketEvent] = []
        for e in events:
            if type(e) is BookDelta and not e.snapshot:
                found = [
                    key
                    for key in self.pending
                    if key[0] == e.symbol
                    and e.first_update_id <= key[1] + 1
                    and e.last_update_id >= key[1]
                ]
                for key in sorted(found):
                    body = self.pending.pop(key)
                    out.append(self.inner.snapshot(body, e.symbol, ts_recv).to_event())
                    self.paired[e.symbol] += 1
            out.append(e)
        return out


class _Named(msgspec.Struct):
    symbol: str
