"""A lockstep replay whose consumer never catches up says so, and does not go on
as if its outcome were still a function of its data."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, observer_bus
from tradewind.topics import MARKET

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LIMIT_S = 6


async def test_a_stuck_group_is_named_while_waiting_then_fails_the_run_visibly(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    c = Cluster(tmp_path, redis_url, redis_prefix, "postgresql://unused", speed=0)
    c.env["TRADEWIND_FEED__LOCKSTEP_TIMEOUT_S"] = str(LIMIT_S)
    bus = await observer_bus(c)
    stuck = await bus.subscribe([MARKET], "stuck", "nobody")
    ws = c.start("ws")
    try:
        c.wait_live(ws)
        t0 = time.monotonic()
        deadline = t0 + 120
        while not await c.replay_done(bus):
            assert time.monotonic() < deadline, c.tail(ws)
            assert c.procs[ws].poll() is None, c.tail(ws)
            await asyncio.sleep(0.2)
        assert time.monotonic() - t0 >= LIMIT_S, "the replay did not wait for the stuck group"
        state = await c.replay_state(bus)
        assert state is not None
        assert state["deterministic"] is False
        assert "market/stuck" in state["lockstep_broken"]

        status, body = c.readyz(ws)
        assert status == 503, body
        assert body["replay"] == "finished"
        assert "not deterministic" in body["lockstep"]
        assert "market/stuck" in body["lockstep"]
        assert "tradewind_replay_lockstep_broken 1.0" in await asyncio.to_thread(
            _get, f"http://127.0.0.1:{c.ports[ws]}/metrics"
        )
    finally:
        codes = c.stop_all()
        await stuck.close()
        await bus.close()
    lines = [json.loads(x) for x in (tmp_path / f"{ws}.log").read_text().splitlines()]
    waits = [x for x in lines if x["event"] == "lockstep replay waiting for consumers"]
    assert waits, "no line said which group the replay was waiting for"
    assert all("market/stuck" in x["behind"] for x in waits)
    assert [x for x in lines if x["level"] == "error" and "lockstep" in x["event"]]
    assert "bus did not settle" not in (tmp_path / f"{ws}.log").read_text()
    assert codes == {ws: 0}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())
