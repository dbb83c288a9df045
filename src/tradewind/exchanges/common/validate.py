"""Feed settings checked before anything connects.

A bad feed setting must stop the service at start with an error naming the key
(exit 2), not surface minutes later as a reconnect loop, an empty book or a
feed silently pointed at the real exchange because an id in ``ws_urls`` was
misspelt. ``check`` holds every rule ``Feeds`` relies on, so the service can run
it before starting anything and ``Feeds`` runs the very same code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tradewind.config import ConfigError, FeedSettings, Settings

if TYPE_CHECKING:
    from tradewind.exchanges.common.feed import VenueFeed

PREFIX = "TRADEWIND_FEED__"
CHANNELS_KEY = PREFIX + "CHANNELS"


def channels_for(
    feed: FeedSettings, exchange: str, known: Sequence[str], default: Sequence[str]
) -> tuple[str, ...]:
    """The channels one exchange subscribes, in the order given, without repeats."""
    chosen = feed.channels.get(exchange)
    if chosen is None:
        return tuple(default)
    if not chosen:
        raise ConfigError(CHANNELS_KEY, f"{exchange}: no channels; known: {', '.join(known)}")
    for c in chosen:
        if c not in known:
            raise ConfigError(
                CHANNELS_KEY, f"{exchange}: unknown channel {c!r}; known: {', '.join(known)}"
            )
    return tuple(dict.fromkeys(chosen))


def _url(key: str, exchange: str, url: str, schemes: tuple[str, ...]) -> None:
    want = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ConfigError(key, f"{exchange}: {url!r} is not a {want} URL") from None
    if parts.scheme not in schemes or not parts.hostname or not port_ok:
        raise ConfigError(key, f"{exchange}: {url!r} is not a {want} URL with a host")
    if parts.fragment or any(ch.isspace() for ch in url):
        raise ConfigError(key, f"{exchange}: {url!r} has a fragment or whitespace")


def check(settings: Settings, feeds: Mapping[str, type[VenueFeed]]) -> None:
    """Raise ``ConfigError`` naming the first bad feed setting; return quietly otherwise."""
    feed = settings.feed
    if not feed.exchanges:
        raise ConfigError(PREFIX + "EXCHANGES", "no exchanges")
    for name in feed.exchanges:
        if name not in feeds:
            raise ConfigError(
                PREFIX + "EXCHANGES", f"unknown exchange {name!r}; known: {', '.join(feeds)}"
            )
    per_exchange: dict[str, Mapping[str, object]] = {
        "WS_URLS": feed.ws_urls,
        "REST_URLS": feed.rest_urls,
        "SYMBOLS_BY_EXCHANGE": feed.symbols_by_exchange,
        "CHANNELS": feed.channels,
    }
    for key, mapping in per_exchange.items():
        for name in mapping:
            if name not in feeds:
                raise ConfigError(
                    PREFIX + key, f"unknown exchange id {name!r}; known: {', '.join(feeds)}"
                )
    for name, cls in feeds.items():
        if name in feed.channels:
            cls.channels_for(feed)
    for name in feed.exchanges:
        cls = feeds[name]
        key = PREFIX + ("SYMBOLS_BY_EXCHANGE" if name in feed.symbols_by_exchange else "SYMBOLS")
        symbols = cls.symbols_for(feed)
        if not symbols:
            raise ConfigError(key, f"no symbols for {name}")
        pattern = re.compile(cls.symbol_pattern)
        for s in symbols:
            if not pattern.fullmatch(s):
                raise ConfigError(
                    key, f"{name}: symbol {s!r} is not written like {cls.symbol_example}"
                )
            problem = cls.symbol_problem(s)
            if problem is not None:
                raise ConfigError(key, f"{name}: {problem}")
        _url(PREFIX + "WS_URLS", name, cls.ws_url_for(feed), ("ws", "wss"))
        if cls.default_rest_url or name in feed.rest_urls:
            _url(PREFIX + "REST_URLS", name, cls.rest_url_for(feed), ("http", "https"))
        cls.channels_for(feed)
