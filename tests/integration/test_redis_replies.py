"""Replies that say "not now" (LOADING, BUSY, READONLY) are waited out like a
lost connection, on a redis-server of the test's own (it restarts it, blocks
it with a script and demotes it to a replica), and every retry logs the
server's own message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog
from redis.exceptions import ResponseError

from tests.conftest import RedisProcess
from tradewind.bus.base import describe
from tradewind.bus.redis import RedisBus, RedisSubscription
from tradewind.bus.resp import RespConnection, RetryableReplyError
from tradewind.events import Control
from tradewind.topics import CONTROL

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _control(i: int) -> Control:
    return Control(id=f"c{i}", ts_event=i, command="status")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    started: list[RedisProcess] = []

    def make(*args: str) -> RedisProcess:
        d = tmp_path / f"r{len(started)}"
        d.mkdir()
        s = RedisProcess(d, *args)
        started.append(s)
        s.start()
        return s

    yield make
    for s in started:
        s.stop(10)


@pytest.fixture
async def admin() -> AsyncIterator[Callable[[RedisProcess], aioredis.Redis]]:
    clients: list[aioredis.Redis] = []

    def make(server: RedisProcess) -> aioredis.Redis:
        c = aioredis.Redis.from_url(server.url, socket_timeout=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


async def _fetch_all(sub: RedisSubscription, n: int, timeout: float = 30.0) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        msgs = await sub.fetch(100, 0.2)
        got += [m.event.id for m in msgs]
        if msgs:
            await sub.commit(msgs)
    return got


def _server_messages(logs: list[dict[str, Any]]) -> str:
    return " ".join(str(e.get("error", "")) for e in logs)


async def _wait(cond: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_the_lean_connection_tells_retryable_replies_apart(
    servers: Callable[..., RedisProcess],
) -> None:
    server = servers("--busy-reply-threshold", "100")
    blocker = RespConnection(server.url, timeout_s=30)
    conn = RespConnection(server.url, timeout_s=5)
    try:
        busy = asyncio.ensure_future(blocker.call("EVAL", "while true do end", 0))
        await asyncio.sleep(0.3)
        with pytest.raises(RetryableReplyError, match=r"^BUSY"):
            await conn.call("SET", "k", "v")
        await conn.call("SCRIPT", "KILL")
        with pytest.raises(ResponseError):
            await busy
        with pytest.raises(ResponseError) as plain:
            await conn.call("XGROUP", "CREATE", "nostream", "g", "0")
        assert not isinstance(plain.value, RetryableReplyError)
        # redis-py's repr hides the message ("server:ResponseError"); logs must not
        assert repr(plain.value) == "server:ResponseError"
        assert describe(plain.value).startswith("ResponseError: ERR The XGROUP subcommand")
    finally:
        await blocker.close()
        await conn.close()


async def test_a_commit_waits_out_a_busy_script(
    servers: Callable[..., RedisProcess],
    admin: Callable[[RedisProcess], aioredis.Redis],
    redis_prefix: str,
) -> None:
    server = servers("--busy-reply-threshold", "100")
    bus = RedisBus(server.url, prefix=redis_prefix, partitions=1)
    await bus.start()
    sub = await bus.subscribe([CONTROL], "g", "c")
    blocker = RespConnection(server.url, timeout_s=30)
    try:
        busy = asyncio.ensure_future(blocker.call("EVAL", "while true do end", 0))
        await asyncio.sleep(0.3)
        with structlog.testing.capture_logs() as logs:
            publishing = asyncio.ensure_future(bus.publish(CONTROL, [_control(1)]))
            await asyncio.sleep(1.0)
            assert not publishing.done(), "the commit went through a busy server"
            await admin(server).script_kill()
            await asyncio.wait_for(publishing, 20)
        with pytest.raises(ResponseError):
            await busy
        assert "BUSY Redis is busy running a script" in _server_messages(logs)
        assert await _fetch_all(sub, 1) == ["c1"]
    finally:
        await blocker.close()
        await sub.close()
        await bus.close()


async def test_publish_and_fetch_wait_out_an_aof_load_after_a_restart(
    servers: Callable[..., RedisProcess],
    admin: Callable[[RedisProcess], aioredis.Redis],
    redis_prefix: str,
) -> None:
    # 40k keys at 20 µs or more each: seconds of LOADING however fast the disk;
    # 1 kB values stored uncompressed, because a loading Redis answers only
    # every 2 MB it has read.
    server = servers(
        "--appendonly",
        "yes",
        "--rdbcompression",
        "no",
        "--enable-debug-command",
        "local",
        "--key-load-delay",
        "20",
    )
    r = admin(server)
    await r.execute_command("DEBUG", "POPULATE", 40_000, "pad", 1000)
    bus = RedisBus(server.url, prefix=redis_prefix, partitions=1)
    await bus.start()
    sub = await bus.subscribe([CONTROL], "g", "c")
    await bus.publish(CONTROL, [_control(1)])
    await r.bgrewriteaof()

    async def rewritten() -> bool:
        info = await r.info("persistence")
        return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

    await _wait(rewritten, "the AOF rewrite did not finish")
    server.stop()
    server.start(wait=False)
    try:
        with structlog.testing.capture_logs() as logs:
            t0 = time.monotonic()
            await asyncio.wait_for(bus.publish(CONTROL, [_control(2)]), 40)
            got = await _fetch_all(sub, 2)
        assert got == ["c1", "c2"]
        assert time.monotonic() - t0 > 0.5, "Redis was not loading: the test proves nothing"
        assert "loading the dataset in memory" in _server_messages(logs)
        assert await admin(server).dbsize() >= 40_000
    finally:
        await sub.close()
        await bus.close()


async def test_a_demoted_primary_is_waited_out_until_it_is_promoted_again(
    servers: Callable[..., RedisProcess],
    admin: Callable[[RedisProcess], aioredis.Redis],
    redis_prefix: str,
) -> None:
    primary, replica = servers(), servers()
    seed = RedisBus(primary.url, prefix=redis_prefix, partitions=1)
    await seed.start()
    await (await seed.subscribe([CONTROL], "g", "c")).close()
    await seed.publish(CONTROL, [_control(1)])
    await seed.close()
    ra = admin(replica)
    await ra.replicaof("127.0.0.1", primary.port)

    async def synced() -> bool:
        info = await ra.info("replication")
        return info.get("master_link_status") == "up" and await ra.exists(
            f"{redis_prefix}:{CONTROL}"
        )

    await _wait(synced, "the replica did not sync")

    async def consume() -> list[str]:
        bus = RedisBus(replica.url, prefix=redis_prefix, partitions=1)
        await bus.start()
        sub = await bus.subscribe([CONTROL], "g", "c")
        try:
            await bus.publish(CONTROL, [_control(2)])
            return await _fetch_all(sub, 2)
        finally:
            await sub.close()
            await bus.close()

    with structlog.testing.capture_logs() as logs:
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(1.5)
        assert not task.done(), "a write went through a read-only replica"
        await ra.replicaof("NO", "ONE")
        assert await asyncio.wait_for(task, 30) == ["c1", "c2"]
    assert "write against a read only replica" in _server_messages(logs)
