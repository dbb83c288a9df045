"""Alert rules, dashboards and the metrics table agree with metrics.py (issue 7)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT, SERVICES, require_tool

PROM = ROOT / "infrastructure" / "monitoring" / "prometheus"
GRAFANA = ROOT / "infrastructure" / "monitoring" / "grafana"
REQUIRED_ALERTS = {
    "TradewindServiceDown",
    "TradewindServiceAbsent",
    "TradewindFeedStale",
    "TradewindFeedReconnectStorm",
    "TradewindBookResyncStorm",
    "TradewindStreamLagGrowing",
    "TradewindDeadLetters",
    "TradewindTradingHalted",
    "TradewindTradingReducing",
    "TradewindLossLimitNearlyUsed",
    "TradewindOrderRejectsSpike",
    "TradewindDbWriterErrors",
    "TradewindMemoryGrowth",
}
TARGET_LABELS = {"job", "instance", "le", "namespace", "pod"}
STANDARD = {
    "up": set(),
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
    "process_open_fds": set(),
}


@pytest.fixture(scope="module")
def known() -> dict[str, set[str]]:
    """Every exposed series name -> its labels, from metrics.py."""
    sys.path.insert(0, str(ROOT / "src"))
    from prometheus_client.metrics import MetricWrapperBase

    import tradewind.observability.metrics as m

    out: dict[str, set[str]] = dict(STANDARD)
    for obj in vars(m).values():
        if isinstance(obj, MetricWrapperBase):
            labels = set(obj._labelnames)
            if obj._type == "counter":
                out[obj._name + "_total"] = labels
            elif obj._type == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    out[obj._name + suffix] = labels
            else:
                out[obj._name] = labels
    return out


def rule_exprs() -> dict[str, str]:
    out = {}
    for f in (PROM / "rules").glob("*.yml"):
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                out[r.get("alert") or r.get("record")] = r["expr"]
    return out


def dashboard_exprs() -> dict[str, str]:
    out = {}
    for f in sorted((GRAFANA / "dashboards").glob("*.json")):
        for p in json.loads(f.read_text())["panels"]:
            for t in p.get("targets", []):
                out[f"{f.stem}: {p['title']} [{t['refId']}]"] = t["expr"]
    return out


FUNCS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "deriv",
    "time",
    "by",
    "without",
    "histogram_quantile",
    "predict_linear",
    "and",
    "or",
    "unless",
    "clamp_min",
    "abs",
    "absent",
    "topk",
    "bool",
    "on",
    "ignoring",
    "irate",
    "delta",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "label_replace",
    "vector",
    "scalar",
}


def check_expr(expr: str, known: dict[str, set[str]]) -> list[str]:
    problems = []
    names = [
        n
        for n in re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", re.sub(r'"[^"]*"', "", expr))
        if n not in FUNCS and not re.fullmatch(r"\d+[smhd]?", n)
    ]
    metrics = [
        n for n in names if n in known or n.startswith(("tradewind_", "process_")) or n == "up"
    ]
    for n in metrics:
        if n not in known:
            problems.append(f"unknown metric {n}")
    for metric, selector in re.findall(r"\b([a-z_][a-z0-9_]*)\{([^}]*)\}", expr):
        for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", selector):
            if metric in known and label not in known[metric] | TARGET_LABELS:
                problems.append(f"{metric} has no label {label}")
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        labels = {g.strip() for g in group.split(",")}
        allowed = set().union(*(known.get(n, set()) for n in metrics)) | TARGET_LABELS
        if labels - allowed:
            problems.append(f"by ({group}): unknown labels {labels - allowed}")
    return problems


def test_every_required_alert_exists_with_severity_and_runbook():
    rules = {}
    for f in (PROM / "rules").glob("*.yml"):
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                rules[r["alert"]] = r
    assert set(rules) >= REQUIRED_ALERTS
    for name, r in rules.items():
        assert r["labels"]["severity"] in ("critical", "warning"), name
        assert r["annotations"]["summary"] and r["annotations"]["description"], name


def test_every_alert_has_a_promtool_unit_test():
    tested = set()
    for f in (PROM / "tests").glob("*.test.yml"):
        for t in yaml.safe_load(f.read_text())["tests"]:
            for a in t.get("alert_rule_test", []):
                if a.get("exp_alerts"):
                    tested.add(a["alertname"])
    assert set(rule_exprs()) <= tested, f"untested alerts: {set(rule_exprs()) - tested}"


def test_rules_and_dashboards_use_only_known_metrics_and_labels(known):
    problems = []
    for where, expr in {**rule_exprs(), **dashboard_exprs()}.items():
        problems += [f"{where}: {p}" for p in check_expr(expr, known)]
    assert not problems, "\n".join(problems)


def test_the_metric_checker_catches_typos(known):
    assert check_expr("rate(tradewind_event_published_total[1m])", known)
    assert check_expr('tradewind_stream_lag{service="x"}', known)
    assert check_expr("sum by (symbol) (tradewind_exposure)", known)
    assert not check_expr(
        'sum by (topic) (rate(tradewind_events_published_total{job="ws"}[1m]))', known
    )


def test_dashboards_are_fresh_complete_and_use_the_provisioned_datasource():
    proc = subprocess.run(
        [sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    files = {f.stem for f in (GRAFANA / "dashboards").glob("*.json")}
    assert files == {
        "tradewind-overview",
        "tradewind-market-data",
        "tradewind-trading",
        "tradewind-latency",
        "tradewind-infrastructure",
    }
    for f in (GRAFANA / "dashboards").glob("*.json"):
        d = json.loads(f.read_text())
        assert d["uid"] == f.stem and d["panels"]
        for p in d["panels"]:
            assert p["datasource"]["uid"] == uid
            assert all(t["datasource"]["uid"] == uid for t in p["targets"])
    provider_file = GRAFANA / "provisioning" / "dashboards" / "tradewind.yml"
    provider = yaml.safe_load(provider_file.read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana-dashboards"


def test_prometheus_jobs_are_the_service_names():
    compose_cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in compose_cfg["scrape_configs"]}
    # orderpath: signal, risk and execution grouped in one process (issue 17).
    assert {*SERVICES, "orderpath"} <= jobs
    k8s_cfg = yaml.safe_load((ROOT / "k8s" / "base" / "prometheus" / "prometheus.yml").read_text())
    keep = k8s_cfg["scrape_configs"][1]["relabel_configs"][0]
    assert set(keep["regex"].split("|")) == {*SERVICES, "orderpath"}
    assert k8s_cfg["rule_files"] == compose_cfg["rule_files"]


def test_metrics_doc_lists_every_metric(known):
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for name in known:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{base}`" in doc or f"`{name}`" in doc, name
    for alert in REQUIRED_ALERTS:
        assert alert in doc


def test_k8s_file_copies_are_not_stale():
    proc = subprocess.run(
        ["bash", str(ROOT / "k8s" / "base" / "sync-files.sh"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    schema = ROOT / "src" / "tradewind" / "storage" / "schema.sql"
    copy = (ROOT / "k8s" / "base" / "files" / "schema.sql").read_text()
    if schema.exists():
        assert copy == schema.read_text()
    else:
        assert copy.startswith("-- PLACEHOLDER")


def test_promtool_rules_and_config(tmp_path):
    tool = require_tool("promtool")
    for args in (
        ["check", "rules", *map(str, (PROM / "rules").glob("*.yml"))],
        ["test", "rules", *map(str, (PROM / "tests").glob("*.test.yml"))],
        ["check", "config", "--syntax-only", str(PROM / "prometheus.yml")],
    ):
        proc = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_fail_on_a_broken_rule(tmp_path):
    tool = require_tool("promtool")
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    rules = (PROM / "rules" / "tradewind-alerts.yml").read_text().replace("> 30", "> 3000")
    (tmp_path / "rules" / "tradewind-alerts.yml").write_text(rules)
    test = (PROM / "tests" / "tradewind-alerts.test.yml").read_text()
    (tmp_path / "tests" / "t.test.yml").write_text(test)
    proc = subprocess.run(
        [tool, "test", "rules", str(tmp_path / "tests" / "t.test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
