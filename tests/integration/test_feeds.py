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

from tests.conftest import market_file, service_context
from tradewind.events import Bar, BookDelta, MarketEvent, Trade
from tradewind.exchanges.binance.feed import BinanceFeed
from tradewind.exchanges.coinbase.feed import CoinbaseFeed
from tradewind.exchanges.common.feed import VenueFeed
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.feeds import Feeds, run_feeds, validate_feed_settings

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

    def venue(self, name: str) -> VenueFeed:
        assert self.feeds is not None
        return self.feeds.venues[name]

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
    from tradewind.exchanges.formats import PARSERS, detect_format

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
    venue = disturbed.venue("binance")
    assert isinstance(venue, BinanceFeed)
    conn = venue.connections[0]
    print(
        f"\nundisturbed {len(undisturbed.trade_ids)} trades; disturbed "
        f"{len(disturbed.trade_ids)} trades after {conn.connects} connections, "
        f"{venue.backfilled} backfilled in {venue.backfills} backfills"
    )
    assert len(undisturbed.trade_ids) == len(set(undisturbed.trade_ids)) == 9757
    assert set(undisturbed.trade_ids) == _recorded_trade_ids(TRADES)
    assert len(disturbed.trade_ids) == len(set(disturbed.trade_ids)), "duplicates"
    assert set(disturbed.trade_ids) == set(undisturbed.trade_ids), "lost trades"
    assert conn.connects >= 5
    assert venue.backfilled > 0
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
    venue = run.venue("binance")
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
    venue = run.venue("binance")
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
    sync = run.venue("binance").books["BTCUSDT"]
    assert sync.gaps == 1 and sync.resyncs == 1 and sync.synced
    assert run.kinds()["snapshot"] == 2
    assert _metric("tradewind_feed_gaps_total", exchange="binance", symbol="BTCUSDT") - before == 1
    truth = run.venue("binance").books["BTCUSDT"].book
    assert truth.best_bid() is not None and not truth.crossed()


async def test_kraken_checksum_corruption_resyncs_only_that_pair(make_settings: Any) -> None:
    pairs = ["XMR/USD", "WAVES/EUR", "ADA/BTC"]  # the fake names pairs as v2 does

    async def corrupt(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.corrupt_checksum(1, "kraken", "XMR/USD")

    run = await live(make_settings, [KRAKEN], "kraken", pairs, speed=10, during=corrupt)
    books = run.venue("kraken").books
    print({p: (b.checksums_ok, b.checksum_failures, b.resyncs) for p, b in books.items()})  # type: ignore[attr-defined]
    assert books["XMR/USD"].checksum_failures == 1
    assert books["XMR/USD"].resyncs == 1 and books["XMR/USD"].synced
    for p in ("WAVES/EUR", "ADA/BTC"):
        assert books[p].checksum_failures == 0 and books[p].resyncs == 0 and books[p].synced
        assert books[p].checksums_ok > 0  # type: ignore[attr-defined]


async def test_coinbase_sequence_gap_resyncs_books(make_settings: Any) -> None:
    async def skip(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.skip(1, "coinbase")

    run = await live(
        make_settings, [COINBASE], "coinbase", ["BTC-USD", "ETH-USD"], speed=10, during=skip
    )
    venue = run.venue("coinbase")
    assert isinstance(venue, CoinbaseFeed)
    assert venue.sequence_gaps == 1
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
    venue = run.venue("bybit-linear")
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
    # A token bucket of 2 at 4/s: n requests span at least (n - 2) / 4 s. Taken
    # over the whole run (arrival times at the fake, so delivery jitter on a busy
    # host only moves the two ends), less 0.2 s for that jitter; no limiter
    # sends them all within milliseconds.
    assert len(requests) >= 6
    assert requests[-1] - requests[0] >= (len(requests) - 2) * 0.25 - 0.2
    venue = run.venue("binance")
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
    venue = run.venue("binance")
    conn = venue.connections[0]
    assert conn.reconnect_reasons.get("lifetime", 0) >= 2
    # Make-before-break: every planned reconnect handed over to an open connection.
    assert conn.handovers == conn.reconnect_reasons["lifetime"]
    assert venue.books["BTCUSDT"].synced
    assert len(run.trade_ids) == len(set(run.trade_ids))
    assert set(run.trade_ids) == _recorded_trade_ids(SPOT)


async def test_usdm_book_and_trades_survive_a_drop(make_settings: Any) -> None:
    usdm = "binance_usdm_btcusdt_combined_20240808.jsonl"

    async def drop(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.drop("binance-usdm")

    run = await live(make_settings, [usdm], "binance-usdm", ["BTCUSDT"], speed=3, during=drop)
    sync = run.venue("binance-usdm").books["BTCUSDT"]
    assert sync.synced and sync.gaps == 0 and sync.applied > 50
    assert run.kinds()["snapshot"] == 2
    # USD-M trades arrive as aggregate trades (the fake serves each recorded
    # trade as one), on /market, backfilled from /fapi/v1/aggTrades after the drop
    recorded = {i.replace(":t", ":a") for i in _recorded_trade_ids(usdm)}
    assert set(run.trade_ids) == recorded
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
    venue = run.venue("binance")
    assert venue.connections[0].reconnect_reasons.get("ping_timeout", 0) >= 1
    assert venue.books["BTCUSDT"].synced
    assert set(run.trade_ids) == _recorded_trade_ids(SPOT)


async def test_ws_service_publishes_the_live_feed(make_settings: Any) -> None:
    from tradewind.bus import MemoryBus
    from tradewind.clock import WallClock
    from tradewind.services import WsService
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
        ctx = service_context(settings, bus=bus, clock=WallClock())
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


BAD_FEED_SETTINGS = [
    ({"exchanges": ["nasdaq"]}, "TRADEWIND_FEED__EXCHANGES"),
    ({"exchanges": []}, "TRADEWIND_FEED__EXCHANGES"),
    ({"ws_urls": {"binance": "http://127.0.0.1:1"}}, "TRADEWIND_FEED__WS_URLS"),
    ({"ws_urls": {"binance": "ws://"}}, "TRADEWIND_FEED__WS_URLS"),
    ({"ws_urls": {"binance": "ws://127.0.0.1:99999"}}, "TRADEWIND_FEED__WS_URLS"),
    ({"ws_urls": {"binance": "wss://host name"}}, "TRADEWIND_FEED__WS_URLS"),
    ({"ws_urls": {"binanse": "ws://127.0.0.1:1"}}, "TRADEWIND_FEED__WS_URLS"),
    ({"rest_urls": {"binance": "ftp://127.0.0.1"}}, "TRADEWIND_FEED__REST_URLS"),
    ({"rest_urls": {"binance": ""}}, "TRADEWIND_FEED__REST_URLS"),
    ({"symbols": []}, "TRADEWIND_FEED__SYMBOLS"),
    ({"symbols": ["btcusdt"]}, "TRADEWIND_FEED__SYMBOLS"),
    ({"exchanges": ["kraken"], "symbols": ["BTCUSD"]}, "TRADEWIND_FEED__SYMBOLS"),
    (
        {"exchanges": ["coinbase"], "symbols_by_exchange": {"coinbase": ["BTC/USD"]}},
        "TRADEWIND_FEED__SYMBOLS_BY_EXCHANGE",
    ),
    ({"symbols_by_exchange": {"ftx": ["BTCUSDT"]}}, "TRADEWIND_FEED__SYMBOLS_BY_EXCHANGE"),
    ({"channels": {"binance": ["trade", "depth5"]}}, "TRADEWIND_FEED__CHANNELS"),
    ({"channels": {"binance": []}}, "TRADEWIND_FEED__CHANNELS"),
    ({"channels": {"kraken": ["publicTrade"]}}, "TRADEWIND_FEED__CHANNELS"),
    ({"channels": {"coinbase": ["level3"]}}, "TRADEWIND_FEED__CHANNELS"),
    ({"channels": {"ftx": ["trade"]}}, "TRADEWIND_FEED__CHANNELS"),
]


@pytest.mark.parametrize(("feed", "key"), BAD_FEED_SETTINGS)
def test_bad_feed_settings_name_the_key(make_settings: Any, feed: dict[str, Any], key: str) -> None:
    """``validate_feed_settings`` (run at service start) and ``Feeds`` (what
    ``run_feeds`` builds) reject the same settings with the same key."""
    from tradewind.config import ConfigError

    settings = make_settings(feed={"source": "live", **feed})
    with pytest.raises(ConfigError) as checked:
        validate_feed_settings(settings)
    assert checked.value.key == key
    assert key in str(checked.value)
    with pytest.raises(ConfigError) as built:
        Feeds(settings)
    assert built.value.key == key


def test_good_feed_settings_pass_and_pick_the_channels(make_settings: Any) -> None:
    everything = {
        "binance": ["trade", "aggTrade", "bookTicker", "depth", "kline"],
        "binance-usdm": ["aggTrade", "bookTicker", "depth", "kline"],
        "coinbase": ["market_trades", "ticker", "level2", "heartbeats"],
        "kraken": ["trade", "ticker", "book"],
        "bybit": ["publicTrade", "tickers", "orderbook"],
        "bybit-linear": ["publicTrade", "tickers", "orderbook"],
    }
    validate_feed_settings(make_settings(feed={"source": "live"}))
    settings = make_settings(
        feed={
            "source": "live",
            "exchanges": list(everything),
            "symbols": ["BTCUSDT"],
            "symbols_by_exchange": {"coinbase": ["BTC-USD"], "kraken": ["BTC/USD", "AAPLx/USD"]},
            "channels": {**everything, "binance": ["kline", "depth", "kline"]},
            "kline_interval": "1M",
            "symbols_per_connection": 1024,
        }
    )
    validate_feed_settings(settings)
    venues = Feeds(settings).venues
    assert {name: list(v.channels) for name, v in venues.items()} == {
        **everything,
        "binance": ["kline", "depth"],
    }
    spot, usdm = venues["binance"], venues["binance-usdm"]
    assert spot.url(spot.connections[0]).endswith("?streams=btcusdt@kline_1M/btcusdt@depth@100ms")
    # USD-M: book streams on /public, trades and klines on /market (2026 split)
    assert [usdm.url(c).split("/", 3)[3] for c in usdm.connections] == [
        "public/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms",
        "market/stream?streams=btcusdt@aggTrade/btcusdt@kline_1M",
    ]
    # Binance's stream limit per connection is shared by every channel of every symbol.
    many = make_settings(
        feed={
            "source": "live",
            "exchanges": ["binance", "binance-usdm"],
            "symbols": [f"S{i}USDT" for i in range(500)],
            "channels": {"binance": everything["binance"]},
            "symbols_per_connection": 1024,
        }
    )
    venues = Feeds(many).venues
    assert {len(c.symbols) for c in venues["binance"].connections[:-1]} == {1024 // 5}
    assert {len(c.symbols) for c in venues["binance-usdm"].connections[:-2]} == {200 // 2}


def test_channels_and_kline_interval_from_the_environment(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradewind.config import ConfigError

    monkeypatch.setenv("TRADEWIND_FEED__CHANNELS", '{"binance": ["trade", "bookticker"]}')
    with pytest.raises(ConfigError) as info:
        validate_feed_settings(make_settings(feed={"source": "live"}))
    assert info.value.key == "TRADEWIND_FEED__CHANNELS"
    assert "'bookticker'" in str(info.value) and "bookTicker" in str(info.value)
    monkeypatch.setenv("TRADEWIND_FEED__CHANNELS", '{"binance": ["trade", "kline"]}')
    monkeypatch.setenv("TRADEWIND_FEED__KLINE_INTERVAL", "2m")
    with pytest.raises(ConfigError) as info:
        make_settings(feed={"source": "live"})
    assert info.value.key == "TRADEWIND_FEED__KLINE_INTERVAL"
    monkeypatch.setenv("TRADEWIND_FEED__KLINE_INTERVAL", "5m")
    settings = make_settings(feed={"source": "live"})
    validate_feed_settings(settings)
    venue = Feeds(settings).venues["binance"]
    assert venue.url(venue.connections[0]).endswith("streams=btcusdt@trade/btcusdt@kline_5m")


FOUR = "binance_spot_4sym_ws_20210814.jsonl"
FOUR_SNAPSHOTS = "binance_spot_rest_depth_20210814.jsonl"


def _recorded(name: str, kind: type[MarketEvent]) -> set[str]:
    from tradewind.exchanges.binance.parser import BinanceParser

    parser = BinanceParser()
    lines = market_file(name).read_bytes().splitlines()
    return {e.id for line in lines if line for e in parser.parse(line, 0) if isinstance(e, kind)}


async def test_agg_trades_and_closed_klines_from_the_live_feed(make_settings: Any) -> None:
    symbols = ["XMRBTC", "FTMUSDT", "SXPBTC", "BADGERBTC"]
    dups = sum(
        _metric("tradewind_feed_duplicates_total", exchange="binance", symbol=s) for s in symbols
    )
    run = await live(
        make_settings,
        [FOUR, FOUR_SNAPSHOTS],
        "binance",
        symbols,
        speed=20,
        channels={"binance": ["trade", "aggTrade", "bookTicker", "depth", "kline"]},
    )
    venue = run.venue("binance")
    trades = [e for e in run.events if isinstance(e, Trade)]
    bars = [e for e in run.events if isinstance(e, Bar)]
    print(f"\n{run.kinds()}; ignored by the parser: {venue.connections[0].parser.ignored}")  # type: ignore[attr-defined]
    assert venue.parse_errors == 0
    assert len(trades) == 28 and {t.id for t in trades} == _recorded(FOUR, Trade)
    assert all(t.trade_id.startswith("a") and t.trade_id[1:].isdigit() for t in trades)
    assert {b.id for b in bars} == _recorded(FOUR, Bar) and len(bars) == 2
    assert all(b.interval_s == 60.0 and b.ts_event - b.ts_open == 60 * 10**9 for b in bars)
    assert all(b.synced and b.gaps == 0 for b in venue.books.values())
    after = sum(
        _metric("tradewind_feed_duplicates_total", exchange="binance", symbol=s) for s in symbols
    )
    assert after == dups


async def test_dedup_keeps_agg_trades_apart_from_trades(make_settings: Any) -> None:
    """A trade and an aggregate trade may share a number; neither is the other's duplicate."""
    settings = make_settings(
        feed={"source": "live", "channels": {"binance": ["trade", "aggTrade", "depth"]}}
    )
    venue = Feeds(settings).venues["binance"]
    conn = venue.connections[0]

    def frame(kind: str, n: int) -> bytes:
        id_field = '"t"' if kind == "trade" else '"a"'
        return (
            f'{{"stream":"btcusdt@{kind}","data":{{"e":"{kind}","E":1700000000000,'
            f'"s":"BTCUSDT",{id_field}:{n},"p":"100.5","q":"0.1","T":1700000000000,"m":true}}}}'
        ).encode()

    dups = _metric("tradewind_feed_duplicates_total", exchange="binance", symbol="BTCUSDT")
    published = [
        [t.trade_id for t in venue.handle(conn, f, 0) if isinstance(t, Trade)]
        for f in (
            frame("trade", 100),
            frame("aggTrade", 100),
            frame("aggTrade", 100),
            frame("trade", 100),
            frame("trade", 101),
            frame("aggTrade", 101),
        )
    ]
    assert published == [["100"], ["a100"], [], [], ["101"], ["a101"]]
    assert venue.parse_errors == 0
    assert (
        _metric("tradewind_feed_duplicates_total", exchange="binance", symbol="BTCUSDT") == dups + 2
    )
    assert isinstance(venue, BinanceFeed)
    assert venue.last_trade["BTCUSDT"] == 101
    assert not venue.tasks, "an aggregate id is not a gap in trade ids"
