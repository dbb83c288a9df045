"""The venues' instrument rules, one line per venue that publishes any, gathered
into the ground floor's lookup (``InstrumentRegistry``) for the runtime and tests.

A venue without a line here (Kraken, OKX, ccxt) gets the registry's permissive
defaults for every symbol.
"""

from __future__ import annotations

from pathlib import Path

from tradewind.exchanges.binance import instruments as binance
from tradewind.exchanges.bybit import instruments as bybit
from tradewind.exchanges.coinbase import instruments as coinbase
from tradewind.instruments import InstrumentRegistry, VenueInstruments, parse_instruments


def venue_rules() -> list[VenueInstruments]:
    return [binance.rules(), coinbase.rules(), bybit.rules()]


def load_instruments(path: Path | None = None) -> InstrumentRegistry:
    """Every venue's rules; instruments in ``path`` (same format as a venue's
    ``instruments.json``) take precedence over the venues' listed ones."""
    extra = parse_instruments(path.read_text()) if path is not None else []
    return InstrumentRegistry(extra, venue_rules())
