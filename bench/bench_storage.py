"""Storage that runs for a year: db_writer's rows/s as the market tables grow,
dropping a day's partition, and export throughput.

1. Grow: ``--rows`` market rows (trades and quotes, one of each per recorded
   Binance trade, shifted copies) spread over ``--days`` days ending now, fed
   to the ``DbWriterService`` with the PostgreSQL store over the in-process
   bus in segments of ``--segment`` rows. Each segment is timed from its
   first publish until every message is acknowledged (acks follow commits);
   the rows/s of the first and the last segments are compared (goal: end >=
   90 % of start: partitions keep the live one small, so inserts and index
   updates do not slow down as the table grows).
2. Drop: the oldest day of ``trades`` is detached (concurrently) and dropped
   while another connection keeps writing 100-row batches into today's
   partition; prints the drop's duration (goal < 1 s) and the writer's worst
   batch latency during the drop against its median before (no lock on the
   others: the two are of the same order).
3. Export: the newest full day of ``trades`` through ``tradewind.storage.export``
   (PostgreSQL cursor → typed Arrow, exact decimals → Parquet), against a bare
   pyarrow write of the same rows already in memory (plain float columns,
   same compression); goal >= 70 %.

    python bench/bench_storage.py [--rows 50000000] [--days 5] [--url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq

from _ticks import recorded_trades
from bench_pipeline import machine
from tradewind.bus import MemoryBus
from tradewind.clock import WallClock
from tradewind.config import load_settings
from tradewind.events import Event, Quote, Trade
from tradewind.exchanges.instruments import load_instruments
from tradewind.services import DbWriterService, ServiceContext
from tradewind.storage import partitions
from tradewind.storage.export import export
from tradewind.storage.postgres import PostgresStore
from tradewind.storage.schema import BY_TABLE
from tradewind.topics import MARKET

DAY = partitions.DAY_NS
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class Tape:
    """Market rows on demand: row ``k`` of ``total`` at its place in time."""

    def __init__(self, total: int, days: int) -> None:
        self.base = recorded_trades()
        self.total = total
        self.start = (time.time_ns() // DAY - days + 1) * DAY
        self.span = days * DAY - 60 * 10**9
        self.symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")

    def rows(self, lo: int, hi: int) -> list[Event]:
        out: list[Event] = []
        base, n = self.base, len(self.base)
        for k in range(lo, hi, 2):
            t = base[k // 2 % n]
            ts = self.start + self.span * k // self.total
            sym = self.symbols[k // 2 % 4]
            out.append(
                Trade(
                    id=f"t{k}",
                    ts_event=ts,
                    exchange="binance",
                    symbol=sym,
                    price=t.price,
                    qty=t.qty,
                    side=t.side,
                    trade_id=str(k),
                    ts_recv=ts + 1_000_000,
                )
            )
            out.append(
                Quote(
                    id=f"q{k}",
                    ts_event=ts,
                    exchange="binance",
                    symbol=sym,
                    bid=round(t.price - 0.01, 2),
                    bid_qty=t.qty,
                    ask=round(t.price + 0.01, 2),
                    ask_qty=t.qty * 2,
                    ts_recv=ts + 1_000_000,
                    update_id=k,
                )
            )
        return out


async def grow(url: str, tape: Tape, segment: int, batch: int) -> list[float]:
    settings = load_settings(
        store={"url": url, "batch_size": batch, "maintenance_interval_s": 86_400},
        bus={"kind": "memory"},
        log_level="warning",
    )
    bus = MemoryBus()
    store = PostgresStore.from_settings(settings)
    await store.start()
    ctx = ServiceContext(
        bus=bus,
        clock=WallClock(),
        settings=settings,
        instruments=load_instruments(),
        store=store,
    )
    writer = DbWriterService(ctx)
    await writer.start()
    rates: list[float] = []
    try:
        for lo in range(0, tape.total, segment):
            evs = tape.rows(lo, min(lo + segment, tape.total))
            t0 = time.perf_counter()
            for i in range(0, len(evs), 1024):
                await bus.publish(MARKET, evs[i : i + 1024])
            while not await bus.idle():
                err = writer.failed()
                if err is not None:
                    raise RuntimeError(f"db_writer failed: {err!r}")
                await asyncio.sleep(0.002)
            rates.append(len(evs) / (time.perf_counter() - t0))
            done = lo + len(evs)
            print(f"  {done:>12,} rows  {rates[-1]:>10,.0f} rows/s", flush=True)
    finally:
        await writer.stop()
        await store.close()
    return rates


async def drop_day(url: str) -> tuple[float, float, float, str]:
    """The oldest trades partition dropped while a writer keeps writing."""
    store = PostgresStore(url)
    await store.start()
    conn = await asyncpg.connect(url)
    latencies: list[tuple[float, float]] = []  # (start, seconds)
    stop = asyncio.Event()

    async def keep_writing() -> None:
        k = 0
        while not stop.is_set():
            now = time.time_ns()
            evs: list[Event] = [
                Trade(
                    id=f"w{k}-{j}",
                    ts_event=now,
                    exchange="binance",
                    symbol="BTCUSDT",
                    price=1.0,
                    qty=1.0,
                    side=None,
                    trade_id=str(j),
                    ts_recv=now,
                )
                for j in range(100)
            ]
            k += 1
            t0 = time.perf_counter()
            await store.write(evs)
            latencies.append((t0, time.perf_counter() - t0))
            await asyncio.sleep(0.01)

    task = asyncio.create_task(keep_writing())
    try:
        await asyncio.sleep(2.0)
        oldest = (await partitions.existing(conn, "trades"))[0]
        rows = await conn.fetchval(f'SELECT count(*) FROM "{oldest.name}"')
        size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", oldest.name)
        t0 = time.perf_counter()
        await partitions.drop(conn, oldest)
        took = time.perf_counter() - t0
        t1 = time.perf_counter()
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await task
        await conn.close()
        await store.close()
    before = [s for t, s in latencies if t < t0]
    during = [s for t, s in latencies if t0 - 0.5 <= t <= t1]
    what = f"{oldest.name} ({rows:,} rows, {size / 1e6:,.0f} MB)"
    return took, statistics.median(before), max(during or [0.0]), what


async def export_day(url: str, out: Path) -> tuple[int, float, float]:
    store = PostgresStore(url)
    await store.start()
    try:
        conn = await asyncpg.connect(url)
        try:
            parts = await partitions.existing(conn, "trades")
            full = [p for p in parts if p.hi <= time.time_ns() // DAY * DAY]
            day = max(full, key=lambda p: p.lo) if full else parts[0]
            cols = BY_TABLE["trades"].columns
            rows = await conn.fetch(
                f"SELECT {', '.join(cols)} FROM trades WHERE ts_event >= {day.lo} "
                f"AND ts_event < {day.hi} ORDER BY symbol, ts_event"
            )
        finally:
            await conn.close()
        stats = await export(store, "trades", out / "tw", since_ns=day.lo, until_ns=day.hi)
    finally:
        await store.close()
    # Bare pyarrow: the same rows, already in memory, as plain columns.
    t0 = time.perf_counter()
    columns = list(zip(*rows, strict=True))
    table = pa.table({name: pa.array(col) for name, col in zip(cols, columns, strict=True)})
    pq.write_table(table, out / "bare.parquet", compression="zstd")
    bare = time.perf_counter() - t0
    assert stats.rows == len(rows), (stats.rows, len(rows))
    return len(rows), stats.rows_per_s, len(rows) / bare


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000, help="market rows to grow to")
    ap.add_argument("--days", type=int, default=5, help="days the rows are spread over")
    ap.add_argument("--segment", type=int, default=500_000, help="rows per timed segment")
    ap.add_argument("--batch", type=int, default=5000, help="db_writer batch size")
    ap.add_argument("--url", default=DEFAULT_URL, help="server to create a scratch database on")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    name = f"twbench_{uuid.uuid4().hex[:10]}"
    url = f"{args.url.rpartition('/')[0]}/{name}"
    asyncio.run(admin(args.url, f'CREATE DATABASE "{name}"'))
    try:
        tape = Tape(args.rows, args.days)
        print(
            f"grow: {args.rows:,} rows (trades + quotes) over {args.days} days, batch {args.batch}"
        )
        t0 = time.perf_counter()
        rates = asyncio.run(grow(url, tape, args.segment, args.batch))
        print(f"grown in {time.perf_counter() - t0:,.0f} s")
        start, end = rates[0], rates[-1]
        print(
            f"db_writer rows/s: start {start:,.0f}, end {end:,.0f} "
            f"({end / start:.0%} of start; goal >= 90 %)"
        )
        tenth = max(1, len(rates) // 10)
        first, last = statistics.mean(rates[:tenth]), statistics.mean(rates[-tenth:])
        print(
            f"  mean of the first and last {tenth} segments (noise of a shared host): "
            f"{first:,.0f} -> {last:,.0f} ({last / first:.0%})"
        )
        took, median, worst, what = asyncio.run(drop_day(url))
        print(f"drop {what}: {took * 1000:,.0f} ms (goal < 1 s)")
        print(
            f"  concurrent writer, 100-row batches: median {median * 1000:.1f} ms before, "
            f"worst {worst * 1000:.1f} ms during the drop"
        )
        with tempfile.TemporaryDirectory() as d:
            n, tw, bare = asyncio.run(export_day(url, Path(d)))
        print(
            f"export one day of trades ({n:,} rows): {tw:,.0f} rows/s; "
            f"bare pyarrow write {bare:,.0f} rows/s ({tw / bare:.0%}; goal >= 70 %)"
        )
    finally:
        if not args.keep:
            asyncio.run(admin(args.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
