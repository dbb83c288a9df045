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
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.conftest import RedisProcess
from tests.e2e.cluster import (
    BATCH,
    COLUMNS,
    GROUP,
    STRATEGY,
    TRADEWIND,
    Cluster,
)
from tests.e2e.cluster import clean_env as _clean_env
from tests.e2e.cluster import norm as _norm
from tests.e2e.cluster import observer_bus as _bus
from tests.e2e.cluster import start_consumers as _start_consumers
from tradewind.bus.redis import RedisBus
from tradewind.events import OrderRequest
from tradewind.exchanges.replay import bundled_recording
from tradewind.topics import EXECUTIONS, ORDERS, SIGNALS

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


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


async def _check_exactly_once(bus: RedisBus) -> None:
    """No order was published twice, nothing was executed twice, nothing died."""
    orders = [m.event for m in await bus.read_all(ORDERS, 100_000)]
    coids = Counter(o.client_order_id for o in orders if isinstance(o, OrderRequest))
    assert [c for c, n in coids.items() if n > 1] == []
    execs = Counter(m.event.id for m in await bus.read_all(EXECUTIONS, 100_000))
    assert [i for i, n in execs.items() if n > 1] == []
    assert await bus.dead_letters() == []


@pytest.mark.parametrize("grouped", [False, True], ids=["five-processes", "order-path-grouped"])
async def test_parity_five_processes_match_tradewind_run(
    cluster_factory: Any, reference: dict[str, list[tuple[Any, ...]]], grouped: bool
) -> None:
    c: Cluster = cluster_factory(0)
    _start_consumers(c, grouped=grouped)
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
        if grouped:
            key = f"{GROUP}-c1"
            handed = {
                (group, topic): c.metric(
                    key, "tradewind_bus_hand_offs_total", group=group, topic=topic
                )
                for group, topic in (("risk", SIGNALS), ("execution", ORDERS))
            }
            assert all(n > 0 for n in handed.values()), handed
    finally:
        await bus.close()


@pytest.mark.parametrize("grouped", [False, True], ids=["five-processes", "order-path-grouped"])
async def test_chaos_sigkill_each_service_in_turn(
    cluster_factory: Any, reference: dict[str, list[tuple[Any, ...]]], grouped: bool
) -> None:
    c: Cluster = cluster_factory(0)
    _start_consumers(c, grouped=grouped)
    ws = c.start("ws")
    c.wait_live(ws)
    bus = await _bus(c)
    try:
        # Kills at points of the replay's progress, not of the clock: however
        # fast the replay, each one lands while it runs (a killed consumer
        # holds the lockstep replay until it is back).
        total = sum(1 for line in bundled_recording().read_bytes().splitlines() if line.strip())
        if grouped:
            # Twice: one SIGKILL takes signal, risk and execution down together,
            # between any hand-off and the ack of what it delivered.
            kills: tuple[str, ...] = (f"{GROUP}-c1", f"{GROUP}-c1")
        else:
            kills = ("ws-c1", "signal-s0", "risk-c1", "execution-c1", "db_writer-w0")
        during_run = 0
        for i, key in enumerate(kills, 1):
            await c.wait_replayed(bus, total * i // (len(kills) + 2), timeout=60)
            during_run += not await c.replay_done(bus)
            c.kill(key)
            await asyncio.sleep(0.2)
            service, consumer = key.rsplit("-", 1)
            c.start(service, consumer)
        await c.wait_done(bus, timeout=90)
        assert during_run >= len(kills) - 1, "the replay ended before the kills: it proves nothing"
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


async def _restart_through_a_long_load(server: RedisProcess) -> float:
    """Stop Redis (it flushes its AOF), start it again on the same data, and
    return how long it answered LOADING."""
    server.stop()
    server.start(wait=False)
    probe = aioredis.Redis.from_url(server.url, socket_timeout=10, socket_connect_timeout=1)
    loading_since: float | None = None
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            try:
                await probe.ping()
                break
            except BusyLoadingError:
                loading_since = loading_since or time.monotonic()
            except (RedisConnectionError, OSError):
                pass
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("Redis did not come back")
    finally:
        await probe.aclose()
    return 0.0 if loading_since is None else time.monotonic() - loading_since


async def test_a_redis_restart_with_a_multi_second_aof_load_mid_replay(
    tmp_path: Path,
    redis_prefix: str,
    postgres_url: str,
    reference: dict[str, list[tuple[Any, ...]]],
) -> None:
    (tmp_path / "redis").mkdir()
    # 1M keys of 200 bytes stored uncompressed: a multi-second load that
    # answers LOADING all along (a loading Redis serves clients every 2 MB read).
    server = RedisProcess(
        tmp_path / "redis",
        "--appendonly",
        "yes",
        "--rdbcompression",
        "no",
        "--enable-debug-command",
        "local",
    )
    server.start()
    # In database 1: the load counts every database, the services' scans only theirs.
    admin = aioredis.Redis.from_url(server.url[: -len("/0")] + "/1", socket_timeout=60)
    try:
        await admin.execute_command("DEBUG", "POPULATE", 2_000_000, "filler", 200)
        await admin.bgrewriteaof()
        for _ in range(600):
            info = await admin.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.aclose()
    c = Cluster(tmp_path, server.url, redis_prefix, postgres_url, speed=0)
    # A holder gives its lease up after two thirds of the TTL without a renewal;
    # the outage here (shutdown, start, load) must not reach that, or risk exits
    # to rejoin as a standby, which is another test's subject.
    c.env["TRADEWIND_LEASE_TTL_MS"] = "30000"
    bus = await _bus(c)
    try:
        _start_consumers(c)
        ws = c.start("ws")
        c.wait_live(ws)
        total = sum(1 for line in bundled_recording().read_bytes().splitlines() if line.strip())
        await c.wait_replayed(bus, total // 3, timeout=60)
        loading_s = await _restart_through_a_long_load(server)
        assert loading_s >= 1.0, f"Redis answered LOADING for only {loading_s:.2f}s"
        assert not await c.replay_done(bus), "the replay ended before the restart"
        await c.wait_done(bus, timeout=120)
        _assert_same(await c.rows(), reference)
        await _check_exactly_once(bus)
        logs = "".join(c.tail(k) for k in c.procs)
        assert "loading the dataset in memory" in logs, "no service met a loading Redis"
    finally:
        await bus.close()
        codes = c.stop_all()
        server.stop(10)
    assert all(code == 0 for code in codes.values()), codes
    for key in c.procs:
        for line in (tmp_path / f"{key}.log").read_text().splitlines():
            assert isinstance(json.loads(line), dict), (key, line)


async def _wait_readyz(c: Cluster, key: str, want: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await asyncio.to_thread(c.readyz, key)
        if status == want:
            return body
        assert time.monotonic() < deadline, (key, status, body)
        await asyncio.sleep(0.2)


async def test_consumers_of_a_frozen_risk_report_their_input_stalled(
    cluster_factory: Any, reference: dict[str, list[tuple[Any, ...]]]
) -> None:
    c: Cluster = cluster_factory(0)
    c.env["TRADEWIND_BUS__STALL_AFTER_S"] = "3"
    c.env["TRADEWIND_LEASE_TTL_MS"] = "30000"  # the freeze must not cost risk its lease
    _start_consumers(c)
    ws = c.start("ws")
    c.wait_live(ws)
    bus = await _bus(c)
    try:
        total = sum(1 for line in bundled_recording().read_bytes().splitlines() if line.strip())
        await c.wait_replayed(bus, total // 4, timeout=60)
        c.procs["risk-c1"].send_signal(signal.SIGSTOP)
        try:
            body = await _wait_readyz(c, "execution-c1", 503)
            assert "upstream risk" in body["input"], body
            body = await _wait_readyz(c, "db_writer-w0", 503)
            assert "upstream risk" in body["input"], body
            _status, body = await asyncio.to_thread(c.readyz, "signal-s0")
            assert "upstream risk" not in body.get("input", ""), body
        finally:
            c.procs["risk-c1"].send_signal(signal.SIGCONT)
        await _wait_readyz(c, "execution-c1", 200)
        await c.wait_done(bus, timeout=90)
        _assert_same(await c.rows(), reference)
    finally:
        await bus.close()
