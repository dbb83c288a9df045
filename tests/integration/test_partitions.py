"""Market tables partitioned by event time on a real PostgreSQL: the migration
keeps every row, partitions exist ahead and appear on demand, redelivery
still inserts nothing, and retention drops whole expired partitions only."""

from __future__ import annotations

import asyncio
import itertools
import time

import asyncpg
import pytest

from tests.bus_contract import fill
from tradewind.events import Bar, BookDelta, Event, Quote, Side, Trade
from tradewind.storage import migrate, partitions
from tradewind.storage.postgres import PostgresStore

pytestmark = pytest.mark.postgres

DAY = partitions.DAY_NS
SIX_H = DAY // 4
NOW = 1_764_979_200 * 10**9 + 23 * 3600 * 10**9 + 3599 * 10**9  # 2025-12-06 23:59:59 UTC


def _trade(i: int, ts: int) -> Trade:
    return Trade(
        id=f"t{i}",
        ts_event=ts,
        exchange="binance",
        symbol="BTCUSDT",
        price=100.0 + i,
        qty=1.0,
        side=Side.BUY,
        trade_id=str(i),
        ts_recv=ts,
    )


def _quote(i: int, ts: int) -> Quote:
    return Quote(
        id=f"q{i}",
        ts_event=ts,
        exchange="binance",
        symbol="BTCUSDT",
        bid=1.0,
        bid_qty=2.0,
        ask=1.5,
        ask_qty=3.0,
        ts_recv=ts,
        update_id=i,
    )


def _book(i: int, ts: int) -> BookDelta:
    return BookDelta(
        id=f"b{i}",
        ts_event=ts,
        exchange="binance",
        symbol="BTCUSDT",
        bids=[(1.0, 2.0)],
        asks=[(1.5, 0.0)],
        snapshot=False,
        first_update_id=i,
        last_update_id=i,
        ts_recv=ts,
    )


def _bar(i: int, ts: int) -> Bar:
    return Bar(
        id=f"k{i}",
        ts_event=ts,
        exchange="binance",
        symbol="BTCUSDT",
        interval_s=60.0,
        ts_open=ts - 60 * 10**9,
        open=1.0,
        high=2.0,
        low=0.5,
        close=1.5,
        volume=3.0,
        trades=4,
        ts_recv=ts,
    )


async def _parts(url: str, table: str) -> list[str]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return [p.name for p in await partitions.existing(conn, table)]
    finally:
        await conn.close()


async def test_migration_converts_plain_tables_without_losing_rows(postgres_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, postgres_url, "0002")
    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        for day in range(3):
            ts = NOW - day * DAY
            await conn.execute(
                "INSERT INTO trades VALUES ($1, 'binance', 'BTCUSDT', '7', 1.5, 2.0, 'buy', "
                "$2, $2)",
                f"t{day}",
                ts,
            )
            await conn.execute(
                "INSERT INTO quotes VALUES ($1, 'binance', 'BTCUSDT', 1, 2, 3, 4, 5, $2, $2)",
                f"q{day}",
                ts,
            )
        await conn.execute(
            "INSERT INTO fills VALUES ('f', 'c', 'x', 'binance', 'BTCUSDT', 'buy', 1, 1, 0, "
            "'USDT', 'taker', 's', 5, 5)"
        )
        await asyncio.to_thread(migrate.upgrade, postgres_url)
        kinds = dict(
            await conn.fetch(
                "SELECT relname, relkind::text FROM pg_class WHERE relname = ANY($1::text[])",
                ["trades", "quotes", "book_deltas", "bars", "fills"],
            )
        )
        assert kinds == {
            "trades": "p",
            "quotes": "p",
            "book_deltas": "p",
            "bars": "p",
            "fills": "r",
        }
        assert await conn.fetchval("SELECT count(*) FROM trades") == 3
        assert await conn.fetchval("SELECT count(*) FROM quotes") == 3
        assert await conn.fetchval("SELECT count(*) FROM fills") == 1
        row = await conn.fetchrow("SELECT price, qty, trade_id FROM trades WHERE id = 't2'")
        assert tuple(row) == (1.5, 2.0, "7")
    finally:
        await conn.close()
    assert await _parts(postgres_url, "trades") == [
        "trades_p20251204",
        "trades_p20251205",
        "trades_p20251206",
    ]
    # A store starting on it finds the rows and skips them when they come again.
    store = PostgresStore(postgres_url, retry_max_s=20.0)
    await store.start()
    try:
        assert await store.write([_trade(9, NOW)]) == {"trades": 1}
    finally:
        await store.close()


async def test_partitions_ahead_on_demand_and_redelivery(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, retry_max_s=20.0, partitions_ahead=2)
    await store.start()
    try:
        today = time.time_ns() // DAY * DAY
        for table in ("trades", "quotes", "book_deltas", "bars"):
            have = await _parts(postgres_url, table)
            assert len(have) == 3, have
            assert have[0] == partitions.name_for(table, today)
        # Midnight: one second before it, the day after next already exists.
        done = await store.maintain(NOW)
        assert partitions.name_for("trades", NOW // DAY * DAY + 2 * DAY) in done.created
        # Rows from days without a partition (an old recording): created on demand.
        old = 1_600_000_000 * 10**9
        batch: list[Event] = [
            *(_trade(i, old + i * DAY // 2) for i in range(6)),
            *(_quote(i, old + i) for i in range(3)),
            *(_book(i, old + i) for i in range(3)),
            *(_bar(i, old + i) for i in range(3)),
            fill(1),
        ]
        want = {"trades": 6, "quotes": 3, "book_deltas": 3, "bars": 3, "fills": 1}
        assert await store.write(batch) == want
        assert await store.write(batch) == dict.fromkeys(want, 0)
        assert await store.write([*batch[:2], _trade(7, old), _trade(7, old)]) == {"trades": 1}
        counts = await store.counts()
        assert counts["trades"] == 7
        assert counts["quotes"] == 3
        assert "trades_p20200913" in await _parts(postgres_url, "trades")
        rows = await store.fetch("SELECT bids, asks FROM book_deltas WHERE id = 'b1'")
        assert rows == [("[[1.0, 2.0]]", "[[1.5, 0.0]]")]
    finally:
        await store.close()


async def test_interval_change_fills_gaps_without_overlap(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, retry_max_s=20.0)
    await store.start()
    await store.close()
    hourly = PostgresStore(postgres_url, retry_max_s=20.0, partition_interval_s=3600)
    await hourly.start()
    try:
        far = (time.time_ns() // DAY + 30) * DAY + 12 * 3600 * 10**9  # noon: not day-aligned
        assert await hourly.write([_trade(1, far)]) == {"trades": 1}
        names = await _parts(postgres_url, "trades")
        assert any(n.startswith("trades_p") and n.count("_") == 2 for n in names), names
    finally:
        await hourly.close()


async def test_retention_drops_whole_expired_partitions_only(postgres_url: str) -> None:
    store = PostgresStore(
        postgres_url,
        retry_max_s=20.0,
        retention_days={"quotes": 7, "book_deltas": 7, "trades": 90, "bars": 0},
    )
    await store.start()
    try:
        now = time.time_ns()
        ages = (0, 6, 8, 30, 100)
        batch: list[Event] = []
        for i, age in enumerate(ages):
            ts = now - age * DAY
            batch += [_trade(i, ts), _quote(i, ts), _book(i, ts), _bar(i, ts), fill(i)]
        fills_before = len(ages)
        assert (await store.write(batch))["quotes"] == len(ages)
        t0 = time.perf_counter()
        done = await store.maintain(now)
        took = time.perf_counter() - t0
        counts = await store.counts()
        # Quotes and book deltas: 8, 30 and 100 days old are gone; 6 days kept
        # (its partition ends less than 7 days ago).
        assert counts["quotes"] == 2
        assert counts["book_deltas"] == 2
        assert counts["trades"] == 4
        assert counts["bars"] == len(ages)
        assert counts["fills"] == fills_before
        assert sorted(done.dropped) == ["book_deltas", "quotes", "trades"]
        assert len(done.dropped["quotes"]) == 3
        assert done.freed_bytes > 0
        assert done.size_bytes is not None and done.size_bytes > 0
        assert took < 30
        # A second pass finds nothing more to drop.
        assert (await store.maintain(now)).dropped == {}
    finally:
        await store.close()


def test_migrate_command_creates_partitions_ahead(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tradewind.cli import app

    monkeypatch.setenv("TRADEWIND_STORE__URL", postgres_url)
    monkeypatch.setenv("TRADEWIND_STORE__PARTITIONS_AHEAD", "2")
    r = CliRunner().invoke(app, ["migrate"])
    assert r.exit_code == 0, r.output
    # Bars: 3 days; trades, quotes and book deltas (6 h by default): from the
    # current quarter to the same end, 3 days later.
    now = time.time_ns()
    today, quarter = now // DAY * DAY, now // SIX_H * SIX_H
    starts = range(quarter, today + 3 * DAY, SIX_H)
    assert f"partitions ahead: {3 + 3 * len(starts)} created" in r.output
    for table in ("trades", "quotes", "book_deltas"):
        want = [partitions.name_for(table, lo) for lo in starts]
        assert asyncio.run(_parts(postgres_url, table)) == want
    have = asyncio.run(_parts(postgres_url, "bars"))
    assert have == [partitions.name_for("bars", today + i * DAY) for i in range(3)]
    r = CliRunner().invoke(app, ["migrate"])
    assert "partitions ahead: 0 created" in r.output


async def test_six_hour_partitions_beside_daily_ones_and_retention(postgres_url: str) -> None:
    """Quotes in 6 h partitions, trades in days: rows land in their own, and
    retention drops a day of quotes as four small partitions."""
    store = PostgresStore(
        postgres_url,
        retry_max_s=20.0,
        partition_intervals={"quotes": 21_600},
        retention_days={"quotes": 7, "trades": 90},
    )
    await store.start()
    try:
        now = time.time_ns()
        old = (now // DAY - 9) * DAY  # midnight 9 days ago
        batch: list[Event] = [_quote(i, old + i * SIX_H + 1) for i in range(4)]
        batch += [_trade(i, old + i * SIX_H + 1) for i in range(4)]
        assert await store.write(batch) == {"quotes": 4, "trades": 4}
        quotes = await _parts(postgres_url, "quotes")
        for i in range(4):
            assert partitions.name_for("quotes", old + i * SIX_H) in quotes
        assert partitions.name_for("trades", old) in await _parts(postgres_url, "trades")
        done = await store.maintain(now)
        assert sorted(done.dropped["quotes"]) == [
            partitions.name_for("quotes", old + i * SIX_H) for i in range(4)
        ]
        assert "trades" not in done.dropped
        assert (await store.counts())["quotes"] == 0
    finally:
        await store.close()


async def test_daily_trades_partitions_of_the_old_default_keep_working(
    postgres_url: str,
) -> None:
    """A database made when trades had daily partitions, opened with the 6 h
    default: rows still land in the daily partitions, 6 h ones are only added
    in the gaps after them, and retention drops both kinds."""
    from tradewind.config import load_settings

    old_default = PostgresStore(
        postgres_url,
        retry_max_s=20.0,
        partition_intervals={"quotes": 21_600, "book_deltas": 21_600},
    )
    now = time.time_ns()
    today = now // DAY * DAY
    long_ago = today - 100 * DAY
    await old_default.start()
    try:
        assert await old_default.write([_trade(1, long_ago + 1)]) == {"trades": 1}
    finally:
        await old_default.close()
    daily = await _parts(postgres_url, "trades")
    assert daily[0] == partitions.name_for("trades", long_ago)
    assert partitions.name_for("trades", today) in daily

    settings = load_settings(
        store={"url": postgres_url, "retry_max_s": 20.0, "retention": {"trades_days": 90}}
    )
    assert settings.store.interval_s("trades") == 21_600
    store = PostgresStore.from_settings(settings)
    await store.start()
    try:
        assert await _parts(postgres_url, "trades") == daily
        assert await store.write([_trade(2, now), _trade(3, long_ago + 2)]) == {"trades": 2}
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            where = await conn.fetch("SELECT id, tableoid::regclass::text FROM trades ORDER BY id")
            last_daily = max(p.hi for p in await partitions.existing(conn, "trades"))
        finally:
            await conn.close()
        assert [tuple(r) for r in where] == [
            ("t1", daily[0]),
            ("t2", partitions.name_for("trades", today)),
            ("t3", daily[0]),
        ]
        # Days later, past the daily partitions made ahead: 6 h ones follow them.
        later = last_daily + DAY + 1
        done = await store.maintain(later)
        assert done.dropped == {"trades": [daily[0]]}
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            have = await partitions.existing(conn, "trades")
        finally:
            await conn.close()
        assert all(a.hi <= b.lo for a, b in itertools.pairwise(have))
        added = [p for p in have if p.name not in daily]
        assert added and all(p.hi - p.lo == SIX_H for p in added)
        assert added[0].lo == later // DAY * DAY
        assert await store.write([_trade(4, last_daily + 1)]) == {"trades": 1}
        # 100 days after that: the daily partitions and the 6 h ones all expire.
        done = await store.maintain(later + 100 * DAY)
        gone = set(done.dropped["trades"])
        assert set(daily[1:]) <= gone
        assert {p.name for p in added} <= gone
        assert partitions.name_for("trades", last_daily) in gone
        assert (await store.counts())["trades"] == 0
    finally:
        await store.close()


def test_settings_tables_are_the_partitioned_tables() -> None:
    from tradewind.config import MARKET_TABLES, StoreSettings
    from tradewind.storage.schema import PARTITIONED

    assert MARKET_TABLES == PARTITIONED
    s = StoreSettings()
    assert [s.interval_s(t) for t in PARTITIONED] == [21_600, 21_600, 21_600, 86_400]
    with pytest.raises(ValueError, match="not one of"):
        StoreSettings(partition_intervals={"fills": 3600})
    with pytest.raises(ValueError, match="must divide a day"):
        StoreSettings(partition_intervals={"quotes": 7000})
