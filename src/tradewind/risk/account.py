"""Loss limits and per-symbol cooldowns, on event time.

The trading day is the UTC calendar day of the events' ``ts_event``, so a replay
rolls its days at the same events as the live run did. Equity here is the
account's PnL (realized - fees + unrealized at marks) in the account currency;
the daily loss is measured from the equity at the day's first event, the
drawdown from the highest equity since then (or since the last resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tradewind.config import RiskSettings

DAY_NS = 86_400 * 1_000_000_000
_ZERO = Decimal(0)


@dataclass(slots=True)
class LossGuard:
    max_daily_loss: Decimal
    max_drawdown: Decimal
    day: int | None = None
    day_start_equity: Decimal = _ZERO
    peak: Decimal = _ZERO

    def roll(self, ts: int, equity: Decimal) -> bool:
        """Start a new trading day when ``ts`` falls into a later one."""
        day = ts // DAY_NS
        if self.day is not None and day <= self.day:
            return False
        self.day = day
        self.rebase(equity)
        return True

    def rebase(self, equity: Decimal) -> None:
        self.day_start_equity = equity
        self.peak = equity

    def update(self, equity: Decimal) -> str | None:
        """Track the peak; the breached limit's name, if any."""
        if equity > self.peak:
            self.peak = equity
        if self.day_start_equity - equity >= self.max_daily_loss:
            return "daily_loss"
        if self.peak - equity >= self.max_drawdown:
            return "drawdown"
        return None

    def daily_loss(self, equity: Decimal) -> Decimal:
        return max(self.day_start_equity - equity, _ZERO)

    def drawdown(self, equity: Decimal) -> Decimal:
        return max(self.peak - equity, _ZERO)

    def snapshot(self) -> list[str | int | None]:
        return [self.day, str(self.day_start_equity), str(self.peak)]

    def restore(self, data: list[str | int | None]) -> None:
        day, start, peak = data
        self.day = None if day is None else int(day)
        self.day_start_equity, self.peak = Decimal(str(start)), Decimal(str(peak))


Key = tuple[str, str]


@dataclass(slots=True)
class Cooldowns:
    """A symbol pauses new exposure after a stop-out (one close losing at least
    ``stopout_loss``) or ``loss_streak`` losing closes in a row."""

    settings: RiskSettings
    streak: dict[Key, int] = field(default_factory=dict)
    until: dict[Key, int] = field(default_factory=dict)

    def on_close(self, key: Key, pnl: Decimal, ts: int) -> str | None:
        if pnl >= 0:
            self.streak.pop(key, None)
            return None
        n = self.streak.get(key, 0) + 1
        cause = None
        if -pnl >= self.settings.stopout_loss:
            cause = "stop_out"
        elif n >= self.settings.loss_streak:
            cause = "loss_streak"
        if cause is None:
            self.streak[key] = n
            return None
        self.streak.pop(key, None)
        self.until[key] = ts + int(self.settings.cooldown_s * 1e9)
        return cause

    def active(self, key: Key, ts: int) -> int | None:
        """The end of the symbol's cooldown when ``ts`` is inside it."""
        end = self.until.get(key)
        return end if end is not None and ts < end else None

    def snapshot(self) -> dict[str, list[int]]:
        keys = sorted(set(self.streak) | set(self.until))
        return {
            f"{e}|{s}": [self.streak.get((e, s), 0), self.until.get((e, s), 0)] for e, s in keys
        }

    def restore(self, data: dict[str, list[int]]) -> None:
        self.streak, self.until = {}, {}
        for k, (n, end) in data.items():
            e, s = k.split("|", 1)
            if n:
                self.streak[(e, s)] = n
            if end:
                self.until[(e, s)] = end
