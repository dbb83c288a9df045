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
    inverse: bool = False
    """Quantities are contracts worth ``contract_size`` of the quote each
    (Binance COIN-M: BTCUSD_PERP 100 USD, the others 10 USD), settled in the base coin."""
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
_COINM = "binance-coinm"


def coinm_contract_size(symbol: str) -> Decimal:
    """Binance COIN-M: 100 USD a contract for BTCUSD, 10 USD for every other coin."""
    return Decimal(100) if symbol.startswith("BTCUSD_") else Decimal(10)


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
        if inst is None and exchange == _COINM:
            base = symbol.partition("USD_")[0] or symbol
            one = Decimal(1)
            inst = Instrument(
                exchange,
                symbol,
                base,
                "USD",
                _FALLBACK,
                one,
                one,
                Decimal("1e9"),
                Decimal(0),
                inverse=True,
                contract_size=coinm_contract_size(symbol),
            )
            self._by_key[(exchange, symbol)] = inst
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
