"""Loss limits and cooldowns at their edges: the trading day, the drawdown's
sign, a break-even or small winning close, the cooldown's last nanosecond and
the snapshot round trip."""

from __future__ import annotations

from decimal import Decimal as D

from tradewind.config import RiskSettings
from tradewind.risk.account import DAY_NS, Cooldowns, LossGuard

KEY = ("binance", "BTCUSDT")
T = 20_000 * DAY_NS + 5


def test_the_trading_day_rolls_once_per_later_day() -> None:
    g = LossGuard(D(50), D(30))
    assert g.roll(T, D(10)) is True and (g.day, g.day_start_equity, g.peak) == (20_000, 10, 10)
    assert g.roll(T + 1000, D(-5)) is False, "same day: no new baseline"
    assert (g.day_start_equity, g.peak) == (D(10), D(10))
    assert g.roll(T - DAY_NS, D(-5)) is False, "an earlier day never rolls back"
    assert g.roll(T + DAY_NS, D(-5)) is True and g.day_start_equity == D(-5)


def test_daily_loss_and_drawdown_are_measured_downwards() -> None:
    g = LossGuard(D(50), D(25))
    g.rebase(D(100))
    assert g.update(D(120)) is None and g.peak == D(120)
    assert g.update(D(96)) is None
    assert (g.daily_loss(D(96)), g.drawdown(D(96))) == (D(4), D(24))
    assert g.update(D(95)) == "drawdown", "exactly the limit trips"
    assert g.update(D(50)) == "daily_loss"
    assert (g.daily_loss(D(130)), g.drawdown(D(130))) == (0, 0)
    assert g.peak == D(120)


def cooldowns(**kw: object) -> Cooldowns:
    base: dict[str, object] = {"stopout_loss": D(100), "loss_streak": 2, "cooldown_s": 60}
    return Cooldowns(RiskSettings(**{**base, **kw}))


def test_a_stop_out_at_exactly_the_limit_cools_down_to_the_nanosecond() -> None:
    c = cooldowns()
    assert c.on_close(KEY, D(-100), T) == "stop_out"
    end = T + 60 * 1_000_000_000
    assert c.active(KEY, end - 1) == end
    assert c.active(KEY, end) is None
    assert c.active(("bybit", "BTCUSDT"), T) is None


def test_a_break_even_or_small_win_ends_a_losing_streak() -> None:
    for result in (D(0), D("0.5")):
        c = cooldowns()
        assert c.on_close(KEY, D(-1), T) is None
        assert c.on_close(KEY, result, T + 1) is None
        assert c.on_close(KEY, D(-1), T + 2) is None, f"a close of {result} resets the streak"
        assert c.on_close(KEY, D(-1), T + 3) == "loss_streak"


def test_a_cooldown_starts_a_new_streak() -> None:
    c = cooldowns()
    c.on_close(KEY, D(-1), T)
    assert c.on_close(KEY, D(-1), T + 1) == "loss_streak"
    assert c.on_close(KEY, D(-1), T + 2) is None
    assert c.on_close(KEY, D(-150), T + 3) == "stop_out"
    assert c.on_close(KEY, D(-1), T + 4) is None


def test_snapshot_restore_round_trip() -> None:
    c = cooldowns()
    c.on_close(("kraken", "XBT|USD"), D(-1), T)
    c.on_close(KEY, D(-100), T)
    snap = c.snapshot()
    assert snap == {"binance|BTCUSDT": [0, T + 60_000_000_000], "kraken|XBT|USD": [1, 0]}
    r = cooldowns()
    r.restore(snap)
    assert (r.streak, r.until) == (c.streak, c.until)
    assert r.snapshot() == snap
