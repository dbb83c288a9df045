"""Report files: ``result.json``, ``equity.png`` and a self-contained ``report.html``.

The HTML embeds the plot as base64 and its styles inline, so the one file can
be mailed or archived and still shows everything. The plot is drawn with
matplotlib's Agg backend (no display needed); matplotlib comes with the
``report`` extra, and without it the JSON and an HTML without the plot are
still written.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradewind.backtest.result import ANNUALISATION, BacktestResult, coin_money, money

RESULT_JSON = "result.json"
EQUITY_PNG = "equity.png"
REPORT_HTML = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1000px;
color:#1b1f24}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border-bottom:1px solid #d0d7de;padding:.25em .8em;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #d0d7de}
.neg{color:#b42318}.pos{color:#067647}.note{color:#57606a;font-size:.85em}
"""


def dumps(data: Any) -> str:
    """Stable JSON: sorted keys, fixed separators, a final newline."""
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _ts(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def plot_png(result: BacktestResult) -> bytes | None:
    """Price with every fill marked, equity and drawdown, as PNG bytes; None
    without matplotlib. The price panel shows the most filled symbol."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    c = result.curve
    times = [_dt(t) for t in result.sample_t]
    dd = [100.0 * v for v in result.drawdown()]
    price_t, price_v = c.sample_price(int(result.period_s * 1e9)) if c.price_of else ([], [])
    rows = 3 if price_t else 2
    fig, axes = plt.subplots(
        rows,
        1,
        sharex=True,
        figsize=(10, 8 if rows == 3 else 6),
        gridspec_kw={"height_ratios": [3, 3, 1][-rows:]},
    )
    try:
        if price_t and c.price_of is not None:
            ax0 = axes[0]
            ax0.plot([_dt(t) for t in price_t], price_v, color="#57606a", linewidth=0.9)
            for side, marker, color in (("buy", "^", "#1a7f37"), ("sell", "v", "#cf222e")):
                pts = [(t, p) for t, s, p in c.fill_points if s == side]
                if pts:
                    ax0.scatter(
                        [_dt(t) for t, _ in pts],
                        [p for _, p in pts],
                        marker=marker,
                        color=color,
                        s=36,
                        zorder=3,
                        label=f"{side} ({len(pts)})",
                    )
            exchange, symbol = c.price_of
            ax0.set_title(f"{result.strategy} — {exchange} {symbol}: price and fills")
            ax0.set_ylabel("price")
            ax0.ticklabel_format(axis="y", style="plain", useOffset=False)
            ax0.grid(alpha=0.3)
            if c.fill_points:
                ax0.legend(loc="best", fontsize="small")
        ax1, ax2 = axes[-2], axes[-1]
        ax1.plot(times, result.sample_equity, color="#0969da", linewidth=1.2)
        ax1.axhline(float(c.start_equity), color="#8c959f", linewidth=0.8, linestyle="--")
        ax1.set_ylabel(f"equity ({c.currency})" if c.currency else "equity")
        ax1.ticklabel_format(axis="y", style="plain", useOffset=False)
        title = "equity (marked to market) and drawdown"
        ax1.set_title(title if rows == 3 else f"{result.strategy} — {title}")
        ax1.grid(alpha=0.3)
        ax2.fill_between(times, dd, 0.0, color="#cf222e", alpha=0.4, step="post")
        ax2.set_ylabel("drawdown %")
        ax2.grid(alpha=0.3)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{100 * v:.2f} %" if pct else f"{v:,.4f}"
    return html.escape(str(v))


def metric_rows(r: BacktestResult) -> list[tuple[str, str]]:
    m = r.metrics
    cur = f" ({m['currency']})" if m["currency"] else ""
    rows = [
        (f"PnL (after fees){cur}", money(m["pnl"])),
        ("return", _fmt(m["return"], pct=True)),
        (f"final equity{cur}", money(m["final_equity"])),
        (f"starting capital{cur}", money(m["capital"])),
    ]
    if m["capital_rate"] is not None:
        rows.append(("capital converted at", money(m["capital_rate"])))
    if m["final_equity_quote"] is not None:
        quoted = money(m["final_equity_quote"])
        rows.append(("final equity in the quote, at the last price", quoted))
    for c, t in m["by_currency"].items():
        named = f" ({c})" if c else ""
        rows += [
            (f"realized PnL{named}", coin_money(t["realized_pnl"])),
            (f"unrealized PnL{named}", coin_money(t["unrealized_pnl"])),
            (f"fees{named}", coin_money(t["fees"])),
        ]
    return [
        *rows,
        ("Sharpe (annualised)", _fmt(m["sharpe"])),
        ("Sortino (annualised)", _fmt(m["sortino"])),
        ("max drawdown", _fmt(m["max_drawdown"])),
        ("max drawdown %", _fmt(m["max_drawdown_pct"], pct=True)),
        ("trades (round trips)", str(m["trades"])),
        ("win rate", _fmt(m["win_rate"], pct=True)),
        ("fills", str(m["fills"])),
        ("exposure time", f"{_fmt(m['exposure'], pct=True)} ({m['exposure_s']:,.0f} s)"),
        ("signals / approved / rejected", f"{m['signals']} / {m['approved']} / {m['rejected']}"),
        ("market events", f"{m['market_events']:,}"),
        ("period", f"{_ts(m['start_ns'])} → {_ts(m['end_ns'])} UTC"),
    ]


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(r: BacktestResult, png: bytes | None) -> str:
    params = _table(
        ["parameter", "value"], [(html.escape(k), _fmt(v)) for k, v in sorted(r.params.items())]
    )
    metrics = _table(["metric", "value"], metric_rows(r))
    rejections = r.metrics.get("rejections") or {}
    rej = (
        _table(
            ["risk rejection", "count"], [(html.escape(k), str(v)) for k, v in rejections.items()]
        )
        if rejections
        else ""
    )
    trips = _table(
        [
            "#",
            "symbol",
            "side",
            "opened (UTC)",
            "closed (UTC)",
            "qty",
            "PnL after fees",
            "fees",
            "currency",
        ],
        [
            (
                str(i + 1),
                html.escape(f"{t.exchange}:{t.symbol}"),
                t.direction,
                _ts(t.opened_ns),
                _ts(t.closed_ns),
                f"{t.max_qty.normalize():f}",
                f'<span class="{"pos" if t.pnl > 0 else "neg"}">{coin_money(t.pnl)}</span>',
                coin_money(t.fees),
                html.escape(t.currency),
            )
            for i, t in enumerate(r.curve.trips[:500])
        ],
    )
    img = (
        f'<img alt="equity and drawdown" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}">'
        if png
        else '<p class="note">matplotlib is not installed: no plot '
        "(pip install 'tradewind[report]').</p>"
    )
    data = ", ".join(html.escape(Path(d).name) for d in r.data)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Tradewind backtest: {html.escape(r.strategy)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Tradewind backtest: {html.escape(r.strategy)}</h1>
<p>Data: {data}</p>
{img}
<h2>Results</h2>
{metrics}
<p class="note">{html.escape(ANNUALISATION)}; period_s = {r.period_s:g}.
Equity is the run's fills through the portfolio accounting, marked to market on every
price change; max drawdown is measured on that full curve. A trade is a round trip from
flat to flat (or to a reversal); its PnL is after fees.</p>
{rej}
<h2>Parameters</h2>
{params}
<h2>Trades</h2>
{trips}
</body></html>
"""


def write_report(result: BacktestResult, out_dir: Path, plot: bool = True) -> dict[str, Path]:
    """Write the JSON, PNG and HTML; returns what was written by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    path = out_dir / RESULT_JSON
    path.write_text(dumps(result.to_json()))
    written["json"] = path
    png = plot_png(result) if plot else None
    if png is not None:
        path = out_dir / EQUITY_PNG
        path.write_bytes(png)
        written["png"] = path
    path = out_dir / REPORT_HTML
    path.write_text(render_html(result, png))
    written["html"] = path
    return written


SWEEP_JSON = "sweep.json"
SWEEP_HTML = "sweep.html"


def render_sweep_html(sweep: dict[str, Any]) -> str:
    keys = list(sweep["grid"])
    head = ["#", *keys, "PnL", "return", "Sharpe", "Sortino", "max DD %", "trades", "win rate"]
    rows = []
    for p in sweep["points"]:
        m = p["metrics"]
        cells = [str(p["index"]), *(html.escape(p["grid"][k]) for k in keys)]
        if m is None:
            cells += [f'<span class="neg">{html.escape(p["error"] or "failed")}</span>'] + [""] * 6
        else:
            cells += [
                html.escape(f"{money(m['pnl'])} {m.get('currency', '')}".rstrip()),
                _fmt(m["return"], pct=True),
                _fmt(m["sharpe"]),
                _fmt(m["sortino"]),
                _fmt(m["max_drawdown_pct"], pct=True),
                str(m["trades"]),
                _fmt(m["win_rate"], pct=True),
            ]
        rows.append(cells)
    data = ", ".join(html.escape(Path(d).name) for d in sweep["data"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Tradewind sweep: {html.escape(sweep["strategy"])}</title>
<style>{_CSS}</style></head>
<body>
<h1>Tradewind sweep: {html.escape(sweep["strategy"])}</h1>
<p>Data: {data}. {len(rows)} grid points.</p>
{_table(head, rows)}
<p class="note">{html.escape(ANNUALISATION)}.</p>
</body></html>
"""


def write_sweep(sweep: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    j, h = out_dir / SWEEP_JSON, out_dir / SWEEP_HTML
    j.write_text(dumps(sweep))
    h.write_text(render_sweep_html(sweep))
    return {"json": j, "html": h}
