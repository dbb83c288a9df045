"""The contract every ``Bus`` implementation passes.

Subclass ``BusContract`` and provide a ``make_bus`` fixture: an async factory
taking ``claim_idle_ms`` and ``max_deliveries`` and returning a started bus.
The same tests then hold the in-process bus and the Redis bus to the same
semantics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from tradewind.bus import Bus, Message
from tradewind.events import DeadLetter, Fill, Liquidity, Side, Trade, decode
from tradewind.topics import DEAD_LETTER, MARKET, partition_of

MakeBus = Callable[..., Awaitable[Bus]]


def trade(i: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(
        id=f"t{symbol}{i}",
        ts_event=1_000 + i,
        exchange="binance",
        symbol=symbol,
        price=100.0 + i,
        qty=1.0,
        side=Side.BUY,
        trade_id=str(i),
        ts_recv=0,
    )


def fill(i: int) -> Fill:
    return Fill(
        id=f"f{i}",
        ts_event=i,
        client_order_id=f"c{i}",
        exchange_order_id="x",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.SELL,
        price=Decimal("61837.63"),
        qty=Decimal("0.00100"),
        fee=Decimal("0.0618"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
    )


async def drain(sub: Any, want: int, timeout: float = 5.0, ack: bool = True) -> list[Message]:
    out: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(out) < want and asyncio.get_running_loop().time() < deadline:
        got = await sub.fetch(want - len(out), 0.1)
        if got and ack:
            await sub.ack(got)
        out.extend(got)
    return out


class BusContract:
    async def test_group_gets_everything_in_order(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        sub = await bus.subscribe(["t.order"], "g", "c1")
        await bus.publish("t.order", [trade(i) for i in range(500)])
        got = await drain(sub, 500)
        assert [m.event.id for m in got] == [trade(i).id for i in range(500)]
        assert all(m.topic == "t.order" for m in got)

    async def test_every_group_gets_every_message(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        a = await bus.subscribe(["t.fan"], "a", "c")
        b = await bus.subscribe(["t.fan"], "b", "c")
        await bus.publish("t.fan", [trade(i) for i in range(50)])
        assert len(await drain(a, 50)) == 50
        assert len(await drain(b, 50)) == 50

    async def test_consumers_of_a_group_share_the_work(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        c1 = await bus.subscribe(["t.share"], "g", "c1")
        c2 = await bus.subscribe(["t.share"], "g", "c2")
        await bus.publish("t.share", [trade(i) for i in range(200)])
        first = await c1.fetch(60, 1.0)
        await c1.ack(first)
        rest = await drain(c2, 200 - len(first))
        ids = [m.event.id for m in first + rest]
        assert len(ids) == 200
        assert len(set(ids)) == 200

    async def test_decimal_money_round_trips_exactly(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        sub = await bus.subscribe(["t.money"], "g", "c")
        await bus.publish("t.money", [fill(1)])
        (m,) = await drain(sub, 1)
        assert m.event == fill(1)
        assert m.event.price == Decimal("61837.63")  # type: ignore[union-attr]

    async def test_unacked_messages_of_a_dead_consumer_are_reclaimed(
        self, make_bus: MakeBus
    ) -> None:
        bus = await make_bus(claim_idle_ms=200)
        dead = await bus.subscribe(["t.claim"], "g", "dead")
        await bus.publish("t.claim", [trade(i) for i in range(10)])
        taken = await dead.fetch(10, 1.0)
        assert len(taken) == 10
        # the consumer "crashes": it never acks and never fetches again
        alive = await bus.subscribe(["t.claim"], "g", "alive")
        early = await alive.fetch(10, 0.05)
        assert early == []
        await asyncio.sleep(0.3)
        got = await drain(alive, 10)
        assert sorted(m.event.id for m in got) == sorted(m.event.id for m in taken)
        assert all(m.deliveries >= 2 for m in got)
        assert await bus.idle()

    async def test_commit_acks_publishes_and_saves_state_together(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        src = await bus.subscribe(["t.in"], "g", "c")
        out = await bus.subscribe(["t.out"], "g2", "c")
        await bus.publish("t.in", [trade(1), trade(2)])
        msgs = await src.fetch(10, 1.0)
        assert not await bus.idle()
        await src.commit(msgs, {"t.out": [trade(3)]}, {"k1": b"state-1"})
        assert await bus.get_state("k1") == b"state-1"
        got = await drain(out, 1)
        assert got[0].event == trade(3)
        assert await bus.idle()

    async def test_poison_message_goes_to_dead_letter_after_max_deliveries(
        self, make_bus: MakeBus
    ) -> None:
        bus = await make_bus(max_deliveries=3, claim_idle_ms=50)
        sub = await bus.subscribe(["t.poison"], "g", "c")
        await bus.publish("t.poison", [trade(1), trade(2)])
        deliveries = 0
        ok: list[Message] = []
        for _ in range(50):
            msgs = await sub.fetch(10, 0.2)
            for m in msgs:
                if m.event.id == trade(1).id:
                    deliveries += 1
                    if await sub.fail(m, "ValueError: bad price"):
                        break
                else:
                    ok.append(m)
                    await sub.ack([m])
            dead = await bus.dead_letters()
            if dead:
                break
            await asyncio.sleep(0.06)
        assert deliveries == 3
        assert [m.event.id for m in ok] == [trade(2).id]
        (dl,) = await bus.dead_letters()
        assert isinstance(dl, DeadLetter)
        assert dl.topic == "t.poison"
        assert dl.group == "g"
        assert dl.deliveries == 3
        assert "bad price" in dl.error
        assert decode(dl.payload) == trade(1)
        assert await sub.fetch(10, 0.2) == []
        assert DEAD_LETTER in await bus.info()

    async def test_state_round_trip(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        assert await bus.get_state("nope") is None
        await bus.put_state("lease", b"x")
        assert await bus.get_state("lease") == b"x"

    async def test_new_group_starts_at_oldest_retained(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        await bus.publish("t.late", [trade(i) for i in range(5)])
        sub = await bus.subscribe(["t.late"], "late", "c")
        got = await drain(sub, 5)
        assert [m.event.id for m in got] == [trade(i).id for i in range(5)]

    async def test_fetch_waits_for_new_messages(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        sub = await bus.subscribe(["t.wait"], "g", "c")

        async def later() -> None:
            await asyncio.sleep(0.05)
            await bus.publish("t.wait", [trade(1)])

        task = asyncio.create_task(later())
        got = await sub.fetch(10, 2.0)
        await task
        assert [m.event.id for m in got] == [trade(1).id]

    async def test_market_keeps_per_symbol_order_and_partitions(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"]
        events = [trade(i, symbols[i % len(symbols)]) for i in range(250)]
        parts = bus.partitions
        owned = [0] if parts > 1 else None
        sub = await bus.subscribe([MARKET], "g", "c", partitions=owned)
        await bus.publish(MARKET, events)
        want = [e for e in events if owned is None or partition_of(e.symbol, parts) == 0]
        got = await drain(sub, len(want))
        assert len(got) == len(want)
        for sym in symbols:
            seq = [m.event.id for m in got if m.event.symbol == sym]  # type: ignore[union-attr]
            assert seq == [e.id for e in want if e.symbol == sym]
        if owned is not None:
            assert await sub.fetch(10, 0.2) == []

    async def test_read_all_and_info(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        sub = await bus.subscribe(["t.info"], "g", "c")
        await bus.publish("t.info", [trade(i) for i in range(3)])
        assert [m.event.id for m in await bus.read_all("t.info")] == [trade(i).id for i in range(3)]
        info = await bus.info()
        assert info["t.info"].groups["g"].lag == 3
        got = await sub.fetch(3, 1.0)
        info = await bus.info()
        assert info["t.info"].groups["g"].pending == 3
        await sub.ack(got)
        info = await bus.info()
        assert info["t.info"].groups["g"].pending == 0
        assert info["t.info"].groups["g"].lag == 0

    async def test_trim_keeps_pending_and_undelivered_entries(self, make_bus: MakeBus) -> None:
        bus = await make_bus(claim_idle_ms=200)
        crashed = await bus.subscribe(["t.trim"], "a", "crashed")
        b = await bus.subscribe(["t.trim"], "b", "c")
        await bus.publish("t.trim", [trade(i) for i in range(10)])
        taken = await crashed.fetch(6, 1.0)
        assert [m.event.id for m in taken] == [trade(i).id for i in range(6)]
        await crashed.ack(taken[:3])  # 3, 4, 5 stay pending: it "crashes" mid-batch
        await b.ack(await b.fetch(2, 1.0))
        # b has not received 2..9 yet; a still needs 3..5: only 0 and 1 may go
        assert await bus.trim_consumed("t.trim") == 2
        assert [m.event.id for m in await bus.read_all("t.trim")] == [
            trade(i).id for i in range(2, 10)
        ]
        got = await drain(b, 8)
        assert [m.event.id for m in got] == [trade(i).id for i in range(2, 10)]
        await bus.trim_consumed("t.trim")
        # the crashed consumer's successor still gets its pending entries, then the rest
        alive = await bus.subscribe(["t.trim"], "a", "alive")
        await asyncio.sleep(0.3)
        rest = await drain(alive, 7)
        assert sorted(m.event.id for m in rest[:3]) == [trade(i).id for i in range(3, 6)]
        assert [m.event.id for m in rest[3:]] == [trade(i).id for i in range(6, 10)]
        assert await bus.idle()

    async def test_trim_drops_what_every_group_acknowledged(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        a = await bus.subscribe(["t.done"], "a", "c")
        b = await bus.subscribe(["t.done"], "b", "c")
        await bus.publish("t.done", [trade(i) for i in range(20)])
        await drain(a, 20)
        assert await bus.trim_consumed("t.done") == 0  # b has received nothing
        assert len(await bus.read_all("t.done")) == 20
        await drain(b, 20)
        # (the in-process bus may have compacted the log by itself by now)
        assert await bus.trim_consumed("t.done", required_groups=["a", "nope"]) == 0
        await bus.trim_consumed("t.done", required_groups=["a", "b"])
        assert await bus.read_all("t.done") == []
        assert (await bus.info())["t.done"].length == 0
        assert await bus.trim_consumed("t.done") == 0  # idempotent
        # entries published after the trim are delivered as usual
        await bus.publish("t.done", [trade(20)])
        assert [m.event.id for m in await drain(a, 1)] == [trade(20).id]

    async def test_trim_leaves_a_topic_without_groups_alone(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        await bus.publish("t.nogroup", [trade(i) for i in range(5)])
        assert await bus.trim_consumed("t.nogroup") == 0
        assert await bus.trim_consumed("t.never-published") == 0
        assert len(await bus.read_all("t.nogroup")) == 5

    async def test_state_with_a_ttl_expires(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        sub = await bus.subscribe(["t.ttl"], "g", "c")
        await bus.publish("t.ttl", [trade(1)])
        msgs = await sub.fetch(1, 1.0)
        await bus.put_state("short", b"1", ttl_ms=150)
        await bus.put_state("kept", b"1", ttl_ms=150)
        await bus.put_state("kept", b"2")  # an overwrite without a TTL keeps it
        await sub.commit(
            msgs, None, {"c.short": b"x", "c.long": b"y"}, state_ttl_ms={"c.short": 150}
        )
        assert await bus.get_state("short") == b"1"
        assert await bus.get_state("c.short") == b"x"
        await asyncio.sleep(0.35)
        assert await bus.get_state("short") is None
        assert await bus.get_state("c.short") is None
        assert await bus.get_state("kept") == b"2"
        assert await bus.get_state("c.long") == b"y"

    async def test_dropped_group_leaves_no_lag_behind(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        keep = await bus.subscribe(["t.drop"], "keep", "c")
        gone = await bus.subscribe(["t.drop"], "gone", "c")
        await bus.publish("t.drop", [trade(i) for i in range(5)])
        await gone.fetch(2, 1.0)  # two pending, three undelivered
        await drain(keep, 5)
        assert not await bus.idle()
        await gone.close()
        await bus.drop_group("t.drop", "gone")
        info = await bus.info()
        assert "gone" not in info["t.drop"].groups
        assert "keep" in info["t.drop"].groups
        assert await bus.idle()
        await bus.drop_group("t.drop", "never-existed")

    # --- hand-off (services grouped in one process) ----------------------------------

    def lose_next_commit_reply(self, bus: Bus) -> bool:
        """Make the next commit apply but lose its reply, so the bus retries it
        and finds it applied. False where no reply can be lost (in process)."""
        return False

    async def _hop(self, bus: Bus) -> tuple[Any, Any, list[Message]]:
        """An upstream consumer with a batch in hand, handing ``t.hop`` off to a
        downstream that also reads a topic of its own (``t.other``)."""
        up = await bus.subscribe(["t.up"], "up", "c")
        down = await bus.subscribe(["t.hop", "t.other"], "down", "c")
        up.hand_off("t.hop", down)
        await bus.publish("t.up", [trade(i) for i in range(3)])
        return up, down, await drain(up, 3, ack=False)

    async def test_a_hand_off_is_delivered_at_once_exactly_once(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        up, down, batch = await self._hop(bus)
        loop = asyncio.get_running_loop()
        waiting = asyncio.create_task(down.fetch(100, 5.0))
        await asyncio.sleep(0.1)  # the downstream is waiting in its fetch
        t0 = loop.time()
        await up.commit(batch, {"t.hop": [trade(10 + i) for i in range(3)]})
        got = await asyncio.wait_for(waiting, 6.0)
        waited = loop.time() - t0
        got += await drain(down, 3 - len(got), ack=False)
        assert waited < 1.0, f"the downstream waited {waited:.2f}s for a hand-off"
        assert [m.event.id for m in got] == [trade(10 + i).id for i in range(3)]
        assert all(m.deliveries == 1 and m.topic == "t.hop" for m in got)
        assert not await bus.idle()  # pending for the downstream's group until it acks
        await down.ack(got)
        assert await down.fetch(10, 0.3) == []
        assert await bus.idle()

    async def test_hand_offs_keep_the_order_of_every_producer(self, make_bus: MakeBus) -> None:
        bus = await make_bus()
        up, down, batch = await self._hop(bus)
        want: list[str] = []
        received: list[Message] = []

        async def consume() -> None:
            while len(received) < 43:
                got = await down.fetch(7, 2.0)
                assert got, "the downstream went without its hand-offs"
                received.extend(got)
                await down.ack(got)

        consumer = asyncio.create_task(consume())
        for n in range(20):
            await bus.publish("t.up", [trade(100 + n)])
            events = [trade(1000 + 2 * n), trade(1001 + 2 * n)]
            await up.commit(batch, {"t.hop": events})
            want += [e.id for e in events]
            if n % 7 == 3:
                stray = trade(5000 + n)  # another producer of the topic
                await bus.publish("t.hop", [stray])
                want.append(stray.id)
            batch = await up.fetch(10, 1.0)
        await asyncio.wait_for(consumer, 10.0)
        assert [m.event.id for m in received] == want
        await up.ack(batch)
        assert await bus.idle()

    async def test_a_downstream_crash_after_the_hand_off_redelivers(
        self, make_bus: MakeBus
    ) -> None:
        bus = await make_bus(claim_idle_ms=200)
        up, down, batch = await self._hop(bus)
        await up.commit(batch, {"t.hop": [trade(10 + i) for i in range(3)]})
        taken = await drain(down, 3, ack=False)
        assert len(taken) == 3
        await down.close()  # "crashes" before its ack
        restarted = await bus.subscribe(["t.hop", "t.other"], "down", "c")
        got = await drain(restarted, 3)
        assert [m.event.id for m in got] == [m.event.id for m in taken]
        assert all(m.deliveries >= 2 for m in got)
        assert await restarted.fetch(10, 0.3) == []
        assert await bus.idle()

    async def test_a_retried_commit_whose_hand_off_reply_was_lost_rereads(
        self, make_bus: MakeBus
    ) -> None:
        bus = await make_bus()
        up, down, batch = await self._hop(bus)
        lost = self.lose_next_commit_reply(bus)
        await up.commit(batch, {"t.hop": [trade(10 + i) for i in range(3)]})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        got = await drain(down, 3, ack=False)
        assert loop.time() - t0 < 2.0
        assert [m.event.id for m in got] == [trade(10 + i).id for i in range(3)]
        # read by the lost attempt, then again from the downstream's history
        assert all(m.deliveries == (2 if lost else 1) for m in got)
        await down.ack(got)
        assert await down.fetch(10, 0.3) == []
        assert await bus.idle()
