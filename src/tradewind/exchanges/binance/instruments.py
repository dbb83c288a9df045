"""Binance's instrument rules: the published filters of the symbols we ship
(spot, USD-M, COIN-M) and COIN-M's contract sizes for any other delivery or
perpetual, which Binance fixes per coin rather than per symbol."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources

from tradewind.instruments import Instrument, VenueInstruments, parse_instruments

COINM = "binance-coinm"
_TICK = Decimal("0.00000001")


def coinm_contract_size(symbol: str) -> Decimal:
    """Binance COIN-M: 100 USD a contract for BTCUSD, 10 USD for every other coin."""
    return Decimal(100) if symbol.startswith("BTCUSD_") else Decimal(10)


def unlisted(exchange: str, symbol: str) -> Instrument | None:
    """A COIN-M symbol we do not list is still inverse with its coin's contract
    size, so that its quantities are never read as coins; spot and USD-M have
    no such rule (None: the registry's permissive default)."""
    if exchange != COINM:
        return None
    base = symbol.partition("USD_")[0] or symbol
    one = Decimal(1)
    return Instrument(
        exchange,
        symbol,
        base,
        "USD",
        _TICK,
        one,
        one,
        Decimal("1e9"),
        Decimal(0),
        inverse=True,
        contract_size=coinm_contract_size(symbol),
    )


def rules() -> VenueInstruments:
    text = (resources.files(__package__) / "instruments.json").read_text()
    return VenueInstruments(
        exchanges=("binance", "binance-usdm", COINM),
        listed=tuple(parse_instruments(text)),
        unlisted=unlisted,
    )
