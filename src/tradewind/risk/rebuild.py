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
start): the loss limits look no further back.

Queries take no parameters (only integers this module formats), so they run
unchanged on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

from tradewind.events import (
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
)
from tradewind.risk.account import DAY_NS
from tradewind.risk.engine import APPLIED, RiskEngine
from tradewind.storage import Store

Verify = Callable[[str, dict[str, str], int, str], bool]
_NS = 1_000_000_000
_TERMINAL = tuple(s.value for s in OrderStatus if s.terminal and s is not OrderStatus.FILLED)

# Rank of each kind among events with the same ts_event: the market first, then
# the order before its fills, then terminal updates, then state changes.
_MARKET, _ORDER, _FILL, _UPDATE, _RECORD = range(5)


class _Tick(NamedTuple):
    exchange: str
    symbol: str
    price: float


def _dec(v: object) -> Decimal:
    return Decimal(str(v))


async def _latest_ts(store: Store) -> int:
    latest = 0
    for table in ("fills", "orders", "risk_decisions", "trades", "control_events"):
        rows = await store.fetch(f"SELECT max(ts_event) FROM {table}")
        if rows and rows[0][0] is not None:
            latest = max(latest, int(str(rows[0][0])))
    return latest


async def rebuild(engine: RiskEngine, store: Store, verify: Verify | None = None) -> int:
    """Replay the store into a fresh ``engine``; returns the events applied.

    ``verify(id, args, ts, signature)`` checks the signed state-change records;
    records that fail it are ignored (None trusts unsigned records: control is
    not configured).
    """
    latest = await _latest_ts(store)
    if latest == 0:
        return 0
    day0 = latest // DAY_NS * DAY_NS
    timeline: list[tuple[int, int, str, object]] = []

    for ex, sym, price, ts, tid in await store.fetch(
        "SELECT exchange, symbol, price, ts_event, trade_id FROM trades t WHERE ts_event >= "
        f"{day0} OR ts_event = (SELECT max(ts_event) FROM trades u WHERE u.exchange = "
        f"t.exchange AND u.symbol = t.symbol AND u.ts_event < {day0})"
    ):
        # Same-time trades in exchange order: numeric trade ids sort by length first.
        tie = f"{len(str(tid)):04d}{tid}"
        timeline.append((int(str(ts)), _MARKET, tie, _Tick(str(ex), str(sym), float(str(price)))))

    for o in await stored_orders(store):
        timeline.append((o.ts_event, _ORDER, o.id, o))

    for row in await store.fetch(
        "SELECT id, client_order_id, exchange_order_id, exchange, symbol, side, price, qty, "
        "fee, fee_currency, liquidity, strategy, ts_event FROM fills"
    ):
        fid, coid, xid, ex, sym, side, price, qty, fee, cur, liq, strat, ts = row
        f = Fill(
            id=str(fid),
            ts_event=int(str(ts)),
            client_order_id=str(coid),
            exchange_order_id=str(xid),
            exchange=str(ex),
            symbol=str(sym),
            side=Side(str(side)),
            price=_dec(price),
            qty=_dec(qty),
            fee=_dec(fee),
            fee_currency=str(cur),
            liquidity=Liquidity(str(liq)),
            strategy=str(strat),
        )
        timeline.append((f.ts_event, _FILL, f.id, f))

    statuses = ", ".join(f"'{s}'" for s in _TERMINAL)
    for uid, coid, ts in await store.fetch(
        f"SELECT id, client_order_id, ts_event FROM order_updates WHERE status IN ({statuses})"
    ):
        timeline.append((int(str(ts)), _UPDATE, str(uid), str(coid)))

    for cid, args_json, ts in await store.fetch(
        f"SELECT id, args, ts_event FROM control_events WHERE command = '{APPLIED}'"
    ):
        args = json.loads(str(args_json))
        if not isinstance(args, dict):
            continue
        args = {str(k): str(v) for k, v in args.items()}
        sig = args.pop("signature", "")
        if verify is not None and not verify(str(cid), args, int(str(ts)), sig):
            continue
        timeline.append((int(str(ts)), _RECORD, f"{int(args.get('seq', '0')):012d}", args))

    timeline.sort(key=lambda t: (t[0], t[1], t[2]))
    engine.replaying = True
    try:
        for ts, kind, _tie, item in timeline:
            if isinstance(item, _Tick):
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
    """The approved orders in the store (``where``: an SQL condition on them)."""
    out = []
    for row in await store.fetch(
        "SELECT client_order_id, signal_id, strategy, exchange, symbol, side, order_type, "
        f"quantity, price, reduce_only, ts_event FROM orders {'WHERE ' + where if where else ''}"
    ):
        coid, sid, strat, ex, sym, side, otype, qty, price, ro, ts = row
        out.append(
            OrderRequest(
                id=str(coid),
                ts_event=int(str(ts)),
                client_order_id=str(coid),
                signal_id=str(sid),
                strategy=str(strat),
                exchange=str(ex),
                symbol=str(sym),
                side=Side(str(side)),
                order_type=OrderType(str(otype)),
                quantity=_dec(qty),
                price=None if price is None else _dec(price),
                reduce_only=bool(ro),
            )
        )
    return out


def _order_price(engine: RiskEngine, o: OrderRequest) -> Decimal:
    if o.price is not None:
        return o.price
    return engine.marks.price((o.exchange, o.symbol)) or Decimal(0)


async def _restore_windows(engine: RiskEngine, store: Store) -> None:
    """Feed freshness, duplicate ids and rate windows, which need no ordering."""
    for table in ("trades", "quotes", "book_deltas"):
        for ex, sym, ts in await store.fetch(
            f"SELECT exchange, symbol, max(ts_event) FROM {table} GROUP BY exchange, symbol"
        ):
            engine.marks.seen((str(ex), str(sym)), int(str(ts)))
            engine.now_ns = max(engine.now_ns, int(str(ts)))
    for (sid,) in await store.fetch("SELECT signal_id FROM risk_decisions ORDER BY ts_event"):
        engine.remember_signal(str(sid))
    rows = await store.fetch("SELECT max(ts_event) FROM risk_decisions")
    last = int(str(rows[0][0])) if rows and rows[0][0] is not None else 0
    engine.now_ns = max(engine.now_ns, last)
    horizon = engine.now_ns - 60 * _NS
    for (ts,) in await store.fetch(
        "SELECT ts_event FROM risk_decisions WHERE reason = 'ok' AND approved "
        f"AND ts_event > {horizon} ORDER BY ts_event"
    ):
        engine.remember_approval(int(str(ts)))
