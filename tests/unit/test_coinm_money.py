"""COIN-M money beyond one position: the backtest's equity in the coin, totals
per settlement currency, and ``max_position`` in the base coin.

Every figure is worked out by hand from the recorded ETHUSD_210924 prints of
the cryptofeed sample (tests/data/venues/SOURCES.md): prices 1992.17, 1992.07,
1992.06, 1991.89, 1991.51, 1991.51, 1991.49, contracts of 10 USD.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_coinm import REGISTRY, _trades
from tests.unit.test_risk_engine import reason_of, seen, signal
from tradewind.backtest.equity import Mark, _Walker, build_equity
from tradewind.config import RiskSettings
from tradewind.events import Fill, Liquidity, Side, Trade
from tradewind.portfolio import Portfolio
from tradewind.risk.engine import RiskEngine
from tradewind.risk.reasons import Reason
from tradewind.strategies import Strategy
from tradewind.strategies.base import StrategyParams

ETH = ("binance-coinm", "ETHUSD_210924")
BTC = ("binance", "BTCUSDT")
START_ETH = D("5.019651937334665214314039465")
"""10,000 USD of capital at the first print: 10000 / 1992.17 ETH."""
LOSS = D("0.000262649715570")
"""600/1992.17 + 700/1992.07 + 400/1992.06 - 1700/1991.49 ETH (test_coinm)."""


def _prints() -> list[Trade]:
    t = _trades(ETH[1])[:7]
    assert [x.price for x in t] == [1992.17, 1992.07, 1992.06, 1991.89, 1991.51, 1991.51, 1991.49]
    return t


def _fill(n: int, key: tuple[str, str], ts: int, side: Side, qty: str, px: str, fee: str) -> Fill:
    return Fill(
        id=f"f{n}",
        ts_event=ts,
        client_order_id=f"c{n}",
        exchange_order_id=f"e{n}",
        exchange=key[0],
        symbol=key[1],
        side=side,
        price=D(px),
        qty=D(qty),
        fee=D(fee),
        fee_currency="ETH" if key == ETH else "USDT",
        liquidity=Liquidity.TAKER,
    )


def _eth_run() -> tuple[list[Mark], list[Fill]]:
    """Buy 60, 70, 40 contracts at the first three prints, sell all 170 at the
    seventh paying a 0.0001 ETH fee."""
    t = _prints()
    marks: list[Mark] = [(x.ts_event, ETH[0], ETH[1], x.price) for x in t]
    fills = [
        _fill(i, ETH, x.ts_event, Side.BUY, q, repr(x.price), "0")
        for i, (x, q) in enumerate(zip(t[:3], ("60", "70", "40"), strict=True))
    ]
    fills.append(_fill(9, ETH, t[6].ts_event, Side.SELL, "170", "1991.49", "0.0001"))
    return marks, fills


def test_inverse_equity_curve_is_in_the_coin() -> None:
    marks, fills = _eth_run()
    c = build_equity(marks, fills, D(10_000), instruments=REGISTRY, quote="USDT")
    assert c.currency == "ETH" and c.capital_rate == D("1992.17")
    assert c.start_equity == pytest.approx(START_ETH, abs=D("1e-24"))
    # At each print from the fourth on, 170 contracts long from the harmonic
    # entry lose 0.8533695553168 - 1700/price ETH (see _prints).
    t = [m[0] for m in marks]
    by_t = dict(zip(c.times, c.equity, strict=True))
    s = float(START_ETH)
    assert by_t[t[0]] == pytest.approx(s, abs=1e-12)
    assert by_t[t[3]] == pytest.approx(s - 0.0000912281601562, abs=1e-12)
    assert by_t[t[4]] == pytest.approx(s - 0.0002540770023520, abs=1e-12)
    assert by_t[t[6]] == pytest.approx(s - 0.000262649715570 - 0.0001, abs=1e-12)
    assert c.pnl == pytest.approx(-LOSS - D("0.0001"), abs=D("1e-12"))
    final = START_ETH - LOSS - D("0.0001")
    assert c.final_equity == pytest.approx(final, abs=D("1e-12"))
    # Valued in USD at the last price: 5.019289287619 ETH x 1991.49.
    assert c.final_equity_quote == pytest.approx(final * D("1991.49"), abs=D("1e-8"))
    (trip,) = c.trips
    assert (trip.currency, trip.max_qty) == ("ETH", D(170))
    assert trip.pnl == pytest.approx(-LOSS - D("0.0001"), abs=D("1e-12"))


def test_without_instruments_the_same_run_would_be_valued_linear() -> None:
    """The bug this fixes: a curve that knew nothing of inverse contracts read
    170 contracts as 170 ETH and lost 170 x 0.68 USD on them."""
    marks, fills = _eth_run()
    wrong = build_equity(marks, fills, D(10_000))
    right = build_equity(marks, fills, D(10_000), instruments=REGISTRY, quote="USDT")
    assert wrong.pnl < D(-100) and right.pnl > D("-0.001")


def test_mixed_run_keeps_each_currency_apart() -> None:
    """A linear BTCUSDT round trip (+1 USDT, 0.6 USDT fees) beside the ETH one.

    USDT: 0.01 x (30100 - 30000) - 0.6 = 0.4; ETH: -0.000362649716. The curve
    is in USDT with ETH valued at its last price 1991.49:
    0.4 - 0.000362649716 x 1991.49 = 0.4 - 0.722213282 = -0.322213282.
    Never 0.4 + (-0.00036) = 0.39964 (coins added to dollars)."""
    marks, fills = _eth_run()
    t0 = marks[0][0]
    marks += [(t0 + 1, *BTC, 30_000.0), (marks[-1][0] + 1, *BTC, 30_100.0)]
    fills += [
        _fill(20, BTC, t0 + 1, Side.BUY, "0.01", "30000", "0.3"),
        _fill(21, BTC, marks[-1][0], Side.SELL, "0.01", "30100", "0.3"),
    ]
    c = build_equity(marks, fills, D(10_000), instruments=REGISTRY, quote="USDT")
    totals = c.portfolio.totals()
    assert list(totals) == ["ETH", "USDT"]
    assert totals["USDT"].pnl == D("0.4") and totals["USDT"].fees == D("0.6")
    assert totals["ETH"].pnl == pytest.approx(-LOSS - D("0.0001"), abs=D("1e-12"))
    assert totals["ETH"].fees == D("0.0001")
    assert c.currency == "USDT" and c.capital_rate is None
    eth_in_usdt = (-LOSS - D("0.0001")) * D("1991.49")
    assert c.pnl == pytest.approx(D("0.4") + eth_in_usdt, abs=D("1e-8"))
    assert c.pnl == pytest.approx(D("-0.322213282"), abs=D("1e-9"))
    naive = totals["USDT"].pnl + totals["ETH"].pnl
    assert abs(c.pnl - naive) > D("0.7")
    assert {t.currency for t in c.trips} == {"ETH", "USDT"}


def test_run_summary_and_result_json_have_no_cross_currency_total() -> None:
    from tradewind.backtest.result import BacktestResult
    from tradewind.cli.runs_cmd import _pnl
    from tradewind.runtime.embedded import RunSummary

    marks, fills = _eth_run()
    marks.append((marks[-1][0] + 1, *BTC, 30_000.0))
    fills.append(_fill(20, BTC, marks[-1][0], Side.BUY, "0.01", "30000", "0.3"))
    c = build_equity(marks, fills, D(10_000), instruments=REGISTRY, quote="USDT")
    s = RunSummary(0, {}, 0, 0, 0, 0, 0, len(fills), c.portfolio.totals(), [], None, None)
    out = s.outcome()
    assert set(out["by_currency"]) == {"ETH", "USDT"}
    assert not {"fees", "realized_pnl", "unrealized_pnl"} & set(out)
    assert out["by_currency"]["USDT"]["fees"] == "0.3"
    assert out["by_currency"]["ETH"]["fees"] == "0.0001"
    assert _pnl(out) == "-0.00036265 ETH; -0.3 USDT"  # 8 decimals at most
    r = BacktestResult.build("x", {}, [], s, c, 1.0, len(marks))
    m = r.to_json()["metrics"]
    assert set(m["by_currency"]) == {"ETH", "USDT"}
    assert m["currency"] == "USDT" and not {"fees", "realized_pnl"} & set(m)


# --- max_position in the base coin ---------------------------------------------


def test_inverse_max_position_is_counted_in_the_coin() -> None:
    """max_position 1 ETH at 2000 USD: 200 contracts of 10 USD are 1 ETH."""

    def engine() -> RiskEngine:
        e = RiskEngine(RiskSettings(max_position=D(1), max_order_notional=D(10_000)), REGISTRY)
        seen(e, key=ETH, price=2000.0)
        return e

    # bought at the ask, 2000.01: 2000 USD is 0.999995 ETH, 2010 USD 1.004995.
    assert reason_of(engine(), signal(key=ETH, qty="200", price=2000.0)) == Reason.OK
    d, _ = engine().evaluate(signal(key=ETH, qty="201", price=2000.0))
    assert d.reason == Reason.MAX_POSITION
    assert d.detail == (
        "worst-case position 1.00499498 ETH (201 contracts of 10 USD at 2000.01) > 1 ETH"
    )


def test_linear_max_position_is_unchanged_and_names_the_coin() -> None:
    e = RiskEngine(RiskSettings(max_position=D("0.05")), REGISTRY)
    seen(e, key=BTC)
    d, _ = e.evaluate(signal(key=BTC, qty="0.06"))
    assert d.reason == Reason.MAX_POSITION and d.detail.endswith("0.06 BTC > 0.05 BTC")


@given(
    contracts=st.integers(min_value=1, max_value=100_000),
    price=st.decimals(min_value=D(50), max_value=D(100_000), places=2),
    cap=st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
)
def test_inverse_position_verdict_matches_the_coin_value(contracts: int, price: D, cap: D) -> None:
    """Whatever the price, a new inverse position passes exactly when its coin
    value (contracts x 10 USD / buy reference price) is within max_position."""
    e = RiskEngine(
        RiskSettings(
            max_position=cap,
            max_order_notional=D("1e12"),
            max_gross_exposure=D("1e12"),
            max_net_exposure=D("1e12"),
        ),
        REGISTRY,
    )
    seen(e, key=ETH, price=float(price))
    got = reason_of(e, signal(key=ETH, qty=str(contracts), price=float(price)))
    ask = D(repr(float(price) + 0.01))
    coin = D(contracts) * 10 / ask
    assert got == (Reason.OK if coin <= cap else Reason.MAX_POSITION)


def test_utilisation_reports_the_position_in_the_coin() -> None:
    e = RiskEngine(RiskSettings(max_position=D(2), max_order_notional=D(10_000)), REGISTRY)
    seen(e, key=ETH, price=2000.0)
    _, order = e.evaluate(signal(key=ETH, qty="100", price=2000.0))
    assert order is not None
    e.on_order(order, D("2000.01"))
    used, limit = e.utilisation()["position"]
    assert limit == 2 and used == pytest.approx(D("0.5"), abs=D("1e-9"))  # 1000 USD / 2000


def test_risk_equity_values_coin_pnl_at_the_mark() -> None:
    """A 2-contract BTCUSD_PERP short from 40000 to 32000 gains 0.00125 BTC,
    which risk counts as 0.00125 x 32000 = 40 USD, not 0.00125."""
    key = ("binance-coinm", "BTCUSD_PERP")
    e = RiskEngine(RiskSettings(), REGISTRY)
    e.on_fill(_fill(1, key, 1, Side.SELL, "2", "40000", "0"))
    seen(e, key=key, ts=2, price=32000.0)
    e.on_fill(_fill(2, key, 3, Side.BUY, "2", "32000", "0"))
    assert e.equity() == D("40.00000")


# --- a mixed run through the services ------------------------------------------


class RoundTripParams(StrategyParams):
    bar_interval_s: float = 0.0
    quantity: D = D(1)


class RoundTrip(Strategy):
    """Buys ``quantity`` on a symbol's first trade and sells it on its sixth:
    one round trip per symbol, whatever the prices do."""

    name = "round_trip"
    Params = RoundTripParams

    def __init__(self, params: StrategyParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        assert isinstance(params, RoundTripParams)
        self.qty = params.quantity
        self.seen = 0

    def on_trade(self, trade: Trade) -> None:
        self.seen += 1
        if self.seen == 1:
            self.ctx.buy(self.qty)
        elif self.seen == 6:
            self.ctx.sell(self.qty)


def test_mixed_backtest_reports_each_settlement_currency(tmp_path: Path) -> None:
    """BTCUSDT spot (linear, USDT) and the COIN-M recording (inverse, coins)
    in one backtest: the summary, result.json and `tradewind show` keep one
    figure per currency, and the curve values the coins at their prices."""
    from typer.testing import CliRunner

    from tests.conftest import market_file
    from tradewind.backtest import BacktestSpec, run_backtest
    from tradewind.backtest.report import write_report
    from tradewind.cli import app
    from tradewind.cli.run import summary_json, summary_table
    from tradewind.storage import runs

    spec = BacktestSpec(
        data=(
            market_file("binance_spot_btcusdt_trades_20240808.jsonl"),
            Path(__file__).resolve().parents[1] / "data/venues/binance_coinm_ws_20210722.jsonl",
        ),
        strategy=f"{__name__}:RoundTrip",
        params={"quantity": "1"},
        settings={
            "risk": {
                "stale_after_s": 1e9,
                "cooldown_s": 0,
                "max_position": "2",
                "max_order_notional": "1e6",
                "max_gross_exposure": "1e9",
                "max_net_exposure": "1e9",
                "max_daily_loss": "1e9",
                "max_drawdown": "1e9",
            }
        },
        db=tmp_path / "run.db",
    )
    r = run_backtest(spec)
    s = r.summary
    traded = {p.symbol: p for p in s.positions}
    assert {"BTCUSDT", "ETHUSD_210924"} <= set(traded)
    assert traded["ETHUSD_210924"].currency == "ETH" and traded["ETHUSD_210924"].inverse
    assert traded["BTCUSDT"].currency == "USDT"
    assert {"ETH", "USDT"} <= set(s.totals)
    for cur, tot in s.totals.items():
        mine = [p for p in s.positions if p.currency == cur]
        assert tot.fees == sum((p.fees for p in mine), D(0))
        assert tot.realized_pnl == sum((p.realized_pnl for p in mine), D(0))
    m = r.metrics
    assert m["currency"] == "USDT"
    assert m["by_currency"] == {c: t.to_json() for c, t in s.totals.items()}
    valued = sum(
        (t.pnl * (D(m["rates"][c]) if c in m["rates"] else 1) for c, t in s.totals.items()),
        D(0),
    )
    assert D(m["pnl"]) == valued
    assert D(m["pnl"]) != sum((t.pnl for t in s.totals.values()), D(0))
    written = write_report(r, tmp_path / "out", plot=False)
    html = written["html"].read_text()
    assert "fees (ETH)" in html and "fees (USDT)" in html

    # The `run` summary and `tradewind show`: a row per currency, none summed.
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(summary_table(s))
    text = console.export_text()
    assert "fees (ETH)" in text and "realized PnL (USDT)" in text
    assert "ETHUSD_210924" in text and "contracts" in text
    assert not [line for line in text.splitlines() if line.strip("│ ").startswith("fees  ")]
    rec = runs.RunRecord("r1", "run", 1, 2, "round_trip", {}, [], summary_json(s))
    runs.record(tmp_path / "run.db", rec)
    out = CliRunner().invoke(
        app, ["show", "r1", "--db", str(tmp_path / "run.db")], terminal_width=200
    )
    assert out.exit_code == 0, out.output
    assert "PnL in ETH" in out.output and "PnL in USDT" in out.output
    listed = CliRunner().invoke(app, ["runs", "--db", str(tmp_path / "run.db"), "--json"])
    (summary,) = [x["summary"] for x in json.loads(listed.output) if x["run_id"] == "r1"]
    assert not {"fees", "realized_pnl", "unrealized_pnl"} & set(summary)


@given(
    st.sampled_from([(ETH, "ETH"), (ETH, "USDT"), (BTC, "USDT"), (BTC, "ETH")]),
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 50), st.integers(190_000, 210_000)),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([None, D("1992.17")]),
)
def test_one_position_is_valued_as_the_totals_value_it(
    key_currency: tuple[tuple[str, str], str],
    steps: list[tuple[bool, int, int]],
    capital_rate: D | None,
) -> None:
    """The walk's shortcut for one position gives the float of ``final_equity``
    at every fill and mark: long, short, reversed, flat, in the coin, or a
    coin contract valued in the quote at its latest price."""
    key, currency = key_currency
    w = _Walker(D(10_000), Portfolio(REGISTRY, "USDT"), currency)
    w.curve.capital_rate = capital_rate
    for n, (buy, qty, cents) in enumerate(steps):
        px = D(cents) / 100
        side = Side.BUY if buy else Side.SELL
        w.fill(_fill(n, key, 2 * n, side, str(qty), str(px), str(px / 10_000)))
        assert len(w.pf.positions) == 1
        assert w.value() == float(w.curve.final_equity)
        w.mark(2 * n + 1, *key, float(px) + 0.37)
        assert w.value() == float(w.curve.final_equity)
