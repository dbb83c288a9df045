from __future__ import annotations

from decimal import Decimal as D

from tradewind.events import Side
from tradewind.portfolio import PositionState


def test_open_add_reduce_flip_close() -> None:
    p = PositionState("x", "BTCUSDT")
    p.apply(Side.BUY, D("1"), D("100"), D("0.1"))
    p.apply(Side.BUY, D("1"), D("110"), D("0.1"))
    assert (p.qty, p.avg_price) == (D("2"), D("105"))
    p.apply(Side.SELL, D("0.5"), D("120"), D("0.05"))
    assert p.realized_pnl == D("7.5")
    assert p.qty == D("1.5") and p.avg_price == D("105")
    p.apply(Side.SELL, D("2.5"), D("100"), D("0"))
    assert p.realized_pnl == D("7.5") + D("1.5") * D("-5")
    assert p.qty == D("-1") and p.avg_price == D("100")
    p.mark = D("90")
    assert p.unrealized_pnl == D("10")
    p.apply(Side.BUY, D("1"), D("95"), D("0"))
    assert p.qty == 0 and p.avg_price == 0
    assert p.realized_pnl == D("0") + D("5")
    assert p.fees == D("0.25")


def test_decimal_arithmetic_is_exact() -> None:
    p = PositionState("x", "y")
    for _ in range(10):
        p.apply(Side.BUY, D("0.1"), D("0.1"), D("0"))
    assert p.qty == D("1.0")
    p.apply(Side.SELL, D("1.0"), D("0.3"), D("0"))
    assert p.realized_pnl == D("0.2")
