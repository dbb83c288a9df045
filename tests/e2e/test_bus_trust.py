"""Trust on the bus, with the five services as processes over a Redis whose
users are generated from the topic table (default user off):

- the run over least-privilege users equals ``tradewind run`` (the ACL grants
  all the services need), and Redis logged no denial of theirs;
- every forged write of issue #15 is refused at the ACL (a user that does not
  produce the topic) or at the signature (an order risk did not sign, a fill
  for an order risk never approved) and nothing of it reaches the fills, the
  positions or risk's account.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

from tests.conftest import AclRedis
from tests.e2e.cluster import CONTROL_TOKEN, Cluster, observer_bus, start_consumers
from tests.e2e.test_distributed import _assert_same, reference  # noqa: F401
from tradewind import events as ev
from tradewind.bus.redis import RedisBus
from tradewind.config import load_settings
from tradewind.control import make_control
from tradewind.events import ControlReply, Fill, Liquidity, OrderRequest, OrderType, Side
from tradewind.topics import CONTROL, CONTROL_REPLIES, EXECUTIONS, ORDERS

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def _order(coid: str, qty: str) -> OrderRequest:
    return OrderRequest(
        id=f"forged:{coid}",
        ts_event=time.time_ns(),
        client_order_id=coid,
        signal_id=f"sig:{coid}",
        strategy="forged",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(qty),
    )


def _fill(coid: str) -> Fill:
    return Fill(
        id=f"forged-fill:{coid}",
        ts_event=time.time_ns(),
        client_order_id=coid,
        exchange_order_id="x-1",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        price=Decimal("100"),
        qty=Decimal("7"),
        fee=Decimal("1"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
    )


def _negative_fill(coid: str) -> Fill:
    return msgspec.structs.replace(
        _fill(coid), qty=Decimal("-7"), price=Decimal("-100"), fee=Decimal("-1000")
    )


async def _xadd_as(acl: AclRedis, user: str, stream: str, event: ev.Event) -> str:
    """Write ``event`` straight to ``stream`` with ``user``'s credentials; the
    error Redis answers (or "written")."""
    r = aioredis.Redis.from_url(acl.urls[user])
    try:
        await r.xadd(stream, {b"e": ev.encode(event)})
        return "written"
    except NoPermissionError as exc:
        return f"NOPERM {exc}"
    except ResponseError as exc:
        return f"error {exc}"
    finally:
        await r.aclose()


async def _command(c: Cluster, acl: AclRedis, command: str) -> ControlReply:
    """An operator command over the operator's own ACL user, as the CLI sends it."""
    from tradewind.cli.control import send

    settings = load_settings(
        bus={
            "kind": "redis",
            "redis_url": acl.base_url,
            "username": "tradewind-operator",
            "password": acl.passwords["operator"],
            "prefix": c.prefix,
        },
        control={"token": CONTROL_TOKEN},
    )
    reply = await send(settings, command, {}, 15)
    assert reply is not None, f"no reply to {command}"
    return reply


async def _until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.1)


async def test_least_privilege_run_matches_and_forged_writes_are_refused(
    tmp_path: Path,
    acl_redis: AclRedis,
    postgres_url: str,
    reference: dict[str, list[tuple[Any, ...]]],  # noqa: F811
) -> None:
    c = Cluster(tmp_path, "", acl_redis.prefix, postgres_url, 0, acl=acl_redis)
    admin = aioredis.Redis.from_url(acl_redis.admin_url)
    bus: RedisBus | None = None
    try:
        start_consumers(c)
        c.wait_live(c.start("ws"))
        bus = await observer_bus(c)
        await c.wait_done(bus, timeout=90)
        _assert_same(await c.rows(), reference)
        denied = await admin.acl_log()
        assert denied == [], f"the services' own users were refused: {denied[:3]}"

        halted = await _command(c, acl_redis, "halt")
        assert halted.ok and halted.payload["state"] == "halted", halted
        positions = halted.payload["positions"]

        orders, execs = bus.stream(ORDERS), bus.stream(EXECUTIONS)
        # Refused at the ACL: no user but risk's may write an order, none but
        # execution's a fill; none but the operator's and risk's a command.
        refused = {
            ("ws", "order while halted"): await _xadd_as(
                acl_redis, "ws", orders, _order("h1", "1")
            ),
            ("signal", "order qty -1"): await _xadd_as(
                acl_redis, "signal", orders, _order("m1", "-1")
            ),
            ("execution", "order"): await _xadd_as(
                acl_redis, "execution", orders, _order("e1", "1")
            ),
            ("ws", "fill unknown"): await _xadd_as(acl_redis, "ws", execs, _negative_fill("u1")),
            ("risk", "fill unknown"): await _xadd_as(
                acl_redis, "risk", execs, _negative_fill("u2")
            ),
            ("db_writer", "fill"): await _xadd_as(acl_redis, "db_writer", execs, _fill("u3")),
            ("signal", "resume"): await _xadd_as(
                acl_redis,
                "signal",
                bus.stream(CONTROL),
                make_control(CONTROL_TOKEN, "resume", {}, time.time_ns()),
            ),
        }
        assert all(v.startswith("NOPERM") for v in refused.values()), refused
        assert len(await admin.acl_log(count=100)) >= len(refused)

        # Past the ACL (written with risk's or execution's own users): refused
        # at the signature and by risk's order book, then dead-lettered.
        assert await _xadd_as(acl_redis, "risk", orders, _order("s1", "1")) == "written"
        signed_wrong = msgspec.structs.replace(_order("s2", "2"), signature="00" * 32)
        assert await _xadd_as(acl_redis, "risk", orders, signed_wrong) == "written"
        assert await _xadd_as(acl_redis, "execution", execs, _fill("u4")) == "written"

        async def dead() -> bool:
            return len(await bus.dead_letters()) >= 3

        await _until(dead, 60, "three dead letters")
        letters = await bus.dead_letters()
        errors = sorted(d.error for d in letters)
        assert sum("UnsignedOrder" in e for e in errors) == 2, errors
        assert sum("UnknownOrder" in e for e in errors) == 1, errors
        await _until(bus.idle, 30, "the bus settles")

        got = await c.rows()
        assert got["positions"] == reference["positions"], "a forged write moved a position"
        # The store records what execution reports: only the fill written with
        # execution's own credentials is there, refused by risk (see the docs).
        assert sorted(set(got["fills"]) - set(reference["fills"])) == [
            f for f in got["fills"] if f[1] == "u4"
        ]
        assert set(reference["fills"]) <= set(got["fills"])
        forged_ids = {"s1", "s2", "h1", "m1", "e1"}
        assert not [o for o in got["orders"] if o[1] in forged_ids - {"s1", "s2"}]
        status = await _command(c, acl_redis, "status")
        assert status.payload["state"] == "halted"
        assert status.payload["positions"] == positions, "a forged write moved a position"
        replies = [m.event for m in await bus.read_all(CONTROL_REPLIES, 1000)]
        assert len(replies) == 2, "a forged command reached risk"
    finally:
        await admin.aclose()
        if bus is not None:
            await bus.close()
        codes = c.stop_all()
        assert all(code == 0 for code in codes.values()), (codes, c.tail("risk-c1"))
