"""Live feeds against the fake exchange: faults on command, and what reaches
downstream must be exactly what an undisturbed run delivers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.conftest import market_file
from tradewind.events import BookDelta, MarketEvent, Trade
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.feeds import Feeds, run_feeds

TRADES = "binance_spot_btcusdt_trades_20240808.jsonl"
SPOT = "binance_spot_btcusdt_combined_20240808.jsonl"
KRAKEN = "kraken_spot_ws_v1_20210417.jsonl"
COINBASE = "coinbase_advanced_ws_20260809.jsonl"
BYBIT = "bybit_v5_linear_ws_20260809.jsonl"


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Run:
    events: list[MarketEvent] = field(default_factory=list)
    feeds: Feeds | None = None

    @property
    def trade_ids(self) -> list[str]:
        return [e.id for e in self.events if isinstance(e, Trade)]

    def kinds(self) -> Counter[str]:
        return Counter(
            "snapshot" if isinstance(e, BookDelta) and e.snapshot else type(e).__name__
            for e in self.events
        )


async def live(
    make_settings: Any,
    files: list[str],
    exchange: str,
    symbols: list[str],
    speed: float,
    during: Callable[[FakeExchange, Feeds], Awaitable[None]] | None = None,
    **feed: Any,
) -> Run:
    fake = FakeExchange([market_file(f) for f in files], speed=speed, exchanges=[exchange])
    run = Run()
    async with fake:
        settings = make_settings(
            feed={
                "source": "live",
                "exchanges": [exchange],
                "symbols": symbols,
                "ws_urls": fake.ws_urls(),
                "rest_urls": fake.rest_urls(),
                "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.2,
                "rest_requests_per_s": 20.0,
                "timeout_s": 5.0,
                **feed,
            }
        )
        feeds = run.feeds = Feeds(settings)
        stopping = asyncio.Event()
        feeds.start(stopping)

        async def consume() -> None:
            while True:
                run.events.extend(await feeds.out.get())

        consumer = asyncio.create_task(consume())
        try:
            if during is not None:
                await during(fake, feeds)
            await fake.wait_done(exchange, timeout=60)
            quiet_since = time.monotonic()
            seen = len(run.events)
            deadline = time.monotonic() + 10
            while time.monotonic() - quiet_since < 0.6 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if len(run.events) != seen or any(
                    not t.done() for v in feeds.venues.values() for t in v.tasks
                ):
                    seen, quiet_since = len(run.events), time.monotonic()
        finally:
            stopping.set()
            consumer.cancel()
            await feeds.stop()
    return run


def _recorded_trade_ids(name: str) -> set[str]:
    from tradewind.exchanges.replay import PARSERS, detect_format

    path = market_file(name)
    parser = PARSERS[detect_format(path)]()
    return {
        e.id
        for line in path.read_bytes().splitlines()
        if line.strip()
        for e in parser.parse(line.strip(), 0)
        if isinstance(e, Trade)
    }


@pytest.mark.timeout(120)
async def test_forced_disconnects_lose_and_duplicate_no_trade(make_settings: Any) -> None:
    undisturbed = await live(make_settings, [TRADES], "binance", ["BTCUSDT"], speed=0)

    async def disconnect_every_second(fake: FakeExchange, feeds: Feeds) -> None:
        for _ in range(4):
            await asyncio.sleep(1.0)
            assert fake.drop("binance") >= 1

    before = _metric("tradewind_feed_reconnects_total", exchange="binance", reason="closed")
    disturbed = await live(
        make_settings, [TRADES], "binance", ["BTCUSDT"], speed=60, during=disconnect_every_second
    )
    venue = disturbed.feeds.venues["binance"]  # type: ignore[union-attr]
    conn = venue.connections[0]
    print(
        f"\nundisturbed {len(undisturbed.trade_ids)} trades; disturbed "
        f"{len(disturbed.trade_ids)} trades after {conn.connects} connections, "
        f"{venue.backfilled} backfilled in {venue.backfills} backfills"  # type: ignore[attr-defined]
    )
    assert len(undisturbed.trade_ids) == len(set(undisturbed.trade_ids)) == 9757
    assert set(undisturbed.trade_ids) == _recorded_trade_ids(TRADES)
    assert len(disturbed.trade_ids) == len(set(disturbed.trade_ids)), "duplicates"
    assert set(disturbed.trade_ids) == set(undisturbed.trade_ids), "lost trades"
    assert conn.connects >= 5
    assert venue.backfilled > 0  # type: ignore[attr-defined]
    after = _metric("tradewind_feed_reconnects_total", exchange="binance", reason="closed")
    assert after - before >= 4


async def test_run_feeds_entry_point_and_books(make_settings: Any) -> None:
    fake = FakeExchange([market_file(SPOT)], speed=0, exchanges=["binance"], autostart=False)
    async with fake:
        settings = make_settings(
            feed={
                "source": "live",
                "exchanges": ["binance"],
                "symbols": ["BTCUSDT"],
                "ws_urls": fake.ws_urls(),
                "rest_urls": fake.rest_urls(),
            }
        )
        stopping = asyncio.Event()
        events: list[MarketEvent] = []

        async def consume() -> None:
            async for batch in run_feeds(settings, stopping):
                events.extend(batch)

        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 10
        while not fake.venues["binance"].clients:
            assert time.monotonic() < deadline, "feed never connected"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        fake.start_replay("binance")
        await fake.wait_done("binance", timeout=30)
        while len([e for e in events if isinstance(e, Trade)]) < 1119:
            if time.monotonic() > deadline + 10:
                break
            await asyncio.sleep(0.05)
        stopping.set()
        await asyncio.wait_for(task, 10)
    books = [e for e in events if isinstance(e, BookDelta)]
    assert books[0].snapshot
    assert not any(b.snapshot for b in books[1:])
    ids = [b.last_update_id for b in books[1:]]
    assert ids == sorted(ids)
    assert len([e for e in events if isinstance(e, Trade)]) == 1119


async def test_garbage_frames_are_counted_and_skipped(make_settings: Any) -> None:
    before = sum(
        _metric("tradewind_feed_parse_errors_total", exchange="binance", reason=r)
        for r in ("malformed_json", "invalid_message")
    )

    async def garbage(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(0.5)
        assert fake.garbage(8, "binance") == 8

    run = await live(make_settings, [SPOT], "binance", ["BTCUSDT"], speed=20, during=garbage)
    venue = run.feeds.venues["binance"]  # type: ignore[union-attr]
    after = sum(
        _metric("tradewind_feed_parse_errors_total", exchange="binance", reason=r)
        for r in ("malformed_json", "invalid_message")
    )
    print(f"\ngarbage counted by reason: {venue.garbage}")
    assert venue.parse_errors == 8
    assert after - before == 8
    assert venue.connections[0].connects == 1, "garbage must not cost the connection"
    assert len(set(run.trade_ids)) == len(run.trade_ids) == 1119


async def test_stale_feed_reconnects_and_recovers(make_settings: Any) -> None:
    async def stall(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(0.5)
        fake.stall(1.0, "binance")

    run = await live(
        make_settings, [SPOT], "binance", ["BTCUSDT"], speed=20, during=stall, stale_after_s=0.5
    )
    venue = run.feeds.venues["binance"]  # type: ignore[union-attr]
    conn = venue.connections[0]
    assert conn.reconnect_reasons.get("stale", 0) >= 1
    assert venue.books["BTCUSDT"].synced
    assert run.kinds()["snapshot"] >= 2
    assert set(run.trade_ids) == _recorded_trade_ids(SPOT)
    assert len(run.trade_ids) == len(set(run.trade_ids))


async def test_skipped_depth_update_resyncs_that_book(make_settings: Any) -> None:
    async def skip(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.skip(1, "binance", "BTCUSDT")

    before = _metric("tradewind_feed_gaps_total", exchange="binance", symbol="BTCUSDT")
    run = await live(make_settings, [SPOT], "binance", ["BTCUSDT"], speed=20, during=skip)
    sync = run.feeds.venues["binance"].books["BTCUSDT"]  # type: ignore[union-attr]
    assert sync.gaps == 1 and sync.resyncs == 1 and sync.synced
    assert run.kinds()["snapshot"] == 2
    assert _metric("tradewind_feed_gaps_total", exchange="binance", symbol="BTCUSDT") - before == 1
    truth = run.feeds.venues["binance"].books["BTCUSDT"].book  # type: ignore[union-attr]
    assert truth.best_bid() is not None and not truth.crossed()


async def test_kraken_checksum_corruption_resyncs_only_that_pair(make_settings: Any) -> None:
    pairs = ["XMR/USD", "WAVES/EUR", "ADA/XBT"]

    async def corrupt(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.corrupt_checksum(1, "kraken", "XMR/USD")

    run = await live(make_settings, [KRAKEN], "kraken", pairs, speed=10, during=corrupt)
    books = run.feeds.venues["kraken"].books  # type: ignore[union-attr]
    print({p: (b.checksums_ok, b.checksum_failures, b.resyncs) for p, b in books.items()})  # type: ignore[attr-defined]
    assert books["XMR/USD"].checksum_failures == 1
    assert books["XMR/USD"].resyncs == 1 and books["XMR/USD"].synced
    for p in ("WAVES/EUR", "ADA/XBT"):
        assert books[p].checksum_failures == 0 and books[p].resyncs == 0 and books[p].synced
        assert books[p].checksums_ok > 0  # type: ignore[attr-defined]


async def test_coinbase_sequence_gap_resyncs_books(make_settings: Any) -> None:
    async def skip(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.skip(1, "coinbase")

    run = await live(
        make_settings, [COINBASE], "coinbase", ["BTC-USD", "ETH-USD"], speed=10, during=skip
    )
    venue = run.feeds.venues["coinbase"]  # type: ignore[union-attr]
    assert venue.sequence_gaps == 1  # type: ignore[attr-defined]
    assert all(b.synced for b in venue.books.values())
    assert sum(b.resyncs for b in venue.books.values()) >= 1
    assert len(run.trade_ids) == len(set(run.trade_ids))
    assert set(run.trade_ids) == _recorded_trade_ids(COINBASE)


async def test_bybit_reconnect_resyncs_and_backfills(make_settings: Any) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]

    async def drop(fake: FakeExchange, feeds: Feeds) -> None:
        for _ in range(2):
            await asyncio.sleep(1.0)
            fake.drop("bybit-linear")

    run = await live(make_settings, [BYBIT], "bybit-linear", symbols, speed=10, during=drop)
    venue = run.feeds.venues["bybit-linear"]  # type: ignore[union-attr]
    assert all(b.synced and b.gaps == 0 for b in venue.books.values())
    assert run.kinds()["snapshot"] == 4 * 3
    assert len(run.trade_ids) == len(set(run.trade_ids))
    assert set(run.trade_ids) == _recorded_trade_ids(BYBIT)


async def test_symbols_sharded_and_a_drop_resyncs_only_its_shard(make_settings: Any) -> None:
    symbols = ["XMRBTC", "FTMUSDT", "SXPBTC", "BADGERBTC"]
    files = ["binance_spot_4sym_ws_20210814.jsonl", "binance_spot_rest_depth_20210814.jsonl"]
    victim: list[str] = []

    requests: list[float] = []

    async def drop_one(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        clients = sorted(fake.venues["binance"].clients, key=lambda c: c.id)
        victim.extend(sorted(s.split("@")[0].upper() for s in clients[0].subs))
        clients[0].abort()
        await asyncio.sleep(1.0)
        requests.extend(t for t, _, _ in fake.venues["binance"].rest_requests)  # type: ignore[attr-defined]

    run = await live(
        make_settings,
        files,
        "binance",
        symbols,
        speed=10,
        during=drop_one,
        symbols_per_connection=2,
        rest_requests_per_s=4.0,
    )
    # A token bucket of 2 at 4/s: any 3 consecutive requests span at least 0.25 s.
    assert len(requests) >= 6
    assert min(b - a for a, b in zip(requests, requests[2:], strict=False)) >= 0.25 * 0.9
    venue = run.feeds.venues["binance"]  # type: ignore[union-attr]
    assert [c.symbols for c in venue.connections] == [symbols[:2], symbols[2:]]
    assert sorted(c.connects for c in venue.connections) == [1, 2]
    assert all(b.synced and b.gaps == 0 for b in venue.books.values())
    resynced = sorted(s for s, b in venue.books.items() if b.resyncs)
    assert resynced == sorted(set(victim))
    assert {e.symbol for e in run.events if isinstance(e, BookDelta) and e.snapshot} == set(symbols)


async def test_planned_reconnect_before_connection_lifetime(make_settings: Any) -> None:
    run = await live(
        make_settings, [SPOT], "binance", ["BTCUSDT"], speed=20, max_connection_age_s=0.8
    )
    venue = run.feeds.venues["binance"]  # type: ignore[union-attr]
    conn = venue.connections[0]
    assert conn.reconnect_reasons.get("lifetime", 0) >= 2
    assert venue.books["BTCUSDT"].synced
    assert len(run.trade_ids) == len(set(run.trade_ids))
    assert set(run.trade_ids) == _recorded_trade_ids(SPOT)


async def test_usdm_book_and_trades_survive_a_drop(make_settings: Any) -> None:
    usdm = "binance_usdm_btcusdt_combined_20240808.jsonl"

    async def drop(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.drop("binance-usdm")

    run = await live(make_settings, [usdm], "binance-usdm", ["BTCUSDT"], speed=3, during=drop)
    sync = run.feeds.venues["binance-usdm"].books["BTCUSDT"]  # type: ignore[union-attr]
    assert sync.synced and sync.gaps == 0 and sync.applied > 50
    assert run.kinds()["snapshot"] == 2
    assert set(run.trade_ids) == _recorded_trade_ids(usdm)
    assert len(run.trade_ids) == len(set(run.trade_ids))


async def test_missing_pongs_reconnect(make_settings: Any) -> None:
    async def blackhole(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(0.5)
        fake.blackhole(1.5)

    run = await live(
        make_settings,
        [SPOT],
        "binance",
        ["BTCUSDT"],
        speed=20,
        during=blackhole,
        ping_interval_s=0.2,
        timeout_s=0.4,
        stale_after_s=30.0,
    )
    venue = run.feeds.venues["binance"]  # type: ignore[union-attr]
    assert venue.connections[0].reconnect_reasons.get("ping_timeout", 0) >= 1
    assert venue.books["BTCUSDT"].synced
    assert set(run.trade_ids) == _recorded_trade_ids(SPOT)


async def test_ws_service_publishes_the_live_feed(make_settings: Any) -> None:
    from tradewind.bus import MemoryBus
    from tradewind.clock import WallClock
    from tradewind.instruments import InstrumentRegistry
    from tradewind.services import ServiceContext, WsService
    from tradewind.topics import MARKET

    fake = FakeExchange([market_file(SPOT)], speed=0, exchanges=["binance"], autostart=False)
    async with fake:
        settings = make_settings(
            feed={
                "source": "live",
                "exchanges": ["binance"],
                "symbols": ["BTCUSDT"],
                "ws_urls": fake.ws_urls(),
                "rest_urls": fake.rest_urls(),
            }
        )
        bus = MemoryBus()
        sub = await bus.subscribe([MARKET], "test", "0")
        ctx = ServiceContext(
            bus=bus, clock=WallClock(), settings=settings, instruments=InstrumentRegistry.load()
        )
        service = WsService(ctx)
        await service.start()
        try:
            deadline = time.monotonic() + 10
            while not fake.venues["binance"].clients:
                assert time.monotonic() < deadline, "feed never connected"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            fake.start_replay("binance")
            trades: set[str] = set()
            while len(trades) < 1119 and time.monotonic() < deadline + 20:
                msgs = await sub.fetch(1024, 0.5)
                trades |= {m.event.id for m in msgs if isinstance(m.event, Trade)}
                await sub.commit(msgs)
        finally:
            await service.stop(timeout=5)
    assert trades == _recorded_trade_ids(SPOT)
    assert service.last_price[("binance", "BTCUSDT")] > 0


@pytest.mark.parametrize(
    ("feed", "key"),
    [
        ({"exchanges": ["nasdaq"]}, "TRADEWIND_FEED__EXCHANGES"),
        ({"ws_urls": {"binance": "http://127.0.0.1:1"}}, "TRADEWIND_FEED__WS_URLS"),
        ({"rest_urls": {"binance": "ftp://127.0.0.1"}}, "TRADEWIND_FEED__REST_URLS"),
        ({"symbols": []}, "TRADEWIND_FEED__SYMBOLS"),
    ],
)
def test_bad_feed_settings_name_the_key(make_settings: Any, feed: dict[str, Any], key: str) -> None:
    from tradewind.config import ConfigError

    with pytest.raises(ConfigError) as info:
        Feeds(make_settings(feed={"source": "live", **feed}))
    assert info.value.key == key
