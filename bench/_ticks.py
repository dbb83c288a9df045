"""Ticks for the benchmarks: the real recorded Binance trades, replayed as many
times as needed with shifted trade ids and timestamps, so a long run is still
real market data (prices, sizes, gaps) rather than a synthetic walk."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec

from tradewind.clock import ReplayClock
from tradewind.events import MarketEvent, Trade
from tradewind.exchanges.replay import ReplaySource

ROOT = Path(__file__).resolve().parent.parent
MARKET_DATA = Path(os.environ.get("TRADEWIND_MARKET_DATA", ROOT / "tests" / "data" / "market"))
TRADES_FILE = MARKET_DATA / "binance_spot_btcusdt_trades_20240808.jsonl"


def recorded_trades(path: Path = TRADES_FILE) -> list[Trade]:
    async def load() -> list[Trade]:
        out: list[Trade] = []
        async for batch in ReplaySource([path]).batches(4096):
            out.extend(e for e in batch if isinstance(e, Trade))
        return out

    return asyncio.run(load())


class TickTape:
    """``n`` ticks from the recording; copy k shifts ids by k * len and time by
    k * (span + 1 ms). Events are made when a batch is taken, stamped with
    ``ts_recv`` = now, as a feed stamps them on receipt."""

    def __init__(self, n: int, base: list[Trade] | None = None) -> None:
        self.base = base if base is not None else recorded_trades()
        self.n = n
        first, last = self.base[0], self.base[-1]
        self.id_step = int(last.trade_id) - int(first.trade_id) + 1
        self.ts_step = last.ts_event - first.ts_event + 1_000_000

    def templates(self) -> Iterator[tuple[Trade, int]]:
        """(recorded trade, copy index) for every tick, in order."""
        i = 0
        k = 0
        while True:
            for t in self.base:
                if i >= self.n:
                    return
                yield t, k
                i += 1
            k += 1

    def make(self, t: Trade, k: int, now: int) -> Trade:
        if k == 0:
            return msgspec.structs.replace(t, ts_recv=now)
        tid = int(t.trade_id) + k * self.id_step
        return msgspec.structs.replace(
            t,
            id=f"{t.exchange}:{t.symbol}:t{tid}",
            trade_id=str(tid),
            ts_event=t.ts_event + k * self.ts_step,
            ts_recv=now,
        )

    def template_batches(self, size: int) -> Iterator[list[tuple[Trade, int]]]:
        batch: list[tuple[Trade, int]] = []
        for item in self.templates():
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def stamp(self, batch: list[tuple[Trade, int]]) -> list[Trade]:
        """The batch's events, received now."""
        now = time.time_ns()
        make = self.make
        return [make(t, k, now) for t, k in batch]


class TapeSource(ReplaySource):
    """A replay source over a ``TickTape`` for the ws service, optionally paced
    to ``rate`` ticks per second of wall time."""

    def __init__(
        self, tape: TickTape, clock: ReplayClock, rate: float = 0.0, batch: int = 1024
    ) -> None:
        super().__init__([], clock=clock)
        self.tape = tape
        self.rate = rate
        self.batch = batch
        self.started = 0.0
        self.started_cpu = 0.0

    async def batches(self, max_batch: int = 1024) -> AsyncIterator[list[MarketEvent]]:
        size = min(max_batch, self.batch)
        self.started = time.perf_counter()
        self.started_cpu = time.process_time()
        sent = 0
        for tb in self.tape.template_batches(size):
            if self.rate > 0:
                due = self.started + sent / self.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            b: list[MarketEvent] = list(self.tape.stamp(tb))
            sent += len(b)
            self.stats.lines += len(b)
            yield self._emit(b)
