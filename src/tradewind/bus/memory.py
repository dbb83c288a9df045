"""The in-process bus: Redis Streams semantics without a server.

Each topic is a bounded log of messages with a cursor per group. Publishing
waits while the slowest group is ``capacity`` messages behind (backpressure
instead of unbounded memory); entries every group has read are dropped, and
pending ones are held by their group until acknowledged.

The hot path is per batch, not per message: a message object is made once at
publish and shared by every group; a delivered batch shares one delivery
record, so fetching and acking cost a C-level dict update and pop each.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

from tradewind import events as ev
from tradewind.bus.base import Bus, GroupInfo, Message, Subscription, TopicInfo, dead_letter
from tradewind.events import Event
from tradewind.topics import DEAD_LETTER

_NEVER = float("inf")


@dataclass(slots=True)
class _Group:
    cursor: int
    pending: dict[Message, list[object]] = field(default_factory=dict)
    """message → [consumer, delivered_at], the list shared by one delivered batch."""
    claim_at: float = _NEVER
    """No pending message can be claimed before this time, so most fetches skip the scan."""
    wakers: set[asyncio.Event] = field(default_factory=set)
    counted: bool = True
    """Whether ``wait_idle`` waits for this group (see ``MemoryBus.not_waited_for``)."""


class _Stream:
    __slots__ = ("base", "counted", "entries", "groups", "name", "space")

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: list[Message] = []
        self.base = 0
        self.groups: dict[str, _Group] = {}
        self.counted = 0
        """Groups ``wait_idle`` waits for."""
        self.space = asyncio.Event()
        self.space.set()

    @property
    def next_seq(self) -> int:
        return self.base + len(self.entries)

    def backlog(self) -> int:
        if not self.groups:
            return 0
        return self.next_seq - min(g.cursor for g in self.groups.values())

    def trim(self, retain: int) -> None:
        floor = min((g.cursor for g in self.groups.values()), default=self.next_seq - retain)
        drop = min(floor - self.base, len(self.entries))
        # Deleting a list prefix is O(n), so compact in large steps.
        if drop > 0 and (drop >= 4096 or drop * 2 >= len(self.entries)):
            del self.entries[:drop]
            self.base += drop


class MemoryBus(Bus):
    def __init__(
        self,
        capacity: int = 65_536,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
        retain: int = 100_000,
    ) -> None:
        self.capacity = capacity
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.retain = retain
        self._streams: dict[str, _Stream] = {}
        self._state: dict[str, bytes] = {}
        self._expires: dict[str, float] = {}
        """key → monotonic deadline, for state stored with a TTL; checked on read."""
        self._sweep_at = 0.0
        self._outstanding = 0
        """Messages some counted group has not yet acknowledged (undelivered or pending)."""
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.not_waited_for: frozenset[str] = frozenset()
        """Groups ``wait_idle`` does not wait for: consumers whose work feeds nothing
        back into the bus (db_writer), so a lockstep replay can go on while they
        catch up; ``capacity`` still bounds how far behind they fall, and
        ``idle`` still waits for them. Set before they subscribe."""

    async def wait_idle(self) -> None:
        """Until every group has consumed and acknowledged everything.

        A replay that waits for this between batches makes the whole run a
        function of its input: fills reach risk before the next market batch,
        however the services happen to be scheduled.
        """
        while self._outstanding:
            await self._quiet.wait()

    def _settle(self, delta: int) -> None:
        self._outstanding += delta
        if self._outstanding:
            self._quiet.clear()
        else:
            self._quiet.set()

    def _stream(self, topic: str) -> _Stream:
        s = self._streams.get(topic)
        if s is None:
            s = self._streams[topic] = _Stream(topic)
        return s

    async def publish(self, topic: str, events: Sequence[Event]) -> None:
        if not events:
            return
        s = self._stream(topic)
        while s.backlog() >= self.capacity:
            s.space.clear()
            await s.space.wait()
        self._append(s, events)

    def _append(self, s: _Stream, events: Sequence[Event]) -> None:
        topic = s.name
        seq = s.next_seq
        s.entries.extend([Message(topic, str(i), e) for i, e in enumerate(events, seq)])
        if s.counted:
            self._settle(len(events) * s.counted)
        if not s.groups and len(s.entries) > self.retain:
            s.trim(self.retain)
        for g in s.groups.values():
            for w in g.wakers:
                w.set()

    async def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        consumer: str,
        partitions: Sequence[int] | None = None,
    ) -> Subscription:
        return MemorySubscription(self, topics, group, consumer)

    async def drop_group(self, topic: str, group: str) -> None:
        s = self._streams.get(topic)
        g = None if s is None else s.groups.pop(group, None)
        if s is None or g is None:
            return
        for w in g.wakers:
            w.set()
        if g.counted:
            s.counted -= 1
            self._settle(-(s.next_seq - g.cursor) - len(g.pending))
        if s.backlog() < self.capacity:
            s.space.set()

    async def get_state(self, key: str) -> bytes | None:
        deadline = self._expires.get(key)
        if deadline is not None and time.monotonic() >= deadline:
            # Lazily, as Redis does on access: no timer per key.
            del self._expires[key]
            self._state.pop(key, None)
        return self._state.get(key)

    async def put_state(self, key: str, value: bytes, ttl_ms: int | None = None) -> None:
        self._store_state({key: value}, None if ttl_ms is None else {key: ttl_ms})

    def _store_state(self, state: Mapping[str, bytes], ttl_ms: Mapping[str, int] | None) -> None:
        """Set keys like Redis SET [PX]: a write without a TTL clears an earlier one."""
        self._state.update(state)
        if self._expires:
            for k in state:
                self._expires.pop(k, None)
        if ttl_ms:
            now = time.monotonic()
            for k, ms in ttl_ms.items():
                if k in state:
                    self._expires[k] = now + ms / 1000.0
            if now >= self._sweep_at:
                # Keys never read again must go too, or memory grows with every
                # finished order; at most one sweep a second, amortised over writes.
                self._sweep_at = now + 1.0
                for k in [k for k, d in self._expires.items() if d <= now]:
                    del self._expires[k]
                    self._state.pop(k, None)

    async def trim_consumed(
        self, topic: str, *, keep_ms: int = 0, required_groups: Sequence[str] = ()
    ) -> int:
        """Drop the log prefix every group has read.

        Unlike a Redis stream, this log never holds what is pending: a delivered
        message lives on in its group's pending table until acknowledged (and is
        re-delivered from there), so cutting at the slowest group's cursor loses
        nothing. Publishing already compacts in large steps; this does it now.
        Entries carry no timestamps here, so ``keep_ms`` keeps nothing extra.
        """
        s = self._streams.get(topic)
        if s is None or not s.groups or any(g not in s.groups for g in required_groups):
            return 0
        drop = min(min(g.cursor for g in s.groups.values()) - s.base, len(s.entries))
        if drop <= 0:
            return 0
        del s.entries[:drop]
        s.base += drop
        return drop

    async def read_all(self, topic: str, count: int = 10_000) -> list[Message]:
        s = self._streams.get(topic)
        return [] if s is None else s.entries[:count]

    async def info(self) -> dict[str, TopicInfo]:
        return {
            name: TopicInfo(
                length=len(s.entries),
                groups={
                    gname: GroupInfo(lag=s.next_seq - g.cursor, pending=len(g.pending))
                    for gname, g in s.groups.items()
                },
            )
            for name, s in self._streams.items()
        }


class MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, topics: Sequence[str], group: str, consumer: str) -> None:
        super().__init__(topics, group, consumer)
        self._bus = bus
        self._wake = asyncio.Event()
        self._groups: list[tuple[_Stream, _Group]] = []
        for t in self.topics:
            s = bus._stream(t)
            g = s.groups.get(group)
            if g is None:
                counted = group not in bus.not_waited_for
                g = s.groups[group] = _Group(cursor=s.base, counted=counted)
                if counted:
                    s.counted += 1
                    bus._settle(len(s.entries))
            g.wakers.add(self._wake)
            self._groups.append((s, g))
        self._by_topic = {s.name: g for s, g in self._groups}
        self._wake.set()
        self._closed = False

    async def fetch(self, max_count: int = 1024, timeout: float = 1.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            self._wake.clear()
            out = self._take(max_count)
            if out or self._closed:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return self._take(max_count)

    def _claim(self, g: _Group, now: float, idle: float, room: int, out: list[Message]) -> None:
        """Re-deliver messages idle for ``idle`` seconds (their consumer died)."""
        claimed: list[Message] = []
        earliest = _NEVER
        for m, delivery in g.pending.items():
            since = delivery[1]
            assert isinstance(since, float)
            if room > 0 and now - since >= idle:
                claimed.append(m)
                room -= 1
            elif since < earliest:
                earliest = since
        if claimed:
            delivery = [self.consumer, now]
            for m in claimed:
                del g.pending[m]
                again = Message(m.topic, m.id, m.event, m.deliveries + 1, m.partition)
                g.pending[again] = delivery
                out.append(again)
            earliest = min(earliest, now)
        g.claim_at = earliest + idle

    def _take(self, max_count: int) -> list[Message]:
        out: list[Message] = []
        now = time.monotonic()
        idle = self._bus.claim_idle_ms / 1000.0
        for s, g in self._groups:
            if g.pending and now >= g.claim_at:
                self._claim(g, now, idle, max_count - len(out), out)
            n = min(max_count - len(out), s.next_seq - g.cursor)
            if n <= 0:
                continue
            if not g.pending:
                g.claim_at = now + idle
            start = g.cursor - s.base
            batch = s.entries[start : start + n]
            g.pending.update(zip(batch, repeat([self.consumer, now])))
            out.extend(batch)
            g.cursor += n
            s.trim(self._bus.retain)
            if s.backlog() < self._bus.capacity:
                s.space.set()
        return out

    async def commit(
        self,
        acks: Sequence[Message],
        publish: Mapping[str, Sequence[Event]] | None = None,
        state: Mapping[str, bytes] | None = None,
        state_ttl_ms: Mapping[str, int] | None = None,
    ) -> None:
        if publish:
            for topic, events in publish.items():
                s = self._bus._stream(topic)
                while events and s.backlog() >= self._bus.capacity:
                    s.space.clear()
                    await s.space.wait()
        # From here on nothing awaits: the commit is atomic for other tasks.
        if publish:
            for topic, events in publish.items():
                if events:
                    self._bus._append(self._bus._stream(topic), events)
        if state:
            self._bus._store_state(state, state_ttl_ms)
        self._ack(acks)

    def _ack(self, acks: Sequence[Message]) -> None:
        """Pops every ack from each of this consumer's groups in C (the
        ``consume`` recipe of itertools), counting what each group lost. A
        group's pending table holds only messages of its own topic (``_take``
        and ``_claim`` fill it from its stream, ``fail`` only re-stamps), and
        messages hash by identity, so an ack misses every other group's table
        as the per-message topic lookup it replaces skipped them. Measured:
        0.07 -> 0.04 s per 200k-tick backtest (800k acks, half of them by
        consumers of three or four topics)."""
        done = 0
        for _s, g in self._groups:
            pending = g.pending
            if not pending:
                continue
            before = len(pending)
            deque(map(pending.pop, acks, repeat(None)), maxlen=0)
            if g.counted:
                done += before - len(pending)
        if done:
            self._bus._settle(-done)

    async def fail(self, message: Message, error: str) -> bool:
        if message.deliveries >= self._bus.max_deliveries:
            dead = dead_letter(
                message.topic,
                self.group,
                message.id,
                message.deliveries,
                ev.encode(message.event),
                error,
                f"{message.topic}:{self.group}:{message.id}",
            )
            await self.commit([message], {DEAD_LETTER: [dead]})
            return True
        g = self._by_topic.get(message.topic)
        if g is not None and message in g.pending:
            g.pending[message] = [self.consumer, float("-inf")]
            g.claim_at = float("-inf")
            self._wake.set()
        return False

    def hand_off(self, topic: str, downstream: Subscription) -> None:
        """Nothing to wire: a commit's publish already wakes every consumer of the
        topic, in this process, before the commit returns."""
        if topic not in downstream.topics:
            raise ValueError(f"hand-off of {topic!r} to a consumer of {downstream.topics}")

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        for _s, g in self._groups:
            g.wakers.discard(self._wake)
