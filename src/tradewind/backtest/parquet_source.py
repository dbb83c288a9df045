"""Replays a Parquet export (``tradewind export``) as the backtest's market data.

Every exported table and symbol of a day is read a record batch at a time
and merged by ``ts_event``, so recorded live data replays without going
through JSON lines, in memory bounded by one batch per open file.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Iterable, Iterator
from operator import attrgetter
from pathlib import Path

from tradewind.clock import ReplayClock
from tradewind.events import MarketEvent
from tradewind.exchanges.replay import ReplaySource
from tradewind.storage import parquet

_TS = attrgetter("ts_event")


def is_export(path: Path) -> bool:
    return path.is_dir() and bool(parquet.files(path))


class ParquetReplaySource(ReplaySource):
    def __init__(self, roots: Iterable[Path], clock: ReplayClock | None = None) -> None:
        # No lines to detect a format in: batches() below reads the Parquet files.
        super().__init__(roots, speed=0.0, clock=clock, lines=())
        self.days: dict[str, list[tuple[str, Path]]] = {}
        for root in self.paths:
            found = parquet.files(root)
            if not found:
                raise ValueError(
                    f"{root}: no Parquet export here (TABLE/date=YYYY-MM-DD/symbol=SYMBOL/"
                    "*.parquet, as tradewind export writes)"
                )
            for table, paths in found.items():
                for p in paths:
                    day = p.parent.parent.name.removeprefix("date=")
                    self.days.setdefault(day, []).append((table, p))
        self.tables = {t for files in self.days.values() for t, _ in files}

    @property
    def bars_only(self) -> bool:
        return self.tables == {"bars"}

    def _events(self, table: str, path: Path) -> Iterator[MarketEvent]:
        for events in parquet.read_events(path, table):
            self.stats.lines += len(events)
            yield from events

    async def batches(self, max_batch: int = 1024) -> AsyncIterator[list[MarketEvent]]:
        batch: list[MarketEvent] = []
        for day in sorted(self.days):
            streams = [self._events(t, p) for t, p in self.days[day]]
            for e in heapq.merge(*streams, key=_TS):
                batch.append(e)
                if len(batch) >= max_batch:
                    yield self._emit(batch)
                    batch = []
        if batch:
            yield self._emit(batch)
