"""The risk service: the only path from a signal to an order.

Every signal gets a ``RiskDecision``; approved ones also become an
``OrderRequest``. Risk also owns the account: it applies every fill, publishes
the resulting ``Position``, watches the loss limits, and executes the
operator's kill switch (``control`` topic, replies on ``control.replies``).
Decisions, orders, cancels, positions, state-change records and the engine's
snapshot are committed in one step with the acks, so a restart never forgets
an approval it already published.

On start the engine comes from the bus snapshot when there is one, else it is
rebuilt from the store (distributed mode), so a lost snapshot costs nothing.
Operator commands are verified against wall-clock time (they are real-time
even during a replay); everything else runs on event time.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import structlog

from tradewind import control
from tradewind.bus import Message, Subscription
from tradewind.events import (
    Bar,
    BookDelta,
    CancelRequest,
    Control,
    ControlReply,
    Event,
    Fill,
    OrderRequest,
    OrderUpdate,
    Position,
    Quote,
    RiskDecision,
    Signal,
    Trade,
    TradingState,
)
from tradewind.observability import metrics
from tradewind.risk import commands
from tradewind.risk.engine import APPLIED, RiskEngine
from tradewind.risk.rebuild import rebuild
from tradewind.services.base import Service, ServiceContext
from tradewind.topics import (
    CONTROL,
    CONTROL_REPLIES,
    DECISIONS,
    EXECUTIONS,
    MARKET,
    ORDERS,
    POSITIONS,
    SIGNALS,
)

STATE_KEY = "risk:engine"
CONTROL_IDS = "control_ids"
MARKET_STATE_KEY = "risk:engine:market"
"""Newer than ``STATE_KEY`` after batches of market data alone; see ``_state``."""
_ACCOUNT_EVENTS = frozenset({Signal, Fill, OrderUpdate, Control})
_MARKET_EVENTS = frozenset({Trade, Quote, BookDelta, Bar})
_EVENT = attrgetter("event")
_EXCHANGE = attrgetter("exchange")
_SYMBOL = attrgetter("symbol")
_TS = attrgetter("ts_event")
log = structlog.get_logger("tradewind.risk")


class UnknownOrder(ValueError):
    """A fill for an order risk never approved: refused, then dead-lettered."""


def _one_symbol(market: list[Any]) -> bool:
    """Whether every event is of one (exchange, symbol): two C-level sets of
    strings, not one of tuples (measured 40 vs 100 ns an event)."""
    return len(set(map(_EXCHANGE, market))) == 1 and len(set(map(_SYMBOL, market))) == 1


def _trades_only(market: list[Any]) -> bool:
    """With ``_one_symbol``, a replay's usual batch: trades only."""
    return set(map(type, market)) == {Trade}


def _fold_trades(trades: list[Trade]) -> list[Any]:
    """What ``_process``'s loop folds one symbol's trades into, in C: the
    newest time, and it again with the price of the last trade stamped then
    (each trade at or after the newest so far replaces the price). Measured,
    with ``_one_symbol``: ``RiskService._on_batch`` 0.18 -> 0.14 s CPU per
    200k-tick backtest."""
    times = list(map(_TS, trades))
    newest = max(times)
    last = len(times) - 1 - times[::-1].index(newest)
    return [newest, newest, trades[last].price]


class RiskService(Service):
    name = "risk"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        secret = ctx.settings.control.token
        self._token = None if secret is None else secret.get_secret_value()
        key = ctx.settings.control.order_key
        self._order_key = None if key is None else key.get_secret_value()
        self.engine = RiskEngine(ctx.settings.risk, ctx.instruments, self._signer())
        self.verifier = control.ControlVerifier(self._token, ctx.settings.control.max_age_s)
        self.approved = 0
        self.rejected = 0
        self.rejected_by: Counter[str] = Counter()
        self.rebuilt_events = 0

    def _signer(self) -> control.Signer | None:
        token = self._token
        if token is None:
            return None

        def sign(id_: str, args: dict[str, str], ts: int) -> str:
            return control.signature(token, id_, APPLIED, args, ts)

        return sign

    def verify_record(self, id_: str, args: dict[str, str], ts: int, sig: str) -> bool:
        return self._token is not None and control.check(self._token, id_, APPLIED, args, ts, sig)

    async def start(self) -> None:
        if self.ctx.durable_state:
            raw = await self.bus.get_state(STATE_KEY)
            if raw is not None:
                snapshot = json.loads(raw)
                market = await self.bus.get_state(MARKET_STATE_KEY)
                if market is not None:
                    snapshot.update(json.loads(market))
                self.engine.restore(snapshot)
                self.verifier.restore(snapshot.get(CONTROL_IDS))
            elif self.ctx.store is not None:
                verify = self.verify_record if self._token is not None else None
                self.rebuilt_events = await rebuild(self.engine, self.ctx.store, verify)
                log.info("risk state rebuilt from the store", events=self.rebuilt_events)
        if self._token is None and self.ctx.durable_state:
            log.warning(
                "no control token configured: operator commands (halt, resume, status) "
                "will be refused; set TRADEWIND_CONTROL__TOKEN_FILE"
            )
        self._committed = self._snapshot() if self.ctx.durable_state else None
        self._publish_state()
        await super().start()
        await self.consume([SIGNALS, EXECUTIONS, MARKET, CONTROL], self._on_batch)

    async def _on_batch(self, sub: Subscription, msgs: list[Message]) -> None:
        """Process and commit a batch; on any failure the engine goes back to the
        last committed state, so a retried message is decided afresh rather than
        refused as a duplicate of a decision that was never published."""
        if self.ctx.durable_state:
            rollback = self._committed
        elif not _ACCOUNT_EVENTS.isdisjoint(map(type, map(_EVENT, msgs))):
            rollback = self._snapshot()
        else:
            rollback = None  # marks alone re-apply to the same state
        try:
            await self._process(sub, msgs)
        except BaseException:
            if rollback is not None:
                self._reload(rollback)
            raise

    def _snapshot(self) -> dict[str, Any]:
        """The engine's snapshot and the control ids used inside the expiry
        window: committed together, so a replayed command stays refused."""
        snapshot = self.engine.snapshot()
        snapshot[CONTROL_IDS] = self.verifier.snapshot()
        return snapshot

    def _reload(self, snapshot: dict[str, Any]) -> None:
        engine = RiskEngine(self.settings.risk, self.ctx.instruments, self._signer())
        engine.restore(snapshot)
        self.engine = engine
        self.verifier.restore(snapshot.get(CONTROL_IDS))

    async def _process(self, sub: Subscription, msgs: list[Message]) -> None:
        engine = self.engine
        decisions: list[RiskDecision] = []
        orders: list[Event] = []
        positions: list[Position] = []
        records: list[Event] = []
        replies: list[ControlReply] = []
        results: list[tuple[str, str]] = []
        market = [e for e in map(_EVENT, msgs) if type(e) in _MARKET_EVENTS]
        one_symbol = bool(market) and _one_symbol(market)
        self._mark_fresh(market, one_symbol)
        # Consecutive market events are folded per symbol into their newest
        # time and last price: every decision still sees current marks, and
        # the account is revalued once per run of ticks instead of per tick.
        latest: dict[tuple[str, str], list[Any]] = {}
        if one_symbol and len(market) == len(msgs) and _trades_only(market):
            latest[(market[0].exchange, market[0].symbol)] = _fold_trades(market)
            msgs_left: list[Message] = []
        else:
            msgs_left = msgs
        for m in msgs_left:
            e = m.event
            t = type(e)
            if t is Trade or t is Quote or t is BookDelta or t is Bar:
                key = (e.exchange, e.symbol)  # type: ignore[union-attr]
                px = e.price if t is Trade else e.close if t is Bar else None  # type: ignore[union-attr]
                cur = latest.get(key)
                if cur is None:
                    latest[key] = [e.ts_event, e.ts_event if px is not None else 0, px]
                else:
                    if e.ts_event > cur[0]:
                        cur[0] = e.ts_event
                    if px is not None and e.ts_event >= cur[1]:
                        cur[1], cur[2] = e.ts_event, px
                continue
            if latest:
                self._apply_marks(latest)
            if isinstance(e, Signal):
                decision, order = engine.evaluate(e)
                decisions.append(decision)
                if order is not None:
                    orders.append(order)
            elif isinstance(e, Fill):
                if not engine.knows_order(e.client_order_id):
                    metrics.FORGED.labels(self.name, "fill").inc()
                    raise UnknownOrder(
                        f"fill {e.id[:64]!r} is for order {e.client_order_id[:64]!r}, "
                        "which risk never approved"
                    )
                pos = engine.on_fill(e)
                positions.append(pos.event(e.ts_event, f"pos:{e.id}", mark=e.price))
            elif isinstance(e, OrderUpdate):
                engine.on_order_update(e)
            elif isinstance(e, Control) and e.command != APPLIED:
                reply, result = commands.handle(engine, self.verifier, e, time.time_ns())
                replies.append(reply)
                label = e.command if e.command in control.COMMANDS else "unknown"
                results.append((label, result))
            self._drain(orders, decisions, records)
        if latest:
            self._apply_marks(latest)
            self._drain(orders, decisions, records)
        account = bool(decisions or orders or positions or records or replies or engine.trips)
        snapshot, state = self._state(msgs, account) if self.ctx.durable_state else (None, None)
        order_key = self._order_key
        if order_key is not None and orders:
            orders = [
                control.sign_order(order_key, o)
                if isinstance(o, (OrderRequest, CancelRequest))
                else o
                for o in orders
            ]
        publish: dict[str, Sequence[Event]] = {
            DECISIONS: decisions,
            ORDERS: orders,
            POSITIONS: positions,
            CONTROL: records,
            CONTROL_REPLIES: replies,
        }
        await sub.commit(msgs, publish, state)
        if snapshot is not None:
            self._committed = snapshot
        self._account(decisions, orders, positions, results)

    def _state(self, msgs: list[Message], account: bool) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The engine's snapshot after this batch and the state keys to save with it.

        A batch of market data alone moves only the engine's market part, so
        only that small key is saved; anything else saves the whole snapshot
        too. Both keys are written in the same commit whenever the whole one
        is, so the market key is never older than the snapshot it overlays."""
        engine = self.engine
        if account or any(type(m.event) not in _MARKET_EVENTS for m in msgs):
            snapshot = self._snapshot()
            market = {k: snapshot[k] for k in RiskEngine.MARKET_FIELDS}
            state = {STATE_KEY: json.dumps(snapshot).encode()}
        else:
            assert self._committed is not None
            market = engine.market_state()
            snapshot = {**self._committed, **market}
            state = {}
        state[MARKET_STATE_KEY] = json.dumps(market).encode()
        return snapshot, state

    def _mark_fresh(self, market: list[Any], one_symbol: bool) -> None:
        """Every symbol with market data in the batch is fresh as of its newest
        event (``Marks.seen`` keeps the newest), before any signal in the batch
        is decided. A batch is nearly always one symbol (``one_symbol``, asked
        once by the caller, who folds on it too): one call then."""
        if not market:
            return
        seen = self.engine.marks.seen
        if one_symbol:
            seen((market[0].exchange, market[0].symbol), max(map(_TS, market)))
            return
        for e in market:
            seen((e.exchange, e.symbol), e.ts_event)

    def _apply_marks(self, latest: dict[tuple[str, str], list[Any]]) -> None:
        engine = self.engine
        for (exchange, symbol), (ts, trade_ts, px) in latest.items():
            if px is not None:
                engine.on_market(exchange, symbol, trade_ts, px)
            if px is None or ts != trade_ts:
                engine.on_market(exchange, symbol, ts, None)
        latest.clear()

    def _drain(
        self, orders: list[Event], decisions: list[RiskDecision], records: list[Event]
    ) -> None:
        for out in self.engine.drain():
            if isinstance(out, (CancelRequest, OrderRequest)):
                orders.append(out)
            elif isinstance(out, RiskDecision):
                decisions.append(out)
            else:
                records.append(out)

    def _account(
        self,
        decisions: list[RiskDecision],
        orders: list[Event],
        positions: list[Position],
        results: list[tuple[str, str]],
    ) -> None:
        now = time.time_ns()
        approved = 0
        for d in decisions:
            approved += d.approved
            if not d.approved:
                self.rejected_by[d.reason] += 1
            metrics.RISK_DECISIONS.labels("approved" if d.approved else "rejected", d.reason).inc()
            if d.ts_recv:
                metrics.HOP_LATENCY.labels("signal_to_decision").observe((now - d.ts_recv) / 1e9)
        self.approved += approved
        self.rejected += len(decisions) - approved
        metrics.EVENTS_PUBLISHED.labels(self.name, DECISIONS).inc(len(decisions))
        metrics.EVENTS_PUBLISHED.labels(self.name, ORDERS).inc(len(orders))
        trips = self.engine.trips
        for trigger in trips:
            metrics.KILL_SWITCH.labels(trigger).inc()
            log.warning("kill switch", trigger=trigger, state=self.engine.state.value)
        for command, result in results:
            metrics.CONTROL_COMMANDS.labels(command, result).inc()
            if result != "ok":
                log.warning("control command refused", command=command, result=result)
        if positions:
            for p in self.engine.portfolio.positions.values():
                metrics.POSITION.labels(p.exchange, p.symbol).set(float(p.qty))
                cur = p.currency
                metrics.REALIZED_PNL.labels(p.exchange, p.symbol, cur).set(float(p.realized_pnl))
                metrics.UNREALIZED_PNL.labels(p.exchange, p.symbol, cur).set(
                    float(p.unrealized_pnl)
                )
            metrics.EVENTS_PUBLISHED.labels(self.name, POSITIONS).inc(len(positions))
        if decisions or positions or results or trips:
            self._publish_state()
        trips.clear()

    def _publish_state(self) -> None:
        engine = self.engine
        for st in TradingState:
            metrics.TRADING_STATE.labels(st.value).set(1 if engine.state is st else 0)
        pf = engine.portfolio
        metrics.EXPOSURE.labels("gross").set(float(pf.gross_exposure))
        metrics.EXPOSURE.labels("net").set(float(pf.net_exposure))
        for name, (used, limit) in engine.utilisation().items():
            metrics.LIMIT_UTILISATION.labels(name).set(float(used / limit) if limit else 0.0)
