"""Instrument rules (tick, lot, limits) per exchange and symbol.

Prices and quantities of orders are rounded here, with ``Decimal`` only: a
float would turn 0.1 into 0.1000000000000000055 and break exchange filters.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from importlib import resources
from pathlib import Path

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

    def round_qty(self, qty: Decimal) -> Decimal:
        """Down to the lot: never trade more than was asked."""
        return (qty / self.lot_size).to_integral_value(ROUND_DOWN) * self.lot_size

    def round_price(self, price: Decimal | float, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        p = price if isinstance(price, Decimal) else Decimal(repr(price))
        return (p / self.tick_size).to_integral_value(rounding) * self.tick_size


_FALLBACK = Decimal("0.00000001")


class InstrumentRegistry:
    def __init__(self, instruments: list[Instrument] | None = None) -> None:
        self._by_key = {(i.exchange, i.symbol): i for i in instruments or []}

    @classmethod
    def load(cls, path: Path | None = None) -> InstrumentRegistry:
        text = (
            path.read_text()
            if path
            else (resources.files("tradewind") / "data" / "instruments.json").read_text()
        )
        raw = json.loads(text)
        return cls(msgspec.convert(raw["instruments"], list[Instrument], strict=False))

    def get(self, exchange: str, symbol: str) -> Instrument:
        inst = self._by_key.get((exchange, symbol))
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
