"""One service in its own process, over Redis (``tradewind service NAME``).

The process serves ``/livez``, ``/readyz`` and ``/metrics`` on one port, logs
JSON, keeps its state in Redis (``durable_state``) so a restart resumes where
the last commit left off, and on SIGTERM/SIGINT lets in-flight batches finish
and exits 0 within ``drain_timeout_s``.

Replicas: ``db_writer`` and ``execution`` share work through their consumer
groups; ``signal`` replicas split the market partitions through leases;
``risk`` runs single-active: only the lease holder consumes, standbys wait for
the lease (account-wide limits need one serial decision stream); ``ws``
runs the same way per feed shard (a hot standby per shard: one publisher of
each symbol's ticks). A process that loses its lease stops its service and
waits as a standby again; a restart with the same consumer name takes its own
lease back at once (``services.lease``).

``tradewind service signal,risk,execution`` runs the order path in one
process (``runtime.order_path``): single-active on the risk lease like risk,
one set of probes and metrics (``service="orderpath"``) for the three.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from tradewind.bus import BusError
from tradewind.bus.base import describe
from tradewind.bus.redis import FencedError, RedisBus
from tradewind.config import Settings
from tradewind.exchanges.instruments import load_instruments
from tradewind.observability import metrics
from tradewind.observability.http import HealthServer
from tradewind.observability.process import LoopLagSampler
from tradewind.runtime.clock import make_clock
from tradewind.runtime.order_path import GROUP, GROUP_USER, OrderPath
from tradewind.runtime.upstream import UpstreamWatch
from tradewind.runtime.venues import live_venue
from tradewind.services import (
    DbWriterService,
    ExecutionService,
    RiskService,
    Service,
    ServiceContext,
    SignalService,
    WsService,
)
from tradewind.services.lease import PartitionLeases, SingleActive
from tradewind.services.ws import feed_shard
from tradewind.storage import Store, create_store
from tradewind.topics import EXECUTIONS, MARKET, ORDER_PATH, SIGNALS


class ListenError(RuntimeError):
    """The health/metrics port cannot be opened (in use, not permitted)."""


SERVICES = ("ws", "signal", "risk", "execution", "db_writer")
GROUPS = (GROUP,)
"""Services ``tradewind service`` runs together in one process (``OrderPath``)."""
log = structlog.get_logger("tradewind.process")


@dataclass
class _Process:
    name: str
    settings: Settings
    consumer: str
    lease_ttl_ms: int
    bus: RedisBus
    store: Store | None = None
    service: Service | None = None
    lease: SingleActive | None = None
    """The single-active lease of risk, or of ws's feed shard."""
    partitions: PartitionLeases | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    lag: dict[str, int] = field(default_factory=dict)
    upstream: UpstreamWatch | None = None
    standby: bool = False
    exit_code: int = 0

    @property
    def label(self) -> str:
        """The name in metrics and the Redis client name: the group's user name."""
        return GROUP_USER if self.name == GROUP else self.name

    @property
    def members(self) -> tuple[str, ...]:
        return ORDER_PATH if self.name == GROUP else (self.name,)

    # --- probes ------------------------------------------------------------------

    async def live(self) -> tuple[bool, dict[str, str]]:
        svc = self.service
        err = None if svc is None else svc.failed()
        if err is not None:
            return False, {"error": type(err).__name__}
        return True, {"service": self.name}

    async def ready(self) -> tuple[bool, dict[str, str]]:
        detail: dict[str, str] = {"service": self.name, "consumer": self.consumer}
        ok = True
        if not await self.bus.ping():
            ok, detail["bus"] = False, "unreachable"
        if self.store is not None and not await self.store.ping():
            ok, detail["store"] = False, "unreachable"
        if "risk" in self.members and self.settings.control.token is None:
            detail["control"] = "no token configured: operator commands are refused"
        if self.standby:
            # Ready: healthy and able to take over. A budget of minAvailable 1
            # over an active and a standby then lets a drain evict either one.
            held = "risk" if self.name == GROUP else self.name
            role = f"standby: another replica holds the {held} lease"
            return ok, {**detail, "role": role}
        svc = self.service
        if svc is None:
            return False, {**detail, "state": "starting"}
        svc_ok, why = svc.ready()
        if not svc_ok:
            ok, detail["state"] = False, why
        behind = sum(self.lag.values())
        limit = self.settings.bus.batch_size * 10
        detail["behind"] = str(behind)
        if behind > limit:
            ok, detail["caught_up"] = False, f"{behind} messages behind"
        if self.upstream is not None and self.upstream.stalled:
            ok, detail["input"] = False, "stalled: " + "; ".join(self.upstream.stalled.values())
        if isinstance(svc, WsService) and not svc.done.is_set():
            age = svc.feed_age()
            detail["feed_age_s"] = f"{age:.1f}"
            if age > self.settings.feed.stale_after_s:
                ok, detail["feed"] = False, "stale"
        if isinstance(svc, WsService) and svc.source is not None:
            if svc.lockstep_broken:
                ok, detail["lockstep"] = False, f"broken, not deterministic: {svc.lockstep_broken}"
            if svc.done.is_set():
                detail["replay"] = (
                    "finished" if svc.finished else "stopped" if svc.stopping else "failed"
                )
        return ok, detail

    # --- lifecycle -----------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    def context(self) -> ServiceContext:
        instruments = load_instruments()
        return ServiceContext(
            bus=self.bus,
            clock=make_clock(self.settings),
            settings=self.settings,
            instruments=instruments,
            store=self.store,
            consumer=self.consumer,
            durable_state=True,
            extras=live_venue(self.settings, instruments) if "execution" in self.members else {},
        )

    async def start(self) -> None:
        await self.bus.start()
        if self.name == "db_writer":
            self.store = create_store(self.settings)
            await self.store.start()
        ctx = self.context()
        if self.name in ("risk", "ws", GROUP):
            await self._start_single(ctx)
        elif self.name == "signal":
            svc = SignalService(ctx, partitioned=True)
            self.service = svc
            await svc.start()
            leases = PartitionLeases(
                self.bus, "signal", self.consumer, self.lease_ttl_ms, svc.set_partitions
            )
            self.partitions = leases
            self.spawn(leases.run(self.stop), "partition-leases")
        else:
            service: Service
            if self.name == "execution":
                service = ExecutionService(ctx)
            else:
                service = DbWriterService(ctx)
            self.service = service
            await service.start()
        self.spawn(self._sample_streams(), "stream-metrics")

    async def _start_single(self, ctx: ServiceContext) -> None:
        """Wait as a standby for the lease, then run the service fenced on it."""
        name = "ws" if self.name == "ws" else "risk"
        if name == "ws":
            name = f"ws:{feed_shard(self.settings)}"
        lease = SingleActive(self.bus, name, self.consumer, self.lease_ttl_ms)
        self.lease = lease
        self.standby = True
        log.info("standby: waiting for the lease", service=self.name, lease=lease.lease.key)
        if not await lease.acquire(self.stop):
            return
        self.standby = False
        self.bus.fence = lease.fence
        service: Service
        if self.name in ("risk", GROUP):
            # The previous holder may have died holding entries: they come first.
            keys = [k for t in (SIGNALS, EXECUTIONS, MARKET) for k, _p in self.bus.streams_of(t)]
            taken = await self.bus.take_over(keys, "risk", self.consumer)
            log.info("risk lease acquired", consumer=self.consumer, taken_over=taken)
            if self.name == GROUP:
                service = OrderPath(ctx, self.lease_ttl_ms)
            else:
                service = RiskService(ctx)
        else:
            # Resumes from the replay position the last holder committed.
            log.info("ws lease acquired", consumer=self.consumer, lease=lease.lease.key)
            feed = self.settings.feed
            lockstep = feed.source == "replay" and feed.speed == 0
            limit = feed.lockstep_timeout_s
            service = WsService(
                ctx, settle=functools.partial(self.bus.wait_idle, limit) if lockstep else None
            )
        self.service = service
        await service.start()
        self.spawn(lease.hold(self.stop), f"{self.name}-lease")

    async def _rejoin(self, fenced: str = "") -> None:
        """After losing the lease: stop the service (its commits are fenced off
        already), then wait as a standby and start afresh from committed state."""
        lease = self.lease
        assert lease is not None
        log.error(
            "lease lost; rejoining as a standby",
            service=self.name,
            reason=lease.reason or fenced or "unknown",
        )
        await lease.release()
        metrics.LEASE_LOSSES.labels(self.label).inc()
        svc, self.service = self.service, None
        self.bus.fence = {}
        if svc is not None:
            await svc.stop(timeout=self.settings.drain_timeout_s * 0.7)
        self.tasks = [t for t in self.tasks if not t.done()]
        await self._start_single(self.context())

    async def _sample_streams(self) -> None:
        """Lag of this service's groups (readiness, metrics) every couple of seconds."""
        mine = self.members
        self.upstream = UpstreamWatch(mine, self.settings.bus.stall_after_s)
        while not self.stop.is_set():
            try:
                info = await self.bus.info()
            except BusError:
                info = {}
            if info:
                self.upstream.update(info)
            lag: dict[str, int] = {}
            for topic, ti in info.items():
                if self.name == "db_writer":
                    metrics.STREAM_LENGTH.labels(topic).set(ti.length)
                    if topic == "dead_letter":
                        metrics.DEAD_LETTER_SIZE.set(ti.length)
                for group, gi in ti.groups.items():
                    if any(group == m or group.startswith(m + ".") for m in mine):
                        metrics.STREAM_LAG.labels(topic, group).set(gi.lag)
                        metrics.STREAM_PENDING.labels(topic, group).set(gi.pending)
                        lag[f"{topic}/{group}"] = gi.lag
            self.lag = lag
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 2.0)

    async def wait(self) -> None:
        """Until asked to stop, the service fails, or the risk lease is lost."""
        ready_gauge = metrics.SERVICE_UP.labels(self.label)
        while not self.stop.is_set():
            svc = self.service
            err = None if svc is None else svc.failed()
            if self.lease is not None and (
                self.lease.lost.is_set() or isinstance(err, FencedError)
            ):
                # A fenced publish ends ws's pump before the renewal notices.
                await self._rejoin(str(err) if err is not None else "")
                continue
            if err is not None:
                log.error("service failed", service=self.name, error=describe(err))
                self.exit_code = 1
                return
            ok, _ = await self.ready()
            ready_gauge.set(1 if ok else 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.5)

    async def shutdown(self) -> None:
        drain = self.settings.drain_timeout_s
        self.stop.set()
        if self.service is not None:
            await self.service.stop(timeout=drain * 0.7)
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.partitions is not None:
            await self.partitions.release_all()
        if self.lease is not None:
            await self.lease.release()
        if self.store is not None:
            await self.store.close()
        await self.bus.close()


def freeze_startup_heap() -> None:
    """Move what starting left alive out of the collector's sight.

    Imports, settings, instruments and the services' own objects live as long
    as the process, yet every full collection walked them all again: in the
    grouped order path one such pass took 55 ms, as long as that run's
    slowest traced tick-to-order (bench/README.md). Frozen after one last
    collection, they are never scanned; what the services allocate from now on
    is collected as before.
    """
    gc.collect()
    gc.freeze()


async def run_process(name: str, settings: Settings, consumer: str, lease_ttl_ms: int) -> int:
    bus = RedisBus.from_settings(settings)
    bus.name = f"{name}:{consumer}"
    proc = _Process(name, settings, consumer, lease_ttl_ms, bus)
    bus.name = f"{proc.label}:{consumer}"
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, proc.stop.set)
    http = HealthServer(settings.http.host, settings.http.port, proc.live, proc.ready)
    try:
        await http.start()
    except OSError as exc:
        await bus.close()
        h = settings.http
        raise ListenError(
            f"TRADEWIND_HTTP__PORT={h.port}: cannot listen on {h.host}:{h.port} "
            f"({exc.strerror or exc}); set another port"
        ) from None
    sampler = LoopLagSampler()
    sampler.start()
    log.info(
        "service starting",
        service=name,
        consumer=consumer,
        prefix=settings.bus.prefix,
        partitions=settings.bus.partitions,
        http_port=http.port,
    )
    t0 = time.monotonic()
    try:
        starting = asyncio.ensure_future(proc.start())
        stopped = asyncio.ensure_future(proc.stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            stopped.cancel()
            starting.result()
            freeze_startup_heap()
            log.info("service started", service=name, seconds=round(time.monotonic() - t0, 3))
            await proc.wait()
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
    except BusError as exc:
        log.error("bus error", service=name, error=str(exc))
        proc.exit_code = 2 if "PARTITIONS" in str(exc) else 1
    except (ConnectionError, OSError) as exc:
        log.error("dependency unreachable", service=name, error=str(exc))
        proc.exit_code = 1
    except Exception:
        log.exception("service crashed", service=name)
        proc.exit_code = 1
    finally:
        log.info("service stopping", service=name)
        try:
            await asyncio.wait_for(proc.shutdown(), settings.drain_timeout_s)
        except TimeoutError:
            log.error("drain timed out", service=name)
        await sampler.stop()
        await http.close()
    log.info("service stopped", service=name, exit_code=proc.exit_code)
    return proc.exit_code
