"""``tradewind trade`` on each venue's live protocol, not only Binance's: the
fake exchange replays the venue's recording over its own WebSocket and REST
API, paper orders fill from the live book, and the summary the process prints
agrees with what the store holds."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import market_file, spawned
from tests.e2e.test_trade import account_from_store, env_for
from tradewind.exchanges.fake import FakeExchange

pytestmark = pytest.mark.slow

EMA = ["--strategy", "ema_cross", "-p", "fast=2", "-p", "slow=4", "-p", "bar_interval_s=1"]
VENUES = [
    pytest.param(
        "coinbase", "coinbase_advanced_ws_20260809.jsonl", "BTC-USD,ETH-USD", EMA, id="coinbase"
    ),
    pytest.param(
        "kraken",
        "kraken_spot_ws_v1_20210417.jsonl",
        "XMR/USD,WAVES/EUR,ADA/BTC",
        ["--strategy", "imbalance"],
        id="kraken",
    ),
    pytest.param("bybit", "bybit_v5_spot_ws_20260809.jsonl", "BTCUSDT,ETHUSDT", EMA, id="bybit"),
]


def summary_rows(text: str) -> dict[str, str]:
    """The summary table's rows as metric -> value."""
    rows: dict[str, str] = {}
    for line in text.split("Tradewind run", 1)[1].splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)]
        if len(cells) == 4 and cells[1]:
            rows[cells[1]] = cells[2]
    return rows


@pytest.mark.parametrize(("venue", "recording", "symbols", "strategy"), VENUES)
async def test_trade_on_each_venue_fills_paper_orders(
    venue: str, recording: str, symbols: str, strategy: list[str], tmp_path: Path
) -> None:
    db = tmp_path / f"{venue}.db"
    async with (
        FakeExchange([market_file(recording)], speed=10, exchanges=[venue]) as fake,
        spawned(
            *[sys.executable, "-m", "tradewind", "trade", "--venue", venue, "--symbols", symbols],
            *[*strategy, "--db", str(db), "--no-dashboard", "--status-every", "1"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env_for(fake),
            cwd=tmp_path,
        ) as proc,
    ):
        await fake.wait_done(venue, timeout=120)
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stdout.decode()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert f"none is sent to {venue}" in " ".join(text.split())
    assert f"{venue}:" in text and "feed=connected" in text
    rows = summary_rows(text)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        fills = conn.execute("SELECT exchange, symbol, price FROM fills").fetchall()
        trades = conn.execute("SELECT count(*) FROM trades WHERE exchange = ?", (venue,))
        stored_trades = trades.fetchone()[0]
        approved = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert fills, text
    assert stored_trades > 0
    assert {f[0] for f in fills} == {venue}
    assert {f[1] for f in fills} <= set(symbols.split(","))
    assert rows["fills"] == f"{len(fills):,}"
    assert rows["orders approved"] == f"{approved:,}"
    pf = account_from_store(db)
    for (ex, sym), p in pf.positions.items():
        assert rows[f"position {ex}:{sym}"] == f"{p.qty.normalize():f}"
    # Money per settlement currency, as the status lines name each symbol's.
    currency = dict(re.findall(rf"^{venue}:(\S+) .* currency=(\S+) ", text, re.M))
    assert set(currency) == set(symbols.split(",")), currency
    cent = Decimal("0.0001")
    for cur in sorted(set(currency.values())):
        mine = [p for (_ex, sym), p in pf.positions.items() if currency.get(sym) == cur]
        named = f" ({cur})" if f"fees ({cur})" in rows else ""
        fees = sum((p.fees for p in mine), Decimal(0))
        realized = sum((p.realized_pnl for p in mine), Decimal(0))
        assert Decimal(rows[f"fees{named}"].replace(",", "")) == fees.quantize(cent), cur
        assert Decimal(rows[f"realized PnL{named}"].replace(",", "")) == realized.quantize(cent)
