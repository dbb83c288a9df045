"""The live OKX feed against the fake OKX: checksummed books that resync on a
bad checksum or a withheld update, idle pings, and trades kept across drops."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.integration.test_feeds import live
from tradewind.events import Trade
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.feeds import Feeds
from tradewind.exchanges.okx.fake import OkxVenue
from tradewind.exchanges.okx.parser import OkxParser

RECORDING = str(
    Path(__file__).resolve().parents[1] / "data" / "venues" / "okx_v5_ws_20220513.jsonl"
)
SYMBOLS = ["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"]


def _recorded_trade_ids() -> set[str]:
    parser = OkxParser()
    return {
        e.id
        for line in Path(RECORDING).read_bytes().splitlines()
        for e in parser.parse(line, 0)
        if isinstance(e, Trade)
    }


async def test_okx_books_verify_checksums_and_resync_on_a_corrupt_one(make_settings: Any) -> None:
    async def corrupt(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.corrupt_checksum(1, "okx", "BTC-USDT")

    run = await live(make_settings, [RECORDING], "okx", SYMBOLS, speed=2, during=corrupt)
    books = run.venue("okx").books
    btc = books["BTC-USDT"]
    assert btc.checksum_failures == 1 and btc.resyncs == 1 and btc.synced
    for s in ("UNI-USD-SWAP", "BTC-USD-220527"):
        assert books[s].checksum_failures == 0 and books[s].synced
        assert books[s].checksums_ok > 20  # type: ignore[attr-defined]
    assert set(run.trade_ids) == _recorded_trade_ids()


async def test_okx_withheld_update_is_caught_by_the_checksum(make_settings: Any) -> None:
    async def skip(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.0)
        fake.skip(1, "okx", "UNI-USD-SWAP")

    run = await live(make_settings, [RECORDING], "okx", SYMBOLS, speed=2, during=skip)
    uni = run.venue("okx").books["UNI-USD-SWAP"]
    assert uni.checksum_failures == 1 and uni.resyncs == 1 and uni.synced


async def test_okx_drops_lose_and_duplicate_no_trade(make_settings: Any) -> None:
    async def drop(fake: FakeExchange, feeds: Feeds) -> None:
        for _ in range(2):
            await asyncio.sleep(1.0)
            fake.drop("okx")

    run = await live(make_settings, [RECORDING], "okx", SYMBOLS, speed=2, during=drop)
    assert run.venue("okx").connections[0].connects == 3
    assert len(run.trade_ids) == len(set(run.trade_ids))
    assert set(run.trade_ids) == _recorded_trade_ids()
    assert all(b.synced for b in run.venue("okx").books.values())


async def test_okx_idle_connection_sends_text_ping(make_settings: Any) -> None:
    pings: list[int] = []

    async def idle(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(1.5)
        venue = fake.venues["okx"]
        assert isinstance(venue, OkxVenue)
        pings.append(venue.pings)

    run = await live(
        make_settings,
        [RECORDING],
        "okx",
        ["BTC-USDT"],
        speed=2,
        during=idle,
        ping_interval_s=0.2,
        channels={"okx": ["tickers"]},
    )
    # Tickers arrive about once a second: the quiet gaps get pinged, the busy ones not.
    assert 1 <= pings[0] < 1.5 / 0.2
    assert run.venue("okx").connections[0].connects == 1
