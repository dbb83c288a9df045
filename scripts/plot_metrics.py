#!/usr/bin/env python3
"""Plot Tradewind's main latency and PnL series from a Prometheus into one PNG.

Grafana cannot be rendered here, so the README shows this picture instead: it
is drawn from the same series the dashboards use, read through Prometheus'
HTTP API (``/api/v1/query_range``), so it shows what the dashboards would.

    python scripts/plot_metrics.py --prometheus http://127.0.0.1:9090 \\
        --since 30m --window 1m --out docs/img/metrics.png

``--start``/``--end`` (Unix seconds) pick an exact window instead of
``--since``. ``--window`` is the rate window of the quantiles: four scrape
intervals or more. ``--require-data`` exits 1 when a panel has no series
(the e2e test uses it, so a renamed metric breaks the test, not the README).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "metrics.png"


@dataclass(frozen=True)
class Query:
    """One line family on a panel: a PromQL expression and how to name its series."""

    expr: str
    legend: str  # str.format over the series' labels, e.g. "{hop}"
    scale: float = 1.0


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]


def _quantile(q: float, metric: str, window: str, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{window}])))"


def panels(window: str) -> list[Panel]:
    """The plotted series; latency in milliseconds, PnL in the quote currency.

    Hops are measured from the tick's local receive time, so each hop's line
    includes the ones before it (tick_to_signal <= signal_to_decision <= ...).
    """
    t2o = "tradewind_tick_to_order_seconds"
    hop = "tradewind_hop_latency_seconds"
    return [
        Panel(
            "Tick to order acknowledged",
            "ms",
            (
                Query(_quantile(0.5, t2o, window), "p50", 1000),
                Query(_quantile(0.99, t2o, window), "p99", 1000),
            ),
        ),
        Panel("Hop latency p50", "ms", (Query(_quantile(0.5, hop, window, "hop"), "{hop}", 1000),)),
        Panel(
            "Hop latency p99", "ms", (Query(_quantile(0.99, hop, window, "hop"), "{hop}", 1000),)
        ),
        Panel(
            "PnL",
            "quote currency",
            (
                Query("sum by (symbol) (tradewind_realized_pnl)", "realized {symbol}"),
                Query("sum by (symbol) (tradewind_unrealized_pnl)", "unrealized {symbol}"),
            ),
        ),
    ]


Series = tuple[str, list[float], list[float]]  # legend, unix times, values


def query_range(base: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    """The matrix of one range query; an error answer raises with Prometheus' reason."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
    url = f"{base.rstrip('/')}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error', body)}")
    result: list[Any] = body["data"]["result"]
    return result


def fetch(base: str, panel: Panel, start: float, end: float, step: float) -> list[Series]:
    """The panel's series with their finite points (NaN quantiles of idle steps dropped)."""
    out: list[Series] = []
    for q in panel.queries:
        for s in query_range(base, q.expr, start, end, step):
            points = [(float(t), float(v) * q.scale) for t, v in s["values"]]
            points = [(t, v) for t, v in points if math.isfinite(v)]
            if points:
                legend = q.legend.format_map(_Missing(s["metric"]))
                out.append((legend, [t for t, _ in points], [v for _, v in points]))
    return out


class _Missing(dict[str, str]):
    """Labels for str.format_map; a label the series lacks prints as empty."""

    def __missing__(self, key: str) -> str:
        return ""


def plot(data: list[tuple[Panel, list[Series]]], out: Path, title: str, t0: float) -> None:
    """One panel per row, time in seconds from ``t0`` (the title holds the UTC span)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(data), 1, figsize=(11, 2.6 * len(data)), sharex=True)
    for ax, (panel, series) in zip(axes, data, strict=True):
        for legend, ts, vs in series:
            style = "--" if legend.startswith(("p50", "unrealized")) else "-"
            ax.plot([t - t0 for t in ts], vs, style, label=legend, linewidth=1.4)
        ax.set_title(panel.title, loc="left", fontsize=11)
        ax.set_ylabel(panel.unit)
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="base URL")
    parser.add_argument("--since", default="30m", help="window ending now, e.g. 30m, 2h")
    parser.add_argument("--start", type=float, help="Unix seconds (overrides --since)")
    parser.add_argument("--end", type=float, help="Unix seconds (default: now)")
    parser.add_argument("--step", type=float, default=0.0, help="seconds (default: ~300 steps)")
    parser.add_argument("--window", default="1m", help="rate window of the quantiles")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--require-data", action="store_true", help="exit 1 on an empty panel")
    args = parser.parse_args(argv)

    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - _seconds(args.since)
    if start >= end:
        parser.error("--start must be before --end")
    step = args.step or max(1.0, round((end - start) / 300))
    try:
        data = [(p, fetch(args.prometheus, p, start, end, step)) for p in panels(args.window)]
    except (OSError, RuntimeError) as exc:
        print(f"plot_metrics: {exc}", file=sys.stderr)
        return 1
    for panel, series in data:
        points = sum(len(ts) for _, ts, _ in series)
        print(f"{panel.title}: {len(series)} series, {points} points")
    span = f"{_utc(start)} to {_utc(end)} UTC"
    plot(data, args.out, f"Tradewind: latency and PnL, {span}", start)
    print(f"wrote {args.out}")
    empty = [p.title for p, series in data if not series]
    if args.require_data and empty:
        print(f"plot_metrics: no data for {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    sys.exit(main())
