"""Reads of stored events, for state rebuilds and reports.

Whole events come back through the mappings (``read``); the few aggregates
risk's rebuild needs have their own function. Queries take no parameters
(only integers and names from the mappings are formatted in), so they run
unchanged on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

from tradewind.events import Control, OrderStatus, OrderUpdate, RiskDecision, Trade
from tradewind.storage.base import Store
from tradewind.storage.rows import READERS
from tradewind.storage.schema import BY_EVENT, PARTITIONED

E = TypeVar("E")


def _int(v: object) -> int:
    return int(str(v))


async def read(store: Store, event: type[E], where: str = "") -> list[E]:
    """Every stored ``event`` (optionally filtered by a SQL condition), whole."""
    m = BY_EVENT[event]
    sql = f"SELECT {', '.join(m.columns)} FROM {m.table.name}"
    if where:
        sql += f" WHERE {where}"
    reader = READERS[event]
    return [reader(row) for row in await store.fetch(sql)]


async def latest_ts(store: Store, events: tuple[type[Any], ...]) -> int:
    """The latest ``ts_event`` over the tables of ``events`` (0: none stored)."""
    latest = 0
    for e in events:
        rows = await store.fetch(f"SELECT max(ts_event) FROM {BY_EVENT[e].table.name}")
        if rows and rows[0][0] is not None:
            latest = max(latest, _int(rows[0][0]))
    return latest


class Tick(NamedTuple):
    exchange: str
    symbol: str
    price: float
    ts_event: int
    trade_id: str


async def trade_ticks(store: Store, since_ns: int) -> list[Tick]:
    """Trades from ``since_ns`` on, plus the last trade of each symbol before it
    (which values positions at ``since_ns``)."""
    t = BY_EVENT[Trade].table.name
    rows = await store.fetch(
        f"SELECT exchange, symbol, price, ts_event, trade_id FROM {t} x WHERE ts_event >= "
        f"{since_ns} OR ts_event = (SELECT max(ts_event) FROM {t} u WHERE u.exchange = "
        f"x.exchange AND u.symbol = x.symbol AND u.ts_event < {since_ns})"
    )
    return [
        Tick(str(ex), str(sym), float(str(p)), _int(ts), str(tid)) for ex, sym, p, ts, tid in rows
    ]


async def ended_orders(store: Store) -> list[tuple[str, str, int]]:
    """``(update id, client order id, ts_event)`` of every update that ended an
    order other than by filling it."""
    terminal = ", ".join(f"'{s.value}'" for s in OrderStatus if s.terminal)
    filled = OrderStatus.FILLED.value
    rows = await store.fetch(
        f"SELECT id, client_order_id, ts_event FROM {BY_EVENT[OrderUpdate].table.name} "
        f"WHERE status IN ({terminal}) AND status <> '{filled}'"
    )
    return [(str(u), str(c), _int(ts)) for u, c, ts in rows]


async def controls(store: Store, command: str) -> list[Control]:
    """Stored control events of one command (an identifier, formatted in)."""
    if not command.isidentifier():
        raise ValueError(f"not a command name: {command!r}")
    return await read(store, Control, f"command = '{command}'")


async def last_seen(store: Store) -> list[tuple[str, str, int]]:
    """``(exchange, symbol, latest ts_event)`` per market table and symbol."""
    out: list[tuple[str, str, int]] = []
    for table in PARTITIONED:
        if table == "bars":
            continue
        for ex, sym, ts in await store.fetch(
            f"SELECT exchange, symbol, max(ts_event) FROM {table} GROUP BY exchange, symbol"
        ):
            out.append((str(ex), str(sym), _int(ts)))
    return out


async def decided_signals(store: Store) -> list[str]:
    """Signal ids of every risk decision, oldest first."""
    t = BY_EVENT[RiskDecision].table.name
    return [str(s) for (s,) in await store.fetch(f"SELECT signal_id FROM {t} ORDER BY ts_event")]


async def approvals_since(store: Store, since_ns: int) -> list[int]:
    """Times of approved decisions after ``since_ns``, oldest first."""
    t = BY_EVENT[RiskDecision].table.name
    rows = await store.fetch(
        f"SELECT ts_event FROM {t} WHERE reason = 'ok' AND approved "
        f"AND ts_event > {since_ns} ORDER BY ts_event"
    )
    return [_int(ts) for (ts,) in rows]
