from __future__ import annotations

import time
from collections import Counter

import msgspec
import pytest

from tests.conftest import market_file
from tests.unit.test_binance_batch import MIXED
from tests.unit.test_parsers import EXPECTED
from tradewind.clock import ReplayClock
from tradewind.events import BookDelta, MarketEvent, Quote, Trade
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.formats import PARSERS, BatchParser, Parser, detect_format
from tradewind.exchanges.replay import ReplaySource, bundled_recording
from tradewind.observability import metrics


async def test_bundled_recording_parses_completely() -> None:
    clock = ReplayClock()
    src = ReplaySource([bundled_recording()], clock=clock)
    kinds: dict[type, int] = {}
    async for batch in src.batches(500):
        for e in batch:
            kinds[type(e)] = kinds.get(type(e), 0) + 1
    assert kinds == {Trade: 1119, Quote: 4336, BookDelta: 526}
    assert src.stats.error_count == 0
    assert clock.now_ns() // 1_000_000 == 1723161307732


async def test_paced_replay_follows_exchange_time() -> None:
    lines = bundled_recording().read_bytes().splitlines()[:400]
    src = ReplaySource([], speed=10.0, lines=lines)
    first = last = 0
    t0 = time.monotonic()
    async for batch in src.batches(1024):
        first = first or batch[0].ts_event
        last = batch[-1].ts_event
    elapsed = time.monotonic() - t0
    span = (last - first) / 1e9 / 10.0
    assert span > 0.1
    assert elapsed >= span * 0.9


def test_format_detection() -> None:
    assert detect_format(bundled_recording()) == "binance"


async def test_paced_events_are_stamped_when_they_are_due() -> None:
    t0 = 1_723_161_255_000
    template = (
        '{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{ts},"s":"BTCUSDT","t":{i},'
        '"p":"61837.63","q":"0.01","T":{ts},"m":true,"M":true}}}}'
    )
    lines = [template.format(ts=t0 + i * 400, i=i).encode() for i in range(3)]
    src = ReplaySource([], speed=2.0, lines=lines)
    lags: list[float] = []
    async for batch in src.batches(1024):
        now = time.time_ns()
        lags.extend((now - e.ts_recv) / 1e9 for e in batch)
    assert len(lags) == 3
    # Read 0.2 s ahead of their time, they used to carry the pacing delay as latency.
    assert max(lags) < 0.05


def _line_by_line(
    parser: Parser, lines: list[bytes], max_batch: int
) -> tuple[list[list[MarketEvent]], int, Counter[str]]:
    """How the replay at speed 0 batched before it parsed chunks."""
    batches: list[list[MarketEvent]] = []
    batch: list[MarketEvent] = []
    errors: Counter[str] = Counter()
    n = 0
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        n += 1
        try:
            batch += parser.parse(line, 0)
        except ParseError as exc:
            errors[exc.reason] += 1
            continue
        if len(batch) >= max_batch:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches, n, errors


async def _replayed(src: ReplaySource, max_batch: int) -> list[list[MarketEvent]]:
    return [
        [msgspec.structs.replace(e, ts_recv=0) for e in batch]
        async for batch in src.batches(max_batch)
    ]


@pytest.mark.parametrize("max_batch", [1, 7, 1024])
@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_asap_replay_batches_as_line_by_line(name: str, max_batch: int) -> None:
    path = market_file(name)
    src = ReplaySource([path])
    got = await _replayed(src, max_batch)
    lines = path.read_bytes().splitlines()
    batches, n, errors = _line_by_line(PARSERS[detect_format(path)](), lines, max_batch)
    assert got == batches
    assert src.stats.lines == n
    assert src.stats.events == sum(map(len, batches))
    assert src.stats.errors == errors


def _errors_counted(reason: str) -> float:
    return metrics.FEED_PARSE_ERRORS.labels("binance", reason)._value.get()  # type: ignore[attr-defined, no-any-return]


async def test_asap_replay_counts_bad_lines_and_keeps_the_good_ones() -> None:
    good = [line for line in bundled_recording().read_bytes().splitlines()[:40] if line]
    bad = [b"", b"  ", b"{not json", MIXED[4], MIXED[7], b'{"stream":"btcusdt@weird","data":{}}']
    lines = good[:10] + bad + good[10:] + [b"\n", MIXED[2]] + [t for t in MIXED if t]
    reasons = ("malformed_json", "invalid_price", "invalid_qty", "unknown_stream")
    before = {r: _errors_counted(r) for r in reasons}
    t0 = time.time_ns()
    src = ReplaySource([], lines=lines)
    got = await _replayed(src, 8)
    raw = [e async for b in ReplaySource([], lines=lines).batches(8) for e in b]
    batches, n, errors = _line_by_line(PARSERS["binance"](), lines, 8)
    assert got == batches
    assert (src.stats.lines, src.stats.errors) == (n, errors)
    assert errors == {
        "malformed_json": 3,
        "invalid_price": 3,
        "invalid_qty": 3,
        "unknown_stream": 2,
    }
    assert {r: _errors_counted(r) - before[r] for r in reasons} == {
        r: 2 * errors[r] for r in reasons
    }
    stamps = [e.ts_recv for e in raw]
    assert t0 <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= time.time_ns()


def test_binance_recordings_are_parsed_in_chunks() -> None:
    assert isinstance(PARSERS["binance"](), BatchParser)
    assert isinstance(PARSERS["binance-usdm"](), BatchParser)
    assert not isinstance(PARSERS["kraken"](), BatchParser)
