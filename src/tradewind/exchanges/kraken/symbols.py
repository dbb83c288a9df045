"""Kraken's pair names: WS v1 and REST use legacy asset codes (``XBT``,
``XDG``) that WS v2 refuses, naming them ``BTC`` and ``DOGE``."""

from __future__ import annotations

V1_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


def v2_name(pair: str) -> str:
    """``XBT/USD`` → ``BTC/USD``; a v2 name is returned as it is."""
    return "/".join(V1_ASSETS.get(a, a) for a in pair.split("/"))
