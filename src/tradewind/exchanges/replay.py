"""Replay of recorded exchange messages, paced by exchange time.

The files hold one exchange message per line exactly as it was received (see
``tests/data/market/SOURCES.md``). A bad line is counted by reason and
skipped; it never stops a replay.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from itertools import islice
from operator import attrgetter
from pathlib import Path

import msgspec
import structlog

from tradewind.clock import ReplayClock
from tradewind.events import MarketEvent
from tradewind.exchanges.binance.parser import COINM, USDM, BinanceParser
from tradewind.exchanges.binance.snapshots import (
    RecordedSnapshots,
    SnapshotPairing,
    is_recorded_snapshot,
)
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.recording import open_recording
from tradewind.exchanges.formats import (
    BINANCE_DEPTH_SNAPSHOT,
    PARSERS,
    BatchParser,
    Parser,
    check_readable,
    detect_format,
)
from tradewind.observability import metrics

_TS = attrgetter("ts_event")
_BINANCE_STREAMS = frozenset({"binance", USDM, COINM})
log = structlog.get_logger("tradewind.replay")
BUNDLED_RECORDING = "binance_spot_btcusdt_combined_20240808.jsonl"


def _recorded_snapshots(path: Path) -> list[bytes]:
    """The snapshot lines a live feed recorded in ``path`` (read ahead, so
    each can be replayed where the feed applied it)."""
    with open_recording(path) as fh:
        return [line.strip() for line in fh if is_recorded_snapshot(line)]


def bundled_recording() -> Path:
    """The real recording shipped in the package, so a first run needs nothing else."""
    return Path(str(resources.files("tradewind") / "data" / BUNDLED_RECORDING))


@dataclass
class ReplayStats:
    lines: int = 0
    events: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    """Messages read but not used, by reason: a snapshot file nothing names
    the symbol of, a kline still open, a subscription ack, a pong, a message
    type no event comes from. Taken from each parser's ``ignored`` once its
    file is read, so the summary says why N messages made no event."""

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class ReplaySource:
    """Yields batches of parsed events from recordings.

    ``speed`` 0 replays as fast as possible; 1 is real time, 10 ten times faster.
    Every file's format is detected (or ``fmt`` checked) here, so a recording
    that cannot be read stops the run before it starts. Binance REST depth
    snapshots given beside their stream file are replayed as its books'
    snapshots; alone, they need ``symbol``, else they are reported ignored.
    """

    def __init__(
        self,
        paths: Iterable[Path],
        speed: float = 0.0,
        clock: ReplayClock | None = None,
        fmt: str | None = None,
        lines: Iterable[bytes] | None = None,
        symbol: str | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.speed = speed
        self.clock = clock
        self.fmt = None if fmt is None else check_readable(fmt)
        self.symbol = symbol
        self._lines = lines
        self.stats = ReplayStats()
        self.formats = [] if lines is not None else [fmt or detect_format(p) for p in self.paths]

    def _parser(self, path: Path, fmt: str) -> Parser:
        return PARSERS[fmt]()

    def _sources(self) -> Iterator[tuple[Parser, Iterable[bytes]]]:
        if self._lines is not None:
            given = PARSERS[self.fmt or "binance"]()
            yield given, self._lines
            self._take_ignored(given)
            return
        pairs = list(zip(self.paths, self.formats, strict=True))
        snapshots = [p for p, f in pairs if f == BINANCE_DEPTH_SNAPSHOT]
        streams = any(f in _BINANCE_STREAMS for _, f in pairs)
        pending = [
            line.strip() for p in snapshots if streams for line in p.read_bytes().splitlines()
        ]
        pairing: list[SnapshotPairing] = []
        placed: list[RecordedSnapshots] = []
        for path, fmt in pairs:
            parser: Parser
            if fmt == BINANCE_DEPTH_SNAPSHOT:
                if streams:
                    continue
                if not self.symbol:
                    self._ignore(path, "depth_snapshot_without_symbol")
                    continue
                parser = BinanceParser(default_symbol=self.symbol)
            else:
                parser = self._parser(path, fmt)
            if pending and isinstance(parser, BinanceParser):
                parser = SnapshotPairing(parser, [b for b in pending if b])
                pairing.append(parser)
                pending = []
            if fmt in ("binance", USDM) and isinstance(parser, BinanceParser):
                recorded = _recorded_snapshots(path)
                if recorded:
                    parser = RecordedSnapshots(parser, recorded)
                    placed.append(parser)
            with open_recording(path) as fh:
                yield parser, fh
            self._take_ignored(parser)
        for r in placed:
            if r.invalid:
                self.stats.ignored["depth_snapshot_invalid"] += r.invalid
            if r.pending:
                # Live refetched these (no diff straddled them): nothing applied them.
                self.stats.ignored["depth_snapshot_stale"] += len(r.pending)
        for p in pairing:
            if p.invalid:
                self.stats.ignored["depth_snapshot_invalid"] += p.invalid
            if p.pending:
                self.stats.ignored["depth_snapshot_unpaired"] += len(p.pending)
                log.warning(
                    "depth snapshots ignored: no update of the stream straddles them",
                    last_update_ids=sorted(p.pending),
                )

    def _take_ignored(self, parser: Parser) -> None:
        counted = getattr(parser, "ignored", None)
        if isinstance(counted, Counter):
            self.stats.ignored.update(counted)

    def _ignore(self, path: Path, reason: str) -> None:
        count = sum(1 for line in path.read_bytes().splitlines() if line.strip())
        self.stats.lines += count
        self.stats.ignored[reason] += count
        log.warning(
            "recording ignored: REST depth snapshots do not name their symbol; "
            "give the stream file beside it, or --symbol",
            path=str(path),
            snapshots=count,
        )

    async def batches(self, max_batch: int = 1024) -> AsyncIterator[list[MarketEvent]]:
        if self.speed <= 0:
            async for b in self._asap(max_batch):
                yield b
            return
        stats = self.stats
        first_ts = 0
        wall0 = 0.0
        batch: list[MarketEvent] = []
        for parser, lines in self._sources():
            on_error = self._count_error(parser.exchange)
            for raw in lines:
                line = raw.strip()
                if not line:
                    continue
                stats.lines += 1
                try:
                    events = parser.parse(line, time.time_ns())
                except ParseError as exc:
                    on_error(exc)
                    continue
                if not events:
                    continue
                ts = events[-1].ts_event
                if self.speed > 0 and ts:
                    if not first_ts:
                        first_ts, wall0 = ts, time.monotonic()
                    delay = wall0 + (ts - first_ts) / 1e9 / self.speed - time.monotonic()
                    if delay > 0.0005:
                        if batch:
                            yield self._emit(batch)
                            batch = []
                        await asyncio.sleep(delay)
                        # Received now, when it is due, not when it was read ahead.
                        now = time.time_ns()
                        events = [msgspec.structs.replace(e, ts_recv=now) for e in events]
                batch.extend(events)
                if len(batch) >= max_batch:
                    yield self._emit(batch)
                    batch = []
        if batch:
            yield self._emit(batch)

    async def _asap(self, max_batch: int) -> AsyncIterator[list[MarketEvent]]:
        """``batches`` at speed 0, the backtest's loop: no pacing, and a
        ``BatchParser`` parses chunks of lines, each stamped when it is read
        (one ``ts_recv`` for a chunk, taken once it has been read)."""
        batch: list[MarketEvent] = []

        def room() -> int:
            return max_batch - len(batch)

        for parser, lines in self._sources():
            for events in self._parsed(parser, lines, room):
                batch += events
                if len(batch) >= max_batch:
                    yield self._emit(batch)
                    batch = []
        if batch:
            yield self._emit(batch)

    def _parsed(
        self, parser: Parser, lines: Iterable[bytes], room: Callable[[], int]
    ) -> Iterator[list[MarketEvent]]:
        """Events chunk by chunk (at most ``room()`` lines each) from a
        ``BatchParser``, line by line from any other: a line may make many
        events, and the batch must end after the line that filled it."""
        stats = self.stats
        on_error = self._count_error(parser.exchange)
        frames = filter(None, map(bytes.strip, lines))
        now = time.time_ns
        if isinstance(parser, BatchParser):
            parse_many = parser.parse_many
            while chunk := list(islice(frames, room())):
                stats.lines += len(chunk)
                yield parse_many(chunk, now(), on_error)
            return
        parse = parser.parse
        for frame in frames:
            stats.lines += 1
            try:
                yield parse(frame, now())
            except ParseError as exc:
                on_error(exc)

    def _count_error(self, exchange: str) -> Callable[[ParseError], None]:
        errors = self.stats.errors

        def count(exc: ParseError) -> None:
            errors[exc.reason] += 1
            metrics.FEED_PARSE_ERRORS.labels(exchange, exc.reason).inc()

        return count

    def _emit(self, batch: list[MarketEvent]) -> list[MarketEvent]:
        self.stats.events += len(batch)
        if self.clock is not None and batch:
            self.clock.advance(max(map(_TS, batch)))
        return batch
