"""The z-score and book-imbalance strategies on small hand-made sequences."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradewind.events import Bar, Quote, Side, Signal, Trade
from tradewind.strategies import STRATEGIES, build_params
from tradewind.strategies.base import StrategyContext
from tradewind.strategies.imbalance import BookImbalance, imbalance
from tradewind.strategies.zscore import ZScoreReversion, zscore

S = 1_000_000_000


def bar(i: int, close: float) -> Bar:
    return Bar(
        id=f"b{i}",
        ts_event=(i + 1) * 60 * S,
        exchange="x",
        symbol="S",
        interval_s=60.0,
        ts_open=i * 60 * S,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
        trades=1,
        ts_recv=0,
    )


def quote(t_s: float, bid_qty: float, ask_qty: float) -> Quote:
    return Quote(
        id=f"q{t_s}",
        ts_event=int(t_s * S),
        exchange="x",
        symbol="S",
        bid=100.0,
        bid_qty=bid_qty,
        ask=100.5,
        ask_qty=ask_qty,
        ts_recv=0,
    )


def zs(**params: object) -> ZScoreReversion:
    p = build_params("zscore", {"window": 5, "entry_z": 1.5, "exit_z": 0.5, **params})
    return ZScoreReversion(p, StrategyContext("zscore", "x", "S"))


def feed_bars(s: ZScoreReversion, closes: list[float], start: int = 0) -> list[list[Signal]]:
    """Per bar, the signals it produced (the context's time follows the bars,
    as the signal service moves it)."""
    out = []
    for i, c in enumerate(closes, start):
        b = bar(i, c)
        s.ctx.now_ns = b.ts_event
        s.on_bar(b)
        out.append(s.ctx.drain())
    return out


def test_registered() -> None:
    assert STRATEGIES["zscore"] is ZScoreReversion
    assert STRATEGIES["imbalance"] is BookImbalance


def test_zscore_by_hand() -> None:
    # mean 98, deviations 2,2,2,2,-8: sample variance 80/4 = 20
    assert zscore([100.0, 100.0, 100.0, 100.0, 90.0]) == pytest.approx(-8 / 20**0.5)
    assert zscore([1.0, 1.0, 1.0]) is None


def test_zscore_enters_below_and_exits_on_reversion() -> None:
    s = zs()
    out = feed_bars(s, [100.0, 100.0, 100.0, 100.0, 90.0, 98.0])
    assert out[:4] == [[], [], [], []]  # window not yet full
    (buy,) = out[4]  # z = -1.79 <= -1.5
    assert (buy.side, buy.quantity) == (Side.BUY, Decimal("0.01"))
    (sell,) = out[5]  # window 100,100,100,90,98: z = 0.09, within exit_z
    assert (sell.side, sell.quantity) == (Side.SELL, Decimal("0.01"))
    assert s.ctx.position == 0


def test_zscore_holds_between_exit_and_entry() -> None:
    s = zs()
    out = feed_bars(s, [100.0, 100.0, 100.0, 100.0, 90.0, 93.0])
    # window 100,100,100,90,93: mean 96.6, sd 4.83, z = -0.75: hold the long
    assert [len(x) for x in out] == [0, 0, 0, 0, 1, 0]
    assert s.ctx.position == Decimal("0.01")


def test_zscore_spike_up_is_short_only_when_allowed() -> None:
    closes = [100.0, 100.0, 100.0, 100.0, 110.0]
    assert feed_bars(zs(), closes)[4] == []
    (sig,) = feed_bars(zs(allow_short=True), closes)[4]
    assert sig.side is Side.SELL


def test_zscore_state_round_trip() -> None:
    a = zs()
    feed_bars(a, [100.0, 100.0, 100.0, 100.0])
    b = zs()
    b.load_state(a.save_state())
    assert feed_bars(a, [90.0], 4)[0][0].side is Side.BUY
    assert feed_bars(b, [90.0], 4)[0][0].side is Side.BUY


def test_zscore_params_checked() -> None:
    with pytest.raises(ValueError, match="exit_z"):
        build_params("zscore", {"entry_z": 1.0, "exit_z": 1.0})
    with pytest.raises(ValueError, match="window"):
        build_params("zscore", {"window": 1})


def imb(**params: object) -> BookImbalance:
    p = build_params("imbalance", {"threshold": 0.6, "hold_s": 5, **params})
    return BookImbalance(p, StrategyContext("imbalance", "x", "S"))


def feed_quotes(s: BookImbalance, quotes: list[Quote]) -> list[list[Signal]]:
    out = []
    for q in quotes:
        s.ctx.now_ns = q.ts_event
        s.ctx.bid, s.ctx.ask = q.bid, q.ask
        s.on_quote(q)
        out.append(s.ctx.drain())
    return out


def test_imbalance_value() -> None:
    assert imbalance(8.0, 2.0) == pytest.approx(0.6)
    assert imbalance(0.0, 0.0) is None


def test_imbalance_enters_holds_and_exits() -> None:
    s = imb()
    out = feed_quotes(
        s,
        [
            quote(0, 5, 5),  # 0: nothing
            quote(1, 8, 2),  # +0.6: buy
            quote(2, 5, 5),  # flat book, but inside the hold
            quote(5.9, 1, 9),  # still inside the hold (4.9 s)
            quote(6.5, 5, 5),  # hold over, imbalance gone: exit
            quote(7, 1, 9),  # -0.8 but no shorting: nothing
        ],
    )
    assert [[(x.side, x.quantity) for x in o] for o in out] == [
        [],
        [(Side.BUY, Decimal("0.01"))],
        [],
        [],
        [(Side.SELL, Decimal("0.01"))],
        [],
    ]
    assert out[1][0].ref_ask == 100.5  # priced on the quote it saw


def test_imbalance_persisting_restarts_the_hold() -> None:
    s = imb()
    out = feed_quotes(s, [quote(0, 9, 1), quote(6, 9, 1), quote(10, 5, 5), quote(11.5, 5, 5)])
    assert [len(o) for o in out] == [1, 0, 0, 1]


def test_imbalance_reverses_when_shorting_is_allowed() -> None:
    s = imb(allow_short=True)
    out = feed_quotes(s, [quote(0, 9, 1), quote(6, 1, 9)])
    assert (out[1][0].side, out[1][0].quantity) == (Side.SELL, Decimal("0.02"))
    assert s.ctx.position == Decimal("-0.01")


def test_imbalance_exits_on_a_trade_after_the_hold() -> None:
    s = imb()
    feed_quotes(s, [quote(0, 9, 1)])
    t = Trade(
        id="t1",
        ts_event=7 * S,
        exchange="x",
        symbol="S",
        price=100.2,
        qty=1.0,
        side=None,
        trade_id="1",
        ts_recv=0,
    )
    s.ctx.now_ns = t.ts_event
    s.on_trade(t)
    (sig,) = s.ctx.drain()
    assert sig.side is Side.SELL


def test_imbalance_min_depth_and_state() -> None:
    s = imb(min_depth=100)
    assert feed_quotes(s, [quote(0, 9, 1)]) == [[]]
    a = imb()
    feed_quotes(a, [quote(0, 9, 1)])
    b = imb()
    b.ctx.restore(a.ctx.state())
    b.load_state(a.save_state())
    assert feed_quotes(b, [quote(3, 5, 5)]) == [[]]  # still holding
    assert feed_quotes(b, [quote(6, 5, 5)])[0][0].side is Side.SELL
