from __future__ import annotations

from tradewind.events import Side, Trade
from tradewind.strategies.bars import BarBuilder

S = 1_000_000_000


def t(ts: float, price: float, qty: float = 1.0) -> Trade:
    return Trade(
        id=f"t{ts}",
        ts_event=int(ts * S),
        exchange="x",
        symbol="S",
        price=price,
        qty=qty,
        side=Side.BUY,
        trade_id=str(ts),
        ts_recv=0,
    )


def test_bars_close_on_the_next_interval_with_ohlcv() -> None:
    b = BarBuilder("x", "S", 1.0)
    assert b.add(t(0.1, 10)) is None
    assert b.add(t(0.5, 12)) is None
    assert b.add(t(0.9, 9, 2)) is None
    bar = b.add(t(1.2, 11))
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades) == (10, 12, 9, 9, 4, 3)
    assert bar.ts_open == 0 and bar.ts_event == S


def test_time_passing_closes_a_bar_without_trades() -> None:
    b = BarBuilder("x", "S", 1.0)
    b.add(t(0.2, 10))
    assert b.advance(int(0.99 * S)) is None
    bar = b.advance(int(1.01 * S))
    assert bar is not None and bar.close == 10


def test_a_late_trade_never_reopens_a_closed_bar() -> None:
    b = BarBuilder("x", "S", 1.0)
    b.add(t(0.2, 10))
    first = b.advance(int(1.5 * S))
    assert first is not None
    b.add(t(0.9, 11))  # stamped inside the closed bar
    second = b.add(t(2.1, 12))
    assert second is not None and second.id != first.id
    assert second.ts_open == S and second.close == 11


def test_state_round_trip() -> None:
    b = BarBuilder("x", "S", 1.0)
    b.add(t(0.2, 10))
    c = BarBuilder("x", "S", 1.0)
    c.restore(b.state())
    assert c.add(t(1.1, 3)) == b.add(t(1.1, 3))
