"""The outbox: each order's intent and state, durable on the bus.

Before an order is sent its record (the request, its deterministic client
order id, phase ``pending`` and a settle deadline) is written with
``put_state``; on the Redis bus that survives a SIGKILL of the process. A
record is never sent from twice: a redelivered order whose record exists is
settled by looking it up at the venue. Records live under
``exec:<exchange>:o:<client order id>``; each replica also keeps the list of
its own non-terminal orders (``exec:<exchange>:open:<owner>``, written only by
that replica, so replicas never race on it) and a liveness stamp, so that a
replacement replica can adopt the open orders of one that is gone.

A finished (``done``) record is written with a TTL of ``done_ttl_ms``
(``2 * max_deliveries * claim_idle_ms + 60 s``, the horizon of
docs/execution.md): an acked order message never comes back, and an unacked
one is redelivered within that horizon and still finds its record, so the
record is not needed after it and the keys no longer grow without bound.
"""

from __future__ import annotations

import time

import msgspec

from tradewind.bus import Bus
from tradewind.events import OrderRequest
from tradewind.execution.state import OrderState

PENDING = "pending"
"""Recorded and maybe sent; the venue's answer is not known."""
OPEN = "open"
DONE = "done"


class OrderRecord(msgspec.Struct, kw_only=True):
    request: OrderRequest
    state: OrderState
    phase: str = PENDING
    owner: str = ""
    sent_at_ms: int = 0
    deadline_ms: int = 0


_enc = msgspec.msgpack.Encoder(decimal_format="string")
_rec = msgspec.msgpack.Decoder(OrderRecord)
_ids = msgspec.msgpack.Decoder(list[str])


class Outbox:
    def __init__(self, bus: Bus, exchange: str, owner: str) -> None:
        self.bus = bus
        self.exchange = exchange
        self.owner = owner
        self.open: dict[str, OrderRecord] = {}
        self.done_ttl_ms = 2 * bus.max_deliveries * bus.claim_idle_ms + 60_000

    def key(self, coid: str) -> str:
        return f"exec:{self.exchange}:o:{coid}"

    def index_key(self, owner: str | None = None) -> str:
        return f"exec:{self.exchange}:open:{owner or self.owner}"

    def alive_key(self, owner: str) -> str:
        return f"exec:{self.exchange}:alive:{owner}"

    async def get(self, coid: str) -> OrderRecord | None:
        rec = self.open.get(coid)
        if rec is not None:
            return rec
        raw = await self.bus.get_state(self.key(coid))
        return None if raw is None else _rec.decode(raw)

    def track(self, rec: OrderRecord) -> None:
        coid = rec.state.client_order_id
        if rec.phase == DONE:
            self.open.pop(coid, None)
        else:
            self.open[coid] = rec

    def encode(self, rec: OrderRecord) -> dict[str, bytes]:
        """The state entries that make ``rec`` (and this replica's open list) durable."""
        self.track(rec)
        return {
            self.key(rec.state.client_order_id): _enc.encode(rec),
            self.index_key(): _enc.encode(sorted(self.open)),
        }

    def ttls(self, rec: OrderRecord) -> dict[str, int] | None:
        """TTLs for the entries of ``encode(rec)``: only a finished record expires."""
        if rec.phase != DONE:
            return None
        return {self.key(rec.state.client_order_id): self.done_ttl_ms}

    async def save(self, rec: OrderRecord) -> None:
        ttls = self.ttls(rec) or {}
        for k, v in self.encode(rec).items():
            await self.bus.put_state(k, v, ttl_ms=ttls.get(k))

    async def load_index(self, owner: str | None = None) -> list[str]:
        raw = await self.bus.get_state(self.index_key(owner))
        return [] if raw is None else _ids.decode(raw)

    async def heartbeat(self) -> None:
        await self.bus.put_state(self.alive_key(self.owner), str(time.time()).encode())

    async def last_seen(self, owner: str) -> float:
        raw = await self.bus.get_state(self.alive_key(owner))
        return 0.0 if raw is None else float(raw)
