"""In-process pipeline throughput and tick-to-order latency, against a bare
4-stage ``asyncio.Queue`` relay of the same events, in the same run.

The five services run as ``tradewind run`` runs them (the embedded
``Pipeline``: in-process bus, SQLite store with db_writer persisting every
tick, EMA crossover strategy). Ticks are the real recorded Binance trades,
replayed as often as needed with shifted ids and timestamps; each batch is
stamped ``ts_recv`` = now when the ws service takes it, as a feed stamps
frames on receipt, so tick-to-order is measured from there to the paper
exchange's acceptance.

Two runs: saturated (as fast as the services go: throughput; latency then
includes queueing behind up to a bus capacity of ticks) and paced at a fixed
rate (latency without backlog). The baseline relays every event, one by one,
through four bounded queues and four tasks: the cost of moving the events
through asyncio with nothing done to them.

Two more figures bound the ratio in the same run, by CPU time: the pipeline
without its store (db_writer left out), and a bare SQLite insert of the same
rows (our schema and statement, one thread, no services), which any
pipeline that persists every tick pays on top of moving it. The relay's CPU
over the relay's plus that insert is the highest the ratio can reach with
every tick in SQLite; on this machine the pipeline without its store is at
the relay's cost (92-121 %), and the insert alone (~2.6 us a row, SQLite's
own B-tree and WAL work) puts that ceiling near 60 %.

    python bench/bench_pipeline.py [--ticks 200000] [--rate 10000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ticks import TapeSource, TickTape, recorded_trades
from tradewind.clock import ReplayClock
from tradewind.config import load_settings
from tradewind.events import Trade
from tradewind.runtime.embedded import Pipeline, percentile
from tradewind.runtime.loop import run_async
from tradewind.storage.rows import group_rows
from tradewind.storage.sqlite import SqliteStore

TARGET_TPS = 150_000
TARGET_RATIO = 0.65


async def run_pipeline(
    tape: TickTape, db: Path, rate: float = 0.0, batch: int = 1024, store: bool = True
) -> tuple[float, list[float], dict[str, int]]:
    """(seconds from the first tick to all services idle, latencies s, counts
    with the process's CPU time over the same span)"""
    settings = load_settings(
        feed={"source": "replay", "speed": 0.0},
        store={"url": f"sqlite:///{db}"},
        strategy={"name": "ema_cross", "params": {}},
        bus={"kind": "memory"},
        log_level="warning",
    )
    clock = ReplayClock()
    source = TapeSource(tape, clock, rate=rate, batch=batch)
    p = Pipeline(settings, source=source, clock=clock, store=store)
    await p.start()
    try:
        # Polling is cheap on the replay flag; ``idle()`` builds the bus's
        # info and costs ~50 us, so it is asked only every 5 ms (<1 % of a run).
        while not p.ws.done.is_set():
            _check(p)
            await asyncio.sleep(0.002)
        while not await p.bus.idle():
            _check(p)
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - source.started
        cpu = time.process_time() - source.started_cpu
    finally:
        await p.stop()
    counts = {
        "ticks": p.ws.events_in,
        "bars": p.signal.bars_out,
        "signals": p.signal.signals_out,
        "orders": p.execution.orders,
        "fills": p.execution.fills,
        "rows": sum(p.db_writer.rows.values()) if p.db_writer else 0,
        "cpu_ms": round(cpu * 1000),
    }
    return elapsed, list(p.execution.latencies), counts


def sqlite_insert_cpu(tape: TickTape, db: Path, batch: int = 1024) -> float:
    """CPU seconds of a bare SQLite insert of the tape's rows into our schema,
    one transaction a batch, as the embedded store writes them; the rows are
    built before the clock starts."""
    store = SqliteStore(db)
    store._open()
    batches = [group_rows(tape.stamp(tb)) for tb in tape.template_batches(batch)]
    c0 = time.process_time()
    for grouped in batches:
        store._write(grouped)
    cpu = time.process_time() - c0
    assert store._conn is not None
    store._conn.close()
    return cpu


def _check(p: Pipeline) -> None:
    for s in p.services:
        err = s.failed()
        if err is not None:
            raise RuntimeError(f"service {s.name} failed: {err!r}")


async def run_relay(tape: TickTape, batch: int = 1024, stages: int = 4) -> tuple[float, float]:
    """Every event through ``stages`` bounded queues, one task per stage:
    (wall seconds, CPU seconds)."""
    queues: list[asyncio.Queue[Trade | None]] = [
        asyncio.Queue(maxsize=65_536) for _ in range(stages)
    ]

    async def stage(
        qin: asyncio.Queue[Trade | None], qout: asyncio.Queue[Trade | None] | None
    ) -> None:
        while True:
            e = await qin.get()
            if qout is not None:
                await qout.put(e)
            if e is None:
                return

    tasks = [
        asyncio.ensure_future(stage(queues[i], queues[i + 1] if i + 1 < stages else None))
        for i in range(stages)
    ]
    t0 = time.perf_counter()
    c0 = time.process_time()
    q0 = queues[0]
    for tb in tape.template_batches(batch):
        for e in tape.stamp(tb):
            await q0.put(e)
    await q0.put(None)
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0, time.process_time() - c0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.3f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ticks", type=int, default=200_000, help="ticks in the saturated run")
    ap.add_argument("--rate", type=float, default=10_000, help="ticks/s of the paced run")
    ap.add_argument("--paced-seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3, help="best of N for each measurement")
    ap.add_argument("--profile", action="store_true", help="cProfile one saturated run")
    args = ap.parse_args()

    base = recorded_trades()
    print(f"machine: {machine()}")
    print(f"ticks: {args.ticks:,} (the {len(base):,} recorded BTCUSDT trades, shifted copies)")
    with tempfile.TemporaryDirectory() as d:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run_async(run_pipeline(TickTape(args.ticks, base), Path(d) / "prof.db"))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return 0
        best_pipe = best_relay = cpu_pipe = cpu_relay = float("inf")
        cpu_bare = cpu_sqlite = float("inf")
        lat: list[float] = []
        counts: dict[str, int] = {}
        for r in range(args.rounds):
            t_relay, c_relay = run_async(run_relay(TickTape(args.ticks, base)))
            t_pipe, lat_r, counts_r = run_async(
                run_pipeline(TickTape(args.ticks, base), Path(d) / f"sat{r}.db")
            )
            _, _, counts_bare = run_async(
                run_pipeline(TickTape(args.ticks, base), Path(d) / f"bare{r}.db", store=False)
            )
            cpu_bare = min(cpu_bare, counts_bare["cpu_ms"] / 1000)
            cpu_sqlite = min(
                cpu_sqlite, sqlite_insert_cpu(TickTape(args.ticks, base), Path(d) / f"ins{r}.db")
            )
            best_relay = min(best_relay, t_relay)
            cpu_relay = min(cpu_relay, c_relay)
            cpu_pipe = min(cpu_pipe, counts_r["cpu_ms"] / 1000)
            if t_pipe < best_pipe:
                best_pipe, lat, counts = t_pipe, lat_r, counts_r
        n_paced = int(args.rate * args.paced_seconds)
        _, lat_paced, counts_paced = run_async(
            run_pipeline(TickTape(n_paced, base), Path(d) / "paced.db", rate=args.rate, batch=64)
        )
    tps = args.ticks / best_pipe
    relay_tps = args.ticks / best_relay
    ratio = tps / relay_tps
    print(f"pipeline counts: {counts}")
    print(f"pipeline (5 services, SQLite): {tps:,.0f} ticks/s  (best of {args.rounds})")
    print(f"baseline (4-stage Queue relay): {relay_tps:,.0f} ticks/s")
    print(f"ratio pipeline/baseline: {ratio:.1%}  (target >= {TARGET_RATIO:.0%})")
    print(
        f"ratio by CPU time (ticks per CPU second, both sides; robust on a shared host): "
        f"{cpu_relay / cpu_pipe:.1%}  (pipeline {cpu_pipe:.2f} s, relay {cpu_relay:.2f} s CPU; "
        f"load {os.getloadavg()[0]:.1f})"
    )
    print(
        f"bounds by CPU time: pipeline without its store {cpu_relay / cpu_bare:.1%} of the relay "
        f"({cpu_bare:.2f} s); bare SQLite insert of the same rows {cpu_sqlite:.2f} s; "
        f"ceiling with every tick in SQLite, relay / (relay + insert): "
        f"{cpu_relay / (cpu_relay + cpu_sqlite):.1%}"
    )
    print(f"target {TARGET_TPS:,} ticks/s: {'met' if tps >= TARGET_TPS else 'NOT met'}")
    print(
        f"tick-to-order saturated: p50 {ms(percentile(lat, 50))} p99 {ms(percentile(lat, 99))}"
        f" ({len(lat)} orders)"
    )
    print(
        f"tick-to-order paced {args.rate:,.0f} ticks/s: p50 {ms(percentile(lat_paced, 50))} "
        f"p99 {ms(percentile(lat_paced, 99))} ({len(lat_paced)} orders, {counts_paced['ticks']:,}"
        " ticks)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
