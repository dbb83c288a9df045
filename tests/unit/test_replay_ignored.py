"""Every message a replay reads but makes no event of is counted by reason,
so a summary can say why N messages were not used."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import market_file
from tradewind.exchanges.replay import ReplaySource


async def _drain(src: ReplaySource) -> int:
    n = 0
    async for batch in src.batches():
        n += len(batch)
    return n


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        # 17 kline_1m messages, 2 of them closed (SOURCES.md).
        ("binance_spot_4sym_ws_20210814.jsonl", {"kline_open": 15}),
        ("binance_spot_btcusdt_trades_20240808.jsonl", {}),
    ],
)
def test_ignored_messages_are_counted_by_reason(name: str, ignored: dict[str, int]) -> None:
    src = ReplaySource([market_file(name)])
    asyncio.run(_drain(src))
    assert dict(src.stats.ignored) == ignored


def test_subscription_acks_are_counted_on_a_real_bybit_recording() -> None:
    src = ReplaySource([market_file("bybit_v5_spot_ws_20260809.jsonl")])
    asyncio.run(_drain(src))
    assert src.stats.ignored["subscription_ack"] == 7, "7 subscribe acks in SOURCES.md"
    assert src.stats.lines == 681


def test_counts_add_up_over_files_and_match_batch_and_paced_reads(tmp_path: Path) -> None:
    files = [market_file("binance_spot_4sym_ws_20210814.jsonl")] * 2
    fast = ReplaySource(files)
    asyncio.run(_drain(fast))
    paced = ReplaySource(files, speed=1e9)
    asyncio.run(_drain(paced))
    assert fast.stats.ignored == paced.stats.ignored == {"kline_open": 30}
