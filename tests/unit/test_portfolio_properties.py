"""Portfolio accounting: the bugs that cost money, and the invariants over
random fills on several exchanges and symbols, prices below and above 1, with
fees and marks.

The property checks the portfolio against a model the test keeps itself: a
list of open lots per symbol (first in, first out does not matter for the
average-cost method, so the model keeps one signed quantity and its cost)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewind.events import Fill, Liquidity, Side
from tradewind.exchanges.instruments import load_instruments
from tradewind.portfolio import Portfolio, PositionState

KEYS = [("binance", "BTCUSDT"), ("binance", "ADAUSDT"), ("kraken", "XBT/USD")]
"""Two exchanges, prices above and below 1."""
PRICES = {KEYS[0]: D("60000"), KEYS[1]: D("0.35"), KEYS[2]: D("61000")}
UNIT = {KEYS[0]: D("0.001"), KEYS[1]: D("10"), KEYS[2]: D("0.0005")}


def a_fill(n: int, key: tuple[str, str], side: Side, qty: D, price: D, fee: D) -> Fill:
    return Fill(
        id=f"f{n}",
        ts_event=n,
        client_order_id=f"c{n}",
        exchange_order_id=f"e{n}",
        exchange=key[0],
        symbol=key[1],
        side=side,
        price=price,
        qty=qty,
        fee=fee,
        fee_currency="USD",
        liquidity=Liquidity.TAKER,
    )


def test_partial_close_of_a_small_long_keeps_its_average_price() -> None:
    """Catches ``qty > 0`` written as ``qty > 1``: every position of one unit
    or less (every realistic BTC size) would take the closing price as its
    average after a partial close."""
    p = PositionState("binance", "BTCUSDT")
    p.apply(Side.BUY, D("0.5"), D("100"), D("0"))
    p.apply(Side.SELL, D("0.2"), D("110"), D("0"))
    assert (p.qty, p.avg_price, p.realized_pnl) == (D("0.3"), D("100"), D("2"))
    p.apply(Side.BUY, D("0.3"), D("120"), D("0"))
    assert (p.qty, p.avg_price) == (D("0.6"), D("110"))


def test_partial_close_of_a_small_short_keeps_its_average_price() -> None:
    p = PositionState("binance", "BTCUSDT")
    p.apply(Side.SELL, D("0.5"), D("100"), D("0"))
    p.apply(Side.SELL, D("0.5"), D("110"), D("0"))
    assert (p.qty, p.avg_price) == (D("-1.0"), D("105"))
    p.apply(Side.BUY, D("0.4"), D("95"), D("0"))
    assert (p.qty, p.avg_price, p.realized_pnl) == (D("-0.6"), D("105"), D("4.0"))


def test_flip_of_a_small_position_starts_at_the_flip_price() -> None:
    p = PositionState("binance", "BTCUSDT")
    p.apply(Side.BUY, D("0.3"), D("100"), D("0"))
    p.apply(Side.SELL, D("0.5"), D("90"), D("0"))
    assert (p.qty, p.avg_price, p.realized_pnl) == (D("-0.2"), D("90"), D("-3.0"))
    p.apply(Side.BUY, D("0.7"), D("80"), D("0"))
    assert (p.qty, p.avg_price, p.realized_pnl) == (D("0.5"), D("80"), D("-1.0"))


def test_position_opened_after_a_mark_has_that_mark() -> None:
    """A position opened after the mark arrived must be valued at it, not at
    nothing (its unrealized PnL would read 0 until the next trade)."""
    pf = Portfolio()
    pf.mark("binance", "ADAUSDT", 0.4)
    p = pf.apply(a_fill(1, KEYS[1], Side.BUY, D("100"), D("0.35"), D("0")))
    assert p.mark == D("0.4")
    assert p.unrealized_pnl == D("5.00")
    assert pf.totals()[""].unrealized_pnl == D("5.00")
    pf.mark("binance", "ADAUSDT", D("0.3"))
    assert p.mark == D("0.3") and pf.totals()[""].unrealized_pnl == D("-5.00")
    other = pf.position("kraken", "ADAUSDT")
    assert other.mark is None, "a mark belongs to one exchange and symbol"


def test_exposure_uses_the_mark_else_the_average_price() -> None:
    pf = Portfolio()
    pf.apply(a_fill(1, KEYS[0], Side.BUY, D("0.01"), D("60000"), D("0")))
    pf.apply(a_fill(2, KEYS[1], Side.SELL, D("1000"), D("0.5"), D("0")))
    assert pf.gross_exposure == D("1100") and pf.net_exposure == D("100")
    pf.mark(*KEYS[1], D("0.6"))
    assert pf.gross_exposure == D("1200") and pf.net_exposure == D("0")
    assert pf.fills == 2


def test_position_event_carries_the_state() -> None:
    p = PositionState("kraken", "XBT/USD")
    p.apply(Side.BUY, D("0.002"), D("61000"), D("0.05"))
    p.mark = D("61500")
    ev = p.event(7, "pos-1")
    assert (ev.id, ev.ts_event, ev.exchange, ev.symbol) == ("pos-1", 7, "kraken", "XBT/USD")
    assert (ev.qty, ev.avg_price, ev.fees, ev.mark_price) == (
        D("0.002"),
        D("61000"),
        D("0.05"),
        D("61500"),
    )
    assert ev.unrealized_pnl == D("1.000") and ev.realized_pnl == 0


def test_position_event_is_valued_at_the_price_it_is_given() -> None:
    """Catches the event ignoring the mark it is given (risk records a fill's
    position at the fill's price, not at the live mark) and a position of
    exactly one unit reading no unrealized PnL (``qty == 0`` as ``qty == 1``)."""
    p = PositionState("binance", "ETHUSDT")
    p.apply(Side.BUY, D("1"), D("100"), D("0"))
    p.mark = D("90")
    at_fill = p.event(1, "pos-1", mark=D("110"))
    assert (at_fill.mark_price, at_fill.unrealized_pnl) == (D("110"), D("10"))
    live = p.event(2, "pos-2")
    assert (live.mark_price, live.unrealized_pnl) == (D("90"), D("-10"))


def test_position_event_without_any_mark_reads_no_unrealized_pnl() -> None:
    """A position opened before any trade price has no mark: its event says
    so and values nothing, rather than failing to compute a PnL at no price."""
    p = PositionState("binance", "ETHUSDT")
    p.apply(Side.SELL, D("2"), D("100"), D("0"))
    ev = p.event(1, "pos-1")
    assert (ev.mark_price, ev.unrealized_pnl) == (None, D(0))


def test_each_position_settles_in_its_own_instruments_currency() -> None:
    """Catches the settlement currency looked up for the wrong instrument or
    always taken from the portfolio's default: a USDT pair settles in USDT, a
    USD pair in USD, an inverse contract in its coin (with its contract size),
    and only an instrument whose quote is unknown falls back to the default."""
    pf = Portfolio(load_instruments(), quote="EUR")
    assert pf.position("binance", "BTCUSDT").currency == "USDT"
    assert pf.position("coinbase", "ETH-USD").currency == "USD"
    coinm = pf.position("binance-coinm", "ETHUSD_210924")
    assert (coinm.currency, coinm.inverse, coinm.contract_size) == ("ETH", True, D(10))
    assert pf.position("kraken", "XBT/USD").currency == "EUR"
    assert pf.currency_of("binance", "BTCUSDT") == "USDT"
    assert pf.currency_of("binance-coinm", "ETHUSD_210924") == "ETH"
    assert pf.is_inverse("binance-coinm", "ETHUSD_210924")
    assert not pf.is_inverse("binance", "BTCUSDT")
    assert not Portfolio().is_inverse("binance-coinm", "ETHUSD_210924")


step = st.tuples(
    st.sampled_from(range(len(KEYS))),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 30),
    st.integers(-300, 300),
    st.integers(0, 20),
    st.booleans(),
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(step, min_size=1, max_size=60))
def test_positions_pnl_and_equity_follow_the_fills(
    steps: list[tuple[int, Side, int, int, int, bool]],
) -> None:
    """Position = sum of signed fills; realized + unrealized - fees = the
    mark-to-market change of the account; the average price is the model's
    after every add, partial reduce and flip."""
    pf = Portfolio()
    qty: dict[tuple[str, str], D] = {k: D(0) for k in KEYS}
    avg: dict[tuple[str, str], D] = {k: D(0) for k in KEYS}
    cash = D(0)
    fees = D(0)
    marks: dict[tuple[str, str], D] = {}
    for n, (k, side, units, move, fee_bps, mark_first) in enumerate(steps):
        key = KEYS[k]
        price = PRICES[key] * (1 + D(move) / 1000)
        q = UNIT[key] * units
        fee = (price * q * fee_bps / 10_000).quantize(D("1e-8"))
        if mark_first:
            pf.mark(*key, price)
            marks[key] = price
        pf.apply(a_fill(n, key, side, q, price, fee))
        signed = q if side is Side.BUY else -q
        cash -= signed * price
        fees += fee
        before = qty[key]
        after = before + signed
        if before == 0 or (before > 0) == (signed > 0):
            avg[key] = (abs(before) * avg[key] + q * price) / abs(after)
        elif after == 0:
            avg[key] = D(0)
        elif (after > 0) != (before > 0):
            avg[key] = price
        qty[key] = after
        pos = pf.positions[key]
        assert pos.qty == after
        assert abs(pos.avg_price - avg[key]) <= D("1e-9") * max(avg[key], D(1))
        assert pos.mark == marks.get(key)
    for key in KEYS:
        marks.setdefault(key, PRICES[key])
        pf.mark(*key, marks[key])
    equity_change = cash + sum((qty[k] * marks[k] for k in KEYS), D(0)) - fees
    (total,) = pf.totals().values()
    assert abs(total.pnl - equity_change) <= D("1e-6")
    assert total.fees == fees
    assert pf.fills == len(steps)
