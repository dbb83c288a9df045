"""Build the live venue named by the settings, for the runtime to inject into
the execution service; adapters are imported lazily so that a paper run needs
none of their dependencies (ccxt is an optional extra)."""

from __future__ import annotations

from tradewind.config import ExecutionSettings, Settings
from tradewind.execution.venue import Venue
from tradewind.instruments import InstrumentRegistry


def make_venue(settings: ExecutionSettings, instruments: InstrumentRegistry) -> Venue:
    if settings.venue == "binance":
        from tradewind.exchanges.binance.trade import BinanceSpotVenue

        return BinanceSpotVenue(settings, instruments)
    if settings.venue == "ccxt":
        from tradewind.exchanges.ccxt.adapter import CcxtVenue

        return CcxtVenue(settings, instruments)
    raise ValueError(f"execution.venue {settings.venue!r} is not a live venue")


def live_venue(settings: Settings, instruments: InstrumentRegistry) -> dict[str, object]:
    """The execution service's ``extras``: the live venue, or nothing for paper."""
    if settings.execution.venue == "paper":
        return {}
    return {"venue": make_venue(settings.execution, instruments)}
