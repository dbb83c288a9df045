"""Bybit's instrument rules: the published filters of the symbols we ship."""

from __future__ import annotations

from importlib import resources

from tradewind.instruments import VenueInstruments, parse_instruments


def rules() -> VenueInstruments:
    text = (resources.files(__package__) / "instruments.json").read_text()
    return VenueInstruments(
        exchanges=("bybit", "bybit-linear"), listed=tuple(parse_instruments(text))
    )
