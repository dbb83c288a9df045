"""Dashboards and alert rules against a real Prometheus scraping the five services.

The five ``tradewind service`` processes replay the bundled recording at a
paced speed (about half a minute) while Debian's ``prometheus`` scrapes their
``/metrics`` every second and evaluates the repository's alert rules. Then:

- every target expression of every panel of every dashboard, asked over the
  run as Grafana would ask it (a range query), returns at least one finite
  value, and every metric it names was exported by a service, so a wrong
  metric name or label shows up here even behind an ``or on() vector(0)``;
- every alert rule was loaded and evaluated with health "ok";
- ``scripts/plot_metrics.py`` plots the latency and PnL series of the run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port, skip_or_fail
from tests.e2e.cluster import Cluster, observer_bus, start_consumers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

MONITORING = ROOT / "infrastructure" / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((MONITORING / "prometheus" / "rules").glob("*.yml"))
# Prometheus job (the service) -> the Cluster key start_consumers() and start("ws") use.
PROCESSES = {
    "ws": "ws-c1",
    "signal": "signal-s0",
    "risk": "risk-c1",
    "execution": "execution-c1",
    "db_writer": "db_writer-w0",
}
# The recording spans ~52 s of exchange time: at twice real time the run lasts
# ~26 s, i.e. ~26 scrapes with data moving between them.
SPEED = 2.0
SCRAPE_S = 1
# Grafana's built-in variables, as Grafana would set them for this run
# (rate interval: four scrape intervals; range: the whole run).
BUILTIN_VARS = {
    "__rate_interval": "4s",
    "__interval": "1s",
    "__interval_ms": "1000",
    "__range": "60s",
    "__range_s": "60",
    "__range_ms": "60000",
}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "deriv", "delta", "time",
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "histogram_quantile", "predict_linear", "clamp_min", "clamp_max", "abs",
    "absent", "topk", "bottomk", "vector", "scalar", "label_replace", "avg_over_time",
    "max_over_time", "min_over_time", "sum_over_time", "offset", "le", "inf", "nan",
}  # fmt: skip


class Prometheus:
    """A throwaway ``prometheus`` on loopback: one job per service, rules loaded."""

    def __init__(self, tmp: Path, targets: dict[str, int]) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            skip_or_fail("Debian's prometheus is not installed (apt-get install prometheus)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_S}s",
                "scrape_timeout": f"{SCRAPE_S}s",
                "evaluation_interval": f"{SCRAPE_S}s",
            },
            "rule_files": [str(f) for f in RULE_FILES],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        cfg = tmp / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={cfg}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {self.tail()}"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready after {timeout}s: {self.tail()}")

    def api(self, path: str, **params: str) -> Any:
        """``data`` of one HTTP API answer; an error answer fails with Prometheus' reason."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def dashboard_targets() -> list[tuple[str, str]]:
    """(where, expr) of every target of every panel, Grafana variables substituted."""
    out = []
    for f in DASHBOARDS:
        dash = json.loads(f.read_text())
        custom = {v["name"]: _current(v) for v in dash.get("templating", {}).get("list", [])}
        panels = list(dash["panels"])
        panels += [p for row in dash["panels"] for p in row.get("panels", [])]
        for p in panels:
            for t in p.get("targets", []):
                where = f"{f.stem} / {p['title']} [{t['refId']}]"
                out.append((where, substitute(t["expr"], {**BUILTIN_VARS, **custom})))
    return out


def _current(var: dict[str, Any]) -> str:
    """A dashboard variable's value: its current one, or 'all' as a regex."""
    value = var.get("current", {}).get("value")
    if isinstance(value, list):
        value = "|".join(value)
    return ".+" if value in (None, "", "$__all") else str(value)


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's ``$var``, ``${var}``, ``${var:fmt}`` and ``[[var]]`` forms, replaced."""
    pattern = r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)"

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        assert name in values, f"unknown Grafana variable ${name} in {expr}"
        return values[name]

    return re.sub(pattern, one, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or durations)."""
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)  # label matchers
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", bare)  # grouping labels
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range durations
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare))
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def _finite(series: dict[str, Any]) -> bool:
    return any(math.isfinite(float(v)) for _, v in series["values"])


def test_substitute_and_metric_names_parse_grafana_and_promql() -> None:
    """The helpers the e2e check relies on find what they should (they can fail)."""
    got = substitute('rate(x{symbol=~"$symbol"}[$__rate_interval]) + ${a:csv} + [[b]]',
                     {"symbol": ".+", "__rate_interval": "4s", "a": "1", "b": "2"})  # fmt: skip
    assert got == 'rate(x{symbol=~".+"}[4s]) + 1 + 2'
    with pytest.raises(AssertionError, match="unknown Grafana variable"):
        substitute("x[$nope]", {})
    expr = (
        "histogram_quantile(0.99, sum by (le, hop) (rate(tradewind_hop_latency_seconds_bucket"
        '{job=~"a|b"}[5m]))) or on() vector(0) - time() + up offset 1m'
    )
    assert metric_names(expr) == {"tradewind_hop_latency_seconds_bucket", "up"}


@pytest.fixture
def cluster(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_url: str
) -> Iterator[Cluster]:
    c = Cluster(tmp_path, redis_url, redis_prefix, postgres_url, SPEED)
    yield c
    codes = c.stop_all()
    assert all(code == 0 for code in codes.values()), codes


@pytest.fixture
def prometheus(tmp_path: Path, cluster: Cluster) -> Iterator[Prometheus]:
    # Ports fixed before any service starts, so the scrape configuration is static.
    for key in PROCESSES.values():
        cluster.ports[key] = free_port()
    prom = Prometheus(tmp_path, {job: cluster.ports[key] for job, key in PROCESSES.items()})
    try:
        prom.wait_ready()
        yield prom
    finally:
        prom.stop()


def _exported_names(prom: Prometheus) -> set[str]:
    """Metric names the services exported: with samples, or declared (HELP/TYPE) only."""
    names = set(prom.api("label/__name__/values"))
    meta = prom.api("targets/metadata", limit="100000")
    for m in meta:
        base = m["metric"]
        names.add(base)
        if m.get("type") == "counter":
            names.add(base if base.endswith("_total") else base + "_total")
        if m.get("type") == "histogram":
            names.update(base + s for s in ("_bucket", "_sum", "_count"))
    return names


def _wait_rules_evaluated(prom: Prometheus, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        if rules and all(not r["lastEvaluation"].startswith("0001") for r in rules):
            return rules
        assert time.monotonic() < deadline, f"rules never evaluated: {rules}"
        time.sleep(0.5)


async def _replay(cluster: Cluster) -> None:
    start_consumers(cluster)
    ws = cluster.start("ws")
    cluster.wait_live(ws)
    assert set(cluster.procs) == set(PROCESSES.values()), "scraped ports != started processes"
    bus = await observer_bus(cluster)
    try:
        await cluster.wait_done(bus, timeout=60)
    finally:
        await bus.close()


def test_every_panel_and_alert_rule_works_on_a_replay(
    cluster: Cluster, prometheus: Prometheus, tmp_path: Path
) -> None:
    t0 = time.time()
    asyncio.run(_replay(cluster))
    # A few more scrapes and rule evaluations of the final state.
    time.sleep(4 * SCRAPE_S)
    t1 = time.time()
    assert t1 - t0 > 15, "the replay was too short for several scrapes: the test proves little"

    down = [
        (t["labels"]["job"], t["lastError"]) for t in prometheus.api("targets")["activeTargets"]
        if t["health"] != "up"
    ]  # fmt: skip
    assert down == [], f"targets not scraped: {down}"

    exported = _exported_names(prometheus)
    assert "tradewind_feed_gaps_total" in exported  # declared, never incremented in a replay
    assert "tradewind_event_published_total" not in exported  # a typo is not "exported"
    problems = []
    targets = dashboard_targets()
    assert len(targets) >= 50, "fewer dashboard targets than expected: are the files read?"
    for where, expr in targets:
        missing = metric_names(expr) - exported
        if missing:
            problems.append(f"{where}: no service exports {sorted(missing)}: {expr}")
            continue
        result = prometheus.api(
            "query_range", query=expr, start=f"{t0:.3f}", end=f"{t1:.3f}", step="1"
        )["result"]
        if not any(_finite(s) for s in result):
            problems.append(f"{where}: no data: {expr}")

    rules = _wait_rules_evaluated(prometheus)
    want = {
        r.get("alert") or r.get("record")
        for f in RULE_FILES
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
    }
    assert {r["name"] for r in rules} == want
    problems += [
        f"alert rule {r['name']}: health {r['health']}: {r.get('lastError')}"
        for r in rules
        if r["health"] != "ok"
    ]
    assert not problems, "\n".join(problems)

    png = tmp_path / "metrics.png"
    plot = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "plot_metrics.py"),
            "--prometheus", prometheus.url,
            "--start", f"{t0:.3f}",
            "--end", f"{t1:.3f}",
            "--step", "1",
            "--window", "4s",
            "--require-data",
            "--out", str(png),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert plot.returncode == 0, plot.stdout + plot.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The README's picture comes from this run: TRADEWIND_METRICS_PNG=docs/img/metrics.png
    if target := os.environ.get("TRADEWIND_METRICS_PNG"):
        shutil.copyfile(png, target)
