"""The one bus interface every service talks to.

It has the semantics of Redis Streams consumer groups, so that a service
behaves the same on the in-process bus and on Redis:

- ``publish`` appends events to a topic (partitioned topics route by symbol);
- a *group* gets every message of a topic once, shared among its consumers;
- a delivered message stays *pending* until it is acknowledged; a pending
  message idle for longer than ``claim_idle_ms`` is claimed by another consumer
  of the group (a crashed consumer loses nothing);
- ``commit`` acknowledges messages, publishes the events they caused and saves
  consumer state in one atomic step, so a crash leaves either all or none of it;
- a message that fails ``max_deliveries`` times moves to the dead-letter topic
  with its error;
- ``trim_consumed`` drops the entries of a topic that every group has both
  received and acknowledged, so order flow stays bounded without losing what
  a consumer has not finished (see docs/distributed.md, "Trimming");
- state may carry a TTL, so records that only guard against late redeliveries
  expire once no redelivery can come any more.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from tradewind.events import DEAD_PAYLOAD_BYTES, MAX_ERROR_LEN, DeadLetter, Event


class Message(msgspec.Struct, eq=False, gc=False):
    """A delivered event; hashed by identity so buses can track it cheaply.

    One is made per event at every publish (in-process) or delivery (Redis),
    so it is a struct, not a dataclass: 125 ns to build instead of 600. It
    holds no container that could lead back to it, so the collector need not
    track it."""

    topic: str
    id: str
    event: Event
    deliveries: int = 1
    partition: int = 0


@dataclass(slots=True)
class GroupInfo:
    lag: int
    pending: int


@dataclass(slots=True)
class TopicInfo:
    length: int
    groups: dict[str, GroupInfo] = field(default_factory=dict)


def describe(exc: BaseException) -> str:
    """The class and the message, for logs, errors and /readyz. Not ``repr``:
    redis-py's errors hide their message there (``server:ResponseError``)."""
    return f"{type(exc).__name__}: {exc}"[:500]


def dead_letter(
    topic: str, group: str, message_id: str, deliveries: int, payload: bytes, error: str, id_: str
) -> DeadLetter:
    """A dead letter holding the head of ``payload`` with its size and hash: a
    10 MB poison message must not become a 10 MB dead letter."""
    return DeadLetter(
        id=id_,
        ts_event=time.time_ns(),
        topic=topic,
        message_id=message_id[:256],
        group=group,
        deliveries=deliveries,
        error=error[:MAX_ERROR_LEN],
        payload=payload[:DEAD_PAYLOAD_BYTES],
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
    )


class BusError(RuntimeError):
    """The bus could not complete an operation after its retries."""


class NotSettled(BusError):
    """A lockstep wait gave up: some group did not catch up within the limit.

    ``behind`` maps ``topic/group`` to (lag, pending) as last seen."""

    def __init__(self, message: str, behind: Mapping[str, tuple[int, int]]) -> None:
        super().__init__(message)
        self.behind = dict(behind)


class Subscription(ABC):
    """A consumer's view of one group over one or more topics."""

    read_ahead: bool = False
    """Whether ``commit`` may also take this consumer's next batch, for the next
    ``fetch`` to return (one round trip per batch instead of two on Redis). Only
    for a consumer that fetches again right after each commit, as a service's
    consumer loop does: what was read ahead is delivered to this consumer."""

    def __init__(self, topics: Sequence[str], group: str, consumer: str) -> None:
        self.topics = tuple(topics)
        self.group = group
        self.consumer = consumer

    @abstractmethod
    async def fetch(self, max_count: int = 1024, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_count`` messages: reclaimed and new ones; [] after ``timeout``."""

    @abstractmethod
    async def commit(
        self,
        acks: Sequence[Message],
        publish: Mapping[str, Sequence[Event]] | None = None,
        state: Mapping[str, bytes] | None = None,
        state_ttl_ms: Mapping[str, int] | None = None,
    ) -> None:
        """Atomically ack ``acks``, publish ``publish`` and store ``state``.

        A key of ``state`` listed in ``state_ttl_ms`` expires that many
        milliseconds after the commit; the others are kept until overwritten
        (and an overwrite without a TTL removes an earlier one, as Redis SET does).
        """

    async def ack(self, messages: Sequence[Message]) -> None:
        await self.commit(messages)

    @abstractmethod
    async def fail(self, message: Message, error: str) -> bool:
        """Record a failed attempt; dead-letter the message after too many.

        Returns True when the message went to the dead-letter topic.
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop consuming; unacked messages stay pending for the group."""

    async def assign(self, partitions: Sequence[int]) -> None:
        """Change which partitions of partitioned topics this consumer reads."""
        return None

    @abstractmethod
    def hand_off(self, topic: str, downstream: Subscription) -> None:
        """Deliver what this consumer's commits publish to ``topic`` straight to
        ``downstream``, a consumer of ``topic`` in the same process.

        For services grouped in one process (``tradewind service
        signal,risk,execution``): the downstream's next ``fetch`` returns the
        entries at once, without waiting for a read of its own. Its group,
        pending entries, acks and redelivery stay exactly those of the bus: a
        crash between this commit and the downstream's ack redelivers them to
        the downstream's successor as with any consumer. Call it once, before
        either side fetches; ``downstream`` must subscribe to ``topic``.
        """


class Bus(ABC):
    """A topic bus with consumer groups; see the module docstring."""

    max_deliveries: int = 5
    claim_idle_ms: int = 30_000
    partitions: int = 1

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @abstractmethod
    async def publish(self, topic: str, events: Sequence[Event]) -> None:
        """Append events; returns once they are durable on the bus."""

    @abstractmethod
    async def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        consumer: str,
        partitions: Sequence[int] | None = None,
    ) -> Subscription:
        """Join ``group`` as ``consumer``; the group starts at the oldest retained
        message when it is new."""

    @abstractmethod
    async def get_state(self, key: str) -> bytes | None:
        """State stored by ``Subscription.commit``."""

    @abstractmethod
    async def put_state(self, key: str, value: bytes, ttl_ms: int | None = None) -> None:
        """Store state outside a commit (leases, operator changes).

        With ``ttl_ms`` the key expires that long after this call; without it
        the key is kept and any earlier TTL is cleared.
        """

    @abstractmethod
    async def trim_consumed(
        self, topic: str, *, keep_ms: int = 0, required_groups: Sequence[str] = ()
    ) -> int:
        """Drop the entries of ``topic`` every group has received and acknowledged.

        The cut is below the oldest entry any group still needs: per group its
        oldest pending entry, or, with nothing pending, the entry after its
        last delivered one. Nothing pending anywhere and nothing undelivered is
        ever dropped, and a topic without groups is left alone (nobody has
        said what it needs). ``keep_ms`` also keeps every entry younger than
        that (for operators and post-run checks); ``required_groups`` makes the
        call a no-op until all those groups exist, so a consumer that must see
        everything (db_writer) cannot be trimmed past before it subscribed.
        Idempotent. Returns how many entries were dropped.
        """

    @abstractmethod
    async def read_all(self, topic: str, count: int = 10_000) -> list[Message]:
        """The retained messages of a topic (all partitions), oldest first."""

    @abstractmethod
    async def info(self) -> dict[str, TopicInfo]:
        """Length, and lag and pending per group, for every known topic."""

    @abstractmethod
    async def drop_group(self, topic: str, group: str) -> None:
        """Delete a consumer group of ``topic`` with its pending entries.

        For consumers that come and go (a CLI waiting for one reply): a group
        left behind would count as lag for ever and hold back trimming.
        """

    async def cap_dead_letters(self) -> int:
        """Cut the dead-letter stream to its configured length; the entries
        dropped. Run by db_writer's trim pass. The in-process bus keeps every
        stream within ``retain`` as it is consumed, so it has nothing to cut."""
        return 0

    async def ping(self) -> bool:
        return True

    async def dead_letters(self, count: int = 1000) -> list[DeadLetter]:
        return [
            m.event
            for m in await self.read_all("dead_letter", count)
            if isinstance(m.event, DeadLetter)
        ]

    async def idle(self) -> bool:
        """True when every group has consumed and acknowledged everything."""
        return not await self.behind()

    async def behind(self) -> dict[str, tuple[int, int]]:
        """``topic/group`` -> (lag, pending) of every group not yet caught up."""
        out: dict[str, tuple[int, int]] = {}
        for name, topic in (await self.info()).items():
            for group, g in topic.groups.items():
                if g.lag or g.pending:
                    out[f"{name}/{group}"] = (g.lag, g.pending)
        return out
