"""Clocks: services ask a clock for the time so that replays and backtests run
on exchange time while live services run on the wall."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class WallClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ReplayClock:
    """Follows the exchange time of the last replayed event; never runs backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance(self, ts_ns: int) -> None:
        if ts_ns > self._now:
            self._now = ts_ns
