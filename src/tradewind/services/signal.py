"""The signal service: market events → strategies → signals (and bars).

One strategy instance per symbol sees that symbol's events in exchange order.
Bars close when exchange time passes their end, whatever event moves it, so a
replay closes the same bars at the same points every time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter
from typing import cast

from tradewind.bus import Message, Subscription
from tradewind.events import Bar, BookDelta, Event, Fill, Quote, Side, Signal, Trade
from tradewind.observability import metrics
from tradewind.services.base import Service, ServiceContext
from tradewind.storage import Store
from tradewind.strategies import Strategy, StrategyContext, build_params, strategy_class
from tradewind.strategies.bars import BarBuilder
from tradewind.topics import BARS, EXECUTIONS, MARKET, SIGNALS, partition_of

_EVENT = attrgetter("event")
_TS = attrgetter("ts_event")

_MAX_TIMERS = 10_000


class _Worker:
    __slots__ = ("bars", "ctx", "on_trade", "runs", "strategy")

    def __init__(self, strategy: Strategy, ctx: StrategyContext, bars: BarBuilder | None) -> None:
        self.strategy = strategy
        self.ctx = ctx
        self.bars = bars
        # A strategy of bars (the EMA crossover) leaves on_trade as it is: no
        # call per tick then.
        overridden = type(strategy).on_trade is not Strategy.on_trade
        self.on_trade: Callable[[Trade], None] | None = strategy.on_trade if overridden else None
        self.runs = bars is not None and not overridden
        """Runs of trades inside one bar can skip the per-tick path (``_absorb``)."""


class SignalService(Service):
    name = "signal"
    absorb_runs: bool = True
    """Take runs of trades inside a bar at once (``_absorb``); tests turn it
    off to compare with per-tick dispatch."""

    def __init__(self, ctx: ServiceContext, partitioned: bool = False) -> None:
        """``partitioned``: start owning no market partition and wait for
        ``set_partitions`` (replicas split the partitions through leases)."""
        super().__init__(ctx)
        self.partitioned = partitioned
        self.owned: frozenset[int] | None = None
        self._market: Subscription | None = None
        s = ctx.settings.strategy
        self.strategy_cls = strategy_class(s.name)
        self.params = build_params(s.name, s.params)
        self._timer_ns = int(self.params.timer_interval_s * 1e9)
        self.workers: dict[tuple[str, str], _Worker] = {}
        self.bars_out = 0
        self.bars_in = 0
        """Exchange bars received (bar files, kline feeds); stored like built ones."""
        self.signals_out = 0

    def _worker(self, exchange: str, symbol: str) -> _Worker:
        key = (exchange, symbol)
        w = self.workers.get(key)
        if w is None:
            sctx = StrategyContext(self.strategy_cls.name, exchange, symbol)
            interval = self.params.bar_interval_s
            bars = BarBuilder(exchange, symbol, interval) if interval > 0 else None
            w = self.workers[key] = _Worker(self.strategy_cls(self.params, sctx), sctx, bars)
        return w

    async def start(self) -> None:
        await super().start()
        self._market = await self.consume(
            [MARKET], self._on_market, partitions=[] if self.partitioned else None
        )
        await self.consume([EXECUTIONS], self._on_executions, group=f"{self.name}.fills")

    async def set_partitions(
        self, owned: frozenset[int], tokens: Mapping[int, tuple[str, bytes]]
    ) -> None:
        """Read only ``owned`` partitions, committing under their leases.

        Workers of partitions given up are dropped: their state lives on in the
        bus, committed with the last acked batch, and whoever owns the partition
        next restores it from there.
        """
        sub = self._market
        if sub is None:
            return
        fence = getattr(sub, "set_partition_fence", None)
        if fence is not None:
            fence(tokens)
        parts = self.bus.partitions
        for key in [k for k in self.workers if partition_of(k[1], parts) not in owned]:
            del self.workers[key]
        await sub.assign(sorted(owned))
        self.owned = owned

    def ready(self) -> tuple[bool, str]:
        ok, why = super().ready()
        if ok and self.partitioned and self.owned is None:
            return False, "waiting for partition leases"
        return ok, why

    def state_key(self, exchange: str, symbol: str) -> str:
        return f"signal:{self.strategy_cls.name}:{exchange}:{symbol}"

    async def _restore(self, w: _Worker) -> None:
        raw = await self.bus.get_state(self.state_key(w.ctx.exchange, w.ctx.symbol))
        if raw is None:
            if self.ctx.store is not None:
                await self._rebuild(w, self.ctx.store)
            return
        data = json.loads(raw)
        w.ctx.restore(data["ctx"])
        w.strategy.load_state(data["strategy"])
        if w.bars is not None and data.get("bars") is not None:
            w.bars.restore(data["bars"])

    async def _rebuild(self, w: _Worker, store: Store) -> int:
        """A strategy's state from the store, when the bus holds none (an
        embedded restart): its stored bars go through ``on_bar`` again, in
        order, and what it signals meanwhile is dropped (those signals are in
        the store already); then its signal count and aimed-for position are
        those of the stored signals, so the next signal id is the one an
        undisturbed run would have made. Exact for strategies of bars; those
        of ticks, quotes or books start from their parameters. The bar that was
        open is rebuilt from the stored trades since the last stored bar."""
        ctx = w.ctx

        def lit(s: str) -> str:
            return "'" + s.replace("'", "''") + "'"

        where = f"exchange = {lit(ctx.exchange)} AND symbol = {lit(ctx.symbol)}"
        interval = self.params.bar_interval_s
        bars = await store.fetch(
            "SELECT ts_event, ts_open, open, high, low, close, volume, trades FROM bars "
            f"WHERE {where} ORDER BY ts_event"
        )
        for ts, ts_open, o, h, lo, c, v, n in bars:
            ctx.now_ns = int(str(ts))
            w.strategy.on_bar(
                Bar(
                    id=f"rebuild:{ts}",
                    ts_event=int(str(ts)),
                    exchange=ctx.exchange,
                    symbol=ctx.symbol,
                    interval_s=interval,
                    ts_open=int(str(ts_open)),
                    open=float(str(o)),
                    high=float(str(h)),
                    low=float(str(lo)),
                    close=float(str(c)),
                    volume=float(str(v)),
                    trades=int(str(n)),
                    ts_recv=0,
                )
            )
            ctx.drain()
        if w.bars is not None:
            # The bar that was open: its trades, after the last stored bar's end.
            since = int(str(bars[-1][0])) if bars else 0
            scratch: list[Event] = []
            for tid, px, qty, side, ts, recv in await store.fetch(
                "SELECT trade_id, price, qty, side, ts_event, ts_recv FROM trades "
                f"WHERE {where} AND ts_event >= {since} "
                "ORDER BY ts_event, length(trade_id), trade_id"
            ):
                trade = Trade(
                    id=f"rebuild:{tid}",
                    ts_event=int(str(ts)),
                    exchange=ctx.exchange,
                    symbol=ctx.symbol,
                    price=float(str(px)),
                    qty=float(str(qty)),
                    side=None if side is None else Side(str(side)),
                    trade_id=str(tid),
                    ts_recv=int(str(recv)),
                )
                self._dispatch(w, trade, scratch)
            ctx.drain()
        rows = await store.fetch(
            f"SELECT side, quantity FROM signals WHERE {where} AND strategy = "
            f"{lit(self.strategy_cls.name)}"
        )
        ctx.restore_counts(
            len(rows),
            sum(
                (Decimal(str(q)) * (1 if str(s) == Side.BUY.value else -1) for s, q in rows),
                Decimal(0),
            ),
        )
        return len(bars)

    def _snapshot(self, w: _Worker) -> bytes:
        return json.dumps(
            {
                "ctx": w.ctx.state(),
                "strategy": w.strategy.save_state(),
                "bars": None if w.bars is None else w.bars.state(),
            }
        ).encode()

    async def _on_market(self, sub: Subscription, msgs: list[Message]) -> None:
        bars: list[Event] = []
        signals: list[Signal] = []
        touched: dict[tuple[str, str], _Worker] = {}
        durable = self.ctx.durable_state
        try:
            await self._process(sub, msgs, bars, signals, touched)
        except BaseException:
            if durable:
                # Their in-memory state ran ahead of what was committed: reload.
                for key in touched:
                    self.workers.pop(key, None)
            raise
        self._account(len(msgs), bars, signals)

    async def _process(
        self,
        sub: Subscription,
        msgs: list[Message],
        bars: list[Event],
        signals: list[Signal],
        touched: dict[tuple[str, str], _Worker],
    ) -> None:
        durable = self.ctx.durable_state
        events = list(map(_EVENT, msgs))
        runs = self.absorb_runs and not self._timer_ns
        i, n = 0, len(events)
        while i < n:
            e = events[i]
            i += 1
            if not isinstance(e, (Trade, Quote, BookDelta, Bar)):
                continue
            key = (e.exchange, e.symbol)
            w = self.workers.get(key)
            if w is None:
                w = self._worker(*key)
                if durable:
                    await self._restore(w)
            touched[key] = w
            self._dispatch(w, e, bars)
            if w.ctx._out:
                signals.extend(w.ctx.drain())
            if runs and w.runs and type(e) is Trade:
                i = self._absorb(w, events, i)
        state = (
            {self.state_key(*k): self._snapshot(w) for k, w in touched.items()} if durable else None
        )
        publish: dict[str, Sequence[Event]] = {BARS: bars, SIGNALS: signals}
        await sub.commit(msgs, publish, state)

    def _absorb(self, w: _Worker, events: list[Event], i: int) -> int:
        """Take the trades from ``i`` on that stay inside ``w``'s open bar, at
        once: for a strategy of bars with no ``on_trade`` and no timer they
        call nothing, so all that per-tick dispatch would leave behind is the
        bar's running values and the context's time, last price and receive
        time, set here the same way. Returns where per-tick dispatch resumes
        (the trade that closes the bar, or another symbol's event)."""
        bb = w.bars
        assert bb is not None
        until = bb.open_until_ns()
        ctx = w.ctx
        exchange, symbol = ctx.exchange, ctx.symbol
        j, n = i, len(events)
        while j < n:
            e = events[j]
            if type(e) is not Trade or e.ts_event >= until:
                break
            if e.symbol != symbol or e.exchange != exchange:
                break
            j += 1
        if j > i:
            run = cast(list[Trade], events[i:j])
            bb.extend(run)
            last = run[-1]
            ctx.last = last.price
            ctx.ts_recv = last.ts_recv
            newest = max(map(_TS, run))
            if newest > ctx.now_ns:
                ctx.now_ns = newest
        return j

    def _dispatch(self, w: _Worker, e: Trade | Quote | BookDelta | Bar, bars: list[Event]) -> None:
        ctx = w.ctx
        strat = w.strategy
        # This event is what closes a bar or fires a timer, so signals made
        # there carry its receive time, not the previous event's.
        ctx.ts_recv = e.ts_recv
        if e.ts_event > ctx.now_ns:
            if w.bars is not None:
                closed = w.bars.advance(e.ts_event)
                if closed is not None:
                    bars.append(closed)
                    strat.on_bar(closed)
            if self._timer_ns:
                self._fire_timers(w, e.ts_event)
            ctx.now_ns = e.ts_event
        if type(e) is Trade:
            ctx.last = e.price
            if w.bars is not None:
                closed = w.bars.add(e)
                if closed is not None:
                    bars.append(closed)
                    strat.on_bar(closed)
            if w.on_trade is not None:
                w.on_trade(e)
        elif type(e) is Quote:
            ctx.bid, ctx.ask = e.bid, e.ask
            strat.on_quote(e)
        elif type(e) is BookDelta:
            strat.on_book(e)
        elif type(e) is Bar:
            self.bars_in += 1
            if w.bars is None:
                ctx.last = e.close
                strat.on_bar(e)

    def _fire_timers(self, w: _Worker, now: int) -> None:
        """Call ``on_timer`` for every timer boundary up to ``now``, in order;
        after a long silence only the last ``_MAX_TIMERS`` boundaries fire."""
        ctx = w.ctx
        step = self._timer_ns
        if not ctx.next_timer_ns:
            ctx.next_timer_ns = (now // step + 1) * step
            return
        if ctx.next_timer_ns > now:
            return
        due = (now - ctx.next_timer_ns) // step + 1
        if due > _MAX_TIMERS:
            ctx.next_timer_ns += (due - _MAX_TIMERS) * step
        while ctx.next_timer_ns <= now:
            ctx.now_ns = ctx.next_timer_ns
            w.strategy.on_timer(ctx.next_timer_ns)
            ctx.next_timer_ns += step

    def _account(self, n: int, bars: list[Event], signals: list[Signal]) -> None:
        metrics.EVENTS_CONSUMED.labels(self.name, MARKET).inc(n)
        if bars:
            self.bars_out += len(bars)
            metrics.EVENTS_PUBLISHED.labels(self.name, BARS).inc(len(bars))
            for b in bars:  # tradewind_bars_total: the market-data dashboard's bars panel
                if isinstance(b, Bar):
                    metrics.BARS.labels(b.symbol).inc()
        if signals:
            self.signals_out += len(signals)
            metrics.EVENTS_PUBLISHED.labels(self.name, SIGNALS).inc(len(signals))
            now = time.time_ns()
            for s in signals:
                metrics.HOP_LATENCY.labels("tick_to_signal").observe((now - s.ts_recv) / 1e9)
                metrics.SIGNALS.labels(s.strategy, s.symbol, s.side.value).inc()

    async def _on_executions(self, sub: Subscription, msgs: list[Message]) -> None:
        strategy = self.strategy_cls.name
        for m in msgs:
            e = m.event
            if type(e) is Fill and e.strategy == strategy:
                w = self.workers.get((e.exchange, e.symbol))
                if w is not None:
                    w.strategy.on_fill(e)
        await sub.commit(msgs)
