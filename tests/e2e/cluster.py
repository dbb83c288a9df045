"""Service processes of one distributed run, shared by the e2e tests.

``Cluster`` starts ``tradewind service NAME`` processes on one Redis prefix and
one database (each on its own HTTP port), waits for them to be live and for the
replay to be consumed and acknowledged everywhere, and stops them. The tests of
parity, chaos and replicas (test_distributed.py) and of monitoring against a
real Prometheus (test_monitoring.py) run the same processes the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import AclRedis, free_port
from tradewind.bus.redis import RedisBus

TRADEWIND = [str(Path(sys.executable).with_name("tradewind"))]
GROUP = "signal,risk,execution"
"""The order path in one process (``tradewind service signal,risk,execution``)."""
LEASE_TTL_MS = 1500
# A busier strategy than the default: signals all through the recording, and
# risk rejections too, so every kill lands between decisions.
STRATEGY = {"fast": 2, "slow": 4, "bar_interval_s": 0.5}
# Small replay batches: the lockstep replay (speed 0) settles after each one,
# so there are hundreds of points between batches for the chaos test to kill at.
BATCH = "32"

# Compared column by column; positions with their mark (each fill's position
# is marked at the fill's price, so it depends on the data alone).
COLUMNS = {
    "orders": "id, client_order_id, signal_id, strategy, exchange, symbol, side, order_type, "
    "quantity, price, time_in_force, reduce_only, ts_event",
    "fills": "id, client_order_id, exchange_order_id, exchange, symbol, side, price, qty, fee, "
    "fee_currency, liquidity, strategy, ts_event",
    "positions": "id, exchange, symbol, qty, avg_price, realized_pnl, fees, mark_price, "
    "unrealized_pnl, ts_event",
}
MONEY = {
    "quantity",
    "price",
    "qty",
    "fee",
    "avg_price",
    "realized_pnl",
    "fees",
    "mark_price",
    "unrealized_pnl",
}
TRADES = {"trades": "id, exchange, symbol, trade_id, price, qty, side, ts_event"}
CONTROL_TOKEN = "e2e-control-" + "0123456789abcdef" * 4
ORDER_KEY = "e2e-orders-" + "fedcba9876543210" * 4


def norm(columns: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row in a form that compares equal across SQLite and PostgreSQL (Decimal, int)."""
    out: list[Any] = []
    for name, v in zip((c.strip() for c in columns.split(",")), row, strict=True):
        if name in MONEY and v is not None:
            v = Decimal(str(v)).normalize()
        elif isinstance(v, bool):
            v = int(v)
        out.append(v)
    return tuple(out)


def clean_env() -> dict[str, str]:
    """The environment without the caller's TRADEWIND_* settings, so a run sees only ours."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}


class Cluster:
    """Service processes sharing one Redis prefix and one database."""

    def __init__(
        self,
        tmp: Path,
        redis_url: str,
        prefix: str,
        pg_url: str,
        speed: float,
        acl: AclRedis | None = None,
    ) -> None:
        """With ``acl``, every service connects as its own ACL user (password
        from a file, as deployed) and ``redis_url`` is the admin's."""
        self.tmp = tmp
        self.acl = acl
        if acl is not None:
            redis_url = acl.admin_url
        self.redis_url = redis_url
        self.prefix = prefix
        self.pg_url = pg_url
        self.env = {
            **clean_env(),
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
            "TRADEWIND_CONTROL__TOKEN": CONTROL_TOKEN,
            "TRADEWIND_CONTROL__ORDER_KEY": ORDER_KEY,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, service: str, consumer: str = "c1") -> str:
        key = f"{service}-{consumer}"
        port = self.ports.get(key) or free_port()
        self.ports[key] = port
        log = (self.tmp / f"{key}.log").open("ab")
        env = {**self.env, "TRADEWIND_HTTP__PORT": str(port)}
        if self.acl is not None:
            env.update(self.acl.env("orderpath" if service == GROUP else service, self.tmp))
        self.procs[key] = subprocess.Popen(
            [*TRADEWIND, "service", service, "--consumer", consumer],
            env=env,
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

    def metric(self, key: str, name: str, **labels: str) -> float:
        """One sample of a process's /metrics (0 when absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[key]}/metrics", timeout=2) as r:
            text = r.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            if head == (f"{name}{{{want}}}" if want else name):
                return float(value)
        return 0.0

    def kill(self, key: str) -> None:
        proc = self.procs[key]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def signal(self, key: str, sig: signal.Signals) -> None:
        self.procs[key].send_signal(sig)

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

    async def replay_state(self, bus: RedisBus) -> dict[str, Any] | None:
        """ws's committed replay progress: ``{"events": n, "done": bool}`` (read
        with the bus's retries: the tests restart Redis under it)."""

        async def read() -> Any:
            keys = [k async for k in bus.redis.scan_iter(match=bus.state_key("ws:replay:*"))]
            return None if len(keys) != 1 else await bus.redis.get(keys[0])

        raw = await bus.retry(read, "observer")
        return None if raw is None else dict(json.loads(raw))

    async def replay_done(self, bus: RedisBus) -> bool:
        state = await self.replay_state(bus)
        return state is not None and bool(state["done"])

    async def wait_replayed(self, bus: RedisBus, events: int, timeout: float) -> None:
        """Until ws has published at least ``events`` events of the replay."""
        deadline = time.monotonic() + timeout
        while True:
            state = await self.replay_state(bus)
            if state is not None and int(state["events"]) >= events:
                return
            assert time.monotonic() < deadline, f"the replay did not reach {events} events"
            await asyncio.sleep(0.01)

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

    async def rows(self, columns: dict[str, str] = COLUMNS) -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(self.pg_url, timeout=10)
        try:
            return {
                t: sorted(norm(cols, tuple(r)) for r in await conn.fetch(f"SELECT {cols} FROM {t}"))
                for t, cols in columns.items()
            }
        finally:
            await conn.close()


async def observer_bus(c: Cluster) -> RedisBus:
    bus = RedisBus(c.redis_url, prefix=c.prefix, name="e2e-observer")
    await bus.start()
    return bus


def start_consumers(c: Cluster, signals: int = 1, writers: int = 1, grouped: bool = False) -> None:
    """db_writer, and the order path: three processes, or with ``grouped`` one."""
    keys = [c.start("db_writer", f"w{i}") for i in range(writers)]
    if grouped:
        keys.append(c.start(GROUP))
    else:
        keys += [c.start("execution"), c.start("risk")]
        keys += [c.start("signal", f"s{i}") for i in range(signals)]
    for k in keys:
        c.wait_live(k)
