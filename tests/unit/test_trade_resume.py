"""``tradewind trade`` restarted on a store that holds an order still open:
risk rebuilds it as open, and the paper exchange, which lost it with the
process, is sent it again, so the two agree; a clean stop then cancels it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from tradewind.events import OrderRequest, OrderType, Side
from tradewind.runtime.trade import LiveTrader
from tradewind.storage import create_store

NOWHERE = "127.0.0.1:9"


async def test_an_order_lost_with_the_process_is_sent_again(make_settings: Any) -> None:
    settings = make_settings(
        feed={
            "source": "live",
            "ws_urls": {"binance": f"ws://{NOWHERE}"},
            "rest_urls": {"binance": f"http://{NOWHERE}"},
        }
    )
    store = create_store(settings)
    await store.start()
    order = OrderRequest(
        id="tw-open",
        ts_event=1_723_161_255_000_000_000,
        client_order_id="tw-open",
        signal_id="sig-1",
        strategy="ema_cross",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.01"),
        price=Decimal("100"),
    )
    await store.write([order])
    await store.close()

    trader = LiveTrader(settings)
    await trader.start()
    try:
        assert list(trader.pipeline.risk.engine.open_orders) == ["tw-open"]
        assert trader.resent == 1
        paper = trader.pipeline.execution.paper
        assert paper is not None
        for _ in range(200):
            if paper.knows("tw-open"):
                break
            await asyncio.sleep(0.02)
        assert paper.knows("tw-open")
        assert trader.view().symbols[0].open_orders == 1
    finally:
        await trader.stop()
    assert trader.cancelled == 1
    assert not trader.pipeline.risk.engine.open_orders
