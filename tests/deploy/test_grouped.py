"""The grouped order path as a deployment option (issue 17): signal, risk and
execution in one process (``orderpath``) in Compose (profile ``grouped`` with
docker-compose.grouped.yml) and Kubernetes (k8s/components/grouped-order-path,
overlays dev-grouped and prod-grouped), the five-process layout unchanged and
still the default."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from .conftest import ROOT, load_yaml_docs, require_tool
from .test_k8s import by_kind, expected_flows, flows, pod_spec, restricted_problems, workloads

ORDER_PATH = ("signal", "risk", "execution")
GROUPED = {"dev": "dev-grouped", "prod": "prod-grouped"}
GROUP_ENV = {
    "TRADEWIND_SERVICE_NAME": "orderpath",
    "TRADEWIND_BUS__USERNAME": "tradewind-orderpath",
}


# --- Kubernetes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grouped_renders() -> dict[str, list[dict[str, Any]]]:
    kubectl = require_tool("kubectl")
    out = {}
    for overlay in GROUPED.values():
        proc = subprocess.run(
            [kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        out[overlay] = load_yaml_docs(proc.stdout)
    return out


def _orderpath(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return by_kind(docs, "Deployment")["orderpath"]


def _env(container: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _secret_items(spec: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(Secret, key, file) of every file in the pod's /run/secrets volume."""
    volume = next(v for v in spec["volumes"] if v["name"] == "secrets")
    return {
        (src["secret"]["name"], item["key"], item["path"])
        for src in volume["projected"]["sources"]
        for item in src["secret"]["items"]
    }


@pytest.mark.parametrize("overlay", GROUPED.values())
def test_one_orderpath_deployment_replaces_the_three(grouped_renders, overlay):
    docs = grouped_renders[overlay]
    for kind in (
        "Deployment",
        "Service",
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ):
        left = set(by_kind(docs, kind)) & set(ORDER_PATH)
        assert not left, f"{overlay}: {kind} {sorted(left)} left beside orderpath"
    assert "orderpath" in by_kind(docs, "Service")
    assert "orderpath" in by_kind(docs, "ServiceAccount")
    hpas = by_kind(docs, "HorizontalPodAutoscaler").values()
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    assert "orderpath" not in targets, "not autoscaled: more replicas are standbys"
    spec = pod_spec(_orderpath(docs))
    (container,) = spec["containers"]
    assert container["args"] == ["service", "signal,risk,execution"]
    assert spec["serviceAccountName"] == "orderpath"
    assert spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("base", GROUPED)
def test_everything_else_is_the_overlay_unchanged(renders, grouped_renders, base):
    """Only the order path and the NetworkPolicies naming it differ from the
    five-process render; image, pull policy and settings are the overlay's."""

    def rest(docs):
        names = {*ORDER_PATH, "orderpath"}
        return sorted(
            (
                yaml.safe_dump(d)
                for d in docs
                if d["metadata"]["name"] not in names and d["kind"] != "NetworkPolicy"
            ),
        )

    five, grouped = renders[base], grouped_renders[GROUPED[base]]
    assert rest(grouped) == rest(five)
    ws = pod_spec(by_kind(grouped, "Deployment")["ws"])["containers"][0]
    group = pod_spec(_orderpath(grouped))["containers"][0]
    for key in ("image", "imagePullPolicy", "envFrom"):
        assert group[key] == ws[key], key
    assert _orderpath(grouped)["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tradewind"


@pytest.mark.parametrize("base", GROUPED)
def test_orderpath_has_the_env_and_secrets_of_the_three(renders, grouped_renders, base):
    five = by_kind(renders[base], "Deployment")
    group = pod_spec(_orderpath(grouped_renders[GROUPED[base]]))
    env = _env(group["containers"][0])
    union: dict[str, str | None] = {}
    sources: set[tuple[str, str, str]] = set()
    for name in ORDER_PATH:
        spec = pod_spec(five[name])
        union.update(_env(spec["containers"][0]))
        sources |= {s for s in _secret_items(spec) if not s[0].startswith("tradewind-redis-")}
    assert env == {**union, **GROUP_ENV}
    own = ("tradewind-redis-orderpath", "password", "redis_password")
    assert _secret_items(group) == sources | {own}


@pytest.mark.parametrize("overlay", GROUPED.values())
def test_orderpath_pod_is_hardened_and_probed(grouped_renders, overlay):
    pods = [(overlay, w) for w in workloads(grouped_renders[overlay])]
    assert not restricted_problems(pods)
    spec = pod_spec(_orderpath(grouped_renders[overlay]))
    (c,) = spec["containers"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"path": "/livez", "port": "http"},
        "livenessProbe": {"path": "/livez", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
    }
    assert spec["terminationGracePeriodSeconds"] == 30
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp", "/run/secrets"}


def test_replicas_one_in_dev_and_an_active_plus_standby_in_prod(grouped_renders):
    dev = _orderpath(grouped_renders["dev-grouped"])
    prod = _orderpath(grouped_renders["prod-grouped"])
    assert dev["spec"]["replicas"] == 1
    assert prod["spec"]["replicas"] == 2
    for d in (dev, prod):
        rolling = d["spec"]["strategy"]["rollingUpdate"]
        assert rolling == {"maxSurge": 1, "maxUnavailable": 0}, "the new pod waits as a standby"
    assert "orderpath" not in by_kind(grouped_renders["dev-grouped"], "PodDisruptionBudget")
    pdb = by_kind(grouped_renders["prod-grouped"], "PodDisruptionBudget")["orderpath"]
    assert pdb["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "orderpath"}},
    }
    anti = pod_spec(prod)["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"]


@pytest.mark.parametrize("base", GROUPED)
def test_network_policies_give_orderpath_exactly_the_union(grouped_renders, base):
    def grouped_name(name: str) -> str:
        return "orderpath" if name in ORDER_PATH else name

    exp = {(grouped_name(a), grouped_name(b), p, n) for a, b, p, n in expected_flows(base)}
    got = flows(grouped_renders[GROUPED[base]])
    assert not exp - got, f"needed flows blocked: {sorted(exp - got)}"
    assert not got - exp, f"flows allowed that nothing needs: {sorted(got - exp)}"


@pytest.mark.parametrize("overlay", GROUPED.values())
def test_prometheus_scrapes_orderpath_as_its_own_job(grouped_renders, overlay):
    cm = next(
        d
        for d in grouped_renders[overlay]
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"].startswith("tradewind-prometheus-config")
    )
    cfg = yaml.safe_load(cm["data"]["prometheus.yml"])
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "tradewind")
    keep = next(
        r
        for r in job["relabel_configs"]
        if r["source_labels"] == ["__meta_kubernetes_pod_label_tradewind_io_service"]
        and r.get("action") == "keep"
    )
    label = _orderpath(grouped_renders[overlay])["spec"]["template"]["metadata"]["labels"]
    assert label["tradewind.io/service"] == "orderpath"
    assert re.fullmatch(keep["regex"], "orderpath")


def test_the_component_refuses_a_base_whose_policies_changed(tmp_path):
    """The component's `test` operations fail the render when base's lists of
    pods change, instead of silently granting orderpath stale flows."""
    kubectl = require_tool("kubectl")
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", k8s, ignore=shutil.ignore_patterns(".render.*"))
    policies = k8s / "base" / "networkpolicies.yaml"
    text = policies.read_text()
    old = "values: [ws, signal, risk, execution, db-writer]"
    assert old in text
    policies.write_text(text.replace(old, "values: [ws, signal, risk, execution, db-writer, x]", 1))
    proc = subprocess.run(
        [kubectl, "kustomize", str(k8s / "overlays" / "dev-grouped")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "test failed" in proc.stderr


# --- Compose ----------------------------------------------------------------------------


def _compose_config(tmp_path, *args: str) -> dict[str, Any]:
    tool = require_tool("docker-compose")
    env = tmp_path / "compose.env"
    env.write_text((ROOT / ".env.example").read_text())
    proc = subprocess.run(
        [tool, "--env-file", str(env), *args, "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def _active(config: dict[str, Any], profiles: set[str]) -> set[str]:
    """The services `up` starts: no profile, or one of the enabled ones (Compose spec)."""
    return {
        n
        for n, s in config["services"].items()
        if not s.get("profiles") or set(s["profiles"]) & profiles
    }


GROUPED_FILES = ("-f", "docker-compose.yml", "-f", "docker-compose.grouped.yml")


def test_compose_default_is_the_five_processes_and_grouped_swaps_the_three(tmp_path):
    five = _compose_config(tmp_path, "-f", "docker-compose.yml")
    grouped = _compose_config(tmp_path, *GROUPED_FILES, "--profile", "grouped")
    active_five = _active(five, set())
    active_grouped = _active(grouped, {"grouped"})
    assert set(ORDER_PATH) <= active_five and "orderpath" not in active_five
    assert "orderpath" in active_grouped and not set(ORDER_PATH) & active_grouped
    assert active_grouped == (active_five - set(ORDER_PATH)) | {"orderpath"}
    # With the fake exchange too, and nothing else changes.
    offline = _active(grouped, {"grouped", "offline"})
    assert offline == active_grouped | {"fake-exchange"}
    for name in active_five - set(ORDER_PATH):
        assert _same(grouped["services"][name]) == _same(five["services"][name]), name


def _same(value: Any) -> Any:
    """docker-compose prints a merge of two files with lists in another order
    and empty network entries as {} instead of null: compare without that."""
    if isinstance(value, dict):
        return {k: _same(v if v is not None else {}) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_same(v) for v in value), key=repr)
    return value


def test_compose_orderpath_is_the_union_of_the_three(compose):
    services = compose["services"]
    group = services["orderpath"]
    assert group["command"] == ["service", "signal,risk,execution"]
    union_env: dict[str, Any] = {}
    secrets: set[str] = set()
    networks: set[str] = set()
    for name in ORDER_PATH:
        union_env.update(services[name]["environment"])
        secrets |= {s for s in services[name]["secrets"] if not s.startswith("redis_")}
        networks |= set(services[name].get("networks", []))
    assert group["environment"] == {
        **union_env,
        **GROUP_ENV,
        "TRADEWIND_BUS__PASSWORD_FILE": "/run/secrets/redis_orderpath_password",
    }
    assert set(group["secrets"]) == secrets | {"redis_orderpath_password"}
    assert set(group["networks"]) == networks
    assert group["healthcheck"] == services["risk"]["healthcheck"]
    assert group["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_compose_grouped_override_only_parks_the_three():
    override = yaml.safe_load((ROOT / "docker-compose.grouped.yml").read_text())
    assert override == {"services": {n: {"profiles": ["five-process"]} for n in ORDER_PATH}}


def test_make_secrets_writes_orderpaths_redis_password_and_layout_is_checked():
    makefile = (ROOT / "Makefile").read_text()
    secrets = re.search(r"^secrets:.*?\n\n", makefile, re.S | re.M)
    assert secrets and "redis_orderpath_password" in secrets.group(0)
    proc = subprocess.run(
        ["make", "-n", "up", "LAYOUT=grouped"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "docker-compose rm -s -f signal risk execution" in proc.stdout
    assert (
        "-f docker-compose.yml -f docker-compose.grouped.yml --profile grouped up -d" in proc.stdout
    )
    proc = subprocess.run(
        ["make", "-n", "up"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert "--profile grouped rm -s -f orderpath" in proc.stdout
    assert re.search(r"^docker-compose +up -d$", proc.stdout, re.M)
    proc = subprocess.run(
        ["make", "-n", "up", "LAYOUT=three"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert proc.returncode != 0 and "LAYOUT must be five or grouped" in proc.stderr


# --- monitoring -------------------------------------------------------------------------


def test_compose_prometheus_scrapes_orderpath():
    cfg = yaml.safe_load((ROOT / "infrastructure/monitoring/prometheus/prometheus.yml").read_text())
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "orderpath")
    assert job["dns_sd_configs"] == [
        {"names": ["orderpath"], "type": "A", "port": 8080, "refresh_interval": "30s"}
    ]


def test_every_job_list_naming_signal_names_orderpath():
    """Dashboards and alert rules select processes by job: the grouped job is
    listed wherever the order-path services are."""
    files = [
        *(ROOT / "infrastructure/monitoring/grafana/dashboards").glob("*.json"),
        *(ROOT / "infrastructure/monitoring/prometheus/rules").glob("*.yml"),
    ]
    lists = [
        (f.name, m)
        for f in files
        for m in re.findall(r'job=~\\?"([^"\\]+)', f.read_text())
        if "signal" in m.split("|")
    ]
    assert lists
    missing = [(f, m) for f, m in lists if "orderpath" not in m.split("|")]
    assert not missing, missing


def _referenced_secrets(docs: list[dict[str, Any]]) -> set[str]:
    names = set()
    for w in workloads(docs):
        spec = pod_spec(w)
        for v in spec.get("volumes", []):
            if "secret" in v:
                names.add(v["secret"]["secretName"])
            for src in v.get("projected", {}).get("sources", []):
                if "secret" in src:
                    names.add(src["secret"]["name"])
        for c in spec.get("initContainers", []) + spec["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
    return names


@pytest.mark.parametrize("grouped", [False, True])
def test_deploy_requires_exactly_the_secrets_each_layout_mounts(
    renders, grouped_renders, grouped, tmp_path
):
    """deploy-k8s checks the Secrets the pods of the chosen layout mount, and
    the template lists every one of both layouts."""
    require_tool("kubectl")
    docs = grouped_renders["dev-grouped"] if grouped else renders["dev"]
    env = {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    proc = subprocess.run(
        ["bash", str(ROOT / "k8s" / "deploy-k8s.sh"), "--dry-run", *(["--grouped"] * grouped)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    listed = re.search(r"required Secrets[^\n]*\n((?:    \S+\n)+)", proc.stdout)
    assert listed
    required = set(listed.group(1).split())
    assert required == _referenced_secrets(docs)
    template = {
        d["metadata"]["name"]
        for d in load_yaml_docs((ROOT / "k8s" / "base" / "secrets.template.yaml").read_text())
    }
    assert required <= template
