"""The order checks of ``risk.rules`` with a real spread and prices below 1,
each test named for the bug it catches."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import msgspec
import pytest

from tradewind.events import OrderType, Side, Signal
from tradewind.exchanges.instruments import load_instruments
from tradewind.risk import rules
from tradewind.risk.reasons import Reason

INSTRUMENTS = load_instruments()
FTM = INSTRUMENTS.get("binance", "FTMUSDT")
"""Tick 0.0001, lot 1: a coin priced below 1."""
BTC = INSTRUMENTS.get("binance", "BTCUSDT")


def sig(side: Side = Side.BUY, limit: str | None = None, **refs: Any) -> Signal:
    return Signal(
        id="s",
        ts_event=1,
        strategy="t",
        exchange="binance",
        symbol="FTMUSDT",
        side=side,
        quantity=D("100"),
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=None if limit is None else D(limit),
        **refs,
    )


def test_limit_prices_below_one_are_kept() -> None:
    """``q > 0`` written as ``q > 1`` would refuse every limit under 1 (ADA, XRP)."""
    assert rules.rounded_limit(FTM, sig(Side.BUY, "0.35004")) == D("0.3500")
    assert rules.rounded_limit(FTM, sig(Side.SELL, "0.35004")) == D("0.3501")
    assert rules.rounded_limit(FTM, sig(Side.BUY, "0.00009")) is None, "rounds to 0"
    assert rules.rounded_limit(FTM, sig(Side.SELL, "0.00009")) == D("0.0001")
    assert rules.rounded_limit(FTM, sig(Side.BUY, "nan")) is None


def test_quantities_below_one_are_kept_and_non_positive_refused() -> None:
    assert rules.rounded_qty(BTC, D("0.123456")) == D("0.12345")
    assert rules.rounded_qty(BTC, D("0.000001")) is None
    assert rules.rounded_qty(BTC, D("0")) is None
    assert rules.rounded_qty(BTC, D("-1")) is None
    assert rules.rounded_qty(BTC, D("Infinity")) is None


def test_quantity_bounds_are_inclusive() -> None:
    assert rules.quantity_rules(BTC, BTC.min_qty) is None
    assert rules.quantity_rules(BTC, BTC.max_qty) is None
    below = rules.quantity_rules(BTC, BTC.min_qty / 2)
    above = rules.quantity_rules(BTC, BTC.max_qty + 1)
    assert below == (Reason.BELOW_MIN_QUANTITY, "quantity 0.000005 < minimum 0.00001")
    assert above == (Reason.ABOVE_MAX_QUANTITY, "quantity 9001 > maximum 9000")


def test_reference_price_takes_the_side_the_order_would_take() -> None:
    """A buy is valued at the ask, a sell at the bid: with a zero spread a
    swapped side cannot be seen, so the spread here is wide."""
    refs = {"ref_bid": 0.34, "ref_ask": 0.36, "ref_last": 0.5}
    assert rules.reference_price(sig(Side.BUY, **refs), None) == D("0.36")
    assert rules.reference_price(sig(Side.SELL, **refs), None) == D("0.34")
    assert rules.reference_price(sig(Side.BUY, **refs), D("0.3")) == D("0.3"), "limit first"


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_reference_price_falls_back_to_the_last_trade(side: Side) -> None:
    other = {"ref_bid": 0.34} if side is Side.BUY else {"ref_ask": 0.36}
    assert rules.reference_price(sig(side, ref_last=0.5, **other), None) == D("0.5")
    assert rules.reference_price(sig(side, **other), None) is None


def test_fat_finger_is_measured_from_the_mid_not_the_last_trade() -> None:
    """Bid 0.30 / ask 0.40: mid 0.35, last trade 0.50 far away."""
    refs = {"ref_bid": 0.30, "ref_ask": 0.40, "ref_last": 0.50}
    assert rules.anchor_price(sig(**refs)) == D("0.35")
    assert rules.fat_finger(sig(Side.BUY, "0.357", **refs), D("0.357"), D(2)) is None
    bad = rules.fat_finger(sig(Side.SELL, "0.3571", **refs), D("0.3571"), D(2))
    assert bad == (Reason.FAT_FINGER, "limit 0.3571 is 2.03% from 0.35 (band 2%)")
    low = rules.fat_finger(sig(Side.BUY, "0.3429", **refs), D("0.3429"), D(2))
    assert low is not None and low[0] is Reason.FAT_FINGER
    assert rules.fat_finger(sig(Side.BUY, "0.343", **refs), D("0.343"), D(2)) is None


def test_fat_finger_without_both_sides_uses_the_last_trade() -> None:
    assert rules.anchor_price(sig(ref_bid=0.30, ref_last=0.5)) == D("0.5")
    assert rules.anchor_price(sig(ref_ask=0.30, ref_last=0.5)) == D("0.5")
    assert rules.fat_finger(sig(Side.BUY, "0.51", ref_last=0.5), D("0.51"), D(2)) is None
    none = rules.fat_finger(sig(Side.BUY, "0.5"), D("0.5"), D(2))
    assert none == (
        Reason.NO_REFERENCE_PRICE,
        "no mid or last trade to check the limit price against",
    )


def test_fat_finger_leaves_market_orders_alone() -> None:
    assert rules.fat_finger(sig(Side.BUY, ref_last=0.5), D("9"), D(2)) is None


def test_linear_position_size_counts_contracts_times_their_size_in_coin() -> None:
    """Catches a linear contract's size divided instead of multiplied: 500
    contracts of 0.01 BTC are 5 BTC against ``max_position``, not 50,000."""
    swap = msgspec.structs.replace(BTC, symbol="BTC-USDT-SWAP", contract_size=D("0.01"))
    assert rules.position_size(swap, D("500"), D("60000")) == D("5.00")
    assert rules.position_size(BTC, D("0.5"), D("60000")) == D("0.5")
