#!/usr/bin/env python3
"""Write the Grafana dashboards (dashboards/*.json) from the panel lists below.

Run after changing a panel: ``python infrastructure/monitoring/grafana/build_dashboards.py``.
``--check`` exits 1 when a committed JSON file differs from what this script
writes (tests/deploy runs it). Every expression uses only metric names from
``src/tradewind/observability/metrics.py`` plus Prometheus' ``up`` and the
``process_*`` metrics of prometheus-client's default collectors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "tradewind-prometheus"}
SERVICES = 'job=~"ws|signal|risk|execution|orderpath|db_writer"'
OUT = Path(__file__).resolve().parent / "dashboards"


def ts(title: str, *exprs: tuple[str, str], unit: str = "short", desc: str = "",
       stack: bool = False) -> dict[str, Any]:
    return {"type": "timeseries", "title": title, "description": desc, "unit": unit,
            "targets": list(exprs), "stack": stack}


def stat(title: str, expr: str, legend: str = "", unit: str = "short", desc: str = "",
         mappings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "stat", "title": title, "description": desc, "unit": unit,
            "targets": [(expr, legend)], "mappings": mappings or []}


def zero(expr: str) -> str:
    """``expr``, or one 0 when it has no series at all.

    For counts of rare events (errors, reconnects, gaps, resyncs, dead letters)
    and for gauges that only exist in some setups (live feed connections, the
    live execution circuit breaker): their series appear only once something
    happened, and an operator should read "0", not "No data", which looks like a
    broken panel. ``on()`` drops the 0 as soon as ``expr`` has any series. The
    e2e test (tests/e2e/test_monitoring.py) still fails on a wrong metric name:
    it checks every name in every expression against what the services export.
    """
    return f"{expr} or on() vector(0)"


def q(quantile: float, metric: str, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({group}) (rate({metric}_bucket[5m])))"


DASHBOARDS: dict[str, dict[str, Any]] = {
    "tradewind-overview": {
        "title": "Tradewind / Overview",
        "description": "Is everything up, is data flowing, is the strategy trading, and how fast.",
        "panels": [
            stat("Services up", f"sum by (job) (up{{{SERVICES}}})", "{{job}}",
                 desc="Scraped replicas per service (0 = down)."),
            stat("Trading state", "max by (state) (tradewind_trading_state)", "{{state}}",
                 desc="1 for the current state of risk: active, reducing or halted."),
            stat("Dead letters", "max(tradewind_dead_letter_size)", "dead letters",
                 desc="Messages in the dead-letter topic (should be 0)."),
            stat("Open orders", "sum(tradewind_open_orders)", "open orders"),
            ts("Events published per second by topic",
               ("sum by (topic) (rate(tradewind_events_published_total[1m]))", "{{topic}}"),
               unit="ops", stack=True),
            ts("Events consumed per second by service",
               ("sum by (service) (rate(tradewind_events_consumed_total[1m]))", "{{service}}"),
               unit="ops"),
            ts("Tick to order acknowledged",
               (q(0.5, "tradewind_tick_to_order_seconds"), "p50"),
               (q(0.99, "tradewind_tick_to_order_seconds"), "p99"), unit="s"),
            ts("PnL (realized + unrealized) by settlement currency",
               ("sum by (currency) (tradewind_realized_pnl)", "realized {{currency}}"),
               ("sum by (currency) (tradewind_unrealized_pnl)", "unrealized {{currency}}")),
            ts("Stream lag by consumer group",
               ("max by (topic, group) (tradewind_stream_lag)", "{{group}} on {{topic}}")),
            ts("Feed age", ("time() - max by (exchange, symbol) "
                            "(tradewind_feed_last_event_timestamp_seconds)",
                            "{{exchange}} {{symbol}}"), unit="s"),
        ],
    },
    "tradewind-market-data": {
        "title": "Tradewind / Market data health",
        "description": "Exchange feeds: freshness, throughput, connections, gaps and book health.",
        "panels": [
            ts("Feed age", ("time() - max by (exchange, symbol) "
                            "(tradewind_feed_last_event_timestamp_seconds)",
                            "{{exchange}} {{symbol}}"), unit="s",
               desc="Seconds since the last message per feed; risk blocks exposure when stale."),
            ts("Messages per second",
               ("sum by (exchange, kind) (rate(tradewind_feed_messages_total[1m]))",
                "{{exchange}} {{kind}}"), unit="ops"),
            ts("Open connections",
               (zero("sum by (exchange) (tradewind_feed_connected)"), "{{exchange}}")),
            ts("Reconnects (5 min)",
               (zero("sum by (exchange, reason) (increase(tradewind_feed_reconnects_total[5m]))"),
                "{{exchange}} {{reason}}")),
            ts("Parse errors (5 min)",
               (zero("sum by (exchange, reason) (increase(tradewind_feed_parse_errors_total[5m]))"),
                "{{exchange}} {{reason}}")),
            ts("Sequence gaps (5 min)",
               (zero("sum by (exchange, symbol) (increase(tradewind_feed_gaps_total[5m]))"),
                "{{exchange}} {{symbol}}")),
            ts("Book resyncs (5 min)",
               (zero("sum by (exchange, symbol, reason) "
                     "(increase(tradewind_book_resyncs_total[5m]))"),
                "{{exchange}} {{symbol}} {{reason}}")),
            ts("Book checksum failures and crossed books (5 min)",
               (zero("sum by (exchange, symbol) "
                     "(increase(tradewind_book_checksum_failures_total[5m]))"),
                "checksum {{exchange}} {{symbol}}"),
               (zero("sum by (exchange, symbol) (increase(tradewind_book_crossed_total[5m]))"),
                "crossed {{exchange}} {{symbol}}")),
            ts("Duplicate trades dropped (5 min)",
               (zero("sum by (exchange, symbol) (increase(tradewind_feed_duplicates_total[5m]))"),
                "{{exchange}} {{symbol}}")),
            ts("Frame to publish latency",
               (q(0.99, "tradewind_feed_publish_latency_seconds", "exchange"),
                "p99 {{exchange}}"), unit="s"),
            ts("Bars closed per minute",
               ("sum by (symbol) (rate(tradewind_bars_total[5m])) * 60", "{{symbol}}")),
        ],
    },
    "tradewind-trading": {
        "title": "Tradewind / Trading and PnL",
        "description": "Signals, risk verdicts, orders, fills, positions, exposure and PnL.",
        "panels": [
            ts("Realized PnL", ("sum by (exchange, symbol, currency) (tradewind_realized_pnl)",
                                "{{exchange}} {{symbol}} ({{currency}})")),
            ts("Unrealized PnL", ("sum by (exchange, symbol, currency) (tradewind_unrealized_pnl)",
                                  "{{exchange}} {{symbol}} ({{currency}})")),
            ts("Position", ("sum by (exchange, symbol) (tradewind_position)",
                            "{{exchange}} {{symbol}}")),
            ts("Exposure", ("max by (kind) (tradewind_exposure)", "{{kind}}"),
               unit="currencyUSD"),
            ts("Risk limit utilisation", ("max by (limit) (tradewind_limit_utilisation_ratio)",
                                          "{{limit}}"), unit="percentunit"),
            ts("Trading state", ("max by (state) (tradewind_trading_state)", "{{state}}")),
            ts("Signals per minute",
               ("sum by (strategy, side) (rate(tradewind_signals_total[5m])) * 60",
                "{{strategy}} {{side}}")),
            ts("Risk decisions per minute",
               ("sum by (verdict, reason) (rate(tradewind_risk_decisions_total[5m])) * 60",
                "{{verdict}} {{reason}}"), stack=True),
            ts("Order transitions per minute",
               ("sum by (exchange, status) (rate(tradewind_orders_total[5m])) * 60",
                "{{exchange}} {{status}}"), stack=True),
            ts("Open orders", ("sum(tradewind_open_orders)", "open")),
            ts("Fills per minute",
               ("sum by (exchange, symbol, liquidity) (rate(tradewind_fills_total[5m])) * 60",
                "{{exchange}} {{symbol}} {{liquidity}}")),
            ts("Fees paid (1 h)",
               ("sum by (exchange, currency) (increase(tradewind_fees_total[1h]))",
                "{{exchange}} ({{currency}})")),
            ts("Exchange errors and circuit breaker",
               (zero("sum by (exchange, kind) (increase(tradewind_exchange_errors_total[5m]))"),
                "errors {{exchange}} {{kind}}"),
               (zero("max by (exchange) (tradewind_circuit_open)"), "circuit open {{exchange}}")),
            ts("Kill switch activations and illegal transitions",
               (zero("sum by (trigger) (increase(tradewind_kill_switch_total[1h]))"),
                "kill switch {{trigger}}"),
               (zero("sum by (from_status, to_status) "
                     "(increase(tradewind_order_illegal_transitions_total[1h]))"),
                "illegal {{from_status}} -> {{to_status}}")),
        ],
    },
    "tradewind-latency": {
        "title": "Tradewind / Latency",
        "description": "Latency of each hop from the tick's local receive time, end to end, "
                       "and of batches, writes and the event loop.",
        "panels": [
            ts("Tick to order acknowledged (end to end)",
               (q(0.5, "tradewind_tick_to_order_seconds"), "p50"),
               (q(0.9, "tradewind_tick_to_order_seconds"), "p90"),
               (q(0.99, "tradewind_tick_to_order_seconds"), "p99"), unit="s"),
            ts("Hop latency p50", (q(0.5, "tradewind_hop_latency_seconds", "hop"), "{{hop}}"),
               unit="s"),
            ts("Hop latency p99", (q(0.99, "tradewind_hop_latency_seconds", "hop"), "{{hop}}"),
               unit="s"),
            ts("Batch processing time p99",
               (q(0.99, "tradewind_processing_seconds", "service"), "{{service}}"), unit="s"),
            ts("Mean batch size",
               ("sum by (service) (rate(tradewind_batch_size_sum[5m])) "
                "/ sum by (service) (rate(tradewind_batch_size_count[5m]))", "{{service}}")),
            ts("Database batch write p99", (q(0.99, "tradewind_db_write_seconds"), "p99"),
               unit="s"),
            ts("Frame to publish p99",
               (q(0.99, "tradewind_feed_publish_latency_seconds", "exchange"), "{{exchange}}"),
               unit="s"),
            ts("Event loop lag p99",
               (q(0.99, "tradewind_event_loop_lag_seconds", "job"), "{{job}}"), unit="s"),
        ],
    },
    "tradewind-infrastructure": {
        "title": "Tradewind / Infrastructure",
        "description": "Targets, readiness, streams, persistence and process resources.",
        "panels": [
            ts("Targets up", (f"up{{{SERVICES}}}", "{{job}} {{instance}}")),
            ts("Services ready", ("max by (service) (tradewind_service_ready)", "{{service}}")),
            ts("Stream lag (undelivered)",
               ("max by (topic, group) (tradewind_stream_lag)", "{{group}} on {{topic}}")),
            ts("Pending (delivered, not acknowledged)",
               ("max by (topic, group) (tradewind_stream_pending)", "{{group}} on {{topic}}")),
            ts("Stream length", ("max by (topic) (tradewind_stream_length)", "{{topic}}")),
            ts("Failed processing attempts (5 min)",
               (zero("sum by (service, topic) (increase(tradewind_events_failed_total[5m]))"),
                "{{service}} {{topic}}")),
            ts("Dead letters",
               ("max(tradewind_dead_letter_size)", "in dead-letter topic"),
               (zero("sum by (service, topic) (increase(tradewind_dead_letters_total[1h]))"),
                "moved (1 h) {{service}} {{topic}}")),
            ts("Bus reconnects (1 h)",
               ("sum by (service) (increase(tradewind_bus_reconnects_total[1h]))",
                "{{service}}")),
            ts("Rows written per second",
               ("sum by (table) (rate(tradewind_rows_written_total[1m]))", "{{table}}"),
               unit="ops", stack=True),
            ts("Database errors (5 min)",
               (zero("sum by (kind) (increase(tradewind_db_errors_total[5m]))"), "{{kind}}")),
            ts("Resident memory",
               (f"process_resident_memory_bytes{{{SERVICES}}}", "{{job}} {{instance}}"),
               unit="bytes"),
            ts("CPU",
               (f"rate(process_cpu_seconds_total{{{SERVICES}}}[1m])", "{{job}} {{instance}}"),
               unit="percentunit"),
            ts("Open file descriptors",
               (f"process_open_fds{{{SERVICES}}}", "{{job}} {{instance}}")),
            ts("Event loop lag p99",
               (q(0.99, "tradewind_event_loop_lag_seconds", "job"), "{{job}}"), unit="s"),
        ],
    },
}


def _panel(i: int, spec: dict[str, Any]) -> dict[str, Any]:
    is_stat = spec["type"] == "stat"
    width = 6 if is_stat else 12
    height = 4 if is_stat else 8
    # Stats fill the first row four across; time series two per row below them.
    y = (i // 4) * height if is_stat else 100 + (i // 2) * height
    x = (i % 4) * width if is_stat else (i % 2) * width
    targets = [{"datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto",
                "refId": chr(ord("A") + n), "range": True}
               for n, (expr, legend) in enumerate(spec["targets"])]
    panel: dict[str, Any] = {
        "id": i + 1,
        "type": spec["type"],
        "title": spec["title"],
        "description": spec["description"],
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": spec["unit"]}, "overrides": []},
    }
    if is_stat:
        panel["fieldConfig"]["defaults"]["mappings"] = spec["mappings"]
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                              "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    else:
        panel["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "stacking": {"mode": "normal" if spec["stack"] else "none", "group": "A"},
        }
        panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom",
                                       "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel


def build(uid: str, spec: dict[str, Any]) -> dict[str, Any]:
    stats = [p for p in spec["panels"] if p["type"] == "stat"]
    series = [p for p in spec["panels"] if p["type"] != "stat"]
    panels = [_panel(i, p) for i, p in enumerate(stats)]
    for j, p in enumerate(series):
        panel = _panel(j, p)
        panel["id"] = len(stats) + j + 1
        panel["gridPos"]["y"] = (4 if stats else 0) + (j // 2) * 8
        panels.append(panel)
    return {
        "uid": uid,
        "title": spec["title"],
        "description": spec["description"],
        "tags": ["tradewind"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [{"title": "Tradewind dashboards", "type": "dashboards", "tags": ["tradewind"],
                   "asDropdown": True}],
        "panels": panels,
    }


def render() -> dict[str, str]:
    return {f"{uid}.json": json.dumps(build(uid, spec), indent=2) + "\n"
            for uid, spec in DASHBOARDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON files are stale")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale dashboards (run build_dashboards.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
