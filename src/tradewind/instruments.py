"""The generic instrument (tick, lot, limits, inverse contracts) and the lookup
every layer asks; the rules themselves belong to the venues.

Each venue folder publishes its listed instruments and how to build one it does
not list (``VenueInstruments``); ``exchanges.instruments`` gathers them and the
runtime feeds the result here, so the ground floor names no venue.

Prices and quantities of orders are rounded here, with ``Decimal`` only: a
float would turn 0.1 into 0.1000000000000000055 and break exchange filters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

import msgspec


class Instrument(msgspec.Struct, frozen=True):
    exchange: str
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    inverse: bool = False
    """Quantities are contracts worth ``contract_size`` of the quote each,
    settled in the base coin (the venue's rules say how much a contract is worth)."""
    contract_size: Decimal = Decimal(1)

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        """Value in the quote currency: an inverse contract's is fixed, whatever the price."""
        if self.inverse:
            return qty * self.contract_size
        return qty * price * self.contract_size

    def coin_value(self, qty: Decimal, price: Decimal) -> Decimal:
        """Value in the base coin (what an inverse contract settles in)."""
        if self.inverse:
            return qty * self.contract_size / price
        return qty * self.contract_size

    def round_qty(self, qty: Decimal) -> Decimal:
        """Down to the lot: never trade more than was asked."""
        return (qty / self.lot_size).to_integral_value(ROUND_DOWN) * self.lot_size

    def round_price(self, price: Decimal | float, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        p = price if isinstance(price, Decimal) else Decimal(repr(price))
        return (p / self.tick_size).to_integral_value(rounding) * self.tick_size


_FALLBACK = Decimal("0.00000001")

Unlisted = Callable[[str, str], "Instrument | None"]
"""A venue's rule for a symbol it does not list: ``(exchange, symbol)`` → instrument or None."""


def parse_instruments(text: str) -> list[Instrument]:
    """A venue's ``{"instruments": [...]}`` file, validated before it is trusted."""
    raw = json.loads(text)
    return msgspec.convert(raw["instruments"], list[Instrument], strict=False)


@dataclass(frozen=True)
class VenueInstruments:
    """What one venue publishes: the exchanges it speaks for, the instruments it
    lists, and how to build an instrument it does not list."""

    exchanges: tuple[str, ...]
    listed: tuple[Instrument, ...] = ()
    unlisted: Unlisted | None = field(default=None)


class InstrumentRegistry:
    """Instruments by ``(exchange, symbol)``; a symbol no venue lists gets its
    venue's rule, else permissive defaults (tick and lot 1e-8) so that replays
    of any symbol still run."""

    def __init__(
        self,
        instruments: Iterable[Instrument] | None = None,
        venues: Iterable[VenueInstruments] = (),
    ) -> None:
        self._by_key = {(i.exchange, i.symbol): i for i in instruments or []}
        self._unlisted: dict[str, Unlisted] = {}
        for venue in venues:
            for inst in venue.listed:
                self._by_key.setdefault((inst.exchange, inst.symbol), inst)
            if venue.unlisted is not None:
                for exchange in venue.exchanges:
                    self._unlisted[exchange] = venue.unlisted

    def get(self, exchange: str, symbol: str) -> Instrument:
        inst = self._by_key.get((exchange, symbol))
        if inst is None:
            rule = self._unlisted.get(exchange)
            inst = rule(exchange, symbol) if rule is not None else None
            if inst is None:
                inst = Instrument(
                    exchange,
                    symbol,
                    symbol,
                    "",
                    _FALLBACK,
                    _FALLBACK,
                    _FALLBACK,
                    Decimal("1e12"),
                    Decimal(0),
                )
            self._by_key[(exchange, symbol)] = inst
        return inst

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._by_key
