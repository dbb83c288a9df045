"""The Redis Streams bus.

Layout: a topic is the stream ``{prefix}:{topic}``; the partitioned ``market``
topic is ``{prefix}:market:{p}`` for ``p`` in ``range(partitions)``. Each entry
holds one field, ``e``, the event's msgpack. Consumer groups are created from
id 0 (with MKSTREAM), so a new group starts at the oldest retained entry.
Consumer state lives at ``{prefix}:state:{key}``; every stream key is listed in
the set ``{prefix}:streams`` so ``info()`` needs no SCAN.

Why it is shaped like this:

- Python time, not Redis time, bounds throughput, so every operation is one
  round trip per *batch*: XREADGROUP over all streams of a subscription with
  COUNT and BLOCK, and publishes and commits as one script call.
- ``commit`` (XACKs + XADDs + state SETs) is one server-side script
  (``redis_lua.COMMIT``, built by ``redis_tx.Tx``), so a crash leaves all or
  nothing. A connection lost during the call leaves the outcome unknown; each
  transaction therefore also writes a short-lived token key, and the script
  does nothing when its token already exists, so a retried transaction is
  applied exactly once even across reconnects. The script touches several
  keys: run a single Redis (or a replicated primary), not Redis Cluster.
- A subscription may be *fenced* by lease keys: the script checks them before
  writing anything and applies nothing unless they still hold this process's
  tokens, so a replica that lost its lease (paused, partitioned) can never
  commit over its successor.
- Delivery counts come from the PEL (XPENDING): a message read again from a
  consumer's own history or claimed from a dead consumer (XAUTOCLAIM, after
  ``claim_idle_ms``) carries its true count, and ``fail`` dead-letters it after
  ``max_deliveries``.
- Market streams are capped by approximate MAXLEN on XADD. Every stream is
  also trimmed by ``trim_consumed`` (XTRIM MINID, in one server-side script)
  below the oldest entry any of its groups still needs, so order flow is
  bounded without dropping anything pending or undelivered.
- State may carry a TTL (``SET … PX``), also inside a commit's MULTI/EXEC.
- A lost connection is retried with backoff; a fetch that failed re-reads the
  consumer's own pending entries first, so a reply lost in flight is not
  stranded until the idle claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from tradewind import events as ev
from tradewind.bus.base import (
    Bus,
    BusError,
    GroupInfo,
    Message,
    NotSettled,
    Subscription,
    TopicInfo,
    dead_letter,
    describe,
)
from tradewind.bus.redis_lua import COMMIT, TRIM_CONSUMED
from tradewind.bus.redis_tx import Tx
from tradewind.bus.resp import RespConnection, retryable_reply
from tradewind.events import Event
from tradewind.observability import metrics
from tradewind.observability.logging import LogThrottle
from tradewind.topics import DEAD_LETTER, PARTITIONED, TRIMMABLE, partition_of

if TYPE_CHECKING:
    from tradewind.config import Settings

log = structlog.get_logger("tradewind.bus.redis")
T = TypeVar("T")

FIELD = b"e"
_COMMIT_SHA = hashlib.sha1(COMMIT.encode()).hexdigest().encode()
_MAX_BLOCK_MS = 5_000
_PUBLISH_CHUNK = 10_000
_DEAD_GUARD_MS = 7 * 24 * 3600 * 1000
"""How long a bad entry's dead-letter guard lives: longer than any group can
plausibly take to reach the entry (it would be dead-lettered twice after)."""
_DEAD_LOG = LogThrottle(10.0)
_TRANSIENT: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def retryable(exc: BaseException) -> bool:
    """A lost connection, a timeout, or a reply that says "not now" (LOADING,
    BUSY, READONLY after a failover, ...): the same call may succeed later."""
    return isinstance(exc, _TRANSIENT) or retryable_reply(exc)


class FencedError(BusError):
    """A fenced commit found a lease held by someone else; nothing was applied."""


def with_credentials(url: str, username: str | None, password: str) -> str:
    """``url`` authenticating as ``username`` (an ACL user) with ``password``,
    replacing credentials it held; the result is as secret as the password."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = urllib.parse.quote(username or "", safe="")
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def lease_loss_reason(key: str, holder: bytes | None) -> str:
    """Why a lease is no longer ours: nobody renewed it in time, or another
    owner took it (tokens are ``owner:random``, see ``services.lease``)."""
    if holder is None:
        return f"lease {key} expired (not renewed within its TTL; nobody holds it now)"
    owner = holder.rsplit(b":", 1)[0].decode(errors="replace")
    return f"lease {key} is held by {owner}"


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _payload(fields: list[bytes] | Mapping[bytes, bytes]) -> bytes | None:
    """The event field of an entry: a flat ``[field, value, …]`` list as the lean
    connection reads it, or a mapping as redis-py parses it (XAUTOCLAIM)."""
    if isinstance(fields, list):
        for i in range(0, len(fields) - 1, 2):
            if fields[i] == FIELD:
                return fields[i + 1]
        return None
    return fields.get(FIELD)


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


class RedisBus(Bus):
    def __init__(
        self,
        url: str,
        prefix: str = "tw",
        partitions: int = 8,
        market_maxlen: int = 1_000_000,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
        name: str = "tradewind",
        retry_max_s: float = 30.0,
        op_timeout_s: float = 10.0,
        max_connections: int = 64,
        max_message_bytes: int = 65_536,
        dead_letter_maxlen: int = 10_000,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.partitions = partitions
        self.market_maxlen = market_maxlen
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.name = name
        self.retry_max_s = retry_max_s
        self.op_timeout_s = op_timeout_s
        self.max_connections = max_connections
        self.max_message_bytes = max_message_bytes
        self.dead_letter_maxlen = dead_letter_maxlen
        self._tx_ttl_ms = int(max(60.0, 2 * retry_max_s) * 1000)
        self._tx_prefix = uuid.uuid4().hex[:16] + ":"
        self._tx_seq = itertools.count()
        """Token keys: unique per bus instance, then a counter (a uuid4 per
        commit cost a getrandom syscall on every batch)."""
        self._client: aioredis.Redis | None = None
        self._trim: Any = None
        self._fast: RespConnection | None = None
        """Commits go over a lean pipelined connection (``bus/resp.py``)."""
        self._known: set[str] = set()
        self.fence: dict[str, bytes] = {}
        """Lease keys every new subscription's commits, and every publish, are
        fenced on (a single-active service: risk, ws)."""
        self._reconnects = metrics.BUS_RECONNECTS.labels(name)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisBus:
        b = settings.bus
        url = b.redis_url.get_secret_value()
        if b.password is not None:
            url = with_credentials(url, b.username, b.password.get_secret_value())
        return cls(
            url,
            prefix=b.prefix,
            partitions=b.partitions,
            market_maxlen=b.market_maxlen,
            max_deliveries=b.max_deliveries,
            claim_idle_ms=b.claim_idle_ms,
            name=settings.service_name,
            max_message_bytes=b.max_message_bytes,
            dead_letter_maxlen=b.dead_letter_maxlen,
        )

    # --- connection ----------------------------------------------------------

    @property
    def redis(self) -> aioredis.Redis:
        if self._client is None:
            raise BusError("redis bus not started")
        return self._client

    async def start(self) -> None:
        if self._client is None:
            # redis-py's own retries would resend non-idempotent XADDs; ours do not.
            # Maintenance notifications are a Redis Enterprise/Cloud feature: with
            # the default "auto" every new connection asks for them and Redis 7
            # answers with an error that redis-py logs, once per connection.
            self._client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self.op_timeout_s,
                socket_connect_timeout=min(5.0, self.op_timeout_s),
                retry=Retry(NoBackoff(), 0),
                max_connections=self.max_connections,
                client_name=self.name,
                health_check_interval=30,
                maint_notifications_config=MaintNotificationsConfig(enabled=False),
                # No CLIENT SETINFO: Redis < 7.2 lacks it, and the ACL users
                # (``tradewind.acl``) name only the commands the bus needs.
                driver_info=None,
            )
            self._trim = self._client.register_script(TRIM_CONSUMED)
            self._fast = self.connection()
        # Loaded now, so the first commit is one round trip too (a Redis that
        # restarted later answers NOSCRIPT and the call loads it again).
        await self.retry(lambda: self.redis.script_load(COMMIT), "start")
        await self.retry(self._check_partitions, "start")

    async def _check_partitions(self) -> None:
        """Producers and consumers must hash symbols alike, or per-symbol order breaks."""
        key = self.k("meta", "partitions")
        await self.redis.set(key, str(self.partitions), nx=True)
        stored = await self.redis.get(key)
        if stored is not None and int(stored) != self.partitions:
            raise BusError(
                f"TRADEWIND_BUS__PARTITIONS is {self.partitions} but prefix {self.prefix!r} "
                f"was created with {int(stored)} partitions"
            )

    def connection(self) -> RespConnection:
        """A lean connection for a hot path (commits, a subscription's reads)."""
        return RespConnection(
            self.url,
            timeout_s=self.op_timeout_s,
            connect_timeout_s=min(5.0, self.op_timeout_s),
            client_name=self.name,
        )

    async def close(self) -> None:
        if self._fast is not None:
            fast, self._fast = self._fast, None
            await fast.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), self.op_timeout_s))
        except Exception as exc:
            if retryable(exc) or isinstance(exc, BusError):
                return False
            raise

    async def retry(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``op`` until it succeeds; only for operations safe to repeat."""
        delay = 0.05
        deadline = time.monotonic() + self.retry_max_s
        while True:
            try:
                return await op()
            except Exception as exc:
                if not retryable(exc):
                    raise
                self._reconnects.inc()
                if time.monotonic() + delay > deadline:
                    raise BusError(f"redis {what} failed: {describe(exc)}") from None
                log.warning(
                    "redis unavailable; retrying", op=what, error=describe(exc), delay=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # --- keys ------------------------------------------------------------------

    def k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def stream(self, topic: str, partition: int = 0) -> str:
        if topic in PARTITIONED:
            return self.k(topic, str(partition))
        return self.k(topic)

    def streams_of(self, topic: str) -> list[tuple[str, int]]:
        if topic in PARTITIONED:
            return [(self.stream(topic, p), p) for p in range(self.partitions)]
        return [(self.k(topic), 0)]

    def state_key(self, key: str) -> str:
        return self.k("state", key)

    # --- transactions ------------------------------------------------------------

    def add_events(self, tx: Tx, topic: str, events: Iterable[Event]) -> None:
        """Queue XADDs routed by partition."""
        partitioned = topic in PARTITIONED
        maxlen = self.market_maxlen if topic in TRIMMABLE else 0
        parts = self.partitions
        encode = ev.encode
        plain = self.k(topic)
        for e in events:
            key = (
                self.stream(topic, partition_of(e.symbol, parts))  # type: ignore[union-attr]
                if partitioned
                else plain
            )
            tx.xadd(key, encode(e), maxlen)

    async def transact(
        self, tx: Tx, fence: Mapping[str, bytes] | None = None
    ) -> tuple[int, list[Any]]:
        """Apply ``tx`` atomically, exactly once, even across reconnects: one round trip.

        Returns the script's status (1 applied now, 0 applied by an earlier
        attempt whose reply was lost) and the replies of its reads, in the order
        ``Tx.read_after`` asked for them (each ``None`` unless the status is 1).
        Raises ``FencedError`` (nothing applied) when a fence key holds
        another value, and ``BusError`` when Redis stays unreachable past
        ``retry_max_s``.
        """
        if tx.empty:
            return 1, []
        reg = self.k("streams")
        for key in sorted(tx.written - self._known):
            tx.sadd(reg, key)
        tx.keys[0] = self.k("tx", f"{self._tx_prefix}{next(self._tx_seq):x}")
        args = tx.args(self._tx_ttl_ms, fence)
        keys = tx.keys
        conn = self._fast
        if conn is None:
            raise BusError("redis bus not started")
        delay = 0.05
        deadline = time.monotonic() + self.retry_max_s
        while True:
            try:
                res: Any = await conn.evalsha(COMMIT, _COMMIT_SHA, keys, args)
                break
            except Exception as exc:
                if not retryable(exc):
                    raise
                # Outcome unknown; the token makes the retry apply it at most once.
                self._reconnects.inc()
                if time.monotonic() + delay > deadline:
                    raise BusError(f"redis commit failed: {describe(exc)}") from None
                log.warning("redis commit interrupted; retrying", error=describe(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        status, reads = (int(res[0]), res[1:]) if isinstance(res, list) else (int(res), [])
        if status < 0:
            raise FencedError(await self._fence_reason(fence or {}))
        self._known.update(tx.written)
        return status, reads

    async def _fence_reason(self, fence: Mapping[str, bytes]) -> str:
        """Which lease fenced a commit off, and whether it expired or passed on."""
        for key, token in fence.items():
            try:
                value: Any = await asyncio.wait_for(self.redis.get(key), self.op_timeout_s)
            except _TRANSIENT:
                break
            if value is None or bytes(value) != token:
                return lease_loss_reason(key, None if value is None else bytes(value))
        return "a lease fencing this commit is no longer ours"

    # --- Bus API -----------------------------------------------------------------

    async def publish(self, topic: str, events: Sequence[Event]) -> None:
        for i in range(0, len(events), _PUBLISH_CHUNK):
            tx = Tx()
            self.add_events(tx, topic, events[i : i + _PUBLISH_CHUNK])
            await self.transact(tx, self.fence or None)

    async def publish_with_state(
        self, topic: str, events: Sequence[Event], state: Mapping[str, bytes]
    ) -> None:
        """Publish and store state in one transaction (a producer's progress)."""

        tx = Tx()
        self.add_events(tx, topic, events)
        for k, v in state.items():
            tx.set(self.state_key(k), v)
        await self.transact(tx, self.fence or None)

    async def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        consumer: str,
        partitions: Sequence[int] | None = None,
    ) -> RedisSubscription:
        sub = RedisSubscription(self, topics, group, consumer, partitions)
        await self.retry(sub.setup, "subscribe")
        if self.fence:
            sub.set_fence(self.fence)
        return sub

    async def get_state(self, key: str) -> bytes | None:
        value: Any = await self.retry(lambda: self.redis.get(self.state_key(key)), "get_state")
        return None if value is None else bytes(value)

    async def put_state(self, key: str, value: bytes, ttl_ms: int | None = None) -> None:
        await self.retry(lambda: self.redis.set(self.state_key(key), value, px=ttl_ms), "put_state")

    async def trim_consumed(
        self, topic: str, *, keep_ms: int = 0, required_groups: Sequence[str] = ()
    ) -> int:
        """XTRIM MINID per stream of ``topic``, computed and applied in one script.

        Atomic on the server, so no ack, delivery or new group can slip in
        between reading the groups and trimming; safe to repeat after a lost
        reply (a second run finds nothing more to trim below the same floor).
        """
        if self._trim is None:
            raise BusError("redis bus not started")
        script = self._trim
        args = [int(keep_ms), *required_groups]
        total = 0
        for key, _p in self.streams_of(topic):
            n: Any = await self.retry(
                lambda key=key: script(keys=[key], args=args),  # type: ignore[misc]
                "trim_consumed",
            )
            total += int(n)
        return total

    async def cap_dead_letters(self) -> int:
        """Cut the dead-letter stream to ``dead_letter_maxlen`` (exact), counting
        what went in ``tradewind_dead_letters_dropped_total``. Run by db_writer's
        trim pass: only its ACL user may XTRIM."""
        key = self.stream(DEAD_LETTER)
        dropped: Any = await self.retry(
            lambda: self.redis.xtrim(key, maxlen=self.dead_letter_maxlen, approximate=False),
            "dead_letter",
        )
        if dropped:
            metrics.DEAD_LETTERS_DROPPED.inc(int(dropped))
        return int(dropped)

    async def drop_group(self, topic: str, group: str) -> None:
        for key, _p in self.streams_of(topic):
            await self.retry(
                lambda key=key: self.redis.xgroup_destroy(key, group),  # type: ignore[misc]
                "drop_group",
            )

    async def read_all(self, topic: str, count: int = 10_000) -> list[Message]:
        out: list[tuple[tuple[int, int], Message]] = []
        for key, p in self.streams_of(topic):
            entries: Any = await self.retry(
                lambda key=key: self.redis.xrange(key, count=count),  # type: ignore[misc]
                "read_all",
            )
            for sid, fields in entries:
                sid_s = _s(sid)
                try:
                    event = ev.decode(fields[FIELD])
                except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
                    continue
                out.append((_id_key(sid_s), Message(topic, sid_s, event, 1, p)))
        out.sort(key=lambda x: x[0])
        return [m for _, m in out[:count]]

    async def info(self) -> dict[str, TopicInfo]:
        return await self.retry(self._info, "info")

    async def _info(self) -> dict[str, TopicInfo]:
        keys = sorted(_s(k) for k in await self.redis.smembers(self.k("streams")))
        if not keys:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xlen(key)
                pipe.xinfo_groups(key)
            replies = await pipe.execute(raise_on_error=False)
        out: dict[str, TopicInfo] = {}
        for i, key in enumerate(keys):
            length, groups = replies[2 * i], replies[2 * i + 1]
            if isinstance(groups, Exception) or isinstance(length, Exception):
                continue
            topic = self._topic_of(key)
            ti = out.setdefault(topic, TopicInfo(length=0))
            ti.length += int(length)
            for g in groups:
                name = _s(g["name"])
                lag = g.get("lag")
                if lag is None:
                    last = _s(g["last-delivered-id"])
                    try:
                        behind: Any = await self.redis.xrange(key, min=f"({last}", count=10_000)
                    except ResponseError:
                        behind = ()  # NOPERM: an ACL user reads only what it consumes
                    lag = len(behind)
                gi = ti.groups.setdefault(name, GroupInfo(lag=0, pending=0))
                gi.lag += int(lag)
                gi.pending += int(g["pending"])
        return out

    async def wait_idle(
        self, timeout: float = 60.0, poll: float = 0.005, report_every_s: float = 5.0
    ) -> None:
        """Until every group has consumed and acked everything.

        A replay producer that waits for this between batches runs the services
        in lockstep, as the embedded replay does, so a distributed replay is a
        function of its input however the processes are scheduled or restarted.
        While it waits it logs, every ``report_every_s``, which groups are
        behind; past ``timeout`` (0: never) it raises ``NotSettled``, because a
        producer that went on regardless would void that promise unseen.
        """
        start = time.monotonic()
        report_at = start + report_every_s
        while behind := await self.behind():
            now = time.monotonic()
            groups = ", ".join(f"{g} (lag {lag}, pending {p})" for g, (lag, p) in behind.items())
            if timeout and now - start > timeout:
                raise NotSettled(f"lockstep: {groups} did not catch up within {timeout:g}s", behind)
            if now >= report_at:
                log.warning(
                    "lockstep replay waiting for consumers",
                    behind=groups,
                    waited_s=round(now - start, 1),
                    limit_s=timeout,
                )
                report_at = now + report_every_s
            await asyncio.sleep(poll)

    def _topic_of(self, key: str) -> str:
        rest = key[len(self.prefix) + 1 :]
        head, _, tail = rest.rpartition(":")
        if head in PARTITIONED and tail.isdigit():
            return head
        return rest

    async def take_over(self, keys: Iterable[str], group: str, consumer: str) -> int:
        """Claim every pending entry of ``group`` on ``keys`` for ``consumer``.

        Only for a consumer that holds the lease on those streams: the previous
        holder can no longer commit (its commits are fenced), so its unacked
        entries must be processed next, before anything newer, to keep order.
        """
        claimed = 0
        for key in keys:
            start = "-"
            while True:
                try:
                    rows: Any = await self.retry(
                        lambda key=key, start=start: self.redis.xpending_range(  # type: ignore[misc]
                            key, group, start, "+", 1000
                        ),
                        "take_over",
                    )
                except ResponseError as exc:
                    if "NOGROUP" in str(exc):
                        break  # the group does not exist yet: nothing is pending
                    raise
                ids = [_s(r["message_id"]) for r in rows if _s(r["consumer"]) != consumer]
                if ids:
                    # JUSTID: ownership moves without counting a delivery.
                    await self.retry(
                        lambda key=key, ids=ids: self.redis.xclaim(  # type: ignore[misc]
                            key, group, consumer, 0, ids, justid=True
                        ),
                        "take_over",
                    )
                    claimed += len(ids)
                if len(rows) < 1000:
                    break
                start = "(" + _s(rows[-1]["message_id"])
        return claimed


class RedisSubscription(Subscription):
    def __init__(
        self,
        bus: RedisBus,
        topics: Sequence[str],
        group: str,
        consumer: str,
        partitions: Sequence[int] | None,
    ) -> None:
        super().__init__(topics, group, consumer)
        self._bus = bus
        self._all: list[tuple[str, str, int]] = [
            (key, t, p) for t in self.topics for key, p in bus.streams_of(t)
        ]
        self._where: dict[str, tuple[str, int]] = {key: (t, p) for key, t, p in self._all}
        self._active = self._select(partitions)
        self._history: dict[str, str] = dict.fromkeys(self._active, "0")
        self._claim_cursor: dict[str, str] = {}
        self._next_claim = 0.0
        self._claim_every = min(max(bus.claim_idle_ms / 2000.0, 0.01), 5.0)
        self._fence: dict[str, bytes] = {}
        self._partition_fence: dict[int, tuple[str, bytes]] | None = None
        self._errors = 0
        self._closed = False
        self._conn = bus.connection()
        """Blocking reads get a connection of their own: a BLOCK holds it."""
        self._count = 0
        self._ready: list[Message] = []
        """Read but not yet returned, in order: what a read brought beyond
        ``max_count``, what the last commit read ahead, or what an upstream
        consumer's commit handed off."""
        self._hand_offs: list[tuple[str, RedisSubscription]] = []
        """(topic, downstream): this consumer's commits that publish to the
        topic read the downstream's next entries of it (``hand_off``)."""
        self._fed: set[str] = set()
        """Streams only hand-offs read new entries from (see ``hand_off``)."""
        self._fed_lock = asyncio.Lock()
        """Held around every read of the fed streams and its reply's processing
        (a hand-off's commit, a history read, an idle poll), so replies arriving
        on two connections are taken in the order Redis served them."""
        self._fed_full = False
        """A hand-off read filled its count: more may wait undelivered."""
        self._wake = asyncio.Event()
        self._reading: asyncio.Future[list[Message]] | None = None
        """A fed consumer's own blocking read of its other streams, left running
        while a hand-off woke the fetch."""

    def _select(self, partitions: Sequence[int] | None) -> list[str]:
        owned = None if partitions is None else set(partitions)
        return [
            key for key, t, p in self._all if t not in PARTITIONED or owned is None or p in owned
        ]

    async def setup(self) -> None:
        async with self._bus.redis.pipeline(transaction=False) as pipe:
            for key, _t, _p in self._all:
                pipe.xgroup_create(key, self.group, "0", mkstream=True)
            pipe.sadd(self._bus.k("streams"), *self._where)
            replies = await pipe.execute(raise_on_error=False)
        for r in replies:
            if isinstance(r, ResponseError) and "BUSYGROUP" not in str(r):
                raise r
            if isinstance(r, _TRANSIENT):
                raise r
        self._bus._known.update(self._where)

    def set_fence(self, fence: Mapping[str, bytes]) -> None:
        """Commit only while every key in ``fence`` holds its value (lease tokens)."""
        self._fence = dict(fence)

    def set_partition_fence(self, tokens: Mapping[int, tuple[str, bytes]] | None) -> None:
        """Commit acks of a partitioned topic only while this consumer holds the
        lease of each partition involved (``partition -> (lease key, token)``)."""
        self._partition_fence = None if tokens is None else dict(tokens)

    @property
    def active_streams(self) -> list[str]:
        return list(self._active)

    # --- hand-off ------------------------------------------------------------------

    def hand_off(self, topic: str, downstream: Subscription) -> None:
        """Every commit of this consumer that publishes to ``topic`` also reads,
        in the same script and only when it applied, ``downstream``'s next
        entries of ``topic`` (XREADGROUP ``>`` for its group and consumer) and
        puts them in its ready queue, waking its fetch.

        So the downstream's group, pending entries, acks and exactly-once are
        the Redis ones; only its own network hop and wait disappear. A stream
        must have one path that reads ``>`` for a consumer, or replies on two
        connections could reorder its entries: the downstream stops reading
        ``topic`` itself, and takes it only from hand-offs, from its history
        (after a start, an error, or a retried commit whose reply was lost)
        and, when idle for a fetch timeout, from one poll of its own. Entries
        another producer wrote to the topic come with the next of these, in
        order.
        """
        if not isinstance(downstream, RedisSubscription) or downstream._bus is not self._bus:
            raise ValueError("a hand-off needs a consumer of the same Redis bus")
        if topic not in downstream.topics:
            raise ValueError(f"hand-off of {topic!r} to a consumer of {downstream.topics}")
        self._hand_offs.append((topic, downstream))
        downstream._fed.update(k for k, t, _p in downstream._all if t == topic)
        # Whatever it read of the topic on its own so far comes again from its
        # history, in order, before any hand-off.
        downstream._reread()

    def _own(self) -> list[str]:
        """The streams this consumer reads new entries from itself."""
        fed = self._fed
        return [k for k in self._active if k not in fed] if fed else self._active

    def _fed_keys(self) -> list[str]:
        return [k for k in self._active if k in self._fed]

    async def _handed(self, reply: Any, count: int) -> None:
        """Take a hand-off's entries (under ``_fed_lock``, held by the upstream).

        A stream being read from history gets nothing here: the entries are
        pending for this consumer already and its history read, which comes
        after this hand-off on the server, returns them in order."""
        if not reply or self._closed:
            return
        if any(len(entries) >= count for _key, entries in reply):
            self._fed_full = True
        keep = [(k, e) for k, e in reply if _s(k) not in self._history]
        if keep:
            got = await self._messages(keep, fresh=True)
            self._ready += got
            self._wake.set()
            if got:
                metrics.BUS_HAND_OFFS.labels(self.group, got[0].topic).inc(len(got))

    async def _poll_fed(self, max_count: int) -> None:
        """Read new entries of the fed streams once (idle, or after a full hand-off)."""
        keys = self._fed_keys()
        conn = self._bus._fast
        if not keys or conn is None:
            return
        async with self._fed_lock:
            if self._history or self._closed:
                return
            head = ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", max_count)
            reply = await conn.call(*head, "STREAMS", *keys, *([">"] * len(keys)))
            if reply:
                self._fed_full = any(len(entries) >= max_count for _k, entries in reply)
                self._ready += await self._messages(reply, fresh=True)

    def _read_done(self, fut: asyncio.Future[list[Message]]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved here; ``_wait_fed`` raises it again
        self._wake.set()

    async def _drop_read(self) -> None:
        """Wait for the outstanding read and drop what it brought: the history
        read that follows on the same connection returns it again, in order."""
        reading, self._reading = self._reading, None
        if reading is not None:
            with contextlib.suppress(Exception):
                await reading

    async def _wait_fed(self, max_count: int, timeout: float) -> None:
        """Until a hand-off, the consumer's own read of its other streams, or
        ``timeout``; then, if nothing came, poll the fed streams once."""
        if self._fed_full:
            self._fed_full = False
            await self._poll_fed(max_count)
            if self._ready:
                return
        own = self._own()
        if own and self._reading is None:
            task = asyncio.ensure_future(self._read_new(max_count, timeout, own))
            task.add_done_callback(self._read_done)
            self._reading = task
        reading = self._reading
        if not self._ready and not (reading is not None and reading.done()):
            # A read that finished while the handler ran has set the wake
            # already; clearing it then would wait out the timeout instead.
            # ``asyncio.timeout``, not ``wait_for``: no task of its own, so a
            # hand-off resumes this fetch in one turn of the loop, not three.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        reading = self._reading
        if reading is not None and reading.done():
            self._reading = None
            got = reading.result()
            if self._history:
                return  # a re-read meanwhile: the history read returns these
            self._ready += got
        if not self._ready and self._reading is None and not self._history:
            await self._poll_fed(max_count)

    # --- fetch ---------------------------------------------------------------------

    async def fetch(self, max_count: int = 1024, timeout: float = 1.0) -> list[Message]:
        if self._closed or not self._active:
            if not self._closed:
                await asyncio.sleep(timeout)
            return []
        self._count = max_count
        try:
            if self._history:
                if self._fed:
                    await self._drop_read()
                    async with self._fed_lock:
                        got = await self._read_history(max_count)
                else:
                    got = await self._read_history(max_count)
                if got:
                    self._errors = 0
                    return got
            if time.monotonic() >= self._next_claim:
                self._next_claim = time.monotonic() + self._claim_every
                got = await self._claim(max_count)
                if got:
                    self._errors = 0
                    return got
            if not self._ready:
                if self._fed:
                    await self._wait_fed(max_count, timeout)
                else:
                    got = await self._read_new(max_count, timeout, self._active)
                    if not self._history:  # else a re-read (a new hand-off) returns it
                        self._ready += got
                self._errors = 0
            got = self._ready[:max_count]
            del self._ready[:max_count]
            return got
        except Exception as exc:
            if not retryable(exc):
                raise
            if self._closed:
                return []  # closing dropped the connection under a blocked read
            # A reply lost in flight leaves entries in our PEL: read them first.
            self._reread()
            self._errors += 1
            self._bus._reconnects.inc()
            delay = min(0.05 * 2 ** min(self._errors, 6), 2.0)
            log.warning("redis fetch failed; retrying", group=self.group, error=describe(exc))
            await asyncio.sleep(delay)
            return []

    def _per_stream(self, max_count: int, n: int) -> int:
        return max(1, max_count // max(n, 1))

    async def _xreadgroup(
        self, keys: Sequence[str], ids: Sequence[str], count: int, block: int
    ) -> Any:
        head: tuple[str | int, ...] = ("XREADGROUP", "GROUP", self.group, self.consumer)
        head += ("COUNT", count)
        if block > 0:
            head += ("BLOCK", block)
        return await self._conn.call(*head, "STREAMS", *keys, *ids, timeout_s=block / 1000)

    async def _read_new(self, max_count: int, timeout: float, active: list[str]) -> list[Message]:
        """Up to ``max_count`` from *each* stream: one hot stream (a busy symbol's
        partition) then fills a whole batch instead of its 1/n share; what is
        beyond ``max_count`` waits in ``_ready`` for the next fetch, in order."""
        block = min(int(timeout * 1000), _MAX_BLOCK_MS)
        reply = await self._xreadgroup(active, [">"] * len(active), max_count, block)
        if not reply:
            return []
        return await self._messages(reply, fresh=True)

    async def _read_history(self, max_count: int) -> list[Message]:
        keys = [k for k in self._history if k in self._where]
        count = self._per_stream(max_count, len(keys))
        reply = await self._xreadgroup(keys, [self._history[k] for k in keys], count, 0)
        seen: set[str] = set()
        for key, entries in reply or []:
            key_s = _s(key)
            if entries:
                seen.add(key_s)
                self._history[key_s] = _s(entries[-1][0])
        for k in keys:
            if k not in seen:
                del self._history[k]
        if not reply:
            return []
        return await self._messages(reply, fresh=False)

    async def _claim(self, max_count: int) -> list[Message]:
        bus = self._bus
        active = self._active
        per = self._per_stream(max_count, len(active))
        async with bus.redis.pipeline(transaction=False) as pipe:
            for key in active:
                pipe.xautoclaim(
                    key,
                    self.group,
                    self.consumer,
                    bus.claim_idle_ms,
                    self._claim_cursor.get(key, "0-0"),
                    count=per,
                )
            replies: Any = await pipe.execute()
        grouped: list[tuple[bytes | str, list[Any]]] = []
        for key, (cursor, entries, *_deleted) in zip(active, replies, strict=True):
            self._claim_cursor[key] = _s(cursor)
            if entries:
                grouped.append((key, entries))
        if not grouped:
            return []
        return await self._messages(grouped, fresh=False)

    async def _messages(
        self, reply: Iterable[tuple[bytes | str, list[Any]] | list[Any]], fresh: bool
    ) -> list[Message]:
        out: list[Message] = []
        gone: list[tuple[str, str]] = []
        bad: list[tuple[str, int, str, bytes, str]] = []
        decode = ev.decode
        where = self._where
        limit = self._bus.max_message_bytes
        ranges: list[tuple[str, str, str, int]] = []
        for key_b, entries in reply:
            key = _s(key_b)
            topic, part = where[key]
            first = len(out)
            for sid_b, fields in entries:
                sid = _s(sid_b)
                if not fields:
                    gone.append((key, sid))
                    continue
                payload = _payload(fields) or b""
                if len(payload) > limit:
                    why = f"message of {len(payload)} bytes exceeds max_message_bytes ({limit})"
                    bad.append((topic, part, sid, payload, why))
                    continue
                try:
                    event = decode(payload)
                except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                    bad.append((topic, part, sid, payload, f"invalid message: {exc}"))
                    continue
                out.append(Message(topic, sid, event, 1, part))
            if not fresh and len(out) > first:
                ranges.append((key, out[first].id, out[-1].id, len(out) - first))
        if ranges:
            await self._delivery_counts(out, ranges)
        if gone:
            await self._drop_trimmed(gone)
        for topic, part, sid, raw, why in bad:
            metrics.DEAD_LETTERS.labels(self._bus.name, topic).inc()
            await self._dead_letter(topic, part, sid, 1, raw, why, once=True)
        return out

    async def _delivery_counts(
        self, out: list[Message], ranges: list[tuple[str, str, str, int]]
    ) -> None:
        async with self._bus.redis.pipeline(transaction=False) as pipe:
            for key, lo, hi, n in ranges:
                pipe.xpending_range(key, self.group, lo, hi, n, self.consumer)
            replies = await pipe.execute()
        counts: dict[str, int] = {}
        for rows in replies:
            for row in rows:
                counts[_s(row["message_id"])] = int(row["times_delivered"])
        for m in out:
            if m.id in counts:
                m.deliveries = counts[m.id]

    async def _drop_trimmed(self, gone: list[tuple[str, str]]) -> None:
        """Entries trimmed while pending cannot be processed; ack them so they stop
        coming back. Only market's MAXLEN cap can do that (``trim_consumed``
        never trims a pending entry)."""
        log.error("pending entries were trimmed before processing", group=self.group, n=len(gone))
        async with self._bus.redis.pipeline(transaction=False) as pipe:
            for key, sid in gone:
                pipe.xack(key, self.group, sid)
            await pipe.execute()

    # --- commit --------------------------------------------------------------------------

    async def commit(
        self,
        acks: Sequence[Message],
        publish: Mapping[str, Sequence[Event]] | None = None,
        state: Mapping[str, bytes] | None = None,
        state_ttl_ms: Mapping[str, int] | None = None,
    ) -> None:
        if not acks and not state and not (publish and any(publish.values())):
            return
        bus = self._bus
        tx = Tx()
        if publish:
            for topic, events in publish.items():
                if events:
                    bus.add_events(tx, topic, events)
        if state:
            ttl = state_ttl_ms or {}
            for k, v in state.items():
                tx.set(bus.state_key(k), v, ttl.get(k))
        if acks:
            by_key: dict[str, list[str]] = {}
            for m in acks:
                by_key.setdefault(bus.stream(m.topic, m.partition), []).append(m.id)
            for key, ids in by_key.items():
                tx.xack(key, self.group, ids)
        ahead = -1
        if (
            self.read_ahead
            and self._count
            and self._reading is None
            and not (self._ready or self._history or self._closed)
        ):
            ahead = tx.read_after(self.group, self.consumer, self._count, self._own())
        hand: list[tuple[RedisSubscription, int, int]] = []
        if self._hand_offs and publish:
            for topic, down in self._hand_offs:
                if publish.get(topic) and not down._closed:
                    count = max(down._count, 1024)
                    at = tx.read_after(down.group, down.consumer, count, down._fed_keys())
                    if at >= 0:
                        hand.append((down, at, count))
        if not hand:
            await self._apply(tx, acks, ahead)
            return
        locks = sorted({id(d._fed_lock): d._fed_lock for d, _a, _c in hand}.items())
        for _i, lock in locks:
            await lock.acquire()
        try:
            reads = await self._apply(tx, acks, ahead, [d for d, _a, _c in hand])
            for down, at, count in hand:
                if at < len(reads):  # not after a retry that found it applied
                    await down._handed(reads[at], count)
        finally:
            for _i, lock in locks:
                lock.release()

    async def _apply(
        self,
        tx: Tx,
        acks: Sequence[Message],
        ahead: int,
        downstream: Sequence[RedisSubscription] = (),
    ) -> list[Any]:
        """Run the commit; take what it read ahead; the reads' replies if applied now."""
        try:
            status, reads = await self._bus.transact(tx, self._fence_for(acks))
        except BusError:
            # Nothing was applied: the acks are still ours to redeliver, in order
            # (and a hand-off's downstream reads its history, to be sure).
            self._reread()
            for down in downstream:
                down._reread()
            raise
        if status == 0:
            # An earlier attempt was applied and read entries whose reply was
            # lost: they are pending for us, and for a hand-off's downstream.
            self._reread()
            for down in downstream:
                down._reread()
            return []
        if ahead >= 0 and reads[ahead]:
            got = await self._messages(reads[ahead], fresh=True)
            if not self._history:  # else a re-read meanwhile returns them
                self._ready += got
            if self._closed:
                await self._release()
        return reads

    async def _release(self) -> None:
        """Hand what was read ahead back to the group: mark it idle, so the next
        claim of any consumer takes it at once instead of after ``claim_idle_ms``
        (this consumer's own restart reads it from its history anyway)."""
        ready, self._ready = self._ready, []
        bus = self._bus
        by_key: dict[str, list[bytes | str | int | memoryview]] = {}
        for m in ready:
            by_key.setdefault(bus.stream(m.topic, m.partition), []).append(m.id)
        try:
            for key, ids in by_key.items():
                await bus.redis.xclaim(
                    key, self.group, self.consumer, 0, ids, idle=bus.claim_idle_ms, justid=True
                )
        except Exception as exc:
            if not retryable(exc):
                raise
            # Once: a stopping service must not wait out an outage. They stay
            # pending and are claimed after ``claim_idle_ms`` as usual.
            log.warning(
                "could not release entries read ahead", group=self.group, error=describe(exc)
            )

    def _reread(self) -> None:
        """Read this consumer's pending entries again, from the oldest, before
        anything new: what was delivered but not processed comes back in order."""
        self._history = dict.fromkeys(self._active, "0")
        self._ready = []
        self._wake.set()

    def _fence_for(self, acks: Sequence[Message]) -> dict[str, bytes] | None:
        tokens = self._partition_fence
        if tokens is None:
            return self._fence or None
        fence = dict(self._fence)
        for p in {m.partition for m in acks if m.topic in PARTITIONED}:
            held = tokens.get(p)
            if held is None:
                raise FencedError(f"partition {p} is not assigned to {self.consumer}")
            fence[held[0]] = held[1]
        return fence or None

    async def fail(self, message: Message, error: str) -> bool:
        if message.deliveries >= self._bus.max_deliveries:
            await self._dead_letter(
                message.topic,
                message.partition,
                message.id,
                message.deliveries,
                ev.encode(message.event),
                error,
                once=False,
            )
            return True
        key = self._bus.stream(message.topic, message.partition)
        # Mark it idle long enough to be claimed again at once; JUSTID keeps the count.
        await self._bus.retry(
            lambda: self._bus.redis.xclaim(
                key,
                self.group,
                self.consumer,
                0,
                [message.id],
                idle=self._bus.claim_idle_ms,
                justid=True,
            ),
            "fail",
        )
        self._claim_cursor.pop(key, None)
        self._next_claim = 0.0
        return False

    async def _dead_letter(
        self,
        topic: str,
        partition: int,
        sid: str,
        deliveries: int,
        payload: bytes,
        error: str,
        *,
        once: bool,
    ) -> None:
        """Ack the entry and record it in the dead-letter stream, capped there.

        ``once``: the entry itself is bad (unreadable, too large, invalid), so
        every group finds it; only the first adds the dead letter. A message a
        handler failed on is dead-lettered per group: each failed on its own.
        """
        bus = self._bus
        key = bus.stream(topic, partition)
        dead = dead_letter(
            topic,
            self.group,
            sid,
            deliveries,
            payload,
            error,
            f"{topic}:{sid}" if once else f"{topic}:{self.group}:{sid}",
        )
        tx = Tx()
        if once:
            guard = bus.k("dead", key, sid)
            tx.xadd_once(guard, _DEAD_GUARD_MS, bus.stream(DEAD_LETTER), ev.encode(dead))
        else:
            bus.add_events(tx, DEAD_LETTER, [dead])
        tx.xack(key, self.group, [sid])
        await bus.transact(tx)
        suppressed = _DEAD_LOG.allow((self.group, topic))
        if suppressed is not None:
            log.error(
                "message dead-lettered",
                group=self.group,
                topic=topic,
                id=sid,
                size=len(payload),
                sha256=dead.sha256,
                error=dead.error[:300],
                not_logged_since_last=suppressed,
            )

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._ready:
            await self._release()
        await self._conn.close()
        if self._reading is not None:
            self._reading.cancel()

    async def assign(self, partitions: Sequence[int]) -> None:
        """Read only ``partitions`` of partitioned topics from now on.

        Newly gained streams first have their pending entries taken over and read
        from the start of this consumer's history, so they are processed in
        order before anything newer.
        """
        new = self._select(partitions)
        if self._ready:
            # Read ahead from streams that may no longer be ours: read our
            # pending entries again instead, in order, from what we keep.
            self._ready = []
            self._history = dict.fromkeys(new, "0")
        gained = [k for k in new if k not in self._active]
        if gained:
            await self._bus.take_over(gained, self.group, self.consumer)
            for k in gained:
                self._history[k] = "0"
        for k in list(self._history):
            if k not in new:
                del self._history[k]
        self._active = new
