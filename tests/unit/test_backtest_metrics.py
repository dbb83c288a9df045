"""Report statistics against values worked out by hand, and the equity walk
through the portfolio on a tiny synthetic run."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
import pytest

from tradewind.backtest import metrics as m
from tradewind.backtest.equity import build_equity
from tradewind.events import Fill, Liquidity, Side

# equity 100 → 110 → 99 → 99 → 118.8: returns +10 %, -10 %, 0 %, +20 %
EQUITY = [100.0, 110.0, 99.0, 99.0, 118.8]
PER_YEAR = 4.0  # one period = a quarter of a year, so the scale is sqrt(4) = 2


def test_returns() -> None:
    assert m.simple_returns(EQUITY) == pytest.approx([0.1, -0.1, 0.0, 0.2])


def test_sharpe_by_hand() -> None:
    # mean 0.05; sample variance (0.05²+0.15²+0.05²+0.15²)/3 = 0.05/3
    expected = 0.05 / math.sqrt(0.05 / 3) * 2
    assert m.sharpe(m.simple_returns(EQUITY), PER_YEAR) == pytest.approx(expected)
    assert expected == pytest.approx(0.7745967)


def test_sortino_by_hand() -> None:
    # downside deviation sqrt(0.1² / 4) = 0.05; 0.05 / 0.05 * 2 = 2
    assert m.sortino(m.simple_returns(EQUITY), PER_YEAR) == pytest.approx(2.0)


def test_ratios_undefined() -> None:
    assert m.sharpe([0.01], PER_YEAR) is None
    assert m.sharpe([0.01, 0.01, 0.01], PER_YEAR) is None
    assert m.sortino([0.01, 0.02], PER_YEAR) is None
    assert m.sortino([], PER_YEAR) is None


def test_max_drawdown_by_hand() -> None:
    dd = m.max_drawdown(EQUITY)
    assert dd.amount == pytest.approx(11.0)
    assert dd.fraction == pytest.approx(0.1)
    assert (dd.peak_index, dd.trough_index) == (1, 2)
    deeper = m.max_drawdown([100.0, 120.0, 90.0, 130.0, 100.0])
    assert deeper.fraction == pytest.approx(0.25)
    assert deeper.amount == pytest.approx(30.0)
    assert m.max_drawdown([1.0, 2.0, 3.0]).fraction == 0.0


def test_drawdown_series() -> None:
    assert m.drawdown_series(EQUITY) == pytest.approx([0.0, 0.0, -0.1, -0.1, 0.0])


def test_win_rate() -> None:
    assert m.win_rate([5.0, -2.0, 0.0, 3.0]) == 0.5
    assert m.win_rate([]) is None


def test_annualisation_is_365_days_of_seconds() -> None:
    assert m.periods_per_year(86_400) == 365
    assert m.periods_per_year(1.0) == 365 * 86_400
    with pytest.raises(ValueError, match="positive"):
        m.periods_per_year(0)


def _fill(n: int, ts: int, side: Side, qty: str, price: str, fee: str) -> Fill:
    return Fill(
        id=f"f{n}",
        ts_event=ts,
        client_order_id=f"c{n}",
        exchange_order_id=f"e{n}",
        exchange="x",
        symbol="S",
        side=side,
        price=Decimal(price),
        qty=Decimal(qty),
        fee=Decimal(fee),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
    )


def test_equity_walk_by_hand() -> None:
    marks = [(1, "x", "S", 100.0), (3, "x", "S", 110.0), (4, "x", "S", 90.0), (6, "x", "S", 95.0)]
    fills = [
        _fill(2, 5, Side.SELL, "1", "95", "0.1"),
        _fill(1, 2, Side.BUY, "1", "100", "0.1"),
    ]
    c = build_equity(marks, fills, Decimal(1000))
    assert c.times == [1, 2, 3, 4, 5, 6]
    assert c.equity == pytest.approx([1000.0, 999.9, 1009.9, 989.9, 994.8, 994.8])
    assert c.pnl == Decimal("-5.2")
    assert c.portfolio.totals()[""].realized_pnl == Decimal(-5)
    assert c.portfolio.totals()[""].fees == Decimal("0.2")
    assert [(t.direction, t.pnl, t.fees) for t in c.trips] == [
        ("long", Decimal("-5.2"), Decimal("0.2"))
    ]
    assert c.exposed_ns == 3
    assert c.exposure == pytest.approx(3 / 5)
    dd = m.max_drawdown(c.equity)
    assert dd.amount == pytest.approx(20.0)
    assert c.sample(2) == ([1, 3, 5, 6], pytest.approx([1000.0, 1009.9, 994.8, 994.8]))


def test_reversal_closes_one_trip_and_opens_the_next() -> None:
    marks = [(1, "x", "S", 100.0), (3, "x", "S", 110.0), (5, "x", "S", 105.0)]
    fills = [
        _fill(1, 2, Side.BUY, "1", "100", "0.1"),
        _fill(2, 4, Side.SELL, "2", "110", "0.2"),
        _fill(3, 6, Side.BUY, "1", "105", "0.1"),
    ]
    c = build_equity(marks, fills, Decimal(1000))
    # long: +10 realized, fees 0.1 open + half of 0.2; short: +5, fees 0.1 + 0.1
    assert [(t.direction, t.pnl, t.fees) for t in c.trips] == [
        ("long", Decimal("9.8"), Decimal("0.2")),
        ("short", Decimal("4.8"), Decimal("0.2")),
    ]
    assert c.pnl == Decimal("14.6")
    assert c.exposed_ns == 4  # from the first buy (t=2) to the final buy (t=6)
    assert c.exposure == pytest.approx(4 / 5)


def test_open_position_is_marked_to_the_last_price() -> None:
    marks = [(1, "x", "S", 100.0), (9, "x", "S", 120.0)]
    c = build_equity(marks, [_fill(1, 2, Side.BUY, "2", "100", "0")], Decimal(1000))
    assert c.final_equity == Decimal(1040)
    assert c.trips == []
    assert c.exposed_ns == 7


def test_a_position_takes_the_mark_before_its_fill_and_every_symbol_ends_at_its_last() -> None:
    marks = [
        (1, "x", "S", 100.0),
        (2, "x", "T", 7.0),
        (3, "x", "S", 101.0),
        (5, "x", "S", 102.0),
        (7, "x", "T", 8.0),
        (8, "x", "S", 90.0),
        (9, "x", "S", 91.0),
    ]
    fills = [_fill(1, 4, Side.BUY, "1", "100", "0"), _fill(2, 6, Side.SELL, "1", "103", "0")]
    c = build_equity(marks, fills, Decimal(1000))
    assert c.times == [1, 4, 5, 6, 9]
    assert c.equity == [1000.0, 1001.0, 1002.0, 1003.0, 1003.0]
    assert list(c.portfolio.marks.items()) == [
        (("x", "S"), Decimal("91.0")),
        (("x", "T"), Decimal("8.0")),
    ]
    assert c.portfolio.positions[("x", "S")].mark == Decimal("91.0")


def test_price_panel_shows_the_most_filled_symbol_with_every_fill() -> None:
    marks = [(1, "x", "S", 100.0), (2, "x", "T", 7.0), (3, "x", "S", 110.0), (6, "x", "S", 95.0)]
    other = msgspec.structs.replace(_fill(9, 2, Side.BUY, "1", "7", "0"), symbol="T")
    fills = [
        _fill(2, 5, Side.SELL, "1", "95", "0"),
        _fill(1, 2, Side.BUY, "1", "100", "0"),
        other,
    ]
    c = build_equity(marks, fills, Decimal(1000))
    assert c.price_of == ("x", "S")
    assert c.price_times == [1, 3, 6] and c.price_values == [100.0, 110.0, 95.0]
    assert c.fill_points == [(2, "buy", 100.0), (5, "sell", 95.0)]
    assert c.sample_price(2) == ([1, 3, 5, 6], [100.0, 110.0, 110.0, 95.0])
    quiet = build_equity(
        [(1, "x", "T", 7.0), (2, "x", "S", 1.0), (3, "x", "T", 8.0)], [], Decimal(1)
    )
    assert quiet.price_of == ("x", "T") and quiet.fill_points == []
