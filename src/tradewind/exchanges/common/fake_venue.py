"""What every fake venue shares: its recorded timeline, its connected clients,
the replay task, and the faults a test can inject."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tradewind.exchanges.common.fake_http import Router

log = structlog.get_logger("tradewind.fake")

CLIENT_QUEUE = 50_000
GARBAGE = (b"\x00\x01garbage\xff", b"{not json", b'{"stream":"x@trade","data":{"s":1}}', b"[1,2")

_conn_ids = itertools.count(1)


@dataclass(eq=False)
class Client:
    """One WebSocket connection: what it subscribed to and its send queue."""

    ws: ServerConnection
    venue: str
    subs: set[str] = field(default_factory=set)
    queue: asyncio.Queue[bytes | str] = field(
        default_factory=lambda: asyncio.Queue(maxsize=CLIENT_QUEUE)
    )
    id: int = field(default_factory=lambda: next(_conn_ids))
    seq: int = 0
    sent: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def send(self, frame: bytes | str) -> None:
        """Queue a frame; a client that cannot keep up is dropped, as exchanges do."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("fake: slow client dropped", venue=self.venue, client=self.id)
            self.abort()

    def abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()


@dataclass
class Entry:
    """One recorded message at ``offset`` ns after its file's first message."""

    offset: int
    kind: str
    data: Any


class Host(Protocol):
    """What a venue reads of the server that hosts it (``fake.server.FakeExchange``)."""

    speed: float
    autostart: bool
    venues: dict[str, Venue]


class Venue:
    """A replayed exchange. Subclasses decode their recordings into entries,
    apply each entry to their market state, and speak the exchange's protocol."""

    name: str = ""
    formats: tuple[str, ...] = ()
    ws_prefixes: tuple[str, ...] = ()

    def __init__(self, server: Host) -> None:
        self.server = server
        self.clients: set[Client] = set()
        self.timeline: list[Entry] = []
        self.position = 0
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.stalled_until = 0.0
        self.skip_books = 0
        self.skip_symbol: str | None = None
        self.corrupt_next: int = 0
        self.corrupt_symbol: str | None = None
        self.sent_garbage = 0
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Event()
        self._running.set()

    # --- loading -----------------------------------------------------------
    def load(self, paths: Iterable[Path]) -> None:
        """Per file entries, merged by offset so files play side by side."""
        per_file = [self.load_file(p) for p in paths]
        self.timeline = [e for e in merge(per_file)]

    def load_file(self, path: Path) -> list[Entry]:
        raise NotImplementedError

    def routes(self, router: Router) -> None:
        """Register this venue's REST endpoints."""

    # --- replay ------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self.started.set()
            self._task = asyncio.create_task(self._play(), name=f"fake:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for c in list(self.clients):
            c.abort()

    async def _play(self) -> None:
        speed = self.server.speed
        t0 = time.monotonic()
        for i, entry in enumerate(self.timeline):
            t0 += await self._held()
            if speed > 0:
                delay = t0 + entry.offset / 1e9 / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    t0 += await self._held()
            elif i % 64 == 0:
                await asyncio.sleep(0)
            self.position = i + 1
            try:
                self.apply(entry)
            except Exception:
                log.exception("fake: entry failed", venue=self.name, index=i)
        self.done.set()

    async def _held(self) -> float:
        """While paused, wait; the seconds it waited shift the replay's clock."""
        if self._running.is_set():
            return 0.0
        t = time.monotonic()
        await self._running.wait()
        return time.monotonic() - t

    def pause(self) -> None:
        """Hold the replay where it is (nothing is lost: it resumes from there)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def apply(self, entry: Entry) -> None:
        raise NotImplementedError

    # --- clients ----------------------------------------------------------
    @property
    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    def broadcast(self, frame: bytes | str, wants: Callable[[Client], bool]) -> None:
        if self.stalled:
            return
        for c in list(self.clients):
            if wants(c):
                c.send(frame)

    def take_skip(self, symbol: str) -> bool:
        """Whether to withhold this book message (a sequence gap on command)."""
        if self.skip_books > 0 and self.skip_symbol in (None, symbol):
            self.skip_books -= 1
            return True
        return False

    def take_corrupt(self, symbol: str) -> bool:
        if self.corrupt_next > 0 and self.corrupt_symbol in (None, symbol):
            self.corrupt_next -= 1
            return True
        return False

    async def serve(self, ws: ServerConnection, path: str, query: dict[str, str]) -> None:
        client = Client(ws, self.name)
        self.clients.add(client)
        writer = asyncio.create_task(self._writer(client), name=f"fake:{self.name}:w{client.id}")
        try:
            await self.on_connect(client, path, query)
            async for msg in ws:
                await self.on_message(client, msg)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _writer(self, client: Client) -> None:
        try:
            while True:
                frame = await client.queue.get()
                await client.ws.send(frame)
                client.sent += 1
        except ConnectionClosed:
            return

    async def on_connect(self, client: Client, path: str, query: dict[str, str]) -> None:
        """Called once per connection before any message is read."""

    async def on_message(self, client: Client, msg: str | bytes) -> None:
        raise NotImplementedError

    def subscribed(self) -> None:
        """A client subscribed: the replay starts with the first one (autostart)."""
        if self.server.autostart:
            self.start()

    # --- faults ----------------------------------------------------------
    def drop(self) -> int:
        n = len(self.clients)
        for c in list(self.clients):
            c.abort()
        return n

    def garbage(self, count: int = 1) -> int:
        for i in range(count):
            frame = GARBAGE[i % len(GARBAGE)]
            for c in list(self.clients):
                c.send(frame)
            self.sent_garbage += 1
        return count

    def status(self) -> dict[str, Any]:
        return {
            "venue": self.name,
            "clients": len(self.clients),
            "position": self.position,
            "entries": len(self.timeline),
            "started": self.started.is_set(),
            "done": self.done.is_set(),
            "stalled": self.stalled,
            "paused": not self._running.is_set(),
        }


class TextBook:
    """Price text by float price, so snapshots print exactly like the exchange."""

    def __init__(self) -> None:
        self.bids: dict[float, tuple[str, str]] = {}
        self.asks: dict[float, tuple[str, str]] = {}
        self.last_id = 0

    def apply(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if float(q) == 0.0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = (p, q)

    def top(self, limit: int) -> tuple[list[list[str]], list[list[str]]]:
        bids = [list(self.bids[p]) for p in sorted(self.bids, reverse=True)[:limit]]
        asks = [list(self.asks[p]) for p in sorted(self.asks)[:limit]]
        return bids, asks


def merge(per_file: list[list[Entry]]) -> list[Entry]:
    import heapq

    keyed = [
        [(e.offset, i, j, e) for j, e in enumerate(entries)] for i, entries in enumerate(per_file)
    ]
    return [t[3] for t in heapq.merge(*keyed)]


def read_lines(path: Path) -> list[bytes]:
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


def offsets(stamps: list[int]) -> list[int]:
    """ns offsets from the first stamp; a missing (0) stamp takes the previous one."""
    out: list[int] = []
    first = next((s for s in stamps if s), 0)
    last = 0
    for s in stamps:
        if s:
            last = max(last, s - first)
        out.append(last)
    return out
