"""Order checks that need nothing but the signal and the instrument.

Prices and quantities are rounded with ``Decimal`` only, in the direction that
never trades worse than asked: quantities down to the lot, buy limits down
and sell limits up to the tick.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tradewind.events import OrderType, Side, Signal
from tradewind.instruments import Instrument
from tradewind.risk.marks import price_or_none
from tradewind.risk.reasons import Reason

Verdict = tuple[Reason, str]
_HUNDRED = Decimal(100)


def rounded_qty(inst: Instrument, qty: Decimal) -> Decimal | None:
    """The lot-rounded quantity, or None when it is not a positive number."""
    if not qty.is_finite() or qty <= 0:
        return None
    q = inst.round_qty(qty)
    return q if q > 0 else None


def rounded_limit(inst: Instrument, sig: Signal) -> Decimal | None:
    px = price_or_none(sig.limit_price)
    if px is None:
        return None
    q = inst.round_price(px, ROUND_FLOOR if sig.side is Side.BUY else ROUND_CEILING)
    return q if q > 0 else None


def quantity_rules(inst: Instrument, qty: Decimal) -> Verdict | None:
    if qty < inst.min_qty:
        return Reason.BELOW_MIN_QUANTITY, f"quantity {qty} < minimum {inst.min_qty}"
    if qty > inst.max_qty:
        return Reason.ABOVE_MAX_QUANTITY, f"quantity {qty} > maximum {inst.max_qty}"
    return None


def reference_price(sig: Signal, limit: Decimal | None) -> Decimal | None:
    """The price that values the order: its limit, else the side it would take,
    else the last trade."""
    if limit is not None:
        return limit
    touch = price_or_none(sig.ref_ask if sig.side is Side.BUY else sig.ref_bid)
    return touch if touch is not None else price_or_none(sig.ref_last)


def anchor_price(sig: Signal) -> Decimal | None:
    """Mid when both sides are known, else the last trade."""
    bid, ask = price_or_none(sig.ref_bid), price_or_none(sig.ref_ask)
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return price_or_none(sig.ref_last)


def fat_finger(sig: Signal, limit: Decimal, band_pct: Decimal) -> Verdict | None:
    if sig.order_type is not OrderType.LIMIT:
        return None
    anchor = anchor_price(sig)
    if anchor is None:
        return Reason.NO_REFERENCE_PRICE, "no mid or last trade to check the limit price against"
    off = abs(limit - anchor) / anchor * _HUNDRED
    if off > band_pct:
        return Reason.FAT_FINGER, f"limit {limit} is {off:.2f}% from {anchor} (band {band_pct}%)"
    return None


def position_size(inst: Instrument, qty: Decimal, price: Decimal) -> Decimal:
    """The unit ``max_position`` is counted in: the base coin.

    A linear quantity is already coin (times its contract size). An inverse
    quantity is contracts of a fixed quote value, so its coin is that value
    divided by ``price``: the same number of contracts holds more coin as the
    price falls, which is what a coin limit must see. Valued at the order's
    reference price, so that a verdict depends on the signal alone.
    """
    return inst.coin_value(qty, price) if inst.inverse else qty * inst.contract_size


def position_detail(
    inst: Instrument, qty: Decimal, price: Decimal, size: Decimal, cap: Decimal
) -> str:
    if inst.inverse:
        return (
            f"worst-case position {size:.8f} {inst.base} ({qty} contracts of "
            f"{inst.contract_size} {inst.quote} at {price}) > {cap} {inst.base}"
        )
    return f"worst-case position {size} {inst.base} > {cap} {inst.base}"
