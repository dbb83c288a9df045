"""Live order routing: outbox first, one send per order, settle by lookup.

For each order from the ``orders`` topic:

1. a record already exists → the order was handled (or is being settled):
   it is never sent again; a ``pending`` record is settled by querying the
   venue by client order id;
2. the breaker is open → the order is rejected locally and never sent;
3. otherwise the record is written durably (phase ``pending``), then the
   order is sent once. A definite answer moves it on; an unknown outcome
   (timeout, dropped answer, 5xx) leaves it ``pending`` for the settler, which
   looks it up until the venue knows it or its settle window has passed (then
   the order cannot exist any more and is rejected locally).

Venue reports (the user data stream) and periodic reconciliation apply the
venue's view through the state machine, fetching fills the reports did not
carry, and publish only what changed; event ids come from the venue's data so
a repeat is a duplicate by id, not a second fill. On start, and after each
stream reconnect, every open order is reconciled and the events missed while
away are emitted. Everything is serialised by one lock per replica; replicas
share nothing in memory (each owns the orders it placed, see ``outbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

import structlog

from tradewind.bus import Bus, Message, Subscription
from tradewind.config import ExecutionSettings
from tradewind.events import CancelRequest, Event, Fill, OrderRequest, OrderStatus
from tradewind.execution.breaker import CircuitBreaker
from tradewind.execution.outbox import DONE, OPEN, PENDING, OrderRecord, Outbox
from tradewind.execution.state import OrderState
from tradewind.execution.venue import (
    Venue,
    VenueBusy,
    VenueError,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnknown,
)
from tradewind.observability import metrics
from tradewind.topics import EXECUTIONS

S = OrderStatus
log = structlog.get_logger("tradewind.execution.router")
Publish = Callable[[Sequence[Event]], Awaitable[None]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LiveRouter:
    def __init__(
        self,
        venue: Venue,
        bus: Bus,
        settings: ExecutionSettings,
        owner: str,
        publish: Publish,
    ) -> None:
        self.venue = venue
        self.bus = bus
        self.s = settings
        self.exchange = venue.exchange
        self.owner = owner
        self.outbox = Outbox(bus, venue.exchange, owner)
        self.breaker = CircuitBreaker(
            venue.exchange,
            settings.breaker_errors,
            settings.breaker_cooldown_s,
            settings.max_retry_after_s,
        )
        self.lock = asyncio.Lock()
        self.publish = publish
        self.balances: dict[str, Decimal] = {}
        self.reconciled = False
        self.sent = 0

    # --- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        await self.venue.start()
        await self.outbox.heartbeat()
        try:
            await self.reconcile(adopt=True)
        except VenueError as exc:
            log.error("start-up reconciliation failed; retrying", error=str(exc))

    async def close(self) -> None:
        await self.venue.close()

    def ready(self) -> tuple[bool, str]:
        if not self.reconciled:
            return False, "not reconciled with the venue yet"
        ok, why = self.breaker.allow()
        return ok, why or "ok"

    # --- orders from the bus ---------------------------------------------------------
    async def handle(self, sub: Subscription, m: Message) -> list[Event]:
        """Place or cancel for one message; commit the ack with its effects."""
        async with self.lock:
            e = m.event
            out: list[Event] = []
            rec: OrderRecord | None = None
            if isinstance(e, OrderRequest):
                out, rec = await self._place(e)
            elif isinstance(e, CancelRequest):
                out, rec = await self._cancel(e)
            state = None if rec is None else self.outbox.encode(rec)
            ttls = None if rec is None else self.outbox.ttls(rec)
            await sub.commit([m], {EXECUTIONS: out} if out else None, state, ttls)
            return out

    async def _place(self, o: OrderRequest) -> tuple[list[Event], OrderRecord | None]:
        coid = o.client_order_id
        rec = await self.outbox.get(coid)
        if rec is not None:
            if rec.phase == PENDING:
                return await self._settle(rec), rec
            return [], None
        rec = OrderRecord(request=o, state=OrderState.of(o), owner=self.owner)
        ok, why = self.breaker.allow()
        metrics.CIRCUIT_OPEN.labels(self.exchange).set(0 if ok else 1)
        if not ok:
            rec.phase = DONE
            return [*rec.state.transition(S.REJECTED, time.time_ns(), why)], rec
        rec.sent_at_ms = _now_ms()
        rec.deadline_ms = rec.sent_at_ms + int(self.venue.settle_window_s * 1000)
        await self.outbox.save(rec)
        out: list[Event] = [*rec.state.transition(S.SUBMITTED, time.time_ns())]
        self.sent += 1
        try:
            vo = await self.venue.place(o)
        except VenueRejected as exc:
            self.breaker.success()
            rec.phase = DONE
            out += rec.state.transition(S.REJECTED, time.time_ns(), str(exc)[:200])
        except VenueBusy as exc:
            self._error(exc, exc.retry_after)
            rec.phase = DONE
            out += rec.state.transition(
                S.REJECTED, time.time_ns(), f"rate limited by the venue: {exc}"[:200]
            )
        except VenueError as exc:
            self._error(exc)
            log.warning("order outcome unknown; settling by lookup", client_order_id=coid)
        else:
            self.breaker.success()
            out += await self._sync(rec, vo)
        return out, rec

    async def _cancel(self, c: CancelRequest) -> tuple[list[Event], OrderRecord | None]:
        rec = await self.outbox.get(c.client_order_id)
        if rec is None or rec.phase == DONE:
            return [], None
        if rec.phase == PENDING:
            out = await self._settle(rec)
            if rec.phase == PENDING:
                raise VenueUnknown(f"order {c.client_order_id} is not settled yet; cancel later")
        else:
            out = []
        try:
            vo = await self.venue.cancel(rec.state.symbol, c.client_order_id)
        except VenueRejected:
            vo = None
        except VenueError as exc:
            self._error(exc)
            raise
        if vo is None:
            vo = await self.venue.query(rec.state.symbol, c.client_order_id)
        if vo is not None:
            out += await self._sync(rec, vo, reason=c.reason or "canceled")
        return out, rec

    # --- applying the venue's view -------------------------------------------------------
    def _error(self, exc: VenueError, retry_after: float | None = None) -> None:
        metrics.EXCHANGE_ERRORS.labels(self.exchange, exc.kind).inc()
        self.breaker.failure(f"{exc.kind}: {exc}"[:200], retry_after)

    async def _settle(self, rec: OrderRecord) -> list[Event]:
        """A pending order: look it up; give up only once it cannot exist."""
        try:
            vo = await self.venue.query(rec.state.symbol, rec.state.client_order_id)
        except VenueError as exc:
            self._error(exc)
            return []
        if vo is not None:
            return await self._sync(rec, vo)
        if _now_ms() <= rec.deadline_ms:
            return []
        rec.phase = DONE
        why = "never reached the venue (unknown after its settle window)"
        return [*rec.state.transition(S.REJECTED, time.time_ns(), why)]

    async def _sync(self, rec: OrderRecord, vo: VenueOrder, reason: str = "") -> list[Event]:
        st = rec.state
        if vo.exchange_order_id:
            st.exchange_order_id = vo.exchange_order_id
        out: list[Event] = []
        if st.status is S.NEW:
            out += st.transition(S.SUBMITTED, vo.ts)
        fills: Sequence[VenueFill] = vo.fills
        known = st.filled_qty + sum(
            (f.qty for f in fills if self._fid(rec, f) not in st.fill_ids), Decimal(0)
        )
        if vo.filled_qty > known:
            fills = await self.venue.fills(st.symbol, vo)
        for f in sorted(fills, key=lambda f: (f.ts, f.trade_id)):
            fid = self._fid(rec, f)
            if st.record_fill(fid, f.qty, f.price):
                out.append(self._fill_event(rec, fid, f))
                done = st.filled_qty >= st.quantity
                out += st.transition(S.FILLED if done else S.PARTIALLY_FILLED, f.ts)
        status = vo.status
        if status in (S.ACCEPTED, S.PARTIALLY_FILLED) and st.status in (S.NEW, S.SUBMITTED):
            out += st.transition(S.ACCEPTED, vo.ts)
        elif status in (S.CANCELED, S.EXPIRED, S.REJECTED) and st.filled_qty >= vo.filled_qty:
            out += st.transition(status, vo.ts, reason)
        rec.phase = DONE if st.status.terminal else OPEN
        return out

    @staticmethod
    def _fid(rec: OrderRecord, f: VenueFill) -> str:
        return f"{rec.state.client_order_id}:t{f.trade_id}"

    def _fill_event(self, rec: OrderRecord, fid: str, f: VenueFill) -> Fill:
        st = rec.state
        return Fill(
            id=fid,
            ts_event=f.ts,
            client_order_id=st.client_order_id,
            exchange_order_id=st.exchange_order_id,
            exchange=st.exchange,
            symbol=st.symbol,
            side=st.side,
            price=f.price,
            qty=f.qty,
            fee=f.fee,
            fee_currency=f.fee_currency,
            liquidity=f.liquidity,
            strategy=st.strategy,
            ts_recv=st.ts_recv,
        )

    # --- background: reports, settling, reconciliation -------------------------------------
    async def _emit(self, events: list[Event], recs: Sequence[OrderRecord]) -> None:
        """Publish first, then save: a crash in between re-derives the same ids."""
        await self.publish(events)
        for rec in recs:
            await self.outbox.save(rec)

    async def on_report(self, vo: VenueOrder) -> None:
        async with self.lock:
            rec = await self.outbox.get(vo.client_order_id)
            if rec is None or rec.owner != self.owner or rec.phase == DONE:
                return
            out = await self._sync(rec, vo)
            if out or rec.phase != PENDING:
                await self._emit(out, [rec])

    async def reconcile(self, adopt: bool = False) -> None:
        """Compare every open order with the venue; emit what was missed."""
        async with self.lock:
            ids = set(self.outbox.open) | set(await self.outbox.load_index())
            for coid in sorted(ids):
                if coid not in self.outbox.open:
                    rec = await self.outbox.get(coid)
                    if rec is not None and rec.phase != DONE:
                        self.outbox.track(rec)
            if adopt:
                await self._adopt()
            changed: list[OrderRecord] = []
            out: list[Event] = []
            for rec in list(self.outbox.open.values()):
                try:
                    if rec.phase == PENDING:
                        ev = await self._settle(rec)
                    else:
                        vo = await self.venue.query(rec.state.symbol, rec.state.client_order_id)
                        ev = [] if vo is None else await self._sync(rec, vo)
                except VenueError as exc:
                    self._error(exc)
                    continue
                if ev or rec.phase == DONE:
                    out += ev
                    changed.append(rec)
            if changed:
                await self._emit(out, changed)
            self.balances = await self.venue.balances()
            self.reconciled = True
            await self.outbox.heartbeat()
            if out:
                log.info("reconciled with the venue", events=len(out), orders=len(changed))

    async def _adopt(self) -> None:
        """Take over the open orders of replicas that stopped heartbeating."""
        stale = time.time() - 3 * self.s.reconcile_interval_s
        for vo in await self.venue.open_orders():
            if vo.client_order_id in self.outbox.open:
                continue
            rec = await self.outbox.get(vo.client_order_id)
            if rec is None or rec.phase == DONE:
                continue
            if rec.owner == self.owner or await self.outbox.last_seen(rec.owner) < stale:
                log.info("adopting order", client_order_id=vo.client_order_id, owner=rec.owner)
                rec.owner = self.owner
                self.outbox.track(rec)

    async def settle_pending(self) -> None:
        async with self.lock:
            pending = [r for r in self.outbox.open.values() if r.phase == PENDING]
            out: list[Event] = []
            for rec in pending:
                out += await self._settle(rec)
            if pending:
                await self._emit(out, [r for r in pending if r.phase != PENDING])

    async def run_stream(self, stop: asyncio.Event) -> None:
        """Apply venue reports until stopped; reconcile after every (re)connect."""
        while not stop.is_set():
            try:
                await self._stream_once(stop)
            except asyncio.CancelledError:
                raise
            except (VenueError, OSError) as exc:
                metrics.EXCHANGE_ERRORS.labels(self.exchange, "stream").inc()
                log.warning("user data stream failed; reconnecting", error=str(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def _stream_once(self, stop: asyncio.Event) -> None:
        reports = aiter(self.venue.reports())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                nxt = asyncio.ensure_future(anext(reports))
                await asyncio.wait({nxt, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    nxt.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await nxt
                    return
                vo = nxt.result()
                if vo is None:
                    await self.reconcile()
                else:
                    await self.on_report(vo)
        except StopAsyncIteration:
            return
        finally:
            stopped.cancel()

    async def run_reconcile(self, stop: asyncio.Event) -> None:
        """Settle pending orders often, reconcile everything now and then."""
        last = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.s.settle_interval_s)
            if stop.is_set():
                return
            try:
                await self.settle_pending()
                if not self.reconciled or time.monotonic() - last >= self.s.reconcile_interval_s:
                    await self.reconcile(adopt=True)
                    last = time.monotonic()
            except asyncio.CancelledError:
                raise
            except (VenueError, OSError) as exc:
                metrics.EXCHANGE_ERRORS.labels(self.exchange, "reconcile").inc()
                log.warning("reconciliation failed", error=str(exc)[:200])
