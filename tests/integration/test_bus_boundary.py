"""What a writer with access to Redis can put on a stream never reaches a
consumer unchecked: each forged entry of issue 15 (negative, NaN and infinite
prices, a fill of -7 at -100 with a fee of -1000, an order for -1, a 10 MB
trade id, garbage) is dead-lettered once however many groups read it, with
its head, size and hash only; the dead-letter stream is capped and what the
cap drops is counted; dead letters are logged at a bounded rate."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import structlog

from tests.bus_contract import fill, trade
from tradewind import events as ev
from tradewind.bus.redis import RedisBus, RedisSubscription
from tradewind.events import OrderRequest, OrderType, Side
from tradewind.observability import metrics
from tradewind.topics import DEAD_LETTER, EXECUTIONS, MARKET, ORDERS

pytestmark = pytest.mark.redis


@pytest.fixture
async def bus(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisBus]:
    b = RedisBus(redis_url, prefix=redis_prefix, partitions=1, dead_letter_maxlen=10)
    await b.start()
    yield b
    await b.close()


def _forge(event: Any, **changes: Any) -> bytes:
    """The event with fields no honest producer would send (struct init does not check)."""
    return ev.encode(msgspec.structs.replace(event, **changes))


def _order() -> OrderRequest:
    return OrderRequest(
        id="o1",
        ts_event=1,
        client_order_id="c1",
        signal_id="s1",
        strategy="x",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("0.01"),
    )


FORGED: dict[str, tuple[str, bytes]] = {
    "negative price": (MARKET, _forge(trade(1), price=-1.0)),
    "NaN price": (MARKET, _forge(trade(2), price=float("nan"))),
    "infinite price": (MARKET, _forge(trade(3), price=float("inf"))),
    "long trade id": (MARKET, _forge(trade(4), trade_id="x" * 1000)),
    "10 MB trade id": (MARKET, _forge(trade(5), trade_id="x" * 10_000_000)),
    "garbage": (MARKET, b"\xc1" * 100),
    "negative fill": (
        EXECUTIONS,
        _forge(fill(1), qty=Decimal(-7), price=Decimal(-100), fee=Decimal(-1000)),
    ),
    "NaN fill": (EXECUTIONS, _forge(fill(2), price=Decimal("NaN"))),
    "negative order": (ORDERS, _forge(_order(), quantity=Decimal(-1))),
}


async def _write_raw(bus: RedisBus, topic: str, payload: bytes) -> str:
    sid: Any = await bus.redis.xadd(bus.stream(topic), {"e": payload})
    return sid.decode()


async def _drain(sub: RedisSubscription) -> list[Any]:
    got: list[Any] = []
    for _ in range(5):
        msgs = await sub.fetch(100, 0.05)
        got += msgs
        if msgs:
            await sub.commit(msgs)
    return got


async def test_each_forged_entry_is_dead_lettered_once_with_its_head_size_and_hash(
    bus: RedisBus,
) -> None:
    topics = [MARKET, EXECUTIONS, ORDERS]
    subs = [await bus.subscribe(topics, f"g{i}", "c") for i in range(3)]
    ids = {name: await _write_raw(bus, topic, raw) for name, (topic, raw) in FORGED.items()}
    good = await _write_raw(bus, MARKET, ev.encode(trade(9)))
    bus.dead_letter_maxlen = 1000
    try:
        for sub in subs:
            got = await _drain(sub)
            assert [m.id for m in got] == [good], "a forged entry reached a consumer"
        info = await bus.info()
        for topic in topics:
            for group, gi in info[topic].groups.items():
                assert (gi.lag, gi.pending) == (0, 0), (topic, group)
        dead = {(d.topic, d.message_id): d for d in await bus.dead_letters()}
        where = {name: (FORGED[name][0], sid) for name, sid in ids.items()}
        assert sorted(dead) == sorted(where.values())
        for name, key in where.items():
            raw, d = FORGED[name][1], dead[key]
            assert d.size == len(raw) and d.sha256 == hashlib.sha256(raw).hexdigest()
            assert d.payload == raw[:4096]
        big = dead[where["10 MB trade id"]]
        assert "exceeds max_message_bytes" in big.error
        fill_dead = dead[where["negative fill"]]
        assert "fill.price must be a finite positive number" in fill_dead.error
        assert len(await bus.redis.xrange(bus.stream(DEAD_LETTER))) == len(FORGED)
    finally:
        for sub in subs:
            await sub.close()


async def test_the_dead_letter_stream_is_capped_and_what_the_cap_drops_is_counted(
    bus: RedisBus,
) -> None:
    group = f"cap{uuid.uuid4().hex[:6]}"
    sub = await bus.subscribe([MARKET], group, "c")
    dropped = metrics.DEAD_LETTERS_DROPPED._value.get()
    for i in range(15):
        await _write_raw(bus, MARKET, _forge(trade(i), qty=-1.0))
    try:
        with structlog.testing.capture_logs() as logs:
            assert await _drain(sub) == []
        assert await bus.cap_dead_letters() == 5  # db_writer's trim pass
        assert await bus.redis.xlen(bus.stream(DEAD_LETTER)) == 10
        assert metrics.DEAD_LETTERS_DROPPED._value.get() - dropped == 5
        lines = [e for e in logs if e["event"] == "message dead-lettered"]
        assert len(lines) == 1, "one line per group, topic and interval"
        assert "Expected `float` >= 0.0" in lines[0]["error"]
    finally:
        await sub.close()


def test_forged_values_fail_decoding_and_honest_ones_pass() -> None:
    for _topic, raw in FORGED.values():
        with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
            ev.decode(raw)
    rebate = msgspec.structs.replace(fill(3), fee=Decimal("-0.5"))
    for honest in (trade(1), fill(1), _order(), rebate):
        assert ev.decode(ev.encode(honest)) == honest
