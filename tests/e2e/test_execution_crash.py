"""SIGKILL the execution service in the middle of a burst of orders, restart it,
and check that reconciliation leaves the published state equal to the
exchange's, with no client order id sent twice.

The service runs as a real process on the Redis bus (its outbox survives the
kill there) against the fake exchange's Binance order endpoints, which delay
every order a little so that the kill lands while orders are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_execution_live import diverges, orders
from tradewind.bus.redis import RedisBus
from tradewind.exchanges.fake.binance_orders import FakeBinanceOrders, Faults
from tradewind.topics import EXECUTIONS, ORDERS

RUNNER = Path(__file__).with_name("execution_runner.py")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def runner_env(fake: FakeBinanceOrders, redis_url: str, prefix: str, tmp: Path) -> dict[str, str]:
    (tmp / "key").write_text(fake.api_key)
    (tmp / "secret").write_text(fake.api_secret)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "TRADEWIND_LOG_LEVEL": "warning",
            "TRADEWIND_STORE__URL": f"sqlite:///{tmp / 'unused.db'}",
            "TRADEWIND_BUS__KIND": "redis",
            "TRADEWIND_BUS__REDIS_URL": redis_url,
            "TRADEWIND_BUS__PREFIX": prefix,
            "TRADEWIND_BUS__CLAIM_IDLE_MS": "1000",
            "TRADEWIND_BUS__BLOCK_MS": "50",
            "TRADEWIND_BUS__BATCH_SIZE": "16",
            "TRADEWIND_EXECUTION__VENUE": "binance",
            "TRADEWIND_EXECUTION__API_KEY_FILE": str(tmp / "key"),
            "TRADEWIND_EXECUTION__API_SECRET_FILE": str(tmp / "secret"),
            "TRADEWIND_EXECUTION__REST_URL": fake.rest_url,
            "TRADEWIND_EXECUTION__WS_URL": fake.ws_url,
            "TRADEWIND_EXECUTION__RECV_WINDOW_MS": "1000",
            "TRADEWIND_EXECUTION__REQUEST_TIMEOUT_S": "0.5",
            "TRADEWIND_EXECUTION__SETTLE_INTERVAL_S": "0.1",
            "TRADEWIND_EXECUTION__RECONCILE_INTERVAL_S": "1",
        }
    )
    return env


async def spawn(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RUNNER),
        "exec-0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("ab"),
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), max(deadline - time.monotonic(), 0))
        assert line, tail(log)
        if line.strip() == b"ready":
            break
    asyncio.get_running_loop().create_task(_drain(proc.stdout))
    return proc


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.exists() else ""


async def test_sigkill_mid_burst_then_restart_reconciles(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    fake = FakeBinanceOrders(seed=3, faults={"place": Faults(delay=1.0, delay_s=0.03)})
    fake.prices["BTCUSDT"] = D("100")
    await fake.start()
    bus = RedisBus(redis_url, prefix=redis_prefix)
    await bus.start()
    env = runner_env(fake, redis_url, redis_prefix, tmp_path)
    log = tmp_path / "runner.log"
    procs: list[asyncio.subprocess.Process] = []
    try:
        procs.append(await spawn(env, log))
        sent = orders(80, "crash")
        await bus.publish(ORDERS, sent)
        deadline = time.monotonic() + 30
        while len(fake.received) < 25 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        procs[0].kill()
        await procs[0].wait()
        killed_at = len(fake.received)
        assert 25 <= killed_at < len(sent), "the kill must land mid-burst"
        await fake.set_price("BTCUSDT", D("98"))
        await fake.set_price("BTCUSDT", D("102"))

        procs.append(await spawn(env, log))
        deadline = time.monotonic() + 45
        diff: list[str] = ["not checked"]
        while time.monotonic() < deadline:
            events: list[Any] = [m.event for m in await bus.read_all(EXECUTIONS, 1_000_000)]
            diff = diverges(fake, sent, events)
            if not diff:
                break
            await asyncio.sleep(0.2)
        assert diff == [], tail(log)
        assert fake.duplicates() == {}
        assert len(fake.received) > killed_at, "the restarted service went on with the burst"
        assert any(o.status == "FILLED" and o.type == "LIMIT" for o in fake.orders.values())
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.wait(), 10)
            if p.returncode is None:
                p.kill()
                await p.wait()
        await bus.close()
        await fake.stop()
