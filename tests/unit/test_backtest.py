"""``tradewind backtest``: determinism, the report files, sweeps, bar data."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import market_file
from tradewind.backtest import BacktestSpec, run_backtest, run_sweep
from tradewind.backtest.report import dumps, render_html, write_report
from tradewind.backtest.sweep import grid_points, parse_grid
from tradewind.cli import app

TRADES = "binance_spot_btcusdt_trades_20240808.jsonl"
COMBINED = "binance_spot_btcusdt_combined_20240808.jsonl"
DAILY = "binance_spot_btcusdt_1d_2020.csv"


def spec(name: str = TRADES, **kw: object) -> BacktestSpec:
    return BacktestSpec(data=(market_file(name),), **kw)  # type: ignore[arg-type]


def test_same_input_twice_gives_identical_json(tmp_path: Path) -> None:
    a = run_backtest(spec(params={"fast": 3, "slow": 10}))
    b = run_backtest(spec(params={"fast": 3, "slow": 10}))
    assert dumps(a.to_json()) == dumps(b.to_json())
    wa = write_report(a, tmp_path / "a", plot=False)
    wb = write_report(b, tmp_path / "b", plot=False)
    assert wa["json"].read_bytes() == wb["json"].read_bytes()
    m = a.metrics
    assert m["market_events"] == 9757
    assert m["fills"] > 0 and m["trades"] > 0


def test_report_agrees_with_the_services_accounting() -> None:
    r = run_backtest(spec(params={"fast": 3, "slow": 10}))
    s, pf = r.summary, r.curve.portfolio
    assert r.curve.fills == s.fills
    assert pf.totals() == s.totals and list(s.totals) == ["USDT"]
    m = r.metrics
    assert m["currency"] == "USDT" and m["capital"] == m["capital_quote"] == "10000"
    assert m["by_currency"]["USDT"]["fees"] == str(s.totals["USDT"].fees)
    assert m["signals"] == s.signals == s.approved + s.rejected
    assert sum(m["rejections"].values()) == s.rejected
    assert m["wins"] == sum(1 for t in r.curve.trips if t.pnl > 0)
    assert m["trades"] == len(r.curve.trips) == m["fills"] // 2  # long-only: in and out
    assert 0 < m["exposure"] < 1
    assert r.sample_equity[0] == float(r.curve.capital)
    assert r.sample_equity[-1] == pytest.approx(float(r.curve.final_equity))
    assert r.period_s == 1.0  # the strategy's bar length


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = run_backtest(spec(params={"fast": 3, "slow": 10}))
    written = write_report(r, tmp_path)
    assert set(written) == {"json", "png", "html"}
    page = written["html"].read_text()
    png = written["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    (embedded,) = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert base64.b64decode(embedded) == png
    assert not re.search(r"(?:src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert "Sharpe" in page and "Sortino" in page and "win rate" in page
    data = json.loads(written["json"].read_text())
    assert data["metrics"]["annualisation"]["periods_per_year"] == 365 * 86400


def test_html_without_plot_says_so() -> None:
    r = run_backtest(spec(params={"fast": 3, "slow": 10}))
    page = render_html(r, None)
    assert "data:image" not in page and "no plot" in page


def test_grid_parsing() -> None:
    g = parse_grid(["fast=3,4,5", "slow=10,12"])
    assert g == {"fast": ["3", "4", "5"], "slow": ["10", "12"]}
    points = grid_points(g)
    assert len(points) == 6
    assert points[0] == {"fast": "3", "slow": "10"}
    assert points[-1] == {"fast": "5", "slow": "12"}
    for bad in (["fast"], ["fast="], ["=1,2"], ["a=1", "a=2"]):
        with pytest.raises(ValueError):
            parse_grid(bad)


def test_sweep_has_one_result_per_point_matching_single_runs(tmp_path: Path) -> None:
    base = spec(params={"quantity": "0.01"})
    grid = parse_grid(["fast=3,4", "slow=10,3"])
    points = run_sweep(base, grid, workers=2, out_dir=tmp_path)
    assert [p.grid for p in points] == grid_points(grid)
    ok = [p for p in points if p.result is not None]
    failed = [p for p in points if p.result is None]
    assert len(ok) == 2 and len(failed) == 2  # slow=3 is not slower than fast
    assert all("fast must be shorter than slow" in (p.error or "") for p in failed)
    for p in ok:
        single = run_backtest(base.with_params(p.grid))
        assert p.result == json.loads(dumps(single.to_json()))
        on_disk = json.loads((tmp_path / f"point-{p.index:03d}" / "result.json").read_text())
        assert on_disk == p.result
    assert ok[0].result is not None and ok[1].result is not None
    assert ok[0].result["params"]["fast"] == 3 and ok[1].result["params"]["fast"] == 4


def test_bar_data_feeds_bars_to_the_strategy() -> None:
    r = run_backtest(spec(DAILY, strategy="zscore", params={"window": 10, "entry_z": 1.5}))
    assert r.params["bar_interval_s"] == 0  # exchange bars go to on_bar as they are
    assert r.metrics["market_events"] == 366
    assert r.summary.signals > 0
    assert r.period_s == 86400  # returns sampled per bar
    with pytest.raises(ValueError, match="bar_interval_s=0"):
        run_backtest(spec(DAILY, params={"bar_interval_s": 60}))


def test_imbalance_strategy_on_recorded_quotes() -> None:
    r = run_backtest(spec(COMBINED, strategy="imbalance", params={"hold_s": 2}))
    assert r.summary.signals > 0
    reasons = {s for s in r.metrics["rejections"]}
    assert "no_reference_price" not in reasons


def test_bad_input_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such data file"):
        run_backtest(BacktestSpec(data=(tmp_path / "missing.jsonl",)))
    with pytest.raises(ValueError, match="unknown strategy"):
        run_backtest(spec(strategy="nope"))
    with pytest.raises(ValueError, match="fast"):
        run_backtest(spec(params={"fast": 0}))


def test_cli_single_run_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    data = str(market_file(TRADES))
    res = runner.invoke(
        app, ["backtest", "-d", data, "-p", "fast=3", "-p", "slow=10", "-o", str(out), "--no-plot"]
    )
    assert res.exit_code == 0, res.output
    assert (out / "result.json").is_file() and (out / "report.html").is_file()
    assert not (out / "equity.png").exists()
    assert "Sharpe" in res.output
    res = runner.invoke(app, ["backtest", "-d", data, "-p", "fast=20", "-o", str(out)])
    assert res.exit_code == 2
    assert "fast must be shorter than slow" in res.output
