"""Leases in Redis: who may consume what, when several replicas run.

A lease is a key holding its owner's token with a TTL: taken with ``SET NX
PX``, renewed and released by Lua check-and-set scripts so that only the owner
can extend or drop it. A holder that stops renewing (crashed, paused, cut
off) loses it after ``ttl_ms``; every commit of the holder is fenced on the
lease key (``RedisSubscription.set_fence``), so even a holder that does not yet
know it lost the lease cannot commit over its successor.

- ``SingleActive``: one holder at a time (risk). Account-level limits
  (position, exposure, order rate, loss) need one serial stream of decisions
  over the whole account: two deciders could each approve an order that only
  together breaches a limit.
- ``PartitionLeases``: the signal replicas split the market partitions. Each
  replica heartbeats into a membership set, aims for ``ceil(partitions /
  live replicas)`` leases, takes free ones and gives back extras, so a dead
  replica's partitions move to the survivors within about ``ttl_ms`` plus one
  renewal interval, and a new replica gets its share the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from tradewind.bus.base import BusError
from tradewind.bus.redis import RedisBus, lease_loss_reason

log = structlog.get_logger("tradewind.lease")

_ACQUIRE = """
-- KEYS[1]: the lease. ARGV: token, ttl (ms), the owner's prefix ("name:").
-- 1: taken (free, or held by an earlier incarnation of the same owner, whose
-- token is replaced so its commits are fenced off); 0: held by another owner.
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] or string.sub(v, 1, #ARGV[3]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RENEW = """
-- 1 when renewed; otherwise the current holder's token, or false once expired.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return v
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_token(owner: str) -> bytes:
    """``owner:random``: the random part changes with every incarnation (the
    fencing token); the owner part lets a restart take its own lease back."""
    return f"{owner}:{uuid.uuid4().hex[:12]}".encode()


class Lease:
    def __init__(self, bus: RedisBus, name: str, token: bytes, ttl_ms: int) -> None:
        self.bus = bus
        self.key = bus.k("lease", name)
        self.token = token
        self.ttl_ms = ttl_ms
        self.lost_reason = ""

    async def acquire(self) -> bool:
        """Take the lease when free or held by this owner's previous incarnation
        (a restart after SIGKILL does not wait out its own TTL)."""
        prefix = self.token.rsplit(b":", 1)[0] + b":"
        ok = await self.bus.retry(
            lambda: self.bus.redis.eval(_ACQUIRE, 1, self.key, self.token, self.ttl_ms, prefix),
            "lease",
        )
        return bool(ok == 1)

    async def renew(self) -> bool:
        """False once lost; ``lost_reason`` then says whether it expired or who holds it."""
        res: Any = await self.bus.retry(
            lambda: self.bus.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms),
            "lease",
        )
        if res == 1:
            return True
        self.lost_reason = lease_loss_reason(self.key, None if res is None else bytes(res))
        return False

    async def release(self) -> None:
        with contextlib.suppress(BusError):
            await self.bus.retry(
                lambda: self.bus.redis.eval(_RELEASE, 1, self.key, self.token),
                "lease",
            )

    async def holder(self) -> bytes | None:
        value: Any = await self.bus.retry(lambda: self.bus.redis.get(self.key), "lease")
        return None if value is None else bytes(value)


class SingleActive:
    """Wait for one lease, then keep it; ``lost`` is set the moment it is gone.

    Standbys poll every tenth of the TTL, so a dead holder's lease passes on
    at most ``1.1 * ttl_ms`` after its last renewal (at once after a release)."""

    def __init__(self, bus: RedisBus, name: str, owner: str, ttl_ms: int) -> None:
        self.lease = Lease(bus, name, new_token(owner), ttl_ms)
        self.lost = asyncio.Event()
        self.held = False

    @property
    def reason(self) -> str:
        return self.lease.lost_reason

    @property
    def fence(self) -> dict[str, bytes]:
        return {self.lease.key: self.lease.token}

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Until acquired (True) or ``stop`` is set (False); standbys wait here."""
        interval = self.lease.ttl_ms / 10_000.0
        while not stop.is_set():
            try:
                if await self.lease.acquire():
                    self.held = True
                    return True
            except BusError as exc:
                log.warning("lease acquire failed", key=self.lease.key, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew every third of the TTL; give up once a renewal fails or the last
        good one is older than the TTL (the lease may have passed on by then)."""
        ttl = self.lease.ttl_ms / 1000.0
        last_ok = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ttl / 3)
            if stop.is_set():
                break
            try:
                ok = await asyncio.wait_for(self.lease.renew(), ttl / 3)
            except (BusError, TimeoutError) as exc:
                ok = time.monotonic() - last_ok < ttl * 2 / 3
                if not ok:
                    self.lease.lost_reason = (
                        f"lease {self.lease.key} could not be renewed within its TTL "
                        f"({type(exc).__name__}); it may have passed on"
                    )
            else:
                if ok:
                    last_ok = time.monotonic()
            if not ok:
                log.error("lease lost", key=self.lease.key, reason=self.reason)
                self.held = False
                self.lost.set()
                return

    async def release(self) -> None:
        if self.held:
            self.held = False
            await self.lease.release()


OnChange = Callable[[frozenset[int], Mapping[int, tuple[str, bytes]]], Awaitable[None]]


class PartitionLeases:
    def __init__(
        self,
        bus: RedisBus,
        group: str,
        owner: str,
        ttl_ms: int,
        on_change: OnChange,
    ) -> None:
        self.bus = bus
        self.group = group
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.on_change = on_change
        self.partitions = bus.partitions
        self.token = new_token(owner)
        self.members_key = bus.k("members", group)
        self.owned: dict[int, Lease] = {}
        self.changes = 0

    def _lease(self, p: int) -> Lease:
        return Lease(self.bus, f"{self.group}:{p}", self.token, self.ttl_ms)

    def tokens(self) -> dict[int, tuple[str, bytes]]:
        return {p: (lease.key, lease.token) for p, lease in self.owned.items()}

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.ttl_ms / 3000.0
        try:
            await self._forget_earlier_self()
        except BusError as exc:
            log.warning("partition membership cleanup failed", error=str(exc))
        while not stop.is_set():
            try:
                await self.step()
            except BusError as exc:
                log.warning("partition lease step failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _live_members(self) -> int:
        now = int(time.time() * 1000)
        r = self.bus.redis
        token = self.token

        async def beat() -> Any:
            async with r.pipeline(transaction=True) as pipe:
                pipe.zadd(self.members_key, {token: now})
                pipe.zremrangebyscore(self.members_key, "-inf", now - self.ttl_ms)
                pipe.zcard(self.members_key)
                return await pipe.execute()

        replies = await self.bus.retry(beat, "lease")
        return max(1, int(replies[-1]))

    async def _forget_earlier_self(self) -> None:
        """Drop this owner's earlier incarnation from the membership set, so a
        restarted replica aims at its full share at once instead of half."""
        mine = f"{self.owner}:".encode()
        members: Any = await self.bus.retry(
            lambda: self.bus.redis.zrange(self.members_key, 0, -1), "lease"
        )
        stale = [m for m in members if bytes(m).startswith(mine) and bytes(m) != self.token]
        if stale:
            await self.bus.retry(lambda: self.bus.redis.zrem(self.members_key, *stale), "lease")

    async def step(self) -> None:
        before = frozenset(self.owned)
        for p, lease in list(self.owned.items()):
            if not await lease.renew():
                log.warning(
                    "partition lease lost", group=self.group, partition=p, reason=lease.lost_reason
                )
                del self.owned[p]
        target = math.ceil(self.partitions / await self._live_members())
        if len(self.owned) > target:
            extra = sorted(self.owned)[target:]
            released = [self.owned.pop(p) for p in extra]
            # Stop reading them (and fence their commits) before letting go.
            await self._changed(before)
            before = frozenset(self.owned)
            for lease in released:
                await lease.release()
        elif len(self.owned) < target:
            start = int(self.token.hex(), 16) % self.partitions
            for i in range(self.partitions):
                if len(self.owned) >= target:
                    break
                p = (start + i) % self.partitions
                if p in self.owned:
                    continue
                lease = self._lease(p)
                if await lease.acquire():
                    self.owned[p] = lease
        if frozenset(self.owned) != before:
            await self._changed(before)

    async def _changed(self, before: frozenset[int]) -> None:
        self.changes += 1
        owned = frozenset(self.owned)
        log.info(
            "partitions assigned",
            group=self.group,
            owned=sorted(owned),
            gained=sorted(owned - before),
            lost=sorted(before - owned),
        )
        await self.on_change(owned, self.tokens())

    async def release_all(self) -> None:
        with contextlib.suppress(BusError):
            await self.bus.retry(lambda: self.bus.redis.zrem(self.members_key, self.token), "lease")
        leases, self.owned = list(self.owned.values()), {}
        for lease in leases:
            await lease.release()
