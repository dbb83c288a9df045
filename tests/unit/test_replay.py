from __future__ import annotations

import time

from tradewind.clock import ReplayClock
from tradewind.events import BookDelta, Quote, Trade
from tradewind.exchanges.replay import ReplaySource, bundled_recording, detect_format


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
