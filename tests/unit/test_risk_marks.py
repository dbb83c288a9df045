"""Marks at their edges: a zero price is no price, a late trade does not move
the mark back, a symbol seen without a trade survives a snapshot, and quotes
convert through the account currency on the same exchange."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tests.bus_contract import trade
from tradewind.events import Trade
from tradewind.exchanges.instruments import load_instruments
from tradewind.risk.marks import Marks, price_or_none
from tradewind.services.risk import _fold_trades, _one_symbol, _trades_only

KEY = ("binance", "XMRBTC")


def marks() -> Marks:
    return Marks(load_instruments(), "USDT", ["USD", "USDC"])


def test_zero_negative_and_non_finite_prices_are_no_price() -> None:
    for bad in (D(0), D(-1), D("NaN"), D("Infinity"), 0.0, -2.5, float("nan"), None):
        assert price_or_none(bad) is None
    assert price_or_none(D("0.0001")) == D("0.0001")
    assert price_or_none(0.35) == D("0.35")


def test_a_late_trade_does_not_move_the_mark_back() -> None:
    m = marks()
    assert m.trade(KEY, 10, 0.005) == D("0.005")
    assert m.trade(KEY, 5, 0.004) is None
    assert m.price(KEY) == D("0.005") and m.fresh[KEY] == 10
    assert m.trade(KEY, 10, 0.006) == D("0.006"), "the same time may move it"
    assert m.trade(KEY, 11, 0.0) is None and m.price(KEY) == D("0.006")
    assert m.fresh[KEY] == 11


def test_snapshot_keeps_symbols_seen_without_a_trade() -> None:
    m = marks()
    m.seen(("bybit", "ETHUSDT"), 7)
    m.trade(KEY, 9, 0.005)
    snap = m.snapshot()
    assert snap == {"bybit|ETHUSDT": [7, -1, ""], "binance|XMRBTC": [9, 9, "0.005"]}
    r = marks()
    r.restore(snap)
    assert (r.fresh, r.prices) == (m.fresh, m.prices)


def test_quotes_convert_through_the_account_currency_on_the_same_exchange() -> None:
    m = marks()
    assert m.fx("binance", "USDT") == 1 and m.fx("binance", "") == 1
    assert m.fx("binance", "BTC") is None
    m.trade(("coinbase", "BTC-USD"), 1, 61000.0)
    assert m.fx("binance", "BTC") is None, "another exchange's price does not convert"
    assert m.fx("coinbase", "BTC") == D("61000.0")
    m.trade(("binance", "BTCUSDT"), 1, 60000.0)
    assert m.fx("binance", "BTC") == D("60000.0")
    assert m.quote_of(KEY) == "BTC"


def test_a_symbol_seen_at_time_zero_is_fresh_and_stays_so_after_a_restore() -> None:
    """Time 0 is a time (a replay or a synthetic feed may start there): a
    first event at 0 makes the symbol fresh, and a restore keeps it."""
    m = marks()
    m.seen(("bybit", "ETHUSDT"), 0)
    m.trade(KEY, 0, 0.005)
    assert m.fresh == {("bybit", "ETHUSDT"): 0, KEY: 0}
    back = marks()
    back.restore(m.snapshot())
    assert back.fresh == m.fresh and back.prices == m.prices


def test_a_symbol_with_a_bar_in_its_name_survives_a_restore() -> None:
    """The snapshot keys are ``exchange|symbol`` and only the first bar splits
    them: an exchange name has none, a symbol may."""
    m = marks()
    odd = ("kraken", "XBT|USD|PERP")
    m.trade(odd, 4, 60000.5)
    back = marks()
    back.restore(m.snapshot())
    assert back.fresh == {odd: 4} and back.prices == {odd: (4, D("60000.5"))}


def _fold_by_loop(trades: list[Trade]) -> list[Any]:
    """The risk service's per-message fold of one symbol's trades."""
    cur: list[Any] = []
    for e in trades:
        if not cur:
            cur = [e.ts_event, e.ts_event, e.price]
            continue
        if e.ts_event > cur[0]:
            cur[0] = e.ts_event
        if e.ts_event >= cur[1]:
            cur[1], cur[2] = e.ts_event, e.price
    return cur


@given(st.lists(st.tuples(st.integers(-3, 6), st.integers(1, 4)), min_size=1, max_size=30))
def test_a_batch_of_one_symbols_trades_folds_as_the_loop_folds_it(
    stamps: list[tuple[int, int]],
) -> None:
    """Times out of order and repeated: the newest time, and the price of the
    last trade stamped then."""
    trades = [
        msgspec.structs.replace(trade(i), ts_event=ts, price=float(px))
        for i, (ts, px) in enumerate(stamps)
    ]
    assert _trades_only(trades) and _one_symbol(trades)
    assert _fold_trades(trades) == _fold_by_loop(trades)
    other = msgspec.structs.replace(trades[0], symbol="ETHUSDT")
    assert _trades_only([*trades, other]) and not _one_symbol([*trades, other])
