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
2. Drop: the oldest day of ``trades`` (its four 6 h partitions by default,
   one after the other, as retention drops them) is detached (concurrently)
   and dropped while another connection keeps writing 100-row batches into
   today's partition; prints each drop's parts and the longest (goal < 1 s),
   the whole day's, and the writer's worst batch latency during the drops
   against its median before (no lock on the others: the two are of the
   same order).
2b. ``--drop-rows N``: the same day of N trades (filled by SQL) twice, once in
   one daily partition (the baseline) and once in four 6 h partitions (the
   default for trades, quotes and book deltas), each dropped under the same
   concurrent writer; prints, per partition, the detach (lock wait on the
   parent's users), the lock of the detached table and the unlink (DROP +
   commit), and the whole day's drop in each layout. ``--drop-only`` skips
   growing and exporting.
1b. Interleaved: after growing, ``--pairs`` pairs of segments of the same
   (today's) rows, one into the grown database and one into an empty one, in
   alternating order; the median of the pairs' ratios is the figure (goal >=
   90 %): host noise falls on both halves of a pair alike, which first vs
   last segment, minutes apart, cannot give.
3. Export: the newest full day of ``trades`` (all its partitions) through
   ``tradewind.storage.export`` (PostgreSQL cursor → typed Arrow, exact
   decimals → Parquet), against a bare pyarrow write of the same rows already
   in memory (plain float columns, same compression); goal >= 70 %.

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
import msgspec
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


class Writer:
    """A ``DbWriterService`` on its own in-process bus and PostgreSQL store."""

    def __init__(self, url: str, batch: int) -> None:
        self.settings = load_settings(
            store={"url": url, "batch_size": batch, "maintenance_interval_s": 86_400},
            bus={"kind": "memory"},
            log_level="warning",
        )
        self.bus = MemoryBus()
        self.store = PostgresStore.from_settings(self.settings)

    async def start(self) -> None:
        await self.store.start()
        ctx = ServiceContext(
            bus=self.bus,
            clock=WallClock(),
            settings=self.settings,
            instruments=load_instruments(),
            store=self.store,
        )
        self.service = DbWriterService(ctx)
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
        await self.store.close()

    async def segment(self, evs: list[Event]) -> float:
        """Rows/s from the first publish until every message is acknowledged."""
        t0 = time.perf_counter()
        for i in range(0, len(evs), 1024):
            await self.bus.publish(MARKET, evs[i : i + 1024])
        while not await self.bus.idle():
            err = self.service.failed()
            if err is not None:
                raise RuntimeError(f"db_writer failed: {err!r}")
            await asyncio.sleep(0.002)
        return len(evs) / (time.perf_counter() - t0)


async def grow(url: str, tape: Tape, segment: int, batch: int) -> list[float]:
    writer = Writer(url, batch)
    await writer.start()
    rates: list[float] = []
    try:
        for lo in range(0, tape.total, segment):
            rates.append(await writer.segment(tape.rows(lo, min(lo + segment, tape.total))))
            done = min(lo + segment, tape.total)
            print(f"  {done:>12,} rows  {rates[-1]:>10,.0f} rows/s", flush=True)
    finally:
        await writer.stop()
    return rates


async def interleaved(
    grown: str, fresh: str, tape: Tape, segment: int, batch: int, pairs: int
) -> list[float]:
    """db_writer on the grown database against itself on an empty one, in
    alternating segments of the same rows (A B B A …, so a drift of the host's
    load falls on both alike): the ratio of each pair. The rows are today's,
    so on the grown database they go into the live partition that already
    holds a day's rows and index entries."""
    today = time.time_ns() // DAY * DAY
    span = max(1, time.time_ns() - today - 10**9)
    a, b = Writer(grown, batch), Writer(fresh, batch)
    await a.start()
    await b.start()
    ratios: list[float] = []
    try:
        for i in range(pairs):
            lo = tape.total + i * segment
            evs = [
                msgspec.structs.replace(e, ts_event=today + e.ts_event % span)
                for e in tape.rows(lo, lo + segment)
            ]
            if i % 2 == 0:
                ra, rb = await a.segment(evs), await b.segment(evs)
            else:
                rb, ra = await b.segment(evs), await a.segment(evs)
            ratios.append(ra / rb)
            print(f"  pair {i + 1}: grown {ra:,.0f}, empty {rb:,.0f} rows/s ({ra / rb:.0%})")
    finally:
        await a.stop()
        await b.stop()
    return ratios


async def drop_day(
    url: str,
) -> tuple[float, float, float, str, list[partitions.Dropped]]:
    """The oldest day of trades (one partition, or four of 6 h: as retention
    would drop it, one after the other) dropped while a writer keeps writing."""
    conn = await asyncpg.connect(url)
    try:
        parts = await partitions.existing(conn, "trades")
    finally:
        await conn.close()
    day = parts[0].lo // DAY * DAY
    return await drop_under_writer(url, [p for p in parts if p.hi <= day + DAY])


async def fill_day(url: str, day: int, rows: int, interval: int) -> list[partitions.Partition]:
    """One day of ``rows`` trades in partitions of ``interval`` ns, by SQL."""
    conn = await asyncpg.connect(url)
    try:
        made = await partitions.ensure(
            conn, {"trades": {(lo, lo + interval) for lo in range(day, day + DAY, interval)}}
        )
        await conn.execute(
            "INSERT INTO trades (id, ts_event, exchange, symbol, price, qty, side, trade_id, "
            f"ts_recv) SELECT 'd{day}-' || g, {day} + g * ({DAY} / {rows}), 'binance', "
            "'BTCUSDT', 61837.63 + (g % 1000) * 0.01, 0.001 * (1 + g % 7), 'buy', g::text, "
            f"{day} + g * ({DAY} / {rows}) + 1000000 FROM generate_series(0, {rows} - 1) g"
        )
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return sorted(made, key=lambda p: p.lo)


async def drop_under_writer(
    url: str, parts: list[partitions.Partition]
) -> tuple[float, float, float, str, list[partitions.Dropped]]:
    """``parts`` dropped one after the other while a writer keeps writing."""
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
    dropped: list[partitions.Dropped] = []
    try:
        await asyncio.sleep(2.0)
        rows = size = 0
        for p in parts:
            rows += await conn.fetchval(f'SELECT count(*) FROM "{p.name}"')
            size += await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", p.name)
        t0 = time.perf_counter()
        for p in parts:
            dropped.append(await partitions.drop(conn, p))
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
    names = parts[0].name if len(parts) == 1 else f"{len(parts)} partitions"
    what = f"{names} ({rows:,} rows, {size / 1e6:,.0f} MB)"
    return took, statistics.median(before), max(during or [0.0]), what, dropped


async def migrated(url: str) -> None:
    store = PostgresStore(url)
    await store.start()
    await store.close()


def print_drops(dropped: list[partitions.Dropped]) -> None:
    for d in dropped:
        print(
            f"  {d.bytes / 1e6:6,.0f} MB: detach {d.detach_s * 1000:6.1f} ms, "
            f"lock {d.lock_s * 1000:5.1f} ms, unlink {d.unlink_s * 1000:6.1f} ms"
        )
    worst_one = max(d.detach_s + d.lock_s + d.unlink_s for d in dropped)
    print(f"  longest single drop {worst_one * 1000:,.0f} ms (goal < 1 s)")


def drop_layouts(url: str, rows: int) -> None:
    """The same day dropped as one daily partition and as four of 6 h."""
    base = (time.time_ns() // DAY - 40) * DAY
    asyncio.run(migrated(url))
    results = {}
    for label, interval, day in (("1 day", DAY, base), ("6 h", DAY // 4, base + DAY)):
        t0 = time.perf_counter()
        parts = asyncio.run(fill_day(url, day, rows, interval))
        print(f"  filled {label}: {rows:,} rows in {time.perf_counter() - t0:,.0f} s", flush=True)
        results[label] = asyncio.run(drop_under_writer(url, parts))
    for label, (took, median, worst, what, dropped) in results.items():
        print(f"drop a day of trades as {label} partitions, {what}: {took * 1000:,.0f} ms")
        print_drops(dropped)
        print(
            f"  concurrent writer median {median * 1000:.1f} ms before, "
            f"worst {worst * 1000:.1f} ms during"
        )
    day_s, six_s = results["1 day"][0], results["6 h"][0]
    print(f"6 h layout / daily layout, whole day: {six_s / day_s:.0%}")


async def export_day(url: str, out: Path) -> tuple[int, float, float]:
    store = PostgresStore(url)
    await store.start()
    try:
        conn = await asyncpg.connect(url)
        try:
            parts = await partitions.existing(conn, "trades")
            full = [p for p in parts if p.hi <= time.time_ns() // DAY * DAY]
            newest = max(full, key=lambda p: p.lo) if full else parts[0]
            lo = (newest.hi - 1) // DAY * DAY  # its whole day, whatever the partitions
            hi = lo + DAY
            cols = BY_TABLE["trades"].columns
            rows = await conn.fetch(
                f"SELECT {', '.join(cols)} FROM trades WHERE ts_event >= {lo} "
                f"AND ts_event < {hi} ORDER BY symbol, ts_event"
            )
        finally:
            await conn.close()
        stats = await export(store, "trades", out / "tw", since_ns=lo, until_ns=hi)
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
    ap.add_argument("--drop-rows", type=int, default=0, help="rows of the day of 2b (0: skip)")
    ap.add_argument("--drop-only", action="store_true", help="only the drop comparison (2b)")
    ap.add_argument(
        "--pairs", type=int, default=8, help="interleaved grown/empty segment pairs (1b)"
    )
    args = ap.parse_args()
    print(f"machine: {machine()}")
    name = f"twbench_{uuid.uuid4().hex[:10]}"
    url = f"{args.url.rpartition('/')[0]}/{name}"
    asyncio.run(admin(args.url, f'CREATE DATABASE "{name}"'))
    try:
        if args.drop_rows or args.drop_only:
            drop_layouts(url, args.drop_rows or 5_000_000)
        if args.drop_only:
            return 0
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
        fresh = f"{name}_empty"
        asyncio.run(admin(args.url, f'CREATE DATABASE "{fresh}"'))
        try:
            fresh_url = f"{args.url.rpartition('/')[0]}/{fresh}"
            ratios = asyncio.run(
                interleaved(url, fresh_url, tape, args.segment, args.batch, args.pairs)
            )
        finally:
            asyncio.run(admin(args.url, f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
        print(
            f"db_writer on the grown database / on an empty one, {args.pairs} interleaved "
            f"pairs: median {statistics.median(ratios):.0%} (range {min(ratios):.0%}"
            f"-{max(ratios):.0%}; goal >= 90 %)"
        )
        took, median, worst, what, dropped = asyncio.run(drop_day(url))
        print(f"drop the oldest day of trades, {what}: {took * 1000:,.0f} ms in all")
        print_drops(dropped)
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
