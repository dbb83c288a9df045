"""A backtest's outcome: its statistics and the JSON that records them.

The JSON holds only what the data and the parameters decide (no wall-clock
figures), so two runs on the same input write identical files. Money is
written as exact decimal strings; ratios and the sampled curve as floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradewind.backtest import metrics as m
from tradewind.backtest.equity import EquityCurve, sample_period_ns
from tradewind.runtime.embedded import RunSummary

ANNUALISATION = (
    "simple returns of equity sampled every period_s; ratios x sqrt(periods_per_year), "
    "periods_per_year = 365*86400/period_s (markets open 24/7); risk-free rate 0; "
    "Sharpe: sample std (n-1); Sortino: downside deviation sqrt(sum(min(r,0)^2)/n)"
)


def _num(x: float | None, digits: int = 12) -> float | None:
    """Rounded so that the JSON reads well; None stays None."""
    return None if x is None else round(x, digits)


@dataclass
class BacktestResult:
    strategy: str
    params: dict[str, Any]
    data: list[str]
    summary: RunSummary
    curve: EquityCurve
    period_s: float
    market_events: int
    wall_s: float = 0.0
    rejections: dict[str, int] = field(default_factory=dict)
    sample_t: list[int] = field(default_factory=list)
    sample_equity: list[float] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        strategy: str,
        params: dict[str, Any],
        data: list[str],
        summary: RunSummary,
        curve: EquityCurve,
        period_s: float,
        market_events: int,
        wall_s: float = 0.0,
        rejections: dict[str, int] | None = None,
    ) -> BacktestResult:
        period_ns = sample_period_ns(curve.last_ns - curve.first_ns, period_s)
        r = cls(
            strategy,
            params,
            data,
            summary,
            curve,
            period_ns / 1e9,
            market_events,
            wall_s,
            dict(sorted((rejections or {}).items())),
        )
        r.sample_t, r.sample_equity = curve.sample(period_ns)
        r.metrics = r._metrics()
        return r

    def _metrics(self) -> dict[str, Any]:
        c = self.curve
        pf = c.portfolio
        per_year = m.periods_per_year(self.period_s)
        rets = m.simple_returns(self.sample_equity)
        dd = m.max_drawdown(c.equity)
        trip_pnls = [float(t.pnl) for t in c.trips]
        s = self.summary
        start = c.start_equity
        quote_final = c.final_equity_quote
        return {
            "currency": c.currency,
            "capital": str(start),
            "capital_quote": str(c.capital),
            "capital_rate": None if c.capital_rate is None else str(c.capital_rate),
            "final_equity": str(c.final_equity),
            "final_equity_quote": None if quote_final is None else str(quote_final),
            "pnl": str(c.pnl),
            "return": _num(float(c.pnl / start) if start else None),
            "by_currency": {cur: t.to_json() for cur, t in pf.totals().items()},
            "rates": {cur: str(r) for cur, r in sorted(c.rates.items())},
            "sharpe": _num(m.sharpe(rets, per_year)),
            "sortino": _num(m.sortino(rets, per_year)),
            "max_drawdown": _num(dd.amount),
            "max_drawdown_pct": _num(dd.fraction),
            "trades": len(c.trips),
            "wins": sum(1 for p in trip_pnls if p > 0),
            "win_rate": _num(m.win_rate(trip_pnls)),
            "fills": c.fills,
            "open_positions": sum(1 for p in pf.positions.values() if p.qty != 0),
            "exposure": _num(c.exposure),
            "exposure_s": _num(c.exposed_ns / 1e9, 9),
            "signals": s.signals,
            "approved": s.approved,
            "rejected": s.rejected,
            "rejections": self.rejections,
            "orders": s.orders,
            "bars": s.bars,
            "market_events": self.market_events,
            "parse_errors": dict(sorted(s.parse_errors.items())),
            "ignored": dict(sorted(s.ignored.items())),
            "start_ns": c.first_ns,
            "end_ns": c.last_ns,
            "annualisation": {
                "period_s": self.period_s,
                "periods_per_year": _num(per_year, 6),
                "returns": len(rets),
                "basis": ANNUALISATION,
            },
        }

    def drawdown(self) -> list[float]:
        return m.drawdown_series(self.sample_equity)

    def to_json(self, curve: bool = True) -> dict[str, Any]:
        """Everything the input decides; identical for identical runs."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "params": self.params,
            "data": self.data,
            "metrics": self.metrics,
            "trades": [
                {
                    "exchange": t.exchange,
                    "symbol": t.symbol,
                    "direction": t.direction,
                    "opened_ns": t.opened_ns,
                    "closed_ns": t.closed_ns,
                    "max_qty": str(t.max_qty),
                    "pnl": str(t.pnl),
                    "fees": str(t.fees),
                    "currency": t.currency,
                }
                for t in self.curve.trips
            ],
        }
        if curve:
            out["equity"] = {
                "t_ns": self.sample_t,
                "equity": [_num(v, 8) for v in self.sample_equity],
                "drawdown": [_num(v) for v in self.drawdown()],
            }
        return out


def money(v: str | Decimal) -> str:
    return f"{Decimal(v):,.4f}"


def coin_money(v: str | Decimal) -> str:
    """Eight decimals: a coin PnL (a satoshi is 1e-8 BTC) reads 0.0000 at four."""
    return f"{Decimal(v):,.8f}"
