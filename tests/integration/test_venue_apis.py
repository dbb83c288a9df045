"""Live feeds against today's venue APIs, through the fake exchange: Coinbase's
outgoing-message limit, refused subscriptions and ``-USDC`` answered as
``-USD``; Bybit's ``u=1`` reset; Kraken's timestamps and v1 symbol names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.integration.test_feeds import COINBASE, live
from tests.unit.test_coinm import RECORDING as COINM_RECORDING
from tests.unit.test_coinm import _trades as _coinm_trades
from tradewind.config import ConfigError
from tradewind.events import BookDelta, Trade
from tradewind.exchanges.coinbase.fake import CoinbaseVenue
from tradewind.exchanges.fake import FakeExchange
from tradewind.exchanges.feeds import Feeds, validate_feed_settings


def _fake_coinbase(fake: FakeExchange) -> CoinbaseVenue:
    venue = fake.venues["coinbase"]
    assert isinstance(venue, CoinbaseVenue)
    return venue


async def test_coinbase_subscribes_at_most_8_messages_a_second_across_shards(
    make_settings: Any,
) -> None:
    sent: list[float] = []

    async def watch(fake: FakeExchange, feeds: Feeds) -> None:
        await asyncio.sleep(2.0)
        sent.extend(_fake_coinbase(fake).received_at)

    await live(
        make_settings,
        [COINBASE],
        "coinbase",
        ["BTC-USD", "ETH-USD", "SOL-USD"],
        speed=10,
        during=watch,
        symbols_per_connection=1,
    )
    assert len(sent) == 3 * 4  # three shards, four channels each
    for i in range(len(sent) - 8):
        assert sent[i + 8] - sent[i] >= 1.0 - 0.02, sent


async def test_coinbase_rejected_subscription_is_unhealthy_until_a_retry_succeeds(
    make_settings: Any,
) -> None:
    seen: dict[str, Any] = {}

    async def refuse(fake: FakeExchange, feeds: Feeds) -> None:
        _fake_coinbase(fake).refusing.add("ETH-USD")
        await asyncio.sleep(0.8)
        venue = feeds.venues["coinbase"]
        seen["rejected"] = dict(venue.rejected)
        seen["gauge"] = REGISTRY.get_sample_value(
            "tradewind_feed_subscription_rejected", {"exchange": "coinbase", "symbol": "ETH-USD"}
        )
        _fake_coinbase(fake).refusing.clear()
        await asyncio.sleep(2.5)

    run = await live(
        make_settings, [COINBASE], "coinbase", ["BTC-USD", "ETH-USD"], speed=2, during=refuse
    )
    assert list(seen["rejected"]) == ["ETH-USD"] and seen["gauge"] == 1
    venue = run.venue("coinbase")
    assert venue.rejected == {}
    assert (
        REGISTRY.get_sample_value(
            "tradewind_feed_subscription_rejected", {"exchange": "coinbase", "symbol": "ETH-USD"}
        )
        == 0
    )
    assert any(isinstance(e, Trade) and e.symbol == "ETH-USD" for e in run.events)


async def test_coinbase_usdc_products_come_back_under_their_own_name(make_settings: Any) -> None:
    run = await live(make_settings, [COINBASE], "coinbase", ["BTC-USDC"], speed=10)
    symbols = {e.symbol for e in run.events}
    assert symbols == {"BTC-USDC"}
    trades = [e for e in run.events if isinstance(e, Trade)]
    assert trades and all(t.id.startswith("coinbase:BTC-USDC:t") for t in trades)
    assert any(isinstance(e, BookDelta) and e.snapshot for e in run.events)
    assert run.venue("coinbase").books["BTC-USDC"].synced


@pytest.mark.parametrize(("symbol", "v2"), [("XBT/USD", "BTC/USD"), ("XDG/EUR", "DOGE/EUR")])
def test_kraken_v1_symbol_names_are_refused_at_start(
    make_settings: Any, symbol: str, v2: str
) -> None:
    settings = make_settings(feed={"source": "live", "exchanges": ["kraken"], "symbols": [symbol]})
    with pytest.raises(ConfigError, match=f"use '{v2}'"):
        validate_feed_settings(settings)


async def test_live_dstream_feed_from_the_fake_keeps_contracts(make_settings: Any) -> None:
    run = await live(
        make_settings,
        [str(COINM_RECORDING)],
        "binance-coinm",
        ["BCHUSD_PERP", "ETHUSD_210924"],
        speed=10,
        channels={"binance-coinm": ["aggTrade", "bookTicker"]},
    )
    trades = [e for e in run.events if isinstance(e, Trade)]
    recorded = _coinm_trades("BCHUSD_PERP") + _coinm_trades("ETHUSD_210924")
    assert {t.id for t in trades} == {t.id for t in recorded}
    assert {t.exchange for t in trades} == {"binance-coinm"}
    assert sorted(t.qty for t in trades) == sorted(t.qty for t in recorded)  # contracts
