"""The shared bus contract on Redis Streams, plus what only Redis can get wrong:
round trips per batch, reconnects, trimming, fencing and partition takeover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.bus_contract import BusContract, drain, fill, trade
from tradewind.bus import Bus
from tradewind.bus.redis import FencedError, RedisBus
from tradewind.topics import EXECUTIONS, MARKET, ORDERS, partition_of

pytestmark = pytest.mark.redis


@pytest.fixture
async def make_bus(redis_url: str, redis_prefix: str) -> AsyncIterator[Any]:
    buses: list[RedisBus] = []

    async def make(**kw: Any) -> Bus:
        kw.setdefault("partitions", 4)
        bus = RedisBus(redis_url, prefix=f"{redis_prefix}{len(buses)}", name=redis_prefix, **kw)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    admin = aioredis.Redis.from_url(redis_url)
    for b in buses:
        await b.close()
        keys = [k async for k in admin.scan_iter(match=f"{b.prefix}:*", count=1000)]
        if keys:
            await admin.delete(*keys)
    await admin.aclose()


async def kill_clients(redis_url: str, name: str) -> int:
    """CLIENT KILL every connection of one bus (by its client name), no one else's."""
    admin = aioredis.Redis.from_url(redis_url)
    try:
        clients = await admin.client_list()
        killed = 0
        for c in clients:
            if c.get("name") == name:
                killed += await admin.client_kill_filter(_id=c["id"])
        return killed
    finally:
        await admin.aclose()


def count_round_trips(bus: RedisBus, sub: Any) -> Callable[[], int]:
    """Round trips to Redis since the last call, over every connection the bus
    and the subscription use (the lean ones and redis-py's pool)."""
    pool = bus.redis.connection_pool
    real = pool.get_connection
    pooled = 0

    async def counting(*a: Any, **kw: Any) -> Any:
        nonlocal pooled
        pooled += 1
        return await real(*a, **kw)

    pool.get_connection = counting  # type: ignore[method-assign]
    assert bus._fast is not None
    lean = (bus._fast, sub._conn)
    last = pooled + sum(c.round_trips for c in lean)

    def since() -> int:
        nonlocal last
        now = pooled + sum(c.round_trips for c in lean)
        n, last = now - last, now
        return n

    return since


def lose_the_first_commit_reply(bus: RedisBus) -> Callable[[], int]:
    """The next commit is applied by the server but its reply is lost (as when
    the connection drops just then); returns how many attempts were made."""
    assert bus._fast is not None
    real = bus._fast.evalsha
    attempts = 0

    async def lose_first_reply(*a: Any) -> Any:
        nonlocal attempts
        attempts += 1
        res = await real(*a)
        if attempts == 1:
            raise ConnectionError("reply lost after the server applied it")
        return res

    bus._fast.evalsha = lose_first_reply  # type: ignore[method-assign]
    return lambda: attempts


class TestRedisBus(BusContract):
    def lose_next_commit_reply(self, bus: Bus) -> bool:
        assert isinstance(bus, RedisBus)
        lose_the_first_commit_reply(bus)
        return True

    async def test_a_batch_costs_one_round_trip(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        calls = count_round_trips(bus, sub)
        await bus.publish(ORDERS, [trade(i) for i in range(2000)])
        assert calls() == 1
        got = await sub.fetch(2000, 1.0)
        while len(got) < 2000:
            got += await sub.fetch(2000, 1.0)
        assert calls() <= 3  # history read, idle claim, new entries
        await sub.commit(got, {EXECUTIONS: [fill(i) for i in range(500)]}, {"k": b"v"})
        assert calls() == 1
        assert await bus.idle()

    async def test_a_hand_off_rides_on_the_upstream_commit(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        up = await bus.subscribe([ORDERS], "up", "c")
        down = await bus.subscribe([EXECUTIONS], "down", "c")
        up.hand_off(EXECUTIONS, down)
        assert await down.fetch(10, 0.05) == []  # its history read, then an idle poll
        await bus.publish(ORDERS, [trade(i) for i in range(5)])
        batch = await drain(up, 5, ack=False)
        calls = count_round_trips(bus, down)
        await up.commit(batch, {EXECUTIONS: [fill(i) for i in range(5)]})
        got = await down.fetch(10, 1.0)
        assert [m.event.id for m in got] == [fill(i).id for i in range(5)]
        assert calls() == 1  # the commit; the downstream read nothing itself
        await down.ack(got)
        assert await bus.idle()

    async def test_a_fed_consumers_own_read_that_finished_meanwhile_is_returned_at_once(
        self, make_bus: Any
    ) -> None:
        """Its read of its other streams ends while the handler of a hand-off
        runs: the next fetch returns it, not after waiting out its timeout."""
        bus: RedisBus = await make_bus()
        up = await bus.subscribe(["t.up"], "up", "c")
        down = await bus.subscribe(["t.hop", "t.other"], "down", "c")
        up.hand_off("t.hop", down)
        await bus.publish("t.up", [trade(i) for i in range(3)])
        batch = await drain(up, 3, ack=False)
        waiting = asyncio.create_task(down.fetch(100, 5.0))
        await asyncio.sleep(0.1)  # its own blocked read of t.other is out
        await up.commit(batch, {"t.hop": [trade(10 + i) for i in range(3)]})
        handed = await asyncio.wait_for(waiting, 6.0)
        assert {m.topic for m in handed} == {"t.hop"}
        await bus.publish("t.other", [fill(1)])
        await asyncio.sleep(0.1)  # the read returns while "the handler runs"
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        got = await down.fetch(100, 5.0)
        waited = loop.time() - t0
        assert [m.event.id for m in got] == [fill(1).id]
        assert waited < 1.0, f"the fetch waited {waited:.2f}s for a read already done"
        await down.ack(handed + got)
        await up.close()

    async def test_a_commit_reads_ahead_the_next_batch_in_the_same_round_trip(
        self, make_bus: Any
    ) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        sub.read_ahead = True
        await bus.publish(ORDERS, [trade(i) for i in range(30)])
        first = await drain(sub, 10, ack=False)
        calls = count_round_trips(bus, sub)
        await sub.commit(first)
        second = await sub.fetch(10, 1.0)
        assert calls() == 1
        await sub.commit(second)
        third = await sub.fetch(10, 1.0)
        await sub.commit(third)
        ids = [m.event.id for m in first + second + third]
        assert ids == [trade(i).id for i in range(30)]
        assert await bus.idle()

    async def test_one_busy_stream_fills_a_whole_batch_and_the_rest_waits_in_order(
        self, make_bus: Any
    ) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS, EXECUTIONS], "g", "c")
        await bus.publish(ORDERS, [trade(i) for i in range(150)])
        await bus.publish(EXECUTIONS, [fill(i) for i in range(30)])
        first = await sub.fetch(100, 1.0)
        assert len(first) == 100  # not 100 // 2 streams
        calls = count_round_trips(bus, sub)
        second = await sub.fetch(100, 1.0)
        assert len(second) == 30 and calls() == 0  # read with the first, kept for now
        got = first + second + await drain(sub, 50, ack=False)
        assert [m.event.id for m in got if m.topic == ORDERS] == [trade(i).id for i in range(150)]
        assert [m.event.id for m in got if m.topic == EXECUTIONS] == [fill(i).id for i in range(30)]
        await sub.ack(got)
        assert await bus.idle()

    async def test_without_read_ahead_an_ack_delivers_nothing(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        await bus.publish(ORDERS, [trade(i) for i in range(20)])
        await sub.ack(await drain(sub, 10, ack=False))
        info = (await bus.info())[ORDERS].groups["g"]
        assert (info.pending, info.lag) == (0, 10)

    async def test_what_was_read_ahead_goes_back_to_the_group_on_close(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        c1 = await bus.subscribe([ORDERS], "g", "c1")
        c1.read_ahead = True
        await bus.publish(ORDERS, [trade(i) for i in range(20)])
        await c1.commit(await drain(c1, 10, ack=False))
        await c1.close()
        c2 = await bus.subscribe([ORDERS], "g", "c2")
        got = await c2.fetch(100, 0.1)  # claimed now, not after claim_idle_ms
        assert [m.event.id for m in got] == [trade(i).id for i in range(10, 20)]
        await c2.ack(got)
        assert await bus.idle()

    async def test_a_lost_reply_rereads_what_the_applied_attempt_read_ahead(
        self, make_bus: Any
    ) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        sub.read_ahead = True
        await bus.publish(ORDERS, [trade(i) for i in range(20)])
        first = await drain(sub, 10, ack=False)
        attempts = lose_the_first_commit_reply(bus)
        await sub.commit(first)
        assert attempts() == 2
        rest = await drain(sub, 10)
        assert [m.event.id for m in rest] == [trade(i).id for i in range(10, 20)]
        assert all(m.deliveries == 2 for m in rest)
        assert await bus.idle()

    async def test_reassignment_drops_the_read_ahead_and_rereads_in_order(
        self, make_bus: Any
    ) -> None:
        bus: RedisBus = await make_bus()
        parts = list(range(bus.partitions))
        sub = await bus.subscribe([MARKET], "g", "c", parts)
        sub.read_ahead = True
        sent = [trade(i, f"S{i % 5}") for i in range(40)]
        await bus.publish(MARKET, sent)
        first = await sub.fetch(8, 1.0)
        await sub.commit(first)
        await sub.assign(parts)
        got = first + await drain(sub, 40 - len(first))
        assert sorted(m.event.id for m in got) == sorted(e.id for e in sent)
        assert len({m.event.id for m in got}) == 40
        for p in parts:
            times = [m.event.ts_event for m in got if m.partition == p]
            assert times == sorted(times)
        assert await bus.idle()

    async def test_reconnects_after_client_kill_without_losing_acked_data(
        self, make_bus: Any, redis_url: str, redis_prefix: str
    ) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        await bus.publish(ORDERS, [trade(i) for i in range(300)])
        first = await drain(sub, 100)
        assert await kill_clients(redis_url, redis_prefix) >= 1
        # the publisher's connection is gone too: this publish must reconnect
        await bus.publish(ORDERS, [trade(i) for i in range(300, 400)])
        await kill_clients(redis_url, redis_prefix)
        rest = await drain(sub, 300, timeout=10.0)
        ids = [m.event.id for m in first + rest]
        assert sorted(ids) == sorted(trade(i).id for i in range(400))
        assert len(ids) == len(set(ids))
        assert await bus.idle()

    async def test_only_market_streams_are_capped_on_publish(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus(partitions=1, market_maxlen=1000)
        for _ in range(5):
            await bus.publish(MARKET, [trade(i) for i in range(1000)])
            await bus.publish(ORDERS, [trade(i) for i in range(1000)])
        info = await bus.info()
        assert info[MARKET].length < 5000
        assert info[MARKET].length >= 1000
        assert await bus.redis.xlen(bus.stream(ORDERS)) == 5000

    async def test_undecodable_entry_goes_to_dead_letter(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        await bus.redis.xadd(bus.stream(ORDERS), {b"e": b"\xc1not msgpack"})
        await bus.publish(ORDERS, [trade(1)])
        got = await drain(sub, 1)
        assert [m.event.id for m in got] == [trade(1).id]
        (dl,) = await bus.dead_letters()
        assert dl.topic == ORDERS
        assert dl.payload == b"\xc1not msgpack"
        info = await bus.info()
        assert info[ORDERS].groups["g"].pending == 0

    async def test_fenced_commit_applies_nothing(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        await bus.publish(ORDERS, [trade(1)])
        got = await sub.fetch(10, 1.0)
        lease = bus.k("lease", "x")
        await bus.redis.set(lease, b"mine")
        sub.set_fence({lease: b"mine"})
        await bus.redis.set(lease, b"someone-else")
        with pytest.raises(FencedError):
            await sub.commit(got, {EXECUTIONS: [fill(1)]}, {"k": b"v"})
        assert await bus.get_state("k") is None
        assert await bus.read_all(EXECUTIONS) == []
        assert (await bus.info())[ORDERS].groups["g"].pending == 1
        await bus.redis.set(lease, b"mine")
        await sub.commit(got, {EXECUTIONS: [fill(1)]}, {"k": b"v"})
        assert await bus.get_state("k") == b"v"

    async def test_assign_takes_over_pending_entries_in_order(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus(partitions=2)
        p = partition_of("BTCUSDT", 2)
        old = await bus.subscribe([MARKET], "sig", "old", partitions=[p])
        await bus.publish(MARKET, [trade(i) for i in range(10)])
        taken = await old.fetch(4, 1.0)
        assert [m.event.id for m in taken] == [trade(i).id for i in range(4)]
        new = await bus.subscribe([MARKET], "sig", "new", partitions=[])
        await new.assign([p])
        got = await drain(new, 10)
        assert [m.event.id for m in got] == [trade(i).id for i in range(10)]
        assert all(m.deliveries == 2 for m in got[:4])
        assert await bus.idle()

    async def test_restarted_consumer_rereads_its_own_pending_first(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        await bus.publish(ORDERS, [trade(i) for i in range(5)])
        assert len(await sub.fetch(3, 1.0)) == 3
        again = await bus.subscribe([ORDERS], "g", "c")
        got = await drain(again, 5)
        assert [m.event.id for m in got] == [trade(i).id for i in range(5)]
        assert [m.deliveries for m in got] == [2, 2, 2, 1, 1]

    async def test_throughput(self, make_bus: Any) -> None:
        """Publish, fetch and commit 50k messages in batches; bounded in time."""
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        events = [trade(i) for i in range(1000)]
        n = 50
        t0 = time.perf_counter()
        for _ in range(n):
            await bus.publish(ORDERS, events)
        t_pub = time.perf_counter() - t0
        t0 = time.perf_counter()
        done = 0
        deadline = time.monotonic() + 30
        while done < n * 1000 and time.monotonic() < deadline:
            got = await sub.fetch(1000, 1.0)
            await sub.commit(got)
            done += len(got)
        t_con = time.perf_counter() - t0
        assert done == n * 1000
        print(
            f"\nredis bus: publish {n * 1000 / t_pub:,.0f} msg/s, "
            f"fetch+commit {n * 1000 / t_con:,.0f} msg/s"
        )
        await asyncio.sleep(0)

    async def test_trim_stops_at_the_oldest_pending_entry(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        a = await bus.subscribe([ORDERS], "a", "c")
        b = await bus.subscribe([ORDERS], "b", "c")
        await bus.publish(ORDERS, [trade(i) for i in range(10)])
        got = await a.fetch(10, 1.0)
        await a.ack(got[:4] + got[6:])  # 4 and 5 stay pending in a
        await drain(b, 10)
        assert await bus.trim_consumed(ORDERS) == 4
        left = await bus.redis.xrange(bus.stream(ORDERS))
        assert [_id.decode() for _id, _f in left] == [m.id for m in got[4:]]
        await a.ack(got[4:6])
        assert await bus.trim_consumed(ORDERS) == 6  # the last delivered entry too
        assert await bus.redis.xlen(bus.stream(ORDERS)) == 0

    async def test_trim_keeps_young_entries_and_every_partition(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus(partitions=4)
        sub = await bus.subscribe([MARKET], "g", "c")
        await bus.publish(MARKET, [trade(i, s) for i in range(5) for s in ("BTCUSDT", "ETHUSDT")])
        await drain(sub, 10)
        assert await bus.trim_consumed(MARKET, keep_ms=60_000) == 0
        assert await bus.trim_consumed(MARKET) == 10
        for key, _p in bus.streams_of(MARKET):
            assert await bus.redis.xlen(key) == 0

    async def test_a_fenced_commit_costs_one_round_trip(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        await bus.publish(ORDERS, [trade(i) for i in range(10)])
        got = await sub.fetch(10, 1.0)
        lease = bus.k("lease", "x")
        await bus.redis.set(lease, b"mine")
        sub.set_fence({lease: b"mine"})
        calls = count_round_trips(bus, sub)
        await sub.commit(got, {EXECUTIONS: [fill(1)]}, {"k": b"v"})
        assert calls() == 1
        assert await bus.idle()

    async def test_a_commit_whose_reply_was_lost_is_applied_once(self, make_bus: Any) -> None:
        bus: RedisBus = await make_bus()
        sub = await bus.subscribe([ORDERS], "g", "c")
        await bus.publish(ORDERS, [trade(i) for i in range(3)])
        got = await sub.fetch(3, 1.0)
        attempts = lose_the_first_commit_reply(bus)
        await sub.commit(got, {EXECUTIONS: [fill(i) for i in range(5)]}, {"k": b"v"})
        assert attempts() == 2
        assert [m.event.id for m in await bus.read_all(EXECUTIONS)] == [
            fill(i).id for i in range(5)
        ]
        assert await bus.idle()
