"""NautilusTrader's half of ``bench_nautilus.py``; runs in NautilusTrader's own
venv (it imports nothing of Tradewind), reads a job as JSON on argv[1] and
prints one JSON line of counts and the engine's run time.

The two strategies mirror Tradewind's decision for decision: the same EMA
arithmetic in the same order on the same bar closes, the same crossover rule,
the same imbalance and hold rules, and the position each strategy aims for is
tracked from its own orders as Tradewind's ``StrategyContext.position`` is, so
a decision never waits on a fill in either engine. Data objects are built
before the clock starts; only ``BacktestEngine.run()`` is timed.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal
from typing import Any

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import DataEngineConfig, LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import BarType, BookOrder, OrderBookDelta, TradeTick
from nautilus_trader.model.enums import (
    AccountType,
    AggressorSide,
    BookAction,
    BookType,
    OmsType,
    OrderSide,
    OrderStatus,
    RecordFlag,
)
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, TradeId, Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy


class EmaCrossConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    quantity: Decimal
    fast: int
    slow: int


class EmaCross(Strategy):
    """tradewind.strategies.ema_cross.EmaCross, long only."""

    def __init__(self, config: EmaCrossConfig) -> None:
        super().__init__(config)
        self.af = 2.0 / (config.fast + 1)
        self.as_ = 2.0 / (config.slow + 1)
        self.fast: float | None = None
        self.slow: float | None = None
        self.above: bool | None = None
        self.bars = 0
        self.signals = 0
        self.position = Decimal(0)

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Any) -> None:
        c = bar.close.as_double()
        if self.fast is None or self.slow is None:
            self.fast = self.slow = c
        else:
            self.fast += self.af * (c - self.fast)
            self.slow += self.as_ * (c - self.slow)
        self.bars += 1
        if self.bars < self.config.slow:
            return
        above = self.fast > self.slow
        crossed = self.above is not None and above != self.above
        self.above = above
        if not crossed:
            return
        target = self.config.quantity if above else Decimal(0)
        delta = target - self.position
        if delta != 0:
            self.signals += 1
            self.position += delta
            side = OrderSide.BUY if delta > 0 else OrderSide.SELL
            self.submit_order(
                self.order_factory.market(
                    self.config.instrument_id, side, self.instrument.make_qty(abs(delta))
                )
            )


class ImbalanceConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    quantity: Decimal
    threshold: float
    hold_ns: int


class BookImbalance(Strategy):
    """bench/_book_imbalance.py's L2BookImbalance on NautilusTrader's own book."""

    def __init__(self, config: ImbalanceConfig) -> None:
        super().__init__(config)
        self.entered_ns = 0
        self.signals = 0
        self.books = 0
        self.position = Decimal(0)

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_order_book_deltas(self.config.instrument_id, BookType.L2_MBP)

    def on_order_book_deltas(self, deltas: Any) -> None:
        self.books += 1
        book = self.cache.order_book(self.config.instrument_id)
        bid, ask = book.best_bid_size(), book.best_ask_size()
        if bid is None or ask is None:
            return
        b, a = bid.as_double(), ask.as_double()
        total = b + a
        if total <= 0.0:
            return
        imb = (b - a) / total
        now = deltas.ts_event
        th = self.config.threshold
        want = 1 if imb >= th else 0
        held = 1 if self.position > 0 else -1 if self.position < 0 else 0
        if held != 0 and now - self.entered_ns < self.config.hold_ns:
            return
        if held != 0 and want == held:
            self.entered_ns = now
            return
        if want == held:
            return
        target = self.config.quantity * want
        if target != 0:
            self.entered_ns = now
        delta = target - self.position
        self.signals += 1
        self.position += delta
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        self.submit_order(
            self.order_factory.market(
                self.config.instrument_id, side, self.instrument.make_qty(abs(delta))
            )
        )


def trade_ticks(inst: Any, path: str) -> list[TradeTick]:
    ticks = []
    with open(path, "rb") as fh:
        for line in fh:
            d = json.loads(line)["data"]
            ts = d["T"] * 1_000_000
            ticks.append(
                TradeTick(
                    inst.id,
                    inst.make_price(float(d["p"])),
                    inst.make_qty(float(d["q"])),
                    AggressorSide.SELLER if d["m"] else AggressorSide.BUYER,
                    TradeId(str(d["t"])),
                    ts,
                    ts,
                )
            )
    return ticks


def book_deltas(inst: Any, path: str) -> tuple[list[OrderBookDelta], int]:
    """One line per book event Tradewind applied: ``[ts, snapshot, bids, asks]``.
    A snapshot clears the book; a level of size 0 deletes, any other adds or
    updates (NautilusTrader's L2 book keys levels by price)."""
    out: list[OrderBookDelta] = []
    levels = 0
    seq = 0
    with open(path, "rb") as fh:
        for line in fh:
            ts, snapshot, bids, asks = json.loads(line)
            batch: list[OrderBookDelta] = []
            if snapshot:
                batch.append(OrderBookDelta.clear(inst.id, seq, ts, ts))
            for side, lv in ((OrderSide.BUY, bids), (OrderSide.SELL, asks)):
                for p, q in lv:
                    levels += 1
                    action = (
                        BookAction.DELETE
                        if q == 0
                        else BookAction.ADD
                        if snapshot
                        else BookAction.UPDATE
                    )
                    order = BookOrder(side, inst.make_price(p), inst.make_qty(q), 0)
                    batch.append(OrderBookDelta(inst.id, action, order, 0, seq, ts, ts))
            seq += 1
            last = batch[-1]
            batch[-1] = OrderBookDelta(
                inst.id, last.action, last.order, RecordFlag.F_LAST, last.sequence, ts, ts
            )
            out.extend(batch)
    return out, levels


def engine_for(inst: Any, book_type: BookType, trade_execution: bool) -> BacktestEngine:
    engine = BacktestEngine(
        config=BacktestEngineConfig(
            trader_id="BENCH-001",
            logging=LoggingConfig(log_level="ERROR"),
            data_engine=DataEngineConfig(
                # Tradewind's bars: [start, end), closed by the first trade past
                # the end, none for an interval without trades.
                time_bars_interval_type="right-open",
                time_bars_build_with_no_updates=False,
                time_bars_skip_first_non_full_bar=False,
                buffer_deltas=True,
            ),
        )
    )
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(1_000_000_000, USDT)],
        book_type=book_type,
        trade_execution=trade_execution,
        bar_execution=False,
    )
    engine.add_instrument(inst)
    return engine


def main() -> None:
    job = json.loads(sys.argv[1])
    inst = TestInstrumentProvider.btcusdt_binance()
    extra: dict[str, Any] = {}
    strat: EmaCross | BookImbalance
    t_load = time.perf_counter()
    if job["kind"] == "trades":
        data: list[Any] = trade_ticks(inst, job["path"])
        engine = engine_for(inst, BookType.L1_MBP, trade_execution=True)
        strat = EmaCross(
            EmaCrossConfig(
                instrument_id=inst.id,
                bar_type=BarType.from_str(f"{inst.id}-{job['bar_s']}-SECOND-LAST-INTERNAL"),
                quantity=Decimal(job["quantity"]),
                fast=job["fast"],
                slow=job["slow"],
            )
        )
        inputs = len(data)
    else:
        data, inputs = book_deltas(inst, job["path"])
        engine = engine_for(inst, BookType.L2_MBP, trade_execution=False)
        strat = BookImbalance(
            ImbalanceConfig(
                instrument_id=inst.id,
                quantity=Decimal(job["quantity"]),
                threshold=job["threshold"],
                hold_ns=int(job["hold_s"] * 1e9),
            )
        )
    engine.add_data(data)
    engine.add_strategy(strat)
    t0 = time.perf_counter()
    load_s = t0 - t_load
    engine.run()
    elapsed = time.perf_counter() - t0
    orders = engine.cache.orders()
    fills = [e for o in orders for e in o.events if isinstance(e, OrderFilled)]
    if isinstance(strat, EmaCross):
        extra["bars"] = strat.bars
    else:
        extra["books"] = strat.books
    print(
        json.dumps(
            {
                "inputs": inputs,
                "seconds": elapsed,
                "load_seconds": load_s,
                "signals": strat.signals,
                "orders": len(orders),
                "denied": sum(1 for o in orders if o.status == OrderStatus.DENIED),
                "orders_filled": sum(1 for o in orders if o.status == OrderStatus.FILLED),
                "fill_events": len(fills),
                "filled_qty": str(sum((o.filled_qty.as_decimal() for o in orders), Decimal(0))),
                **extra,
            }
        )
    )
    engine.dispose()


if __name__ == "__main__":
    main()
