"""Reason codes of risk verdicts.

The values are stored in ``risk_decisions.reason`` and used as metric labels,
so existing values never change; new checks add new codes.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OK = "ok"
    TRADING_HALTED = "trading_halted"
    REDUCING_ONLY = "reducing_only"
    DUPLICATE_SIGNAL = "duplicate_signal"
    INVALID_QUANTITY = "invalid_quantity"
    NO_REFERENCE_PRICE = "no_reference_price"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION = "max_position"
    RATE_LIMIT_SECOND = "rate_limit_second"
    RATE_LIMIT_MINUTE = "rate_limit_minute"
    INVALID_PRICE = "invalid_price"
    BELOW_MIN_QUANTITY = "below_min_quantity"
    ABOVE_MAX_QUANTITY = "above_max_quantity"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    MAX_NET_EXPOSURE = "max_net_exposure"
    MAX_OPEN_ORDERS = "max_open_orders"
    FAT_FINGER = "fat_finger"
    STALE_MARKET_DATA = "stale_market_data"
    NO_CONVERSION_RATE = "no_conversion_rate"
    COOLDOWN = "cooldown"
    FLATTEN = "flatten"
    """Not a signal verdict: the approval of a kill-switch order that closes a position."""
