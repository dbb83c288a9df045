"""Build the live venue named by the settings; adapters are imported lazily so
that a paper run needs none of their dependencies (ccxt is an optional extra)."""

from __future__ import annotations

from tradewind.config import ExecutionSettings
from tradewind.execution.venue import Venue
from tradewind.instruments import InstrumentRegistry


def make_venue(settings: ExecutionSettings, instruments: InstrumentRegistry) -> Venue:
    if settings.venue == "binance":
        from tradewind.exchanges.binance_trade import BinanceSpotVenue

        return BinanceSpotVenue(settings, instruments)
    if settings.venue == "ccxt":
        from tradewind.exchanges.ccxt_adapter import CcxtVenue

        return CcxtVenue(settings, instruments)
    raise ValueError(f"execution.venue {settings.venue!r} is not a live venue")
