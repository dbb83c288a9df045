"""db_writer rows/s into PostgreSQL, against a bare asyncpg COPY of the same rows
into the same table, in the same run.

The rows are the real recorded Binance trades (shifted copies, see
``_ticks.py``), written to ``trades`` of a fresh database migrated to the
current schema. Tradewind: the ``DbWriterService`` with the PostgreSQL store,
fed over the in-process bus, timed from the first publish until every message
is acknowledged (acks come only after commit, so everything is durable).
Baseline: ``copy_records_to_table`` of the same row tuples in batches of the
store's batch size, one connection, no bus. Needs ``storage/postgres.py``
(issue 4); without it only the baseline runs and the comparison is reported
as skipped.

The two sides run as interleaved pairs (their order alternating) and the
ratio is the median of the pairs' ratios. Best-of-N of each side, the first
way, let one lucky baseline decide: three runs on one quiet host gave 92.3 %,
92.0 % and 74.7 %, the last from a baseline 54 % faster than its own two
other rounds, while db_writer's rate moved 25 %. The best-of ratio is
printed beside the median.

A million rows by default, not 200k: db_writer's first maintenance pass
(partitions ahead, retention, the database's size) runs as it starts, beside
its first batches, and took 99-124 ms here, a tenth of a 200k-row run (~0.9 s
a side) but 3 % of a million-row one; pairs also spread less (86-102 % against
69-104 %).

    python bench/bench_db_writer.py [--rows 1000000] [--url postgresql://postgres:test@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg

from _ticks import TickTape, recorded_trades
from bench_pipeline import machine
from tradewind.bus import MemoryBus
from tradewind.clock import WallClock
from tradewind.config import load_settings
from tradewind.events import Trade
from tradewind.exchanges.instruments import load_instruments
from tradewind.runtime.loop import run_async
from tradewind.storage import migrate, partitions, schema
from tradewind.storage.rows import COLUMNS, group_rows
from tradewind.topics import MARKET

TARGET_RATIO = 0.9
DEFAULT_URL = "postgresql://postgres:test@127.0.0.1:5432/postgres"


def events(n: int) -> list[Trade]:
    tape = TickTape(n, recorded_trades())
    out: list[Trade] = []
    for tb in tape.template_batches(4096):
        out.extend(tape.stamp(tb))
    return out


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def copy_baseline(url: str, evs: list[Trade], batch: int) -> float:
    rows = group_rows(evs)[schema.trades]
    columns = list(COLUMNS[schema.trades])
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE trades")
        # The market tables are partitioned by time (issue 16): the recording's
        # partitions exist before either side is timed, as db_writer would make them.
        interval = load_settings().store.interval_s("trades") * partitions.NS
        await partitions.ensure(
            conn, {"trades": partitions.aligned((e.ts_event for e in evs), interval)}
        )
        t0 = time.perf_counter()
        for i in range(0, len(rows), batch):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "trades", records=rows[i : i + batch], columns=columns
                )
        elapsed = time.perf_counter() - t0
        n = await conn.fetchval("SELECT count(*) FROM trades")
    finally:
        await conn.close()
    assert n == len(rows), f"COPY wrote {n} of {len(rows)} rows"
    return elapsed


async def tradewind_writer(url: str, evs: list[Trade], batch: int) -> float:
    from tradewind.services import DbWriterService, ServiceContext
    from tradewind.storage import create_store

    await admin(url, "TRUNCATE trades")
    settings = load_settings(
        # retention off: the rows are a 2024 recording, which it would drop
        store={
            "url": url,
            "batch_size": batch,
            "retention": {"trades_days": 0, "quotes_days": 0, "book_deltas_days": 0},
        },
        bus={"kind": "memory"},
        log_level="warning",
    )
    bus = MemoryBus()
    store = create_store(settings)
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
    try:
        t0 = time.perf_counter()
        for i in range(0, len(evs), 1024):
            await bus.publish(MARKET, evs[i : i + 1024])
        while not await bus.idle():
            err = writer.failed()
            if err is not None:
                raise RuntimeError(f"db_writer failed: {err!r}")
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - t0
    finally:
        await writer.stop()
        await store.close()
    n = writer.rows.get("trades", 0)
    assert n == len(evs), f"db_writer wrote {n} of {len(evs)} rows"
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", default=DEFAULT_URL, help="server to create a scratch database on")
    ap.add_argument("--batch", type=int, default=5000, help="rows per transaction (both sides)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved pairs")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    evs = events(args.rows)
    name = f"twbench_{uuid.uuid4().hex[:10]}"
    head = args.url.rpartition("/")[0]
    url = f"{head}/{name}"
    asyncio.run(admin(args.url, f'CREATE DATABASE "{name}"'))
    try:
        migrate.upgrade(url)
        try:
            from tradewind.storage.postgres import PostgresStore  # noqa: F401

            have_store = True
        except ImportError:
            have_store = False
        copy_s: list[float] = []
        tw_s: list[float] = []
        for r in range(args.rounds):
            first_copy = r % 2 == 0 or not have_store
            if first_copy:
                copy_s.append(run_async(copy_baseline(url, evs, args.batch)))
            if have_store:
                tw_s.append(run_async(tradewind_writer(url, evs, args.batch)))
            if not first_copy:
                copy_s.append(run_async(copy_baseline(url, evs, args.batch)))
    finally:
        asyncio.run(admin(args.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    copy_rps = args.rows / min(copy_s)
    print(f"rows: {args.rows:,} trades, {args.batch} per transaction, {args.rounds} pairs")
    print(f"baseline (asyncpg COPY): {copy_rps:,.0f} rows/s (best)")
    if not have_store:
        print("db_writer: SKIPPED - tradewind.storage.postgres is not there yet (issue 4)")
        return 0
    tw_rps = args.rows / min(tw_s)
    pairs = [c / t for c, t in zip(copy_s, tw_s, strict=True)]
    print(f"db_writer (PostgreSQL store): {tw_rps:,.0f} rows/s (best)")
    print("pair ratios db_writer/COPY: " + ", ".join(f"{p:.1%}" for p in pairs))
    print(
        f"ratio db_writer/COPY: median of pairs {statistics.median(pairs):.1%}, "
        f"best of each {tw_rps / copy_rps:.1%}  (target >= {TARGET_RATIO:.0%}; "
        f"load {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
