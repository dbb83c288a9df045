"""The clock choice, written once: a replay runs in event time, anything live
on the wall clock."""

from __future__ import annotations

from tradewind.clock import Clock, ReplayClock, WallClock
from tradewind.config import Settings


def make_clock(settings: Settings) -> Clock:
    return ReplayClock() if settings.feed.source == "replay" else WallClock()
