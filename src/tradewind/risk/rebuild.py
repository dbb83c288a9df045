"""Rebuild risk's state from the events in the store.

Used when risk starts without a saved snapshot (a fresh Redis, a lost key).
The store holds everything risk's state derives from: orders it approved,
order updates and fills, its decisions, the market, and signed records of every
state change it made (``control_events`` with command ``applied``). They are
replayed through the same engine methods the live service uses, in event-time
order, so the result equals the live state: positions, PnL, the day's start
equity and peak, open orders, cooldowns, rate windows and the trading state.

Market history is read only from the start of the latest trading day (plus
the last trade before it per symbol, which values positions at the day's
start): the loss limits look no further back. The reads themselves are the
store's (``tradewind.storage.queries``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec

from tradewind.events import Control, Fill, OrderRequest, RiskDecision, Trade
from tradewind.risk.account import DAY_NS
from tradewind.risk.engine import APPLIED, RiskEngine
from tradewind.storage import Store, queries
from tradewind.storage.queries import Tick

Verify = Callable[[str, dict[str, str], int, str], bool]
_NS = 1_000_000_000

# Rank of each kind among events with the same ts_event: the market first, then
# the order before its fills, then terminal updates, then state changes.
_MARKET, _ORDER, _FILL, _UPDATE, _RECORD = range(5)


async def rebuild(engine: RiskEngine, store: Store, verify: Verify | None = None) -> int:
    """Replay the store into a fresh ``engine``; returns the events applied.

    ``verify(id, args, ts, signature)`` checks the signed state-change records;
    records that fail it are ignored (None trusts unsigned records: control is
    not configured).
    """
    latest = await queries.latest_ts(store, (Fill, OrderRequest, RiskDecision, Trade, Control))
    if latest == 0:
        return 0
    day0 = latest // DAY_NS * DAY_NS
    timeline: list[tuple[int, int, str, object]] = []

    for tick in await queries.trade_ticks(store, day0):
        # Same-time trades in exchange order: numeric trade ids sort by length first.
        tie = f"{len(tick.trade_id):04d}{tick.trade_id}"
        timeline.append((tick.ts_event, _MARKET, tie, tick))
    for o in await stored_orders(store):
        timeline.append((o.ts_event, _ORDER, o.id, o))
    for f in await queries.read(store, Fill):
        timeline.append((f.ts_event, _FILL, f.id, f))
    for uid, coid, ts in await queries.ended_orders(store):
        timeline.append((ts, _UPDATE, uid, coid))
    for c in await queries.controls(store, APPLIED):
        args = dict(c.args)
        sig = args.pop("signature", "")
        if verify is not None and not verify(c.id, args, c.ts_event, sig):
            continue
        timeline.append((c.ts_event, _RECORD, f"{int(args.get('seq', '0')):012d}", args))

    timeline.sort(key=lambda t: (t[0], t[1], t[2]))
    engine.replaying = True
    try:
        for ts, kind, _tie, item in timeline:
            if isinstance(item, Tick):
                engine.on_market(item.exchange, item.symbol, ts, item.price)
            elif kind == _ORDER:
                assert isinstance(item, OrderRequest)
                engine.on_order(item, _order_price(engine, item))
            elif kind == _FILL:
                assert isinstance(item, Fill)
                engine.on_fill(item)
            elif kind == _UPDATE:
                engine.orders.orders.pop(str(item), None)
            else:
                assert isinstance(item, dict)
                engine.apply_record(item)
    finally:
        engine.replaying = False
        engine.drain()

    await _restore_windows(engine, store)
    return len(timeline)


async def stored_orders(store: Store, where: str = "") -> list[OrderRequest]:
    """The approved orders in the store (``where``: an SQL condition on them),
    keyed as risk keys them: by client order id."""
    return [
        msgspec.structs.replace(o, id=o.client_order_id)
        for o in await queries.read(store, OrderRequest, where)
    ]


def _order_price(engine: RiskEngine, o: OrderRequest) -> Decimal:
    if o.price is not None:
        return o.price
    return engine.marks.price((o.exchange, o.symbol)) or Decimal(0)


async def _restore_windows(engine: RiskEngine, store: Store) -> None:
    """Feed freshness, duplicate ids and rate windows, which need no ordering."""
    for ex, sym, ts in await queries.last_seen(store):
        engine.marks.seen((ex, sym), ts)
        engine.now_ns = max(engine.now_ns, ts)
    for sid in await queries.decided_signals(store):
        engine.remember_signal(sid)
    last = await queries.latest_ts(store, (RiskDecision,))
    engine.now_ns = max(engine.now_ns, last)
    for ts in await queries.approvals_since(store, engine.now_ns - 60 * _NS):
        engine.remember_approval(ts)
