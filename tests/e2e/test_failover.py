"""Failover of the single-active services, as processes over Redis:

- a captured ``resume`` replayed after risk restarted, or after the standby
  took over, is refused (the used ids are committed with risk's state);
- risk frozen (SIGSTOP) past its lease TTL with no standby loses the lease,
  says it expired, rejoins as a standby and takes it again by itself: the run
  ends equal to ``tradewind run``;
- the active ws killed during the replay: the hot standby takes over within
  the lease TTL from the committed replay position, and the stored trades,
  orders and fills equal an undisturbed run, with no trade published twice.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import (
    BATCH,
    COLUMNS,
    CONTROL_TOKEN,
    LEASE_TTL_MS,
    STRATEGY,
    TRADES,
    TRADEWIND,
    Cluster,
    clean_env,
    norm,
    observer_bus,
    start_consumers,
)
from tests.e2e.test_distributed import _assert_same
from tradewind.bus.redis import RedisBus
from tradewind.control import make_control
from tradewind.events import Control, ControlReply
from tradewind.exchanges.replay import bundled_recording
from tradewind.topics import CONTROL, CONTROL_REPLIES, MARKET

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]
TOTAL = sum(1 for line in bundled_recording().read_bytes().splitlines() if line.strip())


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """``tradewind run``: orders, fills, positions and the stored trades."""
    db = tmp_path_factory.mktemp("ref") / "ref.db"
    subprocess.run(
        [*TRADEWIND, "run", "-q", "--db", str(db), *(f"-p{k}={v}" for k, v in STRATEGY.items())],
        env={**clean_env(), "TRADEWIND_BUS__BATCH_SIZE": BATCH},
        check=True,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )
    conn = sqlite3.connect(db)
    try:
        return {
            t: sorted(norm(cols, r) for r in conn.execute(f"SELECT {cols} FROM {t}").fetchall())
            for t, cols in {**COLUMNS, **TRADES}.items()
        }
    finally:
        conn.close()


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, redis_prefix: str, postgres_url: str) -> Any:
    c = Cluster(tmp_path, redis_url, redis_prefix, postgres_url, 0)
    yield c
    codes = c.stop_all()
    # Each process exits 0 on SIGTERM, except those the test killed itself.
    assert all(code in (0, -signal.SIGKILL) for code in codes.values()), {
        k: (v, c.tail(k)) for k, v in codes.items() if v
    }


def _wait_ready(c: Cluster, key: str, timeout: float) -> float:
    """Seconds until ``key`` is ready and active, not a standby (it may not
    listen yet)."""
    t0 = time.monotonic()
    while True:
        try:
            status, body = c.readyz(key)
            if status == 200 and "role" not in body:
                return time.monotonic() - t0
        except OSError:
            pass
        assert time.monotonic() - t0 < timeout, (key, c.tail(key))
        time.sleep(0.05)


async def _send(bus: RedisBus, c: Control) -> ControlReply:
    """Publish ``c`` (again) and return risk's newest reply to it."""

    async def replies() -> list[ControlReply]:
        return [
            m.event
            for m in await bus.read_all(CONTROL_REPLIES, 10_000)
            if isinstance(m.event, ControlReply) and m.event.request_id == c.id
        ]

    before = len(await replies())
    await bus.publish(CONTROL, [c])
    deadline = time.monotonic() + 15
    while len(got := await replies()) == before:
        assert time.monotonic() < deadline, f"no reply to {c.command}"
        await asyncio.sleep(0.05)
    return got[-1]


async def test_a_captured_command_stays_refused_after_restart_and_failover(
    cluster: Cluster,
) -> None:
    c = cluster
    for key in (c.start("db_writer", "w0"), c.start("execution"), c.start("risk", "r1")):
        c.wait_live(key)
    _wait_ready(c, "risk-r1", 30)
    bus = await observer_bus(c)
    try:
        captured = make_control(CONTROL_TOKEN, "resume", {}, time.time_ns(), "op")
        assert (await _send(bus, captured)).ok
        halt = await _send(bus, make_control(CONTROL_TOKEN, "halt", {}, time.time_ns(), "op"))
        assert halt.ok and halt.payload["state"] == "halted"

        c.kill("risk-r1")
        c.start("risk", "r1")
        took = _wait_ready(c, "risk-r1", 30)
        assert took < 10, "the restart waited for its own old lease"
        again = await _send(bus, captured)
        assert not again.ok and again.detail == "refused: replayed", again
        status = await _send(bus, make_control(CONTROL_TOKEN, "status", {}, time.time_ns()))
        assert status.payload["state"] == "halted"

        c.wait_live(c.start("risk", "r2"))
        assert "standby" in c.readyz("risk-r2")[1]["role"]
        c.kill("risk-r1")
        _wait_ready(c, "risk-r2", LEASE_TTL_MS / 1000 * 2 + 10)
        assert time.time_ns() - captured.ts_event < 30e9, "the test ran past the window"
        third = await _send(bus, captured)
        assert not third.ok and third.detail == "refused: replayed", third
        status = await _send(bus, make_control(CONTROL_TOKEN, "status", {}, time.time_ns()))
        assert status.payload["state"] == "halted"
    finally:
        await bus.close()


@pytest.mark.parametrize("frozen", ["risk-c1", "ws-c1"])
async def test_a_service_frozen_past_its_lease_resumes_by_itself(
    cluster: Cluster, undisturbed: dict[str, list[tuple[Any, ...]]], frozen: str
) -> None:
    c = cluster
    start_consumers(c)
    c.wait_live(c.start("ws"))
    bus = await observer_bus(c)
    try:
        await c.wait_replayed(bus, TOTAL // 3, timeout=60)
        c.signal(frozen, signal.SIGSTOP)
        await asyncio.sleep(LEASE_TTL_MS / 1000 * 4)
        assert not await c.replay_done(bus), "the replay ended before the pause"
        c.signal(frozen, signal.SIGCONT)
        await c.wait_done(bus, timeout=90)
        _assert_same(await c.rows({**COLUMNS, **TRADES}), undisturbed)
        log = c.tmp.joinpath(f"{frozen}.log").read_text()
        assert "rejoining as a standby" in log and "expired" in log, c.tail(frozen)
        assert c.procs[frozen].poll() is None, f"{frozen} exited instead of rejoining"
    finally:
        await bus.close()


async def test_ws_standby_takes_over_without_loss_or_duplicate(
    cluster: Cluster, undisturbed: dict[str, list[tuple[Any, ...]]]
) -> None:
    c = cluster
    start_consumers(c)
    c.wait_live(c.start("ws", "a"))
    _wait_ready(c, "ws-a", 30)
    c.wait_live(c.start("ws", "b"))
    status, body = c.readyz("ws-b")
    assert status == 200 and "standby" in body["role"], (status, body)
    bus = await observer_bus(c)
    try:
        await c.wait_replayed(bus, TOTAL // 3, timeout=60)
        state = await c.replay_state(bus)
        assert state is not None
        c.kill("ws-a")
        killed_at, t0 = int(state["events"]), time.monotonic()
        c.procs.pop("ws-a")  # dead for good: the standby carries on
        await c.wait_replayed(bus, killed_at + 200, timeout=30)
        took = time.monotonic() - t0
        print(f"ws takeover: replay moved on {took:.2f}s after the kill")
        assert took < LEASE_TTL_MS / 1000 * 1.1 + 2.0, f"takeover took {took:.1f}s"
        await c.wait_done(bus, timeout=90)
        got = await c.rows({**COLUMNS, **TRADES})
        _assert_same(got, undisturbed)
        ids = Counter(m.event.id for m in await bus.read_all(MARKET, 1_000_000))
        assert [i for i, n in ids.items() if n > 1] == [], "a market event was published twice"
        assert c.readyz("ws-b")[1].get("replay") == "finished"
    finally:
        await bus.close()
