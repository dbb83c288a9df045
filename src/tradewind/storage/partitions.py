"""Time partitions of the market tables on PostgreSQL.

Partitions are created three ways, so that none is ever missing: ahead of
the wall clock (db_writer's maintenance and ``tradewind migrate``), and on
demand when a batch holds a row no partition takes (a replay of an old
recording, a clock far off). A new partition is created as a plain table and
then attached: ``ATTACH PARTITION`` takes only a SHARE UPDATE EXCLUSIVE lock
on the parent, so writers keep writing (``CREATE TABLE … PARTITION OF`` would
block them). Creators serialise on an advisory lock and re-read the catalog
under it, so replicas never create the same range twice; ranges are clipped
to the gaps between existing partitions, so changing the interval never
makes a partition overlap another.

Expired partitions are detached ``CONCURRENTLY`` (no lock that blocks
readers or writers of the other partitions) and then dropped: retention never
runs a bulk DELETE. A detach interrupted half-way is finished
(``FINALIZE``) on the next pass.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from tradewind.storage.schema import BY_TABLE, PARTITIONED

NS = 1_000_000_000
DAY_NS = 86_400 * NS
_LOCK = 0x7477_7061_7274  # "twpart"
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
_TS_AT = {t: BY_TABLE[t].columns.index("ts_event") for t in PARTITIONED}


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    lo: int
    hi: int
    detaching: bool = False


def name_for(table: str, lo: int) -> str:
    t = datetime.fromtimestamp(lo // NS, UTC)
    return f"{table}_p{t:%Y%m%d}" if lo % DAY_NS == 0 else f"{table}_p{t:%Y%m%d_%H%M%S}"


def aligned(ts: Iterable[int], interval_ns: int) -> set[tuple[int, int]]:
    """The interval-aligned ranges holding these times."""
    return {(lo, lo + interval_ns) for lo in {t // interval_ns * interval_ns for t in ts}}


def gaps(want: Iterable[tuple[int, int]], have: Iterable[Partition]) -> list[tuple[int, int]]:
    """The parts of the wanted ranges that no existing partition covers."""
    taken = sorted((p.lo, p.hi) for p in have)
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(want):
        cur = lo
        for a, b in taken:
            if b <= cur or a >= hi:
                continue
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
        if cur < hi:
            out.append((cur, hi))
    return out


async def existing(conn: asyncpg.Connection, table: str) -> list[Partition]:
    rows = await conn.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass",
        table,
    )
    out: list[Partition] = []
    for name, bound, pending in rows:
        m = _BOUND.search(bound or "")
        if m is not None:
            out.append(Partition(table, name, int(m[1]), int(m[2]), bool(pending)))
    return sorted(out, key=lambda p: p.lo)


async def ensure(
    conn: asyncpg.Connection, want: dict[str, set[tuple[int, int]]]
) -> list[Partition]:
    """Create the partitions ``want`` (table → ranges) that are missing."""
    created: list[Partition] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        for table, ranges in want.items():
            for lo, hi in gaps(ranges, await existing(conn, table)):
                name = name_for(table, lo)
                await conn.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}" (LIKE {table} INCLUDING DEFAULTS)'
                )
                await conn.execute(
                    f'ALTER TABLE {table} ATTACH PARTITION "{name}" '
                    f"FOR VALUES FROM ({lo}) TO ({hi})"
                )
                created.append(Partition(table, name, lo, hi))
    return created


async def ensure_ahead(
    conn: asyncpg.Connection, now_ns: int, intervals_ns: Mapping[str, int], count: int
) -> list[Partition]:
    """Each table's partitions (of its own interval) from the current one to
    ``count`` of the longest interval ahead, so that midnight never finds the
    next one missing, whichever table's interval is shortest."""
    longest = max(intervals_ns.values())
    end = (now_ns // longest + count + 1) * longest
    want: dict[str, set[tuple[int, int]]] = {}
    for t in PARTITIONED:
        iv = intervals_ns[t]
        starts = range(now_ns // iv * iv, end, iv)
        want[t] = {(lo, lo + iv) for lo in starts}
    return await ensure(conn, want)


async def ensure_for_rows(
    conn: asyncpg.Connection,
    rows: dict[str, list[tuple[object, ...]]],
    intervals_ns: Mapping[str, int],
) -> list[Partition]:
    """Partitions for every row of a batch (the slow path, after a COPY found
    a row with no partition)."""
    want = {
        t: aligned((int(r[_TS_AT[t]]) for r in batch), intervals_ns[t])  # type: ignore[call-overload]
        for t, batch in rows.items()
        if t in _TS_AT
    }
    return await ensure(conn, want)


async def expired(conn: asyncpg.Connection, table: str, cutoff_ns: int) -> list[Partition]:
    """Partitions whose every row is older than ``cutoff_ns``."""
    return [p for p in await existing(conn, table) if p.hi <= cutoff_ns]


@dataclass(frozen=True)
class Dropped:
    """What dropping one partition freed, and where its time went."""

    bytes: int
    detach_s: float
    """``DETACH … CONCURRENTLY``: waits for transactions that use the table."""
    lock_s: float
    """The exclusive lock on the detached table (nobody should hold one)."""
    unlink_s: float
    """``DROP`` and its commit: the files unlinked, about proportional to size."""


async def drop(conn: asyncpg.Connection, p: Partition) -> Dropped:
    """Detach (concurrently) and drop one partition. The drop is a transaction
    of its own, after the detach, so its lock is on the detached table
    alone and never on the parent. ``conn`` must not be inside a transaction."""
    size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", p.name)
    how = "FINALIZE" if p.detaching else "CONCURRENTLY"
    t0 = time.perf_counter()
    await conn.execute(f'ALTER TABLE {p.table} DETACH PARTITION "{p.name}" {how}')
    t1 = time.perf_counter()
    async with conn.transaction():
        await conn.execute(f'LOCK TABLE "{p.name}" IN ACCESS EXCLUSIVE MODE')
        t2 = time.perf_counter()
        await conn.execute(f'DROP TABLE "{p.name}"')
    t3 = time.perf_counter()
    return Dropped(int(size or 0), t1 - t0, t2 - t1, t3 - t2)
