"""Where a crossover tick's time goes in the grouped order path (issue 17).

Runs ``tradewind service signal,risk,execution`` with wall-clock stamps
patched around its hops, and writes them to ``TRADEWIND_TRACE_OUT`` (JSON) at
exit; ``analyse`` turns that file into per-hop p50/p99. The stamps are taken
by wrapping methods of this process only, so the shipped code carries no
tracing. Used by ``bench_redis_pipeline.py --latency-only --trace``:

    python bench/trace_order_path.py service signal,risk,execution
    python bench/trace_order_path.py analyse trace.json

Per order, keyed by its tick's ``ts_recv`` (ws's receive time):
``market_xadd`` the market entry id's time (whole ms), ``sig_fetch`` signal's
handler starts on the batch, ``sig_commit`` it calls commit, ``sig_locked``
the downstream's hand-off lock is held, ``sig_applied`` the commit script's
reply is in, ``handed`` risk's ready queue has the signal, ``risk_fetch``
risk's handler starts on it, ``risk_commit``/``risk_locked``/``risk_applied``
/``exec_handed`` the same for risk's order, ``exec_fetch`` execution's
handler, ``exec_locked`` it holds the venue's lock and submitted the order to
the paper venue, ``exec_committed`` its commit returned, ``submitted`` the
order counted as sent (tick-to-order's end).
Besides: the event loop's lag (a 5 ms sleeper's overshoot), the collector's
pauses, and every consumer loop's batches (size, time in the handler).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import sys
import time
from collections import defaultdict
from typing import Any

Stamps = dict[int, dict[str, int]]


def install(out_path: str) -> None:
    """Patch the order path's hops to stamp each crossover's way through."""
    from tradewind.bus.redis import RedisSubscription
    from tradewind.events import OrderRequest, OrderStatus, OrderUpdate, Signal
    from tradewind.runtime.order_path import OrderPath
    from tradewind.services import base
    from tradewind.services.execution import ExecutionService
    from tradewind.services.signal import SignalService

    now = time.time_ns
    orders: Stamps = defaultdict(dict)
    lag: list[int] = []
    gcs: list[tuple[int, int, int]] = []
    batches: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    gc_start = [0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter_ns()
        else:
            gcs.append((info["generation"], time.perf_counter_ns() - gc_start[0], now()))

    gc.callbacks.append(on_gc)

    def stamp(key: int, what: str, t: int) -> None:
        orders[key].setdefault(what, t)

    def keys_of(events: Any) -> list[int]:
        return [e.ts_recv for e in events if type(e) in (Signal, OrderRequest) and e.ts_recv]

    commit0 = RedisSubscription.commit
    apply0 = RedisSubscription._apply
    handed0 = RedisSubscription._handed

    async def commit(self: Any, acks: Any, publish: Any = None, *a: Any, **kw: Any) -> None:
        keys = keys_of(e for evs in (publish or {}).values() for e in evs)
        t = now()
        for k in keys:
            stamp(k, "commit:" + self.group, t)
        self._trace_keys = keys
        try:
            await commit0(self, acks, publish, *a, **kw)
        finally:
            self._trace_keys = []

    async def apply(self: Any, *a: Any, **kw: Any) -> Any:
        t = now()
        keys = getattr(self, "_trace_keys", [])
        for k in keys:
            stamp(k, "locked:" + self.group, t)
        reads = await apply0(self, *a, **kw)
        t = now()
        for k in keys:
            stamp(k, "applied:" + self.group, t)
        return reads

    async def handed(self: Any, reply: Any, count: int) -> None:
        n = len(self._ready)
        await handed0(self, reply, count)
        t = now()
        for k in keys_of(m.event for m in self._ready[n:]):
            stamp(k, "handed:" + self.group, t)

    RedisSubscription.commit = commit  # type: ignore[method-assign]
    RedisSubscription._apply = apply  # type: ignore[method-assign]
    RedisSubscription._handed = handed  # type: ignore[method-assign]

    sig_market0 = SignalService._on_market

    async def sig_market(self: Any, sub: Any, msgs: Any) -> None:
        t = now()
        ids = {m.event.ts_recv: int(m.id.split("-")[0]) for m in msgs}
        await sig_market0(self, sub, msgs)
        for k, ms in ids.items():
            d = orders.get(k)
            if d is not None and "sig_fetch" not in d:
                d["sig_fetch"] = t
                d["market_xadd"] = ms * 1_000_000

    SignalService._on_market = sig_market  # type: ignore[method-assign]

    loop0 = base.Service._loop

    async def loop(self: Any, sub: Any, handler: Any, batch: int, linger_s: float = 0.0) -> None:
        name = f"{self.name}:{'+'.join(sub.topics)}"
        rows = batches[name]

        async def timed(s: Any, msgs: Any) -> None:
            t = now()
            for k in keys_of(m.event for m in msgs):
                stamp(k, "fetch:" + s.group, t)
            await handler(s, msgs)
            if len(rows) < 200_000:
                rows.append((t, now() - t, len(msgs), 0))

        await loop0(self, sub, timed, batch, linger_s)

    base.Service._loop = loop  # type: ignore[method-assign]

    exec_commit0 = ExecutionService._commit

    async def exec_commit(self: Any, sub: Any, msgs: Any, out: Any) -> None:
        keys = keys_of(m.event for m in msgs)
        t = now()
        for k in keys:
            stamp(k, "exec_locked", t)
        await exec_commit0(self, sub, msgs, out)
        t = now()
        for k in keys:
            stamp(k, "exec_committed", t)

    ExecutionService._commit = exec_commit  # type: ignore[method-assign]

    account0 = ExecutionService._account

    def account(self: Any, out: Any) -> None:
        t = now()
        for e in out:
            if type(e) is OrderUpdate and e.status is OrderStatus.SUBMITTED:
                stamp(e.ts_recv, "submitted", t)
        account0(self, out)

    ExecutionService._account = account  # type: ignore[method-assign]

    start0 = OrderPath.start

    async def sleeper() -> None:
        for _ in range(10_000_000):
            t = time.perf_counter_ns()
            await asyncio.sleep(0.005)
            if len(lag) < 500_000:
                lag.append(time.perf_counter_ns() - t - 5_000_000)

    async def start(self: Any) -> None:
        await start0(self)
        self.spawn(sleeper(), "trace-lag")

    OrderPath.start = start  # type: ignore[method-assign]

    def dump() -> None:
        data = {
            "orders": {str(k): v for k, v in orders.items() if "submitted" in v},
            "lag_ns": lag,
            "gc": gcs,
            "batches": batches,
        }
        with open(out_path, "w") as f:
            json.dump(data, f)

    atexit.register(dump)


def _q(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


SEGMENTS = (
    ("tick → signal handler (ws, its XADD, signal's read)", "ts_recv", "sig_fetch"),
    ("signal handler → its commit", "sig_fetch", "commit:signal"),
    ("signal commit: hand-off lock wait", "commit:signal", "locked:signal"),
    ("signal commit script round trip", "locked:signal", "applied:signal"),
    ("applied → in risk's queue", "applied:signal", "handed:risk"),
    ("in risk's queue → risk handler", "handed:risk", "fetch:risk"),
    ("risk handler → its commit", "fetch:risk", "commit:risk"),
    ("risk commit: hand-off lock wait", "commit:risk", "locked:risk"),
    ("risk commit script round trip", "locked:risk", "applied:risk"),
    ("applied → in execution's queue", "applied:risk", "handed:execution"),
    ("in execution's queue → execution handler", "handed:execution", "fetch:execution"),
    ("execution handler → venue lock held, order submitted", "fetch:execution", "exec_locked"),
    ("execution commit round trip", "exec_locked", "exec_committed"),
    ("execution committed → counted as sent", "exec_committed", "submitted"),
    ("tick → submitted (tick-to-order)", "ts_recv", "submitted"),
)


def analyse(path: str) -> list[str]:
    """Per-hop p50/p99 (ms) of the traced orders, then loop lag, GC and batches."""
    with open(path) as f:
        data = json.load(f)
    out: list[str] = []
    rows = []
    for k, d in data["orders"].items():
        d = dict(d)
        d["ts_recv"] = int(k)
        rows.append(d)
    out.append(f"  traced orders: {len(rows)}")
    for label, a, b in SEGMENTS:
        xs = [(r[b] - r[a]) / 1e6 for r in rows if a in r and b in r]
        mean = sum(xs) / len(xs) if xs else float("nan")
        out.append(
            f"  {label}: mean {mean:.2f} p50 {_q(xs, 0.5):.2f} p99 {_q(xs, 0.99):.2f} ms"
            f" (n={len(xs)})"
        )
    lag = [x / 1e6 for x in data["lag_ns"][400:]]  # from 2 s after the start
    out.append(
        f"  event loop lag (5 ms sleeper): p50 {_q(lag, 0.5):.2f} ms p99 {_q(lag, 0.99):.2f} ms "
        f"max {max(lag, default=0):.1f} ms (n={len(lag)})"
    )
    first = min((r["ts_recv"] for r in rows), default=0)
    last = max((r["submitted"] for r in rows), default=0)
    by_gen: dict[int, list[float]] = defaultdict(list)
    for gen, ns, at in data["gc"]:
        if first <= at <= last:
            by_gen[gen].append(ns / 1e6)
    out.append("  collector pauses between the first traced tick and the last order:")
    for gen, xs in sorted(by_gen.items()):
        out.append(f"  gc gen{gen}: {len(xs)} pauses, max {max(xs):.2f} ms, total {sum(xs):.0f} ms")
    for name, bs in sorted(data["batches"].items()):
        if not bs:
            continue
        span = (bs[-1][0] - bs[0][0]) / 1e9 or 1.0
        busy = sum(b[1] for b in bs) / 1e9
        dur = [b[1] / 1e6 for b in bs]
        size = [b[2] for b in bs]
        out.append(
            f"  loop {name}: {len(bs) / span:.0f} batches/s, size p50 {_q(size, 0.5):.0f}, "
            f"handler p50 {_q(dur, 0.5):.2f} ms p99 {_q(dur, 0.99):.2f} ms, "
            f"busy {100 * busy / span:.0f} % of the loop"
        )
    return out


def main() -> None:
    if sys.argv[1:2] == ["analyse"]:
        print("\n".join(analyse(sys.argv[2])))
        return
    out = os.environ.get("TRADEWIND_TRACE_OUT")
    if not out:
        print("trace_order_path: set TRADEWIND_TRACE_OUT to a JSON file path", file=sys.stderr)
        sys.exit(2)
    install(out)
    from tradewind.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
