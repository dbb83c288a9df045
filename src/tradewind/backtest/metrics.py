"""Performance statistics of an equity series.

Conventions, stated once so that every report means the same thing:

- returns are simple returns between consecutive samples of the equity on a
  regular time grid of ``period_s`` seconds;
- annualisation assumes markets that trade every second of a 365-day year
  (crypto): ``periods_per_year = 365 * 86400 / period_s``, and ratios scale by
  its square root;
- the risk-free rate and the target return are zero;
- Sharpe divides the mean return by the sample standard deviation (n - 1);
- Sortino divides it by the downside deviation
  ``sqrt(sum(min(r, 0)^2) / n)`` over all n returns;
- max drawdown is the largest fall from a running peak, as an amount and as a
  fraction of that peak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

SECONDS_PER_YEAR = 365 * 86_400


def periods_per_year(period_s: float) -> float:
    if not period_s > 0:
        raise ValueError("period must be positive")
    return SECONDS_PER_YEAR / period_s


def simple_returns(equity: Sequence[float]) -> list[float]:
    """Period returns; a period starting at zero or negative equity has none."""
    return [b / a - 1.0 for a, b in pairwise(equity) if a > 0]


def sharpe(returns: Sequence[float], per_year: float) -> float | None:
    """None when undefined: fewer than two returns or no variation."""
    n = len(returns)
    if n < 2:
        return None
    mean = math.fsum(returns) / n
    var = math.fsum((r - mean) ** 2 for r in returns) / (n - 1)
    if var <= 0.0:
        return None
    return mean / math.sqrt(var) * math.sqrt(per_year)


def sortino(returns: Sequence[float], per_year: float) -> float | None:
    """None when undefined: no returns or no period with a loss."""
    n = len(returns)
    if n == 0:
        return None
    downside = math.fsum(min(r, 0.0) ** 2 for r in returns) / n
    if downside <= 0.0:
        return None
    mean = math.fsum(returns) / n
    return mean / math.sqrt(downside) * math.sqrt(per_year)


@dataclass(frozen=True, slots=True)
class Drawdown:
    amount: float
    fraction: float
    peak_index: int
    trough_index: int


def max_drawdown(equity: Sequence[float]) -> Drawdown:
    """The deepest peak-to-trough fall (by fraction of the peak)."""
    best = Drawdown(0.0, 0.0, 0, 0)
    if not equity:
        return best
    peak, peak_i = equity[0], 0
    for i, v in enumerate(equity):
        if v > peak:
            peak, peak_i = v, i
            continue
        frac = (peak - v) / peak if peak > 0 else 0.0
        if frac > best.fraction or (frac == best.fraction and peak - v > best.amount):
            best = Drawdown(peak - v, frac, peak_i, i)
    return best


def drawdown_series(equity: Sequence[float]) -> list[float]:
    """Fall from the running peak at every point, as a fraction (≤ 0)."""
    out: list[float] = []
    peak = -math.inf
    for v in equity:
        peak = max(peak, v)
        out.append(v / peak - 1.0 if peak > 0 else 0.0)
    return out


def win_rate(pnls: Sequence[float]) -> float | None:
    """Share of closed trades with a positive result after fees."""
    if not pnls:
        return None
    return sum(1 for p in pnls if p > 0) / len(pnls)
