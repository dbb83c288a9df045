"""The order path in one process: signal, risk and execution over one bus.

``tradewind service signal,risk,execution`` runs this instead of three
processes. Towards Redis nothing changes: the same streams, consumer groups,
state keys, commits and exactly-once guarantees, so the other services (and
a restart in the five-process layout) cannot tell the difference. Between the
three, what one commits is handed to the next in the same commit script
(``RedisSubscription.hand_off``): signal's signals to risk, risk's orders to
execution, without the network hop and the wait of a read of their own.

One active replica: the process runs its three services only while it holds
the risk lease (a second replica waits as a standby, as risk does alone), and
the active one takes every signal partition through the partition leases, so
no other replica produces signals a hand-off would race with.
"""

from __future__ import annotations

import asyncio

from tradewind.bus.redis import RedisBus
from tradewind.services import ExecutionService, RiskService, Service, ServiceContext, SignalService
from tradewind.services.lease import PartitionLeases
from tradewind.topics import MARKET, ORDERS, SIGNALS

GROUP = "signal,risk,execution"
"""The one grouping ``tradewind service`` accepts."""
GROUP_USER = "orderpath"
"""The group's name for its Redis ACL user (``tradewind-orderpath``), its
password file (``redis_orderpath_password``) and its metrics label."""

PAPER_MARKET_LINGER_S = 0.01
"""The paper venue's market reads gather up to 10 ms of ticks per batch.

The three services share one event loop here, and each of their market
consumers woke for every tick or two: about 1,100 market batches a second at
1k ticks/s, each a read and a commit, that a signal or an order waited behind
(bench/README.md, the grouped path's per-hop trace). Paper matching is by
event time, so its fills stay the same, only up to this much later; it is
under ``execution.wall_grace_ms`` (50 ms), so a quiet-market landing does not
overtake them. Signal's reads stay immediate (the order path starts there),
and so do risk's, which share one subscription with the signals."""


class OrderPath(Service):
    name = GROUP_USER

    def __init__(self, ctx: ServiceContext, lease_ttl_ms: int) -> None:
        super().__init__(ctx)
        self.signal = SignalService(ctx, partitioned=True)
        self.risk = RiskService(ctx)
        self.execution = ExecutionService(ctx, market_linger_s=PAPER_MARKET_LINGER_S)
        self.members: tuple[Service, ...] = (self.signal, self.risk, self.execution)
        self.lease_ttl_ms = lease_ttl_ms
        self.partitions: PartitionLeases | None = None

    async def start(self) -> None:
        """Downstream first, so each consumer exists before what feeds it."""
        await self.execution.start()
        await self.risk.start()
        await self.signal.start()
        to_risk = self.risk.subscription(SIGNALS)
        self.signal.subscription(MARKET).hand_off(SIGNALS, to_risk)
        to_risk.hand_off(ORDERS, self.execution.subscription(ORDERS))
        bus = self.bus
        assert isinstance(bus, RedisBus), "the order path in one process runs on Redis"
        leases = PartitionLeases(
            bus, "signal", self.ctx.consumer, self.lease_ttl_ms, self.signal.set_partitions
        )
        self.partitions = leases
        self.spawn(leases.run(self._stopping), "partition-leases")
        await super().start()

    async def stop(self, timeout: float | None = None) -> None:
        self._stopping.set()
        await asyncio.gather(*(m.stop(timeout) for m in self.members))
        await super().stop(timeout)
        if self.partitions is not None:
            await self.partitions.release_all()

    def failed(self) -> BaseException | None:
        for m in self.members:
            err = m.failed()
            if err is not None:
                return err
        return super().failed()

    def ready(self) -> tuple[bool, str]:
        """Ready when all three are (signal: once it holds its partitions)."""
        ok, why = super().ready()
        if not ok:
            return ok, why
        for m in self.members:
            ok, why = m.ready()
            if not ok:
                return False, f"{m.name}: {why}"
        return True, "ok"
