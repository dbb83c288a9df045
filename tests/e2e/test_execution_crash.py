"""SIGKILL the execution service (``tradewind service execution``, a real
process on the Redis bus) mid-run, restart it, and check nothing was lost or
done twice.

- Live: in the middle of a burst of orders against the fake exchange's Binance
  order endpoints (which delay every order a little so the kill lands while
  orders are in flight): reconciliation leaves the published state equal to
  the exchange's, with no client order id sent twice (fails if the intent is
  not recorded before sending).
- Paper: with limit orders resting on the recorded book: after the restart
  they fill exactly as in an undisturbed run (fails if the paper exchange's
  orders or market history are not saved with the commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, market_file
from tests.e2e.cluster import ORDER_KEY
from tests.integration.test_execution_live import diverges, orders
from tradewind.bus.redis import RedisBus
from tradewind.control import sign_order
from tradewind.events import (
    Event,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    client_order_id,
)
from tradewind.exchanges.binance.fake_orders import FakeBinanceOrders, Faults
from tradewind.exchanges.binance.parser import BinanceParser
from tradewind.topics import EXECUTIONS, MARKET, ORDERS

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def base_env(redis_url: str, prefix: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(
        {
            "TRADEWIND_LOG_LEVEL": "warning",
            "TRADEWIND_STORE__URL": f"sqlite:///{tmp / 'unused.db'}",
            "TRADEWIND_BUS__KIND": "redis",
            "TRADEWIND_BUS__REDIS_URL": redis_url,
            "TRADEWIND_BUS__PREFIX": prefix,
            "TRADEWIND_CONTROL__ORDER_KEY": ORDER_KEY,
            "TRADEWIND_BUS__CLAIM_IDLE_MS": "1000",
            "TRADEWIND_BUS__BLOCK_MS": "50",
            "TRADEWIND_BUS__BATCH_SIZE": "16",
            "TRADEWIND_DRAIN_TIMEOUT_S": "5",
        }
    )
    return env


def runner_env(fake: FakeBinanceOrders, redis_url: str, prefix: str, tmp: Path) -> dict[str, str]:
    (tmp / "key").write_text(fake.api_key)
    (tmp / "secret").write_text(fake.api_secret)
    env = base_env(redis_url, prefix, tmp)
    env.update(
        {
            "TRADEWIND_FEED__SOURCE": "live",
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


def signed(events: list[Any]) -> list[Any]:
    """As risk publishes them: orders signed with the order key execution checks."""
    return [sign_order(ORDER_KEY, e) if isinstance(e, OrderRequest) else e for e in events]


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def spawn(
    env: dict[str, str], log: Path, *, need_ready: bool = True
) -> asyncio.subprocess.Process:
    """``tradewind service execution``; returns once it has started (and, with
    ``need_ready``, reports ready: a live venue is reconciled)."""
    port = free_port()
    env = {**env, "TRADEWIND_HTTP__PORT": str(port)}
    with log.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tradewind",
            "service",
            "execution",
            "--consumer",
            "exec-0",
            env=env,
            stdout=fh,
            stderr=asyncio.subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.returncode is None, tail(log)
        try:
            status, body = await asyncio.to_thread(_readyz, port)
        except OSError:
            status, body = 0, {}
        if status == 200 or (not need_ready and status and body.get("state") != "starting"):
            return proc
        await asyncio.sleep(0.1)
    raise AssertionError(f"execution service did not start: {tail(log)}")


def tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.exists() else ""


async def stop(procs: list[asyncio.subprocess.Process]) -> None:
    for p in procs:
        if p.returncode is None:
            p.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.wait(), 10)
        if p.returncode is None:
            p.kill()
            await p.wait()


async def test_sigkill_mid_burst_then_restart_reconciles(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    fake = FakeBinanceOrders(seed=3, faults={"place": Faults(delay=1.0, delay_s=0.03)})
    fake.prices["BTCUSDT"] = D("100")
    await fake.start()
    bus = RedisBus(redis_url, prefix=redis_prefix)
    await bus.start()
    env = runner_env(fake, redis_url, redis_prefix, tmp_path)
    log = tmp_path / "execution.log"
    procs: list[asyncio.subprocess.Process] = []
    try:
        procs.append(await spawn(env, log))
        sent = orders(80, "crash")
        await bus.publish(ORDERS, signed(sent))
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
        await stop(procs)
        await bus.close()
        await fake.stop()


# --- paper: resting orders survive a SIGKILL ---------------------------------------------


def paper_env(redis_url: str, prefix: str, tmp: Path) -> dict[str, str]:
    env = base_env(redis_url, prefix, tmp)
    env.update({"TRADEWIND_FEED__SOURCE": "replay", "TRADEWIND_EXECUTION__VENUE": "paper"})
    return env


def scenario(lines: int = 2500, every: int = 60) -> list[Event]:
    """Recorded market events with orders decided along the way, in stream order:
    limit orders at and behind the best price (they rest, with a queue ahead),
    and now and then a market order."""
    parser = BinanceParser()
    out: list[Event] = []
    quote: Quote | None = None
    n = 0
    with market_file("binance_spot_btcusdt_combined_20240808.jsonl").open("rb") as fh:
        for i, line in enumerate(fh):
            if i >= lines:
                break
            for e in parser.parse(line.strip(), 0):
                out.append(e)
                if isinstance(e, Quote):
                    quote = e
                if quote is None or len(out) % every:
                    continue
                n += 1
                buy = n % 2 == 0
                market = n % 7 == 0
                best = D(repr(quote.bid if buy else quote.ask))
                step = D("0.01") * (n % 3)
                coid = client_order_id(f"paper-crash-{n}")
                out.append(
                    OrderRequest(
                        id=coid,
                        ts_event=e.ts_event,
                        client_order_id=coid,
                        signal_id=f"paper-crash-{n}",
                        strategy="t",
                        exchange="binance",
                        symbol="BTCUSDT",
                        side=Side.BUY if buy else Side.SELL,
                        order_type=OrderType.MARKET if market else OrderType.LIMIT,
                        quantity=D("0.01"),
                        price=None if market else (best - step if buy else best + step),
                        ts_recv=e.ts_event,
                    )
                )
    return out


async def publish(bus: RedisBus, items: list[Event]) -> None:
    """In stream order, a run of market events or orders at a time."""
    run: list[Event] = []
    for e in [*items, None]:
        if run and (e is None or isinstance(e, OrderRequest) != isinstance(run[0], OrderRequest)):
            topic = ORDERS if isinstance(run[0], OrderRequest) else MARKET
            for i in range(0, len(run), 200):
                await bus.publish(topic, signed(run[i : i + 200]))
            run = []
        if e is not None:
            run.append(e)


async def settled(bus: RedisBus, timeout: float = 60) -> list[Any]:
    """The executions once both groups have consumed and acknowledged everything."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        events = [m.event for m in await bus.read_all(EXECUTIONS, 1_000_000)]
        if await bus.idle() and len(events) == last:
            return events
        last = len(events)
        await asyncio.sleep(0.3)
    raise AssertionError("execution did not catch up")


def outcome(events: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    fills: dict[str, Any] = {}
    last: dict[str, OrderUpdate] = {}
    for e in events:
        if isinstance(e, Fill):
            key = (e.price, e.qty, e.fee, e.liquidity, e.ts_event)
            assert fills.setdefault(e.id, key) == key, f"fill {e.id} published twice, differently"
        elif isinstance(e, OrderUpdate):
            prev = last.get(e.client_order_id)
            if prev is None or e.seq > prev.seq:
                last[e.client_order_id] = e
    return fills, {c: (u.status, u.filled_qty) for c, u in last.items()}


def resting(events: list[Any]) -> set[str]:
    _, states = outcome(events)
    return {
        c
        for c, (st, _q) in states.items()
        if st in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
    }


async def paper_run(
    redis_url: str, prefix: str, tmp: Path, items: list[Event], *, kill: bool
) -> tuple[list[Any], set[str]]:
    bus = RedisBus(redis_url, prefix=prefix)
    await bus.start()
    env = paper_env(redis_url, prefix, tmp)
    log = tmp / f"paper-{prefix[-6:]}.log"
    procs: list[asyncio.subprocess.Process] = []
    try:
        procs.append(await spawn(env, log, need_ready=False))
        if not kill:
            await publish(bus, items)
            return await settled(bus), set()
        half = len(items) // 2
        await publish(bus, items[:half])
        deadline = time.monotonic() + 30
        at_kill: set[str] = set()
        while len(at_kill) < 3 and time.monotonic() < deadline:
            at_kill = resting([m.event for m in await bus.read_all(EXECUTIONS, 1_000_000)])
            await asyncio.sleep(0.01)
        procs[0].kill()
        await procs[0].wait()
        at_kill = resting([m.event for m in await bus.read_all(EXECUTIONS, 1_000_000)])
        await publish(bus, items[half:])
        procs.append(await spawn(env, log, need_ready=False))
        return await settled(bus), at_kill
    finally:
        await stop(procs)
        await bus.close()


async def test_paper_resting_orders_survive_sigkill(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    items = scenario()
    calm, _ = await paper_run(redis_url, redis_prefix + "calm", tmp_path, items, kill=False)
    crashed, at_kill = await paper_run(redis_url, redis_prefix + "kill", tmp_path, items, kill=True)
    calm_fills, calm_states = outcome(calm)
    fills, states = outcome(crashed)
    # The process runs on until the kill lands, so some of the orders seen resting
    # just before may fill first; what matters is that some rest at the kill.
    assert at_kill, "no orders were resting when the service was killed"
    filled_later = {c for c in at_kill if states.get(c, (None,))[0] is OrderStatus.FILLED}
    assert filled_later, "no order resting at the kill filled afterwards: the test proves nothing"
    assert fills == calm_fills
    assert states == calm_states
