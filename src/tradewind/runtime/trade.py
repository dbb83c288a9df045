"""Trading live in one process: the embedded ``Pipeline`` on the live feeds
and the wall clock (``feed.source = "live"`` makes it so), watched by a tap
that keeps what a dashboard shows, and stopped so that nothing is left open.

The tap is one more consumer group on the in-process bus: it reads the market,
signals, decisions and executions after the services have, so watching never
delays the order path. State that must survive a restart is rebuilt from the
store by the services themselves (``durable_state``: risk rebuilds from the
store when the bus holds no snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec

from tradewind.bus import Message
from tradewind.config import Settings
from tradewind.control import make_control
from tradewind.events import (
    ControlReply,
    Fill,
    OrderStatus,
    OrderUpdate,
    Quote,
    RiskDecision,
    Signal,
    Trade,
)
from tradewind.exchanges.common.recording import Recorder
from tradewind.risk.rebuild import stored_orders
from tradewind.runtime.control_endpoint import ControlEndpoint, exchange
from tradewind.runtime.embedded import Pipeline, RunSummary, percentile
from tradewind.services.base import ServiceContext
from tradewind.topics import DECISIONS, EXECUTIONS, MARKET, ORDERS, SIGNALS

TAP_GROUP = "trade.tap"
RECENT = 12
STOP_TIMEOUT_S = 5.0

Key = tuple[str, str]


@dataclass
class SymbolView:
    exchange: str
    symbol: str
    last: float | None
    bid: float | None
    ask: float | None
    feed: str
    """connected, resyncing, stale, disconnected or waiting (no data yet)."""
    reconnects: int
    position: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    open_orders: int
    currency: str = ""
    """What this symbol's PnL is in: the coin for inverse contracts."""


@dataclass
class TradeView:
    venue: str
    execution: str
    symbols: list[SymbolView]
    equity: Decimal
    drawdown: Decimal
    state: str
    tripped_by: str
    limits: dict[str, tuple[Decimal, Decimal]]
    recent: list[str]
    signals: int
    orders: int
    fills: int
    rejected: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    uptime_s: float
    events_in: int
    account_currency: str = ""
    """What ``equity`` is in: every symbol's PnL converted (coins at their mark)."""


@dataclass
class _Tape:
    """What the tap saw: top of book per symbol and the last few happenings."""

    bid: dict[Key, float] = field(default_factory=dict)
    ask: dict[Key, float] = field(default_factory=dict)
    last: dict[Key, float] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))


def _clock(ts_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts_ns / 1e9)) if ts_ns else "--:--:--"


def describe(e: object) -> str | None:
    """One line for the activity list, or None for what it does not show."""
    if isinstance(e, Signal):
        return f"{_clock(e.ts_event)} signal {e.side.value} {e.quantity} {e.symbol} ({e.strategy})"
    if isinstance(e, RiskDecision) and not e.approved:
        return (
            f"{_clock(e.ts_event)} REJECTED {e.side.value} {e.quantity} {e.symbol}: "
            f"{e.reason}{' - ' + e.detail if e.detail else ''}"
        )
    if isinstance(e, OrderUpdate) and e.status in (
        OrderStatus.ACCEPTED,
        OrderStatus.REJECTED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
    ):
        why = f": {e.reason}" if e.reason else ""
        return (
            f"{_clock(e.ts_event)} order {e.status.value} {e.side.value} {e.quantity} "
            f"{e.symbol} {e.order_type.value}{why}"
        )
    if isinstance(e, Fill):
        return (
            f"{_clock(e.ts_event)} fill {e.side.value} {e.qty.normalize():f} {e.symbol} "
            f"@ {e.price.normalize():f} fee {e.fee.normalize():f} {e.fee_currency}"
        )
    return None


class LiveTrader:
    """The pipeline of ``tradewind run`` on live feeds, plus the tap and a
    clean stop. ``settings.feed.source`` must be ``live``."""

    def __init__(
        self,
        settings: Settings,
        recorder: Recorder | None = None,
        control_socket: Path | None = None,
    ) -> None:
        if settings.feed.source != "live":
            raise ValueError("trading needs feed.source = live")
        self.settings = settings
        # A live process isolates a bad message (and dead-letters it) rather
        # than stopping, as each service does in distributed mode.
        self.pipeline = Pipeline(settings, durable=True, fail_fast=False)
        self.recorder = recorder
        if recorder is not None:
            assert self.pipeline.ws.feeds is not None
            self.pipeline.ws.feeds.record_to(recorder)
        self.control = (
            None
            if control_socket is None
            else ControlEndpoint(
                self.pipeline.bus, control_socket, settings.control.reply_timeout_s
            )
        )
        self.tape = _Tape()
        self._tap_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.started_at = 0.0
        self.cancelled = 0
        self.resent = 0

    async def live_checks(self) -> list[str]:
        """The live venue's checks at start (keys, clock, symbols), before any
        service starts; raises ``StartCheckFailed``. Nothing to check on paper."""
        router = self.pipeline.execution.router
        if router is None:
            return []
        try:
            return await router.venue.start_checks([s for _, s in self.symbols()])
        except BaseException:
            await router.close()
            raise

    @property
    def ctx(self) -> ServiceContext:
        return self.pipeline.risk.ctx

    async def start(self) -> None:
        bus = self.pipeline.bus
        sub = await bus.subscribe([MARKET, SIGNALS, DECISIONS, EXECUTIONS], TAP_GROUP, "0")
        self._tap_task = asyncio.create_task(self._tap(sub), name="trade:tap")
        if self.recorder is not None:
            self.recorder.start()
        await self.pipeline.start()
        self.resent = await self._resend_lost_orders()
        if self.control is not None:
            await self.control.start()
        self.started_at = time.monotonic()

    async def command(self, command: str, args: dict[str, str]) -> ControlReply | None:
        """A kill-switch command from this process (the dashboard's keys),
        signed and verified like one from ``tradewind halt``."""
        token = self.settings.control.token
        if token is None:
            return None
        c = make_control(token.get_secret_value(), command, args, time.time_ns(), "dashboard")
        reply = await exchange(self.pipeline.bus, c, self.settings.control.reply_timeout_s)
        if reply is not None:
            self.tape.recent.append(f"{_clock(time.time_ns())} {command}: {reply.detail}")
        return reply

    async def _resend_lost_orders(self) -> int:
        """Orders risk rebuilt as open that the paper exchange no longer holds
        (the process was killed; paper state lives in memory): sent again for
        what remains of them, under the same client order id, so risk's open
        orders and the venue's agree instead of waiting forever."""
        paper = self.pipeline.execution.paper
        store = self.pipeline.store
        open_ = self.pipeline.risk.engine.open_orders
        if paper is None or store is None or not open_:
            return 0
        lost = [c for c in open_ if not paper.knows(c)]
        if not lost:
            return 0
        ids = ", ".join("'" + c.replace("'", "''") + "'" for c in sorted(lost))
        orders = await stored_orders(store, f"client_order_id IN ({ids})")
        resend = [
            msgspec.structs.replace(o, quantity=open_[o.client_order_id].remaining)
            for o in orders
            if open_[o.client_order_id].remaining > 0
        ]
        if resend:
            await self.pipeline.bus.publish(ORDERS, resend)
        return len(resend)

    async def _tap(self, sub: object) -> None:
        from tradewind.bus import Subscription

        assert isinstance(sub, Subscription)
        tape = self.tape
        try:
            while not self._stopping.is_set():
                msgs: list[Message] = await sub.fetch(4096, 0.2)
                for m in msgs:
                    e = m.event
                    t = type(e)
                    if t is Quote:
                        assert isinstance(e, Quote)
                        tape.bid[(e.exchange, e.symbol)] = e.bid
                        tape.ask[(e.exchange, e.symbol)] = e.ask
                    elif t is Trade:
                        assert isinstance(e, Trade)
                        tape.last[(e.exchange, e.symbol)] = e.price
                    else:
                        line = describe(e)
                        if line is not None:
                            tape.recent.append(line)
                if msgs:
                    await sub.commit(msgs)
        finally:
            await sub.close()

    def failed(self) -> BaseException | None:
        for s in self.pipeline.services:
            err = s.failed()
            if err is not None:
                return err
        if self._tap_task is not None and self._tap_task.done() and not self._tap_task.cancelled():
            return self._tap_task.exception()
        return None

    async def run_until(self, stopping: asyncio.Event) -> None:
        """Until ``stopping`` is set; raises the error of a service that failed."""
        while not stopping.is_set():
            err = self.failed()
            if err is not None:
                raise RuntimeError(f"a service failed: {err!r}") from err
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.25)

    async def cancel_open_orders(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Cancel every order risk holds open, as the kill switch would, and
        wait (bounded) until the venue has confirmed them."""
        engine = self.pipeline.risk.engine
        n = engine.cancel_all("shutdown")
        out = engine.drain()
        if out:
            await self.pipeline.bus.publish(ORDERS, out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            paper = self.pipeline.execution.paper
            if (paper is None or paper.open_count() == 0) and not engine.open_orders:
                break
            await asyncio.sleep(0.05)
        self.cancelled = n
        return n

    async def drain(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Until every consumer has taken and acknowledged everything (bounded):
        the store then holds every event of the run."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            quiet = quiet + 1 if await self.pipeline.bus.idle() else 0
            await asyncio.sleep(0.02)

    async def stop(self, cancel: bool = True) -> None:
        """Stop the feed first (nothing new comes in), cancel what is open, let
        the store catch up, then stop every service."""
        if self.control is not None:
            await self.control.close()
        await self.pipeline.ws.stop()
        if cancel:
            await self.cancel_open_orders()
        await self.drain()
        self._stopping.set()
        if self._tap_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._tap_task, 2.0)
        await self.pipeline.stop()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)

    async def summary(self) -> RunSummary:
        return await self.pipeline.summary(time.monotonic() - self.started_at)

    # --- the dashboard's view ---------------------------------------------------
    def _feed_state(self, key: Key, now: float) -> tuple[str, int]:
        ws = self.pipeline.ws
        feeds = ws.feeds
        if feeds is None:
            return "replay", 0
        venue = feeds.venues.get(key[0])
        if venue is None:
            return "unknown", 0
        conn = next((c for c in venue.connections if key[1] in c.symbols), None)
        reconnects = 0 if conn is None else sum(conn.reconnect_reasons.values())
        if conn is None or conn.ws is None:
            return "disconnected", reconnects
        sync = venue.books.get(key[1])
        if venue.books_on and (sync is None or not sync.synced):
            return "resyncing", reconnects
        seen = ws.last_event_at.get(key)
        if seen is None:
            return "waiting", reconnects
        if now - seen > self.settings.feed.stale_after_s:
            return "stale", reconnects
        return "connected", reconnects

    def symbols(self) -> list[Key]:
        feed = self.settings.feed
        out: list[Key] = []
        for ex in feed.exchanges:
            for sym in feed.symbols_by_exchange.get(ex, feed.symbols):
                out.append((ex, sym))
        return out

    def view(self) -> TradeView:
        engine = self.pipeline.risk.engine
        pf = engine.portfolio
        now = time.time()
        rows: list[SymbolView] = []
        open_by: dict[Key, int] = {}
        for o in engine.open_orders.values():
            open_by[(o.exchange, o.symbol)] = open_by.get((o.exchange, o.symbol), 0) + 1
        keys = list(dict.fromkeys([*self.symbols(), *sorted(pf.positions)]))
        for key in keys:
            p = pf.positions.get(key)
            feed, reconnects = self._feed_state(key, now)
            last = self.tape.last.get(key, self.pipeline.ws.last_price.get(key))
            rows.append(
                SymbolView(
                    exchange=key[0],
                    symbol=key[1],
                    last=last,
                    bid=self.tape.bid.get(key),
                    ask=self.tape.ask.get(key),
                    feed=feed,
                    reconnects=reconnects,
                    position=p.qty if p else Decimal(0),
                    avg_price=p.avg_price if p else Decimal(0),
                    realized_pnl=(p.realized_pnl - p.fees) if p else Decimal(0),
                    unrealized_pnl=p.unrealized_pnl if p else Decimal(0),
                    open_orders=open_by.get(key, 0),
                    currency=p.currency if p else pf.currency_of(*key),
                )
            )
        lat = self.pipeline.execution.latencies
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        equity = engine.equity()
        return TradeView(
            venue=",".join(self.settings.feed.exchanges),
            execution=self.settings.execution.venue,
            symbols=rows,
            equity=equity,
            drawdown=engine.loss.drawdown(equity),
            state=engine.state.value,
            tripped_by=engine.tripped_by,
            limits=engine.utilisation(),
            recent=list(self.tape.recent),
            signals=self.pipeline.signal.signals_out,
            orders=self.pipeline.execution.orders,
            fills=self.pipeline.execution.fills,
            rejected=self.pipeline.risk.rejected,
            latency_p50_ms=None if p50 is None else p50 * 1000,
            latency_p99_ms=None if p99 is None else p99 * 1000,
            uptime_s=time.monotonic() - self.started_at if self.started_at else 0.0,
            events_in=self.pipeline.ws.events_in,
            account_currency=self.settings.risk.account_currency,
        )
