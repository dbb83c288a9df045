"""Market tables out to Parquet, a day at a time, in bounded memory.

Each day of the range is one query ordered by symbol and event time (one
partition on PostgreSQL), read through the store's cursor a chunk at a time;
each symbol's run of rows goes to its own file
(``parquet.partition_dir``). Converting and writing a chunk runs in a thread
while the next chunk is fetched. Memory holds about two chunks, whatever the
size of the table.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import pyarrow.parquet as pq

from tradewind.storage import parquet
from tradewind.storage.base import Store
from tradewind.storage.schema import BY_TABLE

DAY_NS = 86_400 * 1_000_000_000
_SYMBOL = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")


@dataclass
class ExportStats:
    rows: int = 0
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class _Sink:
    """The open file of the current (day, symbol), written from a worker thread."""

    def __init__(self, root: Path, table: str, stats: ExportStats) -> None:
        self.root, self.table, self.stats = root, table, stats
        self.schema = parquet.arrow_schema(table)
        self.key: tuple[str, str] | None = None
        self.writer: pq.ParquetWriter | None = None

    def write(self, day: str, rows: Sequence[Sequence[object]], sym_at: int) -> None:
        for symbol, run in groupby(rows, itemgetter(sym_at)):
            part = list(run)
            key = (day, str(symbol))
            if key != self.key:
                self.close()
                d = parquet.partition_dir(self.root, self.table, day, str(symbol))
                d.mkdir(parents=True, exist_ok=True)
                path = d / "part-0.parquet"
                self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
                self.key = key
                self.stats.files.append(path)
            assert self.writer is not None
            self.writer.write_batch(parquet.to_batch(self.table, part, self.schema))
            self.stats.rows += len(part)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.key = None


def check_symbols(symbols: Sequence[str]) -> None:
    for s in symbols:
        if not _SYMBOL.match(s):
            raise ValueError(f"not a symbol: {s!r}")


async def _bounds(store: Store, table: str, where: str) -> tuple[int, int] | None:
    rows = await store.fetch(f"SELECT min(ts_event), max(ts_event) FROM {table}{where}")
    if not rows or rows[0][0] is None:
        return None
    return int(str(rows[0][0])), int(str(rows[0][1])) + 1


async def export(
    store: Store,
    table: str,
    out: Path,
    symbols: Sequence[str] = (),
    since_ns: int | None = None,
    until_ns: int | None = None,
    chunk: int = 50_000,
) -> ExportStats:
    """Write ``table``'s rows in ``[since_ns, until_ns)`` (default: all) of
    ``symbols`` (default: all) under ``out``; raises ValueError on bad input."""
    if table not in parquet.TABLES:
        raise ValueError(f"cannot export {table!r}: one of {', '.join(parquet.TABLES)}")
    check_symbols(symbols)
    where = ""
    if symbols:
        where = " WHERE symbol IN (" + ", ".join(f"'{s}'" for s in symbols) + ")"
    t0 = time.perf_counter()
    stats = ExportStats()
    if since_ns is None or until_ns is None:
        found = await _bounds(store, table, where)
        if found is None:
            return stats
        since_ns = found[0] if since_ns is None else since_ns
        until_ns = found[1] if until_ns is None else until_ns
    if until_ns <= since_ns:
        raise ValueError("--until must be after --since")
    columns = BY_TABLE[table].columns
    sym_at = columns.index("symbol")
    sink = _Sink(out, table, stats)
    pending: asyncio.Future[None] | None = None
    try:
        day = since_ns // DAY_NS * DAY_NS
        while day < until_ns:
            lo, hi = max(day, since_ns), min(day + DAY_NS, until_ns)
            label = datetime.fromtimestamp(day // 1_000_000_000, UTC).strftime("%Y-%m-%d")
            cond = f"ts_event >= {lo} AND ts_event < {hi}"
            sql = (
                f"SELECT {', '.join(columns)} FROM {table} "
                f"{where + ' AND' if where else 'WHERE'} {cond} ORDER BY symbol, ts_event"
            )
            pending = None
            async for rows in store.stream(sql, chunk):
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(asyncio.to_thread(sink.write, label, rows, sym_at))
            if pending is not None:
                await pending
            day += DAY_NS
    finally:
        if pending is not None and not pending.done():
            await asyncio.wait([pending])
        await asyncio.to_thread(sink.close)
    stats.seconds = time.perf_counter() - t0
    return stats
