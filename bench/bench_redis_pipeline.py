"""The five services as processes over Redis Streams, every tick persisted to
PostgreSQL: sustained ticks/s and tick-to-order p50/p99 at 1k ticks/s, against
a bare 4-process XREADGROUP→XADD relay of the same encoded events (the
machine's ceiling for moving them through Redis), in the same run.

Tradewind runs as deployed: ``tradewind service NAME`` per process with
``TRADEWIND_BUS__KIND=redis`` and a PostgreSQL store; ws replays a tape of the
real recorded Binance trades (shifted copies). Sustained throughput is the
rate at which ``trades`` rows land in PostgreSQL between the first and the
last, in two runs: *free-running* (replay speed 1e6: ws publishes as fast as
it reads, as a busy live feed would, and the services keep up as they can)
and *lockstep* (speed 0: ws waits after each batch until every group has
acked it, the deterministic replay; bounded by one batch's round trip through
all five processes, not by throughput). Tick-to-order comes from execution's
``tradewind_tick_to_order_seconds`` histogram on ``/metrics`` (quantiles
interpolated within buckets) in a run paced at 1k ticks/s; the EMA crossover
then runs 2/5 on 20 ms bars (``--latency-bar-s``) with risk limits that let
its orders through (``latency_env``), so that p99 is taken over a hundred
orders or more. Its floor, measured just before in the same run, is a bare
3-hop relay paced at 1k msgs/s (XREADGROUP, then XADD + XACK in one
transaction, over the bus's own connection): the machine's tick-to-order
with no work at all. The same latency run then goes again with the order
path in one process (``tradewind service signal,risk,execution``, ws and
db_writer as before) against a bare 1-hop relay measured just before it: with
the hops between signal, risk and execution handed off inside their commits,
ws → group is the one network hop left. Needs ``tradewind service`` (issue
4); without it only the baselines run.

    python bench/bench_redis_pipeline.py [--ticks 100000] [--latency-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
import redis

from _ticks import TickTape, recorded_trades
from bench_pipeline import machine
from tradewind import events as ev
from tradewind.events import Trade

TARGET_RATIO = 2.0
"""Free-running throughput over the bare relay's (issue 17)."""
TARGET_P99_RATIO = 2.0
"""Tick-to-order p99 over the bare 3-hop relay's p99 (issue 17)."""
TARGET_GROUPED_P99_RATIO = 1.5
"""Tick-to-order p99 with the order path in one process over a bare 1-hop
relay's p99 (issue 17): ws → group is the one network hop left."""
STAGES = 4
END = b"END"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_PG = "postgresql://postgres:test@127.0.0.1:5432/postgres"
SERVICES = ("db_writer", "execution", "risk", "signal", "ws")
GROUP = "signal,risk,execution"
GROUPED = ("db_writer", GROUP, "ws")
"""The same services with the order path in one process."""
HOPS = (
    ("signal", "tick_to_signal"),
    ("risk", "signal_to_decision"),
    ("execution", "decision_to_ack"),
)


def tape_events(n: int) -> list[Trade]:
    tape = TickTape(n, recorded_trades())
    out: list[Trade] = []
    for tb in tape.template_batches(4096):
        out.extend(tape.stamp(tb))
    return out


# --- baseline: bare relay ----------------------------------------------------------


def _relay(url: str, src: str, dst: str, group: str) -> None:
    r = redis.Redis.from_url(url)
    while True:
        resp = r.xreadgroup(group, "c", {src: ">"}, count=1024, block=100)
        if not resp:
            continue
        entries = resp[0][1]
        pipe = r.pipeline(transaction=False)
        done = False
        for _id, fields in entries:
            data = fields[b"d"]
            pipe.xadd(dst, {b"d": data})
            done = done or data == END
        pipe.xack(src, group, *[i for i, _ in entries])
        pipe.execute()
        if done:
            return


def _relay_streams(url: str, name: str, stages: int) -> tuple[redis.Redis, list[str]]:
    """``stages + 1`` fresh streams, each but the last with a group ``g``."""
    prefix = f"twbench-{name}-{uuid.uuid4().hex[:8]}"
    streams = [f"{prefix}:s{i}" for i in range(stages + 1)]
    r = redis.Redis.from_url(url)
    for s in streams[:-1]:
        r.xgroup_create(s, "g", id="0", mkstream=True)
    return r, streams


def _start(procs: list[Any]) -> None:
    for p in procs:
        p.start()


def _join(procs: list[Any]) -> None:
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()


def relay_baseline(url: str, payloads: list[bytes]) -> float:
    r, streams = _relay_streams(url, "relay", STAGES)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_relay, args=(url, streams[i], streams[i + 1], "g"))
        for i in range(STAGES)
    ]
    _start(procs)
    time.sleep(1.0)  # let the relays reach their first XREADGROUP
    try:
        t0 = time.perf_counter()
        for i in range(0, len(payloads), 1024):
            pipe = r.pipeline(transaction=False)
            for d in payloads[i : i + 1024]:
                pipe.xadd(streams[0], {b"d": d})
            pipe.execute()
        r.xadd(streams[0], {b"d": END})
        last = "0"
        while True:
            resp = r.xread({streams[-1]: last}, count=4096, block=1000)
            if not resp:
                continue
            entries = resp[0][1]
            last = entries[-1][0]
            if entries[-1][1][b"d"] == END:
                break
        elapsed = time.perf_counter() - t0
    finally:
        _join(procs)
        r.delete(*streams)
    return elapsed


# --- baseline: bare relay latency at 1k msgs/s ---------------------------------------


def _latency_hop(url: str, src: str, dst: str, last: bool, out: Any, ready: Any) -> None:
    """One hop as a Tradewind service does it, with nothing else: a blocked
    XREADGROUP, then XADD + XACK in one transaction, over the same lean
    connection the bus uses. The last hop reports each message's latency from
    its producer stamp to the end of its commit (as tick-to-order ends)."""
    from tradewind.bus.resp import RespConnection
    from tradewind.runtime.loop import run_async

    async def hop() -> None:
        read = RespConnection(url, timeout_s=10.0)
        write = RespConnection(url, timeout_s=10.0)
        await read.call("PING")
        await write.call("PING")
        ready.put(src)
        lat: list[float] = []
        while True:
            reply = await read.call(
                "XREADGROUP", "GROUP", "g", "c", "COUNT", 1024, "BLOCK", 100, "STREAMS", src, ">",
                timeout_s=0.1,
            )  # fmt: skip
            if not reply:
                continue
            entries = reply[0][1]
            cmds: list[tuple[Any, ...]] = [("MULTI",)]
            cmds += [("XADD", dst, "*", "d", fields[1]) for _id, fields in entries]
            cmds += [("XACK", src, "g", *[i for i, _ in entries]), ("EXEC",)]
            await write.pipeline(cmds)
            now = time.time_ns()
            end = any(f[1] == END for _, f in entries)
            if last:
                lat += [(now - int(f[1][:20])) / 1e9 for _, f in entries if f[1] != END]
            if end:
                if last:
                    out.put(lat)
                return

    run_async(hop())


def relay_latency(url: str, seconds: float, hops: int = 3) -> tuple[float, float, int]:
    """p50, p99 and count of a bare ``hops``-hop relay paced at 1k msgs/s: the
    machine's floor for tick-to-order (ws → signal → risk → execution)."""
    from tradewind.bus.resp import RespConnection
    from tradewind.runtime.loop import run_async

    r, streams = _relay_streams(url, "lat", hops)
    ctx = multiprocessing.get_context("spawn")
    q, ready = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_latency_hop, args=(url, streams[i], streams[i + 1], i == hops - 1, q, ready)
        )
        for i in range(hops)
    ]
    _start(procs)
    for _ in procs:
        ready.get(timeout=60)
    time.sleep(0.2)

    async def produce() -> None:
        conn = RespConnection(url, timeout_s=10.0)
        t0 = time.perf_counter()
        for i in range(int(seconds * 1000)):
            delay = t0 + i / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await conn.call("XADD", streams[0], "*", "d", b"%020d" % time.time_ns() + PAD)
        await conn.call("XADD", streams[0], "*", "d", END)
        await conn.close()

    try:
        run_async(produce())
        lat = sorted(q.get(timeout=60))
    finally:
        _join(procs)
        r.delete(*streams)
    n = len(lat)
    return lat[n // 2], lat[min(n - 1, int(n * 0.99))], n


PAD = b"x" * 100
"""About the size of an encoded trade."""


# --- Tradewind: five service processes ---------------------------------------------


def service_available() -> bool:
    exe = shutil.which("tradewind") or str(Path(sys.executable).with_name("tradewind"))
    try:
        res = subprocess.run([exe, "service", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def write_tape(path: Path, evs: list[Trade], spacing_ns: int | None = None) -> None:
    """Binance combined-stream trade frames; ``spacing_ns`` re-times them evenly
    (at speed 1 that is a fixed tick rate)."""
    t0 = evs[0].ts_event
    with path.open("wb") as fh:
        for i, e in enumerate(evs):
            ts_ms = (t0 + i * spacing_ns if spacing_ns else e.ts_event) // 1_000_000
            fh.write(msgspec.json.encode(trade_frame(e, ts_ms)) + b"\n")


def trade_frame(e: Trade, ts_ms: int) -> dict[str, object]:
    """A Binance combined-stream trade frame of ``e``, stamped ``ts_ms``."""
    return {
        "stream": f"{e.symbol.lower()}@trade",
        "data": {
            "e": "trade",
            "E": ts_ms,
            "s": e.symbol,
            "t": int(e.trade_id),
            "p": repr(e.price),
            "q": repr(e.qty),
            "T": ts_ms,
            "m": e.side is not None and e.side.value == "sell",
            "M": True,
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_count(url: str) -> int:
    import asyncpg

    async def q() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM trades"))
        finally:
            await conn.close()

    return asyncio.run(q())


def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    async def q() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(q())


def histogram_quantiles(
    text: str, name: str, qs: tuple[float, ...], label: str = ""
) -> list[float | None]:
    """Quantiles of a Prometheus histogram (only series with ``label``), linear
    within the bucket."""
    buckets: list[tuple[float, float]] = []
    for m in re.finditer(rf'^{name}_bucket\{{[^}}]*le="([^"]+)"[^}}]*\}} (\S+)$', text, re.M):
        if label and label not in m.group(0):
            continue
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets.append((le, float(m.group(2))))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    out: list[float | None] = []
    for q in qs:
        if total <= 0:
            out.append(None)
            continue
        rank = q * total
        prev_le, prev_c = 0.0, 0.0
        val: float | None = None
        for le, c in buckets:
            if c >= rank:
                if le == float("inf"):
                    val = prev_le
                else:
                    val = prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-12))
                break
            prev_le, prev_c = le, c
        out.append(val)
    return out


def histogram_count(text: str, name: str) -> int:
    m = re.search(rf"^{name}_count(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else 0


RETENTION_OFF = {
    f"TRADEWIND_STORE__RETENTION__{t.upper()}_DAYS": "0"
    for t in ("trades", "quotes", "book_deltas", "bars")
}


class Services:
    """The five ``tradewind service`` processes on one prefix and database."""

    def __init__(
        self,
        redis_url: str,
        pg_url: str,
        tape: Path,
        speed: float,
        extra_env: dict[str, str] | None = None,
        grouped: bool = False,
        trace: Path | None = None,
    ) -> None:
        self.names = GROUPED if grouped else SERVICES
        self.trace = trace
        self.prefix = f"twbench-{uuid.uuid4().hex[:8]}"
        self.ports = {n: _free_port() for n in self.names}
        if grouped:
            for member in GROUP.split(","):
                self.ports[member] = self.ports[GROUP]
        self.env = {
            **os.environ,
            "TRADEWIND_BUS__KIND": "redis",
            "TRADEWIND_BUS__REDIS_URL": redis_url,
            "TRADEWIND_BUS__PREFIX": self.prefix,
            "TRADEWIND_STORE__URL": pg_url,
            "TRADEWIND_FEED__SOURCE": "replay",
            "TRADEWIND_FEED__DATA": json.dumps([str(tape)]),
            "TRADEWIND_FEED__SPEED": str(speed),
            "TRADEWIND_LOG_LEVEL": "warning",
            # risk signs every order and execution checks it (issue 15)
            "TRADEWIND_CONTROL__ORDER_KEY": secrets.token_hex(32),
            # the tape is a 2024 recording: retention would drop its partitions
            **RETENTION_OFF,
            **(extra_env or {}),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_url = redis_url

    def start(self) -> None:
        exe = shutil.which("tradewind") or str(Path(sys.executable).with_name("tradewind"))
        for name in self.names:
            env = {
                **self.env,
                "TRADEWIND_SERVICE_NAME": name,
                "TRADEWIND_HTTP__PORT": str(self.ports[name]),
            }
            cmd = [exe, "service", name]
            if self.trace is not None and name == GROUP:
                env["TRADEWIND_TRACE_OUT"] = str(self.trace)
                tracer = Path(__file__).with_name("trace_order_path.py")
                cmd = [sys.executable, str(tracer), *cmd[1:]]
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
            if name != "ws":
                self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.ports[name]}/readyz"
        proc = self.procs[-1]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"service {name} exited with {proc.returncode} at start")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service {name} not ready after {timeout}s")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each process has used so far (its process collector)."""
        out: dict[str, float] = {}
        for name in self.names:
            m = re.search(r"^process_cpu_seconds_total (\S+)$", self.metrics(name), re.M)
            if m:
                out[name] = float(m.group(1))
        return out

    def metrics(self, name: str) -> str:
        url = f"http://127.0.0.1:{self.ports[name]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        r = redis.Redis.from_url(self.redis_url)
        keys = list(r.scan_iter(f"{self.prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i : i + 500])


def run_services(
    redis_url: str,
    pg_url: str,
    tape: Path,
    n: int,
    speed: float,
    timeout: float,
    extra_env: dict[str, str] | None = None,
    hops: dict[str, list[float | None]] | None = None,
    grouped: bool = False,
    trace: Path | None = None,
) -> tuple[float, list[float | None]]:
    """(sustained ticks/s, [p50, p99] tick-to-order seconds); per-hop and
    per-service batch-processing p50/p99 into ``hops`` when given."""
    name = f"twbench_{uuid.uuid4().hex[:10]}"
    head = pg_url.rpartition("/")[0]
    db = f"{head}/{name}"
    _pg_admin(pg_url, f'CREATE DATABASE "{name}"')
    from tradewind.storage import migrate

    migrate.upgrade(db)
    svc = Services(redis_url, db, tape, speed, extra_env, grouped, trace)
    try:
        svc.start()
        first: tuple[float, int] | None = None
        cpu0: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline:
            count = _pg_count(db)
            now = time.perf_counter()
            if count and first is None:
                first = (now, count)
                if hops is not None:
                    cpu0 = svc.cpu_seconds()
            if count >= n:
                break
            time.sleep(0.05)
        if first is None or count < n:
            raise RuntimeError(f"only {count} of {n} ticks persisted within {timeout}s")
        tps = (count - first[1]) / max(time.perf_counter() - first[0], 1e-9)
        text = svc.metrics("execution")
        quantiles = histogram_quantiles(text, "tradewind_tick_to_order_seconds", (0.5, 0.99))
        orders = histogram_count(text, "tradewind_tick_to_order_seconds")
        if hops is not None:
            hops["orders"] = [float(orders), None]
            spent = time.perf_counter() - first[0]
            for proc, cpu in svc.cpu_seconds().items():
                hops[f"cpu:{proc}"] = [(cpu - cpu0.get(proc, 0.0)) / spent, None]
            hops["tick_to_published (ws)"] = histogram_quantiles(
                svc.metrics("ws"), "tradewind_feed_publish_latency_seconds", (0.5, 0.99)
            )
            hist = "tradewind_hop_latency_seconds"
            for service, hop in HOPS:
                hops[hop] = histogram_quantiles(
                    svc.metrics(service), hist, (0.5, 0.99), f'hop="{hop}"'
                )
            for service in SERVICES:
                hops[f"processing:{service}"] = histogram_quantiles(
                    svc.metrics(service),
                    "tradewind_processing_seconds",
                    (0.5, 0.99),
                    f'service="{service}"',
                )
    finally:
        svc.stop()
        _pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return tps, quantiles


def ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.3f} ms"


def print_hops(hops: dict[str, list[float | None]]) -> None:
    print(f"  orders measured: {int(hops.pop('orders')[0] or 0)}")
    for hop, (h50, h99) in hops.items():
        if hop.startswith("cpu:"):
            print(f"  {hop}: {(h50 or 0) * 100:.0f} % of a core")
        else:
            print(f"  {hop}: p50 {ms(h50)} p99 {ms(h99)}")


def latency_env(bar_s: float) -> dict[str, str]:
    """Settings of the latency run: an EMA(2/5) crossover on short bars, and
    risk limits that let its orders through (no cooldowns, no rate or loss
    limit in the way), so that a run of seconds yields hundreds of orders and
    p99 is a quantile, not the largest of a handful; db_writer as deployed."""
    return {
        "TRADEWIND_STRATEGY__PARAMS": json.dumps(
            {"bar_interval_s": bar_s, "fast": 2, "slow": 5, "quantity": "0.001"}
        ),
        "TRADEWIND_RISK__MAX_ORDERS_PER_SECOND": "1000",
        "TRADEWIND_RISK__MAX_ORDERS_PER_MINUTE": "60000",
        "TRADEWIND_RISK__COOLDOWN_S": "0",
        "TRADEWIND_RISK__LOSS_STREAK": "1000000",
        "TRADEWIND_RISK__STOPOUT_LOSS": "1000000",
        "TRADEWIND_RISK__MAX_DAILY_LOSS": "1000000",
        "TRADEWIND_RISK__MAX_DRAWDOWN": "1000000",
        "TRADEWIND_STORE__LINGER_MS": "20",  # as Compose and Kubernetes deploy db_writer
    }


def latency_run(
    args: argparse.Namespace,
    d: Path,
    hops: dict[str, list[float | None]] | None = None,
    grouped: bool = False,
    trace: Path | None = None,
) -> tuple[float | None, float | None]:
    """Tick-to-order p50/p99 of the five services (or with ``grouped`` the
    order path in one process) at 1k ticks/s."""
    n_lat = int(1000 * args.latency_seconds)
    paced = d / "paced.jsonl"
    write_tape(paced, tape_events(n_lat), spacing_ns=1_000_000)
    _, q = run_services(
        args.redis,
        args.postgres,
        paced,
        n_lat,
        1.0,
        args.latency_seconds + args.timeout,
        latency_env(args.latency_bar_s),
        hops,
        grouped,
        trace,
    )
    return q[0], q[1]


def print_relay_latency(args: argparse.Namespace, hops: int = 3) -> float:
    r50, r99, n = relay_latency(args.redis, args.latency_seconds, hops)
    print(
        f"baseline (bare {hops}-hop XREADGROUP->XADD+XACK relay at 1k msgs/s, {n:,} msgs, "
        f"exact): p50 {ms(r50)} p99 {ms(r99)}"
    )
    return r99


def grouped_latency(args: argparse.Namespace, d: Path) -> None:
    """Tick-to-order with ``tradewind service signal,risk,execution`` against a
    bare 1-hop relay measured just before: one network hop is what is left."""
    r99 = print_relay_latency(args, hops=1)
    hops: dict[str, list[float | None]] = {}
    trace: Path | None = args.trace
    p50, p99 = latency_run(args, d, hops, grouped=True, trace=trace)
    ratio = p99 / r99 if p99 else float("nan")
    ok = p99 is not None and p99 <= TARGET_GROUPED_P99_RATIO * r99
    print(
        f"tick-to-order, order path grouped, at 1k ticks/s ({args.latency_bar_s:g} s bars): "
        f"p50 {ms(p50)} p99 {ms(p99)} (histogram buckets); grouped p99 / bare 1-hop p99: "
        f"{ratio:.1f}x (target <= {TARGET_GROUPED_P99_RATIO:.1f}x: "
        f"{'met' if ok else 'NOT met'}; load {os.getloadavg()[0]:.1f})"
    )
    print_hops(hops)
    if trace is not None:
        from trace_order_path import analyse

        print("  where a crossover's time goes in the group (bench/trace_order_path.py):")
        print("\n".join(analyse(str(trace))))


def latency_only(args: argparse.Namespace) -> int:
    if not service_available():
        print("tradewind services: SKIPPED")
        return 0
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.rounds):
            r99 = print_relay_latency(args)
            hops: dict[str, list[float | None]] = {}
            p50, p99 = latency_run(args, Path(d), hops)
            print(
                f"run {i + 1}: tick-to-order at 1k ticks/s ({args.latency_bar_s:g} s bars): "
                f"p50 {ms(p50)} p99 {ms(p99)} (histogram buckets), "
                f"p99 / relay p99: {p99 / r99 if p99 else float('nan'):.1f}x"
            )
            print_hops(hops)
            grouped_latency(args, Path(d))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ticks", type=int, default=100_000)
    ap.add_argument("--latency-seconds", type=float, default=20.0, help="length of the 1k/s run")
    ap.add_argument("--latency-bar-s", type=float, default=0.02, help="bar interval of that run")
    ap.add_argument("--rounds", type=int, default=2, help="best of N for the throughput runs")
    ap.add_argument("--redis", default=DEFAULT_REDIS)
    ap.add_argument("--postgres", default=DEFAULT_PG)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="run the grouped order path under bench/trace_order_path.py: per-hop stamps "
        "into FILE (JSON), printed as p50/p99 per hop",
    )
    ap.add_argument(
        "--latency-only", action="store_true", help="only the 1k ticks/s tick-to-order run"
    )
    args = ap.parse_args()
    print(f"machine: {machine()}")
    if args.latency_only:
        return latency_only(args)
    evs = tape_events(args.ticks)
    payloads = [ev.encode(e) for e in evs]
    t_relay = relay_baseline(args.redis, payloads)
    relay_tps = args.ticks / t_relay
    print(f"ticks: {args.ticks:,} recorded BTCUSDT trades (shifted copies), msgpack-encoded")
    print(f"baseline ({STAGES}-process XREADGROUP->XADD relay): {relay_tps:,.0f} ticks/s")
    if not service_available():
        print("tradewind services: SKIPPED - `tradewind service NAME` is not there yet (issue 4)")
        return 0
    with tempfile.TemporaryDirectory() as d:
        fast = Path(d) / "tape.jsonl"
        write_tape(fast, evs)
        free = lock = 0.0
        for _ in range(args.rounds):
            t, _ = run_services(args.redis, args.postgres, fast, args.ticks, 1e6, args.timeout)
            free = max(free, t)
            t, _ = run_services(args.redis, args.postgres, fast, args.ticks, 0.0, args.timeout)
            lock = max(lock, t)
        r99 = print_relay_latency(args)
        p50, p99 = latency_run(args, Path(d))
        grouped_latency(args, Path(d))
    print(
        f"tradewind (5 processes, every tick in PostgreSQL), best of {args.rounds}: "
        f"{free:,.0f} ticks/s sustained free-running, {lock:,.0f} ticks/s lockstep replay"
    )
    ok = free / relay_tps >= TARGET_RATIO
    print(
        f"ratio tradewind/relay (free-running): {free / relay_tps:.1%}  "
        f"(target >= {TARGET_RATIO:.0%}: {'met' if ok else 'NOT met'}; load "
        f"{os.getloadavg()[0]:.1f})"
    )
    print(
        f"tick-to-order at 1k ticks/s ({args.latency_bar_s:g} s bars): p50 {ms(p50)} "
        f"p99 {ms(p99)} (histogram buckets); p99 / relay p99: "
        f"{p99 / r99 if p99 else float('nan'):.1f}x"
    )
    ok = p99 is not None and p99 <= TARGET_P99_RATIO * r99
    print(f"target p99 <= {TARGET_P99_RATIO:.1f}x the relay's: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
