"""The five services as separate OS processes over Redis and PostgreSQL.

Each test replays the bundled recording through ``tradewind service NAME``
processes (own HTTP port, unique Redis prefix, fresh database) and holds the
orders, fills and positions in PostgreSQL to those of ``tradewind run`` on the
same data: undisturbed (parity), with every service SIGKILLed and restarted
in turn (chaos), and with two db_writer and two signal replicas.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import free_port
from tradewind.bus.redis import RedisBus
from tradewind.events import OrderRequest
from tradewind.topics import EXECUTIONS, ORDERS

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

TRADEWIND = [str(Path(sys.executable).with_name("tradewind"))]
LEASE_TTL_MS = 1500
# A busier strategy than the default: signals all through the recording, and
# risk rejections too, so every kill lands between decisions.
STRATEGY = {"fast": 2, "slow": 4, "bar_interval_s": 0.5}
# Small replay batches: the lockstep replay (speed 0) settles after each one,
# so the run lasts long enough to kill every service during it.
BATCH = "32"

# Compared column by column; positions leave out the mark (and the unrealized
# PnL from it): it is the last trade risk saw when the fill arrived, which
# depends on timing, not on the data.
COLUMNS = {
    "orders": "id, client_order_id, signal_id, strategy, exchange, symbol, side, order_type, "
    "quantity, price, time_in_force, reduce_only, ts_event",
    "fills": "id, client_order_id, exchange_order_id, exchange, symbol, side, price, qty, fee, "
    "fee_currency, liquidity, strategy, ts_event",
    "positions": "id, exchange, symbol, qty, avg_price, realized_pnl, fees, ts_event",
}
MONEY = {"quantity", "price", "qty", "fee", "avg_price", "realized_pnl", "fees"}


def _norm(columns: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for name, v in zip((c.strip() for c in columns.split(",")), row, strict=True):
        if name in MONEY and v is not None:
            v = Decimal(str(v)).normalize()
        elif isinstance(v, bool):
            v = int(v)
        out.append(v)
    return tuple(out)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """``tradewind run`` on the bundled recording: the state every mode must reach."""
    db = tmp_path_factory.mktemp("ref") / "ref.db"
    subprocess.run(
        [*TRADEWIND, "run", "-q", "--db", str(db), *(f"-p{k}={v}" for k, v in STRATEGY.items())],
        env={**_clean_env(), "TRADEWIND_BUS__BATCH_SIZE": BATCH},
        check=True,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )
    conn = sqlite3.connect(db)
    try:
        out = {
            t: sorted(_norm(cols, r) for r in conn.execute(f"SELECT {cols} FROM {t}").fetchall())
            for t, cols in COLUMNS.items()
        }
    finally:
        conn.close()
    assert len(out["orders"]) >= 5, "the reference run placed too few orders to compare"
    return out


class Cluster:
    """Service processes sharing one Redis prefix and one database."""

    def __init__(self, tmp: Path, redis_url: str, prefix: str, pg_url: str, speed: float) -> None:
        self.tmp = tmp
        self.redis_url = redis_url
        self.prefix = prefix
        self.pg_url = pg_url
        self.env = {
            **_clean_env(),
            "TRADEWIND_BUS__KIND": "redis",
            "TRADEWIND_BUS__REDIS_URL": redis_url,
            "TRADEWIND_BUS__PREFIX": prefix,
            "TRADEWIND_BUS__CLAIM_IDLE_MS": "1000",
            "TRADEWIND_STORE__URL": pg_url,
            "TRADEWIND_FEED__SOURCE": "replay",
            "TRADEWIND_FEED__SPEED": str(speed),
            "TRADEWIND_BUS__BATCH_SIZE": BATCH,
            "TRADEWIND_STRATEGY__PARAMS": json.dumps(STRATEGY),
            "TRADEWIND_DRAIN_TIMEOUT_S": "10",
            "TRADEWIND_LEASE_TTL_MS": str(LEASE_TTL_MS),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, service: str, consumer: str = "c1") -> str:
        key = f"{service}-{consumer}"
        port = self.ports.get(key) or free_port()
        self.ports[key] = port
        log = (self.tmp / f"{key}.log").open("ab")
        self.procs[key] = subprocess.Popen(
            [*TRADEWIND, "service", service, "--consumer", consumer],
            env={**self.env, "TRADEWIND_HTTP__PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return key

    def wait_live(self, key: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[key]
            assert proc.poll() is None, f"{key} exited with {proc.returncode}: {self.tail(key)}"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.ports[key]}/livez", timeout=1
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{key} not live after {timeout}s: {self.tail(key)}")

    def readyz(self, key: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports[key]}/readyz", timeout=2
            ) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def kill(self, key: str) -> None:
        proc = self.procs[key]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def tail(self, key: str) -> str:
        path = self.tmp / f"{key}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop_all(self) -> dict[str, int]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for key, p in self.procs.items():
            try:
                codes[key] = p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[key] = p.wait(5)
        return codes

    async def replay_done(self, bus: RedisBus) -> bool:
        keys = [k async for k in bus.redis.scan_iter(match=bus.state_key("ws:replay:*"))]
        if len(keys) != 1:
            return False
        raw = await bus.redis.get(keys[0])
        return raw is not None and bool(json.loads(raw)["done"])

    async def wait_done(self, bus: RedisBus, timeout: float) -> None:
        """Until the replay has ended and every group has consumed and acked all."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 4:
            assert time.monotonic() < deadline, "the distributed run did not finish in time"
            for key, p in self.procs.items():
                assert p.poll() is None, f"{key} exited: {self.tail(key)}"
            done = await self.replay_done(bus)
            quiet = quiet + 1 if done and await bus.idle() else 0
            await asyncio.sleep(0.25)

    async def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(self.pg_url, timeout=10)
        try:
            return {
                t: sorted(
                    _norm(cols, tuple(r)) for r in await conn.fetch(f"SELECT {cols} FROM {t}")
                )
                for t, cols in COLUMNS.items()
            }
        finally:
            await conn.close()


@pytest.fixture
def cluster_factory(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_url: str
) -> Iterator[Any]:
    clusters: list[Cluster] = []

    def make(speed: float) -> Cluster:
        c = Cluster(tmp_path, redis_url, redis_prefix, postgres_url, speed)
        clusters.append(c)
        return c

    yield make
    for c in clusters:
        codes = c.stop_all()
        assert all(code == 0 for code in codes.values()), codes


def _assert_same(got: dict[str, list[Any]], want: dict[str, list[Any]]) -> None:
    diff = {
        t: {
            "missing": sorted(set(want[t]) - set(got[t])),
            "extra": sorted(set(got[t]) - set(want[t])),
        }
        for t in want
        if got[t] != want[t]
    }
    assert not diff, json.dumps(diff, default=str, indent=1)[:6000]


async def _bus(c: Cluster) -> RedisBus:
    bus = RedisBus(c.redis_url, prefix=c.prefix, name="e2e-observer")
    await bus.start()
    return bus


async def _check_exactly_once(bus: RedisBus) -> None:
    """No order was published twice, nothing was executed twice, nothing died."""
    orders = [m.event for m in await bus.read_all(ORDERS, 100_000)]
    coids = Counter(o.client_order_id for o in orders if isinstance(o, OrderRequest))
    assert [c for c, n in coids.items() if n > 1] == []
    execs = Counter(m.event.id for m in await bus.read_all(EXECUTIONS, 100_000))
    assert [i for i, n in execs.items() if n > 1] == []
    assert await bus.dead_letters() == []


def _start_consumers(c: Cluster, signals: int = 1, writers: int = 1) -> None:
    keys = [c.start("db_writer", f"w{i}") for i in range(writers)]
    keys += [c.start("execution"), c.start("risk")]
    keys += [c.start("signal", f"s{i}") for i in range(signals)]
    for k in keys:
        c.wait_live(k)


async def test_parity_five_processes_match_tradewind_run(
    cluster_factory: Any, reference: dict[str, list[tuple[Any, ...]]]
) -> None:
    c: Cluster = cluster_factory(0)
    _start_consumers(c)
    ws = c.start("ws")
    c.wait_live(ws)
    bus = await _bus(c)
    try:
        await c.wait_done(bus, timeout=60)
        _assert_same(await c.rows(), reference)
        await _check_exactly_once(bus)
        for key in c.procs:
            status, body = c.readyz(key)
            assert status == 200, (key, body)
        assert c.readyz(ws)[1].get("replay") == "finished"
    finally:
        await bus.close()


async def test_chaos_sigkill_each_service_in_turn(
    cluster_factory: Any, reference: dict[str, list[tuple[Any, ...]]]
) -> None:
    c: Cluster = cluster_factory(0)
    _start_consumers(c)
    ws = c.start("ws")
    c.wait_live(ws)
    bus = await _bus(c)
    try:
        during_run = 0
        for key in ("ws-c1", "signal-s0", "risk-c1", "execution-c1", "db_writer-w0"):
            await asyncio.sleep(1.2)
            during_run += not await c.replay_done(bus)
            c.kill(key)
            await asyncio.sleep(0.2)
            service, consumer = key.split("-")
            c.start(service, consumer)
        await c.wait_done(bus, timeout=90)
        assert during_run >= 4, "the replay ended before the kills: the test proves nothing"
        _assert_same(await c.rows(), reference)
        await _check_exactly_once(bus)
    finally:
        await bus.close()


async def test_two_signal_and_two_db_writer_replicas_match_one(
    cluster_factory: Any, reference: dict[str, list[tuple[Any, ...]]]
) -> None:
    c: Cluster = cluster_factory(0)
    _start_consumers(c, signals=1, writers=2)
    ws = c.start("ws")
    c.wait_live(ws)
    bus = await _bus(c)
    try:
        await asyncio.sleep(2.0)
        c.wait_live(c.start("signal", "s1"))  # joins mid-run: partitions rebalance
        await c.wait_done(bus, timeout=90)
        _assert_same(await c.rows(), reference)
        await _check_exactly_once(bus)
        owners = [
            await bus.redis.get(bus.k("lease", "signal", str(p))) for p in range(bus.partitions)
        ]
        holders = {o.split(b":")[0] for o in owners if o is not None}
        assert holders == {b"s0", b"s1"}, owners
    finally:
        await bus.close()
