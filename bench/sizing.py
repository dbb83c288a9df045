"""Rows and bytes per day per symbol and channel, measured on the shared recordings.

Each recording is parsed as ``tradewind run`` parses it, written to a scratch
PostgreSQL database through the store, and measured: events per table and
symbol over the recording's own time span (first to last ``ts_event``), scaled
to a day, and PostgreSQL's bytes per row of each table (heap, TOAST and
indexes: ``pg_total_relation_size`` of its partitions over its rows, on
enough copies of the recording, with new ids, that the fixed size of an
empty partition does not count). The
figures feed the sizing guide in docs/deploy.md.

    python bench/sizing.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [FILE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import msgspec

from tradewind.events import BookDelta, Event, MarketEvent, Quote, Trade
from tradewind.exchanges.replay import ReplaySource
from tradewind.storage.postgres import PostgresStore

ROOT = Path(__file__).resolve().parent.parent
MARKET_DATA = Path(
    os.environ.get("TRADEWIND_MARKET_DATA", ROOT.parent / "shared" / "data" / "market")
)
DEFAULT_FILES = (
    "binance_spot_btcusdt_combined_20240808.jsonl",
    "binance_usdm_btcusdt_combined_20240808.jsonl",
    "binance_spot_4sym_ws_20210814.jsonl",
    "bybit_v5_spot_ws_20260809.jsonl",
    "bybit_v5_linear_ws_20260809.jsonl",
    "coinbase_advanced_ws_20260809.jsonl",
    "kraken_spot_ws_v1_20210417.jsonl",
)
TABLE = {Trade: "trades", Quote: "quotes", BookDelta: "book_deltas"}
DAY_S = 86_400
COPIES_ROWS = 200_000


async def measure(url: str, path: Path) -> list[tuple[str, str, str, float, int]]:
    events: list[MarketEvent] = [e async for b in ReplaySource([path]).batches(4096) for e in b]
    stamped = [e for e in events if e.ts_event > 0]
    if not stamped:
        return []
    span_s = max(1.0, (max(e.ts_event for e in stamped) - min(e.ts_event for e in stamped)) / 1e9)
    per: Counter[tuple[str, str, str]] = Counter()
    for e in events:
        table = TABLE.get(type(e))
        if table is not None:
            per[(e.exchange, e.symbol, table)] += 1
    # Enough copies (new ids, same times) that the empty pages of a partition
    # and its indexes do not weigh on the bytes per row.
    copies = max(1, -(-COPIES_ROWS // len(events)))
    store = PostgresStore(url)
    await store.start()
    try:
        for c in range(copies):
            batch: list[Event] = [msgspec.structs.replace(e, id=f"{e.id}~{c}") for e in events]
            for i in range(0, len(batch), 5000):
                await store.write(batch[i : i + 5000])
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        size: dict[str, float] = {}
        for table in TABLE.values():
            n = await conn.fetchval(f"SELECT count(*) FROM {table}")
            total = await conn.fetchval(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                "WHERE inhparent = $1::regclass",
                table,
            )
            size[table] = total / n if n else 0.0
            await conn.execute(f"TRUNCATE {table}")
    finally:
        await conn.close()
    out = []
    for (ex, sym, table), n in sorted(per.items()):
        out.append((ex, sym, table, n * DAY_S / span_s, round(size[table])))
    print(f"{path.name}: {len(events):,} events over {span_s:,.0f} s", file=sys.stderr)
    return out


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    files = args.files or [MARKET_DATA / f for f in DEFAULT_FILES]
    name = f"twsizing_{uuid.uuid4().hex[:10]}"
    url = f"{args.url.rpartition('/')[0]}/{name}"
    asyncio.run(admin(args.url, f'CREATE DATABASE "{name}"'))
    try:
        print("| recording | exchange | symbol | table | rows/day | bytes/row | MB/day |")
        print("|---|---|---|---|---:|---:|---:|")
        for f in files:
            for ex, sym, table, per_day, b in asyncio.run(measure(url, f)):
                mb = per_day * b / 1e6
                print(f"| {f.name} | {ex} | {sym} | {table} | {per_day:,.0f} | {b} | {mb:,.0f} |")
    finally:
        asyncio.run(admin(args.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
