"""The execution service: approved orders → a venue → order updates and fills.

Two kinds of venue:

- ``paper`` (the default) simulates in event time (``execution.paper``). It
  reads ``orders`` in the shared ``execution`` group and the whole ``market``
  topic in a group of its own per replica, and commits the events each batch
  causes together with the acks and (with ``durable_state``) the paper
  exchange's state (``execution.paper.store``), so a crash leaves all or
  nothing and a restart resumes with the same resting orders and market
  history. When a commit fails the in-memory state is ahead of the committed
  one; it is reloaded from the bus before the next batch.
- a live venue (``binance``, ``ccxt``) goes through ``execution.router``: the
  intent is recorded durably before it is sent, a lost answer is settled by
  looking the order up, start-up reconciles with the venue, and a circuit
  breaker stops sending after repeated errors.

Only order updates and fills are published; risk owns positions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from operator import attrgetter

import structlog

from tradewind.bus import Message, Subscription
from tradewind.clock import ReplayClock
from tradewind.control import UnsignedOrder, check_order
from tradewind.events import (
    Bar,
    BookDelta,
    CancelRequest,
    Event,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Quote,
    Trade,
)
from tradewind.execution.guard import keys_present
from tradewind.execution.paper.exchange import PaperExchange
from tradewind.execution.paper.store import PaperStore
from tradewind.execution.router import LiveRouter
from tradewind.observability import metrics
from tradewind.services.base import Service, ServiceContext
from tradewind.topics import EXECUTIONS, MARKET, ORDERS

log = structlog.get_logger("tradewind.execution")
_EVENT = attrgetter("event")
_MATCHED = frozenset({Trade, Quote, BookDelta, Bar})


class ExecutionService(Service):
    name = "execution"

    def __init__(self, ctx: ServiceContext, market_linger_s: float = 0.0) -> None:
        super().__init__(ctx)
        self.market_linger_s = market_linger_s
        """Paper: after a market batch smaller than a full one, wait this long
        before the next read. The paper venue matches on event time, so this
        delays its fills without changing them (see ``runtime.order_path``)."""
        ex = ctx.settings.execution
        self.paper: PaperExchange | None = None
        self.store: PaperStore | None = None
        self._reload = False
        self.router: LiveRouter | None = None
        log.info(
            "execution venue",
            venue=ex.venue,
            testnet=ex.testnet,
            keys="present" if keys_present(ex) else "absent",
            allow_paper_with_keys=ex.allow_paper_with_keys,
        )
        if ex.venue == "paper":
            self.paper = self._new_paper()
        else:
            venue = ctx.extras.get("venue")
            if venue is None:
                raise ValueError(f"execution.venue {ex.venue!r}: the runtime injects no venue")
            self.router = LiveRouter(
                venue,  # type: ignore[arg-type]
                ctx.bus,
                ex,
                owner=f"{self.name}:{ctx.consumer}",
                publish=self._publish,
            )
        key = ctx.settings.control.order_key
        self._order_key = None if key is None else key.get_secret_value()
        self._lock = asyncio.Lock()
        self.latencies: list[float] = []
        self.orders = 0
        self.fills = 0

    def _new_paper(self) -> PaperExchange:
        bus = self.ctx.settings.bus
        paper = PaperExchange(
            self.ctx.settings.paper,
            self.ctx.instruments,
            keep_done_s=2 * bus.max_deliveries * bus.claim_idle_ms / 1000 + 60,
        )
        if self.ctx.durable_state:
            self.store = PaperStore(paper, f"paper:{self.ctx.consumer}")
        return paper

    async def _restore(self) -> None:
        """Load the committed paper state (fresh objects: nothing uncommitted survives)."""
        self.paper = self._new_paper()
        assert self.store is not None
        if await self.store.restore(self.bus):
            log.info(
                "paper exchange restored",
                open_orders=self.paper.open_count(),
                finished=len(self.paper.done),
            )
        self._reload = False

    async def _commit(self, sub: Subscription, msgs: list[Message], out: list[Event]) -> None:
        state = None if self.store is None else self.store.changes()
        try:
            await sub.commit(msgs, {EXECUTIONS: out} if out else None, state or None)
        except BaseException:
            self._reload = self.store is not None
            raise
        if self.store is not None:
            self.store.saved()

    async def start(self) -> None:
        await super().start()
        if self.paper is not None:
            if self.store is not None:
                await self._restore()
            await self.consume([ORDERS], self._on_orders_paper)
            group = f"{self.name}.market.{self.ctx.consumer}"
            await self.consume(
                [MARKET], self._on_market, group=group, linger_s=self.market_linger_s
            )
            if not isinstance(self.ctx.clock, ReplayClock):
                self.spawn(self._tick(), "paper-clock")
            return
        assert self.router is not None
        await self.router.start()
        await self.consume([ORDERS], self._on_orders_live)
        self.spawn(self.router.run_stream(self._stopping), "user-stream")
        self.spawn(self.router.run_reconcile(self._stopping), "reconcile")

    async def stop(self, timeout: float | None = None) -> None:
        await super().stop(timeout)
        if self.router is not None:
            await self.router.close()

    def ready(self) -> tuple[bool, str]:
        ok, why = super().ready()
        if ok and self.router is not None:
            return self.router.ready()
        return ok, why

    # --- paper -------------------------------------------------------------------
    async def _on_orders_paper(self, sub: Subscription, msgs: list[Message]) -> None:
        async with self._lock:
            if self._reload:
                await self._restore()
            paper = self.paper
            assert paper is not None
            out: list[Event] = []
            new = 0
            self._check_signed(msgs)
            for m in msgs:
                e = m.event
                if isinstance(e, OrderRequest):
                    new += not paper.knows(e.client_order_id)
                    out.extend(paper.submit(e))
                elif isinstance(e, CancelRequest):
                    out.extend(paper.cancel(e))
            await self._commit(sub, msgs, out)
        self.orders += new
        self._account(out)

    async def _on_market(self, sub: Subscription, msgs: list[Message]) -> None:
        async with self._lock:
            if self._reload:
                await self._restore()
            paper = self.paper
            assert paper is not None
            out = paper.on_markets([e for e in map(_EVENT, msgs) if type(e) in _MATCHED])
            await self._commit(sub, msgs, out)
        metrics.EVENTS_CONSUMED.labels(self.name, MARKET).inc(len(msgs))
        self._account(out)

    async def _tick(self) -> None:
        """On a wall clock, land orders whose arrival passed on a quiet market."""
        assert self.paper is not None
        grace = int(self.settings.execution.wall_grace_ms * 1_000_000)
        while not self._stopping.is_set():
            await asyncio.sleep(0.02)
            async with self._lock:
                if self._reload:
                    await self._restore()
                out = self.paper.advance(self.ctx.clock.now_ns() - grace)
                if out:
                    await self._publish_then_save(out)
            self._account(out)

    async def _publish_then_save(self, out: list[Event]) -> None:
        """Landing on a wall clock has no message to ack: publish, then save. A
        crash in between lands the same orders again after the restart, with
        the same event ids, which idempotent consumers collapse."""
        try:
            await self.bus.publish(EXECUTIONS, out)
            if self.store is not None:
                for k, v in self.store.changes().items():
                    await self.bus.put_state(k, v)
                self.store.saved()
        except BaseException:
            self._reload = self.store is not None
            raise

    # --- live --------------------------------------------------------------------
    async def _on_orders_live(self, sub: Subscription, msgs: list[Message]) -> None:
        assert self.router is not None
        self._check_signed(msgs)
        for m in msgs:
            if isinstance(m.event, OrderRequest):
                self.orders += 1
            self._account(await self.router.handle(sub, m))

    def _check_signed(self, msgs: list[Message]) -> None:
        """With an order key, act only on orders and cancels risk signed. Checked
        for the whole batch before any is acted on: one unsigned order fails
        the batch untouched, it is retried one by one, and the bad one is
        dead-lettered while the others go through."""
        key = self._order_key
        if key is None:
            return
        for m in msgs:
            e = m.event
            if isinstance(e, (OrderRequest, CancelRequest)):
                try:
                    check_order(key, e)
                except UnsignedOrder:
                    metrics.FORGED.labels(self.name, "order").inc()
                    raise

    async def _publish(self, events: Sequence[Event]) -> None:
        if events:
            await self.bus.publish(EXECUTIONS, events)
            self._account(events)

    # --- accounting --------------------------------------------------------------
    def _account(self, out: Sequence[Event]) -> None:
        if not out:
            return
        now = time.time_ns()
        for e in out:
            if type(e) is OrderUpdate:
                # Tick-to-order ends when the order leaves Tradewind for the venue;
                # the venue's own (or the paper latency model's) delay until it
                # acknowledges is the separate decision_to_ack hop.
                if e.status is OrderStatus.SUBMITTED:
                    lat = (now - e.ts_recv) / 1e9
                    self.latencies.append(lat)
                    metrics.TICK_TO_ORDER.observe(lat)
                elif e.status is OrderStatus.ACCEPTED:
                    metrics.HOP_LATENCY.labels("decision_to_ack").observe((now - e.ts_recv) / 1e9)
            elif type(e) is Fill:
                self.fills += 1
                metrics.FILLS.labels(e.exchange, e.symbol, e.liquidity.value).inc()
                metrics.FEES.labels(e.exchange, e.fee_currency).inc(float(e.fee))
        metrics.EVENTS_PUBLISHED.labels(self.name, EXECUTIONS).inc(len(out))
        if self.paper is not None:
            metrics.OPEN_ORDERS.set(self.paper.open_count())
        elif self.router is not None:
            metrics.OPEN_ORDERS.set(len(self.router.outbox.open))
