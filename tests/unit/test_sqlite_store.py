"""SqliteStore: rows go in many to a statement, and whatever the batch size
(below, at and across the statement size) every row lands once, exactly,
and a redelivered batch inserts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.bus_contract import fill, trade
from tradewind.events import Event
from tradewind.storage.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "t.db")
    await s.start()
    yield s
    await s.close()


@pytest.mark.parametrize("n", [1, 127, 128, 129, 300, 1024])
async def test_every_row_lands_once_whatever_the_batch_size(store: SqliteStore, n: int) -> None:
    batch: list[Event] = [trade(i) for i in range(n)]
    assert await store.write(batch) == {"trades": n}
    assert await store.write(batch) == {"trades": 0}
    assert await store.write([*batch, trade(n), trade(n)]) == {"trades": 1}
    assert (await store.counts())["trades"] == n + 1
    t = trade(n - 1)
    rows = await store.fetch(
        "SELECT id, exchange, symbol, trade_id, price, qty, side, ts_event, ts_recv "
        "FROM trades WHERE id = ?",
        t.id,
    )
    assert rows == [
        (t.id, t.exchange, t.symbol, t.trade_id, t.price, t.qty, "buy", t.ts_event, t.ts_recv)
    ]


async def test_money_is_exact_across_tables(store: SqliteStore) -> None:
    batch: list[Event] = [fill(i) for i in range(200)] + [trade(i) for i in range(5)]
    assert await store.write(batch) == {"fills": 200, "trades": 5}
    rows = await store.fetch("SELECT price, qty, fee FROM fills WHERE id = ?", "f1")
    assert [tuple(Decimal(str(v)) for v in r) for r in rows] == [
        (Decimal("61837.63"), Decimal("0.00100"), Decimal("0.0618"))
    ]
