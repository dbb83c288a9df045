"""Optional down-sampling of quotes and book deltas before db_writer stores them.

Quotes and book deltas are most of the rows (docs/deploy.md, "Sizing the
database") and most research needs less than every one of them. What is kept
and what is lost:

- Quotes, ``downsample_quotes_ms`` > 0: per symbol, the first quote at or
  after each step of that many milliseconds of event time is stored, the
  others are not. Lost: the changes of the top of book inside a step (a
  quote that lasted less than the step may never appear).
- Book deltas, ``downsample_book_s`` > 0: no delta is stored; db_writer keeps
  each symbol's book from the deltas it consumes and stores it whole, as one
  snapshot row, every that many seconds of event time. Lost: every change
  between two snapshots (the order of updates, levels that came and went).
  Until db_writer has seen a snapshot of a symbol (after a restart, until
  the next resync of that book) nothing is stored for it.

Trades, bars and every trading event are always stored. The state lives in
one db_writer process: after a restart a step may be stored twice or a
snapshot taken at a slightly different time, never more rows than without
down-sampling.
"""

from __future__ import annotations

from collections.abc import Iterable

from tradewind.events import BookDelta, Event, Quote
from tradewind.exchanges.common.book import L2Book


class Downsampler:
    def __init__(self, quotes_ms: int, book_s: float) -> None:
        self.quote_step = quotes_ms * 1_000_000
        self.book_step = int(book_s * 1e9)
        self._quote_due: dict[tuple[str, str], int] = {}
        self._books: dict[tuple[str, str], L2Book] = {}
        self._book_due: dict[tuple[str, str], int] = {}
        self.dropped = 0

    @property
    def active(self) -> bool:
        return bool(self.quote_step or self.book_step)

    def filter(self, events: Iterable[Event]) -> list[Event]:
        out: list[Event] = []
        for e in events:
            t = type(e)
            if t is Quote and self.quote_step:
                assert isinstance(e, Quote)
                key = (e.exchange, e.symbol)
                if e.ts_event >= self._quote_due.get(key, 0):
                    self._quote_due[key] = (e.ts_event // self.quote_step + 1) * self.quote_step
                    out.append(e)
                else:
                    self.dropped += 1
            elif t is BookDelta and self.book_step:
                assert isinstance(e, BookDelta)
                snap = self._book(e)
                if snap is not None:
                    out.append(snap)
                self.dropped += 1
            else:
                out.append(e)
        return out

    def _book(self, e: BookDelta) -> BookDelta | None:
        key = (e.exchange, e.symbol)
        book = self._books.get(key)
        if e.snapshot:
            if book is None:
                book = self._books[key] = L2Book()
            book.clear()
        elif book is None:
            return None  # no base yet: nothing known to store
        book.apply(e.bids, e.asks)
        if e.ts_event < self._book_due.get(key, 0):
            return None
        self._book_due[key] = (e.ts_event // self.book_step + 1) * self.book_step
        bids, asks = book.snapshot_levels()
        return BookDelta(
            id=f"{e.exchange}:{e.symbol}:book:{e.ts_event}:{e.last_update_id}",
            ts_event=e.ts_event,
            exchange=e.exchange,
            symbol=e.symbol,
            bids=bids,
            asks=asks,
            snapshot=True,
            first_update_id=e.last_update_id,
            last_update_id=e.last_update_id,
            ts_recv=e.ts_recv,
        )
