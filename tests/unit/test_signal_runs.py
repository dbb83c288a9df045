"""Runs of trades inside a bar are taken at once by the signal service; the
bars, signals and saved strategy state must be those of per-tick dispatch,
on the recorded trades and on shuffled, interleaved, multi-symbol input."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest

from tests.conftest import market_file, service_context
from tradewind.bus import MemoryBus
from tradewind.events import Event, Quote, Trade
from tradewind.exchanges.binance.parser import BinanceParser
from tradewind.services import SignalService
from tradewind.topics import BARS, MARKET, SIGNALS

S = 1_000_000_000


def recorded() -> list[Event]:
    parser = BinanceParser()
    out: list[Event] = []
    for line in market_file("binance_spot_btcusdt_trades_20240808.jsonl").read_bytes().splitlines():
        out += parser.parse(line, 0)
    return out


def shuffled(seed: int) -> list[Event]:
    """Two symbols, quotes between trades, timestamps that step back and jump."""
    rng = random.Random(seed)
    out: list[Event] = []
    ts = 1_700_000_000 * S
    for i in range(6000):
        ts += rng.choice([0, 1_000_000, 20_000_000, 300_000_000, 2 * S]) - (
            50_000_000 if rng.random() < 0.1 else 0
        )
        sym = "BTCUSDT" if rng.random() < 0.8 else "ETHUSDT"
        if rng.random() < 0.1:
            out.append(
                Quote(
                    id=f"q{i}",
                    ts_event=ts,
                    exchange="binance",
                    symbol=sym,
                    bid=100.0,
                    bid_qty=1.0,
                    ask=100.1,
                    ask_qty=1.0,
                    ts_recv=i,
                )
            )
            continue
        out.append(
            Trade(
                id=f"t{i}",
                ts_event=ts,
                exchange="binance",
                symbol=sym,
                price=100.0 + rng.gauss(0, 1),
                qty=rng.choice([0.1, 0.003, 1.7]),
                side=None,
                trade_id=str(i),
                ts_recv=i,
            )
        )
    return out


async def run(make_settings: Any, events: list[Event], batch: int, absorb: bool) -> Any:
    settings = make_settings(
        strategy={"name": "ema_cross", "params": {"bar_interval_s": 1.0, "fast": 2, "slow": 5}}
    )
    bus = MemoryBus()
    bus.not_waited_for = frozenset({"test"})  # read once at the end
    svc = SignalService(service_context(settings, bus=bus, durable_state=True))
    svc.absorb_runs = absorb
    await svc.start()
    out = await bus.subscribe([BARS, SIGNALS], "test", "t")
    states: list[dict[str, Any]] = []
    for i in range(0, len(events), batch):
        await bus.publish(MARKET, events[i : i + batch])
        await bus.wait_idle()
        states.append({k: json.loads(svc._snapshot(w)) for k, w in svc.workers.items()})
    published = [msgspec.json.encode(m.event) for m in await out.fetch(100_000, 0.1)]
    await svc.stop()
    return published, states, svc.bars_out, svc.signals_out


@pytest.mark.parametrize("batch", [1, 7, 1024])
@pytest.mark.parametrize("source", ["recorded", "shuffled-1", "shuffled-2"])
async def test_runs_taken_at_once_equal_per_tick_dispatch(
    make_settings: Any, source: str, batch: int
) -> None:
    events = recorded() if source == "recorded" else shuffled(int(source[-1]))
    fast = await run(make_settings, events, batch, absorb=True)
    slow = await run(make_settings, events, batch, absorb=False)
    assert fast[2] > 10 and fast[3] > 0  # bars and signals were made
    assert fast == slow
