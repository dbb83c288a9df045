"""Market tables out to Parquet, a day at a time, in bounded memory.

Each day of the range is one query in event-time order (one partition on
PostgreSQL), read a chunk at a time as Arrow batches (``Store.arrow_batches``);
each symbol's rows go to their own file (``parquet.partition_dir``).
Converting and writing a chunk runs in a thread while the next chunk is
fetched. Memory holds a few chunks, whatever the size of the table.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
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
    """One Parquet file per symbol of the current day, written from a worker
    thread. Rows come in event-time order (no sort by symbol: on PostgreSQL a
    text sort costs more than the whole export); each batch is split by
    symbol, and a symbol's rows are buffered into row groups of about
    ``group_rows``, all buffers together never above ``2 * group_rows``."""

    def __init__(self, root: Path, table: str, stats: ExportStats, group_rows: int) -> None:
        self.root, self.table, self.stats = root, table, stats
        self.group_rows = group_rows
        self.schema = parquet.arrow_schema(table)
        self.day = ""
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.buffers: dict[str, list[pa.RecordBatch]] = {}
        self.buffered = 0

    def write(self, day: str, batch: pa.RecordBatch) -> None:
        if day != self.day:
            self.close()
            self.day = day
        for symbol, part in parquet.by_symbol(batch):
            buf = self.buffers.setdefault(symbol, [])
            buf.append(part)
            self.buffered += part.num_rows
            if sum(b.num_rows for b in buf) >= self.group_rows:
                self._flush(symbol)
        if self.buffered > 2 * self.group_rows:
            for symbol in list(self.buffers):
                self._flush(symbol)

    def _flush(self, symbol: str) -> None:
        parts = self.buffers.pop(symbol, [])
        if not parts:
            return
        w = self.writers.get(symbol)
        if w is None:
            d = parquet.partition_dir(self.root, self.table, self.day, symbol)
            d.mkdir(parents=True, exist_ok=True)
            path = d / "part-0.parquet"
            w = self.writers[symbol] = pq.ParquetWriter(path, self.schema, compression="zstd")
            self.stats.files.append(path)
        table = pa.Table.from_batches(parts, self.schema)
        w.write_table(table, row_group_size=max(table.num_rows, 1))
        self.buffered -= table.num_rows
        self.stats.rows += table.num_rows

    def close(self) -> None:
        for symbol in list(self.buffers):
            self._flush(symbol)
        for w in self.writers.values():
            w.close()
        self.writers.clear()
        self.buffered = 0


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
    sink = _Sink(out, table, stats, chunk)
    pending: asyncio.Future[None] | None = None
    try:
        day = since_ns // DAY_NS * DAY_NS
        while day < until_ns:
            lo, hi = max(day, since_ns), min(day + DAY_NS, until_ns)
            label = datetime.fromtimestamp(day // 1_000_000_000, UTC).strftime("%Y-%m-%d")
            cond = f"ts_event >= {lo} AND ts_event < {hi}"
            sql = (
                f"SELECT {', '.join(columns)} FROM {table} "
                f"{where + ' AND' if where else 'WHERE'} {cond} ORDER BY ts_event"
            )
            pending = None
            async for batch in store.arrow_batches(sql, table, chunk):
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(asyncio.to_thread(sink.write, label, batch))
            if pending is not None:
                await pending
            day += DAY_NS
    finally:
        if pending is not None and not pending.done():
            await asyncio.wait([pending])
        await asyncio.to_thread(sink.close)
    stats.seconds = time.perf_counter() - t0
    return stats
