"""What risk knows of the market: freshness and marks per symbol, and currency
conversion into the account currency.

Freshness is the newest ``ts_event`` of any market event of the symbol; marks
are last trade prices and only move forward in event time, so a late, older
trade never overrides a newer price.
"""

from __future__ import annotations

import math
from decimal import Decimal

from tradewind.instruments import InstrumentRegistry

Key = tuple[str, str]
_ONE = Decimal(1)


def price_or_none(value: float | Decimal | None) -> Decimal | None:
    """A usable positive, finite price, or None (NaN, inf, zero, negative)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() and value > 0 else None
    if not math.isfinite(value) or value <= 0:
        return None
    return Decimal(repr(value))


class Marks:
    def __init__(
        self, instruments: InstrumentRegistry, account_currency: str, aliases: list[str]
    ) -> None:
        self.instruments = instruments
        self.account = account_currency
        self.par = {account_currency, "", *aliases}
        self.fresh: dict[Key, int] = {}
        self.prices: dict[Key, tuple[int, Decimal]] = {}

    def seen(self, key: Key, ts: int) -> None:
        if ts > self.fresh.get(key, -1):
            self.fresh[key] = ts

    def trade(self, key: Key, ts: int, price: float | Decimal) -> Decimal | None:
        """Record a trade price; the new mark when it moved the mark."""
        self.seen(key, ts)
        px = price_or_none(price)
        if px is None:
            return None
        prev = self.prices.get(key)
        if prev is not None and prev[0] > ts:
            return None
        self.prices[key] = (ts, px)
        return px

    def price(self, key: Key) -> Decimal | None:
        p = self.prices.get(key)
        return None if p is None else p[1]

    def quote_of(self, key: Key) -> str:
        return self.instruments.get(*key).quote

    def fx(self, exchange: str, quote: str) -> Decimal | None:
        """Account-currency value of one unit of ``quote``: 1 at par, else the
        mark of ``QUOTEACCOUNT`` (or ``QUOTE-ACCOUNT``) on the same exchange."""
        if quote in self.par:
            return _ONE
        for cur in sorted(self.par - {""}):
            for sym in (f"{quote}{cur}", f"{quote}-{cur}"):
                p = self.price((exchange, sym))
                if p is not None:
                    return p
        return None

    def snapshot(self) -> dict[str, list[str | int]]:
        keys = sorted(set(self.fresh) | set(self.prices))
        out: dict[str, list[str | int]] = {}
        for k in keys:
            p = self.prices.get(k)
            out[f"{k[0]}|{k[1]}"] = [
                self.fresh.get(k, -1),
                -1 if p is None else p[0],
                "" if p is None else str(p[1]),
            ]
        return out

    def restore(self, data: dict[str, list[str | int]]) -> None:
        self.fresh, self.prices = {}, {}
        for k, (fresh, ts, px) in data.items():
            e, s = k.split("|", 1)
            if int(fresh) >= 0:
                self.fresh[(e, s)] = int(fresh)
            if px != "":
                self.prices[(e, s)] = (int(ts), Decimal(str(px)))
